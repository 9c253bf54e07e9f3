//! Activations: GELU (exact erf form), SiLU/Swish, GLU, ReLU, sigmoid.
//!
//! `erf` is computed in f64 from two classical formulas: the Maclaurin series for
//! `|x| < 0.5`, and for larger `|x|` the Chebyshev-fitted `erfc` of Numerical Recipes
//! (W. H. Press et al., §6.2, "erfcc"), whose *fractional* error is below 1.2e-7 over the
//! whole line. Using `erfc` directly in the negative tail keeps GELU's relative error
//! small there too (`gelu(x) = x/2 · erfc(-x/√2)`), where `1 + erf` would cancel.

use crate::error::{check_len, Result};

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

#[inline]
fn gelu1(x: f32) -> f32 {
    let xd = x as f64;
    (0.5 * xd * erfc64(-xd * std::f64::consts::FRAC_1_SQRT_2)) as f32
}

/// GELU, exact form `x · Φ(x) = x/2 · (1 + erf(x/√2))`, in place.
pub fn gelu(x: &mut [f32]) {
    x.iter_mut().for_each(|v| *v = gelu1(*v));
}

/// GELU into `out`.
pub fn gelu_into(x: &[f32], out: &mut [f32]) -> Result<()> {
    check_len("gelu_into", "out", out.len(), x.len())?;
    out.iter_mut().zip(x).for_each(|(o, &v)| *o = gelu1(v));
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
