//! Writers for feature matrices: Kaldi text archives (`copy-feats ark,t:` layout)
//! and NumPy `.npy` (version 1.0, little-endian f32, C order).

use std::io::Write;

/// Writes one utterance of `[rows, cols]` row-major values as a Kaldi text
/// archive entry: `key  [\n  v v v\n  v v v ]\n`, values printed with Kaldi's
/// default float precision (7 significant digits, `%g`-like).
pub fn write_kaldi_text<W: Write>(
    w: &mut W,
    key: &str,
    data: &[f32],
    rows: usize,
    cols: usize,
) -> std::io::Result<()> {
    write!(w, "{key}  [")?;
    if rows == 0 {
        writeln!(w, " ]")?;
        return Ok(());
    }
    writeln!(w)?;
    for r in 0..rows {
        write!(w, " ")?;
        for v in &data[r * cols..(r + 1) * cols] {
            write!(w, " {}", format_g7(*v))?;
        }
        if r + 1 == rows {
            writeln!(w, " ]")?;
        } else {
            writeln!(w)?;
        }
    }
    Ok(())
}

/// Formats like Kaldi's text archives: `%g` with 7 significant digits
/// (`15.00744`, `0.3232674`, `-4.92479`), exponent form outside [1e-5, 1e7).
pub fn format_g7(v: f32) -> String {
    if v == 0.0 {
        return "0".into();
    }
    if !v.is_finite() {
        return format!("{v}");
    }
    let exp = (v.abs() as f64).log10().floor() as i32;
    if !(-5..7).contains(&exp) {
        let s = format!("{:.6e}", v);
        // trim mantissa zeros: 1.500000e-7 -> 1.5e-07
        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
        let m = m.trim_end_matches('0').trim_end_matches('.');
        let e: i32 = e.parse().unwrap_or(0);
        return format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs());
    }
    let decimals = (6 - exp).max(0) as usize;
    let s = format!("{:.*}", decimals, v);
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Writes `[rows, cols]` f32 values as a `.npy` file (shape `(rows, cols)`).
pub fn write_npy<W: Write>(
    w: &mut W,
    data: &[f32],
    rows: usize,
    cols: usize,
) -> std::io::Result<()> {
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // magic(6) + version(2) + len(2) + header + '\n' must be a multiple of 64.
    let total = 10 + header.len() + 1;
    let pad = (64 - total % 64) % 64;
    header.push_str(&" ".repeat(pad));
    header.push('\n');
    w.write_all(b"\x93NUMPY\x01\x00")?;
    w.write_all(&(header.len() as u16).to_le_bytes())?;
    w.write_all(header.as_bytes())?;
    for v in data {
        w.write_all(&v.to_le_bytes())?;
    }
    Ok(())
}
