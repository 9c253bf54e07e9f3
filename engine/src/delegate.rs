//! Delegates: offering whole stages to an accelerator.
//!
//! A stage ("encoder", "decoder step") is offered to each registered [`Delegate`] in
//! turn; the first that accepts runs it, otherwise the CPU implementation runs. Stages,
//! not single ops, are the unit so that data stays on the device for a whole stage
//! (the design of tract's runtimes and whisper.cpp's backends). Only the trait and the
//! CPU fallback exist today; which delegates are compiled in is decided by `app/`.

use crate::error::Result;

/// Which stage is being offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StageKind {
    /// A whole encoder forward pass.
    Encoder,
    /// One decoder step (all layers, one or more new tokens).
    DecoderStep,
    /// Another named stage.
    Other(&'static str),
}

/// A stage offered to delegates: its kind, the model it belongs to and its buffers.
#[derive(Debug)]
pub struct Stage<'a> {
    /// Stage kind.
    pub kind: StageKind,
    /// Model family/name, so a delegate can look up its compiled graph.
    pub model: &'a str,
    /// Named f32 inputs with their shapes.
    pub inputs: &'a [(&'a str, &'a [usize], &'a [f32])],
}

/// Where a stage ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Executor {
    /// The CPU path of the engine.
    Cpu,
    /// A delegate, by name.
    Delegate(String),
}

/// An accelerator that may take whole stages.
pub trait Delegate: Send + Sync {
    /// Name for logs and [`Executor::Delegate`].
    fn name(&self) -> &str;

    /// Whether this delegate takes `stage` (shapes, model, kind). Must be cheap.
    fn accepts(&self, stage: &Stage<'_>) -> bool;

    /// Runs an accepted stage, writing the named outputs (same order as the CPU path).
    fn run(&self, stage: &Stage<'_>, outputs: &mut [&mut [f32]]) -> Result<()>;
}

/// Runs `stage` on the first delegate that accepts it, else with `cpu`.
/// Returns where it ran.
pub fn run_stage(
    delegates: &[&dyn Delegate],
    stage: &Stage<'_>,
    outputs: &mut [&mut [f32]],
    cpu: impl FnOnce(&Stage<'_>, &mut [&mut [f32]]) -> Result<()>,
) -> Result<Executor> {
    for d in delegates {
        if d.accepts(stage) {
            d.run(stage, outputs)?;
            return Ok(Executor::Delegate(d.name().to_string()));
        }
    }
    cpu(stage, outputs)?;
    Ok(Executor::Cpu)
}
