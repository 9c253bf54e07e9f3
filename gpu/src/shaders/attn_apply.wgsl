// Attention output from normalised scores: out[i, h·hd + c] = Σ_j w[h, i, j] · v[j, h·hd + c]
// (w is [heads, t, tk] row-major, v [tk, heads·hd]); one thread per output value, f32
// accumulation in key order.

struct P { t: u32, tk: u32, heads: u32, hd: u32 }

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read_write> o: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
    let idx = (wid.y * nw.x + wid.x) * 256u + lid.x;
    let d = p.heads * p.hd;
    if (idx >= p.t * d) { return; }
    let i = idx / d;
    let col = idx % d;
    let h = col / p.hd;
    let wb = (h * p.t + i) * p.tk;
    var acc = 0.0;
    for (var j = 0u; j < p.tk; j++) {
        acc = fma(w[wb + j], v[j * d + col], acc);
    }
    o[idx] = acc;
}
