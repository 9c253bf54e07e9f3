// im2col for a 1-D convolution (dilation 1): col[t, c·k + j] = x[t·stride + j - pad, c]
// (zero outside), so that conv1d = col · W[c_out, c_in·k]ᵀ on the tiled GEMM, the same
// formulation as hark-engine's CPU conv1d. The input is addressed with explicit time and
// channel strides, so both [t, c] activations and Whisper's [n_mels, t] log-mel work.

struct P { t_out: u32, c_in: u32, k: u32, stride: u32, pad: u32, t_in: u32, ts: u32, cs: u32 }

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> col: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wid.y * nw.x + wid.x) * 256u + lid.x;
    let ck = p.c_in * p.k;
    if (i >= p.t_out * ck) { return; }
    let t = i / ck;
    let r = i % ck;
    let c = r / p.k;
    let j = r % p.k;
    let ti = i32(t * p.stride + j) - i32(p.pad);
    var v = 0.0;
    if (ti >= 0 && u32(ti) < p.t_in) { v = x[u32(ti) * p.ts + c * p.cs]; }
    col[i] = v;
}
