//! Helpers shared by hark's test binaries (a dev-dependency of `hark-engine`,
//! `hark-models` and `hark-gpu`; never shipped).
//!
//! Design: this crate depends on none of ours, so every crate, the engine included, can
//! use it without a cycle; helpers that need a hark type (a model, a GPU context) stay in
//! the crate's own `tests/common` modules. Helpers that locate external data
//! ([`paths::shared_dir`], [`paths::model_dir`]) print the standard `skipping: ...`
//! message and return `None`, so a test skips with `let Some(x) = ... else { return };`
//! and a fresh clone without `../shared` or an installed model still passes `cargo test`.
//! Assertion helpers name what they compare in their panic messages.

#![deny(missing_docs)]

pub mod alloc;
pub mod fixtures;
pub mod metrics;
pub mod paths;

pub use alloc::CountingAlloc;
pub use metrics::{max_abs_diff, nmse};
pub use paths::{model_dir, shared_dir, shared_path, workspace_root};
