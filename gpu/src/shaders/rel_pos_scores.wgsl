// Scores of relative-position multi-head self-attention (ESPnet/FireRedASR
// `RelPositionMultiHeadedAttention`, Transformer-XL terms (a)+(c) and (b)+(d)):
//   s[h, i, j] = scale · ((q_i + u_h)·k_j + (q_i + v_h)·p_r)   for j < valid, else masked
// with r = (np - 1)/2 + j - i when rel_shift is on (a table of 2T-1 encodings for relative
// positions T-1 … -(T-1), i.e. ESPnet's `rel_shift` done by indexing) and r = j without it
// (WeNet). q, k are [t, heads·hd]; p is [np, heads·hd]; u, v are [heads·hd].
// One thread per score; the softmax and the product with V are separate kernels. Masked
// scores are -3e38 so that exp(s - max) is exactly 0 (the first key is always valid).

struct P { t: u32, heads: u32, hd: u32, np: u32, valid: u32, shift: u32, scale: f32, _p0: u32 }

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> pos: array<f32>;
@group(0) @binding(4) var<storage, read> bu: array<f32>;
@group(0) @binding(5) var<storage, read> bv: array<f32>;
@group(0) @binding(6) var<storage, read_write> s: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
    let idx = (wid.y * nw.x + wid.x) * 256u + lid.x;
    if (idx >= p.heads * p.t * p.t) { return; }
    let j = idx % p.t;
    let i = (idx / p.t) % p.t;
    let h = idx / (p.t * p.t);
    if (j >= p.valid) {
        s[idx] = -3.0e38;
        return;
    }
    var r = j;
    if (p.shift != 0u) { r = (p.np - 1u) / 2u + j - i; }
    let d = p.heads * p.hd;
    let c0 = h * p.hd;
    let qb = i * d + c0;
    let kb = j * d + c0;
    let pb = r * d + c0;
    var ac = 0.0;
    var bd = 0.0;
    for (var c = 0u; c < p.hd; c++) {
        let qc = q[qb + c];
        ac = fma(qc + bu[c0 + c], k[kb + c], ac);
        bd = fma(qc + bv[c0 + c], pos[pb + c], bd);
    }
    s[idx] = (ac + bd) * p.scale;
}
