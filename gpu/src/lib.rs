//! hark-gpu: a GPU delegate for hark on `wgpu` compute shaders (WGSL), portable across
//! Vulkan, Metal and DX12 and testable without a GPU through Mesa's lavapipe.
//!
//! Design:
//! - **Whole stages, not ops.** A delegate implements
//!   [`hark_engine::delegate::Delegate`] for a whole encoder pass (the Whisper encoder,
//!   [`whisper`]; the conformer-AED encoder, [`conformer`]): the stage input is
//!   uploaded once, every layer runs on the device, and only the encoder output comes
//!   back. The Whisper decoder runs as a session across steps
//!   ([`whisper_decoder`]): KV cache, beam table and cross-attention K/V stay on the
//!   device, per step only token ids go up and logits come down. This is what makes a
//!   discrete GPU pay off and matches hark-engine's delegate design.
//! - **Weights uploaded once, in stored precision.** [`kernels::GpuWeight`] keeps f16
//!   (and int8 + per-row scales) on the device; the tiled matmul dequantises in the
//!   shader while staging its weight tile in workgroup memory. Accumulation is f32, as
//!   are LayerNorm/softmax statistics, so results track the CPU path closely.
//! - **Kernels mirror hark-engine's CPU ops** (same formulas, e.g. the same erfc fit
//!   for GELU) and each is tested against them on random inputs.
//! - **No GPU, no problem.** [`probe`] lists adapters (software ones included);
//!   [`GpuContext::new`] returns [`GpuError::NoAdapter`] with what it found, which callers
//!   turn into "use `--device cpu`" or a silent CPU fallback.
//!
//! Nothing in the workspace depends on this crate except `app/` behind its `gpu` feature.

#![deny(missing_docs)]

pub mod conformer;
pub mod conformer_decoder;
pub mod context;
mod decoder_slot;
pub mod kernels;
mod upload;
pub mod whisper;
pub mod whisper_decoder;

use std::path::Path;
use std::sync::{Arc, Mutex};

pub use context::{probe, AdapterInfo, DevicePreference, GpuContext, GpuTensor, Recorder};
pub use hark_engine::delegate::Delegate;

/// Errors of the GPU delegate.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    /// No compute adapter matches the preference.
    #[error(
        "no GPU adapter available ({preference:?}); found: [{}]; install a GPU driver (or Mesa's lavapipe for software Vulkan) or use --device cpu",
        found.join(", ")
    )]
    NoAdapter {
        /// What was asked for.
        preference: DevicePreference,
        /// Adapters that were found but did not qualify.
        found: Vec<String>,
    },
    /// The adapter refused to open a device.
    #[error("opening a device on adapter '{adapter}': {reason}")]
    RequestDevice {
        /// Adapter name.
        adapter: String,
        /// The backend's message.
        reason: String,
    },
    /// The device reported an error (shader validation, out of memory, lost device).
    #[error("GPU {op}: {reason}")]
    Device {
        /// What was being done.
        op: String,
        /// The backend's message.
        reason: String,
    },
    /// A kernel was given buffers or shapes it cannot handle.
    #[error("GPU kernel {op}: {reason}")]
    Shape {
        /// Kernel name.
        op: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A model directory could not be read or has an unsupported configuration.
    #[error("GPU delegate model {path}: {reason}")]
    Model {
        /// The file or directory.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An engine error (loading weights).
    #[error(transparent)]
    Engine(#[from] hark_engine::Error),
}

/// Total time a set of delegates spent in each phase (upload / kernels / download) over
/// all the stages they ran, for `hark bench --device gpu`. Shared by the delegates of one
/// [`Delegates::for_model_timed`] call.
#[derive(Debug, Default)]
pub struct StageClock {
    inner: Mutex<(whisper::StageTimes, usize)>,
    decoder: Mutex<(whisper::StageTimes, usize)>,
}

impl StageClock {
    /// Adds one stage's times.
    pub fn add(&self, t: &whisper::StageTimes) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.0.upload += t.upload;
        g.0.kernels += t.kernels;
        g.0.download += t.download;
        g.1 += 1;
    }

    /// The summed times and the number of stages run so far (encoder passes; decoder
    /// steps are counted apart, [`Self::decoder_total`]).
    pub fn total(&self) -> (whisper::StageTimes, usize) {
        *self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds one decoder step's times (its upload, kernels and logits download).
    pub fn add_decoder(&self, t: &whisper::StageTimes) {
        let mut g = self.decoder.lock().unwrap_or_else(|p| p.into_inner());
        g.0.upload += t.upload;
        g.0.kernels += t.kernels;
        g.0.download += t.download;
        g.1 += 1;
    }

    /// The summed decoder-step times and the number of steps run on the GPU so far.
    pub fn decoder_total(&self) -> (whisper::StageTimes, usize) {
        *self.decoder.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Delegates to hand a model (`set_delegates`).
pub type DelegateList = Vec<Arc<dyn Delegate>>;

/// Builds the GPU delegates for the hark model in `model_dir` (its `config.json`
/// `family` decides which), on a device chosen by `pref`.
pub struct Delegates;

impl Delegates {
    /// Opens a device and loads the delegates for the model in `model_dir`: the Whisper
    /// encoder and decoder sessions (`family` "whisper", one delegate) or the conformer encoder and decoder sessions (`family` "conformer_aed",
    /// `rel_pos` variants; a `legacy_rel_pos` model gets no delegate). Returns an empty
    /// list for models that have no GPU implementation (they run on the CPU). Fails with
    /// [`GpuError::NoAdapter`] when there is no adapter.
    pub fn for_model(
        model_dir: &Path,
        pref: DevicePreference,
    ) -> Result<Vec<Arc<dyn Delegate>>, GpuError> {
        Ok(Self::for_model_timed(model_dir, pref)?.0)
    }

    /// [`Self::for_model`], plus the clock the delegates add their phase times to.
    pub fn for_model_timed(
        model_dir: &Path,
        pref: DevicePreference,
    ) -> Result<(DelegateList, Arc<StageClock>), GpuError> {
        let clock = Arc::new(StageClock::default());
        let family = read_family(model_dir)?;
        let list: Vec<Arc<dyn Delegate>> = match family.as_str() {
            "whisper" => {
                let ctx = GpuContext::new(pref)?;
                let d = whisper::WhisperEncoderDelegate::load(ctx, model_dir)?
                    .with_clock(clock.clone())
                    .with_decoder(model_dir)?;
                vec![Arc::new(d)]
            }
            conformer::MODEL => {
                if conformer::ConformerDims::from_model_dir(model_dir).is_err() {
                    // A variant without a GPU implementation: the CPU runs it.
                    Vec::new()
                } else {
                    let ctx = GpuContext::new(pref)?;
                    vec![Arc::new(
                        conformer::ConformerEncoderDelegate::load_with_clock(
                            ctx,
                            model_dir,
                            clock.clone(),
                        )?
                        .with_decoder(model_dir)?,
                    )]
                }
            }
            _ => Vec::new(),
        };
        Ok((list, clock))
    }
}

/// Reads `family` from `<dir>/config.json`.
pub(crate) fn read_family(dir: &Path) -> Result<String, GpuError> {
    let cfg = read_config(dir)?;
    Ok(cfg
        .get("family")
        .and_then(|f| f.as_str())
        .unwrap_or("whisper")
        .to_string())
}

/// Parses `<dir>/config.json`.
pub(crate) fn read_config(dir: &Path) -> Result<serde_json::Value, GpuError> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| GpuError::Model {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    serde_json::from_str(&text).map_err(|e| GpuError::Model {
        path,
        reason: format!("invalid JSON: {e}"),
    })
}

/// The body of an encoder delegate's `Delegate::run`: checks that there is exactly one
/// output buffer, runs `encode`, and copies its result into the buffer if the sizes
/// agree. Every failure names the delegate and the stage.
pub(crate) fn run_encoder_stage(
    delegate: &str,
    stage: &str,
    outputs: &mut [&mut [f32]],
    encode: impl FnOnce() -> Result<Vec<f32>, GpuError>,
) -> hark_engine::Result<()> {
    let err = |reason: String| hark_engine::Error::Delegate {
        delegate: delegate.to_string(),
        stage: stage.to_string(),
        reason,
    };
    let [out] = outputs else {
        return Err(err(format!(
            "expected 1 output buffer, got {}",
            outputs.len()
        )));
    };
    let y = encode().map_err(|e| err(e.to_string()))?;
    if out.len() != y.len() {
        return Err(err(format!(
            "output buffer has {} values, the encoder produces {}",
            out.len(),
            y.len()
        )));
    }
    out.copy_from_slice(&y);
    Ok(())
}
