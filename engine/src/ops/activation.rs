//! Activations: GELU (exact erf form), SiLU/Swish, GLU, ReLU, sigmoid.
//!
//! `erf` is computed in f64 from two classical formulas: the Maclaurin series for
//! `|x| < 0.5`, and for larger `|x|` the Chebyshev-fitted `erfc` of Numerical Recipes
//! (W. H. Press et al., §6.2, "erfcc"), whose *fractional* error is below 1.2e-7 over the
//! whole line. Using `erfc` directly in the negative tail keeps GELU's relative error
//! small there too (`gelu(x) = x/2 · erfc(-x/√2)`), where `1 + erf` would cancel.
//! [`gelu`] evaluates the same fit in f32 with the kernel table's vectorised `exp`
//! (relative error < 1e-5 against SciPy, see the parity tests).

use crate::error::{check_len, Result};
use crate::ops::SharedMut;

/// `erfc(z)` for `z >= 0` with fractional error < 1.2e-7 (Numerical Recipes' erfcc).
fn erfc_pos(z: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    t * poly.exp()
}

/// Complementary error function, relative error < 1.2e-7 (f64 inside).
fn erfc64(x: f64) -> f64 {
    if x >= 0.0 {
        erfc_pos(x)
    } else {
        2.0 - erfc_pos(-x)
    }
}

fn erf64(x: f64) -> f64 {
    if x.abs() < 0.5 {
        // erf(x) = 2/√π Σ (-1)^n x^(2n+1) / (n! (2n+1)); 10 terms reach 1e-16 here.
        let x2 = x * x;
        let mut term = x;
        let mut sum = x;
        for n in 1..12 {
            term *= -x2 / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        sum * std::f64::consts::FRAC_2_SQRT_PI
    } else {
        1.0 - erfc64(x)
    }
}

/// The error function (absolute error < 1.2e-7, relative error < 1e-7 for |x| < 0.5).
pub fn erf(x: f32) -> f32 {
    erf64(x as f64) as f32
}

/// The Numerical Recipes erfc fit in f32 without the final `exp`: returns `(t, arg)` with
/// `erfc(a) = t · exp(arg)` for `a >= 0`.
#[inline]
fn erfc_parts_f32(a: f32) -> (f32, f32) {
    let t = 1.0 / (1.0 + 0.5 * a);
    let poly = -1.265_512_2
        + t * (1.000_023_7
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_204
                                + t * (1.488_515_9 + t * (-0.822_152_24 + t * 0.170_872_77))))))));
    (t, poly - a * a)
}

/// GELU of a block of at most 64 values, using the kernel table's vectorised `exp`.
/// In f32 the fit's argument carries a rounding error of a few ulp of `a²`, so the
/// result's relative error stays below ~3e-6 even far in the negative tail.
fn gelu_block(x: &[f32], out: &mut [f32], exp: fn(&mut [f32])) {
    let n = x.len();
    let mut ts = [0f32; 64];
    let mut e = [0f32; 64];
    for i in 0..n {
        let (t, arg) = erfc_parts_f32(x[i].abs() * std::f32::consts::FRAC_1_SQRT_2);
        ts[i] = t;
        e[i] = arg;
    }
    exp(&mut e[..n]);
    for i in 0..n {
        let erfc_a = ts[i] * e[i];
        let xi = x[i];
        // erfc(-x/√2) = erfc(a) for x <= 0, 2 - erfc(a) for x > 0.
        out[i] = if xi <= 0.0 {
            0.5 * xi * erfc_a
        } else {
            xi * (1.0 - 0.5 * erfc_a)
        };
    }
}

/// GELU, exact form `x · Φ(x) = x/2 · (1 + erf(x/√2))`, in place.
/// Large buffers are split over the shared pool.
pub fn gelu(x: &mut [f32]) {
    let exp = crate::kernels::kernels().exp;
    let serial = |x: &mut [f32]| {
        let mut tmp = [0f32; 64];
        for c in x.chunks_mut(64) {
            gelu_block(c, &mut tmp[..c.len()], exp);
            c.copy_from_slice(&tmp[..c.len()]);
        }
    };
    if x.len() < PAR_MIN {
        serial(x);
        return;
    }
    let len = x.len();
    let shared = SharedMut::new(x);
    crate::threads::pool().parallel_range(len.div_ceil(64), PAR_MIN / 64, |c0, c1| {
        let end = (c1 * 64).min(len);
        // SAFETY: chunk ranges of different tasks are disjoint.
        serial(unsafe { shared.slice(c0 * 64, end - c0 * 64) });
    });
}

/// Element count above which element-wise activations use the pool.
const PAR_MIN: usize = 1 << 16;

/// GELU into `out`.
pub fn gelu_into(x: &[f32], out: &mut [f32]) -> Result<()> {
    check_len("gelu_into", "out", out.len(), x.len())?;
    let exp = crate::kernels::kernels().exp;
    for (c, o) in x.chunks(64).zip(out.chunks_mut(64)) {
        gelu_block(c, o, exp);
    }
    Ok(())
}

#[inline]
fn sigmoid1(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Logistic sigmoid, in place.
pub fn sigmoid(x: &mut [f32]) {
    x.iter_mut().for_each(|v| *v = sigmoid1(*v));
}

/// SiLU / Swish `x · sigmoid(x)`, in place.
pub fn silu(x: &mut [f32]) {
    x.iter_mut().for_each(|v| *v *= sigmoid1(*v));
}

/// ReLU, in place.
pub fn relu(x: &mut [f32]) {
    x.iter_mut().for_each(|v| *v = v.max(0.0));
}

/// GLU over the last dimension (PyTorch `glu(x, dim=-1)`): `x` is `[rows, 2c]`,
/// `out[r, i] = x[r, i] · sigmoid(x[r, c + i])`, `out` is `[rows, c]`.
pub fn glu(x: &[f32], rows: usize, c: usize, out: &mut [f32]) -> Result<()> {
    check_len("glu", "x", x.len(), rows * 2 * c)?;
    check_len("glu", "out", out.len(), rows * c)?;
    for (xr, or) in x.chunks_exact(2 * c).zip(out.chunks_exact_mut(c)) {
        let (a, b) = xr.split_at(c);
        for i in 0..c {
            or[i] = a[i] * sigmoid1(b[i]);
        }
    }
    Ok(())
}
