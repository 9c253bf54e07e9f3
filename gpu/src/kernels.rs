//! GPU kernels (WGSL compute shaders in `src/shaders/`) and their host-side launchers.
//!
//! Every launcher records one dispatch into a [`Recorder`]; nothing is copied between
//! host and device here (stage inputs are uploaded and outputs downloaded by the
//! caller). Activations are f32 row-major `[rows, features]` like hark-engine's CPU
//! ops, which each kernel mirrors (same formula, f32 accumulation) and is tested
//! against in `gpu/tests/kernels.rs`.
//!
//! Weights stay in their stored precision on the device ([`GpuWeight`]): f32, f16 (two
//! per u32) or int8 (four per u32 plus per-row f32 scales); the matmul shader
//! dequantises while staging its weight tile. bf16 is widened to f32 at upload.

use hark_engine::{DType, Tensor};

use crate::context::{grid_1d, GpuContext, GpuTensor, Recorder};
use crate::GpuError;

const MATMUL: &str = include_str!("shaders/matmul.wgsl");
const GELU: &str = include_str!("shaders/gelu.wgsl");
const ELEMENTWISE: &str = include_str!("shaders/elementwise.wgsl");
const LAYER_NORM: &str = include_str!("shaders/layer_norm.wgsl");
const SOFTMAX: &str = include_str!("shaders/softmax.wgsl");
const IM2COL: &str = include_str!("shaders/im2col.wgsl");
const DEPTHWISE: &str = include_str!("shaders/depthwise_conv1d.wgsl");
const ATTENTION: &str = include_str!("shaders/attention.wgsl");
const ATTENTION_SCALAR: &str = include_str!("shaders/attention_scalar.wgsl");
const IM2COL2D: &str = include_str!("shaders/im2col2d.wgsl");
const REL_POS_SCORES: &str = include_str!("shaders/rel_pos_scores.wgsl");
const ATTN_APPLY: &str = include_str!("shaders/attn_apply.wgsl");

/// Storage format of a [`GpuWeight`] on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightFormat {
    /// f32 values.
    F32,
    /// IEEE half floats, two per 32-bit word.
    F16,
    /// Symmetric int8, four per 32-bit word, with one f32 scale per row.
    I8,
}

/// A weight matrix `[n, k]` (PyTorch linear layout, conv weights flattened to
/// `[c_out, c_in·k]`) resident on the device in its stored precision. Rows are padded
/// to `kp` (a multiple of 4) elements.
#[derive(Debug)]
pub struct GpuWeight {
    buf: wgpu::Buffer,
    scales: Option<wgpu::Buffer>,
    /// Rows (output features).
    pub n: usize,
    /// Columns (input features).
    pub k: usize,
    kp: usize,
    /// Storage format.
    pub format: WeightFormat,
}

impl GpuWeight {
    /// Uploads a rank-2 weight tensor (any layout; f32, f16, bf16 or int8 with scales).
    pub fn upload(ctx: &GpuContext, w: &Tensor) -> Result<GpuWeight, GpuError> {
        if w.rank() != 2 {
            return Err(GpuError::Shape {
                op: "upload weight",
                reason: format!("expected a rank-2 [n, k] matrix, got shape {:?}", w.shape()),
            });
        }
        let (n, k) = (w.dim(0), w.dim(1));
        let kp = k.div_ceil(4) * 4;
        let w = w.contiguous();
        let (bytes, format, scales): (Vec<u8>, _, _) = match w.dtype() {
            DType::F32 | DType::BF16 => {
                let v = w.to_f32_vec()?;
                let mut out = vec![0f32; n * kp];
                for r in 0..n {
                    out[r * kp..r * kp + k].copy_from_slice(&v[r * k..(r + 1) * k]);
                }
                (bytemuck::cast_slice(&out).to_vec(), WeightFormat::F32, None)
            }
            DType::F16 => {
                let v = w.as_slice::<half::f16>()?;
                let mut out = vec![half::f16::ZERO; n * kp];
                for r in 0..n {
                    out[r * kp..r * kp + k].copy_from_slice(&v[r * k..(r + 1) * k]);
                }
                (bytemuck::cast_slice(&out).to_vec(), WeightFormat::F16, None)
            }
            DType::I8 => {
                let v = w.as_slice::<i8>()?;
                let mut out = vec![0i8; n * kp];
                for r in 0..n {
                    out[r * kp..r * kp + k].copy_from_slice(&v[r * k..(r + 1) * k]);
                }
                let s = w.scales().ok_or(GpuError::Shape {
                    op: "upload weight",
                    reason: "int8 tensor without per-row scales".into(),
                })?;
                let s = s.to_f32_vec()?;
                if s.len() != n {
                    return Err(GpuError::Shape {
                        op: "upload weight",
                        reason: format!("int8 scales have {} values for {n} rows", s.len()),
                    });
                }
                let sb = ctx.upload_bytes("weight scales", bytemuck::cast_slice(&s));
                (
                    bytemuck::cast_slice(&out).to_vec(),
                    WeightFormat::I8,
                    Some(sb),
                )
            }
        };
        Ok(GpuWeight {
            buf: ctx.upload_bytes("weight", &bytes),
            scales,
            n,
            k,
            kp,
            format,
        })
    }

    /// Bytes held on the device.
    pub fn device_bytes(&self) -> u64 {
        self.buf.size() + self.scales.as_ref().map_or(0, |s| s.size())
    }
}

/// Activation fused into the matmul epilogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// None.
    None,
    /// Exact (erf) GELU.
    Gelu,
    /// ReLU `max(x, 0)`.
    Relu,
    /// SiLU / Swish `x·sigmoid(x)`.
    Silu,
}

impl Act {
    fn code(self) -> u32 {
        match self {
            Act::None => 0,
            Act::Gelu => 1,
            Act::Relu => 2,
            Act::Silu => 3,
        }
    }
}

/// The matmul shader for one weight format; `x_vec4` reads x as vec4s (needs `k` and
/// `lda` multiples of 4), otherwise four scalars per vec4. The register-blocked inner
/// step and the epilogue are generated here, unrolled, so that the 64 accumulators are
/// named registers (see the comment in `shaders/matmul.wgsl`).
fn matmul_source(format: WeightFormat, x_vec4: bool) -> String {
    let (x_decl, x_load) = if x_vec4 {
        (
            "@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;",
            "fn load_x(gr: u32, gk: u32) -> vec4<f32> {\n\
               if (gr < p.m && gk < p.k) { return x[(gr * p.lda + gk) >> 2u]; }\n\
               return vec4<f32>(0.0);\n\
             }",
        )
    } else {
        (
            "@group(0) @binding(1) var<storage, read> x: array<f32>;",
            "fn load_x(gr: u32, gk: u32) -> vec4<f32> {\n\
               var v = vec4<f32>(0.0);\n\
               if (gr >= p.m) { return v; }\n\
               let b = gr * p.lda + gk;\n\
               for (var j = 0u; j < 4u; j++) { if (gk + j < p.k) { v[j] = x[b + j]; } }\n\
               return v;\n\
             }",
        )
    };
    let (w_decl, w_load) = match format {
        WeightFormat::F32 => (
            "@group(0) @binding(4) var<storage, read> w: array<vec4<f32>>;",
            "fn load_w(gn: u32, gk: u32) -> vec4<f32> {\n\
               if (gn < p.n && gk < p.kp) { return w[(gn * p.kp + gk) >> 2u]; }\n\
               return vec4<f32>(0.0);\n\
             }\n\
             fn w_scale(n: u32) -> f32 { return 1.0; }",
        ),
        WeightFormat::F16 => (
            // Four halves (8 bytes) per element: rows are padded to a multiple of 4.
            "@group(0) @binding(4) var<storage, read> w: array<vec2<u32>>;",
            "fn load_w(gn: u32, gk: u32) -> vec4<f32> {\n\
               if (gn < p.n && gk < p.kp) {\n\
                 let u = w[(gn * p.kp + gk) >> 2u];\n\
                 return vec4<f32>(unpack2x16float(u.x), unpack2x16float(u.y));\n\
               }\n\
               return vec4<f32>(0.0);\n\
             }\n\
             fn w_scale(n: u32) -> f32 { return 1.0; }",
        ),
        WeightFormat::I8 => (
            "@group(0) @binding(4) var<storage, read> w: array<u32>;\n\
             @group(0) @binding(5) var<storage, read> wscale: array<f32>;",
            "fn load_w(gn: u32, gk: u32) -> vec4<f32> {\n\
               if (gn < p.n && gk < p.kp) {\n\
                 let s = bitcast<i32>(w[(gn * p.kp + gk) >> 2u]);\n\
                 let v = vec4<i32>(s) << vec4<u32>(24u, 16u, 8u, 0u);\n\
                 return vec4<f32>(v >> vec4<u32>(24u));\n\
               }\n\
               return vec4<f32>(0.0);\n\
             }\n\
             fn w_scale(n: u32) -> f32 { return wscale[n]; }",
        ),
    };
    let mut acc = String::new();
    let mut inner = String::new();
    let mut epi = String::new();
    for r in 0..8 {
        inner += &format!("            let a{r} = xs[(ty + {}u) * BK4 + q];\n", 8 * r);
        inner += &format!("            let b{r} = ws[(tx + {}u) * BK4 + q];\n", 8 * r);
    }
    for r in 0..8 {
        for h in 0..2 {
            acc += &format!("    var acc{r}_{h} = vec4<f32>(0.0);\n");
            let d = |j: usize| format!("dot(a{r}, b{})", 4 * h + j);
            inner += &format!(
                "            acc{r}_{h} += vec4<f32>({}, {}, {}, {});\n",
                d(0),
                d(1),
                d(2),
                d(3)
            );
            for j in 0..4 {
                epi += &format!(
                    "    epilogue(row0 + ty + {}u, col0 + tx + {}u, acc{r}_{h}[{j}]);\n",
                    8 * r,
                    8 * (4 * h + j)
                );
            }
        }
    }
    MATMUL
        .replace("{{X_DECL}}", x_decl)
        .replace("{{X_LOAD}}", x_load)
        .replace("{{W_DECL}}", w_decl)
        .replace("{{W_LOAD}}", w_load)
        .replace("{{ACC_DECL}}", &acc)
        .replace("{{INNER}}", &inner)
        .replace("{{EPILOGUE}}", &epi)
        .replace("{{GELU}}", GELU)
}

/// The vec4 attention shader for head dim `hd` (multiple of 4), `dv` output columns per
/// workgroup, `rw` threads per workgroup and `rows` query rows per thread; the per-tile step is generated unrolled over the
/// KT keys of a tile and the vec4s of a row (see `shaders/attention.wgsl`).
/// Query rows per thread of the vec4 attention kernel. One on a GPU (a row's query and
/// outputs already take 2·hd registers). Four on a software device (lavapipe), where
/// registers spill cheaply to the stack but every workgroup-memory load is a per-lane
/// loop, so sharing each key/value load between four rows is what counts (tiny.en
/// window: 1 row 3.1 s, 2 rows 1.7 s, 3 rows 1.4 s, 4 rows 1.0 s per attention call,
/// under load). `HARK_GPU_ATT_ROWS=1..4` overrides, for benchmarks.
fn att_rows(software: bool) -> usize {
    let default = if software { 4 } else { 1 };
    std::env::var("HARK_GPU_ATT_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|r| (1..=4).contains(r))
        .unwrap_or(default)
}

fn attention_source(hd: usize, dv: usize, rw: usize, rows: usize) -> String {
    const KT: usize = 16;
    let (hd4, dv4) = (hd / 4, dv / 4);
    let mut pro = String::new();
    let mut epi = String::new();
    for r in 0..rows {
        pro += &format!(
            "    let row{r} = rbase + {}u;\n    let live{r} = row{r} < p.tq;\n    \
             let sb{r} = ((row{r} * p.heads + h) * nz + wid.z) * (DV4 + 1u);\n    \
             var m{r} = NEG;\n    var l{r} = 0.0;\n",
            r * rw
        );
        for i in 0..hd4 {
            pro += &format!("    var q{r}_{i} = vec4<f32>(0.0);\n");
        }
        for i in 0..dv4 {
            pro += &format!("    var o{r}_{i} = vec4<f32>(0.0);\n");
        }
        pro += &format!(
            "    if (live{r}) {{\n        \
             let qb = (p.q_off + row{r} * p.q_stride + h * HD) >> 2u;\n"
        );
        for i in 0..hd4 {
            pro += &format!("        q{r}_{i} = q[qb + {i}u] * p.scale;\n");
        }
        pro += &format!(
            "        if (p.first == 0u) {{\n            let ml = st[sb{r}];\n            \
             m{r} = ml.x;\n            l{r} = ml.y;\n"
        );
        for i in 0..dv4 {
            pro += &format!("            o{r}_{i} = st[sb{r} + {}u];\n", i + 1);
        }
        pro += "        }\n    }\n";
        epi += &format!(
            "    if (live{r} && p.last == 0u) {{\n        \
             st[sb{r}] = vec4<f32>(m{r}, l{r}, 0.0, 0.0);\n"
        );
        for i in 0..dv4 {
            epi += &format!("        st[sb{r} + {}u] = o{r}_{i};\n", i + 1);
        }
        epi += &format!(
            "    }}\n    if (live{r} && p.last != 0u) {{\n        let inv = 1.0 / l{r};\n        \
             let ob = (row{r} * p.o_stride + h * HD + dv0) >> 2u;\n"
        );
        for i in 0..dv4 {
            epi += &format!("        o[ob + {i}u] = o{r}_{i} * inv;\n");
        }
        epi += "    }\n";
    }
    // Scores: each key vec4 is loaded once and used by every row.
    let mut tile = String::new();
    for j in 0..KT {
        for i in 0..hd4 {
            tile += &format!("        let k{j}_{i} = ks[{}u];\n", j * hd4 + i);
        }
        for r in 0..rows {
            let dots: Vec<String> = (0..hd4)
                .map(|i| format!("dot(q{r}_{i}, k{j}_{i})"))
                .collect();
            tile += &format!(
                "        let s{r}_{j} = select({}, NEG, nj <= {j}u);\n",
                dots.join(" + ")
            );
        }
    }
    // Online softmax, once per tile and row.
    for r in 0..rows {
        tile += &format!("        var mx{r} = m{r};\n");
        for j in 0..KT {
            tile += &format!("        mx{r} = max(mx{r}, s{r}_{j});\n");
        }
        tile += &format!("        let corr{r} = exp(m{r} - mx{r});\n");
        let mut sum = Vec::new();
        for j in 0..KT {
            tile += &format!("        let w{r}_{j} = exp(s{r}_{j} - mx{r});\n");
            sum.push(format!("w{r}_{j}"));
        }
        tile += &format!("        l{r} = l{r} * corr{r} + ({});\n", sum.join(" + "));
        tile += &format!("        m{r} = mx{r};\n");
        for i in 0..dv4 {
            tile += &format!("        o{r}_{i} *= corr{r};\n");
        }
    }
    // Weighted values: each value vec4 is loaded once and used by every row.
    for j in 0..KT {
        for i in 0..dv4 {
            tile += &format!("        let v{j}_{i} = vs[{}u];\n", j * dv4 + i);
            for r in 0..rows {
                tile +=
                    &format!("        o{r}_{i} = fma(vec4<f32>(w{r}_{j}), v{j}_{i}, o{r}_{i});\n");
            }
        }
    }
    ATTENTION
        .replace("{{HD}}", &hd.to_string())
        .replace("{{HD4}}", &hd4.to_string())
        .replace("{{DV}}", &dv.to_string())
        .replace("{{DV4}}", &dv4.to_string())
        .replace("{{KT}}", &KT.to_string())
        .replace("{{RW}}", &rw.to_string())
        .replace("{{R}}", &rows.to_string())
        .replace("{{KS_LEN}}", &(KT * hd4).to_string())
        .replace("{{VS_LEN}}", &(KT * dv4).to_string())
        .replace("{{PROLOGUE}}", &pro)
        .replace("{{TILE}}", &tile)
        .replace("{{EPILOGUE}}", &epi)
}

fn elementwise_source(extra: &str, body: &str) -> String {
    ELEMENTWISE
        .replace("{{EXTRA_DECL}}", extra)
        .replace("{{BODY}}", body)
        .replace("{{GELU}}", GELU)
}

fn check(op: &'static str, what: &str, t: &GpuTensor, need: usize) -> Result<(), GpuError> {
    if t.len < need {
        return Err(GpuError::Shape {
            op,
            reason: format!("buffer {what} has {} values, needs {need}", t.len),
        });
    }
    Ok(())
}

fn u(v: usize) -> u32 {
    v as u32
}

/// Query/key/value row views for [`Recorder::attention`]: row `r`, head `h` starts at
/// `offset + r·stride + h·head_dim` of the buffer.
#[derive(Debug, Clone, Copy)]
pub struct RowView<'a> {
    /// The buffer.
    pub buf: &'a GpuTensor,
    /// Offset of row 0 (in f32 values).
    pub offset: usize,
    /// Distance between rows (in f32 values).
    pub stride: usize,
}

impl Recorder<'_> {
    /// `out[m, n] (+)= act(x[m, k] · Wᵀ + bias)`; with `accumulate` the result is added
    /// to what `out` holds (a fused residual connection).
    #[allow(clippy::too_many_arguments)]
    pub fn linear(
        &mut self,
        x: &GpuTensor,
        m: usize,
        w: &GpuWeight,
        bias: Option<&GpuTensor>,
        out: &GpuTensor,
        act: Act,
        accumulate: bool,
    ) -> Result<(), GpuError> {
        self.linear_scaled(x, m, w, bias, out, act, 1.0, accumulate)
    }

    /// `out[m, n] (+)= alpha · act(x[m, k] · Wᵀ + bias)`: [`Recorder::linear`] with a
    /// scale in the epilogue (the conformer's half-step feed-forward residual
    /// `x + ½·FFN(x)`, the √d input scale).
    #[allow(clippy::too_many_arguments)]
    pub fn linear_scaled(
        &mut self,
        x: &GpuTensor,
        m: usize,
        w: &GpuWeight,
        bias: Option<&GpuTensor>,
        out: &GpuTensor,
        act: Act,
        alpha: f32,
        accumulate: bool,
    ) -> Result<(), GpuError> {
        const OP: &str = "linear";
        check(OP, "x", x, m * w.k)?;
        check(OP, "out", out, m * w.n)?;
        if let Some(b) = bias {
            check(OP, "bias", b, w.n)?;
        }
        // x as vec4s when every row starts 16-byte aligned (k is the row length).
        let x_vec4 = w.k.is_multiple_of(4);
        let key = format!("matmul_{:?}_x{}", w.format, if x_vec4 { 4 } else { 1 });
        let pipe = self
            .ctx
            .pipeline(&key, || matmul_source(w.format, x_vec4))?;
        let params = [
            u(m),
            u(w.n),
            u(w.k),
            u(w.kp),
            u(w.k),
            u(w.n),
            bias.is_some() as u32,
            act.code(),
            accumulate as u32,
            alpha.to_bits(),
        ];
        let dummy = &self.ctx.dummy;
        let bias_buf = bias.map_or(dummy, |b| &*b.buf);
        let mut bufs: Vec<&wgpu::Buffer> = vec![&x.buf, bias_buf, &out.buf, &w.buf];
        if let Some(s) = &w.scales {
            bufs.push(s);
        }
        let groups = [u(w.n.div_ceil(64)), u(m.div_ceil(64)), 1];
        if groups[1] > 65535 {
            return Err(GpuError::Shape {
                op: OP,
                reason: format!("{m} rows exceed the grid limit"),
            });
        }
        self.dispatch(&pipe, &params, &bufs, groups);
        Ok(())
    }

    /// LayerNorm of `rows` rows of width `dim` from `x` into `out` (biased variance).
    #[allow(clippy::too_many_arguments)]
    pub fn layer_norm(
        &mut self,
        x: &GpuTensor,
        rows: usize,
        dim: usize,
        gamma: &GpuTensor,
        beta: &GpuTensor,
        eps: f32,
        out: &GpuTensor,
    ) -> Result<(), GpuError> {
        const OP: &str = "layer_norm";
        check(OP, "x", x, rows * dim)?;
        check(OP, "out", out, rows * dim)?;
        check(OP, "gamma", gamma, dim)?;
        check(OP, "beta", beta, dim)?;
        let pipe = self.ctx.pipeline("layer_norm", || LAYER_NORM.to_string())?;
        let params = [u(rows), u(dim), eps.to_bits()];
        self.dispatch(
            &pipe,
            &params,
            &[&x.buf, &gamma.buf, &beta.buf, &out.buf],
            grid_1d(rows),
        );
        Ok(())
    }

    /// Row-wise softmax in place over `rows` rows of `cols` values.
    pub fn softmax(&mut self, x: &GpuTensor, rows: usize, cols: usize) -> Result<(), GpuError> {
        check("softmax", "x", x, rows * cols)?;
        let pipe = self.ctx.pipeline("softmax", || SOFTMAX.to_string())?;
        self.dispatch(&pipe, &[u(rows), u(cols)], &[&x.buf], grid_1d(rows));
        Ok(())
    }

    fn unary(&mut self, key: &str, body: &str, x: &GpuTensor, n: usize) -> Result<(), GpuError> {
        check("elementwise", "x", x, n)?;
        let pipe = self.ctx.pipeline(key, || elementwise_source("", body))?;
        self.dispatch(&pipe, &[u(n)], &[&x.buf], grid_1d(n.div_ceil(256)));
        Ok(())
    }

    /// Exact GELU of the first `n` values, in place.
    pub fn gelu(&mut self, x: &GpuTensor, n: usize) -> Result<(), GpuError> {
        self.unary("gelu", "a[i] = gelu(a[i]);", x, n)
    }

    /// SiLU/Swish `x·sigmoid(x)` of the first `n` values, in place.
    pub fn silu(&mut self, x: &GpuTensor, n: usize) -> Result<(), GpuError> {
        self.unary("silu", "let v = a[i]; a[i] = v * sigmoid(v);", x, n)
    }

    /// ReLU `max(x, 0)` of the first `n` values, in place.
    pub fn relu(&mut self, x: &GpuTensor, n: usize) -> Result<(), GpuError> {
        self.unary("relu", "a[i] = max(a[i], 0.0);", x, n)
    }

    /// `a[..n] += b[..n]`.
    pub fn add(&mut self, a: &GpuTensor, b: &GpuTensor, n: usize) -> Result<(), GpuError> {
        check("add", "a", a, n)?;
        check("add", "b", b, n)?;
        let pipe = self.ctx.pipeline("add", || {
            elementwise_source(
                "@group(0) @binding(2) var<storage, read> b: array<f32>;",
                "a[i] += b[i];",
            )
        })?;
        self.dispatch(&pipe, &[u(n)], &[&a.buf, &b.buf], grid_1d(n.div_ceil(256)));
        Ok(())
    }

    /// GLU over the last dimension: `x` `[rows, 2c]` → `out[r, i] = x[r, i]·σ(x[r, c+i])`.
    pub fn glu(
        &mut self,
        x: &GpuTensor,
        rows: usize,
        c: usize,
        out: &GpuTensor,
    ) -> Result<(), GpuError> {
        check("glu", "x", x, rows * 2 * c)?;
        check("glu", "out", out, rows * c)?;
        let pipe = self.ctx.pipeline("glu", || {
            elementwise_source(
                "@group(0) @binding(2) var<storage, read> b: array<f32>;",
                "let r = i / p.c; let j = i % p.c;\n    \
                 a[i] = b[r * 2u * p.c + j] * sigmoid(b[r * 2u * p.c + p.c + j]);",
            )
        })?;
        let n = rows * c;
        self.dispatch(
            &pipe,
            &[u(n), u(c)],
            &[&out.buf, &x.buf],
            grid_1d(n.div_ceil(256)),
        );
        Ok(())
    }

    /// im2col for a 1-D convolution: `col[t, c·k + j] = x(t·stride + j - pad, c)` where
    /// `x(ti, c) = x[ti·t_stride + c·c_stride]` (zero outside `0..t_in`). Returns t_out.
    #[allow(clippy::too_many_arguments)]
    pub fn im2col(
        &mut self,
        x: &GpuTensor,
        t_in: usize,
        c_in: usize,
        (t_stride, c_stride): (usize, usize),
        k: usize,
        stride: usize,
        pad: usize,
        col: &GpuTensor,
    ) -> Result<usize, GpuError> {
        const OP: &str = "im2col";
        if stride == 0 || t_in + 2 * pad < k {
            return Err(GpuError::Shape {
                op: OP,
                reason: format!("stride {stride}, {t_in} frames, kernel {k}, padding {pad}"),
            });
        }
        let t_out = (t_in + 2 * pad - k) / stride + 1;
        check(
            OP,
            "x",
            x,
            (t_in - 1) * t_stride + (c_in - 1) * c_stride + 1,
        )?;
        check(OP, "col", col, t_out * c_in * k)?;
        let pipe = self.ctx.pipeline("im2col", || IM2COL.to_string())?;
        let params = [
            u(t_out),
            u(c_in),
            u(k),
            u(stride),
            u(pad),
            u(t_in),
            u(t_stride),
            u(c_stride),
        ];
        self.dispatch(
            &pipe,
            &params,
            &[&x.buf, &col.buf],
            grid_1d((t_out * c_in * k).div_ceil(256)),
        );
        Ok(t_out)
    }

    /// Depthwise conv1d, stride 1: `x` `[t_in, c]`, `w` `[c, k]`, zero padding
    /// `pad_left`/`pad_right`; writes `out` `[t_in + pad_left + pad_right - k + 1, c]`.
    #[allow(clippy::too_many_arguments)]
    pub fn depthwise_conv1d(
        &mut self,
        x: &GpuTensor,
        t_in: usize,
        c: usize,
        w: &GpuTensor,
        k: usize,
        bias: Option<&GpuTensor>,
        (pad_left, pad_right): (usize, usize),
        out: &GpuTensor,
    ) -> Result<usize, GpuError> {
        const OP: &str = "depthwise_conv1d";
        if k == 0 || t_in + pad_left + pad_right < k {
            return Err(GpuError::Shape {
                op: OP,
                reason: format!("{t_in} frames shorter than the kernel {k}"),
            });
        }
        let t_out = t_in + pad_left + pad_right + 1 - k;
        check(OP, "x", x, t_in * c)?;
        check(OP, "w", w, c * k)?;
        check(OP, "out", out, t_out * c)?;
        let pipe = self
            .ctx
            .pipeline("depthwise_conv1d", || DEPTHWISE.to_string())?;
        let params = [
            u(t_out),
            u(c),
            u(k),
            u(pad_left),
            u(t_in),
            bias.is_some() as u32,
        ];
        let bias_buf = bias.map_or(&self.ctx.dummy, |b| &*b.buf);
        self.dispatch(
            &pipe,
            &params,
            &[&x.buf, &w.buf, bias_buf, &out.buf],
            grid_1d((t_out * c).div_ceil(256)),
        );
        Ok(t_out)
    }

    /// Fused multi-head attention `out[tq, heads·hd] = softmax(Q·Kᵀ·scale)·V` per head.
    /// `k` and `v` must view the same buffer (e.g. a fused QKV or KV projection); `q`
    /// may view it too. `scale` is usually `1/sqrt(hd)`.
    #[allow(clippy::too_many_arguments)]
    pub fn attention(
        &mut self,
        q: RowView<'_>,
        tq: usize,
        k: RowView<'_>,
        v: RowView<'_>,
        tk: usize,
        heads: usize,
        hd: usize,
        scale: f32,
        out: &GpuTensor,
    ) -> Result<(), GpuError> {
        const OP: &str = "attention";
        if !std::sync::Arc::ptr_eq(&k.buf.buf, &v.buf.buf) {
            return Err(GpuError::Shape {
                op: OP,
                reason: "keys and values must be views of one buffer".into(),
            });
        }
        if hd == 0 || hd > 128 || tk == 0 {
            return Err(GpuError::Shape {
                op: OP,
                reason: format!("head dim {hd} (1..=128) and {tk} keys (>= 1)"),
            });
        }
        let d = heads * hd;
        let last = |r: RowView<'_>, n: usize| r.offset + (n - 1) * r.stride + d;
        check(OP, "q", q.buf, last(q, tq.max(1)))?;
        check(OP, "k", k.buf, last(k, tk))?;
        check(OP, "v", v.buf, last(v, tk))?;
        check(OP, "out", out, tq * d)?;
        // Output columns per workgroup: the largest divisor of hd that is <= 64 (bounds the
        // per-thread accumulator for head dims above 64).
        let dv = (1..=hd.min(64))
            .rev()
            .find(|v| hd.is_multiple_of(*v))
            .unwrap_or(1);
        let nz = hd / dv;
        let aligned = [
            hd, dv, q.offset, q.stride, k.offset, k.stride, v.offset, v.stride,
        ]
        .iter()
        .all(|x| x.is_multiple_of(4));
        let (pipe, rw, state) = if aligned {
            let rw = if hd <= 64 { 32 } else { 16 };
            let rows = att_rows(self.ctx.adapter().is_software);
            let key = format!("attention_v4_hd{hd}_r{rows}");
            let pipe = self
                .ctx
                .pipeline(&key, || attention_source(hd, dv, rw, rows))?;
            (pipe, rw * rows, self.ctx.zeros(tq * heads * nz * (dv + 4)))
        } else {
            // Workgroup memory: RW·HD (queries) + 2·8·HD (key/value tile) floats <= 16 KiB.
            let rw = if hd <= 64 { 32 } else { 16 };
            let key = format!("attention_hd{hd}");
            let pipe = self.ctx.pipeline(&key, || {
                ATTENTION_SCALAR
                    .replace("{{HD}}", &hd.to_string())
                    .replace("{{RW}}", &rw.to_string())
                    .replace("{{DV}}", &dv.to_string())
                    .replace("{{RW_HD}}", &(rw * hd).to_string())
                    .replace("{{KT_HD}}", &(8 * hd).to_string())
            })?;
            (pipe, rw, self.ctx.zeros(tq * heads * nz * (dv + 2)))
        };
        const CHUNK: usize = 256;
        let mut j0 = 0;
        while j0 < tk {
            let j1 = (j0 + CHUNK).min(tk);
            let params = [
                u(tq),
                u(tk),
                u(heads),
                scale.to_bits(),
                u(q.offset),
                u(q.stride),
                u(k.offset),
                u(k.stride),
                u(v.offset),
                u(v.stride),
                u(d),
                u(j0),
                u(j1),
                (j0 == 0) as u32,
                (j1 == tk) as u32,
            ];
            self.dispatch(
                &pipe,
                &params,
                &[&q.buf.buf, &k.buf.buf, &out.buf, &state.buf],
                [u(tq.div_ceil(rw)), u(heads), u(nz)],
            );
            j0 = j1;
        }
        Ok(())
    }

    /// im2col for a 2-D convolution without padding on a channel-last map `x`
    /// `[t, f, c_in]`: `col[(i·fo + o), ch·k·k + a·k + b] = x[(s·i + a)·f + s·o + b, ch]`.
    /// Followed by [`Recorder::linear`] with the `[c_out, c_in·k·k]` weight it gives the
    /// channel-last `[(to·fo), c_out]` output. Returns `(to, fo)`.
    #[allow(clippy::too_many_arguments)]
    pub fn im2col2d(
        &mut self,
        x: &GpuTensor,
        (t, f, c_in): (usize, usize, usize),
        k: usize,
        stride: usize,
        col: &GpuTensor,
    ) -> Result<(usize, usize), GpuError> {
        const OP: &str = "im2col2d";
        if stride == 0 || k == 0 || t < k || f < k {
            return Err(GpuError::Shape {
                op: OP,
                reason: format!("{t}x{f} map, kernel {k}, stride {stride}"),
            });
        }
        let (to, fo) = ((t - k) / stride + 1, (f - k) / stride + 1);
        check(OP, "x", x, t * f * c_in)?;
        let n = to * fo * c_in * k * k;
        check(OP, "col", col, n)?;
        let pipe = self.ctx.pipeline("im2col2d", || IM2COL2D.to_string())?;
        let params = [u(to), u(fo), u(c_in), u(k), u(stride), u(f)];
        self.dispatch(
            &pipe,
            &params,
            &[&x.buf, &col.buf],
            grid_1d(n.div_ceil(256)),
        );
        Ok((to, fo))
    }

    /// Relative-position multi-head self-attention over `t` frames (ESPnet/FireRedASR
    /// `RelPositionMultiHeadedAttention`, hark-engine's `attention` with a `RelPosTerm`):
    /// `out[i, h] = Σ_j softmax_j(scale·((q_i + u_h)·k_j + (q_i + v_h)·p_r))·v_j` with
    /// `r = (np-1)/2 + j - i` when `shift` (`np = 2t-1` rows of `pos`) and `r = j`
    /// otherwise (`np >= t`); keys `j >= valid` are masked (`valid >= 1`). `q`, `k`, `v`,
    /// `out` are `[t, heads·hd]`, `pos` `[np, heads·hd]`, `bias_u`/`bias_v`
    /// `[heads·hd]`; `scores` is scratch of at least `heads·t·t` values.
    #[allow(clippy::too_many_arguments)]
    pub fn rel_pos_attention(
        &mut self,
        (q, k, v): (&GpuTensor, &GpuTensor, &GpuTensor),
        pos: &GpuTensor,
        np: usize,
        (bias_u, bias_v): (&GpuTensor, &GpuTensor),
        (t, heads, hd): (usize, usize, usize),
        (valid, shift, scale): (usize, bool, f32),
        scores: &GpuTensor,
        out: &GpuTensor,
    ) -> Result<(), GpuError> {
        const OP: &str = "rel_pos_attention";
        let d = heads * hd;
        let np_ok = if shift { np == 2 * t - 1 } else { np >= t };
        if t == 0 || d == 0 || valid == 0 || valid > t || !np_ok {
            return Err(GpuError::Shape {
                op: OP,
                reason: format!(
                    "{t} frames ({valid} valid), {heads} heads x {hd}, {np} position rows{}",
                    if shift { " (rel_shift needs 2t-1)" } else { "" }
                ),
            });
        }
        for (name, b, need) in [
            ("q", q, t * d),
            ("k", k, t * d),
            ("v", v, t * d),
            ("pos", pos, np * d),
            ("bias_u", bias_u, d),
            ("bias_v", bias_v, d),
            ("scores", scores, heads * t * t),
            ("out", out, t * d),
        ] {
            check(OP, name, b, need)?;
        }
        let pipe = self
            .ctx
            .pipeline("rel_pos_scores", || REL_POS_SCORES.to_string())?;
        let params = [
            u(t),
            u(heads),
            u(hd),
            u(np),
            u(valid),
            shift as u32,
            scale.to_bits(),
        ];
        self.dispatch(
            &pipe,
            &params,
            &[
                &q.buf,
                &k.buf,
                &pos.buf,
                &bias_u.buf,
                &bias_v.buf,
                &scores.buf,
            ],
            grid_1d((heads * t * t).div_ceil(256)),
        );
        self.softmax(scores, heads * t, t)?;
        let pipe = self.ctx.pipeline("attn_apply", || ATTN_APPLY.to_string())?;
        self.dispatch(
            &pipe,
            &[u(t), u(t), u(heads), u(hd)],
            &[&scores.buf, &v.buf, &out.buf],
            grid_1d((t * d).div_ceil(256)),
        );
        Ok(())
    }
}

// --- Accessors for kernels defined in other modules (the Whisper decoder's embedding
// lookup reads the token-embedding weight in its stored layout). ---

impl GpuWeight {
    /// The weight's device buffers (values, per-row scales for int8) and padded row
    /// length `kp`.
    pub(crate) fn raw(&self) -> (&wgpu::Buffer, Option<&wgpu::Buffer>, usize) {
        (&self.buf, self.scales.as_ref(), self.kp)
    }
}
