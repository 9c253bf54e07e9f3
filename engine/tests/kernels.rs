//! Every SIMD kernel variant against its scalar reference (`kernels::generic`), for each ISA
//! level this CPU supports (only the forced one when `HARK_ISA` is set), over random shapes
//! with odd sizes and unaligned starts.
//!
//! Tolerances: the references accumulate sequentially, the SIMD kernels in 8/16 lanes and
//! then a tree; both are within `k·eps·Σ|x·w|` of the exact sum (recursive summation
//! bound, Higham §4.2), so they differ by at most `2·k·eps·Σ|x·w|`. int8 kernels use the same
//! scalar activation quantiser and exact i32 dot products followed by the same f32
//! operations in the same order, so they must match bit for bit.

use half::{bf16, f16};
use hark_engine::kernels::{generic, Isa, Kernels, MatMut, MatRef, Weights};
use proptest::prelude::*;

/// Small deterministic generator (xorshift64*), so proptest only shrinks shapes and seeds.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [-1, 1).
    fn f(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.f() * scale).collect()
    }
}

fn levels() -> Vec<(Isa, Kernels)> {
    Isa::to_test()
        .into_iter()
        .map(|i| {
            (
                i,
                Kernels::for_isa(i).expect("to_test lists only available levels"),
            )
        })
        .collect()
}

/// Copies `v` to a fresh allocation at an odd element offset, so SIMD loads are unaligned.
fn unaligned<T: Copy + Default>(v: &[T], buf: &mut Vec<T>) -> std::ops::Range<usize> {
    buf.clear();
    buf.push(T::default());
    buf.extend_from_slice(v);
    1..1 + v.len()
}

/// Checks `got` against `want` with `|got - want| <= 2·k·eps·mag + 1e-30` element-wise.
fn assert_close(what: &str, isa: Isa, got: &[f32], want: &[f32], mag: &[f32], k: usize) {
    for (idx, ((&g, &w), &a)) in got.iter().zip(want).zip(mag).enumerate() {
        let tol = 2.0 * (k as f32 + 2.0) * f32::EPSILON * a + 1e-30;
        assert!(
            (g - w).abs() <= tol,
            "{what} [{}]: element {idx}: got {g}, want {w}, |diff| {} > tol {tol}",
            isa.name(),
            (g - w).abs()
        );
    }
}

/// `Σ_l |x[i][l]·w[j][l]| + |bias[j]|` per output element: the scale of rounding errors.
fn magnitudes(
    x: &[f32],
    wf: &[f32],
    bias: Option<&[f32]>,
    m: usize,
    k: usize,
    n: usize,
) -> Vec<f32> {
    let mut mag = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let s: f32 = (0..k).map(|l| (x[i * k + l] * wf[j * k + l]).abs()).sum();
            mag[i * n + j] = s + bias.map_or(0.0, |b| b[j].abs());
        }
    }
    mag
}

/// Output buffer with row stride `n + pad`; returns the m×n part row by row.
fn run_linear(
    kern: &Kernels,
    x: &[f32],
    w: Weights<'_>,
    bias: Option<&[f32]>,
    m: usize,
    n: usize,
    pad: usize,
) -> Vec<f32> {
    let stride = n + pad;
    let mut buf = vec![f32::NAN; m * stride];
    kern.linear(x, w, bias, MatMut::new(&mut buf, m, n, stride));
    (0..m)
        .flat_map(|i| buf[i * stride..i * stride + n].to_vec())
        .collect()
}

#[derive(Debug, Clone, Copy)]
enum Wt {
    F32,
    F16,
    Bf16,
}

fn check_linear_float(
    wt: Wt,
    m: usize,
    k: usize,
    n: usize,
    with_bias: bool,
    pad: usize,
    seed: u64,
) {
    let mut rng = Rng::new(seed);
    let x = rng.vec(m * k, 2.0);
    let wf = rng.vec(n * k, 0.5);
    let bias = with_bias.then(|| rng.vec(n, 1.0));
    let (w16, wb16): (Vec<f16>, Vec<bf16>) = (
        wf.iter().map(|&v| f16::from_f32(v)).collect(),
        wf.iter().map(|&v| bf16::from_f32(v)).collect(),
    );
    // Magnitudes from the weights actually used (after narrowing).
    let wused: Vec<f32> = match wt {
        Wt::F32 => wf.clone(),
        Wt::F16 => w16.iter().map(|v| v.to_f32()).collect(),
        Wt::Bf16 => wb16.iter().map(|v| v.to_f32()).collect(),
    };
    let mag = magnitudes(&x, &wused, bias.as_deref(), m, k, n);
    let (mut xb, mut fw, mut hw, mut bw) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let xr = unaligned(&x, &mut xb);
    let wr = unaligned(&wf, &mut fw);
    let _ = (unaligned(&w16, &mut hw), unaligned(&wb16, &mut bw));
    let pick = || match wt {
        Wt::F32 => Weights::F32(&fw[wr.clone()]),
        Wt::F16 => Weights::F16(&hw[wr.clone()]),
        Wt::Bf16 => Weights::Bf16(&bw[wr.clone()]),
    };
    let want = run_linear(
        &Kernels::generic(),
        &xb[xr.clone()],
        pick(),
        bias.as_deref(),
        m,
        n,
        0,
    );
    for (isa, kern) in levels() {
        let got = run_linear(&kern, &xb[xr.clone()], pick(), bias.as_deref(), m, n, pad);
        assert_close(
            &format!("linear {wt:?} m={m} k={k} n={n}"),
            isa,
            &got,
            &want,
            &mag,
            k,
        );
    }
}

/// Shapes: decode-sized m (1..=7) most of the time, sometimes n-blocked tiles (8..=40) or
/// beyond the large-m threshold (256: packed GEMM).
fn shape() -> impl Strategy<Value = (usize, usize, usize)> {
    (
        prop_oneof![4 => 1usize..=7, 1 => 8usize..=40, 1 => 250usize..=270],
        1usize..=300,
        1usize..=37,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn linear_f32_matches_reference((m, k, n) in shape(), bias in any::<bool>(), pad in 0usize..3, seed in any::<u64>()) {
        check_linear_float(Wt::F32, m, k, n, bias, pad, seed);
    }

    #[test]
    fn linear_f16_matches_reference((m, k, n) in shape(), bias in any::<bool>(), pad in 0usize..3, seed in any::<u64>()) {
        check_linear_float(Wt::F16, m, k, n, bias, pad, seed);
    }

    #[test]
    fn linear_bf16_matches_reference((m, k, n) in shape(), bias in any::<bool>(), pad in 0usize..3, seed in any::<u64>()) {
        check_linear_float(Wt::Bf16, m, k, n, bias, pad, seed);
    }

    #[test]
    fn linear_i8_matches_reference_exactly((m, k, n) in shape(), bias in any::<bool>(), pad in 0usize..3, seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let x = rng.vec(m * k, 3.0);
        let q: Vec<i8> = (0..n * k).map(|_| (rng.f() * 127.49).round() as i8).collect();
        let scales: Vec<f32> = (0..n).map(|_| rng.f().abs() * 0.02 + 1e-4).collect();
        let bias = bias.then(|| rng.vec(n, 1.0));
        let (mut xb, mut qb) = (Vec::new(), Vec::new());
        let (xr, qr) = (unaligned(&x, &mut xb), unaligned(&q, &mut qb));
        let w = Weights::I8 { q: &qb[qr], scales: &scales };
        let want = run_linear(&Kernels::generic(), &xb[xr.clone()], w, bias.as_deref(), m, n, 0);
        for (isa, kern) in levels() {
            let got = run_linear(&kern, &xb[xr.clone()], w, bias.as_deref(), m, n, pad);
            for (idx, (g, wv)) in got.iter().zip(&want).enumerate() {
                prop_assert!(g.to_bits() == wv.to_bits(), "linear_i8 [{}] m={m} k={k} n={n}: element {idx}: got {g}, want {wv}", isa.name());
            }
        }
    }

    /// The int8 semantics (dynamic symmetric activation quantisation) stay close to the
    /// dequantised float product: each activation is off by at most `sx/2`, so the error of
    /// a dot product is at most `sx/2 · Σ|w_deq|` (plus f32 rounding).
    #[test]
    fn linear_i8_reference_approximates_dequantised_product(m in 1usize..4, k in 1usize..200, n in 1usize..9, seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let x = rng.vec(m * k, 3.0);
        let q: Vec<i8> = (0..n * k).map(|_| (rng.f() * 127.49).round() as i8).collect();
        let scales: Vec<f32> = (0..n).map(|_| rng.f().abs() * 0.02 + 1e-4).collect();
        let wdeq: Vec<f32> = (0..n * k).map(|i| q[i] as f32 * scales[i / k]).collect();
        let got = run_linear(&Kernels::generic(), &x, Weights::I8 { q: &q, scales: &scales }, None, m, n, 0);
        let exact = run_linear(&Kernels::generic(), &x, Weights::F32(&wdeq), None, m, n, 0);
        for i in 0..m {
            let sx = x[i * k..(i + 1) * k].iter().fold(0f32, |a, v| a.max(v.abs())) / 127.0;
            for j in 0..n {
                let wabs: f32 = wdeq[j * k..(j + 1) * k].iter().map(|v| v.abs()).sum();
                let tol = 0.5 * sx * wabs * 1.001 + 1e-5;
                let (g, e) = (got[i * n + j], exact[i * n + j]);
                prop_assert!((g - e).abs() <= tol, "i={i} j={j}: int8 {g} vs float {e}, tol {tol}");
            }
        }
    }

    #[test]
    fn matmul_f32_strided_matches_reference(m in prop_oneof![3 => 1usize..20, 1 => 60usize..90, 1 => 250usize..270], k in 1usize..70, n in 1usize..40, transpose_a in any::<bool>(), transpose_b in any::<bool>(), accumulate in any::<bool>(), seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let a = rng.vec(m * k, 1.0);
        let bdata = rng.vec(k * n, 1.0);
        // b as k×n: either row-major, or the transpose of a row-major n×k (like Kᵀ).
        let b = if transpose_b { MatRef::from_slice(&bdata, n, k).t() } else { MatRef::from_slice(&bdata, k, n) };
        let a = if transpose_a { MatRef::from_slice(&a, k, m).t() } else { MatRef::from_slice(&a, m, k) };
        let init = rng.vec(m * n, 1.0);
        let mut want = init.clone();
        generic::matmul_f32(a, b, accumulate, MatMut::from_slice(&mut want, m, n));
        let mut mag = vec![0f32; m * n];
        for i in 0..m { for j in 0..n {
            mag[i * n + j] = (0..k).map(|l| (a.at(i, l) * b.at(l, j)).abs()).sum::<f32>() + if accumulate { init[i * n + j].abs() } else { 0.0 };
        } }
        for (isa, kern) in levels() {
            let mut got = init.clone();
            (kern.matmul_f32)(a, b, accumulate, MatMut::from_slice(&mut got, m, n));
            assert_close(&format!("matmul m={m} k={k} n={n}"), isa, &got, &want, &mag, k);
        }
    }

    #[test]
    fn dot_sum_max_match_reference(len in 0usize..700, seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let (a, b) = (rng.vec(len + 1, 4.0), rng.vec(len + 1, 4.0));
        let (a, b) = (&a[1..], &b[1..]);
        let dmag: f32 = a.iter().zip(b).map(|(x, y)| (x * y).abs()).sum();
        let smag: f32 = a.iter().map(|x| x.abs()).sum();
        for (isa, kern) in levels() {
            assert_close("dot", isa, &[(kern.dot)(a, b)], &[generic::dot(a, b)], &[dmag], len);
            assert_close("sum", isa, &[(kern.sum)(a)], &[generic::sum(a)], &[smag], len);
            prop_assert_eq!((kern.max)(a), generic::max(a), "max [{}]", isa.name());
        }
    }

    /// axpy: the SIMD paths use one fused multiply-add (one rounding) where the reference
    /// rounds twice, so they differ by at most `eps·(|y| + |a·x|)`.
    #[test]
    fn axpy_and_scale_match_reference(len in 0usize..300, alpha in -4f32..4.0, seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let x = rng.vec(len, 3.0);
        let y0 = rng.vec(len, 3.0);
        let mut want = y0.clone();
        generic::axpy(alpha, &x, &mut want);
        let mag: Vec<f32> = x.iter().zip(&y0).map(|(a, b)| (alpha * a).abs() + b.abs()).collect();
        let mut want_s = y0.clone();
        generic::scale(alpha, &mut want_s);
        for (isa, kern) in levels() {
            let mut got = y0.clone();
            (kern.axpy)(alpha, &x, &mut got);
            assert_close("axpy", isa, &got, &want, &mag, 0);
            let mut got_s = y0.clone();
            (kern.scale)(alpha, &mut got_s);
            prop_assert_eq!(&got_s, &want_s, "scale [{}]", isa.name());
        }
    }

    /// Attention kernels over a row group and a key block: key/value rows are slices of a
    /// strided buffer picked through a shuffled index table (as KV-cache beams read them),
    /// starting at an odd offset; head dims cover the 16/8-lane tails. Scores sum in a
    /// different order (bound as for `dot`); the value accumulation uses one FMA per key
    /// where the reference rounds twice (bound `2·nk·eps·(|acc| + Σ|p·v|)`).
    #[test]
    fn attn_scores_and_pv_match_reference(rows in 1usize..9, nk in 0usize..70, d in 1usize..100, pad in 0usize..5, os_pad in 0usize..3, seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let stride = d + pad;
        let q = rng.vec(rows * d, 2.0);
        let kbuf = rng.vec(1 + nk * stride + d, 2.0);
        let vbuf = rng.vec(1 + nk * stride + d, 2.0);
        let mut index: Vec<usize> = (0..nk).collect();
        for i in (1..nk).rev() {
            index.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
        }
        let keys: Vec<&[f32]> = index.iter().map(|&j| &kbuf[1 + j * stride..1 + j * stride + d]).collect();
        let values: Vec<&[f32]> = index.iter().map(|&j| &vbuf[1 + j * stride..1 + j * stride + d]).collect();
        let os = nk + os_pad;
        let fill = -7.0f32;
        let mut want = vec![fill; rows * os.max(1)];
        generic::attn_scores(&q, d, &keys, &mut want, os);
        let mut smag = vec![0f32; want.len()];
        for r in 0..rows {
            for (j, k) in keys.iter().enumerate() {
                smag[r * os + j] = q[r * d..(r + 1) * d].iter().zip(k.iter()).map(|(a, b)| (a * b).abs()).sum();
            }
        }
        // attention weights in [0, 1] (exp of shifted scores), some exactly 0
        let p: Vec<f32> = (0..rows * os.max(1)).map(|_| { let x = rng.f().abs(); if x < 0.1 { 0.0 } else { x } }).collect();
        let acc0 = rng.vec(rows * d, 3.0);
        let mut want_acc = acc0.clone();
        generic::attn_pv(&p, os, &values, &mut want_acc, d);
        let mut amag = vec![0f32; rows * d];
        for r in 0..rows {
            for t in 0..d {
                amag[r * d + t] = acc0[r * d + t].abs()
                    + values.iter().enumerate().map(|(j, v)| (p[r * os + j] * v[t]).abs()).sum::<f32>();
            }
        }
        for (isa, kern) in levels() {
            let mut got = vec![fill; want.len()];
            (kern.attn_scores)(&q, d, &keys, &mut got, os);
            assert_close(&format!("attn_scores rows={rows} nk={nk} d={d}"), isa, &got, &want, &smag, d);
            // entries between rows (os > nk) are left untouched
            for r in 0..rows {
                for j in nk..os {
                    prop_assert_eq!(got[r * os + j], fill, "attn_scores [{}] wrote past the keys", isa.name());
                }
            }
            let mut got_acc = acc0.clone();
            (kern.attn_pv)(&p, os, &values, &mut got_acc, d);
            assert_close(&format!("attn_pv rows={rows} nk={nk} d={d}"), isa, &got_acc, &want_acc, &amag, nk);
        }
    }

    /// exp: relative error ≤ 4e-7 against `f32::exp` in the normal range (Cephes polynomial
    /// ~1e-7 plus the rounding of the argument reduction), absolute 1e-44 in the subnormal
    /// range; `exp_sum` returns the sum of what it wrote (within summation error).
    #[test]
    fn exp_and_exp_sum_match_reference(len in 0usize..200, lo in -110f32..0.0, span in 0f32..100.0, seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let x: Vec<f32> = (0..len).map(|_| (lo + (rng.f() + 1.0) * 0.5 * span).min(88.7)).collect();
        let want: Vec<f32> = x.iter().map(|v| v.exp()).collect();
        for (isa, kern) in levels() {
            let mut got = x.clone();
            (kern.exp)(&mut got);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                prop_assert!((g - w).abs() <= 4e-7 * w.abs() + 1e-44, "exp [{}] x={}: got {g}, want {w}", isa.name(), x[i]);
            }
            let mut got2 = x.clone();
            let shift = 1.5f32;
            let s = (kern.exp_sum)(&mut got2, shift);
            let mut total = 0f32;
            for (i, g) in got2.iter().enumerate() {
                let w = (x[i] - shift).exp();
                prop_assert!((g - w).abs() <= 4e-7 * w.abs() + 1e-44, "exp_sum [{}] x={}: got {g}, want {w}", isa.name(), x[i]);
                total += g;
            }
            prop_assert!(s == total || (s - total).abs() <= 2.0 * (len as f32 + 1.0) * f32::EPSILON * total.abs() + 1e-38, "exp_sum [{}] sum {s} vs {total}", isa.name());
        }
    }

    /// Conversions are exact (IEEE round-to-nearest-even both ways), including overflow to
    /// ±inf and subnormal halves.
    #[test]
    fn half_conversions_match_reference_exactly(len in 0usize..100, scale_exp in -20i32..20, seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let x = rng.vec(len, 2f32.powi(scale_exp));
        let h: Vec<f16> = x.iter().map(|&v| f16::from_f32(v)).collect();
        let b: Vec<bf16> = x.iter().map(|&v| bf16::from_f32(v)).collect();
        for (isa, kern) in levels() {
            let mut hh = vec![f16::ZERO; len];
            (kern.f32_to_f16)(&x, &mut hh);
            prop_assert!(hh.iter().zip(&h).all(|(a, b)| a.to_bits() == b.to_bits()), "f32_to_f16 [{}]", isa.name());
            let mut f = vec![0f32; len];
            (kern.f16_to_f32)(&h, &mut f);
            prop_assert!(f.iter().zip(&h).all(|(a, b)| a.to_bits() == b.to_f32().to_bits()), "f16_to_f32 [{}]", isa.name());
            (kern.bf16_to_f32)(&b, &mut f);
            prop_assert!(f.iter().zip(&b).all(|(a, b)| a.to_bits() == b.to_f32().to_bits()), "bf16_to_f32 [{}]", isa.name());
        }
    }
}

#[test]
fn exp_handles_infinities_and_extremes() {
    let x = [
        f32::NEG_INFINITY,
        -1000.0,
        -103.0,
        0.0,
        88.0,
        89.0,
        1000.0,
        f32::INFINITY,
    ];
    for (isa, kern) in levels() {
        let mut got = x;
        (kern.exp)(&mut got);
        assert_eq!(got[0], 0.0, "exp(-inf) [{}]", isa.name());
        assert_eq!(got[1], 0.0, "exp(-1000) [{}]", isa.name());
        assert!(
            got[2] > 0.0 && got[2] < 1e-44,
            "exp(-103) [{}] = {}",
            isa.name(),
            got[2]
        );
        assert_eq!(got[3], 1.0, "exp(0) [{}]", isa.name());
        assert!(
            (got[4] - 88f32.exp()).abs() <= 4e-7 * 88f32.exp(),
            "exp(88) [{}]",
            isa.name()
        );
        assert!(
            got[5..].iter().all(|v| *v == f32::INFINITY),
            "exp overflow [{}]: {:?}",
            isa.name(),
            &got[5..]
        );
    }
}

/// The threading contract: splitting N into column blocks (decode) or M into row blocks
/// (encoder) and running the blocks on separate threads gives exactly the single-call result.
#[test]
fn linear_split_across_threads_equals_single_call() {
    let (k, n) = (200usize, 53usize);
    let mut rng = Rng::new(7);
    let wf = rng.vec(n * k, 0.5);
    let bias = rng.vec(n, 1.0);
    let w = Weights::F32(&wf);
    for (isa, kern) in levels() {
        for m in [1usize, 5, 40] {
            let x = rng.vec(m * k, 1.0);
            let whole = run_linear(&kern, &x, w, Some(&bias), m, n, 0);
            // Split N at 20 (decode style).
            let mut split = vec![0f32; m * n];
            let (left, right) = MatMut::from_slice(&mut split, m, n).split_cols(20);
            std::thread::scope(|s| {
                let (x, bias) = (&x, &bias);
                s.spawn(move || kern.linear(x, w.rows(k, 0, 20), Some(&bias[..20]), left));
                s.spawn(move || kern.linear(x, w.rows(k, 20, n), Some(&bias[20..]), right));
            });
            assert_eq!(whole, split, "split N [{}] m={m}", isa.name());
            if m >= 5 {
                // Split M (encoder style); outputs per row do not depend on the row grouping
                // within the same kernel family, so compare with a tolerance-free check only
                // against a row-split single-threaded run.
                let at = m / 2;
                let mut split_m = vec![0f32; m * n];
                let (top, bottom) = MatMut::from_slice(&mut split_m, m, n).split_rows(at);
                std::thread::scope(|s| {
                    let (x, bias) = (&x, &bias);
                    s.spawn(move || kern.linear(&x[..at * k], w, Some(bias), top));
                    s.spawn(move || kern.linear(&x[at * k..], w, Some(bias), bottom));
                });
                let mut seq = vec![0f32; m * n];
                let (top, bottom) = MatMut::from_slice(&mut seq, m, n).split_rows(at);
                kern.linear(&x[..at * k], w, Some(&bias), top);
                kern.linear(&x[at * k..], w, Some(&bias), bottom);
                assert_eq!(seq, split_m, "split M [{}] m={m}", isa.name());
            }
        }
    }
}

#[test]
fn kernel_table_respects_hark_isa() {
    let table = hark_engine::kernels::kernels();
    match std::env::var("HARK_ISA")
        .ok()
        .as_deref()
        .and_then(Isa::parse)
    {
        Some(forced) if forced.is_available() => assert_eq!(table.isa, forced),
        _ => assert_eq!(table.isa, Isa::best_available()),
    }
    for isa in Isa::ALL {
        assert_eq!(
            Kernels::for_isa(isa).is_some(),
            isa.is_available(),
            "{}",
            isa.name()
        );
    }
}

#[test]
fn quantize_row_i8_rounds_half_even_and_handles_zero() {
    let mut q = [0i8; 4];
    // amax 127 → inv 1: values land exactly on .5 and must round to even.
    assert_eq!(
        generic::quantize_row_i8(&[127.0, 0.5, 1.5, -2.5], &mut q),
        1.0
    );
    assert_eq!(q, [127, 0, 2, -2]);
    assert_eq!(generic::quantize_row_i8(&[0.0; 4], &mut q), 0.0);
    assert_eq!(q, [0; 4]);
}

#[test]
fn quantize_row_i8_rounds_shifted_fma_like_ctranslate2() {
    // CTranslate2 rounds fma(x, 127/amax, 128) (u8-shifted activations): 1.4999999 + 128
    // is 129.5 in f32, which rounds to even 130, i.e. q = 2 where round(1.4999999) = 1;
    // likewise -1.4999999 + 128 is 126.5, rounding to 126 (q = -2, not -1).
    let mut q = [0i8; 3];
    generic::quantize_row_i8(&[127.0, 1.499_999_9, -1.499_999_9], &mut q);
    assert_eq!(q, [127, 2, -2]);
}
