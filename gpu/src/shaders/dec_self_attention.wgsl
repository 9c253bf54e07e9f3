// Decoder self-attention over the KV cache, read through the beam index table:
// out[r, h] = Σ_j softmax_j(scale · q[r, h]·k[tbl[beam_r][j], h]) · v[tbl[beam_r][j], h]
// for j < n_r, where row r's beam slot and key count sit in the step's info buffer at
// `beam_off + r` and `len_off + r`; q is column block h of the fused QKV rows [m, 3d].
// One 64-thread workgroup per (row, head): the scores of up to {{MAXT}} keys are kept in
// workgroup memory; exact two-pass softmax (max, then Σexp) with f32 accumulation.
// With `masked` set, keys whose physical cache row is flagged in `pad` (rows holding the
// pad token, FireRedASR's `ignored_target_position_is_0`) get score -3.4e38 (weight 0).

struct P {
    d: u32, hd: u32, len: u32, beam_off: u32,
    len_off: u32, scale: f32, masked: u32, _p1: u32,
}

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> info: array<u32>;
@group(0) @binding(2) var<storage, read> qkv: array<f32>;
@group(0) @binding(3) var<storage, read> tbl: array<u32>;
@group(0) @binding(4) var<storage, read> kc: array<f32>;
@group(0) @binding(5) var<storage, read> vc: array<f32>;
@group(0) @binding(6) var<storage, read_write> y: array<f32>;
@group(0) @binding(7) var<storage, read> pad: array<u32>;

var<workgroup> s: array<f32, {{MAXT}}>;
var<workgroup> red: array<f32, 64>;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
    let lid = lid3.x;
    let r = wid.x;
    let h = wid.y;
    let beam = info[p.beam_off + r];
    let n = info[p.len_off + r];
    let qb = r * 3u * p.d + h * p.hd;
    let row0 = beam * p.len;
    var mx = -3.402823e38;
    for (var j = lid; j < n; j += 64u) {
        let kr = tbl[row0 + j];
        let kb = kr * p.d + h * p.hd;
        var acc = 0.0;
        for (var c = 0u; c < p.hd; c++) {
            acc += qkv[qb + c] * kc[kb + c];
        }
        acc *= p.scale;
        if (p.masked != 0u && pad[kr] != 0u) { acc = -3.402823e38; }
        s[j] = acc;
        mx = max(mx, acc);
    }
    red[lid] = mx;
    workgroupBarrier();
    for (var w = 32u; w > 0u; w >>= 1u) {
        if (lid < w) { red[lid] = max(red[lid], red[lid + w]); }
        workgroupBarrier();
    }
    let m = red[0];
    workgroupBarrier();
    var sum = 0.0;
    for (var j = lid; j < n; j += 64u) {
        let e = exp(s[j] - m);
        s[j] = e;
        sum += e;
    }
    red[lid] = sum;
    workgroupBarrier();
    for (var w = 32u; w > 0u; w >>= 1u) {
        if (lid < w) { red[lid] += red[lid + w]; }
        workgroupBarrier();
    }
    let inv = 1.0 / red[0];
    for (var c = lid; c < p.hd; c += 64u) {
        var acc = 0.0;
        for (var j = 0u; j < n; j++) {
            acc += s[j] * vc[tbl[row0 + j] * p.d + h * p.hd + c];
        }
        y[r * p.d + h * p.hd + c] = acc * inv;
    }
}
