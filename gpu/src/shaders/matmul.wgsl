// Tiled GEMM with a fused epilogue:
// y[m, n] (+)= alpha · act(x[m, k] · W[n, k]ᵀ · scale[n] + bias[n]).
//
// x: f32 activations, row-major with row stride `lda`. W: PyTorch linear layout [n, k],
// each row padded to `kp` elements (a multiple of 4) and stored as f32, f16 (two per u32,
// unpacked with unpack2x16float) or int8 (four per u32, sign-extended with extractBits,
// per-row scale applied once after the dot product). Accumulation is f32.
// Tiling: a 16x16 workgroup computes a 64x64 output tile, 4x4 outputs per thread; the
// K loop stages a 64x16 tile of x and of W in workgroup memory (8 KiB).
// The {{...}} markers are filled in by gpu/src/kernels.rs per weight dtype.

struct P {
    m: u32, n: u32, k: u32, kp: u32,
    lda: u32, ldc: u32, has_bias: u32, act: u32,   // act: 0 none, 1 GELU, 2 ReLU, 3 SiLU
    accumulate: u32, alpha: f32, _p1: u32, _p2: u32,
}

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
{{W_DECL}}

const BM: u32 = 64u;
const BN: u32 = 64u;
const BK: u32 = 16u;

var<workgroup> xs: array<f32, 1024>; // [BK][BM]
var<workgroup> ws: array<f32, 1024>; // [BK][BN]

{{W_LOAD}}

{{GELU}}

// Accumulators are four vec4 registers (rows i of the thread's 4x4 block) rather than a
// dynamically indexed array: software rasterisers such as lavapipe keep indexed private
// arrays in memory, which made the whole GEMM several times slower there.
fn epilogue(r: u32, c0: u32, v4: vec4<f32>) {
    if (r >= p.m) { return; }
    for (var j = 0u; j < 4u; j++) {
        let c = c0 + j;
        if (c >= p.n) { return; }
        var v = v4[j] * w_scale(c);
        if (p.has_bias != 0u) { v += bias[c]; }
        if (p.act == 1u) { v = gelu(v); }
        if (p.act == 2u) { v = max(v, 0.0); }
        if (p.act == 3u) { v = v / (1.0 + exp(-v)); }
        v *= p.alpha;
        let o = r * p.ldc + c;
        if (p.accumulate != 0u) { v += y[o]; }
        y[o] = v;
    }
}

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = wid.y * BM;
    let col0 = wid.x * BN;
    let tid = lid.y * 16u + lid.x;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    let ntiles = (p.k + BK - 1u) / BK;
    for (var t = 0u; t < ntiles; t++) {
        let k0 = t * BK;
        // 1024 elements per tile, 4 per thread; consecutive threads read consecutive k.
        for (var e = 0u; e < 4u; e++) {
            let idx = tid + e * 256u;
            let r = idx / BK;
            let kk = idx % BK;
            let gk = k0 + kk;
            let gr = row0 + r;
            var xv = 0.0;
            if (gr < p.m && gk < p.k) { xv = x[gr * p.lda + gk]; }
            xs[kk * BM + r] = xv;
            let gn = col0 + r;
            var wv = 0.0;
            if (gn < p.n && gk < p.k) { wv = load_w(gn, gk); }
            ws[kk * BN + r] = wv;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
            let xa = kk * BM + lid.y * 4u;
            let wb = kk * BN + lid.x * 4u;
            let b = vec4<f32>(ws[wb], ws[wb + 1u], ws[wb + 2u], ws[wb + 3u]);
            acc0 = fma(vec4<f32>(xs[xa]), b, acc0);
            acc1 = fma(vec4<f32>(xs[xa + 1u]), b, acc1);
            acc2 = fma(vec4<f32>(xs[xa + 2u]), b, acc2);
            acc3 = fma(vec4<f32>(xs[xa + 3u]), b, acc3);
        }
        workgroupBarrier();
    }
    let r0 = row0 + lid.y * 4u;
    let c0 = col0 + lid.x * 4u;
    epilogue(r0, c0, acc0);
    epilogue(r0 + 1u, c0, acc1);
    epilogue(r0 + 2u, c0, acc2);
    epilogue(r0 + 3u, c0, acc3);
}
