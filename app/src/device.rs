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

/// The delegates to attach to the model in `model_dir` for `device`.
pub fn delegates_for(model_dir: &Path, device: Device) -> anyhow::Result<Vec<Arc<dyn Delegate>>> {
    #[cfg(feature = "gpu")]
    {
        use hark_gpu::{Delegates, DevicePreference};
        match device {
            Device::Cpu => Ok(Vec::new()),
            Device::Gpu => Ok(Delegates::for_model(model_dir, DevicePreference::Any)?),
            Device::Auto => Ok(
                Delegates::for_model(model_dir, DevicePreference::HardwareOnly).unwrap_or_default(),
            ),
        }
    }
    #[cfg(not(feature = "gpu"))]
    {
        let _ = model_dir;
        match device {
            Device::Cpu | Device::Auto => Ok(Vec::new()),
            Device::Gpu => anyhow::bail!(
                "this hark was built without GPU support (cargo feature `gpu`); use --device cpu"
            ),
        }
    }
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
