//! The conformer-AED encoder (FireRedASR-AED, WeNet/ESPnet conformers) as one GPU stage.
//!
//! Follows hark's CPU encoder (`models/src/conformer_aed/encoder.rs`, itself a port of
//! FireRedASR `fireredasr/models/module/conformer_encoder.py` and ESPnet's
//! `espnet2/asr/encoder/conformer_encoder.py`) step by step, reading the same
//! `config.json` options and tensor names:
//! * `Conv2dSubsampling` (×4 `conv2d4`, ×6 `conv2d6`, ×8 `conv2d8`): the features padded
//!   with `pad_context` zero frames, each 3×3/5×5 convolution as im2col + the tiled GEMM
//!   with ReLU fused, channel-last throughout. The final Linear over channels×frequency
//!   reads PyTorch's `(C, F)` flattening; its weight columns are permuted once at load
//!   to the GPU's `(F, C)` order, so no transpose runs per call. `xscale` (√d) is fused
//!   into its epilogue.
//! * Blocks: ½·FFN (the residual `x + ½·net` fused into the second GEMM) → rel-pos MHSA
//!   (three q/k/v LayerNorms or one, `linear_pos`, `pos_bias_u/v`, with or without
//!   `rel_shift`, keys of padded frames masked) → convolution module (LayerNorm, padded
//!   rows zeroed, pointwise + GLU, depthwise with its bias, LayerNorm unless a BatchNorm
//!   was folded into the depthwise weights, Swish/ReLU, pointwise; the last GEMM runs on
//!   the valid rows only and accumulates into the residual, which is exactly "zero the
//!   padded rows, then add") → ½·FFN → LayerNorm; then `after_norm` when present.
//! * Declined (the stage then runs on the CPU): `legacy_rel_pos` (ESPnet's legacy
//!   Transformer-XL shift) and inputs whose buffers exceed the device's limits.
//!
//! With [`ConformerEncoderDelegate::with_decoder`] the same delegate also opens decoder
//! sessions for the transformer decoder ([`crate::conformer_decoder`]).
//!
//! The relative-position table (`RelPositionalEncoding`) is computed on the host with
//! the CPU path's formula and uploaded per call (`(2T-1)·d` values). Activation buffers
//! are allocated for the longest input seen so far and reused.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use hark_engine::delegate::{DecoderSession, Delegate, SessionRequest, Stage, StageKind};
use hark_engine::{DType, Tensor};

use crate::context::{GpuContext, GpuTensor, Recorder};
use crate::decoder_slot::DecoderSlot;
use crate::kernels::{Act, GpuWeight};
use crate::upload::WeightUploader;
use crate::whisper::StageTimes;
use crate::{GpuError, StageClock};

/// The model name a conformer-AED stage carries (`Stage::model`).
pub const MODEL: &str = "conformer_aed";

/// The encoder options of a conformer_aed `config.json` that the GPU stage needs (names
/// as in `models/src/conformer_aed/config.rs`).
#[derive(Debug, Clone, PartialEq)]
pub struct ConformerDims {
    /// Feature dimension.
    pub idim: usize,
    /// Model width.
    pub d_model: usize,
    /// Attention heads.
    pub n_head: usize,
    /// Conformer blocks.
    pub n_layers_enc: usize,
    /// Depthwise kernel size.
    pub kernel_size: usize,
    /// Longest encoder output.
    pub pe_maxlen: usize,
    /// (kernel, stride) of each subsampling convolution.
    pub subsampling: Vec<(usize, usize)>,
    /// Channels of the subsampling convolutions.
    pub subsampling_channels: usize,
    /// Zero frames appended before subsampling.
    pub pad_context: usize,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f32,
    /// FFN expansion factor.
    pub ffn_mult: usize,
    /// Convolution-module channels as a multiple of `d_model`.
    pub conv_inner_mult: usize,
    /// A LayerNorm after the depthwise convolution (false: BatchNorm folded at conversion).
    pub conv_layer_norm: bool,
    /// Three q/k/v LayerNorms (FireRedASR) instead of one.
    pub qkv_layer_norm: bool,
    /// `rel_shift` (2T-1 position rows) or WeNet's unshifted T rows.
    pub rel_shift: bool,
    /// Scale the subsampling output by √d.
    pub xscale: bool,
    /// ReLU instead of Swish in the FFNs and the convolution module.
    pub relu: bool,
    /// Biases on the attention and convolution-module projections.
    pub linear_bias: bool,
    /// Final LayerNorm after the last block.
    pub enc_after_norm: bool,
    /// Causal depthwise convolutions (`causal_conv`): `kernel_size - 1` zeros on the left,
    /// none on the right.
    pub causal_conv: bool,
}

fn cfg_err(dir: &Path, reason: String) -> GpuError {
    GpuError::Model {
        path: dir.join("config.json"),
        reason,
    }
}

impl ConformerDims {
    /// Reads the encoder options from a conformer_aed model directory's `config.json`.
    /// Fails on variants the GPU stage does not implement (`legacy_rel_pos`), naming
    /// the option.
    pub fn from_model_dir(dir: &Path) -> Result<Self, GpuError> {
        let cfg = crate::read_config(dir)?;
        let family = cfg.get("family").and_then(|f| f.as_str()).unwrap_or("");
        if family != MODEL {
            return Err(cfg_err(dir, format!("family is `{family}`, not `{MODEL}`")));
        }
        let num = |key: &str| -> Result<usize, GpuError> {
            cfg.get(key)
                .and_then(|v| v.as_u64())
                .map(|v| v as usize)
                .ok_or_else(|| cfg_err(dir, format!("missing or invalid `{key}`")))
        };
        let text = |key: &str, default: &str| -> String {
            cfg.get(key)
                .and_then(|v| v.as_str())
                .unwrap_or(default)
                .to_string()
        };
        let flag =
            |key: &str, default: bool| cfg.get(key).and_then(|v| v.as_bool()).unwrap_or(default);
        let pos = text("pos_enc_layer_type", "rel_pos");
        if pos != "rel_pos" {
            return Err(cfg_err(
                dir,
                format!("pos_enc_layer_type `{pos}` has no GPU implementation (rel_pos only)"),
            ));
        }
        let subsampling = match text("subsampling", "").as_str() {
            "conv2d4" => vec![(3, 2), (3, 2)],
            "conv2d6" => vec![(3, 2), (5, 3)],
            "conv2d8" => vec![(3, 2), (3, 2), (3, 2)],
            other => return Err(cfg_err(dir, format!("unsupported subsampling `{other}`"))),
        };
        let conv_norm = text("conv_norm", "layer_norm");
        let act = text("enc_activation", "swish");
        if !matches!(act.as_str(), "swish" | "relu") {
            return Err(cfg_err(dir, format!("unsupported enc_activation `{act}`")));
        }
        let eps = cfg
            .get("layer_norm_eps")
            .and_then(|v| v.as_f64())
            .ok_or_else(|| cfg_err(dir, "missing `layer_norm_eps`".into()))?;
        let dims = ConformerDims {
            idim: num("idim")?,
            d_model: num("d_model")?,
            n_head: num("n_head")?,
            n_layers_enc: num("n_layers_enc")?,
            kernel_size: num("kernel_size")?,
            pe_maxlen: num("pe_maxlen")?,
            subsampling,
            subsampling_channels: num("subsampling_channels")?,
            pad_context: num("pad_context")?,
            layer_norm_eps: eps as f32,
            ffn_mult: num("ffn_mult")?,
            conv_inner_mult: num("conv_inner_mult")?,
            conv_layer_norm: match conv_norm.as_str() {
                "layer_norm" => true,
                "batch_norm" => false,
                other => return Err(cfg_err(dir, format!("unsupported conv_norm `{other}`"))),
            },
            qkv_layer_norm: flag("qkv_layer_norm", true),
            rel_shift: flag("rel_shift", true),
            xscale: flag("xscale", false),
            relu: act == "relu",
            linear_bias: flag("linear_bias", false),
            enc_after_norm: flag("enc_after_norm", false),
            causal_conv: flag("causal_conv", false),
        };
        let d = dims.d_model;
        if d == 0 || dims.n_head == 0 || !d.is_multiple_of(dims.n_head) {
            return Err(cfg_err(
                dir,
                format!("{} heads do not divide d_model {d}", dims.n_head),
            ));
        }
        if dims.kernel_size == 0 || (dims.kernel_size.is_multiple_of(2) && !dims.causal_conv) {
            return Err(cfg_err(
                dir,
                format!("even kernel_size {}", dims.kernel_size),
            ));
        }
        if dims.subsampled(dims.idim).unwrap_or(0) == 0 {
            return Err(cfg_err(
                dir,
                format!("idim {} too small to subsample", dims.idim),
            ));
        }
        Ok(dims)
    }

    /// Length of an axis of `n` after the subsampling convolutions.
    pub fn subsampled(&self, n: usize) -> Option<usize> {
        let mut n = n;
        for &(k, s) in &self.subsampling {
            if n < k {
                return None;
            }
            n = (n - k) / s + 1;
        }
        Some(n)
    }

    /// `(t, valid)` for `frames` input frames: encoder frames (context padding included)
    /// and those that are not padding (frame `j` is valid iff input frame `j·Πstride` is,
    /// the reference's subsampled mask).
    pub fn output_frames(&self, frames: usize) -> Option<(usize, usize)> {
        let t = self.subsampled(frames + self.pad_context)?;
        let stride: usize = self.subsampling.iter().map(|l| l.1).product();
        let valid = (0..t).filter(|j| stride * j < frames).count();
        Some((t, valid))
    }
}

/// Sinusoidal encoding of position `pos` for column `col` of width `d`, computed exactly
/// as the CPU path's table (`models/src/conformer_aed/nn.rs` `sinusoid`: f32 `div_term`,
/// f32 angle), so both sides see identical encodings.
pub(crate) fn sinusoid(pos: f32, col: usize, d: usize) -> f32 {
    let ln = (10000.0f32).ln() as f64;
    let div = ((col / 2 * 2) as f32 * (-(ln / d as f64)) as f32).exp();
    let angle = pos * div;
    if col.is_multiple_of(2) {
        angle.sin()
    } else {
        angle.cos()
    }
}

struct Lin {
    w: GpuWeight,
    b: Option<GpuTensor>,
}

struct Norm {
    g: GpuTensor,
    b: GpuTensor,
}

struct Ffn {
    norm: Norm,
    expand: Lin,
    project: Lin,
}

struct Mhsa {
    norms: Vec<Norm>,
    w_q: Lin,
    w_k: Lin,
    w_v: Lin,
    w_pos: Lin,
    fc: Lin,
    bias_u: GpuTensor,
    bias_v: GpuTensor,
}

struct ConvModule {
    pre_norm: Norm,
    pw1: Lin,
    dw: GpuTensor,
    dw_b: Option<GpuTensor>,
    norm: Option<Norm>,
    pw2: Lin,
}

struct Block {
    ffn1: Ffn,
    mhsa: Mhsa,
    conv: ConvModule,
    ffn2: Ffn,
    norm: Norm,
}

/// Sizes (in f32 values) of every activation buffer for one input length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Sizes {
    feats: usize,
    col: usize,
    sub: usize,
    td: usize,
    pos: usize,
    scores: usize,
    ff: usize,
    a2: usize,
    tc: usize,
}

impl Sizes {
    fn max(self, o: Sizes) -> Sizes {
        Sizes {
            feats: self.feats.max(o.feats),
            col: self.col.max(o.col),
            sub: self.sub.max(o.sub),
            td: self.td.max(o.td),
            pos: self.pos.max(o.pos),
            scores: self.scores.max(o.scores),
            ff: self.ff.max(o.ff),
            a2: self.a2.max(o.a2),
            tc: self.tc.max(o.tc),
        }
    }

    fn largest(&self) -> usize {
        [
            self.feats,
            self.col,
            self.sub,
            self.td,
            self.pos,
            self.scores,
            self.ff,
            self.a2,
            self.tc,
        ]
        .into_iter()
        .max()
        .unwrap_or(0)
    }
}

/// Device activations, sized for the longest input so far.
struct Buffers {
    sizes: Sizes,
    feats: GpuTensor,
    col: GpuTensor,
    sub: [GpuTensor; 2],
    x: GpuTensor,
    h: GpuTensor,
    q: GpuTensor,
    k: GpuTensor,
    v: GpuTensor,
    att: GpuTensor,
    pos: GpuTensor,
    p: GpuTensor,
    scores: GpuTensor,
    ff: GpuTensor,
    a2: GpuTensor,
    g: GpuTensor,
    y: GpuTensor,
}

impl Buffers {
    fn new(ctx: &GpuContext, s: Sizes) -> Buffers {
        Buffers {
            sizes: s,
            feats: ctx.zeros(s.feats),
            col: ctx.zeros(s.col),
            sub: [ctx.zeros(s.sub), ctx.zeros(s.sub)],
            x: ctx.zeros(s.td),
            h: ctx.zeros(s.td),
            q: ctx.zeros(s.td),
            k: ctx.zeros(s.td),
            v: ctx.zeros(s.td),
            att: ctx.zeros(s.td),
            pos: ctx.zeros(s.pos),
            p: ctx.zeros(s.pos),
            scores: ctx.zeros(s.scores),
            ff: ctx.zeros(s.ff),
            a2: ctx.zeros(s.a2),
            g: ctx.zeros(s.tc),
            y: ctx.zeros(s.tc),
        }
    }
}

/// The conformer-AED encoder on the GPU: a [`Delegate`] for `StageKind::Encoder` of model
/// [`MODEL`] (input `"feats"` `[frames, idim]`, CMVN applied; output
/// `[t · d_model]`, the encoder frames including those of the context padding, as the CPU
/// encoder's `hidden`).
pub struct ConformerEncoderDelegate {
    ctx: Arc<GpuContext>,
    dims: ConformerDims,
    name: String,
    convs: Vec<(Lin, usize, usize)>,
    sub_out: Lin,
    blocks: Vec<Block>,
    after_norm: Option<Norm>,
    bufs: Mutex<Option<Buffers>>,
    weight_bytes: u64,
    clock: Arc<StageClock>,
    decoder: DecoderSlot,
}

impl std::fmt::Debug for ConformerEncoderDelegate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConformerEncoderDelegate")
            .field("name", &self.name)
            .field("dims", &self.dims)
            .finish()
    }
}

/// Permutes the columns of a `[n, c·f]` matrix from PyTorch's `(c, f)` flattening to
/// `(f, c)`, keeping its dtype (f16 → f32 → f16 is exact).
fn permute_cf(t: &Tensor, c: usize, f: usize) -> Result<Tensor, GpuError> {
    let n = t.dim(0);
    let v = t.to_f32_vec()?;
    let mut out = vec![0f32; v.len()];
    for r in 0..n {
        let (src, dst) = (
            &v[r * c * f..(r + 1) * c * f],
            &mut out[r * c * f..(r + 1) * c * f],
        );
        for ch in 0..c {
            for o in 0..f {
                dst[o * c + ch] = src[ch * f + o];
            }
        }
    }
    let p = Tensor::from_f32(&[n, c * f], &out)?;
    Ok(match t.dtype() {
        DType::F16 => p.to_dtype(DType::F16)?,
        _ => p,
    })
}

impl ConformerEncoderDelegate {
    /// Loads the encoder weights of the hark conformer_aed model in `model_dir` onto
    /// `ctx`'s device in their stored precision (f32 or f16). Fails with
    /// [`GpuError::Model`] for variants the GPU stage does not implement.
    pub fn load(ctx: Arc<GpuContext>, model_dir: &Path) -> Result<Self, GpuError> {
        Self::load_with_clock(ctx, model_dir, Arc::new(StageClock::default()))
    }

    /// [`Self::load`], adding every pass's phase times to `clock`.
    pub fn load_with_clock(
        ctx: Arc<GpuContext>,
        model_dir: &Path,
        clock: Arc<StageClock>,
    ) -> Result<Self, GpuError> {
        let dims = ConformerDims::from_model_dir(model_dir)?;
        let d = dims.d_model;
        let dk = d / dims.n_head;
        let c_sub = dims.subsampling_channels;
        let u = WeightUploader::open(&ctx, model_dir)?;
        let vecf = |name: &str, n: usize| u.f32(name, &[n]);
        let matrix = |name: &str, shape: &[usize]| u.matrix(&format!("{name}.weight"), shape);
        let lin = |name: &str, n: usize, k: usize, bias: bool| -> Result<Lin, GpuError> {
            Ok(Lin {
                w: matrix(name, &[n, k])?,
                b: if bias {
                    Some(vecf(&format!("{name}.bias"), n)?)
                } else {
                    None
                },
            })
        };
        let norm = |name: &str, n: usize| -> Result<Norm, GpuError> {
            Ok(Norm {
                g: vecf(&format!("{name}.weight"), n)?,
                b: vecf(&format!("{name}.bias"), n)?,
            })
        };
        let p = "encoder.input_preprocessor";
        let mut convs = Vec::new();
        let mut cin = 1;
        for (i, &(k, s)) in dims.subsampling.iter().enumerate() {
            let q = format!("{p}.conv.{}", 2 * i);
            convs.push((
                Lin {
                    w: matrix(&q, &[c_sub, cin, k, k])?,
                    b: Some(vecf(&format!("{q}.bias"), c_sub)?),
                },
                k,
                s,
            ));
            cin = c_sub;
        }
        let f_sub = dims.subsampled(dims.idim).unwrap_or(0);
        let out_w = u
            .weights()
            .get(&format!("{p}.out.weight"), &[d, c_sub * f_sub])?;
        let sub_out = Lin {
            w: u.upload(&permute_cf(&out_w, c_sub, f_sub)?)?,
            b: Some(vecf(&format!("{p}.out.bias"), d)?),
        };
        let hidden = d * dims.ffn_mult;
        let c = d * dims.conv_inner_mult;
        let kz = dims.kernel_size;
        let bias = dims.linear_bias;
        let mut blocks = Vec::with_capacity(dims.n_layers_enc);
        for i in 0..dims.n_layers_enc {
            let b = format!("encoder.layer_stack.{i}");
            let ffn = |name: &str| -> Result<Ffn, GpuError> {
                Ok(Ffn {
                    norm: norm(&format!("{b}.{name}.net.0"), d)?,
                    expand: lin(&format!("{b}.{name}.net.1"), hidden, d, true)?,
                    project: lin(&format!("{b}.{name}.net.4"), d, hidden, true)?,
                })
            };
            let ffn1 = ffn("ffn1")?;
            let ffn2 = ffn("ffn2")?;
            let m = format!("{b}.mhsa");
            let norms = if dims.qkv_layer_norm {
                vec![
                    norm(&format!("{m}.layer_norm_q"), d)?,
                    norm(&format!("{m}.layer_norm_k"), d)?,
                    norm(&format!("{m}.layer_norm_v"), d)?,
                ]
            } else {
                vec![norm(&format!("{m}.layer_norm"), d)?]
            };
            let flat = |name: &str| u.f32(&format!("{m}.{name}"), &[dims.n_head, dk]);
            let mhsa = Mhsa {
                norms,
                w_q: lin(&format!("{m}.w_qs"), d, d, bias)?,
                w_k: lin(&format!("{m}.w_ks"), d, d, bias)?,
                w_v: lin(&format!("{m}.w_vs"), d, d, bias)?,
                w_pos: lin(&format!("{m}.linear_pos"), d, d, false)?,
                fc: lin(&format!("{m}.fc"), d, d, bias)?,
                bias_u: flat("pos_bias_u")?,
                bias_v: flat("pos_bias_v")?,
            };
            let cv = format!("{b}.conv");
            let pw1 = Lin {
                w: matrix(&format!("{cv}.pointwise_conv1"), &[2 * c, d, 1])?,
                b: if bias {
                    Some(vecf(&format!("{cv}.pointwise_conv1.bias"), 2 * c)?)
                } else {
                    None
                },
            };
            let pw2 = Lin {
                w: matrix(&format!("{cv}.pointwise_conv2"), &[d, c, 1])?,
                b: if bias {
                    Some(vecf(&format!("{cv}.pointwise_conv2.bias"), d)?)
                } else {
                    None
                },
            };
            let conv = ConvModule {
                pre_norm: norm(&format!("{cv}.pre_layer_norm"), d)?,
                pw1,
                dw: u.f32(&format!("{cv}.depthwise_conv.weight"), &[c, 1, kz])?,
                dw_b: if bias || !dims.conv_layer_norm {
                    Some(vecf(&format!("{cv}.depthwise_conv.bias"), c)?)
                } else {
                    None
                },
                norm: if dims.conv_layer_norm {
                    Some(norm(&format!("{cv}.batch_norm"), c)?)
                } else {
                    None
                },
                pw2,
            };
            blocks.push(Block {
                ffn1,
                mhsa,
                conv,
                ffn2,
                norm: norm(&format!("{b}.layer_norm"), d)?,
            });
        }
        let after_norm = if dims.enc_after_norm {
            Some(norm("encoder.after_norm", d)?)
        } else {
            None
        };
        let weight_bytes = u.bytes();
        drop(u);
        ctx.check_errors("uploading conformer encoder weights")?;
        let name = format!("gpu:{}", ctx.adapter().name);
        Ok(ConformerEncoderDelegate {
            ctx,
            dims,
            name,
            convs,
            sub_out,
            blocks,
            after_norm,
            bufs: Mutex::new(None),
            weight_bytes,
            clock,
            decoder: DecoderSlot::new(MODEL, "conformer decoder session", None),
        })
    }

    /// Also uploads the decoder weights of the model in `model_dir` (stored precision),
    /// so that this delegate opens decoder sessions ([`Delegate::decoder_session`], model
    /// [`MODEL`]; see [`crate::conformer_decoder`]).
    pub fn with_decoder(mut self, model_dir: &Path) -> Result<Self, GpuError> {
        self.weight_bytes +=
            self.decoder
                .load(&self.ctx, model_dir, crate::conformer_decoder::load)?;
        Ok(self)
    }

    /// Opens a decoder session directly (what [`Delegate::decoder_session`] returns):
    /// `max_beams` rows, `max_len` positions (at most `min(pe_maxlen, 2048)`). Fails when
    /// the decoder weights were not loaded ([`Self::with_decoder`]).
    pub fn open_decoder(
        &self,
        max_beams: usize,
        max_len: usize,
    ) -> Result<crate::conformer_decoder::ConformerDecoderSession, GpuError> {
        self.decoder
            .open(&self.ctx, &self.name, &self.clock, max_beams, max_len)
    }

    /// Encoder options read from config.json.
    pub fn dims(&self) -> &ConformerDims {
        &self.dims
    }

    /// Bytes of weight matrices resident on the device.
    pub fn weight_bytes(&self) -> u64 {
        self.weight_bytes
    }

    /// Buffer sizes for `frames` input frames, or None when too short / too long.
    fn sizes(&self, frames: usize) -> Option<(Sizes, usize, usize)> {
        let dm = &self.dims;
        let (t, valid) = dm.output_frames(frames)?;
        if t == 0 || valid == 0 || t > dm.pe_maxlen {
            return None;
        }
        let d = dm.d_model;
        let c = d * dm.conv_inner_mult;
        let padded = frames + dm.pad_context;
        let (mut tt, mut ff, mut cin) = (padded, dm.idim, 1);
        let (mut col, mut sub) = (0, 0);
        for &(k, s) in &dm.subsampling {
            let (to, fo) = ((tt - k) / s + 1, (ff - k) / s + 1);
            col = col.max(to * fo * cin * k * k);
            sub = sub.max(to * fo * dm.subsampling_channels);
            (tt, ff, cin) = (to, fo, dm.subsampling_channels);
        }
        let np = if dm.rel_shift { 2 * t - 1 } else { t };
        Some((
            Sizes {
                feats: padded * dm.idim,
                col,
                sub,
                td: t * d,
                pos: np * d,
                scores: dm.n_head * t * t,
                ff: t * d * dm.ffn_mult,
                a2: t * 2 * c,
                tc: t * c,
            },
            t,
            valid,
        ))
    }

    /// Whether `frames` input frames fit the device's buffer limits.
    fn fits(&self, frames: usize) -> bool {
        let Some((s, _, _)) = self.sizes(frames) else {
            return false;
        };
        let lim = self.ctx.device.limits();
        let max = lim.max_storage_buffer_binding_size.min(lim.max_buffer_size);
        (s.largest() as u64) * 4 <= max
    }

    /// Runs the encoder on `[frames, idim]` CMVN-normalised features and returns
    /// `([t, d_model] row-major, t, valid)`.
    pub fn encode(&self, feats: &[f32]) -> Result<(Vec<f32>, usize, usize), GpuError> {
        self.encode_timed(feats).map(|(y, t, v, _)| (y, t, v))
    }

    /// [`Self::encode`] with the time spent in each phase.
    pub fn encode_timed(
        &self,
        feats: &[f32],
    ) -> Result<(Vec<f32>, usize, usize, StageTimes), GpuError> {
        const OP: &str = "conformer encoder";
        let dm = &self.dims;
        let (idim, d) = (dm.idim, dm.d_model);
        if feats.is_empty() || !feats.len().is_multiple_of(idim) {
            return Err(GpuError::Shape {
                op: OP,
                reason: format!(
                    "{} values is not a whole number of {idim}-dim frames",
                    feats.len()
                ),
            });
        }
        let frames = feats.len() / idim;
        let (need, t, valid) = self.sizes(frames).ok_or_else(|| GpuError::Shape {
            op: OP,
            reason: format!(
                "{frames} frames are too short to subsample or exceed pe_maxlen {}",
                dm.pe_maxlen
            ),
        })?;
        let mut guard = self.bufs.lock().unwrap_or_else(|p| p.into_inner());
        let grow = match guard.as_ref() {
            Some(b) => b.sizes.max(need) != b.sizes,
            None => true,
        };
        if grow {
            let s = guard.as_ref().map_or(need, |b| b.sizes.max(need));
            *guard = Some(Buffers::new(&self.ctx, s));
        }
        let b = guard.as_ref().ok_or_else(|| GpuError::Shape {
            op: OP,
            reason: "activation buffers missing".into(),
        })?;
        let padded = frames + dm.pad_context;
        let np = if dm.rel_shift { 2 * t - 1 } else { t };

        let t0 = Instant::now();
        let mut x_in = feats.to_vec();
        x_in.resize(padded * idim, 0.0);
        self.ctx.write(&b.feats, &x_in)?;
        let mut pos = vec![0f32; np * d];
        for r in 0..np {
            let rel = if dm.rel_shift {
                (t - 1) as f32 - r as f32
            } else {
                r as f32
            };
            for col in 0..d {
                pos[r * d + col] = sinusoid(rel, col, d);
            }
        }
        self.ctx.write(&b.pos, &pos)?;
        self.ctx.queue.submit([]);
        self.ctx.wait()?;
        let upload = t0.elapsed();

        let t0 = Instant::now();
        let mut r = self.ctx.recorder();
        let out = self.record(&mut r, b, (padded, t, valid, np))?;
        r.submit()?;
        self.ctx.wait()?;
        let kernels = t0.elapsed();

        let t0 = Instant::now();
        let view = GpuTensor {
            buf: out.buf.clone(),
            len: t * d,
        };
        let y = self.ctx.download(&view)?;
        let times = StageTimes {
            upload,
            kernels,
            download: t0.elapsed(),
        };
        self.clock.add(&times);
        Ok((y, t, valid, times))
    }

    /// Records the whole encoder; returns the buffer holding the output.
    fn record<'b>(
        &self,
        r: &mut Recorder<'_>,
        b: &'b Buffers,
        (padded, t, valid, np): (usize, usize, usize, usize),
    ) -> Result<&'b GpuTensor, GpuError> {
        let dm = &self.dims;
        let (d, heads) = (dm.d_model, dm.n_head);
        let hd = d / heads;
        let c = d * dm.conv_inner_mult;
        let eps = dm.layer_norm_eps;
        let act = if dm.relu { Act::Relu } else { Act::Silu };

        // Subsampling: channel-last maps, ReLU fused into each convolution's GEMM.
        let (mut tt, mut ff, mut cin) = (padded, dm.idim, 1);
        let mut cur = &b.feats;
        for (i, (lin, k, s)) in self.convs.iter().enumerate() {
            let (to, fo) = r.im2col2d(cur, (tt, ff, cin), *k, *s, &b.col)?;
            let dst = &b.sub[i % 2];
            r.linear(
                &b.col,
                to * fo,
                &lin.w,
                lin.b.as_ref(),
                dst,
                Act::Relu,
                false,
            )?;
            cur = dst;
            (tt, ff, cin) = (to, fo, dm.subsampling_channels);
        }
        debug_assert_eq!(tt, t);
        let xs = if dm.xscale { (d as f32).sqrt() } else { 1.0 };
        r.linear_scaled(
            cur,
            t,
            &self.sub_out.w,
            self.sub_out.b.as_ref(),
            &b.x,
            Act::None,
            xs,
            false,
        )?;

        let (mut x, mut h) = (&b.x, &b.h);
        let ffn = |r: &mut Recorder<'_>, f: &Ffn, x: &GpuTensor, h: &GpuTensor| {
            r.layer_norm(x, t, d, &f.norm.g, &f.norm.b, eps, h)?;
            r.linear(h, t, &f.expand.w, f.expand.b.as_ref(), &b.ff, act, false)?;
            r.linear_scaled(
                &b.ff,
                t,
                &f.project.w,
                f.project.b.as_ref(),
                x,
                Act::None,
                0.5,
                true,
            )
        };
        for blk in &self.blocks {
            ffn(r, &blk.ffn1, x, h)?;

            let m = &blk.mhsa;
            let proj = [(&m.w_q, &b.q), (&m.w_k, &b.k), (&m.w_v, &b.v)];
            for (i, (l, dst)) in proj.iter().enumerate() {
                if i < m.norms.len() {
                    let n = &m.norms[i];
                    r.layer_norm(x, t, d, &n.g, &n.b, eps, h)?;
                }
                r.linear(h, t, &l.w, l.b.as_ref(), dst, Act::None, false)?;
            }
            r.linear(&b.pos, np, &m.w_pos.w, None, &b.p, Act::None, false)?;
            r.rel_pos_attention(
                (&b.q, &b.k, &b.v),
                &b.p,
                np,
                (&m.bias_u, &m.bias_v),
                (t, heads, hd),
                (valid, dm.rel_shift, 1.0 / (hd as f32).sqrt()),
                &b.scores,
                &b.att,
            )?;
            r.linear(&b.att, t, &m.fc.w, m.fc.b.as_ref(), x, Act::None, true)?;

            let cv = &blk.conv;
            r.layer_norm(x, t, d, &cv.pre_norm.g, &cv.pre_norm.b, eps, h)?;
            r.clear(h, valid * d, (t - valid) * d)?;
            r.linear(h, t, &cv.pw1.w, cv.pw1.b.as_ref(), &b.a2, Act::None, false)?;
            r.glu(&b.a2, t, c, &b.g)?;
            let left = if dm.causal_conv {
                dm.kernel_size - 1
            } else {
                dm.kernel_size / 2
            };
            r.depthwise_conv1d(
                &b.g,
                t,
                c,
                &cv.dw,
                dm.kernel_size,
                cv.dw_b.as_ref(),
                (left, dm.kernel_size - 1 - left),
                &b.y,
            )?;
            let conv_out = match &cv.norm {
                Some(n) => {
                    r.layer_norm(&b.y, t, c, &n.g, &n.b, eps, &b.g)?;
                    &b.g
                }
                None => &b.y,
            };
            if dm.relu {
                r.relu(conv_out, t * c)?;
            } else {
                r.silu(conv_out, t * c)?;
            }
            // Padded rows of the module's output are zero: only valid rows are added.
            r.linear(
                conv_out,
                valid,
                &cv.pw2.w,
                cv.pw2.b.as_ref(),
                x,
                Act::None,
                true,
            )?;

            ffn(r, &blk.ffn2, x, h)?;
            r.layer_norm(x, t, d, &blk.norm.g, &blk.norm.b, eps, h)?;
            std::mem::swap(&mut x, &mut h);
        }
        if let Some(n) = &self.after_norm {
            r.layer_norm(x, t, d, &n.g, &n.b, eps, h)?;
            std::mem::swap(&mut x, &mut h);
        }
        Ok(x)
    }
}

impl Delegate for ConformerEncoderDelegate {
    fn name(&self) -> &str {
        &self.name
    }

    fn accepts(&self, stage: &Stage<'_>) -> bool {
        stage.kind == StageKind::Encoder
            && stage.model == MODEL
            && stage.inputs.len() == 1
            && stage.inputs[0].0 == "feats"
            && stage.inputs[0].1.len() == 2
            && stage.inputs[0].1[1] == self.dims.idim
            && stage.inputs[0].2.len() == stage.inputs[0].1[0] * self.dims.idim
            && self.fits(stage.inputs[0].1[0])
    }

    fn run(&self, stage: &Stage<'_>, outputs: &mut [&mut [f32]]) -> hark_engine::Result<()> {
        crate::run_encoder_stage(&self.name, "conformer encoder", outputs, || {
            self.encode(stage.inputs[0].2).map(|(y, _, _)| y)
        })
    }

    fn decoder_session(
        &self,
        request: &SessionRequest<'_>,
    ) -> hark_engine::Result<Option<Box<dyn DecoderSession>>> {
        self.decoder
            .session(&self.ctx, &self.name, &self.clock, request)
    }
}
