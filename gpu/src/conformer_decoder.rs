//! The conformer-AED (FireRedASR-AED) transformer decoder on the GPU, as a
//! [`hark_engine::delegate::DecoderSession`] with its caches resident on the device.
//!
//! Follows hark's CPU decoder (`models/src/conformer_aed/decoder.rs`, a port of FireRedASR
//! `fireredasr/models/module/transformer_decoder.py`): token embedding ×√d (when
//! `dec_embed_scale`) + sinusoidal positions, pre-LN layers (self-attention over the
//! cache, cross-attention to the utterance's encoder output, GELU or ReLU FFN), final
//! LayerNorm (`layer_norm_eps`), output projection tied to the embedding (or
//! `tgt_word_prj` when untied); keys holding `pad_id` are masked as the reference's
//! `ignored_target_position_is_0` does.
//!
//! This decoder has the Whisper decoder's structure, so it runs on the same session
//! ([`crate::whisper_decoder::GpuDecoderSession`]: resident self-attention K/V, beam index
//! table gathered by parent index, cross K/V computed once per utterance in `begin`,
//! skinny GEMV for beam steps): this module only maps the checkpoint onto it. The
//! separate `w_qs`/`w_ks`/`w_vs` projections are concatenated at load into the session's
//! fused `[3d, d]` QKV matrix and the cross-attention `w_ks`/`w_vs` into its `[2d, d]`
//! K/V matrix, in their stored precision (f16 → f32 → f16 is exact); a missing key bias
//! (FireRedASR has none) becomes zeros. The sinusoidal position table is computed on the
//! host with the CPU path's formula and uploaded once.

use std::path::Path;

use hark_engine::{DType, Tensor};

use crate::context::GpuContext;
use crate::kernels::Act;
use crate::upload::WeightUploader;
use crate::whisper::{Linear, Norm};
use crate::whisper_decoder::{DecoderDims, DecoderWeights, Layer, MAX_LEN};
use crate::GpuError;

fn cfg_err(dir: &Path, reason: String) -> GpuError {
    GpuError::Model {
        path: dir.join("config.json"),
        reason,
    }
}

/// Stacks rank-2 `[n_i, k]` tensors into one `[Σn_i, k]`, keeping f16 storage.
fn concat_rows(parts: &[Tensor]) -> Result<Tensor, GpuError> {
    let k = parts[0].dim(1);
    let mut v = Vec::new();
    let mut n = 0;
    for t in parts {
        v.extend(t.to_f32_vec()?);
        n += t.dim(0);
    }
    let t = Tensor::from_f32(&[n, k], &v)?;
    Ok(match parts[0].dtype() {
        DType::F16 => t.to_dtype(DType::F16)?,
        _ => t,
    })
}

/// Uploads the decoder of the hark conformer_aed model in `model_dir` (stored precision).
pub(crate) fn load(ctx: &GpuContext, model_dir: &Path) -> Result<DecoderWeights, GpuError> {
    let cfg = crate::read_config(model_dir)?;
    let num = |key: &str| -> Result<usize, GpuError> {
        cfg.get(key)
            .and_then(|v| v.as_u64())
            .map(|v| v as usize)
            .ok_or_else(|| cfg_err(model_dir, format!("missing or invalid `{key}`")))
    };
    let flag = |key: &str, default: bool| -> bool {
        cfg.get(key).and_then(|v| v.as_bool()).unwrap_or(default)
    };
    let d = num("d_model")?;
    let heads = num("n_head")?;
    let vocab = num("odim")?;
    let n_layers = num("n_layers_dec")?;
    let pe_maxlen = num("pe_maxlen")?;
    let n_ff = d * num("ffn_mult")?;
    let pad = num("pad_id")? as u32;
    let eps = cfg
        .get("layer_norm_eps")
        .and_then(|v| v.as_f64())
        .ok_or_else(|| cfg_err(model_dir, "missing `layer_norm_eps`".into()))? as f32;
    let act = match cfg.get("dec_activation").and_then(|v| v.as_str()) {
        Some("gelu") => Act::Gelu,
        Some("relu") => Act::Relu,
        other => {
            return Err(cfg_err(
                model_dir,
                format!("unsupported dec_activation {other:?}"),
            ))
        }
    };
    if heads == 0 || !d.is_multiple_of(heads) || d / heads > 128 || pe_maxlen == 0 {
        return Err(cfg_err(
            model_dir,
            format!("unsupported decoder: d_model {d}, {heads} heads, pe_maxlen {pe_maxlen}"),
        ));
    }
    let key_bias = flag("linear_bias", false);
    let dims = DecoderDims {
        n_vocab: vocab,
        n_text_ctx: pe_maxlen.min(MAX_LEN),
        n_text_state: d,
        n_text_head: heads,
        n_text_layer: n_layers,
        n_audio_ctx: pe_maxlen,
    };
    let u = WeightUploader::open(ctx, model_dir)?;
    let w = u.weights();
    let vec32 = |name: &str, n: usize| u.f32_host(name, &[n]);
    let norm = |name: &str| -> Result<Norm, GpuError> {
        Ok(Norm {
            g: u.f32(&format!("{name}.weight"), &[d])?,
            b: u.f32(&format!("{name}.bias"), &[d])?,
        })
    };
    // One Linear from the projections `names` (each `[n_i, k]`), their biases stacked
    // (a projection without one contributes zeros).
    let fused = |names: &[(&str, usize, bool)], k: usize| -> Result<Linear, GpuError> {
        let mut mats = Vec::new();
        let mut bias = Vec::new();
        for &(name, n, has_bias) in names {
            mats.push(w.get(&format!("{name}.weight"), &[n, k])?);
            if has_bias {
                bias.extend(vec32(&format!("{name}.bias"), n)?);
            } else {
                bias.extend(std::iter::repeat_n(0.0, n));
            }
        }
        let m = if mats.len() == 1 {
            mats.remove(0)
        } else {
            concat_rows(&mats)?
        };
        Ok(Linear {
            w: u.upload(&m)?,
            b: ctx.upload(&bias),
        })
    };
    let embed = u.matrix("decoder.tgt_word_emb.weight", &[vocab, d])?;
    let mut pos = vec![0f32; dims.n_text_ctx * d];
    for (t, row) in pos.chunks_exact_mut(d).enumerate() {
        for (c, x) in row.iter_mut().enumerate() {
            *x = crate::conformer::sinusoid(t as f32, c, d);
        }
    }
    let mut layers = Vec::with_capacity(n_layers);
    for i in 0..n_layers {
        let p = format!("decoder.layer_stack.{i}");
        let (sa, ca) = (format!("{p}.self_attn"), format!("{p}.cross_attn"));
        let qkv = fused(
            &[
                (&format!("{sa}.w_qs"), d, true),
                (&format!("{sa}.w_ks"), d, key_bias),
                (&format!("{sa}.w_vs"), d, true),
            ],
            d,
        )?;
        layers.push(Layer {
            ln1: norm(&format!("{p}.self_attn_norm"))?,
            qkv,
            out: fused(&[(&format!("{sa}.fc"), d, true)], d)?,
            ln_x: norm(&format!("{p}.cross_attn_norm"))?,
            xq: fused(&[(&format!("{ca}.w_qs"), d, true)], d)?,
            xkv: fused(
                &[
                    (&format!("{ca}.w_ks"), d, key_bias),
                    (&format!("{ca}.w_vs"), d, true),
                ],
                d,
            )?,
            xout: fused(&[(&format!("{ca}.fc"), d, true)], d)?,
            ln2: norm(&format!("{p}.mlp_norm"))?,
            fc1: fused(&[(&format!("{p}.mlp.w_1"), n_ff, true)], d)?,
            fc2: fused(&[(&format!("{p}.mlp.w_2"), d, true)], n_ff)?,
        });
    }
    let head = if flag("tied_output", true) {
        None
    } else {
        Some(fused(&[("decoder.tgt_word_prj", vocab, true)], d)?)
    };
    let ln = norm("decoder.layer_norm_out")?;
    ctx.check_errors("uploading conformer decoder weights")?;
    Ok(DecoderWeights {
        dims,
        embed,
        pos: ctx.upload(&pos),
        layers,
        ln,
        bytes: u.bytes(),
        family: crate::conformer::MODEL,
        eps,
        embed_scale: if flag("dec_embed_scale", true) {
            (d as f32).sqrt()
        } else {
            1.0
        },
        act,
        n_ff,
        head,
        pad: Some(pad),
    })
}

/// The session the conformer-AED decoder runs on (the Whisper decoder's).
pub type ConformerDecoderSession = crate::whisper_decoder::GpuDecoderSession;
