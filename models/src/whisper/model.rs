//! Whisper encoder and decoder forward passes (model = immutable weights; the decoder's
//! per-transcription caches live in [`DecoderState`]).
//!
//! Follows openai-whisper `whisper/model.py` (AudioEncoder, TextDecoder,
//! ResidualAttentionBlock) with CTranslate2's fused projections (`qkv_proj`, `kv_proj`).
//! Activations are f32; weight matrices are f32, f16 or int8 (see [`Precision`]).
//!
//! Decoder caches: self-attention K/V are preallocated per beam for the whole text
//! context (`[layer][beam][n_text_ctx][d]`) and written in place; beams are reordered by
//! index ([`DecoderState::reorder`]). Cross-attention K/V are computed once per 30 s
//! window ([`WhisperModel::set_audio`]) and shared by all beams, K stored per head
//! `[layer][head][1500][hd]` and V transposed `[layer][head][hd][1500]`, so that both
//! attention products run through the same NT GEMM with M = number of beam rows.

use std::path::Path;

use rayon::prelude::*;

use super::config::WhisperConfig;
use super::error::{Result, WhisperError};
use super::kernels::{gelu, gemm_nt, gemm_nt_serial, layer_norm, softmax, WeightData};
use super::weights::{Precision, SafeTensors};

pub use super::config::ModelDimensions;

struct Linear {
    w: WeightData,
    b: Vec<f32>,
    n_in: usize,
    n_out: usize,
}

impl Linear {
    fn load(st: &SafeTensors, name: &str, n_out: usize, n_in: usize, p: Precision) -> Result<Self> {
        let w = st.matrix(&format!("{name}.weight"), &[n_out, n_in], p)?;
        let b = st.f32(&format!("{name}.bias"), &[n_out])?;
        Ok(Linear { w, b, n_in, n_out })
    }

    /// `out[m, n_out] = x[m, n_in] · Wᵀ + b`
    fn forward(&self, x: &[f32], m: usize, out: &mut [f32]) {
        gemm_nt(x, m, self.n_in, self.w.view(), self.n_out, Some(&self.b), &mut out[..m * self.n_out]);
    }
}

struct Norm {
    g: Vec<f32>,
    b: Vec<f32>,
}

impl Norm {
    fn load(st: &SafeTensors, name: &str, d: usize) -> Result<Self> {
        Ok(Norm { g: st.f32(&format!("{name}.weight"), &[d])?, b: st.f32(&format!("{name}.bias"), &[d])? })
    }
    fn apply(&self, x: &mut [f32], d: usize) {
        layer_norm(x, d, &self.g, &self.b);
    }
}

struct EncoderLayer {
    ln1: Norm,
    qkv: Linear,
    out: Linear,
    ln2: Norm,
    fc1: Linear,
    fc2: Linear,
}

struct DecoderLayer {
    ln1: Norm,
    qkv: Linear,
    out: Linear,
    ln_x: Norm,
    xq: Linear,
    xkv: Linear,
    xout: Linear,
    ln2: Norm,
    fc1: Linear,
    fc2: Linear,
}

/// A loaded Whisper model (immutable; share it with `Arc` across threads).
pub struct WhisperModel {
    /// The model's configuration.
    pub config: WhisperConfig,
    precision: Precision,
    conv1: Linear,
    conv2: Linear,
    enc_pos: Vec<f32>,
    enc_layers: Vec<EncoderLayer>,
    enc_ln: Norm,
    embed: WeightData,
    dec_pos: Vec<f32>,
    dec_layers: Vec<DecoderLayer>,
    dec_ln: Norm,
}

impl std::fmt::Debug for WhisperModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhisperModel").field("dims", &self.config.dims).field("precision", &self.precision).finish()
    }
}

/// Encoder output of one 30 s window: `[n_audio_ctx, d]`, row-major.
#[derive(Debug, Clone)]
pub struct EncoderOutput {
    /// The values.
    pub data: Vec<f32>,
    /// Number of positions (1500).
    pub frames: usize,
}

impl WhisperModel {
    /// Loads a hark Whisper directory (`config.json`, `model.safetensors`) with the
    /// weight matrices converted to `precision`.
    pub fn load(dir: &Path, precision: Precision) -> Result<Self> {
        let config = WhisperConfig::from_dir(dir)
            .map_err(|e| WhisperError::Config { path: dir.join("config.json"), msg: e.to_string() })?;
        if config.family != "whisper" {
            return Err(WhisperError::Config {
                path: dir.join("config.json"),
                msg: format!("family is `{}`, not `whisper`", config.family),
            });
        }
        let st = SafeTensors::open(&dir.join("model.safetensors"))?;
        let dm = config.dims;
        let d = dm.n_audio_state;
        if dm.n_text_state != d || d % dm.n_audio_head != 0 || d % dm.n_text_head != 0 {
            return Err(WhisperError::Config {
                path: dir.join("config.json"),
                msg: "unsupported dims: encoder and decoder widths differ or heads do not divide d".into(),
            });
        }
        let p = precision;
        // Convolutions stay f32: they are a small share of the work and CTranslate2 does
        // not quantize them either.
        let conv1 = {
            let w = st.matrix("encoder.conv1.weight", &[d, dm.n_mels, 3], Precision::F32)?;
            Linear { w, b: st.f32("encoder.conv1.bias", &[d])?, n_in: dm.n_mels * 3, n_out: d }
        };
        let conv2 = {
            let w = st.matrix("encoder.conv2.weight", &[d, d, 3], Precision::F32)?;
            Linear { w, b: st.f32("encoder.conv2.bias", &[d])?, n_in: d * 3, n_out: d }
        };
        let enc_pos = st.f32("encoder.embed_positions.weight", &[dm.n_audio_ctx, d])?;
        let mut enc_layers = Vec::new();
        for i in 0..dm.n_audio_layer {
            let q = format!("encoder.layers.{i}");
            enc_layers.push(EncoderLayer {
                ln1: Norm::load(&st, &format!("{q}.self_attn_layer_norm"), d)?,
                qkv: Linear::load(&st, &format!("{q}.self_attn.qkv_proj"), 3 * d, d, p)?,
                out: Linear::load(&st, &format!("{q}.self_attn.out_proj"), d, d, p)?,
                ln2: Norm::load(&st, &format!("{q}.final_layer_norm"), d)?,
                fc1: Linear::load(&st, &format!("{q}.fc1"), 4 * d, d, p)?,
                fc2: Linear::load(&st, &format!("{q}.fc2"), d, 4 * d, p)?,
            });
        }
        let enc_ln = Norm::load(&st, "encoder.layer_norm", d)?;
        let embed = st.matrix("decoder.embed_tokens.weight", &[dm.n_vocab, d], p)?;
        let dec_pos = st.f32("decoder.embed_positions.weight", &[dm.n_text_ctx, d])?;
        let mut dec_layers = Vec::new();
        for i in 0..dm.n_text_layer {
            let q = format!("decoder.layers.{i}");
            dec_layers.push(DecoderLayer {
                ln1: Norm::load(&st, &format!("{q}.self_attn_layer_norm"), d)?,
                qkv: Linear::load(&st, &format!("{q}.self_attn.qkv_proj"), 3 * d, d, p)?,
                out: Linear::load(&st, &format!("{q}.self_attn.out_proj"), d, d, p)?,
                ln_x: Norm::load(&st, &format!("{q}.encoder_attn_layer_norm"), d)?,
                xq: Linear::load(&st, &format!("{q}.encoder_attn.q_proj"), d, d, p)?,
                xkv: Linear::load(&st, &format!("{q}.encoder_attn.kv_proj"), 2 * d, d, p)?,
                xout: Linear::load(&st, &format!("{q}.encoder_attn.out_proj"), d, d, p)?,
                ln2: Norm::load(&st, &format!("{q}.final_layer_norm"), d)?,
                fc1: Linear::load(&st, &format!("{q}.fc1"), 4 * d, d, p)?,
                fc2: Linear::load(&st, &format!("{q}.fc2"), d, 4 * d, p)?,
            });
        }
        let dec_ln = Norm::load(&st, "decoder.layer_norm", d)?;
        Ok(WhisperModel {
            config,
            precision,
            conv1,
            conv2,
            enc_pos,
            enc_layers,
            enc_ln,
            embed,
            dec_pos,
            dec_layers,
            dec_ln,
        })
    }

    /// Model dimensions.
    pub fn dims(&self) -> ModelDimensions {
        self.config.dims
    }

    /// Run-time weight precision.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Number of mel frames of one window (2 × n_audio_ctx = 3000).
    pub fn n_frames(&self) -> usize {
        2 * self.config.dims.n_audio_ctx
    }

    /// Runs the encoder on one window of log-mel features `[n_mels, n_frames]`
    /// (mel-major, as produced by the feature extractor and padded to 3000 frames).
    pub fn encode(&self, mel: &[f32]) -> Result<EncoderOutput> {
        let dm = self.config.dims;
        let (nm, t1) = (dm.n_mels, self.n_frames());
        if mel.len() != nm * t1 {
            return Err(WhisperError::Invalid(format!(
                "encoder input has {} values, expected {nm} mels x {t1} frames",
                mel.len()
            )));
        }
        let d = dm.n_audio_state;
        // conv1 (k=3, pad 1, stride 1) as im2col + GEMM: col[t][c*3+k] = mel[c][t+k-1]
        let mut col = vec![0f32; t1 * nm * 3];
        col.par_chunks_mut(nm * 3).enumerate().for_each(|(t, row)| {
            for c in 0..nm {
                for k in 0..3 {
                    let s = t as isize + k as isize - 1;
                    row[c * 3 + k] = if s >= 0 && (s as usize) < t1 { mel[c * t1 + s as usize] } else { 0.0 };
                }
            }
        });
        let mut h1 = vec![0f32; t1 * d];
        self.conv1.forward(&col, t1, &mut h1);
        gelu_par(&mut h1);
        // conv2 (k=3, pad 1, stride 2): col[t][c*3+k] = h1[2t+k-1][c]
        let t2 = dm.n_audio_ctx;
        let mut col2 = vec![0f32; t2 * d * 3];
        col2.par_chunks_mut(d * 3).enumerate().for_each(|(t, row)| {
            for k in 0..3 {
                let s = 2 * t as isize + k as isize - 1;
                if s >= 0 && (s as usize) < t1 {
                    let src = &h1[s as usize * d..(s as usize + 1) * d];
                    for c in 0..d {
                        row[c * 3 + k] = src[c];
                    }
                }
            }
        });
        drop(h1);
        let mut x = vec![0f32; t2 * d];
        self.conv2.forward(&col2, t2, &mut x);
        drop(col2);
        gelu_par(&mut x);
        for (v, p) in x.iter_mut().zip(&self.enc_pos) {
            *v += p;
        }
        let heads = dm.n_audio_head;
        let mut hbuf = vec![0f32; t2 * d];
        let mut qkv = vec![0f32; t2 * 3 * d];
        let mut ctx = vec![0f32; t2 * d];
        let mut ff = vec![0f32; t2 * 4 * d];
        for l in &self.enc_layers {
            hbuf.copy_from_slice(&x);
            norm_par(&l.ln1, &mut hbuf, d);
            l.qkv.forward(&hbuf, t2, &mut qkv);
            self_attention_full(&qkv, t2, d, heads, &mut ctx);
            l.out.forward(&ctx, t2, &mut hbuf);
            add(&mut x, &hbuf);
            hbuf.copy_from_slice(&x);
            norm_par(&l.ln2, &mut hbuf, d);
            l.fc1.forward(&hbuf, t2, &mut ff);
            gelu_par(&mut ff);
            l.fc2.forward(&ff, t2, &mut hbuf);
            add(&mut x, &hbuf);
        }
        norm_par(&self.enc_ln, &mut x, d);
        Ok(EncoderOutput { data: x, frames: t2 })
    }

    /// A decoder state with room for `max_beams` rows.
    pub fn new_state(&self, max_beams: usize) -> DecoderState {
        let dm = self.config.dims;
        let d = dm.n_text_state;
        let l = dm.n_text_layer;
        let per = max_beams * dm.n_text_ctx * d;
        DecoderState {
            max_beams,
            ctx: dm.n_text_ctx,
            d,
            layers: l,
            len: 0,
            self_k: vec![0f32; l * per],
            self_v: vec![0f32; l * per],
            cross_k: vec![0f32; l * dm.n_audio_ctx * d],
            cross_vt: vec![0f32; l * dm.n_audio_ctx * d],
            audio_ctx: dm.n_audio_ctx,
            tmp: Vec::new(),
        }
    }

    /// Computes the cross-attention K/V of every decoder layer for one window and resets
    /// the self-attention cache.
    pub fn set_audio(&self, st: &mut DecoderState, enc: &EncoderOutput) {
        let dm = self.config.dims;
        let (d, t, h) = (dm.n_text_state, enc.frames, dm.n_text_head);
        let hd = d / h;
        let mut kv = vec![0f32; t * 2 * d];
        for (li, l) in self.dec_layers.iter().enumerate() {
            l.xkv.forward(&enc.data, t, &mut kv);
            let ck = &mut st.cross_k[li * t * d..(li + 1) * t * d];
            let cv = &mut st.cross_vt[li * t * d..(li + 1) * t * d];
            for hi in 0..h {
                for ti in 0..t {
                    let src = &kv[ti * 2 * d + hi * hd..ti * 2 * d + (hi + 1) * hd];
                    ck[(hi * t + ti) * hd..(hi * t + ti + 1) * hd].copy_from_slice(src);
                    let srcv = &kv[ti * 2 * d + d + hi * hd..ti * 2 * d + d + (hi + 1) * hd];
                    for (e, &v) in srcv.iter().enumerate() {
                        cv[(hi * hd + e) * t + ti] = v;
                    }
                }
            }
        }
        st.len = 0;
    }

    /// Runs the decoder on `tokens`, where row `r` belongs to cache row `beams[r]` at
    /// position `positions[r]` (its K/V are written there; it attends to positions
    /// `0..=positions[r]` of its row). Returns the final hidden states `[rows, d]`
    /// (after the last LayerNorm).
    pub fn decode_rows(
        &self,
        st: &mut DecoderState,
        tokens: &[u32],
        beams: &[usize],
        positions: &[usize],
    ) -> Result<Vec<f32>> {
        let dm = self.config.dims;
        let (d, m, h) = (dm.n_text_state, tokens.len(), dm.n_text_head);
        let hd = d / h;
        for (r, (&b, &p)) in beams.iter().zip(positions).enumerate() {
            if b >= st.max_beams || p >= st.ctx || tokens[r] as usize >= dm.n_vocab {
                return Err(WhisperError::Invalid(format!(
                    "decoder row {r}: beam {b}, position {p} or token {} out of range (max beams {}, context {})",
                    tokens[r], st.max_beams, st.ctx
                )));
            }
        }
        let mut x = vec![0f32; m * d];
        for r in 0..m {
            let row = &mut x[r * d..(r + 1) * d];
            self.embed.row_to_f32(tokens[r] as usize, d, row);
            for (v, p) in row.iter_mut().zip(&self.dec_pos[positions[r] * d..(positions[r] + 1) * d]) {
                *v += p;
            }
        }
        let mut hbuf = vec![0f32; m * d];
        let mut qkv = vec![0f32; m * 3 * d];
        let mut ctx = vec![0f32; m * d];
        let mut ff = vec![0f32; m * 4 * d];
        let scale = 1.0 / (hd as f32).sqrt();
        let per_layer = st.max_beams * st.ctx * d;
        for (li, l) in self.dec_layers.iter().enumerate() {
            // self-attention with the in-place KV cache
            hbuf.copy_from_slice(&x);
            l.ln1.apply(&mut hbuf, d);
            l.qkv.forward(&hbuf, m, &mut qkv);
            let kc = &mut st.self_k[li * per_layer..(li + 1) * per_layer];
            let vc = &mut st.self_v[li * per_layer..(li + 1) * per_layer];
            for r in 0..m {
                let off = (beams[r] * st.ctx + positions[r]) * d;
                kc[off..off + d].copy_from_slice(&qkv[r * 3 * d + d..r * 3 * d + 2 * d]);
                vc[off..off + d].copy_from_slice(&qkv[r * 3 * d + 2 * d..r * 3 * d + 3 * d]);
            }
            let (kc, vc) = (&*kc, &*vc);
            let ctxlen = st.ctx;
            ctx.par_chunks_mut(d).enumerate().for_each(|(r, out)| {
                let base = beams[r] * ctxlen * d;
                let n = positions[r] + 1;
                let mut sc = vec![0f32; n];
                for hi in 0..h {
                    let q = &qkv[r * 3 * d + hi * hd..r * 3 * d + (hi + 1) * hd];
                    for (j, s) in sc.iter_mut().enumerate() {
                        let k = &kc[base + j * d + hi * hd..base + j * d + (hi + 1) * hd];
                        *s = q.iter().zip(k).map(|(a, b)| a * b).sum::<f32>() * scale;
                    }
                    softmax(&mut sc);
                    let o = &mut out[hi * hd..(hi + 1) * hd];
                    o.fill(0.0);
                    for (j, &p) in sc.iter().enumerate() {
                        let v = &vc[base + j * d + hi * hd..base + j * d + (hi + 1) * hd];
                        for (a, b) in o.iter_mut().zip(v) {
                            *a += p * b;
                        }
                    }
                }
            });
            l.out.forward(&ctx, m, &mut hbuf);
            add(&mut x, &hbuf);
            // cross-attention against the window's cached K/V
            hbuf.copy_from_slice(&x);
            l.ln_x.apply(&mut hbuf, d);
            let mut q = vec![0f32; m * d];
            l.xq.forward(&hbuf, m, &mut q);
            self.cross_attention(st, li, &q, m, &mut ctx);
            l.xout.forward(&ctx, m, &mut hbuf);
            add(&mut x, &hbuf);
            // MLP
            hbuf.copy_from_slice(&x);
            l.ln2.apply(&mut hbuf, d);
            l.fc1.forward(&hbuf, m, &mut ff);
            gelu(&mut ff);
            l.fc2.forward(&ff, m, &mut hbuf);
            add(&mut x, &hbuf);
        }
        self.dec_ln.apply(&mut x, d);
        Ok(x)
    }

    fn cross_attention(&self, st: &DecoderState, li: usize, q: &[f32], m: usize, out: &mut [f32]) {
        let dm = self.config.dims;
        let (d, h, t) = (dm.n_text_state, dm.n_text_head, st.audio_ctx);
        let hd = d / h;
        let scale = 1.0 / (hd as f32).sqrt();
        let ck = &st.cross_k[li * t * d..(li + 1) * t * d];
        let cv = &st.cross_vt[li * t * d..(li + 1) * t * d];
        let heads: Vec<Vec<f32>> = (0..h)
            .into_par_iter()
            .map(|hi| {
                let mut qh = vec![0f32; m * hd];
                for r in 0..m {
                    for e in 0..hd {
                        qh[r * hd + e] = q[r * d + hi * hd + e] * scale;
                    }
                }
                let mut sc = vec![0f32; m * t];
                gemm_nt_serial(&qh, m, hd, super::kernels::WRef::F32(&ck[hi * t * hd..(hi + 1) * t * hd]), t, None, &mut sc, t);
                for row in sc.chunks_exact_mut(t) {
                    softmax(row);
                }
                let mut o = vec![0f32; m * hd];
                gemm_nt_serial(&sc, m, t, super::kernels::WRef::F32(&cv[hi * hd * t..(hi + 1) * hd * t]), hd, None, &mut o, hd);
                o
            })
            .collect();
        for (hi, o) in heads.iter().enumerate() {
            for r in 0..m {
                out[r * d + hi * hd..r * d + (hi + 1) * hd].copy_from_slice(&o[r * hd..(r + 1) * hd]);
            }
        }
    }

    /// Vocabulary logits `[rows, n_vocab]` of final hidden states `[rows, d]` (the
    /// output projection is tied to the token embedding).
    pub fn logits(&self, hidden: &[f32], rows: usize) -> Vec<f32> {
        let dm = self.config.dims;
        let mut out = vec![0f32; rows * dm.n_vocab];
        gemm_nt(hidden, rows, dm.n_text_state, self.embed.view(), dm.n_vocab, None, &mut out);
        out
    }
}

/// Per-transcription decoder state: self-attention KV cache of every beam row and the
/// current window's cross-attention K/V.
pub struct DecoderState {
    max_beams: usize,
    ctx: usize,
    d: usize,
    layers: usize,
    audio_ctx: usize,
    /// Number of positions filled (shared by all beam rows).
    pub len: usize,
    self_k: Vec<f32>,
    self_v: Vec<f32>,
    cross_k: Vec<f32>,
    cross_vt: Vec<f32>,
    tmp: Vec<f32>,
}

impl DecoderState {
    /// Maximum number of beam rows.
    pub fn max_beams(&self) -> usize {
        self.max_beams
    }

    /// Reorders the cached rows: new row `i` = old row `src[i]` (positions `0..len`).
    pub fn reorder(&mut self, src: &[usize]) {
        if src.iter().enumerate().all(|(i, &s)| i == s) {
            return;
        }
        let (ctx, d, len, nb) = (self.ctx, self.d, self.len, self.max_beams);
        let row = ctx * d;
        let used = len * d;
        for buf in [&mut self.self_k, &mut self.self_v] {
            for l in 0..self.layers {
                let layer = &mut buf[l * nb * row..(l + 1) * nb * row];
                self.tmp.clear();
                for &s in src {
                    self.tmp.extend_from_slice(&layer[s * row..s * row + used]);
                }
                for i in 0..src.len() {
                    layer[i * row..i * row + used].copy_from_slice(&self.tmp[i * used..(i + 1) * used]);
                }
            }
        }
    }
}

fn add(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

fn gelu_par(x: &mut [f32]) {
    x.par_chunks_mut(16384).for_each(gelu);
}

fn norm_par(n: &Norm, x: &mut [f32], d: usize) {
    x.par_chunks_mut(d * 64).for_each(|c| n.apply(c, d));
}

/// Full (non-causal) multi-head self-attention of the encoder: `qkv` `[t, 3d]` →
/// `out` `[t, d]`. Work is split into (head, block of 64 query rows) tasks, each
/// computing its score block with the NT GEMM, a row softmax and the product with Vᵀ.
fn self_attention_full(qkv: &[f32], t: usize, d: usize, heads: usize, out: &mut [f32]) {
    let hd = d / heads;
    let scale = 1.0 / (hd as f32).sqrt();
    // per head contiguous Q (scaled), K and Vᵀ
    let per: Vec<(Vec<f32>, Vec<f32>, Vec<f32>)> = (0..heads)
        .into_par_iter()
        .map(|h| {
            let mut q = vec![0f32; t * hd];
            let mut k = vec![0f32; t * hd];
            let mut vt = vec![0f32; hd * t];
            for i in 0..t {
                let row = &qkv[i * 3 * d..(i + 1) * 3 * d];
                for e in 0..hd {
                    q[i * hd + e] = row[h * hd + e] * scale;
                    k[i * hd + e] = row[d + h * hd + e];
                    vt[e * t + i] = row[2 * d + h * hd + e];
                }
            }
            (q, k, vt)
        })
        .collect();
    const RB: usize = 64;
    let mut res = vec![0f32; heads * t * hd];
    res.par_chunks_mut(t * hd).enumerate().for_each(|(h, oh)| {
      oh.par_chunks_mut(RB * hd).enumerate().for_each(|(bi, o)| {
        let r0 = bi * RB;
        let rows = o.len() / hd;
        let (q, k, vt) = &per[h];
        let mut sc = vec![0f32; rows * t];
        gemm_nt_serial(&q[r0 * hd..(r0 + rows) * hd], rows, hd, super::kernels::WRef::F32(k), t, None, &mut sc, t);
        for row in sc.chunks_exact_mut(t) {
            softmax(row);
        }
        gemm_nt_serial(&sc, rows, t, super::kernels::WRef::F32(vt), hd, None, o, hd);
      });
    });
    out.par_chunks_mut(d).enumerate().for_each(|(i, row)| {
        for h in 0..heads {
            row[h * hd..(h + 1) * hd].copy_from_slice(&res[(h * t + i) * hd..(h * t + i + 1) * hd]);
        }
    });
}
