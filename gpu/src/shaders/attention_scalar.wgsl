// Scalar fallback of attention.wgsl for views that are not 16-byte aligned (head dim or
// row offsets/strides not multiples of 4) and head dims above 64; the same algorithm one
// float at a time, one key at a time.
// Fused multi-head attention, out = softmax(Q·Kᵀ·scale)·V per head, without a T×T
// score matrix (flash-attention style online softmax, f32 accumulation).
//
// Q, K, V are row views into one or more buffers: row r of head h starts at
// `off + r·stride + h·HD` (a fused QKV projection [t, 3d] is read in place).
// A workgroup owns RW query rows of one head and DV of its output columns (grid z picks
// the column slice; DV = HD up to 64, so the split only bounds the per-thread accumulator
// of larger heads): one row per thread, the scaled query row in workgroup memory and
// DV running outputs in registers.
// Key/value rows are staged KT at a time in workgroup memory and shared by the RW rows.
// Keys are processed in chunks of at most 256 per dispatch, the running softmax state
// kept in `st` between dispatches: in one dispatch over 500+ keys at head dim 64 lavapipe
// returns wrong rows (smaller dispatches are exact), and short dispatches also keep a
// real GPU's watchdog happy on long inputs.
// HD (head dim), RW and DV are compile-time constants filled in by the host.

struct P {
    tq: u32, tk: u32, heads: u32, scale: f32,
    q_off: u32, q_stride: u32, k_off: u32, k_stride: u32,
    v_off: u32, v_stride: u32, o_stride: u32, j_begin: u32,
    j_end: u32, first: u32, last: u32, _p0: u32,
}

const HD: u32 = {{HD}}u;
const KT: u32 = 8u;
const RW: u32 = {{RW}}u;
const DV: u32 = {{DV}}u;

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> kv: array<f32>;
@group(0) @binding(3) var<storage, read_write> o: array<f32>;
// Running (max, sum, DV outputs) per (row, head, column slice) between key chunks.
@group(0) @binding(4) var<storage, read_write> st: array<f32>;

var<workgroup> qs: array<f32, {{RW_HD}}>;
var<workgroup> ks: array<f32, {{KT_HD}}>;
var<workgroup> vs: array<f32, {{KT_HD}}>;

@compute @workgroup_size({{RW}}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
    let lid = lid3.x;
    let h = wid.y;
    let row = wid.x * RW + lid;
    let live = row < p.tq;
    let dv0 = wid.z * DV;
    var acc: array<f32, DV>;
    let qr = lid * HD;
    let nz = HD / DV;
    let sb = ((row * p.heads + h) * nz + wid.z) * (DV + 2u);
    var m = -3.4028235e38;
    var l = 0.0;
    for (var d = 0u; d < DV; d++) { acc[d] = 0.0; }
    if (live && p.first == 0u) {
        m = st[sb];
        l = st[sb + 1u];
        for (var d = 0u; d < DV; d++) { acc[d] = st[sb + 2u + d]; }
    }
    if (live) {
        let qb = p.q_off + row * p.q_stride + h * HD;
        for (var d = 0u; d < HD; d++) { qs[qr + d] = q[qb + d] * p.scale; }
    }
    let ntiles = (p.j_end - p.j_begin + KT - 1u) / KT;
    for (var t = 0u; t < ntiles; t++) {
        let j0 = p.j_begin + t * KT;
        for (var e = lid; e < KT * HD; e += RW) {
            let j = j0 + e / HD;
            let d = e % HD;
            var kval = 0.0;
            var vval = 0.0;
            if (j < p.j_end) {
                kval = kv[p.k_off + j * p.k_stride + h * HD + d];
                vval = kv[p.v_off + j * p.v_stride + h * HD + d];
            }
            ks[e] = kval;
            vs[e] = vval;
        }
        workgroupBarrier();
        if (live) {
            let nj = min(KT, p.j_end - j0);
            for (var jj = 0u; jj < nj; jj++) {
                var s = 0.0;
                for (var d = 0u; d < HD; d++) { s = fma(qs[qr + d], ks[jj * HD + d], s); }
                let m_new = max(m, s);
                let corr = exp(m - m_new);
                let pj = exp(s - m_new);
                l = l * corr + pj;
                for (var d = 0u; d < DV; d++) { acc[d] = fma(pj, vs[jj * HD + dv0 + d], acc[d] * corr); }
                m = m_new;
            }
        }
        workgroupBarrier();
    }
    if (live && p.last == 0u) {
        st[sb] = m;
        st[sb + 1u] = l;
        for (var d = 0u; d < DV; d++) { st[sb + 2u + d] = acc[d]; }
    }
    if (live && p.last != 0u) {
        let inv = 1.0 / l;
        let ob = row * p.o_stride + h * HD + dv0;
        for (var d = 0u; d < DV; d++) { o[ob + d] = acc[d] * inv; }
    }
}
