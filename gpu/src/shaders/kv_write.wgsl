// Writes one step's keys and values into the decoder's self-attention cache in place:
// k[dst[r], c] = qkv[r, d + c], v[dst[r], c] = qkv[r, 2d + c] for the step's m rows of the
// fused QKV projection [m, 3d]; dst[r] (physical cache row) sits in the step's info
// buffer at `dst_off + r`. One thread per value.

struct P { m: u32, d: u32, dst_off: u32, _p0: u32 }

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> info: array<u32>;
@group(0) @binding(2) var<storage, read> qkv: array<f32>;
@group(0) @binding(3) var<storage, read_write> kc: array<f32>;
@group(0) @binding(4) var<storage, read_write> vc: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wid.y * nw.x + wid.x) * 256u + lid.x;
    if (i >= p.m * p.d) { return; }
    let r = i / p.d;
    let c = i % p.d;
    let dst = info[p.dst_off + r] * p.d + c;
    kc[dst] = qkv[r * 3u * p.d + p.d + c];
    vc[dst] = qkv[r * 3u * p.d + 2u * p.d + c];
}
