//! Reading a hark model directory onto the device: what every GPU stage loader shares.

use std::cell::Cell;
use std::path::Path;

use hark_engine::{Precision, PrecisionPolicy, Tensor, Weights};

use crate::context::{GpuContext, GpuTensor};
use crate::kernels::GpuWeight;
use crate::GpuError;

/// A model's `model.safetensors` opened for upload to one device: weight matrices go up in
/// their stored precision (f32/f16/bf16/int8, see [`GpuWeight`]) and their device bytes are
/// counted; vectors and tables go up as f32.
pub(crate) struct WeightUploader<'a> {
    ctx: &'a GpuContext,
    weights: Weights,
    bytes: Cell<u64>,
}

impl<'a> WeightUploader<'a> {
    /// Opens `<model_dir>/model.safetensors`.
    pub(crate) fn open(ctx: &'a GpuContext, model_dir: &Path) -> Result<Self, GpuError> {
        // The policy only matters for `get_matrix`; `get` returns tensors as stored.
        let weights = Weights::open(
            &[model_dir.join("model.safetensors")],
            PrecisionPolicy::new(Precision::F32),
        )?;
        Ok(WeightUploader {
            ctx,
            weights,
            bytes: Cell::new(0),
        })
    }

    /// The tensors, for what is rearranged on the host before upload.
    pub(crate) fn weights(&self) -> &Weights {
        &self.weights
    }

    /// Uploads the 2-D weight matrix `t` (stored precision) and counts its device bytes.
    pub(crate) fn upload(&self, t: &Tensor) -> Result<GpuWeight, GpuError> {
        let gw = GpuWeight::upload(self.ctx, t)?;
        self.bytes.set(self.bytes.get() + gw.device_bytes());
        Ok(gw)
    }

    /// The tensor `name` of `shape`, flattened to `[shape[0], product of the rest]` (a
    /// convolution kernel becomes its im2col matrix) and uploaded as a weight matrix.
    pub(crate) fn matrix(&self, name: &str, shape: &[usize]) -> Result<GpuWeight, GpuError> {
        let t = self.weights.get(name, shape)?;
        self.upload(&t.reshape(&[shape[0], shape[1..].iter().product()])?)
    }

    /// The tensor `name` of `shape` as f32 on the device (biases, norms, tables).
    pub(crate) fn f32(&self, name: &str, shape: &[usize]) -> Result<GpuTensor, GpuError> {
        let t = self.weights.get_f32(name, shape)?.contiguous();
        Ok(self.ctx.upload(t.as_f32()?))
    }

    /// The tensor `name` of `shape` as f32 on the host.
    pub(crate) fn f32_host(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, GpuError> {
        Ok(self.weights.get_f32(name, shape)?.to_f32_vec()?)
    }

    /// Device bytes of the weight matrices uploaded so far.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes.get()
    }
}

/// `dims.<key>` of a Whisper model's `config.json` (`cfg`, read from `model_dir`).
pub(crate) fn whisper_dim(
    cfg: &serde_json::Value,
    model_dir: &Path,
    key: &str,
) -> Result<usize, GpuError> {
    cfg.get("dims")
        .and_then(|d| d.get(key))
        .and_then(|v| v.as_u64())
        .map(|v| v as usize)
        .ok_or_else(|| GpuError::Model {
            path: model_dir.join("config.json"),
            reason: format!("missing dims.{key}"),
        })
}
