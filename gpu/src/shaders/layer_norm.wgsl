// LayerNorm over rows: y[r] = (x[r] - mean) / sqrt(var + eps) · gamma + beta, two-pass
// (mean, then centred variance) with f32 accumulation and a 64-thread tree reduction
// per row (one workgroup per row), as hark-engine's CPU op computes it.
// 64 threads rather than 256: rows are short (384-1280), and on lavapipe every barrier
// switches between all the workgroup's 8-lane coroutines: 256 threads (8 reduction steps
// over 32 coroutines) took 156 ms for tiny.en's [1500, 384], 64 threads 76 ms (under
// load). On a GPU 64 threads are two warps or one wavefront, plenty for a row of a few
// hundred values.

struct P { rows: u32, dim: u32, eps: f32, _p0: u32 }

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

var<workgroup> red: array<f32, 64>;

fn reduce_sum(v: f32, lid: u32) -> f32 {
    red[lid] = v;
    workgroupBarrier();
    for (var s = 32u; s > 0u; s >>= 1u) {
        if (lid < s) { red[lid] += red[lid + s]; }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>,
        @builtin(local_invocation_id) lid3: vec3<u32>) {
    let row = wid.y * nw.x + wid.x;
    if (row >= p.rows) { return; } // uniform per workgroup
    let lid = lid3.x;
    let base = row * p.dim;
    var s = 0.0;
    for (var i = lid; i < p.dim; i += 64u) { s += x[base + i]; }
    let mean = reduce_sum(s, lid) / f32(p.dim);
    var q = 0.0;
    for (var i = lid; i < p.dim; i += 64u) { let d = x[base + i] - mean; q += d * d; }
    let var_ = reduce_sum(q, lid) / f32(p.dim);
    let inv = 1.0 / sqrt(var_ + p.eps);
    for (var i = lid; i < p.dim; i += 64u) {
        y[base + i] = (x[base + i] - mean) * inv * gamma[i] + beta[i];
    }
}
