//! Progress reporting for long store operations (download, hashing, conversion).
//!
//! The library only reports; the app decides how to render (indicatif bars in `hark`,
//! nothing in tests). One step runs at a time: `begin`, any number of `update`s, `end`.

/// Receives progress of long steps. All methods have no-op defaults.
pub trait Progress {
    /// A step starts. `total` is its size in `unit`s when known (`None`: show a spinner).
    fn begin(&self, step: &str, total: Option<u64>, unit: Unit) {
        let _ = (step, total, unit);
    }
    /// The current step has done `done` units so far.
    fn update(&self, done: u64) {
        let _ = done;
    }
    /// The current step finished.
    fn end(&self) {}
    /// A one-line informational message (e.g. "tiny.en is already installed").
    fn note(&self, message: &str) {
        let _ = message;
    }
}

/// Unit of a step's `total`/`done` counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Bytes.
    Bytes,
    /// Tensors.
    Tensors,
}

/// Ignores all progress.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}
