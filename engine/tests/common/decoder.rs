//! A small pre-LN transformer decoder built only from hark-engine ops: token embedding +
//! sinusoidal positions, per layer self-attention (KV cache) + cross-attention (CrossKv)
//! and a GELU MLP, final layer norm, logits tied to the embedding. Weights are random.
//! Used by the zero-allocation and KV-cache-equivalence tests.
#![allow(dead_code)]

use hark_engine::ops::{self, AttentionOpts, Linear, Rows};
use hark_engine::{CrossKv, DType, KvCache, Scratch, Tensor};

use super::lcg;

pub struct Layer {
    ln1: (Vec<f32>, Vec<f32>),
    qkv: Linear,
    out: Linear,
    ln2: (Vec<f32>, Vec<f32>),
    cq: Linear,
    ck: Linear,
    cv: Linear,
    co: Linear,
    ln3: (Vec<f32>, Vec<f32>),
    fc1: Linear,
    fc2: Linear,
}

pub struct Model {
    pub d: usize,
    pub heads: usize,
    pub ffn: usize,
    pub vocab: usize,
    emb: Tensor,
    pos: Vec<f32>,
    layers: Vec<Layer>,
    ln_f: (Vec<f32>, Vec<f32>),
}

pub struct State {
    pub cache: KvCache,
    pub cross: CrossKv,
    pub scratch: Scratch,
    pub beams: usize,
}

fn lin(seed: u64, out_f: usize, in_f: usize, dtype: DType) -> Linear {
    let s = 1.0 / (in_f as f32).sqrt();
    let w: Vec<f32> = lcg(seed, out_f * in_f).iter().map(|v| v * s).collect();
    let b: Vec<f32> = lcg(seed + 1, out_f).iter().map(|v| v * 0.1).collect();
    let w = Tensor::from_f32(&[out_f, in_f], &w)
        .unwrap()
        .to_dtype(dtype)
        .unwrap();
    Linear::new(w, Some(Tensor::from_f32(&[out_f], &b).unwrap())).unwrap()
}

fn ln(seed: u64, d: usize) -> (Vec<f32>, Vec<f32>) {
    (
        lcg(seed, d).iter().map(|v| 1.0 + 0.1 * v).collect(),
        lcg(seed + 1, d).iter().map(|v| 0.1 * v).collect(),
    )
}

impl Model {
    pub fn new(
        d: usize,
        heads: usize,
        ffn: usize,
        vocab: usize,
        n_layers: usize,
        dtype: DType,
    ) -> Model {
        let layers = (0..n_layers as u64)
            .map(|l| {
                let s = 100 * (l + 1);
                Layer {
                    ln1: ln(s, d),
                    qkv: lin(s + 2, 3 * d, d, dtype),
                    out: lin(s + 4, d, d, dtype),
                    ln2: ln(s + 6, d),
                    cq: lin(s + 8, d, d, dtype),
                    ck: lin(s + 10, d, d, dtype),
                    cv: lin(s + 12, d, d, dtype),
                    co: lin(s + 14, d, d, dtype),
                    ln3: ln(s + 16, d),
                    fc1: lin(s + 18, ffn, d, dtype),
                    fc2: lin(s + 20, d, ffn, dtype),
                }
            })
            .collect();
        let emb = Tensor::from_f32(&[vocab, d], &lcg(9, vocab * d))
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        Model {
            d,
            heads,
            ffn,
            vocab,
            emb,
            pos: ops::sinusoidal_positions(64, d),
            layers,
            ln_f: ln(7, d),
        }
    }

    pub fn new_state(&self, beams: usize, max_len: usize, frames: usize) -> State {
        State {
            cache: KvCache::new(self.layers.len(), beams, max_len, self.d),
            cross: CrossKv::new(self.layers.len(), frames, self.d),
            scratch: Scratch::new(),
            beams,
        }
    }

    /// Projects the encoder output `[frames, d]` into every layer's cross K/V (once).
    pub fn set_encoder(&self, st: &mut State, enc: &[f32], frames: usize) {
        for (l, layer) in self.layers.iter().enumerate() {
            let (k, v) = st.cross.buffers_mut(l, frames).unwrap();
            layer.ck.forward(enc, frames, k).unwrap();
            layer.cv.forward(enc, frames, v).unwrap();
        }
    }

    /// Runs `n` new tokens per beam (`tokens` is `[beams, n]`, beam-major) and writes
    /// the logits of each beam's last token into `logits` `[beams, vocab]`.
    pub fn step(&self, st: &mut State, tokens: &[u32], n: usize, logits: &mut [f32]) {
        let (d, beams) = (self.d, st.beams);
        let rows = beams * n;
        let t0 = st.cache.len();
        let [x, h, qkv, kb, vb, att, o, f, last] = st.scratch.split([
            rows * d,
            rows * d,
            rows * 3 * d,
            rows * d,
            rows * d,
            rows * d,
            rows * d,
            rows * self.ffn,
            beams * d,
        ]);
        ops::embedding(&self.emb, tokens, x).unwrap();
        for r in 0..rows {
            let p = t0 + r % n;
            ops::add(&mut x[r * d..(r + 1) * d], &self.pos[p * d..(p + 1) * d]).unwrap();
        }
        let opts = AttentionOpts::new(self.heads, d / self.heads);
        for (l, layer) in self.layers.iter().enumerate() {
            // self-attention
            ops::layer_norm(x, rows, d, &layer.ln1.0, Some(&layer.ln1.1), 1e-5, h).unwrap();
            layer.qkv.forward(h, rows, qkv).unwrap();
            for r in 0..rows {
                kb[r * d..(r + 1) * d].copy_from_slice(&qkv[r * 3 * d + d..r * 3 * d + 2 * d]);
                vb[r * d..(r + 1) * d].copy_from_slice(&qkv[r * 3 * d + 2 * d..(r + 1) * 3 * d]);
            }
            st.cache.append(l, kb, vb).unwrap();
            for b in 0..beams {
                let q = Rows::new(&qkv[b * n * 3 * d..(b + 1) * n * 3 * d], n, 3 * d);
                let (k, v) = (st.cache.keys(l, b).unwrap(), st.cache.values(l, b).unwrap());
                ops::attention(
                    q,
                    k,
                    v,
                    &opts.causal(true),
                    &mut att[b * n * d..(b + 1) * n * d],
                )
                .unwrap();
            }
            layer.out.forward(att, rows, o).unwrap();
            ops::add(x, o).unwrap();
            // cross-attention
            ops::layer_norm(x, rows, d, &layer.ln2.0, Some(&layer.ln2.1), 1e-5, h).unwrap();
            layer.cq.forward(h, rows, kb).unwrap();
            let (ck, cv) = (st.cross.keys(l).unwrap(), st.cross.values(l).unwrap());
            ops::attention(Rows::new(kb, rows, d), ck, cv, &opts, att).unwrap();
            layer.co.forward(att, rows, o).unwrap();
            ops::add(x, o).unwrap();
            // MLP
            ops::layer_norm(x, rows, d, &layer.ln3.0, Some(&layer.ln3.1), 1e-5, h).unwrap();
            layer.fc1.forward(h, rows, f).unwrap();
            ops::gelu(f);
            layer.fc2.forward(f, rows, o).unwrap();
            ops::add(x, o).unwrap();
        }
        for b in 0..beams {
            let r = b * n + n - 1;
            ops::layer_norm(
                &x[r * d..(r + 1) * d],
                1,
                d,
                &self.ln_f.0,
                Some(&self.ln_f.1),
                1e-5,
                &mut last[b * d..(b + 1) * d],
            )
            .unwrap();
        }
        ops::linear(last, beams, &self.emb, None, logits).unwrap();
    }
}
