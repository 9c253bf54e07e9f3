//! Whisper encoder and decoder forward passes (model = immutable weights; the decoder's
//! per-transcription caches live in [`DecoderState`]).
//!
//! Follows openai-whisper `whisper/model.py` (AudioEncoder, TextDecoder,
//! ResidualAttentionBlock) with CTranslate2's fused projections (`qkv_proj`, `kv_proj`).
//! Activations are f32; weight matrices are f32, f16 or int8 (see [`Precision`]).
//!
//! Decoder caches: the self-attention K/V live in hark-engine's preallocated
//! [`KvCache`] (every position written once, in place; beams reordered through its index
//! table, [`DecoderState::reorder`], never by copying rows; a prompt shared by all beams
//! is stored once). Cross-attention K/V are computed once per 30 s window
//! ([`WhisperModel::set_audio`]) into a [`CrossKv`] and shared by all beam rows, which
//! go through the projections as one batch (M = beam rows per GEMM). A warmed-up
//! decoder step ([`WhisperModel::decode_step`] + [`WhisperModel::step_logits`]) allocates
//! nothing: its buffers live in the state's [`Scratch`]. Attention runs on
//! hark-engine's fused online-softmax op (no T×T score matrix).
//!
//! Delegation: a [`DecoderState`] may carry a delegate's
//! [`hark_engine::delegate::DecoderSession`] ([`DecoderState::attach_session`]). Then
//! [`WhisperModel::set_audio`] hands it the encoder output, and
//! [`WhisperModel::decode_step`], [`WhisperModel::step_logits`],
//! [`DecoderState::reorder`] and [`DecoderState::reset`] forward to it (the same
//! contract, the caches on the device); without one, or for a silence-padded window
//! ([`WhisperModel::set_audio_padded`]), the CPU path below runs unchanged.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use hark_engine::delegate::{DecoderSession, Executor, StepRows};
use hark_engine::ops::attention::Rows;
use hark_engine::ops::Linear;
use hark_engine::{CrossKv, KvCache, PrecisionPolicy, Scratch, Tensor, Weights};
use rayon::prelude::*;

use super::config::{Precision, WhisperConfig};
use super::error::{Result, WhisperError};

pub use super::config::ModelDimensions;

fn engine_err(what: &'static str) -> impl Fn(hark_engine::Error) -> WhisperError {
    move |e| WhisperError::Invalid(format!("{what}: {e}"))
}

/// Matrix weight `name` `[rows, cols]` in the dtype the policy picks (zero-copy when
/// stored so). Float weights run as int8 go through hark-engine's one quantiser
/// ([`hark_engine::tensor::quantize_rows_i8`]: CTranslate2's load-time rule
/// `q = round_half_even(w · 127/max|row|)`), so hark's int8 codes equal faster-whisper's.
fn matrix(w: &Weights, name: &str, shape: &[usize; 2]) -> Result<Tensor> {
    Ok(w.get_matrix(name, shape)?)
}

/// `out[m, n_out] = x[m, n_in] · Wᵀ + b` with hark-engine's threaded GEMM.
fn linear(l: &Linear, x: &[f32], m: usize, out: &mut [f32]) -> Result<()> {
    let n = l.out_features();
    l.forward(&x[..m * l.in_features()], m, &mut out[..m * n])
        .map_err(engine_err("whisper linear layer"))
}

struct Norm {
    g: Tensor,
    b: Tensor,
}

impl Norm {
    fn load(w: &Weights, name: &str, d: usize) -> Result<Self> {
        let w = w.pp(name);
        Ok(Norm {
            g: w.get_f32("weight", &[d])?,
            b: w.get_f32("bias", &[d])?,
        })
    }
    fn apply(&self, x: &mut [f32], d: usize) -> Result<()> {
        hark_engine::ops::layer_norm_inplace(x, d, self.g.as_f32()?, Some(self.b.as_f32()?), 1e-5)
            .map_err(engine_err("whisper layer norm"))
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
    enc_pos: Tensor,
    enc_layers: Vec<EncoderLayer>,
    enc_ln: Norm,
    embed: Tensor,
    dec_pos: Tensor,
    dec_layers: Vec<DecoderLayer>,
    dec_ln: Norm,
    silence: OnceLock<SilenceCache>,
}

impl std::fmt::Debug for WhisperModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhisperModel")
            .field("dims", &self.config.dims)
            .field("precision", &self.precision)
            .finish()
    }
}

/// Encoder states of an all-silence window (every mel frame 0, the value of the
/// padding past the audio), computed once per model for the silence-padded reduced
/// audio context ([`WhisperModel::encode_padded`]).
#[derive(Debug)]
pub struct SilenceCache {
    /// Per encoder layer: the self-attention keys and values of every position,
    /// `[frames, 2d]` (K columns, then V).
    enc_kv: Vec<Vec<f32>>,
    /// Per decoder layer: the cross-attention keys and values of the encoder output,
    /// `[frames, 2d]`.
    cross_kv: Vec<Vec<f32>>,
    /// Number of positions (1500).
    frames: usize,
}

/// Encoder output of one 30 s window: `[frames, d]`, row-major.
#[derive(Debug, Clone)]
pub struct EncoderOutput {
    /// The values.
    pub data: Vec<f32>,
    /// Number of positions (`n_audio_ctx` = 1500, or the reduced audio context).
    pub frames: usize,
}

impl WhisperModel {
    /// Loads a hark Whisper directory (`config.json`, `model.safetensors`) with the
    /// weight matrices converted to `precision`.
    pub fn load(dir: &Path, precision: Precision) -> Result<Self> {
        let config = WhisperConfig::from_dir(dir).map_err(|e| WhisperError::Config {
            path: dir.join("config.json"),
            msg: e.to_string(),
        })?;
        if config.family != "whisper" {
            return Err(WhisperError::Config {
                path: dir.join("config.json"),
                msg: format!("family is `{}`, not `whisper`", config.family),
            });
        }
        // Convolutions stay f32: they are a small share of the work and CTranslate2 does
        // not quantize them either.
        let policy = PrecisionPolicy::new(precision).pin_f32("encoder.conv");
        let w = Weights::open(&[dir.join("model.safetensors")], policy)?;
        let dm = config.dims;
        let d = dm.n_audio_state;
        if dm.n_text_state != d || d % dm.n_audio_head != 0 || d % dm.n_text_head != 0 {
            return Err(WhisperError::Config {
                path: dir.join("config.json"),
                msg: "unsupported dims: encoder and decoder widths differ or heads do not divide d"
                    .into(),
            });
        }
        // A conv1d weight `[out, in, k]` is the `[out, in·k]` matrix of its im2col GEMM.
        let conv = |name: &str, n_in: usize| -> Result<Linear> {
            let c = w.pp(name);
            let weight = c
                .get_matrix("weight", &[d, n_in, 3])?
                .reshape(&[d, n_in * 3])?;
            Ok(Linear::new(weight, Some(c.get_f32("bias", &[d])?))?)
        };
        let conv1 = conv("encoder.conv1", dm.n_mels)?;
        let conv2 = conv("encoder.conv2", d)?;
        let enc_pos = w.get_f32("encoder.embed_positions.weight", &[dm.n_audio_ctx, d])?;
        let lin = |w: &Weights, name: &str, n_out: usize, n_in: usize| -> Result<Linear> {
            let c = w.pp(name);
            let weight = matrix(&c, "weight", &[n_out, n_in])?;
            Ok(Linear::new(weight, Some(c.get_f32("bias", &[n_out])?))?)
        };
        let mut enc_layers = Vec::new();
        for i in 0..dm.n_audio_layer {
            let q = w.pp(&format!("encoder.layers.{i}"));
            enc_layers.push(EncoderLayer {
                ln1: Norm::load(&q, "self_attn_layer_norm", d)?,
                qkv: lin(&q, "self_attn.qkv_proj", 3 * d, d)?,
                out: lin(&q, "self_attn.out_proj", d, d)?,
                ln2: Norm::load(&q, "final_layer_norm", d)?,
                fc1: lin(&q, "fc1", 4 * d, d)?,
                fc2: lin(&q, "fc2", d, 4 * d)?,
            });
        }
        let enc_ln = Norm::load(&w, "encoder.layer_norm", d)?;
        let embed = matrix(&w, "decoder.embed_tokens.weight", &[dm.n_vocab, d])?;
        let dec_pos = w.get_f32("decoder.embed_positions.weight", &[dm.n_text_ctx, d])?;
        let mut dec_layers = Vec::new();
        for i in 0..dm.n_text_layer {
            let q = w.pp(&format!("decoder.layers.{i}"));
            dec_layers.push(DecoderLayer {
                ln1: Norm::load(&q, "self_attn_layer_norm", d)?,
                qkv: lin(&q, "self_attn.qkv_proj", 3 * d, d)?,
                out: lin(&q, "self_attn.out_proj", d, d)?,
                ln_x: Norm::load(&q, "encoder_attn_layer_norm", d)?,
                xq: lin(&q, "encoder_attn.q_proj", d, d)?,
                xkv: lin(&q, "encoder_attn.kv_proj", 2 * d, d)?,
                xout: lin(&q, "encoder_attn.out_proj", d, d)?,
                ln2: Norm::load(&q, "final_layer_norm", d)?,
                fc1: lin(&q, "fc1", 4 * d, d)?,
                fc2: lin(&q, "fc2", d, 4 * d)?,
            });
        }
        let dec_ln = Norm::load(&w, "decoder.layer_norm", d)?;
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
            silence: OnceLock::new(),
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
        self.encode_with(mel, None, None)
    }

    /// Checks a reduced audio context (encoder positions, whisper.cpp's `--audio-ctx`):
    /// `None` means the model's full `n_audio_ctx` (1500); a value must lie in
    /// `1..=n_audio_ctx`. Returns the number of positions to encode.
    pub fn audio_ctx(&self, audio_ctx: Option<usize>) -> Result<usize> {
        let full = self.config.dims.n_audio_ctx;
        match audio_ctx {
            None => Ok(full),
            Some(n) if (1..=full).contains(&n) => Ok(n),
            Some(n) => Err(WhisperError::Invalid(format!(
                "audio context {n}: must be between 1 and {full} encoder positions \
                 (one position = 20 ms of audio)"
            ))),
        }
    }

    /// [`Self::encode`] on a reduced audio context and with a cancellation flag.
    ///
    /// `mel` is still the whole normalised window `[n_mels, 3000]` (so the log-mel
    /// clamp to the window's global max is exactly the full path's); with
    /// `audio_ctx = Some(n)` only its first `2n` frames go through the convolution stem
    /// (whose zero padding then falls at frame `2n`, as in whisper.cpp), the first `n`
    /// rows of the positional embedding are added and self-attention runs over `n`
    /// positions: the output is `[n, d]`. `Some(1500)` computes exactly what `None`
    /// does. `cancel` is read before the stem and between layers; once it is set the
    /// call returns [`WhisperError::Cancelled`].
    pub fn encode_with(
        &self,
        mel: &[f32],
        audio_ctx: Option<usize>,
        cancel: Option<&AtomicBool>,
    ) -> Result<EncoderOutput> {
        self.encode_impl(mel, audio_ctx, cancel, None, None)
    }

    /// [`Self::encode_with`] in the silence-padded mode: the first `audio_ctx`
    /// positions are computed, and the positions past them are those of an all-silence
    /// window ([`SilenceCache`], computed once per model on first use). Each computed
    /// position attends to all 1500: the computed ones and the silence ones (their
    /// keys and values taken from the silence window's run), so the encoder works in the
    /// regime it was trained in (speech followed by silence up to 30 s) at the cost of
    /// `audio_ctx` positions. The only approximation: the silence positions do not see
    /// the speech. Returns the `[audio_ctx, d]` computed rows; hand them to
    /// [`Self::set_audio_padded`]. Requires the mel frames from `2·audio_ctx - 2` on to be
    /// padding (zeros), which [`crate::whisper::Whisper`] ensures.
    pub fn encode_padded(
        &self,
        mel: &[f32],
        audio_ctx: usize,
        cancel: Option<&AtomicBool>,
    ) -> Result<EncoderOutput> {
        let silence = self.silence()?;
        self.encode_impl(mel, Some(audio_ctx), cancel, Some(silence), None)
    }

    /// The all-silence window's encoder states (computed on the first call).
    pub fn silence(&self) -> Result<&SilenceCache> {
        if let Some(c) = self.silence.get() {
            return Ok(c);
        }
        let dm = self.config.dims;
        let d = dm.n_audio_state;
        let zeros = vec![0f32; dm.n_mels * self.n_frames()];
        let mut enc_kv = Vec::new();
        let out = self.encode_impl(&zeros, None, None, None, Some(&mut enc_kv))?;
        let t = out.frames;
        let mut cross_kv = Vec::with_capacity(self.dec_layers.len());
        for l in &self.dec_layers {
            let mut kv = vec![0f32; t * 2 * d];
            linear(&l.xkv, &out.data, t, &mut kv)?;
            cross_kv.push(kv);
        }
        let cache = SilenceCache {
            enc_kv,
            cross_kv,
            frames: t,
        };
        Ok(self.silence.get_or_init(|| cache))
    }

    /// Sets the window's cross-attention K/V from the computed rows of
    /// [`Self::encode_padded`] and, past them, the silence window's (no projection is
    /// computed for those). The decoder then attends to all `n_audio_ctx` positions.
    pub fn set_audio_padded(&self, st: &mut DecoderState, enc: &EncoderOutput) -> Result<()> {
        let silence = self.silence()?;
        let dm = self.config.dims;
        let (d, n, t) = (dm.n_text_state, enc.frames, silence.frames);
        if n > t || enc.data.len() != n * d {
            return Err(WhisperError::Invalid(format!(
                "padded encoder output has {} values for {n} frames of {d} (window {t})",
                enc.data.len()
            )));
        }
        for (li, l) in self.dec_layers.iter().enumerate() {
            let kv = &mut st.kv_tmp[..n * 2 * d];
            linear(&l.xkv, &enc.data, n, kv)?;
            let (k, v) = st
                .cross
                .buffers_mut(li, t)
                .map_err(engine_err("whisper cross-attention cache"))?;
            let rows = kv
                .chunks_exact(2 * d)
                .chain(silence.cross_kv[li].chunks_exact(2 * d).skip(n));
            for ((row, kr), vr) in rows.zip(k.chunks_exact_mut(d)).zip(v.chunks_exact_mut(d)) {
                kr.copy_from_slice(&row[..d]);
                vr.copy_from_slice(&row[d..]);
            }
        }
        // The session has no silence-padded cross K/V: this window decodes on the CPU.
        st.on_session = false;
        st.cache.reset();
        Ok(())
    }

    fn encode_impl(
        &self,
        mel: &[f32],
        audio_ctx: Option<usize>,
        cancel: Option<&AtomicBool>,
        frozen: Option<&SilenceCache>,
        mut capture: Option<&mut Vec<Vec<f32>>>,
    ) -> Result<EncoderOutput> {
        let dm = self.config.dims;
        let (nm, t_in) = (dm.n_mels, self.n_frames());
        if mel.len() != nm * t_in {
            return Err(WhisperError::Invalid(format!(
                "encoder input has {} values, expected {nm} mels x {t_in} frames",
                mel.len()
            )));
        }
        let t2 = self.audio_ctx(audio_ctx)?;
        check_cancel(cancel)?;
        let d = dm.n_audio_state;
        // Frames fed to the stem; the row stride of `mel` stays `t_in`.
        let t1 = 2 * t2;
        // conv1 (k=3, pad 1, stride 1) as im2col + GEMM: col[t][c*3+k] = mel[c][t+k-1]
        let mut col = vec![0f32; t1 * nm * 3];
        col.par_chunks_mut(nm * 3).enumerate().for_each(|(t, row)| {
            for c in 0..nm {
                for k in 0..3 {
                    let s = t as isize + k as isize - 1;
                    row[c * 3 + k] = if s >= 0 && (s as usize) < t1 {
                        mel[c * t_in + s as usize]
                    } else {
                        0.0
                    };
                }
            }
        });
        let mut h1 = vec![0f32; t1 * d];
        linear(&self.conv1, &col, t1, &mut h1)?;
        drop(col);
        gelu_par(&mut h1);
        // conv2 (k=3, pad 1, stride 2): col[t][c*3+k] = h1[2t+k-1][c]
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
        linear(&self.conv2, &col2, t2, &mut x)?;
        drop(col2);
        gelu_par(&mut x);
        for (v, p) in x.iter_mut().zip(&self.enc_pos.as_f32()?[..t2 * d]) {
            *v += p;
        }
        let heads = dm.n_audio_head;
        let mut hbuf = vec![0f32; t2 * d];
        let mut qkv = vec![0f32; t2 * 3 * d];
        let mut ctx = vec![0f32; t2 * d];
        let mut ff = vec![0f32; t2 * 4 * d];
        // Silence-padded mode: keys/values of all positions, [frames, 2d] (K then V).
        let mut kv_all = match frozen {
            Some(f) => vec![0f32; f.frames * 2 * d],
            None => Vec::new(),
        };
        for (li, l) in self.enc_layers.iter().enumerate() {
            check_cancel(cancel)?;
            hbuf.copy_from_slice(&x);
            l.ln1.apply(&mut hbuf, d)?;
            linear(&l.qkv, &hbuf, t2, &mut qkv)?;
            if let Some(c) = capture.as_deref_mut() {
                c.push(
                    qkv.chunks_exact(3 * d)
                        .flat_map(|r| &r[d..])
                        .copied()
                        .collect(),
                );
            }
            match frozen {
                None => attend(
                    &qkv,
                    t2,
                    3 * d,
                    0,
                    &qkv,
                    t2,
                    3 * d,
                    d,
                    2 * d,
                    heads,
                    d / heads,
                    &mut ctx,
                )?,
                Some(f) => {
                    let frozen_kv = f.enc_kv.get(li).ok_or_else(|| {
                        WhisperError::Invalid(format!("silence cache has no layer {li}"))
                    })?;
                    kv_all[t2 * 2 * d..].copy_from_slice(&frozen_kv[t2 * 2 * d..]);
                    for (dst, src) in kv_all.chunks_exact_mut(2 * d).zip(qkv.chunks_exact(3 * d)) {
                        dst.copy_from_slice(&src[d..]);
                    }
                    attend(
                        &qkv,
                        t2,
                        3 * d,
                        0,
                        &kv_all,
                        f.frames,
                        2 * d,
                        0,
                        d,
                        heads,
                        d / heads,
                        &mut ctx,
                    )?
                }
            }
            linear(&l.out, &ctx, t2, &mut hbuf)?;
            add(&mut x, &hbuf);
            hbuf.copy_from_slice(&x);
            l.ln2.apply(&mut hbuf, d)?;
            linear(&l.fc1, &hbuf, t2, &mut ff)?;
            gelu_par(&mut ff);
            linear(&l.fc2, &ff, t2, &mut hbuf)?;
            add(&mut x, &hbuf);
        }
        check_cancel(cancel)?;
        self.enc_ln.apply(&mut x, d)?;
        Ok(EncoderOutput {
            data: x,
            frames: t2,
        })
    }

    /// A decoder state with room for `max_beams` rows (all buffers allocated here).
    pub fn new_state(&self, max_beams: usize) -> DecoderState {
        let dm = self.config.dims;
        let d = dm.n_text_state;
        let l = dm.n_text_layer;
        let max_beams = max_beams.max(1);
        DecoderState {
            max_beams,
            ctx: dm.n_text_ctx,
            cache: KvCache::new(l, max_beams, dm.n_text_ctx, d),
            cross: CrossKv::new(l, dm.n_audio_ctx, d),
            kv_tmp: vec![0f32; dm.n_audio_ctx * 2 * d],
            scratch: Scratch::new(),
            hidden: Vec::new(),
            logits: Vec::new(),
            parents: (0..max_beams).collect(),
            session: None,
            on_session: false,
            session_rows: 0,
        }
    }

    /// Computes the cross-attention K/V of every decoder layer for one window (into the
    /// state's [`CrossKv`], once per window) and clears the self-attention cache.
    pub fn set_audio(&self, st: &mut DecoderState, enc: &EncoderOutput) -> Result<()> {
        let dm = self.config.dims;
        let (d, t) = (dm.n_text_state, enc.frames);
        if t > dm.n_audio_ctx {
            return Err(WhisperError::Invalid(format!(
                "encoder output has {t} frames, the model has {}",
                dm.n_audio_ctx
            )));
        }
        if let Some(s) = st.session.as_mut() {
            if enc.data.len() != t * d {
                return Err(WhisperError::Invalid(format!(
                    "encoder output has {} values for {t} frames of {d}",
                    enc.data.len()
                )));
            }
            s.begin(&enc.data, t)
                .map_err(engine_err("whisper decoder session (begin)"))?;
            st.on_session = true;
            st.cache.reset();
            return Ok(());
        }
        for (li, l) in self.dec_layers.iter().enumerate() {
            // The fused kv_proj output [t, 2d] (K columns, then V), split into the cache.
            let kv = &mut st.kv_tmp[..t * 2 * d];
            linear(&l.xkv, &enc.data, t, kv)?;
            let (k, v) = st
                .cross
                .buffers_mut(li, t)
                .map_err(engine_err("whisper cross-attention cache"))?;
            for ((row, kr), vr) in kv
                .chunks_exact(2 * d)
                .zip(k.chunks_exact_mut(d))
                .zip(v.chunks_exact_mut(d))
            {
                kr.copy_from_slice(&row[..d]);
                vr.copy_from_slice(&row[d..]);
            }
        }
        st.cache.reset();
        Ok(())
    }

    /// Runs the decoder on `tokens` at the next cache positions and returns the final
    /// hidden states `[rows, d]` (after the last LayerNorm), see [`Self::decode_step`].
    /// Allocates the returned vector; decoding loops use `decode_step` + `step_logits`.
    pub fn decode_rows(
        &self,
        st: &mut DecoderState,
        tokens: &[u32],
        rows: DecodeRows<'_>,
    ) -> Result<Vec<f32>> {
        self.decode_step(st, tokens, rows)?;
        if st.on_session {
            return Err(WhisperError::Invalid(
                "decode_rows: the hidden states of a delegated decoder stay on its device \
                 (use step_logits)"
                    .into(),
            ));
        }
        Ok(st.hidden.clone())
    }

    /// Runs the decoder on `tokens` at the next cache positions, in place: the
    /// self-attention K/V are appended to the state's [`KvCache`] and the final hidden
    /// states `[rows, d]` (after the last LayerNorm) are left in the state
    /// ([`DecoderState::hidden`]). After the first call with a given shape, no heap
    /// allocation happens (buffers live in the state's [`Scratch`]).
    pub fn decode_step(
        &self,
        st: &mut DecoderState,
        tokens: &[u32],
        rows: DecodeRows<'_>,
    ) -> Result<()> {
        use hark_engine::ops::attention::{attention, AttentionOpts};
        let dm = self.config.dims;
        let (d, m, h) = (dm.n_text_state, tokens.len(), dm.n_text_head);
        let t0 = st.len();
        let nb = st.max_beams;
        let shared = matches!(rows, DecodeRows::Shared);
        if let DecodeRows::Beams(beams) = rows {
            if beams.len() != m {
                return Err(WhisperError::Invalid(format!(
                    "decoder step: {m} tokens for {} beams",
                    beams.len()
                )));
            }
            for (i, &b) in beams.iter().enumerate() {
                if b >= nb || beams[..i].contains(&b) {
                    return Err(WhisperError::Invalid(format!(
                        "decoder step: beam {b} out of range or repeated (max beams {nb})"
                    )));
                }
            }
        }
        let end = if shared { t0 + m } else { t0 + 1 };
        if m == 0 || end > st.ctx {
            return Err(WhisperError::Invalid(format!(
                "decoder step: {m} rows at position {t0} do not fit the text context {}",
                st.ctx
            )));
        }
        if let Some(&t) = tokens.iter().find(|&&t| t as usize >= dm.n_vocab) {
            return Err(WhisperError::Invalid(format!(
                "decoder step: token {t} out of range ({} tokens)",
                dm.n_vocab
            )));
        }
        if st.on_session {
            if let Some(s) = st.session.as_mut() {
                let layout = match rows {
                    DecodeRows::Shared => StepRows::Shared,
                    DecodeRows::Beams(b) => StepRows::Beams(b),
                };
                s.step(tokens, layout)
                    .map_err(engine_err("whisper decoder session (step)"))?;
                st.session_rows = m;
                return Ok(());
            }
        }
        let kvrows = if shared { m } else { nb };
        let [x, hbuf, qkv, ctx, ff, q, kb, vb] = st.scratch.split([
            m * d,
            m * d,
            m * 3 * d,
            m * d,
            m * 4 * d,
            m * d,
            kvrows * d,
            kvrows * d,
        ]);
        hark_engine::ops::embedding(&self.embed, tokens, x)?;
        let dec_pos = self.dec_pos.as_f32()?;
        for r in 0..m {
            let p = if shared { t0 + r } else { t0 };
            for (v, pe) in x[r * d..(r + 1) * d]
                .iter_mut()
                .zip(&dec_pos[p * d..(p + 1) * d])
            {
                *v += pe;
            }
        }
        let opts = AttentionOpts::new(h, d / h);
        let attn_err = |e| WhisperError::Invalid(format!("decoder attention: {e}"));
        for (li, l) in self.dec_layers.iter().enumerate() {
            // self-attention over the KV cache (rows written in place, read by index)
            hbuf.copy_from_slice(x);
            l.ln1.apply(hbuf, d)?;
            linear(&l.qkv, hbuf, m, qkv)?;
            if !shared {
                // rows of beams not in this step are never read: leave them zero
                kb.fill(0.0);
                vb.fill(0.0);
            }
            for r in 0..m {
                let dst = match rows {
                    DecodeRows::Shared => r,
                    DecodeRows::Beams(b) => b[r],
                };
                kb[dst * d..(dst + 1) * d].copy_from_slice(&qkv[r * 3 * d + d..r * 3 * d + 2 * d]);
                vb[dst * d..(dst + 1) * d]
                    .copy_from_slice(&qkv[r * 3 * d + 2 * d..(r + 1) * 3 * d]);
            }
            if shared {
                st.cache.append_shared(li, kb, vb)
            } else {
                st.cache.append(li, kb, vb)
            }
            .map_err(engine_err("whisper decoder KV cache"))?;
            for r in 0..m {
                let (beam, n) = match rows {
                    DecodeRows::Shared => (0, t0 + r + 1),
                    DecodeRows::Beams(b) => (b[r], t0 + 1),
                };
                let keys = st
                    .cache
                    .keys(li, beam)
                    .map_err(engine_err("whisper decoder KV cache"))?;
                let values = st
                    .cache
                    .values(li, beam)
                    .map_err(engine_err("whisper decoder KV cache"))?;
                attention(
                    Rows::new(&qkv[r * 3 * d..(r + 1) * 3 * d], 1, 3 * d),
                    keys.prefix(n),
                    values.prefix(n),
                    &opts,
                    &mut ctx[r * d..(r + 1) * d],
                )
                .map_err(attn_err)?;
            }
            linear(&l.out, ctx, m, hbuf)?;
            add(x, hbuf);
            // cross-attention against the window's cached K/V
            hbuf.copy_from_slice(x);
            l.ln_x.apply(hbuf, d)?;
            linear(&l.xq, hbuf, m, q)?;
            let ck = st.cross.keys(li).map_err(engine_err("whisper cross KV"))?;
            let cv = st
                .cross
                .values(li)
                .map_err(engine_err("whisper cross KV"))?;
            attention(Rows::new(q, m, d), ck, cv, &opts, ctx).map_err(attn_err)?;
            linear(&l.xout, ctx, m, hbuf)?;
            add(x, hbuf);
            // MLP
            hbuf.copy_from_slice(x);
            l.ln2.apply(hbuf, d)?;
            linear(&l.fc1, hbuf, m, ff)?;
            hark_engine::ops::gelu(ff);
            linear(&l.fc2, ff, m, hbuf)?;
            add(x, hbuf);
        }
        self.dec_ln.apply(x, d)?;
        if st.hidden.len() != m * d {
            st.hidden.resize(m * d, 0.0);
        }
        st.hidden.copy_from_slice(x);
        Ok(())
    }

    /// Vocabulary logits `[rows, n_vocab]` of final hidden states `[rows, d]` (the
    /// output projection is tied to the token embedding).
    pub fn logits(&self, hidden: &[f32], rows: usize) -> Result<Vec<f32>> {
        let mut out = vec![0f32; rows * self.config.dims.n_vocab];
        self.logits_into(hidden, rows, &mut out)?;
        Ok(out)
    }

    fn logits_into(&self, hidden: &[f32], rows: usize, out: &mut [f32]) -> Result<()> {
        let dm = self.config.dims;
        hark_engine::ops::matmul_nt(
            &hidden[..rows * dm.n_text_state],
            rows,
            dm.n_text_state,
            self.embed.weight_view()?,
            dm.n_vocab,
            None,
            &mut out[..rows * dm.n_vocab],
        )?;
        Ok(())
    }

    /// Logits `[rows, n_vocab]` of the last [`Self::decode_step`]'s hidden rows
    /// `first..first + rows`, in a buffer of the state (no allocation once grown).
    pub fn step_logits<'s>(
        &self,
        st: &'s mut DecoderState,
        first: usize,
        rows: usize,
    ) -> Result<&'s mut [f32]> {
        let (d, v) = (self.config.dims.n_text_state, self.config.dims.n_vocab);
        if st.on_session {
            if let Some(s) = st.session.as_mut() {
                if first + rows > st.session_rows {
                    return Err(WhisperError::Invalid(format!(
                        "logits of rows {first}..{} but the last step had {}",
                        first + rows,
                        st.session_rows
                    )));
                }
                if st.logits.len() < rows * v {
                    st.logits.resize(rows * v, 0.0);
                }
                s.logits(first, rows, &mut st.logits[..rows * v])
                    .map_err(engine_err("whisper decoder session (logits)"))?;
                return Ok(&mut st.logits[..rows * v]);
            }
        }
        if (first + rows) * d > st.hidden.len() {
            return Err(WhisperError::Invalid(format!(
                "logits of rows {first}..{} but the last step had {}",
                first + rows,
                st.hidden.len() / d
            )));
        }
        if st.logits.len() < rows * v {
            st.logits.resize(rows * v, 0.0);
        }
        let (hidden, logits) = (&st.hidden, &mut st.logits);
        self.logits_into(&hidden[first * d..], rows, logits)?;
        Ok(&mut st.logits[..rows * v])
    }
}

/// How the rows of one decoder step map onto the cached sequences.
#[derive(Debug, Clone, Copy)]
pub enum DecodeRows<'a> {
    /// The tokens are consecutive positions of one sequence shared by every beam (a
    /// prompt, or the first step before beams diverge): stored once in the cache.
    Shared,
    /// One token per listed beam, all at the next position; beams not listed get
    /// placeholder rows that are never read.
    Beams(&'a [usize]),
}

/// Per-transcription decoder state: hark-engine's preallocated self-attention
/// [`KvCache`] (written in place, beams reordered through its index table), the
/// window's cross-attention [`CrossKv`] and the step's scratch buffers.
pub struct DecoderState {
    max_beams: usize,
    ctx: usize,
    cache: KvCache,
    cross: CrossKv,
    kv_tmp: Vec<f32>,
    scratch: Scratch,
    hidden: Vec<f32>,
    logits: Vec<f32>,
    parents: Vec<usize>,
    /// A delegate's decoder (caches on its device), see [`DecoderState::attach_session`].
    session: Option<Box<dyn DecoderSession>>,
    /// Whether the current window decodes on `session` (false: on the CPU).
    on_session: bool,
    /// Rows of the session's last step.
    session_rows: usize,
}

impl DecoderState {
    /// Maximum number of beam rows.
    pub fn max_beams(&self) -> usize {
        self.max_beams
    }

    /// Number of positions cached (shared by all beams).
    pub fn len(&self) -> usize {
        match &self.session {
            Some(s) if self.on_session => s.len(),
            _ => self.cache.len(),
        }
    }

    /// Hands the decoder of every later window to a delegate's session (opened with
    /// `hark_engine::delegate::open_decoder_session` for at least
    /// [`Self::max_beams`] rows and the model's text context). It takes effect at the
    /// next [`WhisperModel::set_audio`].
    pub fn attach_session(&mut self, session: Box<dyn DecoderSession>) {
        self.session = Some(session);
        self.on_session = false;
    }

    /// Where the decoder steps of the current window run.
    pub fn executor(&self) -> Executor {
        match &self.session {
            Some(s) if self.on_session => Executor::Delegate(s.name().to_string()),
            _ => Executor::Cpu,
        }
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets the cached positions (the window's cross-attention K/V stay).
    pub fn reset(&mut self) {
        self.cache.reset();
        if let Some(s) = self.session.as_mut() {
            s.reset();
        }
    }

    /// Final hidden states `[rows, d]` of the last CPU decoder step (a delegated step
    /// keeps them on its device).
    pub fn hidden(&self) -> &[f32] {
        &self.hidden
    }

    /// After a search step, beam `i` continues the history of beam `src[i]` (beams past
    /// `src.len()` keep their own). Only the cache's index table moves; no K/V copies.
    pub fn reorder(&mut self, src: &[usize]) -> Result<()> {
        if src.len() > self.max_beams {
            return Err(WhisperError::Invalid(format!(
                "reorder: {} beams for a state of {}",
                src.len(),
                self.max_beams
            )));
        }
        for (i, p) in self.parents.iter_mut().enumerate() {
            *p = src.get(i).copied().unwrap_or(i);
        }
        if self.on_session {
            if let Some(s) = self.session.as_mut() {
                return s
                    .reorder(&self.parents)
                    .map_err(engine_err("whisper decoder session (reorder)"));
            }
        }
        self.cache
            .reorder(&self.parents)
            .map_err(engine_err("whisper decoder KV cache"))
    }
}

/// [`WhisperError::Cancelled`] once `cancel` is set.
pub(crate) fn check_cancel(cancel: Option<&AtomicBool>) -> Result<()> {
    if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
        Err(WhisperError::Cancelled)
    } else {
        Ok(())
    }
}

fn add(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

fn gelu_par(x: &mut [f32]) {
    hark_engine::ops::gelu(x);
}

/// Multi-head attention through hark-engine's fused op: queries are `tq` rows of `q`
/// (stride `qs`, columns from `qc`), keys/values `tk` rows of `kv` (stride `kvs`, K at
/// column `kc`, V at column `vc`); scale 1/sqrt(head_dim) as in Whisper.
#[allow(clippy::too_many_arguments)]
fn attend(
    q: &[f32],
    tq: usize,
    qs: usize,
    qc: usize,
    kv: &[f32],
    tk: usize,
    kvs: usize,
    kc: usize,
    vc: usize,
    heads: usize,
    hd: usize,
    out: &mut [f32],
) -> Result<()> {
    use hark_engine::ops::attention::{attention, AttentionOpts, Rows};
    let opts = AttentionOpts::new(heads, hd);
    attention(
        Rows::new(q, tq, qs).with_col(qc),
        Rows::new(kv, tk, kvs).with_col(kc),
        Rows::new(kv, tk, kvs).with_col(vc),
        &opts,
        &mut out[..tq * heads * hd],
    )
    .map_err(|e| WhisperError::Invalid(format!("attention: {e}")))
}
