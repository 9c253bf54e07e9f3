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
use super::nn::{gelu, gemm_f32, relu, LayerNorm, Linear};
use super::weights::TensorStore;
use hark_engine::delegate::{DecoderSession, StepRows};
use hark_engine::ops::{attention, AttentionOpts, Rows};
use hark_engine::KvCache;

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
    /// for a tied projection (FireRedASR) an engine copy of the embedding at f16/int8, and
    /// `None` at f32 (the embedding itself is used).
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

/// Per-hypothesis decoder state: the engine's preallocated self-attention [`KvCache`]
/// (one K/V buffer per layer, rows written once; beam reordering permutes index tables,
/// never K/V data) and which positions hold `pad_id` (masked keys).
#[derive(Debug, Clone)]
pub struct DecoderState {
    cache: KvCache,
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

    /// Most positions this state can hold.
    pub fn capacity(&self) -> usize {
        self.cache.max_len()
    }

    /// Reorders hypotheses: new row `i` continues old row `src[i]` (beam pruning).
    pub fn reorder(&mut self, src: &[usize]) -> Result<(), ConformerError> {
        self.cache.reorder(src)?;
        self.is_pad = src.iter().map(|&s| self.is_pad[s].clone()).collect();
        Ok(())
    }
}

/// Positions [`TransformerDecoder::new_state`] reserves (capped by `pe_maxlen`).
pub const DEFAULT_STATE_POSITIONS: usize = 256;

impl CrossKv {
    /// Encoder frames (including masked ones).
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// Unmasked encoder frames.
    pub fn valid(&self) -> usize {
        self.valid
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
            // Tied: f32 weights keep the exact f32 product below; reduced precisions get an
            // engine copy of the embedding so the vocabulary projection (the largest single
            // matrix of a step) runs on the threaded f16/int8 kernels.
            if ws.precision() == hark_engine::Precision::F32 {
                None
            } else {
                Some(Linear {
                    w: ws.to_weight(embedding.clone(), cfg.odim, d)?,
                    b: None,
                    k: d,
                    n: cfg.odim,
                })
            }
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

    /// Empty state for `beams` hypotheses with room for
    /// [`DEFAULT_STATE_POSITIONS`] positions (at most `pe_maxlen`).
    pub fn new_state(&self, beams: usize) -> DecoderState {
        self.new_state_with_capacity(beams, DEFAULT_STATE_POSITIONS)
    }

    /// Empty state for `beams` hypotheses and up to `positions` positions (at most
    /// `pe_maxlen`): the KV cache is allocated once here.
    pub fn new_state_with_capacity(&self, beams: usize, positions: usize) -> DecoderState {
        DecoderState {
            cache: KvCache::new(
                self.layers.len(),
                beams,
                positions.clamp(1, self.pe_maxlen),
                self.d_model,
            ),
            is_pad: vec![Vec::new(); beams.max(1)],
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
        if pos >= state.capacity() {
            return Err(ConformerError::Input(format!(
                "decoder position {pos} exceeds the state's capacity {} (new_state_with_capacity)",
                state.capacity()
            )));
        }
        if nb != state.is_pad.len() {
            return Err(ConformerError::Input(format!(
                "{nb} tokens for a state of {} hypotheses",
                state.is_pad.len()
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
        let opts = AttentionOpts::new(self.n_head, d / self.n_head);
        let mut mask: Vec<f32> = Vec::new();
        for (li, l) in self.layers.iter().enumerate() {
            // Self-attention over the cached prefix plus this position (one call per beam:
            // each reads its own history through the cache's index table).
            let h = l.self_norm.forward(&x);
            let q = l.self_attn.w_q.forward(&h);
            let k = l.self_attn.w_k.forward(&h);
            let v = l.self_attn.w_v.forward(&h);
            state.cache.append(li, &k, &v)?;
            for b in 0..nb {
                let is_pad = &state.is_pad[b];
                mask.clear();
                if is_pad.iter().any(|&p| p) {
                    mask.extend(
                        is_pad
                            .iter()
                            .map(|&p| if p { f32::NEG_INFINITY } else { 0.0 }),
                    );
                }
                let mut o = opts;
                if !mask.is_empty() {
                    o = o.with_mask(&mask);
                }
                attention(
                    Rows::new(&q[b * d..(b + 1) * d], 1, d),
                    state.cache.keys(li, b)?,
                    state.cache.values(li, b)?,
                    &o,
                    &mut ctx[b * d..(b + 1) * d],
                )?;
            }
            let o = l.self_attn.fc.forward(&ctx);
            x.iter_mut().zip(&o).for_each(|(a, b)| *a += b);
            // Cross-attention over the encoder output.
            let h = l.cross_norm.forward(&x);
            let q = l.cross_attn.w_q.forward(&h);
            // All beams in one call; masked frames (>= valid) are simply not offered.
            attention(
                Rows::new(&q, nb, d),
                Rows::new(&cross.k[li], cross.valid, d),
                Rows::new(&cross.v[li], cross.valid, d),
                &opts,
                &mut ctx,
            )?;
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

/// One utterance's decoder as the searches drive it: every hypothesis advances one
/// position per [`DecoderSteps::step`], and beam pruning reorders them. Implemented on the
/// CPU ([`CpuSteps`]) and over a delegate's [`DecoderSession`] ([`SessionSteps`]), so
/// the beam search ([`super::search`]) runs unchanged on either.
pub trait DecoderSteps {
    /// Feeds `tokens[b]` at the next position of hypothesis `b` and returns the logits
    /// `[tokens.len() × vocab]`.
    fn step(&mut self, tokens: &[u32]) -> Result<Vec<f32>, ConformerError>;

    /// New hypothesis `i` continues old hypothesis `src[i]`.
    fn reorder(&mut self, src: &[usize]) -> Result<(), ConformerError>;
}

/// [`DecoderSteps`] on the CPU: the decoder weights, a [`DecoderState`] and the
/// utterance's [`CrossKv`].
#[derive(Debug)]
pub struct CpuSteps<'a> {
    /// Decoder weights.
    pub dec: &'a TransformerDecoder,
    /// Per-hypothesis state.
    pub state: DecoderState,
    /// The utterance's cross-attention K/V.
    pub cross: &'a CrossKv,
}

impl DecoderSteps for CpuSteps<'_> {
    fn step(&mut self, tokens: &[u32]) -> Result<Vec<f32>, ConformerError> {
        self.dec.step(tokens, &mut self.state, self.cross)
    }

    fn reorder(&mut self, src: &[usize]) -> Result<(), ConformerError> {
        self.state.reorder(src)
    }
}

/// [`DecoderSteps`] over a delegate's [`DecoderSession`] (its caches on the device), after
/// [`DecoderSession::begin`] with the utterance's unmasked encoder frames. Hypothesis `b`
/// is the session's beam slot `b`.
pub struct SessionSteps {
    session: Box<dyn DecoderSession>,
    vocab: usize,
    slots: Vec<usize>,
}

impl std::fmt::Debug for SessionSteps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionSteps")
            .field("session", &self.session.name())
            .field("vocab", &self.vocab)
            .finish()
    }
}

fn session_err(call: &'static str, source: hark_engine::Error) -> ConformerError {
    ConformerError::Session { call, source }
}

impl SessionSteps {
    /// Starts the utterance on `session`: its cross-attention K/V from the first `valid`
    /// frames of `enc` (`[frames × d]`; masked frames are not offered, as on the CPU).
    pub fn begin(
        mut session: Box<dyn DecoderSession>,
        dec: &TransformerDecoder,
        enc: &[f32],
        valid: usize,
    ) -> Result<Self, ConformerError> {
        let d = dec.d_model;
        if enc.len() < valid * d {
            return Err(ConformerError::Input(format!(
                "decoder session: {} encoder values for {valid} frames of {d}",
                enc.len()
            )));
        }
        session
            .begin(&enc[..valid * d], valid)
            .map_err(|e| session_err("begin", e))?;
        Ok(SessionSteps {
            session,
            vocab: dec.vocab,
            slots: Vec::new(),
        })
    }

    /// The delegate's name.
    pub fn name(&self) -> &str {
        self.session.name()
    }

    /// Teacher-forced logits of one hypothesis: forgets the cached positions, runs
    /// `prefix` (starting with `<sos>`) as one shared prompt step and returns the logits
    /// of all its rows `[prefix.len() × vocab]` (row `i` predicts `prefix[i + 1]`).
    pub fn prompt_logits(&mut self, prefix: &[u32]) -> Result<Vec<f32>, ConformerError> {
        self.session.reset();
        self.session
            .step(prefix, StepRows::Shared)
            .map_err(|e| session_err("step", e))?;
        let mut out = vec![0f32; prefix.len() * self.vocab];
        self.session
            .logits(0, prefix.len(), &mut out)
            .map_err(|e| session_err("logits", e))?;
        Ok(out)
    }
}

impl DecoderSteps for SessionSteps {
    fn step(&mut self, tokens: &[u32]) -> Result<Vec<f32>, ConformerError> {
        let n = tokens.len();
        if self.slots.len() != n {
            self.slots = (0..n).collect();
        }
        self.session
            .step(tokens, StepRows::Beams(&self.slots))
            .map_err(|e| session_err("step", e))?;
        let mut out = vec![0f32; n * self.vocab];
        self.session
            .logits(0, n, &mut out)
            .map_err(|e| session_err("logits", e))?;
        Ok(out)
    }

    fn reorder(&mut self, src: &[usize]) -> Result<(), ConformerError> {
        self.session
            .reorder(src)
            .map_err(|e| session_err("reorder", e))
    }
}
