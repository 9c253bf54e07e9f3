// Depthwise 1-D convolution over time, stride 1: out[t, ch] = bias[ch] +
// Σ_j w[ch·k + j] · x[t + j - pad_left, ch] (zero outside); x is [t_in, c].

struct P { t_out: u32, c: u32, k: u32, pad_left: u32, t_in: u32, has_bias: u32, _p0: u32, _p1: u32 }

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wid.y * nw.x + wid.x) * 256u + lid.x;
    if (i >= p.t_out * p.c) { return; }
    let t = i / p.c;
    let ch = i % p.c;
    var acc = 0.0;
    if (p.has_bias != 0u) { acc = bias[ch]; }
    for (var j = 0u; j < p.k; j++) {
        let ti = i32(t + j) - i32(p.pad_left);
        if (ti >= 0 && u32(ti) < p.t_in) { acc = fma(w[ch * p.k + j], x[u32(ti) * p.c + ch], acc); }
    }
    y[i] = acc;
}
