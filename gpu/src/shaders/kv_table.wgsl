// Beam index table of the decoder's self-attention KV cache (the device twin of
// hark-engine's KvCache table): tbl[b·L + t] is the physical cache row beam b reads at
// position t. One step rewrites it from the previous table, ping-pong:
//   t <  t0:      new[b][t] = old[parent[b]][t]   (beam reordering by index, no K/V copy)
//   t0 <= t < t0+n: the rows written by this step, t·beams + b (beam rows) or t·beams
//                 (rows shared by all beams, stored in slot 0).
// parent[b] sits in the step's info buffer at `par_off + b`.

struct P { beams: u32, len: u32, t0: u32, n: u32, shared_rows: u32, par_off: u32, _p0: u32, _p1: u32 }

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> info: array<u32>;
@group(0) @binding(2) var<storage, read> prev: array<u32>;
@group(0) @binding(3) var<storage, read_write> tbl: array<u32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wid.y * nw.x + wid.x) * 256u + lid.x;
    let cols = p.t0 + p.n;
    if (i >= p.beams * cols) { return; }
    let b = i / cols;
    let t = i % cols;
    if (t < p.t0) {
        tbl[b * p.len + t] = prev[info[p.par_off + b] * p.len + t];
    } else if (p.shared_rows == 1u) {
        tbl[b * p.len + t] = t * p.beams;
    } else {
        tbl[b * p.len + t] = t * p.beams + b;
    }
}
