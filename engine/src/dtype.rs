//! Element types.
//!
//! Activations are always f32. Weights may be f32, f16, bf16 or int8; an int8 tensor
//! always carries one symmetric f32 scale per row (per output channel of a `[out, in]`
//! weight): `w[r, c] ≈ scale[r] * q[r, c]`.
//!
//! Adding a block format later (e.g. int4 with a scale per 32 values) means adding a
//! [`DType`] variant, a [`crate::tensor::WeightView`] variant and a GEMM kernel; ops
//! that only touch f32 activations are not affected.

pub use half::{bf16, f16};

/// Storage element type of a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    /// IEEE binary32.
    F32,
    /// IEEE binary16.
    F16,
    /// bfloat16 (8-bit exponent, 7-bit mantissa).
    BF16,
    /// Signed 8-bit integers with one f32 scale per row (symmetric, no zero point).
    I8,
}

impl DType {
    /// Size of one element in bytes.
    pub fn size_in_bytes(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 | DType::BF16 => 2,
            DType::I8 => 1,
        }
    }

    /// The dtype name used in safetensors headers.
    pub fn safetensors_name(self) -> &'static str {
        match self {
            DType::F32 => "F32",
            DType::F16 => "F16",
            DType::BF16 => "BF16",
            DType::I8 => "I8",
        }
    }

    /// Parses a safetensors dtype name.
    pub fn from_safetensors_name(s: &str) -> Option<DType> {
        match s {
            "F32" => Some(DType::F32),
            "F16" => Some(DType::F16),
            "BF16" => Some(DType::BF16),
            "I8" => Some(DType::I8),
            _ => None,
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::I8 => "int8",
        })
    }
}

/// A Rust type that can be the element of a tensor.
pub trait Element: bytemuck::Pod + Copy + Send + Sync + 'static {
    /// The matching dtype.
    const DTYPE: DType;
    /// Converts to f32 (int8: the raw integer value, unscaled).
    fn to_f32(self) -> f32;
}

impl Element for f32 {
    const DTYPE: DType = DType::F32;
    #[inline]
    fn to_f32(self) -> f32 {
        self
    }
}
impl Element for f16 {
    const DTYPE: DType = DType::F16;
    #[inline]
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
}
impl Element for bf16 {
    const DTYPE: DType = DType::BF16;
    #[inline]
    fn to_f32(self) -> f32 {
        bf16::to_f32(self)
    }
}
impl Element for i8 {
    const DTYPE: DType = DType::I8;
    #[inline]
    fn to_f32(self) -> f32 {
        self as f32
    }
}
