//! x86-64 SIMD kernels (AVX2+FMA+F16C and AVX-512), compiled with `#[target_feature]` and
//! installed into the table only after runtime detection.

use super::Kernels;

/// AVX2 + FMA + F16C present.
pub(crate) fn has_avx2() -> bool {
    is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c")
}

/// AVX-512 F/BW/VL/DQ present (plus the AVX2 level).
pub(crate) fn has_avx512() -> bool {
    has_avx2()
        && is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx512dq")
}

/// Overwrites entries with AVX2 variants (caller checked [`has_avx2`]).
pub(crate) fn install_avx2(_k: &mut Kernels) {}

/// Overwrites entries with AVX-512 variants (caller checked [`has_avx512`]).
pub(crate) fn install_avx512(_k: &mut Kernels) {}
