//! Sample-rate conversion with rubato's asynchronous sinc resampler.
//!
//! One type, [`StreamResampler`], serves both files and live input: samples are
//! pushed in arbitrary pieces, buffered up to rubato's `input_frames_next()`, and
//! processed with `process_into_buffer` into pre-allocated buffers (no allocation
//! per chunk once warmed up). [`StreamResampler::finish`] flushes the delayed tail
//! (`output_delay()` frames of latency) with zeros, so the output is time-aligned
//! with the input and has exactly `ceil(n_in * to / from)` samples.
//! [`resample`] (whole signals) is `push` + `finish`, so offline and streaming
//! output are identical by construction.
//!
//! Follows rubato's `examples/process_f64.rs` (input_frames_next / output_delay /
//! process_into_buffer). Filter: 256-tap sinc, Blackman-Harris² window, cutoff from
//! `calculate_cutoff`, 256x oversampling with cubic interpolation: passband flat to
//! ~0.9 of the lower Nyquist, stopband well below -100 dB. Two corrections make the
//! output exactly time-aligned (see `AlignedInterpolator` and `alignment`).

use rubato::sinc_interpolator::{
    sinc_interpolator_avx::AvxInterpolator, sinc_interpolator_sse::SseInterpolator,
    ScalarInterpolator, SincInterpolator,
};
use rubato::{calculate_cutoff, Resampler, SincFixedIn, SincInterpolationType, WindowFunction};

use crate::error::AudioError;

/// Input frames rubato processes per call.
const CHUNK: usize = 1024;
const SINC_LEN: usize = 512;
const OVERSAMPLING: usize = 256;

/// Resamples a whole mono signal from `from_hz` to `to_hz`.
pub fn resample(input: &[f32], from_hz: u32, to_hz: u32) -> Result<Vec<f32>, AudioError> {
    let mut r = StreamResampler::new(from_hz, to_hz)?;
    let mut out = Vec::with_capacity(r.expected_len(input.len() as u64) as usize + 16);
    r.push(input, &mut out)?;
    r.finish(&mut out)?;
    Ok(out)
}

/// rubato's sinc interpolator (AVX, SSE or scalar, as rubato itself picks) with
/// its sub-sample table index corrected.
///
/// rubato 0.16 builds its oversampled table so that entry `j` interpolates at the
/// fraction `(j + 1) / F` of an input sample, while its resamplers ask for entry
/// `floor(frac * F)` meaning `j / F`: every output is read `1 / F` input samples
/// late (measured: a constant 1/F-sample advance at every ratio). That phase error
/// limits the passband SNR to ~45 dB at 8 kHz; asking the table for entry `j - 1`
/// (entry `F - 1` of the previous input sample for `j = 0`) removes it.
struct AlignedInterpolator {
    inner: Box<dyn SincInterpolator<f32>>,
}

impl AlignedInterpolator {
    fn new(ratio: f64) -> Self {
        let window = WindowFunction::BlackmanHarris2;
        let mut f_cutoff = calculate_cutoff::<f32>(SINC_LEN, window);
        if ratio < 1.0 {
            f_cutoff *= ratio as f32;
        }
        let inner: Box<dyn SincInterpolator<f32>> = if let Ok(i) =
            AvxInterpolator::<f32>::new(SINC_LEN, OVERSAMPLING, f_cutoff, window)
        {
            Box::new(i)
        } else if let Ok(i) = SseInterpolator::<f32>::new(SINC_LEN, OVERSAMPLING, f_cutoff, window)
        {
            Box::new(i)
        } else {
            Box::new(ScalarInterpolator::<f32>::new(
                SINC_LEN,
                OVERSAMPLING,
                f_cutoff,
                window,
            ))
        };
        Self { inner }
    }
}

impl SincInterpolator<f32> for AlignedInterpolator {
    fn get_sinc_interpolated(&self, wave: &[f32], index: usize, subindex: usize) -> f32 {
        match (subindex, index) {
            (0, 0) => self.inner.get_sinc_interpolated(wave, index, subindex),
            (0, _) => self
                .inner
                .get_sinc_interpolated(wave, index - 1, OVERSAMPLING - 1),
            _ => self.inner.get_sinc_interpolated(wave, index, subindex - 1),
        }
    }

    fn len(&self) -> usize {
        self.inner.len()
    }

    fn nbr_sincs(&self) -> usize {
        self.inner.nbr_sincs()
    }
}

/// Output frames to drop and leading zeros to feed so that output sample `m`
/// is the input signal at time `m * from / to` exactly.
///
/// Measured on rubato 0.16's `SincFixedIn` (cubic, 256 taps): its output sample
/// `k` is the input at time `(k + 1) r - 1` input samples, `r = from / to`
/// (e.g. 2 input samples early at 48 -> 16 kHz, half a sample late at 8 -> 16 kHz).
/// With `r = N / D` in lowest terms, feeding `N - 1` zeros first and dropping the
/// first `D - 1` outputs gives `x(m r)`. The test
/// `resampler_has_zero_delay_at_common_rates` checks the phase of a sine.
fn alignment(from_hz: u32, to_hz: u32) -> (usize, usize) {
    if from_hz == to_hz {
        return (0, 0);
    }
    let g = gcd(from_hz, to_hz);
    ((to_hz / g) as usize - 1, (from_hz / g) as usize - 1)
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
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
    /// Leading output frames still to drop (see [`alignment`]).
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
            let ratio = to_hz as f64 / from_hz as f64;
            Some(
                SincFixedIn::<f32>::new_with_interpolator(
                    ratio,
                    1.0,
                    SincInterpolationType::Cubic,
                    Box::new(AlignedInterpolator::new(ratio)),
                    CHUNK,
                    1,
                )
                .map_err(|e| err(e.to_string()))?,
            )
        };
        let out_buf = match &inner {
            Some(r) => vec![vec![0.0; r.output_frames_max()]],
            None => vec![Vec::new()],
        };
        let (skip, lead) = alignment(from_hz, to_hz);
        Ok(Self {
            from_hz,
            to_hz,
            inner,
            pending: vec![0.0; lead],
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
        loop {
            let n = r.input_frames_next();
            if self.pending.len() < n {
                if input.is_empty() {
                    break;
                }
                let take = (n - self.pending.len()).min(input.len());
                self.pending.extend_from_slice(&input[..take]);
                input = &input[take..];
                continue;
            }
            let (_, produced) = r
                .process_into_buffer(&[&self.pending[..n]], &mut self.out_buf, None)
                .map_err(|e| AudioError::Resample {
                    from_hz: self.from_hz,
                    to_hz: self.to_hz,
                    reason: e.to_string(),
                })?;
            self.pending.drain(..n);
            Self::emit(
                &self.out_buf[0][..produced],
                &mut self.skip,
                &mut self.emitted,
                out,
            );
        }
        Ok(())
    }

    #[inline]
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
                if self.pending.len() < n {
                    self.pending.resize(n, 0.0);
                }
                let (_, produced) = r
                    .process_into_buffer(&[&self.pending[..n]], &mut self.out_buf, None)
                    .map_err(|e| AudioError::Resample {
                        from_hz: self.from_hz,
                        to_hz: self.to_hz,
                        reason: e.to_string(),
                    })?;
                self.pending.drain(..n);
                let remaining = (target - self.emitted) as usize;
                let produced = &self.out_buf[0][..produced];
                let drop = self.skip.min(produced.len());
                self.skip -= drop;
                let usable = &produced[drop..];
                let n_take = usable.len().min(remaining);
                out.extend_from_slice(&usable[..n_take]);
                self.emitted += n_take as u64;
                guard += 1;
                if guard > 100_000 {
                    return Err(AudioError::Resample {
                        from_hz: self.from_hz,
                        to_hz: self.to_hz,
                        reason: "resampler did not drain".into(),
                    });
                }
            }
            r.reset();
        }
        let (skip, lead) = alignment(self.from_hz, self.to_hz);
        self.skip = skip;
        self.pending.clear();
        self.pending.resize(lead, 0.0);
        self.consumed = 0;
        self.emitted = 0;
        Ok(())
    }
}
