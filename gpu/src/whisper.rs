//! The Whisper encoder as one GPU stage.
//!
//! Follows openai-whisper `whisper/model.py` (`AudioEncoder`, `ResidualAttentionBlock`)
//! the way hark's CPU encoder does (`models/src/whisper/model.rs`, `WhisperModel::encode`):
//! conv1 (k 3, pad 1) + GELU, conv2 (k 3, stride 2, pad 1) + GELU, + sinusoidal
//! positions, pre-LN blocks (fused QKV projection, attention with scale 1/√head_dim,
//! exact GELU MLP), final LayerNorm (eps 1e-5). Tensor names: /work/coord/whisper-format.md
//! (`encoder.conv1.weight`, `encoder.layers.{i}.self_attn.qkv_proj.weight`, ...).
//!
//! Convolutions run as im2col + the tiled GEMM (as on the CPU). Residual additions are
//! fused into the out_proj/fc2 GEMM epilogues and GELU into conv/fc1 epilogues. All
//! activations live in buffers allocated once at load (reused across calls, guarded by a
//! mutex so the delegate is `Sync`); per call only the mel input goes up and the
//! `[1500, d]` output comes down.
//!
//! With [`WhisperEncoderDelegate::with_decoder`] the same delegate (one per model, its
//! weights uploaded once) also takes the decoder: it opens
//! [`crate::whisper_decoder::WhisperDecoderSession`]s
//! ([`Delegate::decoder_session`]). The encoder output stays on the device for them: each
//! pass records a fingerprint of the output it returned, and a session handed that same
//! output computes the cross-attention K/V from the resident buffer instead of uploading
//! it again.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hark_engine::delegate::{DecoderSession, Delegate, SessionRequest, Stage, StageKind};

use crate::context::{GpuContext, GpuTensor};
use crate::decoder_slot::DecoderSlot;
use crate::kernels::{Act, GpuWeight, RowView};
use crate::upload::{whisper_dim, WeightUploader};
use crate::GpuError;

/// Wall-clock time of the phases of one GPU encoder pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StageTimes {
    /// Copying the stage input to the device.
    pub upload: Duration,
    /// Recording, submitting and running all kernels.
    pub kernels: Duration,
    /// Reading the output back.
    pub download: Duration,
}

/// Whisper encoder dimensions (openai-whisper `ModelDimensions` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncoderDims {
    /// Mel bins.
    pub n_mels: usize,
    /// Encoder positions (1500).
    pub n_audio_ctx: usize,
    /// Width d.
    pub n_audio_state: usize,
    /// Attention heads.
    pub n_audio_head: usize,
    /// Blocks.
    pub n_audio_layer: usize,
}

pub(crate) struct Linear {
    pub(crate) w: GpuWeight,
    pub(crate) b: GpuTensor,
}

pub(crate) struct Norm {
    pub(crate) g: GpuTensor,
    pub(crate) b: GpuTensor,
}

struct Layer {
    ln1: Norm,
    qkv: Linear,
    out: Linear,
    ln2: Norm,
    fc1: Linear,
    fc2: Linear,
}

/// Device activations, allocated once.
pub(crate) struct Buffers {
    mel: GpuTensor,
    col: GpuTensor,
    h1: GpuTensor,
    x: GpuTensor,
    /// The encoder output `[n_audio_ctx, d]` after the last pass (until the next one).
    pub(crate) h: GpuTensor,
    qkv: GpuTensor,
    ctx: GpuTensor,
    ff: GpuTensor,
    /// [`fingerprint`] of the output `h` holds (None before the first pass or after a
    /// failed one).
    pub(crate) last_fp: Option<u64>,
}

/// A 64-bit fingerprint of an f32 buffer (FNV-1a over the bit patterns, with the length),
/// identifying the encoder output a decoder session is handed with the one resident on
/// the device.
pub(crate) fn fingerprint(x: &[f32]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ x.len() as u64;
    for v in x {
        h = (h ^ u64::from(v.to_bits())).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The Whisper encoder on the GPU: a [`Delegate`] for `StageKind::Encoder` of model
/// "whisper" (input "mel" `[n_mels, 2·n_audio_ctx]`, output `[n_audio_ctx · d]`).
pub struct WhisperEncoderDelegate {
    ctx: Arc<GpuContext>,
    dims: EncoderDims,
    name: String,
    conv1: Linear,
    conv2: Linear,
    pos: GpuTensor,
    layers: Vec<Layer>,
    ln_post: Norm,
    bufs: Arc<Mutex<Buffers>>,
    weight_bytes: u64,
    clock: Arc<crate::StageClock>,
    decoder: DecoderSlot,
}

impl std::fmt::Debug for WhisperEncoderDelegate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhisperEncoderDelegate")
            .field("name", &self.name)
            .field("dims", &self.dims)
            .finish()
    }
}

impl WhisperEncoderDelegate {
    /// Loads the encoder weights of the hark Whisper model in `model_dir` onto `ctx`'s
    /// device, in their stored precision.
    pub fn load(ctx: Arc<GpuContext>, model_dir: &Path) -> Result<Self, GpuError> {
        let cfg = crate::read_config(model_dir)?;
        let family = cfg
            .get("family")
            .and_then(|f| f.as_str())
            .unwrap_or("whisper");
        if family != "whisper" {
            return Err(GpuError::Model {
                path: model_dir.join("config.json"),
                reason: format!("family is `{family}`, not `whisper`"),
            });
        }
        let dims = EncoderDims {
            n_mels: whisper_dim(&cfg, model_dir, "n_mels")?,
            n_audio_ctx: whisper_dim(&cfg, model_dir, "n_audio_ctx")?,
            n_audio_state: whisper_dim(&cfg, model_dir, "n_audio_state")?,
            n_audio_head: whisper_dim(&cfg, model_dir, "n_audio_head")?,
            n_audio_layer: whisper_dim(&cfg, model_dir, "n_audio_layer")?,
        };
        let d = dims.n_audio_state;
        if dims.n_audio_head == 0
            || !d.is_multiple_of(dims.n_audio_head)
            || d / dims.n_audio_head > 128
        {
            return Err(GpuError::Model {
                path: model_dir.join("config.json"),
                reason: format!("unsupported heads: d {d}, {} heads", dims.n_audio_head),
            });
        }
        let u = WeightUploader::open(&ctx, model_dir)?;
        let lin = |name: &str, n: usize, k: &[usize]| -> Result<Linear, GpuError> {
            Ok(Linear {
                w: u.matrix(&format!("{name}.weight"), &[&[n], k].concat())?,
                b: u.f32(&format!("{name}.bias"), &[n])?,
            })
        };
        let norm = |name: &str| -> Result<Norm, GpuError> {
            Ok(Norm {
                g: u.f32(&format!("{name}.weight"), &[d])?,
                b: u.f32(&format!("{name}.bias"), &[d])?,
            })
        };
        let conv1 = lin("encoder.conv1", d, &[dims.n_mels, 3])?;
        let conv2 = lin("encoder.conv2", d, &[d, 3])?;
        let pos = u.f32("encoder.embed_positions.weight", &[dims.n_audio_ctx, d])?;
        let mut layers = Vec::with_capacity(dims.n_audio_layer);
        for i in 0..dims.n_audio_layer {
            let q = format!("encoder.layers.{i}");
            layers.push(Layer {
                ln1: norm(&format!("{q}.self_attn_layer_norm"))?,
                qkv: lin(&format!("{q}.self_attn.qkv_proj"), 3 * d, &[d])?,
                out: lin(&format!("{q}.self_attn.out_proj"), d, &[d])?,
                ln2: norm(&format!("{q}.final_layer_norm"))?,
                fc1: lin(&format!("{q}.fc1"), 4 * d, &[d])?,
                fc2: lin(&format!("{q}.fc2"), d, &[4 * d])?,
            });
        }
        let ln_post = norm("encoder.layer_norm")?;
        let bytes = u.bytes();
        drop(u);
        let (t1, t2) = (2 * dims.n_audio_ctx, dims.n_audio_ctx);
        let bufs = Buffers {
            mel: ctx.zeros(dims.n_mels * t1),
            col: ctx.zeros((t1 * dims.n_mels * 3).max(t2 * d * 3)),
            h1: ctx.zeros(t1 * d),
            x: ctx.zeros(t2 * d),
            h: ctx.zeros(t2 * d),
            qkv: ctx.zeros(t2 * 3 * d),
            ctx: ctx.zeros(t2 * d),
            ff: ctx.zeros(t2 * 4 * d),
            last_fp: None,
        };
        let name = format!("gpu:{}", ctx.adapter().name);
        ctx.check_errors("uploading Whisper encoder weights")?;
        let bufs = Arc::new(Mutex::new(bufs));
        Ok(WhisperEncoderDelegate {
            ctx,
            dims,
            name,
            conv1,
            conv2,
            pos,
            layers,
            ln_post,
            decoder: DecoderSlot::new("whisper", "whisper decoder session", Some(bufs.clone())),
            bufs,
            weight_bytes: bytes,
            clock: Arc::new(crate::StageClock::default()),
        })
    }

    /// Also uploads the decoder weights of the model in `model_dir` (stored precision),
    /// so that this delegate opens decoder sessions ([`Delegate::decoder_session`]).
    pub fn with_decoder(mut self, model_dir: &Path) -> Result<Self, GpuError> {
        self.weight_bytes += self.decoder.load(
            &self.ctx,
            model_dir,
            crate::whisper_decoder::DecoderWeights::load,
        )?;
        Ok(self)
    }

    /// Opens a decoder session directly (what [`Delegate::decoder_session`] returns):
    /// `max_beams` rows, `max_len` positions (at most the model's text context).
    /// Fails when the decoder weights were not loaded ([`Self::with_decoder`]).
    pub fn open_decoder(
        &self,
        max_beams: usize,
        max_len: usize,
    ) -> Result<crate::whisper_decoder::WhisperDecoderSession, GpuError> {
        self.decoder
            .open(&self.ctx, &self.name, &self.clock, max_beams, max_len)
    }

    /// How many decoder windows used the encoder output resident on the device (instead
    /// of uploading it), over all sessions of this delegate.
    pub fn resident_encoder_outputs_reused(&self) -> usize {
        self.decoder.reused()
    }

    /// Adds every later pass's phase times to `clock` (see [`crate::StageClock`]).
    pub fn with_clock(mut self, clock: Arc<crate::StageClock>) -> Self {
        self.clock = clock;
        self
    }

    /// Encoder dimensions read from config.json.
    pub fn dims(&self) -> EncoderDims {
        self.dims
    }

    /// Bytes of weight matrices resident on the device.
    pub fn weight_bytes(&self) -> u64 {
        self.weight_bytes
    }

    /// Runs the encoder on one window of log-mel `[n_mels, 2·n_audio_ctx]` (mel-major)
    /// and returns `[n_audio_ctx, d]` row-major (after the final LayerNorm).
    pub fn encode(&self, mel: &[f32]) -> Result<Vec<f32>, GpuError> {
        Ok(self.encode_timed(mel)?.0)
    }

    /// [`Self::encode`] with the time spent in each phase, for benchmarks.
    pub fn encode_timed(&self, mel: &[f32]) -> Result<(Vec<f32>, StageTimes), GpuError> {
        let dm = self.dims;
        let (nm, d, heads) = (dm.n_mels, dm.n_audio_state, dm.n_audio_head);
        let (t1, t2) = (2 * dm.n_audio_ctx, dm.n_audio_ctx);
        if mel.len() != nm * t1 {
            return Err(GpuError::Shape {
                op: "whisper encoder",
                reason: format!(
                    "input has {} values, expected {nm} mels x {t1} frames",
                    mel.len()
                ),
            });
        }
        let mut b = self.bufs.lock().unwrap_or_else(|p| p.into_inner());
        b.last_fp = None;
        let t0 = Instant::now();
        self.ctx.write(&b.mel, mel)?;
        self.ctx.queue.submit([]);
        self.ctx.wait()?;
        let upload = t0.elapsed();
        let t0 = Instant::now();
        let mut r = self.ctx.recorder();
        // conv1: mel is [n_mels, t1], i.e. time stride 1, channel stride t1.
        r.im2col(&b.mel, t1, nm, (1, t1), 3, 1, 1, &b.col)?;
        r.linear(
            &b.col,
            t1,
            &self.conv1.w,
            Some(&self.conv1.b),
            &b.h1,
            Act::Gelu,
            false,
        )?;
        r.im2col(&b.h1, t1, d, (d, 1), 3, 2, 1, &b.col)?;
        r.linear(
            &b.col,
            t2,
            &self.conv2.w,
            Some(&self.conv2.b),
            &b.x,
            Act::Gelu,
            false,
        )?;
        r.add(&b.x, &self.pos, t2 * d)?;
        let hd = d / heads;
        let scale = 1.0 / (hd as f32).sqrt();
        for l in &self.layers {
            r.layer_norm(&b.x, t2, d, &l.ln1.g, &l.ln1.b, 1e-5, &b.h)?;
            r.linear(&b.h, t2, &l.qkv.w, Some(&l.qkv.b), &b.qkv, Act::None, false)?;
            let view = |offset| RowView {
                buf: &b.qkv,
                offset,
                stride: 3 * d,
            };
            r.attention(
                view(0),
                t2,
                view(d),
                view(2 * d),
                t2,
                heads,
                hd,
                scale,
                &b.ctx,
            )?;
            r.linear(&b.ctx, t2, &l.out.w, Some(&l.out.b), &b.x, Act::None, true)?;
            r.layer_norm(&b.x, t2, d, &l.ln2.g, &l.ln2.b, 1e-5, &b.h)?;
            r.linear(&b.h, t2, &l.fc1.w, Some(&l.fc1.b), &b.ff, Act::Gelu, false)?;
            r.linear(&b.ff, t2, &l.fc2.w, Some(&l.fc2.b), &b.x, Act::None, true)?;
        }
        r.layer_norm(&b.x, t2, d, &self.ln_post.g, &self.ln_post.b, 1e-5, &b.h)?;
        r.submit()?;
        self.ctx.wait()?;
        let kernels = t0.elapsed();
        let t0 = Instant::now();
        let mut out = self.ctx.download(&b.h)?;
        out.truncate(t2 * d);
        b.last_fp = Some(fingerprint(&out));
        let times = StageTimes {
            upload,
            kernels,
            download: t0.elapsed(),
        };
        self.clock.add(&times);
        Ok((out, times))
    }
}

impl Delegate for WhisperEncoderDelegate {
    fn name(&self) -> &str {
        &self.name
    }

    fn accepts(&self, stage: &Stage<'_>) -> bool {
        let dm = self.dims;
        stage.kind == StageKind::Encoder
            && stage.model == "whisper"
            && stage.inputs.len() == 1
            && stage.inputs[0].0 == "mel"
            && stage.inputs[0].1 == [dm.n_mels, 2 * dm.n_audio_ctx]
    }

    fn run(&self, stage: &Stage<'_>, outputs: &mut [&mut [f32]]) -> hark_engine::Result<()> {
        crate::run_encoder_stage(&self.name, "whisper encoder", outputs, || {
            self.encode(stage.inputs[0].2)
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
