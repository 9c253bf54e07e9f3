//! Precision policy: which dtype matrix weights run in.
//!
//! Matrix ops (linear, conv, embedding) run with the dtype of their weight; LayerNorm,
//! softmax, reductions, residual sums and all activations are always f32. A model picks
//! one [`Precision`] for its matrices and may pin layers to f32 by tensor-name prefix
//! (e.g. the output projection, or the first conv, when they are sensitive to rounding).

use crate::dtype::DType;

/// Dtype family for matrix weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Precision {
    /// f32 weights.
    F32,
    /// Half-precision weights (f16; bf16 weights stored in the file are kept as bf16).
    F16,
    /// int8 weights with per-output-channel f32 scales.
    Int8,
}

impl Precision {
    /// The weight dtype this precision converts f32 weights to.
    pub fn weight_dtype(self) -> DType {
        match self {
            Precision::F32 => DType::F32,
            Precision::F16 => DType::F16,
            Precision::Int8 => DType::I8,
        }
    }

    /// The dtype a weight stored as `stored` is converted to under this precision.
    /// Half-precision weights (f16/bf16) stay as stored under [`Precision::F16`], and
    /// int8 weights stay as stored under [`Precision::Int8`], so loading is zero-copy.
    pub fn target_for(self, stored: DType) -> DType {
        match (self, stored) {
            (Precision::F16, DType::F16 | DType::BF16) => stored,
            _ => self.weight_dtype(),
        }
    }

    /// The canonical name (`"f32"`, `"f16"`, `"int8"`), as used in model configs and on
    /// the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
            Precision::Int8 => "int8",
        }
    }

    /// Parses "f32", "f16", "int8" (case-insensitive).
    pub fn parse(s: &str) -> Option<Precision> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "fp32" | "float32" => Some(Precision::F32),
            "f16" | "fp16" | "float16" | "half" => Some(Precision::F16),
            "int8" | "i8" | "q8" => Some(Precision::Int8),
            _ => None,
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Precision::parse(s)
            .ok_or_else(|| format!("unknown precision {s:?}: expected one of f32, f16, int8"))
    }
}

/// A model's precision policy: a default plus tensor-name prefixes pinned to f32.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrecisionPolicy {
    /// Precision of matrix weights not matched by a pin.
    pub default: Precision,
    /// Tensor-name prefixes whose matrix weights stay f32 (e.g. `"decoder.proj_out"`).
    pub f32_prefixes: Vec<String>,
}

impl Default for PrecisionPolicy {
    fn default() -> Self {
        PrecisionPolicy::new(Precision::F32)
    }
}

impl PrecisionPolicy {
    /// A policy with no pins.
    pub fn new(default: Precision) -> Self {
        PrecisionPolicy {
            default,
            f32_prefixes: Vec::new(),
        }
    }

    /// Pins every tensor whose full name starts with `prefix` to f32.
    pub fn pin_f32(mut self, prefix: impl Into<String>) -> Self {
        self.f32_prefixes.push(prefix.into());
        self
    }

    /// The precision for the tensor with full name `name`.
    pub fn for_tensor(&self, name: &str) -> Precision {
        if self
            .f32_prefixes
            .iter()
            .any(|p| name.starts_with(p.as_str()))
        {
            Precision::F32
        } else {
            self.default
        }
    }
}
