//! `--device auto|cpu|gpu`: which compute device runs the model's heavy stages.
//!
//! The GPU delegate (crate `hark-gpu`, cargo feature `gpu`, on in default builds) takes
//! whole stages (the Whisper encoder and the conformer-AED encoder); everything else, and
//! every stage it declines, runs on the CPU. `auto` uses a hardware GPU when there is one and silently stays on the
//! CPU otherwise (a software Vulkan device such as lavapipe is slower than hark's CPU
//! path, so `auto` skips it); `gpu` insists, and fails with a message suggesting
//! `--device cpu` when no adapter exists; `cpu` never probes.

use std::path::Path;
use std::sync::Arc;

use hark_engine::delegate::Delegate;

/// Where the heavy stages run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Device {
    /// A hardware GPU if present, else the CPU.
    #[default]
    Auto,
    /// The CPU only.
    Cpu,
    /// A GPU (hardware or software Vulkan/Metal/DX12 device); an error if there is none.
    Gpu,
}

/// Time the GPU delegates spent in each phase, summed over the stages they ran.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PhaseTimes {
    /// Copying stage inputs to the device, seconds.
    pub upload_s: f64,
    /// Recording, submitting and running the kernels, seconds.
    pub kernels_s: f64,
    /// Reading stage outputs back, seconds.
    pub download_s: f64,
    /// Stages run on the GPU.
    pub stages: usize,
}

/// Reads the [`PhaseTimes`] of the delegates built by [`delegates_timed`].
#[derive(Debug, Default)]
pub struct PhaseClock {
    #[cfg(feature = "gpu")]
    clock: Option<Arc<hark_gpu::StageClock>>,
}

impl PhaseClock {
    /// The encoder stages' phase times so far; `None` when no GPU delegate was built.
    pub fn read(&self) -> Option<PhaseTimes> {
        #[cfg(feature = "gpu")]
        if let Some(c) = &self.clock {
            return Some(PhaseTimes::from_stage_times(c.total()));
        }
        None
    }

    /// The GPU decoder's phase times so far (`stages` = decoder steps); `None` when no
    /// GPU delegate was built.
    pub fn read_decoder(&self) -> Option<PhaseTimes> {
        #[cfg(feature = "gpu")]
        if let Some(c) = &self.clock {
            return Some(PhaseTimes::from_stage_times(c.decoder_total()));
        }
        None
    }
}

#[cfg(feature = "gpu")]
impl PhaseTimes {
    fn from_stage_times((t, stages): (hark_gpu::whisper::StageTimes, usize)) -> Self {
        PhaseTimes {
            upload_s: t.upload.as_secs_f64(),
            kernels_s: t.kernels.as_secs_f64(),
            download_s: t.download.as_secs_f64(),
            stages,
        }
    }
}

/// The delegates to attach to the model in `model_dir` for `device`.
pub fn delegates_for(model_dir: &Path, device: Device) -> anyhow::Result<Vec<Arc<dyn Delegate>>> {
    Ok(delegates_timed(model_dir, device)?.0)
}

/// [`delegates_for`], plus a clock of the time the delegates spend per phase
/// (`hark bench`).
pub fn delegates_timed(
    model_dir: &Path,
    device: Device,
) -> anyhow::Result<(Vec<Arc<dyn Delegate>>, PhaseClock)> {
    #[cfg(feature = "gpu")]
    {
        use hark_gpu::{Delegates, DevicePreference};
        let built = match device {
            Device::Cpu => None,
            Device::Gpu => Some(Delegates::for_model_timed(
                model_dir,
                DevicePreference::Any,
            )?),
            Device::Auto if !may_have_hardware_gpu() => None,
            Device::Auto => {
                Delegates::for_model_timed(model_dir, DevicePreference::HardwareOnly).ok()
            }
        };
        Ok(match built {
            Some((list, clock)) => (list, PhaseClock { clock: Some(clock) }),
            None => (Vec::new(), PhaseClock::default()),
        })
    }
    #[cfg(not(feature = "gpu"))]
    {
        let _ = model_dir;
        match device {
            Device::Cpu | Device::Auto => Ok((Vec::new(), PhaseClock::default())),
            Device::Gpu => anyhow::bail!(
                "this hark was built without GPU support (cargo feature `gpu`); use --device cpu"
            ),
        }
    }
}

/// Whether probing for a hardware GPU can find one. Probing loads the system's Vulkan
/// drivers, and on a machine whose only device is Mesa's software rasteriser that costs
/// ~50 MB of resident memory and ~0.25 s per run for nothing. On Linux a hardware GPU
/// needs a DRM render node (`/dev/dri/renderD*`) or NVIDIA's device files, so `--device
/// auto` skips the probe when neither exists; elsewhere it always probes.
#[cfg(feature = "gpu")]
fn may_have_hardware_gpu() -> bool {
    if !cfg!(target_os = "linux") {
        return true;
    }
    let render_node = std::fs::read_dir("/dev/dri")
        .map(|dir| {
            dir.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("renderD"))
        })
        .unwrap_or(false);
    render_node || Path::new("/dev/nvidia0").exists() || Path::new("/dev/dxg").exists()
}

/// One line per compute device hark can use, for `hark devices`.
pub fn compute_devices() -> Vec<String> {
    let mut out = vec![format!(
        "cpu: {} threads, kernels {}",
        hark_engine::threads::default_threads(),
        hark_engine::kernels::kernels().isa.name()
    )];
    #[cfg(feature = "gpu")]
    for a in hark_gpu::probe() {
        out.push(format!(
            "gpu: {} ({}, {}{}{})",
            a.name,
            a.backend,
            a.device_type,
            if a.is_software {
                ", software: used only with --device gpu"
            } else {
                ""
            },
            if a.driver.is_empty() {
                String::new()
            } else {
                format!(", driver {}", a.driver)
            }
        ));
    }
    #[cfg(not(feature = "gpu"))]
    out.push("gpu: not compiled in (cargo feature `gpu`)".into());
    out
}
