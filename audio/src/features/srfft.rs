//! Kaldi's split-radix complex FFT (`src/matrix/srfft.{h,cc}`,
//! `SplitRadixComplexFft<float>`, after Malvar's "Signal processing with lapped
//! transforms"), reimplemented so that every butterfly rounds exactly as Kaldi's
//! single-precision build does.
//!
//! Why not rustfft: `compute-spectrogram-feats` prints the log of every FFT bin.
//! For clean test signals (sine sweeps) most bins lie 100-150 dB below the frame
//! peak, where the value is nothing but the float32 rounding noise of the FFT
//! (|X|^2 ~ 1e-3 on a peak of ~1e11). Any other FFT algorithm rounds
//! differently and moves those bins by up to ~0.4 in log power; only the same
//! sequence of float operations (same decomposition, same twiddle tables computed
//! the same way, same order of additions) reproduces them. The algorithm is an
//! ordinary split-radix decimation in frequency (outputs in bit-reversed order,
//! then a permutation); it is also competitive in speed for the 128..1024-point
//! sizes features use.
//!
//! Rounding model: all arithmetic in f32 without fused multiply-add (Kaldi's
//! default build is SSE2 without FMA, and Rust never contracts `a * b + c`).
//! Twiddles follow `ComputeTables`: the angle `n * 2pi / m` is computed in f64,
//! rounded to f32, and its cosine/sine rounded to f32 (see [`cos_sin`]). With
//! this, our spectrogram of Kaldi's test signal equals `compute-spectrogram-feats`
//! to the 7 printed digits in every bin (max |diff| 6e-6, test
//! `spectrogram_matches_kaldi`).

/// A split-radix complex FFT of `n = 2^logn` points on split real/imaginary
/// arrays, forward direction (`exp(-2 pi i jk/n)`), unnormalised.
#[derive(Debug, Clone)]
pub(crate) struct SplitRadixFft {
    n: usize,
    logn: u32,
    /// Per recursion level `logn >= 4` (index `logn - 4`): the six twiddle tables
    /// of Kaldi's `tab_` (`cn, spcn, smcn, c3n, spc3n, smc3n`), each `m/4 - 2` long.
    tables: Vec<[Vec<f32>; 6]>,
    /// Bit-reversal permutation: output `i` is at position `bitrev[i]` after the
    /// butterflies.
    bitrev: Vec<usize>,
}

impl SplitRadixFft {
    /// Plans an FFT of `n` points; `n` must be a power of two (>= 1).
    pub(crate) fn new(n: usize) -> Option<Self> {
        if n == 0 || !n.is_power_of_two() {
            return None;
        }
        let logn = n.trailing_zeros();
        let mut tables = Vec::new();
        for level in 4..=logn {
            let m = 1usize << level;
            let (m4, m8) = (m / 4, m / 8);
            let mut t: [Vec<f32>; 6] = Default::default();
            for k in 1..m4 {
                if k == m8 {
                    continue;
                }
                for (j, mult) in [(0usize, 1usize), (3, 3)] {
                    let ang = (((mult * k) as f64) * std::f64::consts::TAU / m as f64) as f32;
                    let (c, s) = cos_sin(ang);
                    t[j].push(c);
                    t[j + 1].push(-(s + c));
                    t[j + 2].push(s - c);
                }
            }
            tables.push(t);
        }
        let bitrev = (0..n)
            .map(|i| {
                if logn == 0 {
                    0
                } else {
                    i.reverse_bits() >> (usize::BITS - logn)
                }
            })
            .collect();
        Some(Self {
            n,
            logn,
            tables,
            bitrev,
        })
    }

    /// In-place forward FFT of `(re, im)` (each `n` long); `tmp` is scratch of
    /// length `n`, used for the final bit-reversal permutation.
    pub(crate) fn process(&self, re: &mut [f32], im: &mut [f32], tmp: &mut [f32]) {
        debug_assert!(re.len() == self.n && im.len() == self.n && tmp.len() >= self.n);
        self.recurse(re, im, self.logn);
        if self.logn > 1 {
            for x in [re, im] {
                tmp[..self.n].copy_from_slice(x);
                for (o, &j) in x.iter_mut().zip(&self.bitrev) {
                    *o = tmp[j];
                }
            }
        }
    }

    /// Kaldi's `ComputeRecursive` on the first `2^logn` points of `xr`/`xi`.
    fn recurse(&self, xr: &mut [f32], xi: &mut [f32], logn: u32) {
        match logn {
            0 => return,
            1 => {
                bfly(xr, 0, 1);
                bfly(xi, 0, 1);
                return;
            }
            2 => {
                bfly(xr, 0, 2);
                bfly(xi, 0, 2);
                bfly(xr, 1, 3);
                bfly(xi, 1, 3);
                bfly(xr, 0, 1);
                bfly(xi, 0, 1);
                // Multiply the odd quarter by -i while combining (2, 3).
                let t1 = xr[2] + xi[3];
                let t2 = xi[2] + xr[3];
                xi[2] -= xr[3];
                xr[3] = xr[2] - xi[3];
                xr[2] = t1;
                xi[3] = t2;
                return;
            }
            _ => {}
        }
        let m = 1usize << logn;
        let (m2, m4, m8) = (m / 2, m / 4, m / 8);
        // Written over zipped sub-slices (no index arithmetic, no bounds checks in
        // the loops) so that the element-wise steps vectorise; SIMD lanes round
        // exactly like scalar f32 operations, so the results are unchanged.
        // Step 1: length-2 butterflies between the halves.
        for x in [&mut xr[..m], &mut xi[..m]] {
            let (lo, hi) = x.split_at_mut(m2);
            for (a, b) in lo.iter_mut().zip(hi.iter_mut()) {
                let t = *a + *b;
                *b = *a - *b;
                *a = t;
            }
        }
        // Step 2: the L-shaped butterfly on the second half (times -i).
        let (ra, rb) = xr[m2..m].split_at_mut(m4);
        let (ia, ib) = xi[m2..m].split_at_mut(m4);
        for (((xra, xia), xrb), xib) in ra
            .iter_mut()
            .zip(ia.iter_mut())
            .zip(rb.iter_mut())
            .zip(ib.iter_mut())
        {
            let t1 = *xra + *xib;
            let t2 = *xia + *xrb;
            *xia -= *xrb;
            *xrb = *xra - *xib;
            *xra = t1;
            *xib = t2;
        }
        // Steps 3 and 4: twiddles w^k (first quarter) and w^3k (second) with three
        // real multiplications each; k = m/8 (w = (1 - i)/sqrt 2) is special.
        let sqhalf = std::f64::consts::FRAC_1_SQRT_2 as f32;
        if logn >= 4 {
            let [cn, spcn, smcn, c3n, spc3n, smc3n] = &self.tables[(logn - 4) as usize];
            // Table entry t belongs to k = t + 1 below m/8 and k = t + 2 above.
            for (range, tab) in [(1..m8, 0..m8 - 1), (m8 + 1..m4, m8 - 1..m4 - 2)] {
                rotate(
                    &mut ra[range.clone()],
                    &mut ia[range.clone()],
                    &cn[tab.clone()],
                    &spcn[tab.clone()],
                    &smcn[tab.clone()],
                );
                rotate(
                    &mut rb[range.clone()],
                    &mut ib[range],
                    &c3n[tab.clone()],
                    &spc3n[tab.clone()],
                    &smc3n[tab],
                );
            }
        }
        let t1 = sqhalf * (ra[m8] + ia[m8]);
        ia[m8] = sqhalf * (ia[m8] - ra[m8]);
        ra[m8] = t1;
        let t2 = sqhalf * (ib[m8] - rb[m8]);
        ib[m8] = -sqhalf * (rb[m8] + ib[m8]);
        rb[m8] = t2;
        self.recurse(xr, xi, logn - 1);
        self.recurse(&mut xr[m2..], &mut xi[m2..], logn - 2);
        let q3 = 3 * m4;
        self.recurse(&mut xr[q3..], &mut xi[q3..], logn - 2);
    }
}

/// Cosine and sine of an f32 angle, correctly rounded to f32 (computed in f64).
///
/// Kaldi's tables take `cos`/`sin` of a float angle. Whether that resolves to a
/// float or a double function depends on the build; Kaldi's own reference outputs
/// (`../shared/data/kaldi-fbank-reference`) are reproduced bit for bit only with
/// correctly rounded values: glibc 2.36's `cosf`/`sinf` differ from them by one
/// ulp in 13 of the 456 table entries up to 256 points, enough to move bins
/// 100 dB under the peak by 0.14 in log power.
pub(crate) fn cos_sin(angle: f32) -> (f32, f32) {
    let a = angle as f64;
    (a.cos() as f32, a.sin() as f32)
}

/// Multiplies `(xr + i xi)` element-wise by `c - i s` given `c`, `-(s + c)` and
/// `s - c` (Kaldi's three-multiplication rotation, same operation order).
#[inline(always)]
fn rotate(xr: &mut [f32], xi: &mut [f32], c: &[f32], spc: &[f32], smc: &[f32]) {
    for ((((r, i), &c), &sp), &sm) in xr.iter_mut().zip(xi.iter_mut()).zip(c).zip(spc).zip(smc) {
        let t2 = c * (*r + *i);
        let t1 = sp * *r + t2;
        *r = sm * *i + t2;
        *i = t1;
    }
}

/// `(x[a], x[b]) <- (x[a] + x[b], x[a] - x[b])`.
#[inline(always)]
fn bfly(x: &mut [f32], a: usize, b: usize) {
    let t = x[a] + x[b];
    x[b] = x[a] - x[b];
    x[a] = t;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The split-radix FFT equals a double-precision DFT up to f32 rounding, for
    /// every size the recursion can reach (1 .. 1024 points).
    #[test]
    fn split_radix_fft_matches_f64_dft() {
        for logn in 0..=10u32 {
            let n = 1usize << logn;
            let fft = SplitRadixFft::new(n).expect("power of two");
            let xr: Vec<f32> = (0..n)
                .map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.5)
                .collect();
            let xi: Vec<f32> = (0..n)
                .map(|i| ((i * 11 % 17) as f32 - 8.0) * 0.25)
                .collect();
            let (mut re, mut im, mut tmp) = (xr.clone(), xi.clone(), vec![0.0; n]);
            fft.process(&mut re, &mut im, &mut tmp);
            let mut peak = 0.0f64;
            let mut want = Vec::with_capacity(n);
            for k in 0..n {
                let (mut sr, mut si) = (0.0f64, 0.0f64);
                for j in 0..n {
                    let a = -std::f64::consts::TAU * ((j * k) % n) as f64 / n as f64;
                    let (c, s) = (a.cos(), a.sin());
                    sr += xr[j] as f64 * c - xi[j] as f64 * s;
                    si += xr[j] as f64 * s + xi[j] as f64 * c;
                }
                peak = peak.max(sr.hypot(si));
                want.push((sr, si));
            }
            for (k, &(sr, si)) in want.iter().enumerate() {
                let d = (re[k] as f64 - sr).hypot(im[k] as f64 - si);
                assert!(
                    d <= 1e-5 * peak.max(1.0),
                    "n={n} bin {k}: ({}, {}) vs ({sr}, {si})",
                    re[k],
                    im[k]
                );
            }
        }
    }

    #[test]
    fn split_radix_fft_rejects_other_sizes() {
        assert!(SplitRadixFft::new(0).is_none());
        assert!(SplitRadixFft::new(400).is_none());
        assert_eq!(SplitRadixFft::new(256).map(|f| f.n), Some(256));
    }
}
