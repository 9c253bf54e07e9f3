//! Conformer encoder.
//!
//! Follows FireRedASR `fireredasr/models/module/conformer_encoder.py`:
//! `Conv2dSubsampling` (two 3×3 stride-2 convolutions + ReLU, then a Linear over
//! channels×frequency; the features are first padded with `pad_context` zero frames that are
//! masked out), `RelPositionalEncoding` (Transformer-XL table from +(T-1) to -(T-1)), and
//! `RelPosEmbConformerBlock`s: ½·FFN → rel-pos MHSA (separate q/k/v LayerNorms, `pos_bias_u/v`,
//! `rel_shift`) → convolution module (LayerNorm → pointwise → GLU → depthwise → LayerNorm →
//! Swish → pointwise, padded frames zeroed) → ½·FFN → LayerNorm.
//!
//! ESPnet/WeNet conformers (ESPnet `espnet2/asr/encoder/conformer_encoder.py`,
//! `espnet/nets/pytorch_backend/transformer/{attention,embedding,subsampling}.py`,
//! `conformer/convolution.py`; WeNet `wenet/transformer/attention.py`) are the same blocks
//! with different options, all in `config.json`: biases on every projection
//! (`linear_bias`), one LayerNorm in front of the attention instead of three
//! (`qkv_layer_norm = false`), BatchNorm in the convolution module (folded into the depthwise
//! weights + bias by the converter: `conv_norm = "batch_norm"`, so no norm at run time), ReLU
//! or Swish (`enc_activation`), ×6/×8 subsampling, a final `after_norm`, and three
//! relative-position variants:
//! * `rel_pos` + `rel_shift` (FireRedASR, ESPnet `latest`): table of 2T-1 encodings for
//!   relative positions T-1 … -(T-1), `bd[i][j] = q_v(i)·p(T-1-i+j)`;
//! * `rel_pos` without `rel_shift` (WeNet): table of T encodings for positions 0 … T-1 and
//!   `bd[i][j] = q_v(i)·p(j)`;
//! * `legacy_rel_pos` (ESPnet legacy): table of T encodings for positions L-1 … L-T
//!   (L = `pe_maxlen`) and the original Transformer-XL shift of the T×T matrix, which reads
//!   `bd[i][T-1-i+j]` for j ≤ i, 0 for j = i+1 and `bd[i+1][j-i-2]` above that.
//!
//! One utterance at a time: the padding mask then only covers the appended context frames,
//! but it is applied exactly as the reference applies it (keys in attention, rows in the
//! convolution module) because those frames do reach the output.
//!
//! Streaming models (WeNet U2, `scripts/conformer/streaming.py`): with `causal_conv` the
//! depthwise convolutions pad only on the left, and [`ConformerEncoder::forward_chunked`]
//! adds a chunk attention mask (frame i sees the frames of its own chunk of `chunk` frames and
//! of every earlier chunk). Together they make a chunk's output independent of later audio
//! (beyond the subsampling's 60 ms look-ahead), which is what decoding chunk by chunk needs.

use super::config::ConformerConfig;
use super::error::ConformerError;
use super::nn::{gemm_f32, relu, sigmoid, softmax, swish, LayerNorm, Linear, Weight};
use super::weights::TensorStore;
use hark_engine::ops::{attention, AttentionOpts, RelPosTerm, Rows};

/// Which keys a query may attend to: keys before `valid` (the padding mask) and, with a
/// chunk size, only those of the query's chunk and earlier chunks.
#[derive(Debug, Clone, Copy)]
struct KeyMask {
    valid: usize,
    /// Chunk size in encoder frames; 0 = full context.
    chunk: usize,
}

impl KeyMask {
    fn visible(&self, i: usize, j: usize) -> bool {
        j < self.valid && (self.chunk == 0 || j < (i / self.chunk + 1) * self.chunk)
    }

    /// Whether every key is visible from every one of `t` queries (no mask needed).
    fn is_full(&self, t: usize) -> bool {
        self.valid >= t && (self.chunk == 0 || self.chunk >= t)
    }
}

/// Conformer feed-forward module (`ConformerFeedForward`).
#[derive(Debug, Clone)]
struct FeedForward {
    norm: LayerNorm,
    expand: Linear,
    project: Linear,
    relu: bool,
}

impl FeedForward {
    fn load(ws: &mut TensorStore, p: &str, cfg: &ConformerConfig) -> Result<Self, ConformerError> {
        let d = cfg.d_model;
        let h = d * cfg.ffn_mult;
        Ok(Self {
            norm: load_ln(ws, &format!("{p}.net.0"), d, cfg.layer_norm_eps)?,
            expand: load_linear(ws, &format!("{p}.net.1"), d, h, true)?,
            project: load_linear(ws, &format!("{p}.net.4"), h, d, true)?,
            relu: cfg.enc_activation == "relu",
        })
    }

    /// `0.5·x + 0.5·(x + net(x))`, as `RelPosEmbConformerBlock.forward` computes it.
    fn half_step(&self, x: &[f32]) -> Vec<f32> {
        let mut h = self.expand.forward(&self.norm.forward(x));
        activation(&mut h, self.relu);
        let net = self.project.forward(&h);
        x.iter()
            .zip(&net)
            .map(|(&a, &n)| 0.5 * a + 0.5 * (n + a))
            .collect()
    }
}

/// Relative-position multi-head self-attention (`RelPosMultiHeadAttention`).
#[derive(Debug, Clone)]
struct RelPosAttention {
    /// One LayerNorm per input (FireRedASR) or a single one (`qkv_layer_norm = false`).
    norms: Vec<LayerNorm>,
    w_q: Linear,
    w_k: Linear,
    w_v: Linear,
    w_pos: Linear,
    fc: Linear,
    pos_bias_u: Vec<f32>,
    pos_bias_v: Vec<f32>,
}

impl RelPosAttention {
    fn load(ws: &mut TensorStore, p: &str, cfg: &ConformerConfig) -> Result<Self, ConformerError> {
        let d = cfg.d_model;
        let eps = cfg.layer_norm_eps;
        let bias = cfg.linear_bias;
        let norms = if cfg.qkv_layer_norm {
            vec![
                load_ln(ws, &format!("{p}.layer_norm_q"), d, eps)?,
                load_ln(ws, &format!("{p}.layer_norm_k"), d, eps)?,
                load_ln(ws, &format!("{p}.layer_norm_v"), d, eps)?,
            ]
        } else {
            vec![load_ln(ws, &format!("{p}.layer_norm"), d, eps)?]
        };
        Ok(Self {
            norms,
            w_q: load_linear(ws, &format!("{p}.w_qs"), d, d, bias)?,
            w_k: load_linear(ws, &format!("{p}.w_ks"), d, d, bias)?,
            w_v: load_linear(ws, &format!("{p}.w_vs"), d, d, bias)?,
            w_pos: load_linear(ws, &format!("{p}.linear_pos"), d, d, false)?,
            fc: load_linear(ws, &format!("{p}.fc"), d, d, bias)?,
            pos_bias_u: ws.take(&format!("{p}.pos_bias_u"), &[cfg.n_head, cfg.d_k()])?,
            pos_bias_v: ws.take(&format!("{p}.pos_bias_v"), &[cfg.n_head, cfg.d_k()])?,
        })
    }

    /// `x`: `[t × d]`; `pos`: the positional table of `shift` (`[np × d]`); keys that `mask`
    /// hides are masked. Returns `x + attention(x)`.
    fn forward(
        &self,
        x: &[f32],
        pos: &[f32],
        t: usize,
        mask: KeyMask,
        n_head: usize,
        shift: PosShift,
    ) -> Vec<f32> {
        let d = self.w_q.n;
        let dk = d / n_head;
        let (q, k, v) = if self.norms.len() == 3 {
            (
                self.w_q.forward(&self.norms[0].forward(x)),
                self.w_k.forward(&self.norms[1].forward(x)),
                self.w_v.forward(&self.norms[2].forward(x)),
            )
        } else {
            let h = self.norms[0].forward(x);
            (
                self.w_q.forward(&h),
                self.w_k.forward(&h),
                self.w_v.forward(&h),
            )
        };
        let p = self.w_pos.forward(pos);
        let np = pos.len() / d;
        let mut ctx = vec![0.0f32; t * d];
        if shift != PosShift::Legacy {
            // The engine's multi-threaded attention (GEMM tiles) with ESPnet's relative term.
            let bias: Vec<f32> = if mask.is_full(t) {
                Vec::new()
            } else {
                (0..t * t)
                    .map(|ij| {
                        if mask.visible(ij / t, ij % t) {
                            0.0
                        } else {
                            f32::NEG_INFINITY
                        }
                    })
                    .collect()
            };
            let mut opts = AttentionOpts::new(n_head, dk).with_rel(RelPosTerm {
                pos: Rows::new(&p, np, d),
                bias_u: &self.pos_bias_u,
                bias_v: &self.pos_bias_v,
                shift: shift == PosShift::Latest,
            });
            if !bias.is_empty() {
                opts = opts.with_mask(&bias);
            }
            attention(
                Rows::new(&q, t, d),
                Rows::new(&k, t, d),
                Rows::new(&v, t, d),
                &opts,
                &mut ctx,
            )
            .expect("encoder attention with shapes checked at load");
        } else {
            self.legacy_core(&q, &k, &v, &p, t, mask, n_head, &mut ctx);
        }
        let mut out = self.fc.forward(&ctx);
        for (o, &r) in out.iter_mut().zip(x) {
            *o += r;
        }
        out
    }

    /// ESPnet's legacy relative-position attention (reversed table, Transformer-XL shift
    /// with its wrap-around above the diagonal), which the engine op does not cover.
    #[allow(clippy::too_many_arguments)]
    fn legacy_core(
        &self,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        p: &[f32],
        t: usize,
        mask: KeyMask,
        n_head: usize,
        ctx: &mut [f32],
    ) {
        let d = self.w_q.n;
        let dk = d / n_head;
        let np = p.len() / d;
        let scale = (1.0 / (dk as f64).sqrt()) as f32;

        let mut qu = vec![0.0f32; t * dk];
        let mut qv = vec![0.0f32; t * dk];
        let mut ac = vec![0.0f32; t * t];
        let mut bd = vec![0.0f32; t * np];
        for h in 0..n_head {
            let (u, vb) = (
                &self.pos_bias_u[h * dk..][..dk],
                &self.pos_bias_v[h * dk..][..dk],
            );
            for i in 0..t {
                let qrow = &q[i * d + h * dk..][..dk];
                for c in 0..dk {
                    qu[i * dk + c] = qrow[c] + u[c];
                    qv[i * dk + c] = qrow[c] + vb[c];
                }
            }
            let kh = &k[h * dk..];
            let ph = &p[h * dk..];
            gemm_f32((t, t, dk), &mut ac, t, false, &qu, (dk, 1), kh, (1, d));
            gemm_f32((t, np, dk), &mut bd, np, false, &qv, (dk, 1), ph, (1, d));
            for i in 0..t {
                let row = &mut ac[i * t..][..t];
                for (j, s) in row.iter_mut().enumerate() {
                    // Transformer-XL's pad-and-reshape on the t×t matrix.
                    let b = if j <= i {
                        bd[i * np + (t - 1 - i) + j]
                    } else if j == i + 1 {
                        0.0
                    } else {
                        bd[(i + 1) * np + (j - i - 2)]
                    };
                    *s = if mask.visible(i, j) {
                        (*s + b) * scale
                    } else {
                        f32::NEG_INFINITY
                    };
                }
                softmax(row);
            }
            gemm_f32(
                (t, dk, t),
                &mut ctx[h * dk..],
                d,
                false,
                &ac,
                (t, 1),
                &v[h * dk..],
                (d, 1),
            );
        }
    }
}

/// Convolution module (`ConformerConvolution`).
#[derive(Debug, Clone)]
struct ConvModule {
    pre_norm: LayerNorm,
    pointwise1: Linear,
    /// Depthwise kernel transposed to `[kernel × channels]` for a channel-inner loop.
    depthwise: Vec<f32>,
    /// Depthwise bias (ESPnet/WeNet, and where a BatchNorm was folded in).
    depthwise_bias: Option<Vec<f32>>,
    kernel: usize,
    /// Left padding of the depthwise convolution: `kernel - 1` when causal, else
    /// `(kernel - 1) / 2` (the rest of `kernel - 1` goes on the right).
    left_pad: usize,
    /// LayerNorm after the depthwise convolution (FireRedASR); `None` when a BatchNorm was
    /// folded into the depthwise weights at conversion.
    norm: Option<LayerNorm>,
    pointwise2: Linear,
    relu: bool,
}

impl ConvModule {
    fn load(ws: &mut TensorStore, p: &str, cfg: &ConformerConfig) -> Result<Self, ConformerError> {
        let d = cfg.d_model;
        let c = d * cfg.conv_inner_mult;
        let kz = cfg.kernel_size;
        let pw1 = ws.take(&format!("{p}.pointwise_conv1.weight"), &[2 * c, d, 1])?;
        let dw = ws.take(&format!("{p}.depthwise_conv.weight"), &[c, 1, kz])?;
        let pw2 = ws.take(&format!("{p}.pointwise_conv2.weight"), &[d, c, 1])?;
        let bias = cfg.linear_bias;
        let batch_norm = cfg.conv_norm == "batch_norm";
        let opt_bias = |ws: &mut TensorStore, name: &str, n: usize, on: bool| {
            if on {
                ws.take(&format!("{p}.{name}.bias"), &[n]).map(Some)
            } else {
                Ok(None)
            }
        };
        let pw1_b = opt_bias(ws, "pointwise_conv1", 2 * c, bias)?;
        let dw_b = opt_bias(ws, "depthwise_conv", c, bias || batch_norm)?;
        let pw2_b = opt_bias(ws, "pointwise_conv2", d, bias)?;
        let mut depthwise = vec![0.0f32; kz * c];
        for ch in 0..c {
            for j in 0..kz {
                depthwise[j * c + ch] = dw[ch * kz + j];
            }
        }
        Ok(Self {
            pre_norm: load_ln(ws, &format!("{p}.pre_layer_norm"), d, cfg.layer_norm_eps)?,
            pointwise1: Linear {
                w: ws.to_weight(pw1, 2 * c, d)?,
                b: pw1_b,
                k: d,
                n: 2 * c,
            },
            depthwise,
            depthwise_bias: dw_b,
            kernel: kz,
            left_pad: if cfg.causal_conv { kz - 1 } else { kz / 2 },
            norm: if batch_norm {
                None
            } else {
                Some(load_ln(
                    ws,
                    &format!("{p}.batch_norm"),
                    c,
                    cfg.layer_norm_eps,
                )?)
            },
            pointwise2: Linear {
                w: ws.to_weight(pw2, d, c)?,
                b: pw2_b,
                k: c,
                n: d,
            },
            relu: cfg.enc_activation == "relu",
        })
    }

    fn forward(&self, x: &[f32], t: usize, valid: usize) -> Vec<f32> {
        let d = self.pointwise2.n;
        let c = self.pointwise2.k;
        let mut h = self.pre_norm.forward(x);
        h[valid * d..].fill(0.0);
        let a = self.pointwise1.forward(&h);
        // GLU over channels: first half * sigmoid(second half).
        let mut g = vec![0.0f32; t * c];
        for i in 0..t {
            let row = &a[i * 2 * c..][..2 * c];
            for ch in 0..c {
                g[i * c + ch] = row[ch] * sigmoid(row[c + ch]);
            }
        }
        // Depthwise convolution over time, zero padding `left_pad` before the first frame and
        // `kernel - 1 - left_pad` after the last.
        let pad = self.left_pad;
        let mut y = vec![0.0f32; t * c];
        if let Some(b) = &self.depthwise_bias {
            for row in y.chunks_exact_mut(c) {
                row.copy_from_slice(b);
            }
        }
        for i in 0..t {
            let out = &mut y[i * c..][..c];
            for j in 0..self.kernel {
                let src = i + j;
                if src < pad || src - pad >= t {
                    continue;
                }
                let inp = &g[(src - pad) * c..][..c];
                let w = &self.depthwise[j * c..][..c];
                for ((o, &xv), &wv) in out.iter_mut().zip(inp).zip(w) {
                    *o += xv * wv;
                }
            }
        }
        if let Some(norm) = &self.norm {
            norm.forward_inplace(&mut y);
        }
        activation(&mut y, self.relu);
        let mut out = self.pointwise2.forward(&y);
        out[valid * d..].fill(0.0);
        for (o, &r) in out.iter_mut().zip(x) {
            *o += r;
        }
        out
    }
}

/// One `RelPosEmbConformerBlock`.
#[derive(Debug, Clone)]
struct ConformerBlock {
    ffn1: FeedForward,
    mhsa: RelPosAttention,
    conv: ConvModule,
    ffn2: FeedForward,
    norm: LayerNorm,
}

/// Subsampling front end (`Conv2dSubsampling`, ESPnet `Conv2dSubsampling6/8`): a stack
/// of ReLU convolutions (kernel, stride) then a Linear over channels×frequency.
#[derive(Debug, Clone)]
struct Subsampling {
    /// Each convolution as a Linear over `c_in`×k×k patches (PyTorch weight order).
    convs: Vec<(Linear, usize, usize)>,
    out: Linear,
    channels: usize,
}

/// im2col of a channel-last `[t × f × cin]` map for a k×k, stride-s convolution:
/// `[(t_o·f_o) × (cin·k·k)]` with column `ch·k·k + a·k + b`.
fn im2col(
    x: &[f32],
    (t, f, cin): (usize, usize, usize),
    k: usize,
    s: usize,
) -> (Vec<f32>, usize, usize) {
    let (to, fo) = ((t - k) / s + 1, (f - k) / s + 1);
    let kk = k * k;
    let mut cols = vec![0.0f32; to * fo * cin * kk];
    for i in 0..to {
        for o in 0..fo {
            let dst = &mut cols[(i * fo + o) * cin * kk..][..cin * kk];
            for a in 0..k {
                for b in 0..k {
                    let src = &x[((s * i + a) * f + s * o + b) * cin..][..cin];
                    for ch in 0..cin {
                        dst[ch * kk + a * k + b] = src[ch];
                    }
                }
            }
        }
    }
    (cols, to, fo)
}

impl Subsampling {
    /// `x`: `[frames × idim]` → (`[t × d]`, t).
    fn forward(&self, x: &[f32], frames: usize, idim: usize) -> (Vec<f32>, usize) {
        let c = self.channels;
        let (mut h, mut t, mut f, mut cin) = (x.to_vec(), frames, idim, 1);
        for (conv, k, s) in &self.convs {
            let (cols, to, fo) = im2col(&h, (t, f, cin), *k, *s);
            h = conv.forward(&cols); // [(to*fo) × c], channel-last
            relu(&mut h);
            (t, f, cin) = (to, fo, c);
        }
        // (N, C, T, F) -> (N, T, C*F)
        let mut flat = vec![0.0f32; t * c * f];
        for i in 0..t {
            for o in 0..f {
                for ch in 0..c {
                    flat[i * c * f + ch * f + o] = h[(i * f + o) * c + ch];
                }
            }
        }
        (self.out.forward(&flat), t)
    }
}

/// Which relative-position score layout the attention uses (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PosShift {
    Latest,
    None,
    Legacy,
}

fn activation(x: &mut [f32], relu_not_swish: bool) {
    if relu_not_swish {
        relu(x);
    } else {
        swish(x);
    }
}

/// The conformer encoder with its weights.
#[derive(Debug, Clone)]
pub struct ConformerEncoder {
    sub: Subsampling,
    blocks: Vec<ConformerBlock>,
    after_norm: Option<LayerNorm>,
    shift: PosShift,
    /// (kernel, stride) of the subsampling convolutions.
    sub_layers: Vec<(usize, usize)>,
    d_model: usize,
    n_head: usize,
    idim: usize,
    pad_context: usize,
    xscale: bool,
    pe_maxlen: usize,
}

/// Encoder result for one utterance.
#[derive(Debug, Clone)]
pub struct EncoderOutput {
    /// `[frames × d_model]`, including the frames produced by the padded context.
    pub hidden: Vec<f32>,
    /// Number of output frames (`hidden.len() / d_model`).
    pub frames: usize,
    /// Frames that are not padding (the reference's mask); cross-attention ignores the rest.
    pub valid: usize,
    /// Per-stage outputs when traced: subsampling, then every block.
    pub stages: Vec<Vec<f32>>,
}

pub(crate) fn load_ln(
    ws: &mut TensorStore,
    p: &str,
    d: usize,
    eps: f32,
) -> Result<LayerNorm, ConformerError> {
    Ok(LayerNorm {
        g: ws.take(&format!("{p}.weight"), &[d])?,
        b: ws.take(&format!("{p}.bias"), &[d])?,
        eps,
    })
}

pub(crate) fn load_linear(
    ws: &mut TensorStore,
    p: &str,
    k: usize,
    n: usize,
    bias: bool,
) -> Result<Linear, ConformerError> {
    Ok(Linear {
        w: ws.take_matrix(&format!("{p}.weight"), &[n, k])?,
        b: if bias {
            Some(ws.take(&format!("{p}.bias"), &[n])?)
        } else {
            None
        },
        k,
        n,
    })
}

impl ConformerEncoder {
    /// Takes the `encoder.*` tensors.
    pub fn load(ws: &mut TensorStore, cfg: &ConformerConfig) -> Result<Self, ConformerError> {
        let c = cfg.subsampling_channels;
        let d = cfg.d_model;
        let p = "encoder.input_preprocessor";
        let mut convs = Vec::new();
        let mut cin = 1;
        for (i, &(k, st)) in cfg.subsampling_layers().iter().enumerate() {
            let q = format!("{p}.conv.{}", 2 * i);
            convs.push((
                Linear {
                    w: Weight::F32(ws.take(&format!("{q}.weight"), &[c, cin, k, k])?),
                    b: Some(ws.take(&format!("{q}.bias"), &[c])?),
                    k: cin * k * k,
                    n: c,
                },
                k,
                st,
            ));
            cin = c;
        }
        let sub = Subsampling {
            convs,
            out: load_linear(ws, &format!("{p}.out"), c * cfg.subsampled_idim(), d, true)?,
            channels: c,
        };
        let mut blocks = Vec::with_capacity(cfg.n_layers_enc);
        for i in 0..cfg.n_layers_enc {
            let p = format!("encoder.layer_stack.{i}");
            blocks.push(ConformerBlock {
                ffn1: FeedForward::load(ws, &format!("{p}.ffn1"), cfg)?,
                mhsa: RelPosAttention::load(ws, &format!("{p}.mhsa"), cfg)?,
                conv: ConvModule::load(ws, &format!("{p}.conv"), cfg)?,
                ffn2: FeedForward::load(ws, &format!("{p}.ffn2"), cfg)?,
                norm: load_ln(ws, &format!("{p}.layer_norm"), d, cfg.layer_norm_eps)?,
            });
        }
        let after_norm = if cfg.enc_after_norm {
            Some(load_ln(ws, "encoder.after_norm", d, cfg.layer_norm_eps)?)
        } else {
            None
        };
        let shift = match (cfg.pos_enc_layer_type.as_str(), cfg.rel_shift) {
            ("legacy_rel_pos", _) => PosShift::Legacy,
            (_, true) => PosShift::Latest,
            (_, false) => PosShift::None,
        };
        Ok(Self {
            sub,
            blocks,
            after_norm,
            shift,
            sub_layers: cfg.subsampling_layers().to_vec(),
            d_model: d,
            n_head: cfg.n_head,
            idim: cfg.idim,
            pad_context: cfg.pad_context,
            xscale: cfg.xscale,
            pe_maxlen: cfg.pe_maxlen,
        })
    }

    /// Output frames for `frames` input frames (after the context padding).
    pub fn output_frames(&self, frames: usize) -> usize {
        let mut n = frames + self.pad_context;
        for &(k, s) in &self.sub_layers {
            if n < k {
                return 0;
            }
            n = (n - k) / s + 1;
        }
        n
    }

    /// Input frames per output frame (the product of the subsampling strides).
    pub fn subsampling(&self) -> usize {
        self.sub_layers.iter().map(|l| l.1).product()
    }

    /// Model width (columns of [`EncoderOutput::hidden`]).
    pub fn d_model(&self) -> usize {
        self.d_model
    }

    /// Checks `[frames × idim]` features and returns `(frames, t, valid)`: input frames,
    /// encoder output frames and the output frames that are not padding (what
    /// [`ConformerEncoder::forward`] produces for them).
    pub fn geometry(&self, feats: &[f32]) -> Result<(usize, usize, usize), ConformerError> {
        let idim = self.idim;
        if !feats.len().is_multiple_of(idim) {
            return Err(ConformerError::Input(format!(
                "{} values is not a whole number of {idim}-dim frames",
                feats.len()
            )));
        }
        let frames = feats.len() / idim;
        let t = self.output_frames(frames);
        if t == 0 || frames == 0 {
            return Err(ConformerError::Input(format!(
                "{frames} frames is too short to subsample"
            )));
        }
        if t > self.pe_maxlen {
            return Err(ConformerError::Input(format!(
                "{frames} frames give {t} encoder frames, more than pe_maxlen {}",
                self.pe_maxlen
            )));
        }
        // Mask of the reference (`x_mask[:, :, :-2:2]…`): subsampled frame j is valid iff
        // input frame j·Πstride is.
        let stride: usize = self.sub_layers.iter().map(|l| l.1).product();
        let valid = (0..t).filter(|j| stride * j < frames).count();
        Ok((frames, t, valid))
    }

    /// Encodes `[frames × idim]` normalised features at full context. With `trace`, keeps
    /// every stage.
    pub fn forward(&self, feats: &[f32], trace: bool) -> Result<EncoderOutput, ConformerError> {
        self.forward_chunked(feats, 0, trace)
    }

    /// [`Self::forward`] with a chunk attention mask of `chunk` encoder frames (0 = full
    /// context): frame i attends to the frames before `(i / chunk + 1) * chunk`, as the
    /// reference's masked forward (`scripts/conformer/streaming.py`) does.
    pub fn forward_chunked(
        &self,
        feats: &[f32],
        chunk: usize,
        trace: bool,
    ) -> Result<EncoderOutput, ConformerError> {
        let idim = self.idim;
        let (frames, t, valid) = self.geometry(feats)?;
        let padded_frames = frames + self.pad_context;
        let mut x = feats.to_vec();
        x.resize(padded_frames * idim, 0.0);
        let (mut h, t2) = self.sub.forward(&x, padded_frames, idim);
        debug_assert_eq!(t2, t);
        let d = self.d_model;
        let mut stages = Vec::new();
        if trace {
            stages.push(h.clone());
        }
        if self.xscale {
            let s = (d as f32).sqrt();
            h.iter_mut().for_each(|v| *v *= s);
        }
        let np = if self.shift == PosShift::Latest {
            2 * t - 1
        } else {
            t
        };
        let mut pos = vec![0.0f32; np * d];
        for r in 0..np {
            let rel = match self.shift {
                PosShift::Latest => (t - 1) as f32 - r as f32,
                PosShift::None => r as f32,
                PosShift::Legacy => (self.pe_maxlen.max(t) - 1 - r) as f32,
            };
            for col in 0..d {
                pos[r * d + col] = super::nn::sinusoid(rel, col, d);
            }
        }
        for b in &self.blocks {
            let y = b.ffn1.half_step(&h);
            let y = b.mhsa.forward(
                &y,
                &pos,
                t,
                KeyMask { valid, chunk },
                self.n_head,
                self.shift,
            );
            let y = b.conv.forward(&y, t, valid);
            let mut y = b.ffn2.half_step(&y);
            b.norm.forward_inplace(&mut y);
            h = y;
            if trace {
                stages.push(h.clone());
            }
        }
        if let Some(n) = &self.after_norm {
            n.forward_inplace(&mut h);
        }
        Ok(EncoderOutput {
            hidden: h,
            frames: t,
            valid,
            stages,
        })
    }
}
