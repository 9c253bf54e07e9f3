//! Delegates: offering whole stages to an accelerator.
//!
//! A stage ("encoder", "decoder step") is offered to each registered [`Delegate`] in
//! turn; the first that accepts runs it, otherwise the CPU implementation runs. Stages,
//! not single ops, are the unit so that data stays on the device for a whole stage
//! (the design of tract's runtimes and whisper.cpp's backends). Which delegates are
//! compiled in is decided by `app/`.
//!
//! A decoder step is not stateless: its self-attention KV cache and the window's
//! cross-attention K/V must stay on the device across steps, so a delegate takes the
//! decoder as a [`DecoderSession`] it opens once per transcription
//! ([`Delegate::decoder_session`], found with [`open_decoder_session`]). The model keeps
//! its own CPU state and hands the session only what changes per call: the encoder
//! output once per window ([`DecoderSession::begin`]), the new token ids per step
//! ([`DecoderSession::step`]), the beam parents after a search step
//! ([`DecoderSession::reorder`]), and reads back logits of the rows it asks for
//! ([`DecoderSession::logits`]). A delegate that does not implement sessions declines
//! (the default), and the CPU decoder runs.

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

    /// Opens a decoder session for `request` (its caches allocated on the device now),
    /// or declines with `Ok(None)` (the default: the CPU decoder runs). Called once per
    /// transcription, not per step.
    fn decoder_session(
        &self,
        request: &SessionRequest<'_>,
    ) -> Result<Option<Box<dyn DecoderSession>>> {
        let _ = request;
        Ok(None)
    }
}

/// What a decoder session must hold: the model and the cache capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionRequest<'a> {
    /// Model family ("whisper"), as in [`Stage::model`].
    pub model: &'a str,
    /// Most rows (beams or sampled hypotheses) one step may carry.
    pub max_beams: usize,
    /// Most cached positions (the text context, e.g. Whisper's 448).
    pub max_len: usize,
}

/// How the rows of one decoder step map onto cached sequences (the same contract as
/// the CPU decoders' row layouts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepRows<'a> {
    /// The tokens are consecutive positions of one sequence shared by every beam (a
    /// prompt, or the first step before the beams diverge): cached once for all beams.
    Shared,
    /// One token per listed beam slot, all at the next position; slots not listed get
    /// placeholder rows that are never read.
    Beams(&'a [usize]),
}

/// A decoder running on a delegate across steps: it owns the self-attention KV cache
/// (`[layers][max_len · beams][d]`, rows written in place) and the window's
/// cross-attention K/V on its device. Calls follow the CPU decoder's:
/// `begin` once per window, then `step` / `logits` per decoding step, `reorder` after
/// a beam-search step. Errors name the delegate and the call.
pub trait DecoderSession: Send {
    /// Delegate name (for [`Executor::Delegate`]).
    fn name(&self) -> &str;

    /// Starts a window: computes the cross-attention K/V of every layer from the encoder
    /// output `memory` `[frames, d]` (a delegate may recognise an output its own encoder
    /// left on the device and skip the upload) and clears the self-attention cache.
    fn begin(&mut self, memory: &[f32], frames: usize) -> Result<()>;

    /// Runs all decoder layers on `tokens` at the next cached positions (after applying a
    /// pending [`DecoderSession::reorder`]); the final hidden states stay on the device.
    fn step(&mut self, tokens: &[u32], rows: StepRows<'_>) -> Result<()>;

    /// Writes the vocabulary logits `[rows, vocab]` of the last step's rows
    /// `first..first + rows` into `out`.
    fn logits(&mut self, first: usize, rows: usize, out: &mut [f32]) -> Result<()>;

    /// After a search step, beam slot `i` continues the history of slot `parents[i]`
    /// (one entry per slot). Applied on the device by index at the next step; the cache
    /// rows are never copied or read back.
    fn reorder(&mut self, parents: &[usize]) -> Result<()>;

    /// Forgets the cached positions (the window's cross-attention K/V stay).
    fn reset(&mut self);

    /// Number of cached positions.
    fn len(&self) -> usize;

    /// Whether nothing is cached.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Opens a decoder session on the first delegate that offers one for `request`;
/// `Ok(None)` when every delegate declines (the CPU decoder runs).
pub fn open_decoder_session(
    delegates: &[&dyn Delegate],
    request: &SessionRequest<'_>,
) -> Result<Option<Box<dyn DecoderSession>>> {
    for d in delegates {
        if let Some(s) = d.decoder_session(request)? {
            return Ok(Some(s));
        }
    }
    Ok(None)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A delegate that takes no stage and, when `offers`, opens sessions that count
    /// positions.
    struct Mock {
        name: &'static str,
        offers: bool,
    }

    struct Counting {
        name: &'static str,
        len: usize,
    }

    impl DecoderSession for Counting {
        fn name(&self) -> &str {
            self.name
        }
        fn begin(&mut self, _memory: &[f32], _frames: usize) -> Result<()> {
            self.len = 0;
            Ok(())
        }
        fn step(&mut self, tokens: &[u32], rows: StepRows<'_>) -> Result<()> {
            self.len += match rows {
                StepRows::Shared => tokens.len(),
                StepRows::Beams(_) => 1,
            };
            Ok(())
        }
        fn logits(&mut self, _first: usize, _rows: usize, out: &mut [f32]) -> Result<()> {
            out.fill(0.0);
            Ok(())
        }
        fn reorder(&mut self, _parents: &[usize]) -> Result<()> {
            Ok(())
        }
        fn reset(&mut self) {
            self.len = 0;
        }
        fn len(&self) -> usize {
            self.len
        }
    }

    impl Delegate for Mock {
        fn name(&self) -> &str {
            self.name
        }
        fn accepts(&self, _stage: &Stage<'_>) -> bool {
            false
        }
        fn run(&self, _stage: &Stage<'_>, _outputs: &mut [&mut [f32]]) -> Result<()> {
            Ok(())
        }
        fn decoder_session(
            &self,
            request: &SessionRequest<'_>,
        ) -> Result<Option<Box<dyn DecoderSession>>> {
            Ok((self.offers && request.model == "whisper").then(|| {
                Box::new(Counting {
                    name: self.name,
                    len: 0,
                }) as Box<dyn DecoderSession>
            }))
        }
    }

    #[test]
    fn decoder_session_comes_from_the_first_delegate_that_offers_one() {
        let request = SessionRequest {
            model: "whisper",
            max_beams: 5,
            max_len: 448,
        };
        let declines = Mock {
            name: "a",
            offers: false,
        };
        let offers = Mock {
            name: "b",
            offers: true,
        };
        let also = Mock {
            name: "c",
            offers: true,
        };
        assert!(open_decoder_session(&[], &request).unwrap().is_none());
        assert!(open_decoder_session(&[&declines], &request)
            .unwrap()
            .is_none());
        let mut s = open_decoder_session(&[&declines, &offers, &also], &request)
            .unwrap()
            .expect("a session");
        assert_eq!(s.name(), "b");
        s.begin(&[0.0; 4], 1).unwrap();
        s.step(&[1, 2, 3], StepRows::Shared).unwrap();
        s.step(&[4, 5], StepRows::Beams(&[0, 1])).unwrap();
        assert_eq!(s.len(), 4);
        s.reset();
        assert!(s.is_empty());
        let other = SessionRequest {
            model: "conformer_aed",
            ..request
        };
        assert!(open_decoder_session(&[&offers], &other).unwrap().is_none());
    }
}
