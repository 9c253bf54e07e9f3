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
//! One utterance at a time: the padding mask then only covers the appended context frames,
//! but it is applied exactly as the reference applies it (keys in attention, rows in the
//! convolution module) because those frames do reach the output.

use super::config::ConformerConfig;
use super::error::ConformerError;
use super::nn::{gemm_f32, sigmoid, softmax, swish, LayerNorm, Linear, Weight};
use super::weights::TensorStore;

/// Conformer feed-forward module (`ConformerFeedForward`).
#[derive(Debug, Clone)]
struct FeedForward {
    norm: LayerNorm,
    expand: Linear,
    project: Linear,
}

impl FeedForward {
    fn load(ws: &mut TensorStore, p: &str, cfg: &ConformerConfig) -> Result<Self, ConformerError> {
        let d = cfg.d_model;
        let h = d * cfg.ffn_mult;
        Ok(Self {
            norm: load_ln(ws, &format!("{p}.net.0"), d, cfg.layer_norm_eps)?,
            expand: load_linear(ws, &format!("{p}.net.1"), d, h, true)?,
            project: load_linear(ws, &format!("{p}.net.4"), h, d, true)?,
        })
    }

    /// `0.5·x + 0.5·(x + net(x))`, as `RelPosEmbConformerBlock.forward` computes it.
    fn half_step(&self, x: &[f32]) -> Vec<f32> {
        let mut h = self.expand.forward(&self.norm.forward(x));
        swish(&mut h);
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
    norm_q: LayerNorm,
    norm_k: LayerNorm,
    norm_v: LayerNorm,
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
        Ok(Self {
            norm_q: load_ln(ws, &format!("{p}.layer_norm_q"), d, eps)?,
            norm_k: load_ln(ws, &format!("{p}.layer_norm_k"), d, eps)?,
            norm_v: load_ln(ws, &format!("{p}.layer_norm_v"), d, eps)?,
            w_q: load_linear(ws, &format!("{p}.w_qs"), d, d, false)?,
            w_k: load_linear(ws, &format!("{p}.w_ks"), d, d, false)?,
            w_v: load_linear(ws, &format!("{p}.w_vs"), d, d, false)?,
            w_pos: load_linear(ws, &format!("{p}.linear_pos"), d, d, false)?,
            fc: load_linear(ws, &format!("{p}.fc"), d, d, false)?,
            pos_bias_u: ws.take(&format!("{p}.pos_bias_u"), &[cfg.n_head, cfg.d_k()])?,
            pos_bias_v: ws.take(&format!("{p}.pos_bias_v"), &[cfg.n_head, cfg.d_k()])?,
        })
    }

    /// `x`: `[t × d]`; `pos`: `[(2t-1) × d]` encodings for relative positions t-1 … -(t-1);
    /// keys at or after `valid` are masked. Returns `x + attention(x)`.
    fn forward(&self, x: &[f32], pos: &[f32], t: usize, valid: usize, n_head: usize) -> Vec<f32> {
        let d = self.w_q.n;
        let dk = d / n_head;
        let q = self.w_q.forward(&self.norm_q.forward(x));
        let k = self.w_k.forward(&self.norm_k.forward(x));
        let v = self.w_v.forward(&self.norm_v.forward(x));
        let p = self.w_pos.forward(pos);
        let np = 2 * t - 1;
        let scale = (1.0 / (dk as f64).sqrt()) as f32;
        let mut ctx = vec![0.0f32; t * d];
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
            // scores[i][j] = ac[i][j] + bd[i][t-1-i+j]  (rel_shift), then scale and mask.
            for i in 0..t {
                let row = &mut ac[i * t..][..t];
                let bdrow = &bd[i * np + (t - 1 - i)..][..t];
                for (j, (s, &b)) in row.iter_mut().zip(bdrow).enumerate() {
                    *s = if j < valid {
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
        let mut out = self.fc.forward(&ctx);
        for (o, &r) in out.iter_mut().zip(x) {
            *o += r;
        }
        out
    }
}

/// Convolution module (`ConformerConvolution`).
#[derive(Debug, Clone)]
struct ConvModule {
    pre_norm: LayerNorm,
    pointwise1: Linear,
    /// Depthwise kernel transposed to `[kernel × channels]` for a channel-inner loop.
    depthwise: Vec<f32>,
    kernel: usize,
    norm: LayerNorm,
    pointwise2: Linear,
}

impl ConvModule {
    fn load(ws: &mut TensorStore, p: &str, cfg: &ConformerConfig) -> Result<Self, ConformerError> {
        let d = cfg.d_model;
        let c = d * cfg.conv_inner_mult;
        let kz = cfg.kernel_size;
        let pw1 = ws.take(&format!("{p}.pointwise_conv1.weight"), &[2 * c, d, 1])?;
        let dw = ws.take(&format!("{p}.depthwise_conv.weight"), &[c, 1, kz])?;
        let pw2 = ws.take(&format!("{p}.pointwise_conv2.weight"), &[d, c, 1])?;
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
                b: None,
                k: d,
                n: 2 * c,
            },
            depthwise,
            kernel: kz,
            norm: load_ln(ws, &format!("{p}.batch_norm"), c, cfg.layer_norm_eps)?,
            pointwise2: Linear {
                w: ws.to_weight(pw2, d, c)?,
                b: None,
                k: c,
                n: d,
            },
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
        // Depthwise convolution over time, zero padding (kernel-1)/2 on both sides.
        let pad = self.kernel / 2;
        let mut y = vec![0.0f32; t * c];
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
        self.norm.forward_inplace(&mut y);
        swish(&mut y);
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

/// Subsampling front end (`Conv2dSubsampling`).
#[derive(Debug, Clone)]
struct Subsampling {
    /// conv.0 as a Linear over 3×3 patches: `[channels × 9]`.
    conv1: Linear,
    /// conv.2 as a Linear over `channels`×3×3 patches.
    conv2: Linear,
    out: Linear,
    channels: usize,
}

impl Subsampling {
    /// `x`: `[frames × idim]` → (`[t2 × d]`, t2).
    fn forward(&self, x: &[f32], frames: usize, idim: usize) -> (Vec<f32>, usize) {
        let c = self.channels;
        let (t1, f1) = ((frames - 3) / 2 + 1, (idim - 3) / 2 + 1);
        let (t2, f2) = ((t1 - 3) / 2 + 1, (f1 - 3) / 2 + 1);
        // conv.0: im2col over the single input channel.
        let mut cols = vec![0.0f32; t1 * f1 * 9];
        for i in 0..t1 {
            for f in 0..f1 {
                let dst = &mut cols[(i * f1 + f) * 9..][..9];
                for a in 0..3 {
                    for b in 0..3 {
                        dst[a * 3 + b] = x[(2 * i + a) * idim + 2 * f + b];
                    }
                }
            }
        }
        let mut h1 = self.conv1.forward(&cols); // [(t1*f1) × c], channel-last
        super::nn::relu(&mut h1);
        let mut cols2 = vec![0.0f32; t2 * f2 * c * 9];
        for i in 0..t2 {
            for f in 0..f2 {
                let dst = &mut cols2[(i * f2 + f) * c * 9..][..c * 9];
                for a in 0..3 {
                    for b in 0..3 {
                        let src = &h1[((2 * i + a) * f1 + 2 * f + b) * c..][..c];
                        for ch in 0..c {
                            dst[ch * 9 + a * 3 + b] = src[ch];
                        }
                    }
                }
            }
        }
        let mut h2 = self.conv2.forward(&cols2); // [(t2*f2) × c]
        super::nn::relu(&mut h2);
        // (N, C, T, F) -> (N, T, C*F)
        let mut flat = vec![0.0f32; t2 * c * f2];
        for i in 0..t2 {
            for f in 0..f2 {
                for ch in 0..c {
                    flat[i * c * f2 + ch * f2 + f] = h2[(i * f2 + f) * c + ch];
                }
            }
        }
        (self.out.forward(&flat), t2)
    }
}

/// The conformer encoder with its weights.
#[derive(Debug, Clone)]
pub struct ConformerEncoder {
    sub: Subsampling,
    blocks: Vec<ConformerBlock>,
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
        let sub = Subsampling {
            conv1: Linear {
                w: Weight::F32(ws.take(&format!("{p}.conv.0.weight"), &[c, 1, 3, 3])?),
                b: Some(ws.take(&format!("{p}.conv.0.bias"), &[c])?),
                k: 9,
                n: c,
            },
            conv2: Linear {
                w: Weight::F32(ws.take(&format!("{p}.conv.2.weight"), &[c, c, 3, 3])?),
                b: Some(ws.take(&format!("{p}.conv.2.bias"), &[c])?),
                k: c * 9,
                n: c,
            },
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
        Ok(Self {
            sub,
            blocks,
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
        let n = frames + self.pad_context;
        if n < 7 {
            return 0;
        }
        ((n - 1) / 2 - 1) / 2
    }

    /// Encodes `[frames × idim]` normalised features. With `trace`, keeps every stage.
    pub fn forward(&self, feats: &[f32], trace: bool) -> Result<EncoderOutput, ConformerError> {
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
        let padded_frames = frames + self.pad_context;
        let mut x = feats.to_vec();
        x.resize(padded_frames * idim, 0.0);
        // Mask of the reference: subsampled frame j is valid iff input frame 4j is.
        let valid = (0..t).filter(|j| 4 * j < frames).count();
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
        let np = 2 * t - 1;
        let mut pos = vec![0.0f32; np * d];
        for r in 0..np {
            let rel = (t - 1) as f32 - r as f32;
            for col in 0..d {
                pos[r * d + col] = super::nn::sinusoid(rel, col, d);
            }
        }
        for b in &self.blocks {
            let y = b.ffn1.half_step(&h);
            let y = b.mhsa.forward(&y, &pos, t, valid, self.n_head);
            let y = b.conv.forward(&y, t, valid);
            let mut y = b.ffn2.half_step(&y);
            b.norm.forward_inplace(&mut y);
            h = y;
            if trace {
                stages.push(h.clone());
            }
        }
        Ok(EncoderOutput {
            hidden: h,
            frames: t,
            valid,
            stages,
        })
    }
}
