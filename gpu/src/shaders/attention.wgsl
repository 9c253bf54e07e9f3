// Fused multi-head attention, out = softmax(Q·Kᵀ·scale)·V per head, without a T×T
// score matrix (flash-attention style online softmax, f32 accumulation).
//
// Q, K, V are row views into one or more buffers: row r of head h starts at
// `off + r·stride + h·HD` (a fused QKV projection [t, 3d] is read in place). Offsets,
// strides and HD (<= 64) are multiples of 4, so every access is a vec4 (kernels.rs uses
// attention_scalar.wgsl otherwise).
// A workgroup owns RW·R query rows of one head and DV of its output columns (grid z picks
// the column slice; with HD <= 64, DV = HD): R rows per thread (1 on GPUs, 4 on software
// devices, see `att_rows` in kernels.rs), their scaled queries (HD/4 vec4s each) and DV
// running outputs (DV/4 vec4s each) in registers.
// Keys and values are staged KT at a time in workgroup memory (vec4s) and shared by the
// RW rows; a tile's KT scores are computed first, then the running max/sum and outputs are
// rescaled once per tile (not once per key) and the KT weighted value rows added.
// Per key that is HD/4 + DV/4 vec4 loads for R·(HD + DV) FMAs; the scalar version
// loaded 2 floats per FMA of the scores and one per FMA of the outputs, which on lavapipe
// (a load with lane-varying address is a per-lane loop there) dominated the encoder.
// The per-tile code is generated unrolled in kernels.rs ({{...}}), so scores, query and
// accumulators are named registers, not indexed private arrays (kept in memory by
// lavapipe).
// Keys are processed in chunks of at most 256 per dispatch, the running softmax state
// kept in `st` between dispatches: in one dispatch over 500+ keys at head dim 64 lavapipe
// returned wrong rows (smaller dispatches are exact), and short dispatches also keep a
// real GPU's watchdog happy on long inputs.

struct P {
    tq: u32, tk: u32, heads: u32, scale: f32,
    q_off: u32, q_stride: u32, k_off: u32, k_stride: u32,
    v_off: u32, v_stride: u32, o_stride: u32, j_begin: u32,
    j_end: u32, first: u32, last: u32, _p0: u32,
}

const HD: u32 = {{HD}}u;
const HD4: u32 = {{HD4}}u;
const DV: u32 = {{DV}}u;
const DV4: u32 = {{DV4}}u;
const KT: u32 = {{KT}}u;
const RW: u32 = {{RW}}u;
const R: u32 = {{R}}u;
const NEG: f32 = -3.4028235e38;

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> kv: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> o: array<vec4<f32>>;
// Running (max, sum, -, -, DV outputs) per (row, head, column slice) between key chunks.
@group(0) @binding(4) var<storage, read_write> st: array<vec4<f32>>;

var<workgroup> ks: array<vec4<f32>, {{KS_LEN}}>; // [KT][HD4]
var<workgroup> vs: array<vec4<f32>, {{VS_LEN}}>; // [KT][DV4]

@compute @workgroup_size({{RW}}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
    let lid = lid3.x;
    let h = wid.y;
    let dv0 = wid.z * DV;
    let nz = HD / DV;
    // This thread's R rows: rbase, rbase + RW, ... (strided, so that neighbouring threads
    // read neighbouring query rows).
    let rbase = wid.x * RW * R + lid;
{{PROLOGUE}}
    let ntiles = (p.j_end - p.j_begin + KT - 1u) / KT;
    for (var t = 0u; t < ntiles; t++) {
        let j0 = p.j_begin + t * KT;
        for (var e = lid; e < KT * HD4; e += RW) {
            let j = j0 + e / HD4;
            var kval = vec4<f32>(0.0);
            if (j < p.j_end) { kval = kv[((p.k_off + j * p.k_stride + h * HD) >> 2u) + e % HD4]; }
            ks[e] = kval;
        }
        for (var e = lid; e < KT * DV4; e += RW) {
            let j = j0 + e / DV4;
            var vval = vec4<f32>(0.0);
            if (j < p.j_end) { vval = kv[((p.v_off + j * p.v_stride + h * HD + dv0) >> 2u) + e % DV4]; }
            vs[e] = vval;
        }
        workgroupBarrier();
        // Rows past tq compute on a zero query (finite, never stored).
        let nj = p.j_end - j0; // keys jj >= nj are past the chunk: masked
{{TILE}}
        workgroupBarrier();
    }
{{EPILOGUE}}
}
