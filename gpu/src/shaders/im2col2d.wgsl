// im2col for a 2-D convolution without padding (dilation 1) on a channel-last map
// x[t, f, c_in]: col[(i·fo + o), ch·k·k + a·k + b] = x[(s·i + a)·f + s·o + b, ch], so that
// conv2d = col · W[c_out, c_in·k·k]ᵀ on the tiled GEMM and the result is channel-last
// [(to·fo), c_out] again (PyTorch weight order [c_out, c_in, kh, kw] flattened). This is
// the conformer subsampling's formulation (models/src/conformer_aed/encoder.rs `im2col`).

struct P { to: u32, fo: u32, cin: u32, k: u32, s: u32, f: u32, _p0: u32, _p1: u32 }

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> col: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wid.y * nw.x + wid.x) * 256u + lid.x;
    let kk = p.k * p.k;
    let width = p.cin * kk;
    if (i >= p.to * p.fo * width) { return; }
    let pix = i / width;
    let r = i % width;
    let ch = r / kk;
    let a = (r % kk) / p.k;
    let b = r % p.k;
    let ti = pix / p.fo;
    let fi = pix % p.fo;
    col[i] = x[((p.s * ti + a) * p.f + p.s * fi + b) * p.cin + ch];
}
