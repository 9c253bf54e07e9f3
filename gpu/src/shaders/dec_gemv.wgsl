// Skinny GEMM for decoder steps (m <= 8 rows, e.g. one token per beam):
// y[r, n] (+)= act(x[r, k] · W[n, k]ᵀ · scale[n] + bias[n]) for r < m.
// The 64x64 tiles of matmul.wgsl would compute 64 rows for the 1-5 a beam step has; here
// a 64-thread workgroup owns 64 output columns (one per thread) for all m rows: x is
// staged in workgroup memory 256 k at a time, row-interleaved as vec4s (rows 0-3, rows
// 4-7) so every thread reads the same address (a broadcast), and each thread streams its
// weight row two values per load, accumulating the 8 rows in two vec4 registers (f32).
// Rows past m are zero. W is in its stored precision (markers filled in per dtype by
// whisper_decoder.rs, the matmul's layouts: rows padded to kp, a multiple of 4, with
// zeros); act: 0 none, 1 exact GELU.

struct P { m: u32, n: u32, k: u32, kp: u32, has_bias: u32, act: u32, accumulate: u32, _p0: u32 }

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
{{W_DECL}}

{{W_LOAD}}

{{GELU}}

const KT: u32 = 256u;
var<workgroup> xs: array<vec4<f32>, 512>; // [KT][2]: rows 0-3, rows 4-7

fn xrow(r: u32, kk: u32) -> f32 {
    if (r < p.m && kk < p.k) { return x[r * p.k + kk]; }
    return 0.0;
}

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>,
        @builtin(local_invocation_id) lid3: vec3<u32>) {
    let lid = lid3.x;
    let n = (wid.y * nw.x + wid.x) * 64u + lid;
    let live = n < p.n;
    var a0 = vec4<f32>(0.0);
    var a1 = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < p.kp; k0 += KT) {
        for (var i = lid; i < KT * 2u; i += 64u) {
            let kk = k0 + i / 2u;
            let r0 = (i % 2u) * 4u;
            xs[i] = vec4<f32>(xrow(r0, kk), xrow(r0 + 1u, kk), xrow(r0 + 2u, kk), xrow(r0 + 3u, kk));
        }
        workgroupBarrier();
        if (live) {
            let kend = min(KT, p.kp - k0);
            for (var kk = 0u; kk < kend; kk += 2u) {
                let w = load_w2(n, k0 + kk);
                a0 += w.x * xs[2u * kk] + w.y * xs[2u * kk + 2u];
                a1 += w.x * xs[2u * kk + 1u] + w.y * xs[2u * kk + 3u];
            }
        }
        workgroupBarrier();
    }
    if (!live) { return; }
    let s = w_scale(n);
    var b = 0.0;
    if (p.has_bias == 1u) { b = bias[n]; }
    for (var r = 0u; r < p.m; r++) {
        var v: f32;
        if (r < 4u) { v = a0[r]; } else { v = a1[r - 4u]; }
        v = v * s + b;
        if (p.act == 1u) { v = gelu(v); }
        let o = r * p.n + n;
        if (p.accumulate == 1u) { y[o] += v; } else { y[o] = v; }
    }
}
