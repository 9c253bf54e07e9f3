// Decoder input embedding: x[r, c] = W[tok[r], c] · scale[tok[r]] · escale + pos[p[r], c],
// one thread per output value (escale: 1 for Whisper, √d for FireRedASR's decoder). The
// token and position ids of row r sit in the step's u32 info buffer at `tok_off + r` and
// `pos_off + r`. W is the token-embedding matrix in its stored precision (the W markers
// below are filled in per dtype by whisper_decoder.rs, the same layouts as the matmul's
// weights: rows padded to `kp`).

struct P { m: u32, d: u32, kp: u32, tok_off: u32, pos_off: u32, escale: f32, _p1: u32, _p2: u32 }

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> info: array<u32>;
@group(0) @binding(2) var<storage, read> pos: array<f32>;
@group(0) @binding(3) var<storage, read_write> x: array<f32>;
{{W_DECL}}

{{W_LOAD}}

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wid.y * nw.x + wid.x) * 256u + lid.x;
    if (i >= p.m * p.d) { return; }
    let r = i / p.d;
    let c = i % p.d;
    let t = info[p.tok_off + r];
    x[i] = load_w(t, c) * w_scale(t) * p.escale + pos[info[p.pos_off + r] * p.d + c];
}
