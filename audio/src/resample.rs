//! Sample-rate conversion with rubato's asynchronous sinc resampler.
//!
//! One type, [`StreamResampler`], serves both files and live input: samples are
//! pushed in arbitrary pieces, buffered up to rubato's `input_frames_next()`, and
//! processed with `process_into_buffer` into pre-allocated buffers (no allocation
//! per chunk once warmed up). The resampler's `output_delay()` leading frames are
//! dropped and [`StreamResampler::finish`] flushes the tail, so the output is
//! time-aligned with the input and has exactly `ceil(n_in * to / from)` samples.
//! [`resample`] (whole signals) is `push` + `finish`, so offline and streaming
//! output are identical by construction.
//!
//! Follows rubato's `examples/process_f64.rs` (input_frames_next / output_delay /
//! process_into_buffer). Filter: 256-tap sinc, Blackman-Harris² window, cutoff from
//! `calculate_cutoff`, 256x oversampling with cubic interpolation: passband flat to
//! ~0.9 of the lower Nyquist, stopband well below -100 dB.

use rubato::{
    calculate_cutoff, Resampler, SincFixedIn, SincInterpolationParameters, SincInterpolationType,
    WindowFunction,
};

use crate::error::AudioError;

/// Input frames rubato processes per call.
const CHUNK: usize = 1024;
const SINC_LEN: usize = 256;

/// Resamples a whole mono signal from `from_hz` to `to_hz`.
pub fn resample(input: &[f32], from_hz: u32, to_hz: u32) -> Result<Vec<f32>, AudioError> {
    let mut r = StreamResampler::new(from_hz, to_hz)?;
    let mut out = Vec::with_capacity(r.expected_len(input.len() as u64) as usize + 16);
    r.push(input, &mut out)?;
    r.finish(&mut out)?;
    Ok(out)
}

/// A chunk-by-chunk mono resampler (see the module docs).
pub struct StreamResampler {
    from_hz: u32,
    to_hz: u32,
    /// `None` when `from_hz == to_hz` (pass-through).
    inner: Option<SincFixedIn<f32>>,
    /// Pending input, less than one rubato chunk.
    pending: Vec<f32>,
    /// rubato's output buffer (one channel).
    out_buf: Vec<Vec<f32>>,
    /// Leading output frames still to drop (the filter delay).
    skip: usize,
    /// Input frames pushed so far.
    consumed: u64,
    /// Output frames emitted so far.
    emitted: u64,
}

impl std::fmt::Debug for StreamResampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamResampler")
            .field("from_hz", &self.from_hz)
            .field("to_hz", &self.to_hz)
            .field("consumed", &self.consumed)
            .field("emitted", &self.emitted)
            .finish()
    }
}

impl StreamResampler {
    /// Creates a resampler from `from_hz` to `to_hz` (both > 0).
    pub fn new(from_hz: u32, to_hz: u32) -> Result<Self, AudioError> {
        let err = |reason: String| AudioError::Resample {
            from_hz,
            to_hz,
            reason,
        };
        if from_hz == 0 || to_hz == 0 {
            return Err(err("sample rates must be positive".into()));
        }
        let inner = if from_hz == to_hz {
            None
        } else {
            let window = WindowFunction::BlackmanHarris2;
            let params = SincInterpolationParameters {
                sinc_len: SINC_LEN,
                f_cutoff: calculate_cutoff(SINC_LEN, window),
                interpolation: SincInterpolationType::Cubic,
                oversampling_factor: 256,
                window,
            };
            let ratio = to_hz as f64 / from_hz as f64;
            Some(
                SincFixedIn::<f32>::new(ratio, 1.0, params, CHUNK, 1)
                    .map_err(|e| err(e.to_string()))?,
            )
        };
        let (out_buf, skip) = match &inner {
            Some(r) => (vec![vec![0.0; r.output_frames_max()]], r.output_delay()),
            None => (vec![Vec::new()], 0),
        };
        Ok(Self {
            from_hz,
            to_hz,
            inner,
            pending: Vec::with_capacity(CHUNK),
            out_buf,
            skip,
            consumed: 0,
            emitted: 0,
        })
    }

    /// Input rate in Hz.
    pub fn from_hz(&self) -> u32 {
        self.from_hz
    }

    /// Output rate in Hz.
    pub fn to_hz(&self) -> u32 {
        self.to_hz
    }

    /// Output length for `n_in` input samples: `ceil(n_in * to / from)`.
    pub fn expected_len(&self, n_in: u64) -> u64 {
        (n_in * self.to_hz as u64).div_ceil(self.from_hz as u64)
    }

    /// Pushes input samples; appends whatever output is ready to `out`.
    pub fn push(&mut self, mut input: &[f32], out: &mut Vec<f32>) -> Result<(), AudioError> {
        self.consumed += input.len() as u64;
        let Some(r) = self.inner.as_mut() else {
            out.extend_from_slice(input);
            self.emitted += input.len() as u64;
            return Ok(());
        };
        while !input.is_empty() {
            let need = r.input_frames_next() - self.pending.len();
            let take = need.min(input.len());
            self.pending.extend_from_slice(&input[..take]);
            input = &input[take..];
            if self.pending.len() == r.input_frames_next() {
                let (_, produced) = r
                    .process_into_buffer(&[&self.pending[..]], &mut self.out_buf, None)
                    .map_err(|e| AudioError::Resample {
                        from_hz: self.from_hz,
                        to_hz: self.to_hz,
                        reason: e.to_string(),
                    })?;
                self.pending.clear();
                Self::emit(
                    &self.out_buf[0][..produced],
                    &mut self.skip,
                    &mut self.emitted,
                    out,
                );
            }
        }
        Ok(())
    }

    fn emit(produced: &[f32], skip: &mut usize, emitted: &mut u64, out: &mut Vec<f32>) {
        let drop = (*skip).min(produced.len());
        *skip -= drop;
        out.extend_from_slice(&produced[drop..]);
        *emitted += (produced.len() - drop) as u64;
    }

    /// Flushes the tail: after this, exactly `expected_len(total input)` samples
    /// have been emitted. The resampler can be reused afterwards for a new stream.
    pub fn finish(&mut self, out: &mut Vec<f32>) -> Result<(), AudioError> {
        let target = self.expected_len(self.consumed);
        if let Some(r) = self.inner.as_mut() {
            // Zero-pad the pending chunk and keep feeding zeros until the delayed
            // tail has come out.
            let mut guard = 0;
            while self.emitted < target {
                let n = r.input_frames_next();
                self.pending.resize(n, 0.0);
                let (_, produced) = r
                    .process_into_buffer(&[&self.pending[..]], &mut self.out_buf, None)
                    .map_err(|e| AudioError::Resample {
                        from_hz: self.from_hz,
                        to_hz: self.to_hz,
                        reason: e.to_string(),
                    })?;
                self.pending.clear();
                let remaining = (target - self.emitted) as usize;
                let produced = &self.out_buf[0][..produced];
                let drop = self.skip.min(produced.len());
                self.skip -= drop;
                let usable = &produced[drop..];
                let n_take = usable.len().min(remaining);
                out.extend_from_slice(&usable[..n_take]);
                self.emitted += n_take as u64;
                guard += 1;
                if guard > 1000 {
                    return Err(AudioError::Resample {
                        from_hz: self.from_hz,
                        to_hz: self.to_hz,
                        reason: "resampler did not drain".into(),
                    });
                }
            }
            r.reset();
            self.skip = r.output_delay();
        }
        self.pending.clear();
        self.consumed = 0;
        self.emitted = 0;
        Ok(())
    }
}
