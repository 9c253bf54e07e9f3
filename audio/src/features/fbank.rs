//! Kaldi-compatible filter-bank, spectrogram and MFCC features.
//!
//! Follows Kaldi's `src/feat/feature-window.{h,cc}` (framing, dither, DC removal,
//! pre-emphasis, windows), `src/feat/mel-computations.{h,cc}` (mel banks),
//! `src/feat/feature-fbank.cc`, `feature-spectrogram.cc`, `feature-mfcc.cc` (the
//! per-frame computers) and `online-feature.cc` (`OnlineGenericBaseFeature`, for
//! the streaming variant). Option fields carry Kaldi's names (`--num-mel-bins` is
//! [`MelBanksOptions::num_bins`], `--snip-edges` is
//! [`FrameExtractionOptions::snip_edges`], ...). Input samples are expected in
//! int16 scale (as `compute-fbank-feats` reads WAV files); multiply [-1, 1]
//! samples by 32768 first.
//!
//! Fidelity: the mel banks are computed in f32, the FFT is Kaldi's split-radix
//! algorithm with Kaldi's rounding (`srfft`) and the real FFT's even/odd
//! separation uses Kaldi's running twiddle recurrence (see `KaldiRealFft`), so
//! the spectrogram equals Kaldi's to the printed digits in every bin, including
//! those 100-150 dB under the frame peak that are pure float32 FFT noise.
//!
//! Differences from Kaldi by design: `dither` defaults to 0 (deterministic output)
//! and, when enabled, uses our own seeded Gaussian generator
//! ([`FrameExtractionOptions::dither_seed`]), so dithered output is reproducible
//! but not identical to Kaldi's.
//!
//! # Speed
//! [`FrameComputer`] precomputes the window function, the mel banks as sparse
//! ranges of FFT bins and the real FFT plan; [`FrameComputer::compute`] allocates
//! its buffers once per call and nothing per frame. The same per-frame code serves
//! the offline path and [`OnlineFeatures`], so streaming output equals offline
//! output exactly (see the `streaming_*` tests).

use std::sync::Arc;

use realfft::{num_complex::Complex, RealFftPlanner, RealToComplex};

use super::srfft::{cos_sin, SplitRadixFft};
use crate::error::{check_finite, AudioError};

/// Kaldi's `std::numeric_limits<float>::epsilon()` floor before `log`.
const EPSILON: f32 = f32::EPSILON;

/// Window shapes of Kaldi's `--window-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowType {
    /// `povey`: Hann raised to the power 0.85 (Kaldi's default).
    Povey,
    /// `hamming`: 0.54 - 0.46 cos.
    Hamming,
    /// `hanning`: 0.5 - 0.5 cos (symmetric, as in Kaldi).
    Hanning,
    /// `rectangular`.
    Rectangular,
    /// `blackman` with `blackman_coeff`.
    Blackman,
}

impl std::str::FromStr for WindowType {
    type Err = AudioError;
    fn from_str(s: &str) -> Result<Self, AudioError> {
        Ok(match s {
            "povey" => Self::Povey,
            "hamming" => Self::Hamming,
            "hanning" | "hann" => Self::Hanning,
            "rectangular" => Self::Rectangular,
            "blackman" => Self::Blackman,
            other => {
                return Err(AudioError::InvalidOptions {
                    op: "fbank",
                    reason: format!(
                        "unknown window type {other:?} (povey, hamming, hanning, rectangular, blackman)"
                    ),
                })
            }
        })
    }
}

/// Kaldi's `FrameExtractionOptions`.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameExtractionOptions {
    /// `--sample-frequency` (Hz).
    pub samp_freq: f32,
    /// `--frame-shift` (ms).
    pub frame_shift_ms: f32,
    /// `--frame-length` (ms).
    pub frame_length_ms: f32,
    /// `--dither`: std-dev of Gaussian noise added to each sample (Kaldi: 1.0; here 0.0).
    pub dither: f32,
    /// Seed of the dither generator (ours; Kaldi seeds from its global RNG).
    pub dither_seed: u64,
    /// `--preemphasis-coefficient`.
    pub preemph_coeff: f32,
    /// `--remove-dc-offset`.
    pub remove_dc_offset: bool,
    /// `--window-type`.
    pub window_type: WindowType,
    /// `--round-to-power-of-two`.
    pub round_to_power_of_two: bool,
    /// `--blackman-coeff`.
    pub blackman_coeff: f32,
    /// `--snip-edges`: if false, frames are centred and the signal reflected at the edges.
    pub snip_edges: bool,
}

impl Default for FrameExtractionOptions {
    fn default() -> Self {
        Self {
            samp_freq: 16000.0,
            frame_shift_ms: 10.0,
            frame_length_ms: 25.0,
            dither: 0.0,
            dither_seed: 0,
            preemph_coeff: 0.97,
            remove_dc_offset: true,
            window_type: WindowType::Povey,
            round_to_power_of_two: true,
            blackman_coeff: 0.42,
            snip_edges: true,
        }
    }
}

impl FrameExtractionOptions {
    /// `WindowShift()`: samples between frames.
    pub fn window_shift(&self) -> usize {
        (self.samp_freq as f64 * 0.001 * self.frame_shift_ms as f64) as usize
    }
    /// `WindowSize()`: samples per frame.
    pub fn window_size(&self) -> usize {
        (self.samp_freq as f64 * 0.001 * self.frame_length_ms as f64) as usize
    }
    /// `PaddedWindowSize()`: FFT size.
    pub fn padded_window_size(&self) -> usize {
        let w = self.window_size();
        if self.round_to_power_of_two {
            w.next_power_of_two()
        } else {
            w
        }
    }

    /// Kaldi's `NumFrames(num_samples, opts, flush)`.
    pub fn num_frames(&self, num_samples: usize, flush: bool) -> usize {
        let shift = self.window_shift();
        let len = self.window_size();
        if self.snip_edges {
            if num_samples < len {
                0
            } else {
                1 + (num_samples - len) / shift
            }
        } else {
            let mut n = (num_samples + shift / 2) / shift;
            if flush {
                return n;
            }
            while n > 0 && self.first_sample_of_frame(n - 1) + len as i64 > num_samples as i64 {
                n -= 1;
            }
            n
        }
    }

    /// Kaldi's `FirstSampleOfFrame(frame, opts)` (negative without snip-edges).
    pub fn first_sample_of_frame(&self, frame: usize) -> i64 {
        let shift = self.window_shift() as i64;
        if self.snip_edges {
            frame as i64 * shift
        } else {
            let midpoint = shift * frame as i64 + shift / 2;
            midpoint - self.window_size() as i64 / 2
        }
    }

    fn validate(&self) -> Result<(), AudioError> {
        let bad = |reason: String| {
            Err(AudioError::InvalidOptions {
                op: "fbank",
                reason,
            })
        };
        if self.samp_freq.is_nan() || self.samp_freq <= 0.0 {
            return bad(format!(
                "sample frequency {} must be positive",
                self.samp_freq
            ));
        }
        if self.window_shift() == 0 || self.window_size() < 2 {
            return bad(format!(
                "frame shift {} ms / length {} ms give an empty frame",
                self.frame_shift_ms, self.frame_length_ms
            ));
        }
        if self.dither.is_nan() || self.dither < 0.0 || !(0.0..=1.0).contains(&self.preemph_coeff) {
            return bad("dither must be >= 0 and preemphasis in [0, 1]".into());
        }
        Ok(())
    }

    /// Kaldi's `FeatureWindowFunction`.
    fn window_function(&self) -> Vec<f32> {
        let n = self.window_size();
        let a = 2.0 * std::f64::consts::PI / (n as f64 - 1.0);
        (0..n)
            .map(|i| {
                let c = (a * i as f64).cos();
                let v = match self.window_type {
                    WindowType::Hanning => 0.5 - 0.5 * c,
                    WindowType::Hamming => 0.54 - 0.46 * c,
                    WindowType::Povey => (0.5 - 0.5 * c).powf(0.85),
                    WindowType::Rectangular => 1.0,
                    WindowType::Blackman => {
                        let b = self.blackman_coeff as f64;
                        b - 0.5 * c + (0.5 - b) * (2.0 * a * i as f64).cos()
                    }
                };
                v as f32
            })
            .collect()
    }
}

/// Kaldi's `MelBanksOptions`.
#[derive(Debug, Clone, PartialEq)]
pub struct MelBanksOptions {
    /// `--num-mel-bins`.
    pub num_bins: usize,
    /// `--low-freq` (Hz).
    pub low_freq: f32,
    /// `--high-freq` (Hz; <= 0 means offset from Nyquist).
    pub high_freq: f32,
    /// `htk_mode` (floor mel energies at 1.0 like HTK; Kaldi default false).
    pub htk_mode: bool,
}

impl Default for MelBanksOptions {
    fn default() -> Self {
        Self {
            num_bins: 23,
            low_freq: 20.0,
            high_freq: 0.0,
            htk_mode: false,
        }
    }
}

/// Kaldi's `FbankOptions`; `Default` gives Kaldi's defaults (with `dither = 0`).
#[derive(Debug, Clone, PartialEq)]
pub struct FbankOptions {
    /// Framing options.
    pub frame_opts: FrameExtractionOptions,
    /// Mel bank options.
    pub mel_opts: MelBanksOptions,
    /// `--use-energy`: add log energy (first column, or last with htk_compat).
    pub use_energy: bool,
    /// `--energy-floor` (linear; 0 = none).
    pub energy_floor: f32,
    /// `--raw-energy`: energy before pre-emphasis and windowing (Kaldi default true).
    pub raw_energy: bool,
    /// `--htk-compat`: energy goes last.
    pub htk_compat: bool,
    /// `--use-log-fbank` (Kaldi default true).
    pub use_log_fbank: bool,
    /// `--use-power` (Kaldi default true): power rather than magnitude spectrum.
    pub use_power: bool,
}

impl Default for FbankOptions {
    fn default() -> Self {
        Self {
            frame_opts: FrameExtractionOptions::default(),
            mel_opts: MelBanksOptions::default(),
            use_energy: false,
            energy_floor: 0.0,
            raw_energy: true,
            htk_compat: false,
            use_log_fbank: true,
            use_power: true,
        }
    }
}

impl FbankOptions {
    /// Kaldi's defaults (with `dither = 0`); same as `Default`.
    pub fn kaldi() -> Self {
        Self::default()
    }

    /// Kaldi defaults with `num_bins` mel bins.
    pub fn with_bins(num_bins: usize) -> Self {
        let mut o = Self::kaldi();
        o.mel_opts.num_bins = num_bins;
        o
    }
}

/// Kaldi's `SpectrogramOptions`.
#[derive(Debug, Clone, PartialEq)]
pub struct SpectrogramOptions {
    /// Framing options.
    pub frame_opts: FrameExtractionOptions,
    /// `--energy-floor`.
    pub energy_floor: f32,
    /// `--raw-energy`.
    pub raw_energy: bool,
}

impl Default for SpectrogramOptions {
    fn default() -> Self {
        Self {
            frame_opts: FrameExtractionOptions::default(),
            energy_floor: 0.0,
            raw_energy: true,
        }
    }
}

/// Kaldi's `MfccOptions`.
#[derive(Debug, Clone, PartialEq)]
pub struct MfccOptions {
    /// Framing options.
    pub frame_opts: FrameExtractionOptions,
    /// Mel bank options (23 bins by default).
    pub mel_opts: MelBanksOptions,
    /// `--num-ceps`.
    pub num_ceps: usize,
    /// `--use-energy` (Kaldi default true): C0 replaced by log energy.
    pub use_energy: bool,
    /// `--energy-floor`.
    pub energy_floor: f32,
    /// `--raw-energy`.
    pub raw_energy: bool,
    /// `--cepstral-lifter`.
    pub cepstral_lifter: f32,
    /// `--htk-compat`.
    pub htk_compat: bool,
}

impl Default for MfccOptions {
    fn default() -> Self {
        Self {
            frame_opts: FrameExtractionOptions::default(),
            mel_opts: MelBanksOptions::default(),
            num_ceps: 13,
            use_energy: true,
            energy_floor: 0.0,
            raw_energy: true,
            cepstral_lifter: 22.0,
            htk_compat: false,
        }
    }
}

/// Features in `[n_frames, dim]` row-major layout.
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    /// `data[t * dim + d]`.
    pub data: Vec<f32>,
    /// Number of frames.
    pub n_frames: usize,
    /// Values per frame.
    pub dim: usize,
}

impl Features {
    /// Frame `t`.
    pub fn frame(&self, t: usize) -> &[f32] {
        &self.data[t * self.dim..(t + 1) * self.dim]
    }
}

/// Kaldi's `MelScale`, in single precision like Kaldi (`1127.0f * logf(1.0f + f / 700.0f)`).
fn mel_scale(f: f32) -> f32 {
    1127.0f32 * (1.0f32 + f / 700.0f32).ln()
}

/// Kaldi's `MelBanks` (no VTLN warping) as sparse rows over FFT bins
/// `0 .. padded/2` (the Nyquist bin never gets weight).
///
/// Computed in f32 exactly as Kaldi does: the weights near a triangle's feet come
/// from differences of nearly equal mel values, so f32 rounding changes them by
/// ~1e-4 relative, and weak bins on the skirt of a strong peak inherit that. An
/// f64 bank would be "more exact" and differ from Kaldi by up to 1e-4 in log energy.
fn mel_banks(
    opts: &MelBanksOptions,
    frame: &FrameExtractionOptions,
) -> Result<Vec<(usize, Vec<f32>)>, AudioError> {
    let bad = |reason: String| {
        Err(AudioError::InvalidOptions {
            op: "mel banks",
            reason,
        })
    };
    let num_bins = opts.num_bins;
    if num_bins < 3 {
        return bad(format!("num-mel-bins must be >= 3, got {num_bins}"));
    }
    let padded = frame.padded_window_size();
    let num_fft_bins = padded / 2;
    let sample_freq = frame.samp_freq;
    let nyquist = 0.5 * sample_freq;
    let low_freq = opts.low_freq;
    let high_freq = if opts.high_freq > 0.0 {
        opts.high_freq
    } else {
        nyquist + opts.high_freq
    };
    if low_freq < 0.0
        || low_freq >= nyquist
        || high_freq <= 0.0
        || high_freq > nyquist
        || high_freq <= low_freq
    {
        return bad(format!(
            "bad frequency range low {low_freq} high {high_freq} (nyquist {nyquist})"
        ));
    }
    let fft_bin_width = sample_freq / padded as f32;
    let mel_low = mel_scale(low_freq);
    let mel_high = mel_scale(high_freq);
    let delta = (mel_high - mel_low) / (num_bins as f32 + 1.0);
    let mut banks = Vec::with_capacity(num_bins);
    for bin in 0..num_bins {
        let left = mel_low + bin as f32 * delta;
        let center = mel_low + (bin as f32 + 1.0) * delta;
        let right = mel_low + (bin as f32 + 2.0) * delta;
        let mut first: Option<usize> = None;
        let mut weights = Vec::new();
        for i in 0..num_fft_bins {
            let mel = mel_scale(fft_bin_width * i as f32);
            if mel > left && mel < right {
                let w = if mel <= center {
                    (mel - left) / (center - left)
                } else {
                    (right - mel) / (right - center)
                };
                let f = *first.get_or_insert(i);
                weights.resize(i - f, 0.0);
                weights.push(w);
            }
        }
        match first {
            Some(f) => banks.push((f, weights)),
            None => {
                return bad(format!(
                    "mel bin {bin} is empty: too many mel bins ({num_bins}) for FFT size {padded}"
                ))
            }
        }
    }
    Ok(banks)
}

/// Kaldi's real FFT, emulated for bit-level fidelity of the weak bins.
///
/// Kaldi (`matrix/srfft.cc` `SplitRadixRealFft::Compute`, `matrix-functions.cc`
/// `RealFft`) packs the N real samples into N/2 complex ones, runs a complex FFT
/// of size N/2, then separates even/odd spectra with the twiddle `exp(-2 pi i k/N)`
/// obtained by a running single-precision complex multiplication (`kN *= rootN`
/// once per k), not from a table. We do the same separation step, in the same
/// order, in f32. The half-size complex FFT is Kaldi's split-radix algorithm
/// ([`SplitRadixFft`], same rounding as Kaldi) when N/2 is a power of two (always
/// with `round_to_power_of_two`), rustfft otherwise (Kaldi then uses its
/// mixed-radix `ComplexFft`, whose rounding we do not reproduce).
#[derive(Clone)]
struct KaldiRealFft {
    n: usize,
    inner: HalfFft,
    /// exp(-2 pi i / N) as Kaldi computes it: cos/sin of an f32 angle, rounded to f32.
    root: (f32, f32),
}

/// The complex FFT of size N/2 inside [`KaldiRealFft`].
#[derive(Clone)]
enum HalfFft {
    SplitRadix(SplitRadixFft),
    Rust(Arc<dyn rustfft::Fft<f32>>),
}

/// Working buffers of [`KaldiRealFft::power`].
struct RealFftScratch {
    /// Split real/imaginary parts (split radix) or unused.
    re: Vec<f32>,
    im: Vec<f32>,
    tmp: Vec<f32>,
    /// Interleaved complex buffer and scratch (rustfft).
    buf: Vec<Complex<f32>>,
    cscratch: Vec<Complex<f32>>,
}

impl KaldiRealFft {
    fn new(n: usize) -> Self {
        let inner = match SplitRadixFft::new(n / 2) {
            Some(f) => HalfFft::SplitRadix(f),
            None => HalfFft::Rust(rustfft::FftPlanner::<f32>::new().plan_fft_forward(n / 2)),
        };
        let angle = (-2.0 * std::f64::consts::PI / n as f64) as f32;
        Self {
            n,
            inner,
            root: cos_sin(angle),
        }
    }

    fn scratch(&self) -> RealFftScratch {
        let n2 = self.n / 2;
        match &self.inner {
            HalfFft::SplitRadix(_) => RealFftScratch {
                re: vec![0.0; n2],
                im: vec![0.0; n2],
                tmp: vec![0.0; n2],
                buf: Vec::new(),
                cscratch: Vec::new(),
            },
            HalfFft::Rust(f) => RealFftScratch {
                re: Vec::new(),
                im: Vec::new(),
                tmp: Vec::new(),
                buf: vec![Complex::new(0.0, 0.0); n2],
                cscratch: vec![Complex::new(0.0, 0.0); f.get_inplace_scratch_len()],
            },
        }
    }

    /// Power spectrum (`n/2 + 1` bins) of the real `frame` (length n).
    fn power(&self, frame: &[f32], s: &mut RealFftScratch, power: &mut [f32]) {
        let n2 = self.n / 2;
        // B_k, the half-size complex FFT of (x0 + i x1, x2 + i x3, ...), as
        // split (re, im) arrays.
        let (bre, bim): (&[f32], &[f32]) = match &self.inner {
            HalfFft::SplitRadix(f) => {
                for ((r, i), pair) in
                    s.re.iter_mut()
                        .zip(s.im.iter_mut())
                        .zip(frame.chunks_exact(2))
                {
                    *r = pair[0];
                    *i = pair[1];
                }
                f.process(&mut s.re, &mut s.im, &mut s.tmp);
                (&s.re, &s.im)
            }
            HalfFft::Rust(f) => {
                for (z, pair) in s.buf[..n2].iter_mut().zip(frame.chunks_exact(2)) {
                    *z = Complex::new(pair[0], pair[1]);
                }
                f.process_with_scratch(&mut s.buf[..n2], &mut s.cscratch);
                if s.re.len() != n2 {
                    s.re.resize(n2, 0.0);
                    s.im.resize(n2, 0.0);
                }
                for ((r, i), z) in s.re.iter_mut().zip(s.im.iter_mut()).zip(&s.buf) {
                    *r = z.re;
                    *i = z.im;
                }
                (&s.re, &s.im)
            }
        };
        let (root_re, root_im) = self.root;
        let (mut k_re, mut k_im) = (1.0f32, 0.0f32);
        let mut k = 1;
        while 2 * k <= n2 {
            // kN <- rootN * kN
            let t_re = root_re * k_re - root_im * k_im;
            k_im = root_re * k_im + root_im * k_re;
            k_re = t_re;
            let (b_re, b_im) = (bre[k], bim[k]);
            let (bd_re, bd_im) = (bre[n2 - k], bim[n2 - k]);
            let c_re = 0.5 * (b_re + bd_re);
            let c_im = 0.5 * (b_im - bd_im);
            let d_re = 0.5 * (b_im + bd_im);
            let d_im = -0.5 * (b_re - bd_re);
            // A_k = C_k + D_k * kN
            let a_re = c_re + (d_re * k_re - d_im * k_im);
            let a_im = c_im + (d_re * k_im + d_im * k_re);
            power[k] = a_re * a_re + a_im * a_im;
            let kd = n2 - k;
            if kd != k {
                // A_{N/2-k} = conj(C_k) + conj(D_k) * (-conj(kN))
                let (e_re, e_im) = (-k_re, k_im);
                let (f_re, f_im) = (d_re, -d_im);
                let a_re = c_re + (f_re * e_re - f_im * e_im);
                let a_im = -c_im + (f_re * e_im + f_im * e_re);
                power[kd] = a_re * a_re + a_im * a_im;
            }
            k += 1;
        }
        let dc = bre[0] + bim[0];
        let nyq = bre[0] - bim[0];
        power[0] = dc * dc;
        power[n2] = nyq * nyq;
    }
}

#[derive(Debug, Clone)]
enum Kind {
    Fbank(FbankOptions),
    Spectrogram(SpectrogramOptions),
    Mfcc {
        opts: MfccOptions,
        /// `[num_ceps][num_bins]`.
        dct: Vec<Vec<f32>>,
        lifter: Vec<f32>,
    },
}

/// A Kaldi per-frame feature computer (fbank, spectrogram or MFCC) with all
/// tables precomputed. Immutable and `Sync`.
#[derive(Clone)]
pub struct FrameComputer {
    kind: Kind,
    frame_opts: FrameExtractionOptions,
    window: Vec<f32>,
    banks: Vec<(usize, Vec<f32>)>,
    /// Generic real FFT (odd FFT sizes only).
    fft: Arc<dyn RealToComplex<f32>>,
    /// Kaldi's real FFT (even FFT sizes, i.e. always with round_to_power_of_two).
    kaldi_fft: Option<KaldiRealFft>,
    dim: usize,
    log_energy_floor: Option<f32>,
}

impl std::fmt::Debug for FrameComputer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameComputer")
            .field("kind", &self.kind)
            .field("dim", &self.dim)
            .finish()
    }
}

/// Kaldi filter-bank features (`compute-fbank-feats`).
pub type Fbank = FrameComputer;

/// Per-call working buffers.
struct Scratch {
    frame: Vec<f32>,
    spec: Vec<Complex<f32>>,
    fft_scratch: Vec<Complex<f32>>,
    kaldi_fft: Option<RealFftScratch>,
    power: Vec<f32>,
    mel: Vec<f32>,
}

/// Kaldi-style Gaussian generator for dither (xorshift64* + Box-Muller).
#[derive(Debug, Clone)]
pub(crate) struct Dither {
    state: u64,
    spare: Option<f32>,
}

impl Dither {
    fn new(seed: u64) -> Self {
        // splitmix64 of the seed so that seed 0 works.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Self {
            state: z | 1,
            spare: None,
        }
    }
    fn uniform(&mut self) -> f64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        let r = self.state.wrapping_mul(0x2545_F491_4F6C_DD1D);
        ((r >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    fn gauss(&mut self) -> f32 {
        if let Some(s) = self.spare.take() {
            return s;
        }
        let u1 = self.uniform();
        let u2 = self.uniform();
        let r = (-2.0 * u1.ln()).sqrt();
        let th = 2.0 * std::f64::consts::PI * u2;
        self.spare = Some((r * th.sin()) as f32);
        (r * th.cos()) as f32
    }
}

impl FrameComputer {
    /// Kaldi fbank (`FbankComputer`).
    pub fn new(opts: FbankOptions) -> Result<Self, AudioError> {
        let banks = mel_banks(&opts.mel_opts, &opts.frame_opts)?;
        let dim = opts.mel_opts.num_bins + usize::from(opts.use_energy);
        let floor = (opts.energy_floor > 0.0).then(|| opts.energy_floor.ln());
        Self::build(
            Kind::Fbank(opts.clone()),
            opts.frame_opts,
            banks,
            dim,
            floor,
        )
    }

    /// Kaldi fbank; alias of [`FrameComputer::new`].
    pub fn fbank(opts: FbankOptions) -> Result<Self, AudioError> {
        Self::new(opts)
    }

    /// Kaldi spectrogram (`SpectrogramComputer`): `padded/2 + 1` log-power bins,
    /// bin 0 replaced by the log energy.
    pub fn spectrogram(opts: SpectrogramOptions) -> Result<Self, AudioError> {
        let dim = opts.frame_opts.padded_window_size() / 2 + 1;
        let floor = (opts.energy_floor > 0.0).then(|| opts.energy_floor.ln());
        Self::build(
            Kind::Spectrogram(opts.clone()),
            opts.frame_opts,
            Vec::new(),
            dim,
            floor,
        )
    }

    /// Kaldi MFCC (`MfccComputer`).
    pub fn mfcc(opts: MfccOptions) -> Result<Self, AudioError> {
        let banks = mel_banks(&opts.mel_opts, &opts.frame_opts)?;
        let n = opts.mel_opts.num_bins;
        if opts.num_ceps == 0 || opts.num_ceps > n {
            return Err(AudioError::InvalidOptions {
                op: "mfcc",
                reason: format!("num-ceps {} must be in 1..={n}", opts.num_ceps),
            });
        }
        // Kaldi's ComputeDctMatrix: orthonormal DCT-II rows.
        let dct = (0..opts.num_ceps)
            .map(|k| {
                (0..n)
                    .map(|j| {
                        let v = if k == 0 {
                            (1.0 / n as f64).sqrt()
                        } else {
                            (2.0 / n as f64).sqrt()
                                * (std::f64::consts::PI / n as f64 * (j as f64 + 0.5) * k as f64)
                                    .cos()
                        };
                        v as f32
                    })
                    .collect()
            })
            .collect();
        // Kaldi's ComputeLifterCoeffs.
        let q = opts.cepstral_lifter as f64;
        let lifter = (0..opts.num_ceps)
            .map(|i| (1.0 + 0.5 * q * (std::f64::consts::PI * i as f64 / q).sin()) as f32)
            .collect();
        let dim = opts.num_ceps;
        let floor = (opts.energy_floor > 0.0).then(|| opts.energy_floor.ln());
        let frame_opts = opts.frame_opts.clone();
        Self::build(
            Kind::Mfcc { opts, dct, lifter },
            frame_opts,
            banks,
            dim,
            floor,
        )
    }

    fn build(
        kind: Kind,
        frame_opts: FrameExtractionOptions,
        banks: Vec<(usize, Vec<f32>)>,
        dim: usize,
        log_energy_floor: Option<f32>,
    ) -> Result<Self, AudioError> {
        frame_opts.validate()?;
        let window = frame_opts.window_function();
        let n = frame_opts.padded_window_size();
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(n);
        let kaldi_fft = n.is_multiple_of(2).then(|| KaldiRealFft::new(n));
        Ok(Self {
            kind,
            frame_opts,
            window,
            banks,
            fft,
            kaldi_fft,
            dim,
            log_energy_floor,
        })
    }

    /// Values per frame.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The framing options.
    pub fn frame_opts(&self) -> &FrameExtractionOptions {
        &self.frame_opts
    }

    /// Whether the log energy is taken before pre-emphasis/windowing.
    fn need_raw_log_energy(&self) -> bool {
        match &self.kind {
            Kind::Fbank(o) => o.use_energy && o.raw_energy,
            Kind::Spectrogram(o) => o.raw_energy,
            Kind::Mfcc { opts, .. } => opts.use_energy && opts.raw_energy,
        }
    }

    fn scratch(&self) -> Scratch {
        Scratch {
            frame: self.fft.make_input_vec(),
            spec: self.fft.make_output_vec(),
            fft_scratch: self.fft.make_scratch_vec(),
            kaldi_fft: self.kaldi_fft.as_ref().map(KaldiRealFft::scratch),
            power: vec![0.0; self.frame_opts.padded_window_size() / 2 + 1],
            mel: vec![0.0; self.banks.len()],
        }
    }

    /// Computes features of a whole signal (int16-scale samples), Kaldi's
    /// `OfflineFeatureTpl::Compute`. Signals shorter than one frame give 0 frames.
    pub fn compute(&self, samples: &[f32]) -> Result<Features, AudioError> {
        const OP: &str = "kaldi features";
        if samples.is_empty() {
            return Err(AudioError::EmptySignal { op: OP });
        }
        check_finite(OP, samples)?;
        let n_frames = self.frame_opts.num_frames(samples.len(), true);
        let mut data = vec![0.0f32; n_frames * self.dim];
        let mut scratch = self.scratch();
        let mut dither = Dither::new(self.frame_opts.dither_seed);
        for (t, out) in data.chunks_exact_mut(self.dim).enumerate() {
            self.compute_frame(samples, 0, t, &mut dither, &mut scratch, out);
        }
        Ok(Features {
            data,
            n_frames,
            dim: self.dim,
        })
    }

    /// Kaldi's `ExtractWindow` + `ProcessWindow` + the computer's `Compute`
    /// for frame `f`, where `wave[0]` is sample `offset` of the signal.
    fn compute_frame(
        &self,
        wave: &[f32],
        offset: i64,
        f: usize,
        dither: &mut Dither,
        s: &mut Scratch,
        out: &mut [f32],
    ) {
        let fo = &self.frame_opts;
        let len = fo.window_size();
        let start = fo.first_sample_of_frame(f) - offset;
        let frame = &mut s.frame;
        let wave_dim = wave.len() as i64;
        if start >= 0 && start + len as i64 <= wave_dim {
            frame[..len].copy_from_slice(&wave[start as usize..start as usize + len]);
        } else {
            // Reflection at the edges, edge sample repeated (Kaldi's ExtractWindow).
            for (k, v) in frame[..len].iter_mut().enumerate() {
                let mut i = start + k as i64;
                while i < 0 || i >= wave_dim {
                    if i < 0 {
                        i = -i - 1;
                    } else {
                        i = 2 * wave_dim - 1 - i;
                    }
                }
                *v = wave[i as usize];
            }
        }
        frame[len..].iter_mut().for_each(|v| *v = 0.0);
        let w = &mut frame[..len];
        if fo.dither != 0.0 {
            for v in w.iter_mut() {
                *v += dither.gauss() * fo.dither;
            }
        }
        if fo.remove_dc_offset {
            let mean = (w.iter().map(|&v| v as f64).sum::<f64>() / len as f64) as f32;
            w.iter_mut().for_each(|v| *v -= mean);
        }
        let energy = |w: &[f32]| -> f32 {
            let e = w.iter().map(|&v| v as f64 * v as f64).sum::<f64>() as f32;
            e.max(EPSILON).ln()
        };
        let mut log_energy = if self.need_raw_log_energy() {
            energy(w)
        } else {
            0.0
        };
        if fo.preemph_coeff != 0.0 {
            let c = fo.preemph_coeff;
            for i in (1..len).rev() {
                w[i] -= c * w[i - 1];
            }
            w[0] -= c * w[0];
        }
        for (v, &h) in w.iter_mut().zip(&self.window) {
            *v *= h;
        }
        let uses_energy = match &self.kind {
            Kind::Fbank(o) => o.use_energy,
            Kind::Spectrogram(_) => true,
            Kind::Mfcc { opts, .. } => opts.use_energy,
        };
        if uses_energy && !self.need_raw_log_energy() {
            log_energy = energy(&s.frame);
        }
        if let Some(floor) = self.log_energy_floor {
            log_energy = log_energy.max(floor);
        }
        if let (Some(kf), Some(ks)) = (&self.kaldi_fft, s.kaldi_fft.as_mut()) {
            kf.power(&s.frame, ks, &mut s.power);
        } else {
            // The FFT cannot fail with buffers made by the plan itself.
            let _ = self
                .fft
                .process_with_scratch(&mut s.frame, &mut s.spec, &mut s.fft_scratch);
            for (p, c) in s.power.iter_mut().zip(&s.spec) {
                *p = c.re * c.re + c.im * c.im;
            }
        }
        match &self.kind {
            Kind::Spectrogram(_) => {
                for (o, &p) in out.iter_mut().zip(&s.power) {
                    *o = p.max(EPSILON).ln();
                }
                out[0] = log_energy;
            }
            Kind::Fbank(o) => {
                if !o.use_power {
                    s.power.iter_mut().for_each(|p| *p = p.sqrt());
                }
                let mel_offset = usize::from(o.use_energy && !o.htk_compat);
                let nb = self.banks.len();
                self.mel_energies(&s.power, &mut out[mel_offset..mel_offset + nb]);
                if o.use_log_fbank {
                    for v in &mut out[mel_offset..mel_offset + nb] {
                        *v = v.max(EPSILON).ln();
                    }
                }
                if o.use_energy {
                    let idx = if o.htk_compat { nb } else { 0 };
                    out[idx] = log_energy;
                }
            }
            Kind::Mfcc { opts, dct, lifter } => {
                let mut mel = std::mem::take(&mut s.mel);
                self.mel_energies(&s.power, &mut mel);
                for v in mel.iter_mut() {
                    *v = v.max(EPSILON).ln();
                }
                for (k, o) in out.iter_mut().enumerate() {
                    *o = dct[k].iter().zip(&mel).map(|(a, b)| a * b).sum();
                }
                s.mel = mel;
                if opts.cepstral_lifter != 0.0 {
                    out.iter_mut().zip(lifter).for_each(|(o, l)| *o *= l);
                }
                if opts.use_energy {
                    out[0] = log_energy;
                }
                if opts.htk_compat {
                    let mut e = out[0];
                    out.copy_within(1.., 0);
                    if !opts.use_energy {
                        e *= std::f32::consts::SQRT_2;
                    }
                    let last = out.len() - 1;
                    out[last] = e;
                }
            }
        }
    }

    /// Kaldi's `MelBanks::Compute` over the sparse banks.
    fn mel_energies(&self, power: &[f32], out: &mut [f32]) {
        let htk_mode = match &self.kind {
            Kind::Fbank(o) => o.mel_opts.htk_mode,
            Kind::Mfcc { opts, .. } => opts.mel_opts.htk_mode,
            Kind::Spectrogram(_) => false,
        };
        for ((start, w), o) in self.banks.iter().zip(out.iter_mut()) {
            let p = &power[*start..*start + w.len()];
            let mut e: f32 = w.iter().zip(p).map(|(a, b)| a * b).sum();
            if htk_mode && e < 1.0 {
                e = 1.0;
            }
            *o = e;
        }
    }
}

/// Streaming front end over a [`FrameComputer`]: Kaldi's
/// `OnlineGenericBaseFeature`. Push samples in any chunk sizes; frames come out
/// as soon as they are complete, identical to the offline computation (with
/// `snip_edges = false`, the last frames need the end of the signal and come out
/// of [`OnlineFeatures::input_finished`]).
pub struct OnlineFeatures {
    computer: FrameComputer,
    remainder: Vec<f32>,
    offset: i64,
    frames_done: usize,
    finished: bool,
    dither: Dither,
    scratch: Scratch,
}

impl std::fmt::Debug for OnlineFeatures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnlineFeatures")
            .field("frames_done", &self.frames_done)
            .field("offset", &self.offset)
            .field("finished", &self.finished)
            .finish()
    }
}

impl OnlineFeatures {
    /// Wraps a computer.
    pub fn new(computer: FrameComputer) -> Self {
        let scratch = computer.scratch();
        let dither = Dither::new(computer.frame_opts.dither_seed);
        Self {
            computer,
            remainder: Vec::new(),
            offset: 0,
            frames_done: 0,
            finished: false,
            dither,
            scratch,
        }
    }

    /// Values per frame.
    pub fn dim(&self) -> usize {
        self.computer.dim
    }

    /// Frames emitted so far.
    pub fn frames_ready(&self) -> usize {
        self.frames_done
    }

    /// Accepts int16-scale samples; appends completed frames (row-major) to `out`
    /// and returns how many were appended.
    pub fn accept_waveform(
        &mut self,
        samples: &[f32],
        out: &mut Vec<f32>,
    ) -> Result<usize, AudioError> {
        if self.finished {
            return Err(AudioError::InvalidOptions {
                op: "online features",
                reason: "accept_waveform called after input_finished".into(),
            });
        }
        check_finite("online features", samples)?;
        self.remainder.extend_from_slice(samples);
        Ok(self.compute_ready(out))
    }

    /// Marks the end of input and flushes the last frames into `out`.
    pub fn input_finished(&mut self, out: &mut Vec<f32>) -> usize {
        self.finished = true;
        self.compute_ready(out)
    }

    fn compute_ready(&mut self, out: &mut Vec<f32>) -> usize {
        let fo = &self.computer.frame_opts;
        let total = self.offset as usize + self.remainder.len();
        let n_new = fo.num_frames(total, self.finished);
        let dim = self.computer.dim;
        let before = self.frames_done;
        if n_new > self.frames_done && !self.remainder.is_empty() {
            let base = out.len();
            out.resize(base + (n_new - self.frames_done) * dim, 0.0);
            for (k, f) in (self.frames_done..n_new).enumerate() {
                let o = &mut out[base + k * dim..base + (k + 1) * dim];
                self.computer.compute_frame(
                    &self.remainder,
                    self.offset,
                    f,
                    &mut self.dither,
                    &mut self.scratch,
                    o,
                );
            }
            self.frames_done = n_new;
        }
        let next_first = self
            .computer
            .frame_opts
            .first_sample_of_frame(self.frames_done);
        let discard = next_first - self.offset;
        if discard > 0 {
            let d = (discard as usize).min(self.remainder.len());
            self.remainder.drain(..d);
            self.offset += d as i64;
        }
        self.frames_done - before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Kaldi-order real FFT agrees with a plain real FFT (realfft) up to f32
    /// rounding, for power-of-two and other even sizes.
    #[test]
    fn kaldi_real_fft_matches_reference_real_fft() {
        for n in [16usize, 400, 512, 1024] {
            let x: Vec<f32> = (0..n)
                .map(|i| ((i * 7919 % 101) as f32 - 50.0) * 0.37)
                .collect();
            let k = KaldiRealFft::new(n);
            let mut scratch = k.scratch();
            let mut power = vec![0.0f32; n / 2 + 1];
            k.power(&x, &mut scratch, &mut power);
            let r = RealFftPlanner::<f64>::new().plan_fft_forward(n);
            let mut input: Vec<f64> = x.iter().map(|&v| v as f64).collect();
            let mut spec = r.make_output_vec();
            r.process(&mut input, &mut spec).expect("fft");
            let peak = spec.iter().map(|c| c.norm_sqr()).fold(0.0, f64::max);
            for (i, (p, c)) in power.iter().zip(&spec).enumerate() {
                let d = (*p as f64 - c.norm_sqr()).abs();
                assert!(d <= 1e-5 * peak, "n={n} bin {i}: {p} vs {}", c.norm_sqr());
            }
        }
    }

    #[test]
    fn num_frames_follows_kaldi() {
        let mut o = FrameExtractionOptions::default();
        assert_eq!(o.num_frames(399, true), 0);
        assert_eq!(o.num_frames(400, true), 1);
        assert_eq!(o.num_frames(19200, true), 118);
        o.snip_edges = false;
        assert_eq!(o.num_frames(19200, true), 120);
        assert_eq!(o.first_sample_of_frame(0), -120);
    }
}
