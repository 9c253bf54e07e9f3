//! Whisper log-mel spectrogram, bit-for-bit in spirit with faster-whisper's NumPy
//! `FeatureExtractor` (faster_whisper/feature_extractor.py) and the mel filters of
//! openai-whisper (whisper/audio.py, librosa's Slaney mel).
//!
//! # What faster-whisper does (and what we mirror)
//!
//! `FeatureExtractor.__call__(waveform, padding=160)`:
//! 1. appends `padding` zeros (160 by default; openai-whisper instead appends 30 s
//!    = 480 000 zeros, see below);
//! 2. STFT with `center=True`: the signal is reflect-padded by `n_fft/2 = 200`
//!    samples on both sides (NumPy `mode="reflect"`, edge sample not repeated),
//!    frames of 400 samples every 160, periodic Hann window
//!    (`np.hanning(401)[:-1]`), one-sided FFT;
//! 3. drops the last STFT frame (`stft[..., :-1]`), so a signal of `L` samples
//!    gives `(L + padding) / 160` frames;
//! 4. power spectrum -> Slaney mel filter bank (80 or 128 bins, any count works)
//!    -> `log10(max(x, 1e-10))`;
//! 5. clamps to `max - 8` where `max` is taken over the WHOLE spectrogram (all
//!    frames, all bins), then `(x + 4) / 4`.
//!
//! faster-whisper computes this once for the whole file, then for each 30 s
//! window takes `features[:, seek : seek + size]` with
//! `size = min(3000, content_frames - seek)` where `content_frames = n_frames - 1`,
//! and pads that slice to 3000 frames with **zeros** in the feature domain
//! (`pad_or_trim`). [`LogMel::segment`] does exactly that.
//!
//! openai-whisper differs: `log_mel_spectrogram(audio, padding=480000)` appends
//! 30 s of zero samples before the STFT (the padded frames are log-mel of silence,
//! clamped to `max - 8`), then slices `mel[:, seek:seek+3000]`. Use
//! `log_mel_spectrogram(x, n, N_SAMPLES)` plus [`LogMel::pad_or_trim`] for that.
//!
//! # Speed
//! Window and mel filters (as sparse `[start, end)` ranges) are precomputed in
//! [`WhisperMel`]; the real FFT is planned once; per-call scratch is allocated once
//! per call, never per frame.

use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};

use crate::error::{check_finite, AudioError};

/// Whisper's sample rate.
pub const SAMPLE_RATE: u32 = 16_000;
/// FFT size (`N_FFT` in whisper/audio.py).
pub const N_FFT: usize = 400;
/// Hop between frames (`HOP_LENGTH`).
pub const HOP_LENGTH: usize = 160;
/// Samples in a 30 s window (`N_SAMPLES`).
pub const N_SAMPLES: usize = 480_000;
/// Frames in a 30 s window (`N_FRAMES`, `nb_max_frames` in faster-whisper).
pub const N_FRAMES: usize = 3000;
/// faster-whisper's default `padding` argument of `FeatureExtractor.__call__`.
pub const FASTER_WHISPER_PADDING: usize = 160;

/// A log-mel spectrogram in Whisper's layout: `[n_mels, n_frames]`, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct LogMel {
    /// `data[m * n_frames + t]` is mel bin `m` of frame `t`.
    pub data: Vec<f32>,
    /// Number of mel bins (80 or 128 for Whisper models).
    pub n_mels: usize,
    /// Number of frames.
    pub n_frames: usize,
}

impl LogMel {
    /// Value of mel bin `mel` at frame `frame`.
    pub fn get(&self, mel: usize, frame: usize) -> f32 {
        self.data[mel * self.n_frames + frame]
    }

    /// faster-whisper's `content_frames = features.shape[-1] - 1` (the number of
    /// frames that correspond to real audio, used to step the 30 s windows).
    pub fn content_frames(&self) -> usize {
        self.n_frames.saturating_sub(1)
    }

    /// Frames `[start, start + len)` (clipped to the spectrogram), then padded
    /// with zeros or trimmed to `length` frames, as `pad_or_trim(features[:, a:b])`.
    pub fn slice_padded(&self, start: usize, len: usize, length: usize) -> LogMel {
        let start = start.min(self.n_frames);
        let end = (start + len).min(self.n_frames);
        let take = (end - start).min(length);
        let mut data = vec![0.0f32; self.n_mels * length];
        for m in 0..self.n_mels {
            let src = &self.data[m * self.n_frames + start..m * self.n_frames + start + take];
            data[m * length..m * length + take].copy_from_slice(src);
        }
        LogMel {
            data,
            n_mels: self.n_mels,
            n_frames: length,
        }
    }

    /// The encoder input of faster-whisper's window at `seek`: frames
    /// `[seek, seek + min(3000, content_frames - seek))`, zero-padded to 3000.
    pub fn segment(&self, seek: usize) -> LogMel {
        let size = N_FRAMES.min(self.content_frames().saturating_sub(seek));
        self.slice_padded(seek, size, N_FRAMES)
    }

    /// Whisper's `pad_or_trim` along the frame axis: keep the first `length`
    /// frames, or append zero frames up to `length`.
    pub fn pad_or_trim(&self, length: usize) -> LogMel {
        self.slice_padded(0, self.n_frames, length)
    }
}

/// A sparse filter: weights for FFT bins `start .. start + weights.len()`.
#[derive(Debug, Clone)]
pub(crate) struct SparseFilter {
    pub(crate) start: usize,
    pub(crate) weights: Vec<f32>,
}

/// Slaney-style mel filter bank of librosa / openai-whisper
/// (`librosa.filters.mel(sr, n_fft, n_mels, htk=False, norm="slaney")`, as
/// rewritten in faster-whisper's `get_mel_filters`), computed in f64 and stored
/// as f32 like the reference (`.astype("float32")`). Returns `[n_mels][n_fft/2+1]`.
pub fn mel_filters(sample_rate: u32, n_fft: usize, n_mels: usize) -> Vec<Vec<f32>> {
    let n_bins = n_fft / 2 + 1;
    let sr = sample_rate as f64;
    // rfftfreq: k * sr / n_fft
    let fftfreqs: Vec<f64> = (0..n_bins).map(|k| k as f64 * sr / n_fft as f64).collect();
    let min_mel = 0.0f64;
    // The reference hard-codes hz_to_mel(8000) for the upper edge.
    let max_mel = 45.245640471924965f64;
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = (6.4f64).ln() / 27.0;
    let freqs: Vec<f64> = (0..n_mels + 2)
        .map(|i| {
            // np.linspace(min, max, n): min + i * step, last point exactly max
            let step = (max_mel - min_mel) / (n_mels + 1) as f64;
            let mel = if i == n_mels + 1 {
                max_mel
            } else {
                min_mel + i as f64 * step
            };
            if mel >= min_log_mel {
                min_log_hz * (logstep * (mel - min_log_mel)).exp()
            } else {
                f_sp * mel
            }
        })
        .collect();
    let mut out = vec![vec![0.0f32; n_bins]; n_mels];
    for (m, row) in out.iter_mut().enumerate() {
        let fdiff_lo = freqs[m + 1] - freqs[m];
        let fdiff_hi = freqs[m + 2] - freqs[m + 1];
        let enorm = 2.0 / (freqs[m + 2] - freqs[m]);
        for (k, w) in row.iter_mut().enumerate() {
            let lower = -(freqs[m] - fftfreqs[k]) / fdiff_lo;
            let upper = (freqs[m + 2] - fftfreqs[k]) / fdiff_hi;
            let v = lower.min(upper).max(0.0);
            *w = (v * enorm) as f32;
        }
    }
    out
}

/// Precomputed Whisper log-mel extractor (window, sparse mel filters, FFT plan).
/// Immutable and `Sync`: share one across threads.
#[derive(Clone)]
pub struct WhisperMel {
    n_mels: usize,
    window: Vec<f32>,
    filters: Vec<SparseFilter>,
    fft: Arc<dyn RealToComplex<f32>>,
}

impl std::fmt::Debug for WhisperMel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhisperMel")
            .field("n_mels", &self.n_mels)
            .finish()
    }
}

impl WhisperMel {
    /// Builds the extractor for `n_mels` mel bins (80 or 128 for Whisper models).
    pub fn new(n_mels: usize) -> Result<Self, AudioError> {
        if n_mels == 0 {
            return Err(AudioError::InvalidOptions {
                op: "whisper log-mel",
                reason: "n_mels must be positive".into(),
            });
        }
        // np.hanning(N + 1)[:-1]: 0.5 - 0.5 cos(2 pi n / N), computed in f64, stored f32.
        let window = (0..N_FFT)
            .map(|n| {
                (0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / N_FFT as f64).cos()) as f32
            })
            .collect();
        let filters = mel_filters(SAMPLE_RATE, N_FFT, n_mels)
            .into_iter()
            .map(|row| {
                let start = row.iter().position(|&w| w != 0.0).unwrap_or(0);
                let end = row.iter().rposition(|&w| w != 0.0).map_or(start, |e| e + 1);
                SparseFilter {
                    start,
                    weights: row[start..end].to_vec(),
                }
            })
            .collect();
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(N_FFT);
        Ok(Self {
            n_mels,
            window,
            filters,
            fft,
        })
    }

    /// Number of mel bins.
    pub fn n_mels(&self) -> usize {
        self.n_mels
    }

    /// Number of frames produced for `n_samples` input samples and `padding`.
    pub fn num_frames(n_samples: usize, padding: usize) -> usize {
        (n_samples + padding) / HOP_LENGTH
    }

    /// Computes the log-mel spectrogram as faster-whisper's
    /// `FeatureExtractor(feature_size=n_mels)(samples, padding=padding)` does
    /// (see the module docs). `samples`: mono f32 at 16 kHz.
    pub fn compute(&self, samples: &[f32], padding: usize) -> Result<LogMel, AudioError> {
        const OP: &str = "whisper log-mel";
        if samples.is_empty() {
            return Err(AudioError::EmptySignal { op: OP });
        }
        check_finite(OP, samples)?;
        let len = samples.len() + padding;
        if len < 2 {
            return Err(AudioError::InvalidOptions {
                op: OP,
                reason: format!(
                    "signal of {len} samples (with padding) is too short to reflect-pad"
                ),
            });
        }
        let n_frames = Self::num_frames(samples.len(), padding);
        let half = (N_FFT / 2) as isize;
        // Sample at index i of the (zero-padded) signal, i in [0, len).
        let at = |i: usize| if i < samples.len() { samples[i] } else { 0.0 };
        // NumPy reflect padding (period 2 (len - 1)), valid for any pad size.
        let period = 2 * (len as isize - 1);
        let reflect = |j: isize| -> usize {
            let mut r = j.rem_euclid(period);
            if r >= len as isize {
                r = period - r;
            }
            r as usize
        };

        let n_bins = N_FFT / 2 + 1;
        let mut frame = self.fft.make_input_vec();
        let mut spec = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut power = vec![0.0f32; n_bins];
        let mut data = vec![0.0f32; self.n_mels * n_frames];
        let mut max = f32::NEG_INFINITY;
        for t in 0..n_frames {
            let start = (t * HOP_LENGTH) as isize - half;
            if start >= 0 && (start as usize + N_FFT) <= samples.len() {
                let s = &samples[start as usize..start as usize + N_FFT];
                for ((f, &x), &w) in frame.iter_mut().zip(s).zip(&self.window) {
                    *f = x * w;
                }
            } else {
                for (n, (f, &w)) in frame.iter_mut().zip(&self.window).enumerate() {
                    *f = at(reflect(start + n as isize)) * w;
                }
            }
            self.fft
                .process_with_scratch(&mut frame, &mut spec, &mut scratch)
                .map_err(|e| AudioError::InvalidOptions {
                    op: OP,
                    reason: e.to_string(),
                })?;
            for (p, c) in power.iter_mut().zip(&spec) {
                *p = c.re * c.re + c.im * c.im;
            }
            for (m, f) in self.filters.iter().enumerate() {
                let p = &power[f.start..f.start + f.weights.len()];
                let e: f32 = f.weights.iter().zip(p).map(|(w, p)| w * p).sum();
                let l = e.max(1e-10).log10();
                max = max.max(l);
                data[m * n_frames + t] = l;
            }
        }
        let floor = max - 8.0;
        for v in &mut data {
            *v = (v.max(floor) + 4.0) / 4.0;
        }
        Ok(LogMel {
            data,
            n_mels: self.n_mels,
            n_frames,
        })
    }
}

/// One-shot [`WhisperMel::compute`]: faster-whisper's
/// `FeatureExtractor(feature_size=n_mels)(samples, padding=padding)`.
/// Pass [`FASTER_WHISPER_PADDING`] (160) for faster-whisper parity, or
/// [`N_SAMPLES`] for openai-whisper's `log_mel_spectrogram(..., padding=N_SAMPLES)`.
pub fn log_mel_spectrogram(
    samples: &[f32],
    n_mels: usize,
    padding: usize,
) -> Result<LogMel, AudioError> {
    WhisperMel::new(n_mels)?.compute(samples, padding)
}
