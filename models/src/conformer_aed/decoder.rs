//! Transformer decoder with a self-attention KV cache and once-per-utterance cross K/V.
//!
//! Follows FireRedASR `fireredasr/models/module/transformer_decoder.py`: token embedding
//! ×√d + sinusoidal positions, pre-LN `DecoderLayer`s (self-attention, cross-attention,
//! GELU FFN), final LayerNorm, output projection tied to the embedding. The reference caches
//! each layer's *outputs* and recomputes K/V of the whole prefix every step; caching the
//! K/V rows instead is equivalent (causal mask) and is what [`DecoderState`] does. Keys whose
//! token is `pad_id` are masked, as the reference's `ignored_target_position_is_0` does.

use super::config::ConformerConfig;
use super::encoder::{load_linear, load_ln};
use super::error::ConformerError;
use super::nn::{gelu, gemm_f32, relu, softmax, LayerNorm, Linear};
use super::weights::TensorStore;

#[derive(Debug, Clone)]
struct Attention {
    w_q: Linear,
    w_k: Linear,
    w_v: Linear,
    fc: Linear,
}

impl Attention {
    fn load(ws: &mut TensorStore, p: &str, d: usize, k_bias: bool) -> Result<Self, ConformerError> {
        Ok(Self {
            w_q: load_linear(ws, &format!("{p}.w_qs"), d, d, true)?,
            w_k: load_linear(ws, &format!("{p}.w_ks"), d, d, k_bias)?,
            w_v: load_linear(ws, &format!("{p}.w_vs"), d, d, true)?,
            fc: load_linear(ws, &format!("{p}.fc"), d, d, true)?,
        })
    }
}

#[derive(Debug, Clone)]
struct DecoderLayer {
    self_norm: LayerNorm,
    self_attn: Attention,
    cross_norm: LayerNorm,
    cross_attn: Attention,
    mlp_norm: LayerNorm,
    w1: Linear,
    w2: Linear,
}

/// The decoder weights.
#[derive(Debug, Clone)]
pub struct TransformerDecoder {
    embedding: Vec<f32>,
    /// Untied output projection `[vocab × d]` + bias (ESPnet/WeNet `output_layer`);
    /// `None` when tied to the embedding (FireRedASR).
    output: Option<Linear>,
    layers: Vec<DecoderLayer>,
    norm_out: LayerNorm,
    d_model: usize,
    n_head: usize,
    vocab: usize,
    embed_scale: f32,
    gelu: bool,
    pad_id: u32,
    pe_maxlen: usize,
}

/// Cross-attention keys and values of one utterance, per layer (`[frames × d]` each).
#[derive(Debug, Clone)]
pub struct CrossKv {
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    frames: usize,
    valid: usize,
}

/// Per-hypothesis decoder state: self-attention K/V rows of every layer and which
/// positions hold `pad_id` (masked keys).
#[derive(Debug, Clone, Default)]
pub struct DecoderState {
    /// `[layer][beam]` → `[len × d]` keys.
    k: Vec<Vec<Vec<f32>>>,
    /// `[layer][beam]` → `[len × d]` values.
    v: Vec<Vec<Vec<f32>>>,
    /// `[beam][pos]`: token at `pos` is `pad_id`.
    is_pad: Vec<Vec<bool>>,
}

impl DecoderState {
    /// Cached positions.
    pub fn len(&self) -> usize {
        self.is_pad.first().map_or(0, Vec::len)
    }

    /// True before the first step.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reorders hypotheses: new row `i` continues old row `src[i]` (beam pruning).
    pub fn reorder(&mut self, src: &[usize]) {
        for layer in self.k.iter_mut().chain(self.v.iter_mut()) {
            *layer = src.iter().map(|&s| layer[s].clone()).collect();
        }
        self.is_pad = src.iter().map(|&s| self.is_pad[s].clone()).collect();
    }
}

#[allow(clippy::too_many_arguments)]
fn attend(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    len: usize,
    d: usize,
    n_head: usize,
    mask: impl Fn(usize) -> bool,
    out: &mut [f32],
) {
    let dk = d / n_head;
    let temperature = (dk as f64).sqrt() as f32;
    let mut s = vec![0.0f32; len];
    for h in 0..n_head {
        gemm_f32(
            (1, len, dk),
            &mut s,
            len,
            false,
            &q[h * dk..],
            (dk, 1),
            &k[h * dk..],
            (1, d),
        );
        for (j, x) in s.iter_mut().enumerate() {
            *x = if mask(j) {
                f32::NEG_INFINITY
            } else {
                *x / temperature
            };
        }
        softmax(&mut s);
        gemm_f32(
            (1, dk, len),
            &mut out[h * dk..],
            dk,
            false,
            &s,
            (len, 1),
            &v[h * dk..],
            (d, 1),
        );
    }
}

impl TransformerDecoder {
    /// Takes the `decoder.*` tensors.
    pub fn load(ws: &mut TensorStore, cfg: &ConformerConfig) -> Result<Self, ConformerError> {
        let d = cfg.d_model;
        let eps = cfg.layer_norm_eps;
        let embedding = ws.take("decoder.tgt_word_emb.weight", &[cfg.odim, d])?;
        let mut layers = Vec::with_capacity(cfg.n_layers_dec);
        for i in 0..cfg.n_layers_dec {
            let p = format!("decoder.layer_stack.{i}");
            layers.push(DecoderLayer {
                self_norm: load_ln(ws, &format!("{p}.self_attn_norm"), d, eps)?,
                self_attn: Attention::load(ws, &format!("{p}.self_attn"), d, cfg.linear_bias)?,
                cross_norm: load_ln(ws, &format!("{p}.cross_attn_norm"), d, eps)?,
                cross_attn: Attention::load(ws, &format!("{p}.cross_attn"), d, cfg.linear_bias)?,
                mlp_norm: load_ln(ws, &format!("{p}.mlp_norm"), d, eps)?,
                w1: load_linear(ws, &format!("{p}.mlp.w_1"), d, d * cfg.ffn_mult, true)?,
                w2: load_linear(ws, &format!("{p}.mlp.w_2"), d * cfg.ffn_mult, d, true)?,
            });
        }
        let output = if cfg.tied_output {
            None
        } else {
            Some(load_linear(ws, "decoder.tgt_word_prj", d, cfg.odim, true)?)
        };
        Ok(Self {
            embedding,
            output,
            layers,
            norm_out: load_ln(ws, "decoder.layer_norm_out", d, eps)?,
            d_model: d,
            n_head: cfg.n_head,
            vocab: cfg.odim,
            embed_scale: if cfg.dec_embed_scale {
                (d as f32).sqrt()
            } else {
                1.0
            },
            gelu: cfg.dec_activation == "gelu",
            pad_id: cfg.pad_id,
            pe_maxlen: cfg.pe_maxlen,
        })
    }

    /// Vocabulary size.
    pub fn vocab(&self) -> usize {
        self.vocab
    }

    /// Most positions a hypothesis can have (the positional table length).
    pub fn max_positions(&self) -> usize {
        self.pe_maxlen
    }

    /// Cross-attention K/V of an encoder output (`[frames × d]`, first `valid` unmasked).
    pub fn cross_kv(&self, enc: &[f32], frames: usize, valid: usize) -> CrossKv {
        let (mut k, mut v) = (Vec::new(), Vec::new());
        for l in &self.layers {
            k.push(l.cross_attn.w_k.forward(enc));
            v.push(l.cross_attn.w_v.forward(enc));
        }
        CrossKv {
            k,
            v,
            frames,
            valid,
        }
    }

    /// Empty state for `beams` hypotheses.
    pub fn new_state(&self, beams: usize) -> DecoderState {
        DecoderState {
            k: vec![vec![Vec::new(); beams]; self.layers.len()],
            v: vec![vec![Vec::new(); beams]; self.layers.len()],
            is_pad: vec![Vec::new(); beams],
        }
    }

    /// One decoding step: feeds `tokens[b]` at the next position of every hypothesis and
    /// returns the logits `[beams × vocab]`.
    pub fn step(
        &self,
        tokens: &[u32],
        state: &mut DecoderState,
        cross: &CrossKv,
    ) -> Result<Vec<f32>, ConformerError> {
        let d = self.d_model;
        let nb = tokens.len();
        let pos = state.len();
        if pos >= self.pe_maxlen {
            return Err(ConformerError::Input(format!(
                "decoder position {pos} exceeds pe_maxlen {}",
                self.pe_maxlen
            )));
        }
        let mut x = vec![0.0f32; nb * d];
        for (b, &tok) in tokens.iter().enumerate() {
            let tok = tok as usize;
            if tok >= self.vocab {
                return Err(ConformerError::Input(format!(
                    "token id {tok} outside the vocabulary ({})",
                    self.vocab
                )));
            }
            let e = &self.embedding[tok * d..][..d];
            for c in 0..d {
                x[b * d + c] = e[c] * self.embed_scale + super::nn::sinusoid(pos as f32, c, d);
            }
            state.is_pad[b].push(tokens[b] == self.pad_id);
        }
        let mut ctx = vec![0.0f32; nb * d];
        for (li, l) in self.layers.iter().enumerate() {
            // Self-attention over the cached prefix plus this position.
            let h = l.self_norm.forward(&x);
            let q = l.self_attn.w_q.forward(&h);
            let k = l.self_attn.w_k.forward(&h);
            let v = l.self_attn.w_v.forward(&h);
            for b in 0..nb {
                state.k[li][b].extend_from_slice(&k[b * d..][..d]);
                state.v[li][b].extend_from_slice(&v[b * d..][..d]);
                let is_pad = &state.is_pad[b];
                attend(
                    &q[b * d..][..d],
                    &state.k[li][b],
                    &state.v[li][b],
                    pos + 1,
                    d,
                    self.n_head,
                    |j| is_pad[j],
                    &mut ctx[b * d..][..d],
                );
            }
            let o = l.self_attn.fc.forward(&ctx);
            x.iter_mut().zip(&o).for_each(|(a, b)| *a += b);
            // Cross-attention over the encoder output.
            let h = l.cross_norm.forward(&x);
            let q = l.cross_attn.w_q.forward(&h);
            for b in 0..nb {
                attend(
                    &q[b * d..][..d],
                    &cross.k[li],
                    &cross.v[li],
                    cross.frames,
                    d,
                    self.n_head,
                    |j| j >= cross.valid,
                    &mut ctx[b * d..][..d],
                );
            }
            let o = l.cross_attn.fc.forward(&ctx);
            x.iter_mut().zip(&o).for_each(|(a, b)| *a += b);
            // Feed-forward.
            let mut h = l.w1.forward(&l.mlp_norm.forward(&x));
            if self.gelu {
                gelu(&mut h);
            } else {
                relu(&mut h);
            }
            let o = l.w2.forward(&h);
            x.iter_mut().zip(&o).for_each(|(a, b)| *a += b);
        }
        self.norm_out.forward_inplace(&mut x);
        if let Some(out) = &self.output {
            return Ok(out.forward(&x));
        }
        let mut logits = vec![0.0f32; nb * self.vocab];
        gemm_f32(
            (nb, self.vocab, d),
            &mut logits,
            self.vocab,
            false,
            &x,
            (d, 1),
            &self.embedding,
            (1, d),
        );
        Ok(logits)
    }
}
