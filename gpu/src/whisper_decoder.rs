//! The Whisper decoder step on the GPU, as a [`DecoderSession`] with its caches resident
//! on the device. The conformer-AED transformer decoder has the same pre-LN structure and
//! runs on the same [`GpuDecoderSession`]: [`DecoderWeights`] carries the few options in
//! which the two differ (LayerNorm eps, embedding scale, FFN activation, tied or biased
//! output, a masked pad token), and `crate::conformer_decoder` maps its checkpoint onto it.
//!
//! Follows openai-whisper `whisper/model.py` (`TextDecoder`, `ResidualAttentionBlock` with
//! cross-attention) the way hark's CPU decoder does (`models/src/whisper/model.rs`,
//! `WhisperModel::decode_step` / `set_audio` / `step_logits`): token embedding + learned
//! positions, pre-LN blocks (fused QKV self-attention over the cache, cross-attention to
//! the window's K/V, exact GELU MLP), final LayerNorm (eps 1e-5), logits tied to the
//! token embedding. Tensor names: /work/coord/whisper-format.md (`decoder.layers.{i}.
//! encoder_attn.kv_proj.weight`, ...).
//!
//! Device state of a session, all allocated when it opens:
//! - self-attention K and V per layer, `[max_len · beams, d]`: physical row `t·beams + b`
//!   is written once by beam slot `b` at position `t` (rows shared by all beams, a
//!   prompt, live in slot 0), exactly hark-engine's `KvCache` layout;
//! - the beam index table `[beams, max_len]` (u32, two copies used in turn): the row each
//!   beam reads at each position. A reorder is a gather of table rows by parent index on
//!   the device (`kv_table.wgsl`), fused with recording the step's new rows; K/V are never
//!   copied and never read back;
//! - cross-attention K/V per layer `[frames, 2d]` (the fused `kv_proj` output), computed
//!   once per window by [`DecoderSession::begin`] from the encoder output: the buffer the
//!   delegate's own encoder left on the device when the fingerprints agree, else an upload;
//! - activations for up to `max_len` rows (a prompt) and the logits.
//!
//! Per step only a small u32 block goes up (token ids, positions, cache rows, beam of
//! each row, key counts, parents) and only the asked-for logits `[rows, vocab]` come down.
//! Kernels: the existing matmul (fused bias/GELU/residual epilogues), LayerNorm and fused
//! attention (cross-attention), plus four decoder kernels: embedding lookup, table
//! update, cache write and self-attention through the table.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use hark_engine::delegate::{DecoderSession, StepRows};

use crate::context::{grid_1d, GpuContext, GpuTensor, Recorder};
use crate::kernels::{Act, GpuWeight, RowView, WeightFormat};
use crate::upload::{whisper_dim, WeightUploader};
use crate::whisper::{fingerprint, Buffers, Linear, Norm, StageTimes};
use crate::GpuError;

const EMBED: &str = include_str!("shaders/dec_embed.wgsl");
const KV_TABLE: &str = include_str!("shaders/kv_table.wgsl");
const KV_WRITE: &str = include_str!("shaders/kv_write.wgsl");
const SELF_ATTN: &str = include_str!("shaders/dec_self_attention.wgsl");
const GEMV: &str = include_str!("shaders/dec_gemv.wgsl");
const GELU: &str = include_str!("shaders/gelu.wgsl");

/// Most rows [`gemv`] takes (two vec4 accumulators per thread).
const GEMV_ROWS: usize = 8;

/// Largest text context a session takes (scores of one query row live in 16 KiB of
/// workgroup memory with room to spare).
pub(crate) const MAX_LEN: usize = 2048;

/// Whisper decoder dimensions (openai-whisper `ModelDimensions` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecoderDims {
    /// Vocabulary size.
    pub n_vocab: usize,
    /// Text context (448).
    pub n_text_ctx: usize,
    /// Width d.
    pub n_text_state: usize,
    /// Attention heads.
    pub n_text_head: usize,
    /// Blocks.
    pub n_text_layer: usize,
    /// Encoder positions (1500): the most cross-attention keys.
    pub n_audio_ctx: usize,
}

pub(crate) struct Layer {
    pub(crate) ln1: Norm,
    pub(crate) qkv: Linear,
    pub(crate) out: Linear,
    pub(crate) ln_x: Norm,
    pub(crate) xq: Linear,
    pub(crate) xkv: Linear,
    pub(crate) xout: Linear,
    pub(crate) ln2: Norm,
    pub(crate) fc1: Linear,
    pub(crate) fc2: Linear,
}

/// The decoder's weights on the device, in their stored precision (uploaded once per
/// model, shared by all sessions), and the few options in which the pre-LN decoders the
/// session runs differ (Whisper's: [`DecoderWeights::load`]; the conformer-AED's:
/// [`crate::conformer_decoder`]).
pub struct DecoderWeights {
    pub(crate) dims: DecoderDims,
    pub(crate) embed: GpuWeight,
    /// Position table `[n_text_ctx, d]` added to the embeddings.
    pub(crate) pos: GpuTensor,
    pub(crate) layers: Vec<Layer>,
    pub(crate) ln: Norm,
    pub(crate) bytes: u64,
    /// Model family for error messages ("whisper", "conformer_aed").
    pub(crate) family: &'static str,
    /// LayerNorm epsilon.
    pub(crate) eps: f32,
    /// Factor of the token embedding at the input (√d for FireRedASR, 1 for Whisper).
    pub(crate) embed_scale: f32,
    /// Activation of the feed-forward's first projection (GELU or ReLU).
    pub(crate) act: Act,
    /// FFN hidden width.
    pub(crate) n_ff: usize,
    /// Untied output projection with bias; `None`: logits tied to the token embedding.
    pub(crate) head: Option<Linear>,
    /// Token whose cached keys are masked in self-attention (FireRedASR's `pad_id`).
    pub(crate) pad: Option<u32>,
}

impl std::fmt::Debug for DecoderWeights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecoderWeights")
            .field("dims", &self.dims)
            .finish()
    }
}

impl DecoderWeights {
    /// Uploads the decoder of the hark Whisper model in `model_dir`.
    pub fn load(ctx: &GpuContext, model_dir: &Path) -> Result<Self, GpuError> {
        let cfg = crate::read_config(model_dir)?;
        let dims = DecoderDims {
            n_vocab: whisper_dim(&cfg, model_dir, "n_vocab")?,
            n_text_ctx: whisper_dim(&cfg, model_dir, "n_text_ctx")?,
            n_text_state: whisper_dim(&cfg, model_dir, "n_text_state")?,
            n_text_head: whisper_dim(&cfg, model_dir, "n_text_head")?,
            n_text_layer: whisper_dim(&cfg, model_dir, "n_text_layer")?,
            n_audio_ctx: whisper_dim(&cfg, model_dir, "n_audio_ctx")?,
        };
        let d = dims.n_text_state;
        if dims.n_text_head == 0
            || !d.is_multiple_of(dims.n_text_head)
            || d / dims.n_text_head > 128
        {
            return Err(GpuError::Model {
                path: model_dir.join("config.json"),
                reason: format!(
                    "unsupported decoder heads: d {d}, {} heads",
                    dims.n_text_head
                ),
            });
        }
        let u = WeightUploader::open(ctx, model_dir)?;
        let lin = |name: &str, n: usize, k: usize| -> Result<Linear, GpuError> {
            Ok(Linear {
                w: u.matrix(&format!("{name}.weight"), &[n, k])?,
                b: u.f32(&format!("{name}.bias"), &[n])?,
            })
        };
        let norm = |name: &str| -> Result<Norm, GpuError> {
            Ok(Norm {
                g: u.f32(&format!("{name}.weight"), &[d])?,
                b: u.f32(&format!("{name}.bias"), &[d])?,
            })
        };
        let embed = u.matrix("decoder.embed_tokens.weight", &[dims.n_vocab, d])?;
        let pos = u.f32("decoder.embed_positions.weight", &[dims.n_text_ctx, d])?;
        let mut layers = Vec::with_capacity(dims.n_text_layer);
        for i in 0..dims.n_text_layer {
            let q = format!("decoder.layers.{i}");
            layers.push(Layer {
                ln1: norm(&format!("{q}.self_attn_layer_norm"))?,
                qkv: lin(&format!("{q}.self_attn.qkv_proj"), 3 * d, d)?,
                out: lin(&format!("{q}.self_attn.out_proj"), d, d)?,
                ln_x: norm(&format!("{q}.encoder_attn_layer_norm"))?,
                xq: lin(&format!("{q}.encoder_attn.q_proj"), d, d)?,
                xkv: lin(&format!("{q}.encoder_attn.kv_proj"), 2 * d, d)?,
                xout: lin(&format!("{q}.encoder_attn.out_proj"), d, d)?,
                ln2: norm(&format!("{q}.final_layer_norm"))?,
                fc1: lin(&format!("{q}.fc1"), 4 * d, d)?,
                fc2: lin(&format!("{q}.fc2"), d, 4 * d)?,
            });
        }
        let ln = norm("decoder.layer_norm")?;
        let bytes = u.bytes();
        ctx.check_errors("uploading Whisper decoder weights")?;
        Ok(DecoderWeights {
            dims,
            embed,
            pos,
            layers,
            ln,
            bytes,
            family: "whisper",
            eps: 1e-5,
            embed_scale: 1.0,
            act: Act::Gelu,
            n_ff: 4 * d,
            head: None,
            pad: None,
        })
    }

    /// Decoder dimensions read from config.json.
    pub fn dims(&self) -> DecoderDims {
        self.dims
    }

    /// Bytes of weight matrices resident on the device.
    pub fn weight_bytes(&self) -> u64 {
        self.bytes
    }

    /// Whether a session of `max_beams` rows and `max_len` positions fits.
    pub fn accepts(&self, max_beams: usize, max_len: usize) -> bool {
        max_beams >= 1 && max_len >= 1 && max_len <= self.dims.n_text_ctx.min(MAX_LEN)
    }
}

/// What a session shares with the delegate that opened it.
pub(crate) struct SessionShared {
    /// Delegate name.
    pub(crate) name: String,
    /// Where the decoder's phase times go.
    pub(crate) clock: Arc<crate::StageClock>,
    /// Counter of windows that used the resident encoder output.
    pub(crate) reused: Arc<AtomicUsize>,
}

/// Offsets of the fields of the per-step u32 block (`m` = most rows of one step).
#[derive(Debug, Clone, Copy)]
struct InfoLayout {
    m: usize,
}

impl InfoLayout {
    fn tok(self) -> usize {
        0
    }
    fn pos(self) -> usize {
        self.m
    }
    fn dst(self) -> usize {
        2 * self.m
    }
    fn beam(self) -> usize {
        3 * self.m
    }
    fn len(self) -> usize {
        4 * self.m
    }
    fn parents(self) -> usize {
        5 * self.m
    }
}

/// The session's former name, from when it ran Whisper only.
pub type WhisperDecoderSession = GpuDecoderSession;

/// One transcription's decoder on the GPU, Whisper's or the conformer-AED's (see the
/// module docs).
pub struct GpuDecoderSession {
    ctx: Arc<GpuContext>,
    w: Arc<DecoderWeights>,
    encoder: Option<Arc<Mutex<Buffers>>>,
    shared: SessionShared,
    beams: usize,
    max_len: usize,
    kc: Vec<GpuTensor>,
    vc: Vec<GpuTensor>,
    tables: [GpuTensor; 2],
    cur: usize,
    cross: Vec<GpuTensor>,
    mem: GpuTensor,
    cross_cap: usize,
    frames: usize,
    pad: GpuTensor,
    pad_host: Vec<u32>,
    info: GpuTensor,
    layout: InfoLayout,
    host_info: Vec<u32>,
    x: GpuTensor,
    h: GpuTensor,
    qkv: GpuTensor,
    att: GpuTensor,
    q: GpuTensor,
    ff: GpuTensor,
    hidden: GpuTensor,
    rows_tmp: GpuTensor,
    logits: GpuTensor,
    len: usize,
    parents: Vec<u32>,
    rows: usize,
    pending: StageTimes,
}

impl std::fmt::Debug for GpuDecoderSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuDecoderSession")
            .field("name", &self.shared.name)
            .field("beams", &self.beams)
            .field("len", &self.len)
            .finish()
    }
}

fn w_source(template: &str, format: WeightFormat) -> String {
    let (decl, load) = match format {
        WeightFormat::F32 => (
            "@group(0) @binding(4) var<storage, read> w: array<f32>;",
            "fn load_w(n: u32, kk: u32) -> f32 { return w[n * p.kp + kk]; }\n\
             fn load_w2(n: u32, kk: u32) -> vec2<f32> {\n\
               let i = n * p.kp + kk;\n\
               return vec2<f32>(w[i], w[i + 1u]);\n\
             }\n\
             fn w_scale(n: u32) -> f32 { return 1.0; }",
        ),
        WeightFormat::F16 => (
            "@group(0) @binding(4) var<storage, read> w: array<u32>;",
            "fn load_w(n: u32, kk: u32) -> f32 {\n\
               let i = n * p.kp + kk;\n\
               return unpack2x16float(w[i >> 1u])[i & 1u];\n\
             }\n\
             fn load_w2(n: u32, kk: u32) -> vec2<f32> {\n\
               return unpack2x16float(w[(n * p.kp + kk) >> 1u]);\n\
             }\n\
             fn w_scale(n: u32) -> f32 { return 1.0; }",
        ),
        WeightFormat::I8 => (
            "@group(0) @binding(4) var<storage, read> w: array<u32>;\n\
             @group(0) @binding(5) var<storage, read> wscale: array<f32>;",
            "fn load_w(n: u32, kk: u32) -> f32 {\n\
               let i = n * p.kp + kk;\n\
               return f32(extractBits(bitcast<i32>(w[i >> 2u]), (i & 3u) * 8u, 8u));\n\
             }\n\
             fn load_w2(n: u32, kk: u32) -> vec2<f32> {\n\
               let i = n * p.kp + kk;\n\
               let word = bitcast<i32>(w[i >> 2u]);\n\
               let sh = (i & 3u) * 8u;\n\
               return vec2<f32>(f32(extractBits(word, sh, 8u)), f32(extractBits(word, sh + 8u, 8u)));\n\
             }\n\
             fn w_scale(n: u32) -> f32 { return wscale[n]; }",
        ),
    };
    template
        .replace("{{W_DECL}}", decl)
        .replace("{{W_LOAD}}", load)
        .replace("{{GELU}}", GELU)
}

impl Recorder<'_> {
    /// `out[m, n] (+)= act(x[m, k] · Wᵀ + bias)` for a decoder step's few rows: the skinny
    /// kernel (`dec_gemv.wgsl`) for `m <= 8` rows with no activation or GELU, else the
    /// tiled matmul ([`Recorder::linear`]).
    #[allow(clippy::too_many_arguments)]
    pub fn linear_rows(
        &mut self,
        x: &GpuTensor,
        m: usize,
        w: &GpuWeight,
        bias: Option<&GpuTensor>,
        out: &GpuTensor,
        act: Act,
        accumulate: bool,
    ) -> Result<(), GpuError> {
        let code = match act {
            Act::None => 0u32,
            Act::Gelu => 1,
            _ => 2,
        };
        let r = self;
        if m > GEMV_ROWS || code > 1 {
            return r.linear(x, m, w, bias, out, act, accumulate);
        }
        const OP: &str = "decoder gemv";
        let need = |what: &str, t: &GpuTensor, n: usize| {
            if t.len < n {
                Err(GpuError::Shape {
                    op: OP,
                    reason: format!("buffer {what} has {} values, needs {n}", t.len),
                })
            } else {
                Ok(())
            }
        };
        need("x", x, m * w.k)?;
        need("out", out, m * w.n)?;
        if let Some(b) = bias {
            need("bias", b, w.n)?;
        }
        let (wbuf, scales, kp) = w.raw();
        let fmt = w.format;
        let pipe = r
            .ctx
            .pipeline(&format!("dec_gemv_{fmt:?}"), || w_source(GEMV, fmt))?;
        let bias_buf = bias.map_or(&r.ctx.dummy, |b| &*b.buf);
        let mut bufs: Vec<&wgpu::Buffer> = vec![&x.buf, bias_buf, &out.buf, wbuf];
        if let Some(s) = scales {
            bufs.push(s);
        }
        let params = [
            u(m),
            u(w.n),
            u(w.k),
            u(kp),
            bias.is_some() as u32,
            code,
            accumulate as u32,
        ];
        r.dispatch(&pipe, &params, &bufs, grid_1d(w.n.div_ceil(64)));
        Ok(())
    }
}

fn u(v: usize) -> u32 {
    v as u32
}

impl GpuDecoderSession {
    /// Allocates a session's device state for `beams` rows and `max_len` positions.
    pub(crate) fn new(
        ctx: Arc<GpuContext>,
        w: Arc<DecoderWeights>,
        encoder: Option<Arc<Mutex<Buffers>>>,
        shared: SessionShared,
        beams: usize,
        max_len: usize,
    ) -> Result<Self, GpuError> {
        if !w.accepts(beams, max_len) {
            return Err(GpuError::Shape {
                op: "decoder session",
                reason: format!(
                    "{} decoder: {beams} beams x {max_len} positions (1..={} positions)",
                    w.family,
                    w.dims.n_text_ctx.min(MAX_LEN)
                ),
            });
        }
        let dm = w.dims;
        // Capacity rounded up to a multiple of 64 positions (within the model's limit):
        // the self-attention kernel is compiled per capacity, and conformer-AED requests
        // vary per utterance (448, Whisper's, is already one).
        let cap = dm.n_text_ctx.min(MAX_LEN);
        let max_len = max_len
            .div_ceil(64)
            .saturating_mul(64)
            .min(cap)
            .max(max_len);
        let d = dm.n_text_state;
        let l = dm.n_text_layer;
        let rows = beams * max_len;
        let m = max_len.max(beams);
        let layout = InfoLayout { m };
        // Cross-attention K/V for Whisper's 1500 frames (a conformer's encoder output
        // length varies: `begin` grows them when a longer one comes).
        let cross_cap = dm.n_audio_ctx.min(1500);
        let mut table = vec![0u32; rows];
        for b in 0..beams {
            for t in 0..max_len {
                table[b * max_len + t] = u(t * beams + b);
            }
        }
        let table_buf = || {
            let t = ctx.zeros(rows);
            ctx.write_u32(&t, 0, &table).map(|_| t)
        };
        let tables = [table_buf()?, table_buf()?];
        let s = GpuDecoderSession {
            kc: (0..l).map(|_| ctx.zeros(rows * d)).collect(),
            vc: (0..l).map(|_| ctx.zeros(rows * d)).collect(),
            tables,
            cur: 0,
            cross: (0..l).map(|_| ctx.zeros(cross_cap * 2 * d)).collect(),
            mem: ctx.zeros(cross_cap * d),
            cross_cap,
            frames: 0,
            pad: ctx.zeros(rows),
            pad_host: vec![0u32; rows],
            info: ctx.zeros(5 * m + beams),
            layout,
            host_info: vec![0u32; 5 * m + beams],
            x: ctx.zeros(m * d),
            h: ctx.zeros(m * d),
            qkv: ctx.zeros(m * 3 * d),
            att: ctx.zeros(m * d),
            q: ctx.zeros(m * d),
            ff: ctx.zeros(m * w.n_ff),
            hidden: ctx.zeros(m * d),
            rows_tmp: ctx.zeros(m * d),
            logits: ctx.zeros(beams * dm.n_vocab),
            len: 0,
            parents: (0..u(beams)).collect(),
            rows: 0,
            pending: StageTimes::default(),
            ctx,
            w,
            encoder,
            shared,
            beams,
            max_len,
        };
        s.ctx.check_errors("allocating the decoder session")?;
        Ok(s)
    }

    /// Beam rows of this session.
    pub fn beams(&self) -> usize {
        self.beams
    }

    fn engine_err(&self, call: &str, e: GpuError) -> hark_engine::Error {
        hark_engine::Error::Delegate {
            delegate: self.shared.name.clone(),
            stage: format!("{} decoder ({call})", self.w.family),
            reason: e.to_string(),
        }
    }

    /// [`DecoderSession::begin`] with GPU errors.
    pub fn begin_gpu(&mut self, memory: &[f32], frames: usize) -> Result<(), GpuError> {
        let dm = self.w.dims;
        let d = dm.n_text_state;
        if frames == 0 || frames > dm.n_audio_ctx || memory.len() != frames * d {
            return Err(GpuError::Shape {
                op: "decoder begin",
                reason: format!(
                    "encoder output of {} values for {frames} frames of {d} (1..={} frames)",
                    memory.len(),
                    dm.n_audio_ctx
                ),
            });
        }
        if frames > self.cross_cap {
            let l = self.w.layers.len();
            self.cross = (0..l).map(|_| self.ctx.zeros(frames * 2 * d)).collect();
            self.mem = self.ctx.zeros(frames * d);
            self.cross_cap = frames;
        }
        let t0 = Instant::now();
        // The encoder output this delegate's encoder left on the device, if it is this one.
        let guard = match &self.encoder {
            Some(enc) if frames == dm.n_audio_ctx => {
                let g = enc.lock().unwrap_or_else(|p| p.into_inner());
                if g.last_fp.is_some() && g.last_fp == Some(fingerprint(memory)) {
                    Some(g)
                } else {
                    None
                }
            }
            _ => None,
        };
        if guard.is_none() {
            self.ctx.write(&self.mem, memory)?;
        }
        let upload = t0.elapsed();
        let t0 = Instant::now();
        let src = guard.as_ref().map_or(&self.mem, |g| &g.h);
        let mut r = self.ctx.recorder();
        for (l, kv) in self.w.layers.iter().zip(&self.cross) {
            r.linear(src, frames, &l.xkv.w, Some(&l.xkv.b), kv, Act::None, false)?;
        }
        r.submit()?;
        // Later encoder passes are submitted after this one, so the resident output is
        // read before it is overwritten; the lock only has to cover the submission.
        if guard.is_some() {
            self.shared.reused.fetch_add(1, Ordering::Relaxed);
        }
        drop(guard);
        self.pending.upload += upload;
        self.pending.kernels += t0.elapsed();
        self.frames = frames;
        self.reset_positions();
        Ok(())
    }

    fn reset_positions(&mut self) {
        self.len = 0;
        self.rows = 0;
        for (i, p) in self.parents.iter_mut().enumerate() {
            *p = u(i);
        }
    }

    /// [`DecoderSession::step`] with GPU errors.
    pub fn step_gpu(&mut self, tokens: &[u32], rows: StepRows<'_>) -> Result<(), GpuError> {
        const OP: &str = "decoder step";
        let dm = self.w.dims;
        let (d, heads) = (dm.n_text_state, dm.n_text_head);
        let m = tokens.len();
        let t0 = self.len;
        let shared = matches!(rows, StepRows::Shared);
        let bad = |reason: String| GpuError::Shape { op: OP, reason };
        if self.frames == 0 {
            return Err(bad("no window: begin() was not called".into()));
        }
        if let StepRows::Beams(b) = rows {
            if b.len() != m {
                return Err(bad(format!("{m} tokens for {} beams", b.len())));
            }
            for (i, &s) in b.iter().enumerate() {
                if s >= self.beams || b[..i].contains(&s) {
                    return Err(bad(format!(
                        "beam {s} out of range or repeated ({} beams)",
                        self.beams
                    )));
                }
            }
        }
        let n_new = if shared { m } else { 1 };
        if m == 0 || m > self.layout.m || t0 + n_new > self.max_len {
            return Err(bad(format!(
                "{m} rows at position {t0} do not fit the session ({} positions)",
                self.max_len
            )));
        }
        if let Some(&t) = tokens.iter().find(|&&t| t as usize >= dm.n_vocab) {
            return Err(bad(format!(
                "token {t} out of range ({} tokens)",
                dm.n_vocab
            )));
        }
        let lay = self.layout;
        let clock = Instant::now();
        let hi = &mut self.host_info;
        for (r, &t) in tokens.iter().enumerate() {
            let (pos, beam, dst, n) = match rows {
                StepRows::Shared => (t0 + r, 0, (t0 + r) * self.beams, t0 + r + 1),
                StepRows::Beams(b) => (t0, b[r], t0 * self.beams + b[r], t0 + 1),
            };
            hi[lay.tok() + r] = t;
            hi[lay.pos() + r] = u(pos);
            hi[lay.dst() + r] = u(dst);
            hi[lay.beam() + r] = u(beam);
            hi[lay.len() + r] = u(n);
        }
        hi[lay.parents()..lay.parents() + self.beams].copy_from_slice(&self.parents);
        self.ctx.write_u32(&self.info, 0, &self.host_info)?;
        // Which cache rows hold the pad token (masked keys); written only on a change.
        if let Some(pad) = self.w.pad {
            for (r, &t) in tokens.iter().enumerate() {
                let dst = self.host_info[lay.dst() + r] as usize;
                let flag = (t == pad) as u32;
                if self.pad_host[dst] != flag {
                    self.pad_host[dst] = flag;
                    self.ctx.write_u32(&self.pad, dst, &[flag])?;
                }
            }
        }
        let upload = clock.elapsed();
        let clock = Instant::now();
        let ctx = &*self.ctx;
        let info = &self.info.buf;
        let mut r = ctx.recorder();
        // beam reorder (by parent index) + the rows of this step, into the other table
        let (old, tbl) = (&self.tables[self.cur], &self.tables[1 - self.cur]);
        let pipe = ctx.pipeline("dec_kv_table", || KV_TABLE.to_string())?;
        r.dispatch(
            &pipe,
            &[
                u(self.beams),
                u(self.max_len),
                u(t0),
                u(n_new),
                shared as u32,
                u(lay.parents()),
            ],
            &[info, &old.buf, &tbl.buf],
            grid_1d((self.beams * (t0 + n_new)).div_ceil(256)),
        );
        // token embedding + positions
        let (wbuf, wscales, kp) = self.w.embed.raw();
        let fmt = self.w.embed.format;
        let pipe = ctx.pipeline(&format!("dec_embed_{fmt:?}"), || w_source(EMBED, fmt))?;
        let mut bufs: Vec<&wgpu::Buffer> = vec![info, &self.w.pos.buf, &self.x.buf, wbuf];
        if let Some(s) = wscales {
            bufs.push(s);
        }
        r.dispatch(
            &pipe,
            &[
                u(m),
                u(d),
                u(kp),
                u(lay.tok()),
                u(lay.pos()),
                self.w.embed_scale.to_bits(),
            ],
            &bufs,
            grid_1d((m * d).div_ceil(256)),
        );
        let hd = d / heads;
        let scale = 1.0 / (hd as f32).sqrt();
        let write = ctx.pipeline("dec_kv_write", || KV_WRITE.to_string())?;
        let attn_key = format!("dec_self_attention_{}", self.max_len);
        let max_len = self.max_len;
        let attn = ctx.pipeline(&attn_key, || {
            SELF_ATTN.replace("{{MAXT}}", &max_len.to_string())
        })?;
        let (eps, masked) = (self.w.eps, self.w.pad.is_some() as u32);
        for (li, l) in self.w.layers.iter().enumerate() {
            let (kc, vc) = (&self.kc[li], &self.vc[li]);
            r.layer_norm(&self.x, m, d, &l.ln1.g, &l.ln1.b, eps, &self.h)?;
            r.linear_rows(
                &self.h,
                m,
                &l.qkv.w,
                Some(&l.qkv.b),
                &self.qkv,
                Act::None,
                false,
            )?;
            r.dispatch(
                &write,
                &[u(m), u(d), u(lay.dst())],
                &[info, &self.qkv.buf, &kc.buf, &vc.buf],
                grid_1d((m * d).div_ceil(256)),
            );
            r.dispatch(
                &attn,
                &[
                    u(d),
                    u(hd),
                    u(self.max_len),
                    u(lay.beam()),
                    u(lay.len()),
                    scale.to_bits(),
                    masked,
                ],
                &[
                    info,
                    &self.qkv.buf,
                    &tbl.buf,
                    &kc.buf,
                    &vc.buf,
                    &self.att.buf,
                    &self.pad.buf,
                ],
                [u(m), u(heads), 1],
            );
            r.linear_rows(
                &self.att,
                m,
                &l.out.w,
                Some(&l.out.b),
                &self.x,
                Act::None,
                true,
            )?;
            // cross-attention to the window's K/V
            r.layer_norm(&self.x, m, d, &l.ln_x.g, &l.ln_x.b, eps, &self.h)?;
            r.linear_rows(
                &self.h,
                m,
                &l.xq.w,
                Some(&l.xq.b),
                &self.q,
                Act::None,
                false,
            )?;
            let kv = &self.cross[li];
            r.attention(
                RowView {
                    buf: &self.q,
                    offset: 0,
                    stride: d,
                },
                m,
                RowView {
                    buf: kv,
                    offset: 0,
                    stride: 2 * d,
                },
                RowView {
                    buf: kv,
                    offset: d,
                    stride: 2 * d,
                },
                self.frames,
                heads,
                hd,
                scale,
                &self.att,
            )?;
            r.linear_rows(
                &self.att,
                m,
                &l.xout.w,
                Some(&l.xout.b),
                &self.x,
                Act::None,
                true,
            )?;
            // MLP
            r.layer_norm(&self.x, m, d, &l.ln2.g, &l.ln2.b, eps, &self.h)?;
            r.linear_rows(
                &self.h,
                m,
                &l.fc1.w,
                Some(&l.fc1.b),
                &self.ff,
                self.w.act,
                false,
            )?;
            r.linear_rows(
                &self.ff,
                m,
                &l.fc2.w,
                Some(&l.fc2.b),
                &self.x,
                Act::None,
                true,
            )?;
        }
        r.layer_norm(&self.x, m, d, &self.w.ln.g, &self.w.ln.b, eps, &self.hidden)?;
        r.submit()?;
        self.cur = 1 - self.cur;
        self.len = t0 + n_new;
        self.rows = m;
        for (i, p) in self.parents.iter_mut().enumerate() {
            *p = u(i);
        }
        self.pending.upload += upload;
        self.pending.kernels += clock.elapsed();
        Ok(())
    }

    /// [`DecoderSession::logits`] with GPU errors.
    pub fn logits_gpu(
        &mut self,
        first: usize,
        rows: usize,
        out: &mut [f32],
    ) -> Result<(), GpuError> {
        let dm = self.w.dims;
        let (d, v) = (dm.n_text_state, dm.n_vocab);
        if rows == 0 || first + rows > self.rows || out.len() != rows * v {
            return Err(GpuError::Shape {
                op: "decoder logits",
                reason: format!(
                    "rows {first}..{} of a step of {} into {} values ({v} per row)",
                    first + rows,
                    self.rows,
                    out.len()
                ),
            });
        }
        let clock = Instant::now();
        if self.logits.len < rows * v {
            self.logits = self.ctx.zeros(rows * v);
        }
        let mut r = self.ctx.recorder();
        let src = if first == 0 {
            &self.hidden
        } else {
            r.copy_range(&self.hidden, first * d, &self.rows_tmp, 0, rows * d)?;
            &self.rows_tmp
        };
        let (head, bias) = match &self.w.head {
            Some(h) => (&h.w, Some(&h.b)),
            None => (&self.w.embed, None),
        };
        r.linear_rows(src, rows, head, bias, &self.logits, Act::None, false)?;
        r.submit()?;
        self.ctx.wait()?;
        let kernels = clock.elapsed();
        let clock = Instant::now();
        let view = GpuTensor {
            buf: self.logits.buf.clone(),
            len: rows * v,
        };
        let y = self.ctx.download(&view)?;
        out.copy_from_slice(&y[..rows * v]);
        let mut t = std::mem::take(&mut self.pending);
        t.kernels += kernels;
        t.download += clock.elapsed();
        self.shared.clock.add_decoder(&t);
        Ok(())
    }

    /// [`DecoderSession::reorder`] with GPU errors.
    pub fn reorder_gpu(&mut self, parents: &[usize]) -> Result<(), GpuError> {
        if parents.len() > self.beams || parents.iter().any(|&p| p >= self.beams) {
            return Err(GpuError::Shape {
                op: "decoder reorder",
                reason: format!("parents {parents:?} for {} beams", self.beams),
            });
        }
        for (i, p) in self.parents.iter_mut().enumerate() {
            *p = u(parents.get(i).copied().unwrap_or(i));
        }
        Ok(())
    }
}

impl DecoderSession for GpuDecoderSession {
    fn name(&self) -> &str {
        &self.shared.name
    }

    fn begin(&mut self, memory: &[f32], frames: usize) -> hark_engine::Result<()> {
        self.begin_gpu(memory, frames)
            .map_err(|e| self.engine_err("begin", e))
    }

    fn step(&mut self, tokens: &[u32], rows: StepRows<'_>) -> hark_engine::Result<()> {
        self.step_gpu(tokens, rows)
            .map_err(|e| self.engine_err("step", e))
    }

    fn logits(&mut self, first: usize, rows: usize, out: &mut [f32]) -> hark_engine::Result<()> {
        self.logits_gpu(first, rows, out)
            .map_err(|e| self.engine_err("logits", e))
    }

    fn reorder(&mut self, parents: &[usize]) -> hark_engine::Result<()> {
        self.reorder_gpu(parents)
            .map_err(|e| self.engine_err("reorder", e))
    }

    fn reset(&mut self) {
        self.reset_positions();
    }

    fn len(&self) -> usize {
        self.len
    }
}
