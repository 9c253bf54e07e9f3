// Element-wise kernels over flat f32 buffers. One thread per element; the grid is 2-D
// (x up to 65535 workgroups) so buffers of any length fit: index = (wid.y·nx + wid.x)·256 + lid.

struct P { n: u32, c: u32, _p0: u32, _p1: u32 }

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> a: array<f32>;
{{EXTRA_DECL}}

{{GELU}}

fn sigmoid(v: f32) -> f32 { return 1.0 / (1.0 + exp(-v)); }

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wid.y * nw.x + wid.x) * 256u + lid.x;
    if (i >= p.n) { return; }
    {{BODY}}
}
