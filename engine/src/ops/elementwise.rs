//! Element-wise arithmetic on f32 buffers (residual sums, scaling, bias).

use crate::error::{check_len, Error, Result};

/// `a += b` (residual sum).
pub fn add(a: &mut [f32], b: &[f32]) -> Result<()> {
    check_len("add", "b", b.len(), a.len())?;
    a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
    Ok(())
}

/// `out = a + b`.
pub fn add_into(out: &mut [f32], a: &[f32], b: &[f32]) -> Result<()> {
    check_len("add_into", "a", a.len(), out.len())?;
    check_len("add_into", "b", b.len(), out.len())?;
    out.iter_mut()
        .zip(a.iter().zip(b))
        .for_each(|(o, (x, y))| *o = x + y);
    Ok(())
}

/// `a *= b` element-wise.
pub fn mul(a: &mut [f32], b: &[f32]) -> Result<()> {
    check_len("mul", "b", b.len(), a.len())?;
    a.iter_mut().zip(b).for_each(|(x, y)| *x *= y);
    Ok(())
}

/// `a *= s`.
pub fn scale(a: &mut [f32], s: f32) {
    a.iter_mut().for_each(|x| *x *= s);
}

/// Adds `bias` (one value per column) to every row of the row-major `x`.
pub fn add_bias(x: &mut [f32], bias: &[f32]) -> Result<()> {
    if bias.is_empty() || !x.len().is_multiple_of(bias.len()) {
        return Err(Error::BufferLength {
            op: "add_bias",
            arg: "x (multiple of bias length)",
            expected: bias.len(),
            got: x.len(),
        });
    }
    for row in x.chunks_exact_mut(bias.len()) {
        row.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
    }
    Ok(())
}
