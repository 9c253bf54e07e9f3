//! Low-level compute kernels, selected at run time for the CPU we run on.
//!
//! # Design
//!
//! * [`Kernels`] is a table of plain `fn` pointers. [`Kernels::generic`] fills it with the
//!   portable scalar references in [`generic`]; the x86 levels overwrite entries with
//!   `#[target_feature]` variants (AVX2+FMA+F16C, AVX-512F/BW/VL(+VNNI)) after runtime
//!   detection, so a release binary built *without* `target-cpu=native` still uses AVX-512
//!   where the machine has it (the approach of sonos/tract `linalg/src/x86_64.rs`).
//! * [`kernels()`] returns the best table, chosen once (`OnceLock`). `HARK_ISA=generic|avx2|avx512`
//!   forces a level (an unavailable level falls back to the best available one below it).
//!   Tests and benches get a specific level with [`Kernels::for_isa`].
//! * Every kernel is single-threaded. Callers split work across threads: the linear-layer
//!   kernels write into a [`MatMut`] view, which can be split into disjoint column blocks
//!   ([`MatMut::split_cols`], decoding: split N) or row blocks ([`MatMut::split_rows`],
//!   encoder: split M); the weight rows and bias of a column block are plain sub-slices.
//!
//! # Linear layers
//!
//! `out[m×n] = x[m×k] · W[n×k]ᵀ (+ bias[n])`: activations `x` are f32, row-major and
//! contiguous (row stride `k`); weights are row-major `[n, k]` (the PyTorch `Linear` layout)
//! in f32, f16, bf16, or int8 with one f32 scale per output row (`w[j][l] ≈ q[j][l]·scale[j]`,
//! symmetric, `q ∈ [-127, 127]`). Accumulation is always f32 (int8: exact i32, see
//! [`LinearI8Fn`]). `m` is `out.rows()`, `n` is `out.cols()`, `k` is `x.len() / m`.
//!
//! Small `m` (decoding, 1..=6 rows) is memory-bound: the SIMD kernels stream each weight row
//! once and apply it to all rows of `x` while it is in registers ("dot-form" tiles: R rows of
//! `x` × 4 weight rows, 16-lane partial sums reduced once per tile, software prefetch of the
//! next tile's rows). Large `m` (the encoder, `m > 256`) is compute-bound: f32/f16/bf16 go to
//! the `gemm` crate's packed outer-product micro-kernels (f16/bf16 widened to f32 in blocks
//! of ~1 MiB first); int8 uses our own packed outer-product VNNI micro-kernel (8 rows × 32
//! columns, activation quad broadcast, no horizontal reductions), ~2.5–3× the f32 rate.
//!
//! int8 uses integer dot products rather than dequantising weights to f32 in registers: a
//! dequantising kernel would cost at least what the f16/bf16 kernels cost (one widening
//! chain per 16 weights before the FMA), and those measure ~15 GFLOP/s at M = 1 against ~40
//! for `vpdpbusd` on the same shape (whisper-base 512×512, in cache; see the benches).
//! The price is dynamic per-row activation quantisation, as in CTranslate2.
//!
//! # Allocation
//!
//! Temporary buffers (quantised activations, packed int8 weights, widened weight blocks)
//! live in per-thread grow-only scratch, so a warmed-up decoder step does not allocate
//! (`tests/kernels_alloc.rs`). Linear layers with `m > 256` and `matmul_f32` with `m > 256`
//! call the `gemm` crate, which allocates its packing buffers.

use std::sync::OnceLock;

use half::{bf16, f16};

pub mod generic;
mod scratch;
mod view;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use view::{MatMut, MatRef};

/// Instruction-set level a kernel table is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// Portable scalar Rust (the references every SIMD variant is tested against).
    Generic,
    /// x86-64 AVX2 + FMA + F16C.
    Avx2,
    /// x86-64 AVX-512 F/BW/VL/DQ (+ VNNI for int8 when present), plus the AVX2 requirements.
    Avx512,
}

impl Isa {
    /// All levels, lowest first.
    pub const ALL: [Isa; 3] = [Isa::Generic, Isa::Avx2, Isa::Avx512];

    /// Lower-case name as accepted by `HARK_ISA`.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Generic => "generic",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    /// Parses a `HARK_ISA` value (case-insensitive).
    pub fn parse(s: &str) -> Option<Isa> {
        match s.trim().to_ascii_lowercase().as_str() {
            "generic" | "scalar" => Some(Isa::Generic),
            "avx2" => Some(Isa::Avx2),
            "avx512" | "avx-512" => Some(Isa::Avx512),
            _ => None,
        }
    }

    /// Whether this CPU can run kernels of this level.
    pub fn is_available(self) -> bool {
        match self {
            Isa::Generic => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => x86::has_avx2(),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => x86::has_avx512(),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The highest level this CPU supports.
    pub fn best_available() -> Isa {
        *Isa::ALL
            .iter()
            .rev()
            .find(|i| i.is_available())
            .unwrap_or(&Isa::Generic)
    }

    /// All levels this CPU supports, lowest first (tests iterate over these).
    pub fn available() -> Vec<Isa> {
        Isa::ALL.into_iter().filter(|i| i.is_available()).collect()
    }

    /// Levels tests should cover: only the forced one when `HARK_ISA` is set, else all
    /// available ones.
    pub fn to_test() -> Vec<Isa> {
        match std::env::var("HARK_ISA")
            .ok()
            .as_deref()
            .and_then(Isa::parse)
        {
            Some(forced) if forced.is_available() => vec![forced],
            _ => Isa::available(),
        }
    }
}

/// f32-weight linear layer: `out = x · wᵀ (+ bias)`.
///
/// * `x`: `m×k` row-major contiguous, `m = out.rows()`, `k = x.len() / m`.
/// * `w`: `n×k` row-major contiguous (PyTorch `Linear.weight`), `n = out.cols()`.
/// * `bias`: `n` values or `None`.
///
/// Panics if the lengths are inconsistent (a caller bug, checked before any unsafe access).
pub type LinearF32Fn = fn(x: &[f32], w: &[f32], bias: Option<&[f32]>, out: MatMut<'_>);
/// f16-weight linear layer; same contract as [`LinearF32Fn`], weights widened to f32.
pub type LinearF16Fn = fn(x: &[f32], w: &[f16], bias: Option<&[f32]>, out: MatMut<'_>);
/// bf16-weight linear layer; same contract as [`LinearF32Fn`], weights widened to f32.
pub type LinearBf16Fn = fn(x: &[f32], w: &[bf16], bias: Option<&[f32]>, out: MatMut<'_>);
/// int8-weight linear layer with one f32 scale per weight row (`scales.len() == n`).
///
/// Like CTranslate2/oneDNN, each activation row is quantised dynamically and symmetrically
/// ([`generic::quantize_row_i8`]: `sx = max|x|/127`, `qx = round_half_even(x/sx)`), the dot
/// products are exact in i32 and rescaled: `out[i][j] = (Σ qx·qw) as f32 · sx[i] · scale[j] + bias[j]`.
/// Weights must lie in `[-127, 127]` (symmetric quantisation never produces -128).
pub type LinearI8Fn =
    fn(x: &[f32], w: &[i8], scales: &[f32], bias: Option<&[f32]>, out: MatMut<'_>);
/// General f32 matrix product `out = alpha·out + a·b` (`alpha` is 0 or 1: overwrite or
/// accumulate) with arbitrary row/column strides on `a` (m×k) and `b` (k×n), for attention:
/// `Q·Kᵀ` is `a = Q`, `b = K.t()` (a transposed [`MatRef`]), `P·V` is `a = P`, `b = V`.
pub type MatmulF32Fn = fn(a: MatRef<'_>, b: MatRef<'_>, accumulate: bool, out: MatMut<'_>);

/// Attention scores of a group of query rows against a block of keys:
/// `out[r·os + j] = Σ_t q[r·d + t] · keys[j][t]` for `r < q.len() / d`, `j < keys.len()`.
/// `q` is `rows × d` contiguous; each key row is a slice of at least `d` values (any
/// stride or index table: the caller slices them); `os ≥ keys.len()` when `rows > 1`.
/// The SIMD variants sum in a different order than the sequential reference (rounding
/// differences only).
pub type AttnScoresFn = fn(q: &[f32], d: usize, keys: &[&[f32]], out: &mut [f32], os: usize);
/// Attention value accumulation: `acc[r·d + t] += Σ_j p[r·ps + j] · values[j][t]` for
/// `r < acc.len() / d`, keys `j` added in order (one multiply-add each).
pub type AttnPvFn = fn(p: &[f32], ps: usize, values: &[&[f32]], acc: &mut [f32], d: usize);
/// Dot product of two equally long slices.
pub type DotFn = fn(a: &[f32], b: &[f32]) -> f32;
/// `y += alpha·x` (equal lengths).
pub type AxpyFn = fn(alpha: f32, x: &[f32], y: &mut [f32]);
/// `x *= alpha` in place.
pub type ScaleFn = fn(alpha: f32, x: &mut [f32]);
/// Sum or maximum of a slice (maximum of an empty slice is `-inf`, sum is 0).
pub type ReduceFn = fn(x: &[f32]) -> f32;
/// `x[i] = exp(x[i])` in place (relative error ≤ ~2e-7 on the SIMD paths; inputs below
/// about -87.3 flush to 0, above about 88.7 give +inf).
pub type ExpFn = fn(x: &mut [f32]);
/// Softmax core: `x[i] = exp(x[i] - shift)` in place, returns `Σ x[i]` (after the exp).
pub type ExpSumFn = fn(x: &mut [f32], shift: f32) -> f32;
/// Widen f16 to f32 (`src.len() == dst.len()`).
pub type F16ToF32Fn = fn(src: &[f16], dst: &mut [f32]);
/// Narrow f32 to f16, round-to-nearest-even (`src.len() == dst.len()`).
pub type F32ToF16Fn = fn(src: &[f32], dst: &mut [f16]);
/// Widen bf16 to f32 (`src.len() == dst.len()`).
pub type Bf16ToF32Fn = fn(src: &[bf16], dst: &mut [f32]);

/// Table of kernels for one ISA level; see the module docs.
#[derive(Clone, Copy)]
pub struct Kernels {
    /// Level this table was built for.
    pub isa: Isa,
    /// f32-weight linear layer.
    pub linear_f32: LinearF32Fn,
    /// f16-weight linear layer.
    pub linear_f16: LinearF16Fn,
    /// bf16-weight linear layer.
    pub linear_bf16: LinearBf16Fn,
    /// int8-weight (per-row scale) linear layer.
    pub linear_i8: LinearI8Fn,
    /// Strided f32 matmul (attention).
    pub matmul_f32: MatmulF32Fn,
    /// Attention scores `Q·Kᵀ` of a row group against a key block.
    pub attn_scores: AttnScoresFn,
    /// Attention accumulation `acc += P·V` over a key block.
    pub attn_pv: AttnPvFn,
    /// Dot product.
    pub dot: DotFn,
    /// `y += a·x`.
    pub axpy: AxpyFn,
    /// `x *= a`.
    pub scale: ScaleFn,
    /// Sum of a slice.
    pub sum: ReduceFn,
    /// Maximum of a slice.
    pub max: ReduceFn,
    /// In-place exp.
    pub exp: ExpFn,
    /// In-place `exp(x - shift)` returning the sum (softmax).
    pub exp_sum: ExpSumFn,
    /// f16 → f32.
    pub f16_to_f32: F16ToF32Fn,
    /// f32 → f16.
    pub f32_to_f16: F32ToF16Fn,
    /// bf16 → f32.
    pub bf16_to_f32: Bf16ToF32Fn,
}

impl std::fmt::Debug for Kernels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernels")
            .field("isa", &self.isa)
            .finish_non_exhaustive()
    }
}

/// Weights of a linear layer in one of the supported storage types (borrowed).
#[derive(Debug, Clone, Copy)]
pub enum Weights<'a> {
    /// f32, `n×k`.
    F32(&'a [f32]),
    /// f16, `n×k`.
    F16(&'a [f16]),
    /// bf16, `n×k`.
    Bf16(&'a [bf16]),
    /// int8 `n×k` with one f32 scale per row.
    I8 {
        /// Quantised values in `[-127, 127]`.
        q: &'a [i8],
        /// Per-row scales (`n`).
        scales: &'a [f32],
    },
}

impl<'a> Weights<'a> {
    /// The dtype of these weights.
    pub fn dtype(&self) -> crate::dtype::DType {
        use crate::dtype::DType;
        match self {
            Weights::F32(_) => DType::F32,
            Weights::F16(_) => DType::F16,
            Weights::Bf16(_) => DType::BF16,
            Weights::I8 { .. } => DType::I8,
        }
    }

    /// Rows `n0..n1` of these weights (`k` = row length), e.g. for one thread's share of N.
    pub fn rows(&self, k: usize, n0: usize, n1: usize) -> Weights<'a> {
        match *self {
            Weights::F32(w) => Weights::F32(&w[n0 * k..n1 * k]),
            Weights::F16(w) => Weights::F16(&w[n0 * k..n1 * k]),
            Weights::Bf16(w) => Weights::Bf16(&w[n0 * k..n1 * k]),
            Weights::I8 { q, scales } => Weights::I8 {
                q: &q[n0 * k..n1 * k],
                scales: &scales[n0..n1],
            },
        }
    }
}

impl Kernels {
    /// The portable scalar reference table.
    pub fn generic() -> Kernels {
        Kernels {
            isa: Isa::Generic,
            linear_f32: generic::linear_f32,
            linear_f16: generic::linear_f16,
            linear_bf16: generic::linear_bf16,
            linear_i8: generic::linear_i8,
            matmul_f32: generic::matmul_f32,
            attn_scores: generic::attn_scores,
            attn_pv: generic::attn_pv,
            dot: generic::dot,
            axpy: generic::axpy,
            scale: generic::scale,
            sum: generic::sum,
            max: generic::max,
            exp: generic::exp,
            exp_sum: generic::exp_sum,
            f16_to_f32: generic::f16_to_f32,
            f32_to_f16: generic::f32_to_f16,
            bf16_to_f32: generic::bf16_to_f32,
        }
    }

    /// The table for exactly `isa`, or `None` if this CPU lacks it.
    pub fn for_isa(isa: Isa) -> Option<Kernels> {
        if !isa.is_available() {
            return None;
        }
        #[allow(unused_mut)]
        let mut k = Kernels::generic();
        #[cfg(target_arch = "x86_64")]
        {
            if isa >= Isa::Avx2 {
                x86::install_avx2(&mut k);
            }
            if isa >= Isa::Avx512 {
                x86::install_avx512(&mut k);
            }
        }
        k.isa = isa;
        Some(k)
    }

    /// Linear layer dispatching on the weight dtype (`w` holds exactly `out.cols()` rows).
    pub fn linear(&self, x: &[f32], w: Weights<'_>, bias: Option<&[f32]>, out: MatMut<'_>) {
        match w {
            Weights::F32(w) => (self.linear_f32)(x, w, bias, out),
            Weights::F16(w) => (self.linear_f16)(x, w, bias, out),
            Weights::Bf16(w) => (self.linear_bf16)(x, w, bias, out),
            Weights::I8 { q, scales } => (self.linear_i8)(x, q, scales, bias, out),
        }
    }
}

/// The process-wide kernel table: the best level this CPU supports, or the one forced by
/// `HARK_ISA` (falling back to the best available level if the forced one is missing or the
/// value is not recognised).
pub fn kernels() -> &'static Kernels {
    static TABLE: OnceLock<Kernels> = OnceLock::new();
    TABLE.get_or_init(|| {
        let best = Isa::best_available();
        let isa = match std::env::var("HARK_ISA")
            .ok()
            .as_deref()
            .and_then(Isa::parse)
        {
            Some(forced) if forced <= best => forced,
            _ => best,
        };
        Kernels::for_isa(isa).unwrap_or_else(Kernels::generic)
    })
}

/// Checks the common linear-layer contract and returns `(m, k, n)`.
///
/// Panics with a message naming the kernel on inconsistent lengths: these are caller bugs
/// (shapes are validated by the ops layer), and the SIMD kernels rely on them for soundness.
pub(crate) fn linear_dims(
    name: &str,
    x_len: usize,
    w_len: usize,
    bias: Option<&[f32]>,
    out: &MatMut<'_>,
) -> (usize, usize, usize) {
    let (m, n) = (out.rows(), out.cols());
    if m == 0 || n == 0 {
        return (m, 0, n);
    }
    assert!(
        x_len.checked_rem(m) == Some(0),
        "{name}: x has {x_len} values, not a multiple of m={m}"
    );
    let k = x_len / m;
    assert!(
        w_len == n * k,
        "{name}: w has {w_len} values, expected n×k = {n}×{k}"
    );
    if let Some(b) = bias {
        assert!(
            b.len() == n,
            "{name}: bias has {} values, expected {n}",
            b.len()
        );
    }
    (m, k, n)
}
