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

    /// Whether all of `tk` keys are visible from every query from frame `q0` on (no mask
    /// needed).
    fn is_full(&self, q0: usize, tk: usize) -> bool {
        self.valid >= tk && (self.chunk == 0 || (q0 / self.chunk + 1) * self.chunk >= tk)
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

    /// Queries, keys and values of `[t × d]` rows (through the LayerNorm(s)).
    fn qkv(&self, x: &[f32]) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        if self.norms.len() == 3 {
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
        }
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
        let (q, k, v) = self.qkv(x);
        let p = self.w_pos.forward(pos);
        let mut ctx = vec![0.0f32; t * d];
        if shift != PosShift::Legacy {
            self.core(&q, &k, &v, &p, 0, mask, n_head, shift, &mut ctx);
        } else {
            self.legacy_core(&q, &k, &v, &p, t, mask, n_head, &mut ctx);
        }
        self.finish(ctx, x)
    }

    /// `x + fc(ctx)`.
    fn finish(&self, ctx: Vec<f32>, x: &[f32]) -> Vec<f32> {
        let mut out = self.fc.forward(&ctx);
        for (o, &r) in out.iter_mut().zip(x) {
            *o += r;
        }
        out
    }

    /// The engine's multi-threaded attention (GEMM tiles) with ESPnet's relative term, for
    /// the last `q.len() / d` of the `k.len() / d` key frames (`q0` = the first query's
    /// frame): `p` is the projected table of `shift` for at least that many keys (with
    /// `rel_shift`, an odd number of rows whose middle row is relative position 0).
    #[allow(clippy::too_many_arguments)]
    fn core(
        &self,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        p: &[f32],
        q0: usize,
        mask: KeyMask,
        n_head: usize,
        shift: PosShift,
        ctx: &mut [f32],
    ) {
        let d = self.w_q.n;
        let dk = d / n_head;
        let (tq, tk) = (q.len() / d, k.len() / d);
        debug_assert_eq!(q0 + tq, tk, "queries are the last key frames");
        let bias: Vec<f32> = if mask.is_full(q0, tk) {
            Vec::new()
        } else {
            (0..tq * tk)
                .map(|ij| {
                    if mask.visible(q0 + ij / tk, ij % tk) {
                        0.0
                    } else {
                        f32::NEG_INFINITY
                    }
                })
                .collect()
        };
        let mut opts = AttentionOpts::new(n_head, dk).with_rel(RelPosTerm {
            pos: Rows::new(p, p.len() / d, d),
            bias_u: &self.pos_bias_u,
            bias_v: &self.pos_bias_v,
            shift: shift == PosShift::Latest,
        });
        if !bias.is_empty() {
            opts = opts.with_mask(&bias);
        }
        attention(
            Rows::new(q, tq, d),
            Rows::new(k, tk, d),
            Rows::new(v, tk, d),
            &opts,
            ctx,
        )
        .expect("encoder attention with shapes checked at load");
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
        self.forward_with_history(x, t, valid, &mut Vec::new(), false)
    }

    /// [`Self::forward`] for `t` rows that follow the rows whose GLU outputs `history` holds
    /// (`[h × channels]`, at most `left_pad` rows; empty at the start, which is the zero
    /// padding): the depthwise convolution reads them as its left context instead of zeros.
    /// With `keep`, `history` becomes the last `left_pad` GLU rows, for the next call;
    /// otherwise it is left as it was.
    /// Rows from `valid` on are padding (zeroed, as in [`Self::forward`]).
    fn forward_with_history(
        &self,
        x: &[f32],
        t: usize,
        valid: usize,
        history: &mut Vec<f32>,
        keep: bool,
    ) -> Vec<f32> {
        let d = self.pointwise2.n;
        let c = self.pointwise2.k;
        let mut h = self.pre_norm.forward(x);
        h[valid * d..].fill(0.0);
        let a = self.pointwise1.forward(&h);
        // History, then the GLU over channels: first half * sigmoid(second half).
        let hist = history.len() / c;
        let mut g = Vec::with_capacity((hist + t) * c);
        g.extend_from_slice(history);
        g.resize((hist + t) * c, 0.0);
        for i in 0..t {
            let row = &a[i * 2 * c..][..2 * c];
            let out = &mut g[(hist + i) * c..][..c];
            for ch in 0..c {
                out[ch] = row[ch] * sigmoid(row[c + ch]);
            }
        }
        // Depthwise convolution over time: output row i reads rows i - left_pad .. of the
        // history + new rows, zeros before the first (history) row and after the last.
        let pad = self.left_pad;
        let n = hist + t;
        let mut y = vec![0.0f32; t * c];
        if let Some(b) = &self.depthwise_bias {
            for row in y.chunks_exact_mut(c) {
                row.copy_from_slice(b);
            }
        }
        for i in 0..t {
            let out = &mut y[i * c..][..c];
            for j in 0..self.kernel {
                let src = hist + i + j;
                if src < pad || src - pad >= n {
                    continue;
                }
                let inp = &g[(src - pad) * c..][..c];
                let w = &self.depthwise[j * c..][..c];
                for ((o, &xv), &wv) in out.iter_mut().zip(inp).zip(w) {
                    *o += xv * wv;
                }
            }
        }
        if keep {
            let rows = n.min(pad);
            g.drain(..(n - rows) * c);
            *history = g;
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
    /// Causal depthwise convolutions (`config.causal_conv`): what [`Self::stream`] needs.
    causal: bool,
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
            causal: cfg.causal_conv,
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
        let pos = self.positions(t);
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

    /// Whether [`Self::stream`] can encode this model incrementally (causal convolutions, a
    /// length-independent relative-position table).
    pub fn streams(&self) -> bool {
        self.causal && self.shift != PosShift::Legacy
    }

    /// Starts incremental encoding with a chunk attention mask of `chunk` encoder frames
    /// (WeNet's `forward_chunk` idea): [`Self::stream_push`] runs each chunk through the
    /// blocks once, as soon as its audio (plus the subsampling's look-ahead) has arrived,
    /// keeping every block's keys and values and the convolutions' last `kernel - 1` rows;
    /// [`Self::stream_output`] gives what [`Self::forward_chunked`] gives for all the
    /// features pushed so far, computing only the unfinished last chunk. The cost of a push
    /// is bounded by its own audio (plus attention over the frames before it), not by the
    /// utterance's length. Needs a streaming model: causal convolutions (`causal_conv`) and
    /// a relative-position table that does not depend on the length (not `legacy_rel_pos`).
    pub fn stream(&self, chunk: usize) -> Result<EncoderStream, ConformerError> {
        if chunk == 0 {
            return Err(ConformerError::Input(
                "incremental encoding needs a chunk size (encoder frames), not 0".into(),
            ));
        }
        if !self.causal {
            return Err(ConformerError::Input(
                "incremental encoding needs causal convolutions (config.json causal_conv): a centred \
                 convolution reads frames of the next chunk"
                    .into(),
            ));
        }
        if self.shift == PosShift::Legacy {
            return Err(ConformerError::Input(
                "incremental encoding does not support legacy_rel_pos (its table depends on the length)"
                    .into(),
            ));
        }
        Ok(EncoderStream {
            chunk,
            feats: Vec::new(),
            frames_in: 0,
            pending: Vec::new(),
            committed: 0,
            out: Vec::new(),
            layers: vec![LayerCache::default(); self.blocks.len()],
            pos_keys: 0,
        })
    }

    /// Appends `[frames × idim]` normalised features to the stream and encodes every chunk
    /// that is now complete.
    pub fn stream_push(&self, st: &mut EncoderStream, feats: &[f32]) -> Result<(), ConformerError> {
        let idim = self.idim;
        if !feats.len().is_multiple_of(idim) {
            return Err(ConformerError::Input(format!(
                "{} values is not a whole number of {idim}-dim frames",
                feats.len()
            )));
        }
        let frames_in = st.frames_in + feats.len() / idim;
        let t = self.output_frames(frames_in);
        if t > self.pe_maxlen {
            return Err(ConformerError::Input(format!(
                "{frames_in} frames give {t} encoder frames, more than pe_maxlen {}",
                self.pe_maxlen
            )));
        }
        st.feats.extend_from_slice(feats);
        st.frames_in = frames_in;
        let stride = self.subsampling();
        if let Some((rows, n)) = self.subsample_complete(&st.feats) {
            st.feats.drain(..n * stride * idim);
            st.pending.extend_from_slice(&rows);
        }
        let d = self.d_model;
        while st.pending.len() >= st.chunk * d {
            let rest = st.pending.split_off(st.chunk * d);
            let x = std::mem::replace(&mut st.pending, rest);
            let y = self.stream_blocks(st, &x, st.committed, usize::MAX);
            st.out.extend_from_slice(&y);
            st.committed += st.chunk;
        }
        Ok(())
    }

    /// The encoder output for every feature pushed so far, as [`Self::forward_chunked`]
    /// gives it for them (the audio ending here: the context padding is appended and the
    /// last, unfinished chunk is encoded without being kept).
    pub fn stream_output(&self, st: &mut EncoderStream) -> Result<EncoderOutput, ConformerError> {
        let frames = st.frames_in;
        let t = self.output_frames(frames);
        if t == 0 || frames == 0 {
            return Err(ConformerError::Input(format!(
                "{frames} frames is too short to subsample"
            )));
        }
        let stride = self.subsampling();
        let valid = (0..t).filter(|j| stride * j < frames).count();
        let mut buf = st.feats.clone();
        buf.resize(buf.len() + self.pad_context * self.idim, 0.0);
        let mut rows = st.pending.clone();
        if let Some((tail, _)) = self.subsample_complete(&buf) {
            rows.extend_from_slice(&tail);
        }
        let d = self.d_model;
        debug_assert_eq!(st.committed + rows.len() / d, t);
        let kept: Vec<(usize, Vec<f32>)> = st
            .layers
            .iter()
            .map(|l| (l.k.len(), l.conv.clone()))
            .collect();
        let mut hidden = Vec::with_capacity(t * d);
        hidden.extend_from_slice(&st.out);
        for piece in rows.chunks(st.chunk * d) {
            let q0 = hidden.len() / d;
            let y = self.stream_blocks(st, piece, q0, valid);
            hidden.extend_from_slice(&y);
        }
        for (l, (len, conv)) in st.layers.iter_mut().zip(kept) {
            l.k.truncate(len);
            l.v.truncate(len);
            l.conv = conv;
        }
        Ok(EncoderOutput {
            hidden,
            frames: t,
            valid,
            stages: Vec::new(),
        })
    }

    /// Subsamples every window wholly inside `buf` (`[rows × idim]`, starting at a multiple
    /// of the stride): `(rows × d_model, count)`, with `xscale` applied; `None` when no
    /// window fits.
    fn subsample_complete(&self, buf: &[f32]) -> Option<(Vec<f32>, usize)> {
        let idim = self.idim;
        let stride = self.subsampling();
        let field = self
            .sub_layers
            .iter()
            .rev()
            .fold(1, |rf, &(k, s)| (rf - 1) * s + k);
        let n = buf.len() / idim;
        if n < field {
            return None;
        }
        let count = (n - field) / stride + 1;
        let used = (count - 1) * stride + field;
        let (mut h, t) = self.sub.forward(&buf[..used * idim], used, idim);
        debug_assert_eq!(t, count);
        if self.xscale {
            let s = (self.d_model as f32).sqrt();
            h.iter_mut().for_each(|v| *v *= s);
        }
        Some((h, count))
    }

    /// Runs `x` (rows of one chunk, the first at frame `q0`) through every block, keeping
    /// their keys, values and convolution history in `st` (the caller truncates them again
    /// for a chunk it does not keep). Frames from `valid` on are padding.
    fn stream_blocks(
        &self,
        st: &mut EncoderStream,
        x: &[f32],
        q0: usize,
        valid: usize,
    ) -> Vec<f32> {
        let d = self.d_model;
        let tq = x.len() / d;
        self.stream_positions(st, q0 + tq);
        let mask = KeyMask {
            valid,
            chunk: st.chunk,
        };
        let valid_rows = valid.saturating_sub(q0).min(tq);
        let mut h = x.to_vec();
        for (b, cache) in self.blocks.iter().zip(st.layers.iter_mut()) {
            let y = b.ffn1.half_step(&h);
            let (q, k, v) = b.mhsa.qkv(&y);
            cache.k.extend_from_slice(&k);
            cache.v.extend_from_slice(&v);
            let mut ctx = vec![0.0f32; tq * d];
            b.mhsa.core(
                &q,
                &cache.k,
                &cache.v,
                &cache.pos,
                q0,
                mask,
                self.n_head,
                self.shift,
                &mut ctx,
            );
            let y = b.mhsa.finish(ctx, &y);
            let y = b
                .conv
                .forward_with_history(&y, tq, valid_rows, &mut cache.conv, true);
            let mut y = b.ffn2.half_step(&y);
            b.norm.forward_inplace(&mut y);
            h = y;
        }
        if let Some(n) = &self.after_norm {
            n.forward_inplace(&mut h);
        }
        h
    }

    /// The positional table of `shift` for `t` frames (`[np × d]`): with `rel_shift` the
    /// 2t-1 relative positions t-1 … -(t-1); without, positions 0 … t-1; legacy, L-1 … L-t.
    fn positions(&self, t: usize) -> Vec<f32> {
        let d = self.d_model;
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
        pos
    }

    /// Makes every block's projected positional table cover `keys` key frames, growing it
    /// by doubling (the table for `R` keys serves any shorter stream: with `rel_shift` its
    /// middle row is relative position 0; without, row j is position j).
    fn stream_positions(&self, st: &mut EncoderStream, keys: usize) {
        if st.pos_keys >= keys {
            return;
        }
        let r = keys.next_power_of_two().max(64);
        let pos = self.positions(r);
        for (b, cache) in self.blocks.iter().zip(st.layers.iter_mut()) {
            cache.pos = b.mhsa.w_pos.forward(&pos);
        }
        st.pos_keys = r;
    }
}

/// One block's state in an [`EncoderStream`].
#[derive(Debug, Clone, Default)]
struct LayerCache {
    /// Keys and values of every kept frame, `[frames × d_model]`.
    k: Vec<f32>,
    v: Vec<f32>,
    /// The convolution module's last `kernel - 1` GLU rows.
    conv: Vec<f32>,
    /// `linear_pos` of the stream's positional table.
    pos: Vec<f32>,
}

/// Incremental encoding state of one utterance ([`ConformerEncoder::stream`]).
#[derive(Debug, Clone)]
pub struct EncoderStream {
    /// Chunk size, encoder frames.
    chunk: usize,
    /// Input rows not yet consumed by the subsampling (from a multiple of its stride).
    feats: Vec<f32>,
    /// Input rows pushed.
    frames_in: usize,
    /// Subsampled rows waiting for their chunk to fill (fewer than `chunk`).
    pending: Vec<f32>,
    /// Encoder frames kept (whole chunks).
    committed: usize,
    /// Encoder output of the kept frames.
    out: Vec<f32>,
    layers: Vec<LayerCache>,
    /// Key frames the positional tables cover.
    pos_keys: usize,
}

impl EncoderStream {
    /// Feature frames pushed so far.
    pub fn frames_in(&self) -> usize {
        self.frames_in
    }

    /// Encoder frames encoded for good (whole chunks).
    pub fn committed(&self) -> usize {
        self.committed
    }

    /// The chunk size, encoder frames.
    pub fn chunk(&self) -> usize {
        self.chunk
    }
}
