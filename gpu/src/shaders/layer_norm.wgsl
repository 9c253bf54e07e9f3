// LayerNorm over rows: y[r] = (x[r] - mean) / sqrt(var + eps) · gamma + beta, two-pass
// (mean, then centred variance) with f32 accumulation and a 256-thread tree reduction
// per row (one workgroup per row), as hark-engine's CPU op computes it.

struct P { rows: u32, dim: u32, eps: f32, _p0: u32 }

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

var<workgroup> red: array<f32, 256>;

fn reduce_sum(v: f32, lid: u32) -> f32 {
    red[lid] = v;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s >>= 1u) {
        if (lid < s) { red[lid] += red[lid + s]; }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>,
        @builtin(local_invocation_id) lid3: vec3<u32>) {
    let row = wid.y * nw.x + wid.x;
    if (row >= p.rows) { return; } // uniform per workgroup
    let lid = lid3.x;
    let base = row * p.dim;
    var s = 0.0;
    for (var i = lid; i < p.dim; i += 256u) { s += x[base + i]; }
    let mean = reduce_sum(s, lid) / f32(p.dim);
    var q = 0.0;
    for (var i = lid; i < p.dim; i += 256u) { let d = x[base + i] - mean; q += d * d; }
    let var_ = reduce_sum(q, lid) / f32(p.dim);
    let inv = 1.0 / sqrt(var_ + p.eps);
    for (var i = lid; i < p.dim; i += 256u) {
        y[base + i] = (x[base + i] - mean) * inv * gamma[i] + beta[i];
    }
}
