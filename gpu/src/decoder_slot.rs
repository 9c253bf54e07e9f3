//! The decoder half of an encoder delegate, shared by the Whisper and conformer-AED
//! delegates: optional decoder weights (uploaded by `with_decoder`), and the sessions
//! opened on them ([`crate::whisper_decoder::GpuDecoderSession`]).
//!
//! The two delegates differ only in the weight loader, the model and op names, and
//! whether a session may read the encoder output the delegate left on the device (the
//! Whisper encoder's resident buffers; the conformer encoder keeps none), so those are
//! the slot's parameters.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use hark_engine::delegate::{DecoderSession, SessionRequest};

use crate::context::GpuContext;
use crate::whisper::Buffers;
use crate::whisper_decoder::{DecoderWeights, GpuDecoderSession, SessionShared};
use crate::{GpuError, StageClock};

/// Decoder weights (when loaded) and how sessions on them are opened.
pub(crate) struct DecoderSlot {
    /// The model name decoder-session requests must carry.
    model: &'static str,
    /// The operation named in errors ("whisper decoder session").
    op: &'static str,
    weights: Option<Arc<DecoderWeights>>,
    /// The encoder's resident buffers, handed to every session (Whisper), or None.
    resident: Option<Arc<Mutex<Buffers>>>,
    /// Windows that used the resident encoder output, over all sessions.
    reused: Arc<AtomicUsize>,
}

impl DecoderSlot {
    /// An empty slot for `model`; sessions read `resident` when given.
    pub(crate) fn new(
        model: &'static str,
        op: &'static str,
        resident: Option<Arc<Mutex<Buffers>>>,
    ) -> Self {
        DecoderSlot {
            model,
            op,
            weights: None,
            resident,
            reused: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Uploads the decoder weights of the model in `model_dir` with `load`; returns their
    /// size on the device in bytes.
    pub(crate) fn load(
        &mut self,
        ctx: &GpuContext,
        model_dir: &Path,
        load: fn(&GpuContext, &Path) -> Result<DecoderWeights, GpuError>,
    ) -> Result<u64, GpuError> {
        let w = load(ctx, model_dir)?;
        let bytes = w.weight_bytes();
        self.weights = Some(Arc::new(w));
        Ok(bytes)
    }

    /// How many decoder windows used the resident encoder output.
    pub(crate) fn reused(&self) -> usize {
        self.reused.load(Ordering::Relaxed)
    }

    /// Opens a session of `max_beams` rows and `max_len` positions for the delegate
    /// `name`; fails when no decoder weights were loaded.
    pub(crate) fn open(
        &self,
        ctx: &Arc<GpuContext>,
        name: &str,
        clock: &Arc<StageClock>,
        max_beams: usize,
        max_len: usize,
    ) -> Result<GpuDecoderSession, GpuError> {
        let w = self.weights.clone().ok_or(GpuError::Shape {
            op: self.op,
            reason: "the delegate was loaded without the decoder (with_decoder)".into(),
        })?;
        GpuDecoderSession::new(
            ctx.clone(),
            w,
            self.resident.clone(),
            SessionShared {
                name: name.to_string(),
                clock: clock.clone(),
                reused: self.reused.clone(),
            },
            max_beams,
            max_len,
        )
    }

    /// The body of `Delegate::decoder_session`: a session when the weights are loaded
    /// and accept the request, `None` otherwise; a failure to open one names the
    /// delegate and the op.
    pub(crate) fn session(
        &self,
        ctx: &Arc<GpuContext>,
        name: &str,
        clock: &Arc<StageClock>,
        request: &SessionRequest<'_>,
    ) -> hark_engine::Result<Option<Box<dyn DecoderSession>>> {
        let Some(w) = &self.weights else {
            return Ok(None);
        };
        if request.model != self.model || !w.accepts(request.max_beams, request.max_len) {
            return Ok(None);
        }
        let s = self
            .open(ctx, name, clock, request.max_beams, request.max_len)
            .map_err(|e| hark_engine::Error::Delegate {
                delegate: name.to_string(),
                stage: self.op.into(),
                reason: e.to_string(),
            })?;
        Ok(Some(Box::new(s)))
    }
}
