// Fused multi-head attention, out = softmax(Q·Kᵀ·scale)·V per head, without a T×T
// score matrix (flash-attention style online softmax, f32 accumulation).
//
// Q, K, V are row views into one or more buffers: row r of head h starts at
// `off + r·stride + h·HD` (a fused QKV projection [t, 3d] is read in place).
// A workgroup owns 64 query rows of one head (one row per thread, q and the running
// output in registers); key/value rows are staged 16 at a time in workgroup memory and
// shared by the 64 rows. HD (head dim) is a compile-time constant filled in by the host.

struct P {
    tq: u32, tk: u32, heads: u32, scale: f32,
    q_off: u32, q_stride: u32, k_off: u32, k_stride: u32,
    v_off: u32, v_stride: u32, o_stride: u32, _p0: u32,
}

const HD: u32 = {{HD}}u;
const KT: u32 = 16u;

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> kv: array<f32>;
@group(0) @binding(3) var<storage, read_write> o: array<f32>;

var<workgroup> ks: array<f32, {{KT_HD}}>;
var<workgroup> vs: array<f32, {{KT_HD}}>;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
    let lid = lid3.x;
    let h = wid.y;
    let row = wid.x * 64u + lid;
    let live = row < p.tq;
    var qr: array<f32, HD>;
    var acc: array<f32, HD>;
    if (live) {
        let qb = p.q_off + row * p.q_stride + h * HD;
        for (var d = 0u; d < HD; d++) { qr[d] = q[qb + d] * p.scale; acc[d] = 0.0; }
    }
    var m = -3.4028235e38;
    var l = 0.0;
    let ntiles = (p.tk + KT - 1u) / KT;
    for (var t = 0u; t < ntiles; t++) {
        let j0 = t * KT;
        for (var e = lid; e < KT * HD; e += 64u) {
            let j = j0 + e / HD;
            let d = e % HD;
            var kval = 0.0;
            var vval = 0.0;
            if (j < p.tk) {
                kval = kv[p.k_off + j * p.k_stride + h * HD + d];
                vval = kv[p.v_off + j * p.v_stride + h * HD + d];
            }
            ks[e] = kval;
            vs[e] = vval;
        }
        workgroupBarrier();
        if (live) {
            let nj = min(KT, p.tk - j0);
            for (var jj = 0u; jj < nj; jj++) {
                var s = 0.0;
                for (var d = 0u; d < HD; d++) { s = fma(qr[d], ks[jj * HD + d], s); }
                let m_new = max(m, s);
                let corr = exp(m - m_new);
                let pj = exp(s - m_new);
                l = l * corr + pj;
                for (var d = 0u; d < HD; d++) { acc[d] = fma(pj, vs[jj * HD + d], acc[d] * corr); }
                m = m_new;
            }
        }
        workgroupBarrier();
    }
    if (live) {
        let inv = 1.0 / l;
        let ob = row * p.o_stride + h * HD;
        for (var d = 0u; d < HD; d++) { o[ob + d] = acc[d] * inv; }
    }
}
