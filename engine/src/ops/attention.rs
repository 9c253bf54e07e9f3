//! Fused scaled-dot-product attention over `[T, heads·head_dim]` layouts.
//!
//! For every (query row, head) the scores against the keys are produced in blocks of
//! [`KEY_BLOCK`] keys on the stack and folded into a running ("online") softmax: running
//! max `m`, running sum `l` and an f32 accumulator of `head_dim` values that is rescaled
//! by `exp(m_old - m_new)` whenever the max grows (Milakov & Gimelshein 2018, as in
//! FlashAttention). No `[T, T]` score matrix is ever materialised and the op never
//! allocates; (row tile, head) pairs run in parallel on the shared pool.
//!
//! Two paths: many query rows over plainly strided K/V (encoders) use small GEMMs per
//! (64-row tile, 256-key block) from the kernel table (relative-position term included);
//! few query rows (decoder steps, where a GEMM's packing buffers may be heap-allocated)
//! and index-table views (KV cache beams) use a row-group loop over key blocks with the
//! kernel table's register-tiled `attn_scores` / `attn_pv`.
//!
//! Keys and values are read through [`Rows`] views: a row stride and column offset (so a
//! fused QKV projection output can be used in place) and, optionally, an index table of
//! physical rows — this is how a beam reads its history from the KV cache without a copy.
//!
//! Optional terms: an additive mask `[tq, tk]`, causal masking (query `i` sits at
//! absolute position `tk - tq + i`), and ESPnet's relative-position term
//! (`espnet/nets/pytorch_backend/transformer/attention.py`,
//! `RelPositionMultiHeadedAttention`): `score = ((q + u)·k + (q + v)·p) · scale`, where `p`
//! is the projected relative encoding row — with `rel_shift` row `c - (i_abs - j)`
//! (`c = (P-1)/2`, `P = 2T-1` rows from `rel_positional_encoding`), without it row `j`
//! (legacy variant).

use crate::error::{check_len, Error, Result};
use crate::kernels::{self, MatMut, MatRef};
use crate::ops::SharedMut;
use crate::threads;

/// Keys scored per block of the online softmax.
pub const KEY_BLOCK: usize = 64;
/// Largest supported head dimension (stack accumulator size).
pub const MAX_HEAD_DIM: usize = 256;

/// A read-only view of rows of an f32 matrix: row `j` starts at
/// `index[j] · stride + col` (or `j · stride + col` without index table).
#[derive(Debug, Clone, Copy)]
pub struct Rows<'a> {
    data: &'a [f32],
    len: usize,
    stride: usize,
    col: usize,
    index: Option<&'a [u32]>,
}

impl<'a> Rows<'a> {
    /// `len` consecutive rows with row stride `stride` (elements).
    pub fn new(data: &'a [f32], len: usize, stride: usize) -> Self {
        Rows {
            data,
            len,
            stride,
            col: 0,
            index: None,
        }
    }

    /// Rows at physical positions `index[j]` (row stride `stride`).
    pub fn indexed(data: &'a [f32], stride: usize, index: &'a [u32]) -> Self {
        Rows {
            data,
            len: index.len(),
            stride,
            col: 0,
            index: Some(index),
        }
    }

    /// The same rows starting at column `col` (e.g. the K part of a fused QKV output).
    pub fn with_col(mut self, col: usize) -> Self {
        self.col = col;
        self
    }

    /// The first `len` rows (all of them if there are fewer), e.g. the positions a
    /// prompt token may attend to in a cache that already holds the whole prompt.
    pub fn prefix(mut self, len: usize) -> Self {
        self.len = self.len.min(len);
        if let Some(ix) = self.index {
            self.index = Some(&ix[..self.len]);
        }
        self
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// `width` values of row `j`.
    #[inline]
    pub fn row(&self, j: usize, width: usize) -> &'a [f32] {
        let p = match self.index {
            Some(ix) => ix[j] as usize,
            None => j,
        };
        let s = p * self.stride + self.col;
        &self.data[s..s + width]
    }

    /// Checks that every row has `width` readable values.
    pub fn check(&self, op: &'static str, arg: &'static str, width: usize) -> Result<()> {
        if self.len == 0 {
            return Ok(());
        }
        let max_row = match self.index {
            Some(ix) => ix.iter().copied().max().unwrap_or(0) as usize,
            None => self.len - 1,
        };
        let need = max_row * self.stride + self.col + width;
        if need > self.data.len() || (self.len > 1 && self.stride < width && self.index.is_none()) {
            return Err(Error::BufferLength {
                op,
                arg,
                expected: need,
                got: self.data.len(),
            });
        }
        Ok(())
    }
}

/// ESPnet relative-position term.
#[derive(Debug, Clone, Copy)]
pub struct RelPosTerm<'a> {
    /// Projected relative encodings (`linear_pos(pos_emb)`), rows of `heads·head_dim`.
    pub pos: Rows<'a>,
    /// `pos_bias_u` flattened `[heads·head_dim]` (added to q for the content term).
    pub bias_u: &'a [f32],
    /// `pos_bias_v` flattened `[heads·head_dim]` (added to q for the position term).
    pub bias_v: &'a [f32],
    /// Apply `rel_shift` (new-style `RelPositionalEncoding`, `2T-1` rows); `false` for the
    /// legacy encoding (row `j` for key `j`).
    pub shift: bool,
}

/// Attention options.
#[derive(Debug, Clone, Copy)]
pub struct AttentionOpts<'a> {
    /// Number of heads.
    pub heads: usize,
    /// Dimension per head (≤ [`MAX_HEAD_DIM`]).
    pub head_dim: usize,
    /// Score scale, usually `1/sqrt(head_dim)`.
    pub scale: f32,
    /// Mask keys after the query's absolute position.
    pub causal: bool,
    /// Additive mask `[tq, tk]` (0 or `-inf`/large negative).
    pub mask: Option<&'a [f32]>,
    /// Relative-position term.
    pub rel: Option<RelPosTerm<'a>>,
}

impl<'a> AttentionOpts<'a> {
    /// `heads` × `head_dim`, scale `1/sqrt(head_dim)`, no mask.
    pub fn new(heads: usize, head_dim: usize) -> Self {
        AttentionOpts {
            heads,
            head_dim,
            scale: 1.0 / (head_dim as f32).sqrt(),
            causal: false,
            mask: None,
            rel: None,
        }
    }

    /// Enables causal masking.
    pub fn causal(mut self, causal: bool) -> Self {
        self.causal = causal;
        self
    }

    /// Sets an additive `[tq, tk]` mask.
    pub fn with_mask(mut self, mask: &'a [f32]) -> Self {
        self.mask = Some(mask);
        self
    }

    /// Sets the relative-position term.
    pub fn with_rel(mut self, rel: RelPosTerm<'a>) -> Self {
        self.rel = Some(rel);
        self
    }
}

/// Multi-head attention: `out[i, h] = softmax_j(score(i, j, h)) · v[j, h]`.
///
/// `q` has `tq` rows, `k` and `v` have `tk` rows, each row holding `heads·head_dim`
/// values (head `h` at columns `h·head_dim..`). `out` is `[tq, heads·head_dim]`.
/// Rows whose keys are all masked produce zeros.
pub fn attention(
    q: Rows<'_>,
    k: Rows<'_>,
    v: Rows<'_>,
    opts: &AttentionOpts<'_>,
    out: &mut [f32],
) -> Result<()> {
    const OP: &str = "attention";
    let (h, d) = (opts.heads, opts.head_dim);
    let hd = h * d;
    let (tq, tk) = (q.len(), k.len());
    if d == 0 || d > MAX_HEAD_DIM {
        return Err(Error::InvalidArgument {
            op: OP,
            reason: format!("head_dim {d} must be in 1..={MAX_HEAD_DIM}"),
        });
    }
    if v.len() != tk {
        return Err(Error::InvalidArgument {
            op: OP,
            reason: format!("{tk} keys but {} values", v.len()),
        });
    }
    q.check(OP, "q", hd)?;
    k.check(OP, "k", hd)?;
    v.check(OP, "v", hd)?;
    check_len(OP, "out", out.len(), tq * hd)?;
    if tk < tq && opts.causal {
        return Err(Error::InvalidArgument {
            op: OP,
            reason: format!("causal attention with {tq} queries but only {tk} keys"),
        });
    }
    if let Some(m) = opts.mask {
        check_len(OP, "mask", m.len(), tq * tk)?;
    }
    if let Some(r) = &opts.rel {
        check_len(OP, "bias_u", r.bias_u.len(), hd)?;
        check_len(OP, "bias_v", r.bias_v.len(), hd)?;
        r.pos.check(OP, "pos", hd)?;
        let p = r.pos.len();
        let ok = if r.shift {
            p % 2 == 1 && (p - 1) / 2 + 1 >= tk && tk >= tq
        } else {
            p >= tk
        };
        if !ok {
            return Err(Error::InvalidArgument {
                op: OP,
                reason: format!(
                    "{p} relative position rows do not cover {tq} queries × {tk} keys (need {} rows{})",
                    if r.shift { 2 * tk - 1 } else { tk },
                    if r.shift { ", odd, with rel_shift" } else { "" }
                ),
            });
        }
    }
    if tq == 0 {
        return Ok(());
    }
    let groups = tq.div_ceil(ROW_GROUP);
    let tasks = groups * h;
    let shared = SharedMut::new(out);
    let run = |task: usize| {
        let (group, head) = (task / h, task % h);
        let r0 = group * ROW_GROUP;
        attend_rows(
            &q,
            &k,
            &v,
            opts,
            r0,
            (r0 + ROW_GROUP).min(tq),
            head,
            &shared,
        );
    };
    let tiled = opts.rel.as_ref().is_none_or(|r| r.pos.index.is_none())
        && tq >= 8
        && d <= TILE_MAX_D
        && q.index.is_none()
        && k.index.is_none()
        && v.index.is_none();
    if tiled {
        let tiles = tq.div_ceil(TILE_Q);
        let run_tile = |task: usize| {
            let (tile, head) = (task / h, task % h);
            let i0 = tile * TILE_Q;
            attend_tile(&q, &k, &v, opts, i0, (i0 + TILE_Q).min(tq), head, &shared);
        };
        if tq * tk * hd < PAR_MIN_WORK {
            (0..tiles * h).for_each(run_tile);
        } else {
            threads::pool().parallel_for(tiles * h, run_tile);
        }
        return Ok(());
    }
    if tq * tk * hd < PAR_MIN_WORK {
        (0..tasks).for_each(run);
    } else {
        threads::pool().parallel_for(tasks, run);
    }
    Ok(())
}

/// Below this many query·key·feature products attention runs on the calling thread
/// (waking workers costs more than it saves for a decoder step over a short history).
const PAR_MIN_WORK: usize = 1 << 18;

/// Query rows per tile of the GEMM-based path.
const TILE_Q: usize = 64;
/// Keys per block of the GEMM-based path.
const TILE_K: usize = 256;
/// Largest head dimension of the GEMM-based path.
const TILE_MAX_D: usize = 128;
/// Columns of the relative-position score tile: every p row a (query tile, key block)
/// pair can need.
const BD_COLS: usize = TILE_Q + TILE_K - 1;

/// Scores at or below this are treated as masked.
const MASKED: f32 = -1e30;

/// GEMM-based path for many query rows (encoders): for a tile of up to [`TILE_Q`] query
/// rows of one head, scores against [`TILE_K`] keys at a time are one small GEMM
/// (`Q_tile · K_blockᵀ`, strided views, no copies), folded into the online softmax, and
/// `P · V_block` is accumulated by a second GEMM. With a relative-position term, a third
/// GEMM scores the tile's queries against the span of position rows it needs. Stack
/// buffers only (about 180 KB).
#[allow(clippy::too_many_arguments)]
fn attend_tile(
    q: &Rows<'_>,
    k: &Rows<'_>,
    v: &Rows<'_>,
    opts: &AttentionOpts<'_>,
    i0: usize,
    i1: usize,
    head: usize,
    out: &SharedMut<f32>,
) {
    let kern = kernels::kernels();
    let d = opts.head_dim;
    let hd = opts.heads * d;
    let (tq, tk) = (q.len(), k.len());
    let rows = i1 - i0;
    let c0 = head * d;
    let mut s = [0f32; TILE_Q * TILE_K];
    let mut acc = [0f32; TILE_Q * TILE_MAX_D];
    let acc = &mut acc[..rows * d];
    let mut m = [f32::NEG_INFINITY; TILE_Q];
    let mut l = [0f32; TILE_Q];
    // Relative-position scratch (unused without a rel term).
    let mut bd = [0f32; TILE_Q * BD_COLS];
    let mut ub = [0f32; TILE_K];
    let mut vbias = [0f32; BD_COLS];
    let qm = MatRef::new(&q.data[i0 * q.stride + q.col + c0..], rows, d, q.stride, 1);
    let jend = if opts.causal { tk - tq + i1 } else { tk };
    let mut j0 = 0;
    while j0 < jend {
        let j1 = (j0 + TILE_K).min(jend);
        let nb = j1 - j0;
        let km = MatRef::new(&k.data[j0 * k.stride + k.col + c0..], nb, d, k.stride, 1);
        (kern.matmul_f32)(qm, km.t(), false, MatMut::new(&mut s[..], rows, nb, TILE_K));
        // Relative-position term: (q+u)·k + (q+v)·p = q·k + u·k + q·p + v·p. `q·p` for
        // every p row the tile needs is one more GEMM; `u·k` and `v·p` are per-column
        // biases.
        let mut pmin = 0;
        if let Some(r) = &opts.rel {
            let c = (r.pos.len() - 1) / 2;
            let (lo, hi) = if r.shift {
                // prow = c + j - qi_abs, qi_abs = tk - tq + i
                (c + j0 - (tk - tq + i1 - 1), c + (j1 - 1) - (tk - tq + i0))
            } else {
                (j0, j1 - 1)
            };
            pmin = lo;
            let np = hi - lo + 1;
            let pm = MatRef::new(
                &r.pos.data[lo * r.pos.stride + r.pos.col + c0..],
                np,
                d,
                r.pos.stride,
                1,
            );
            (kern.matmul_f32)(
                qm,
                pm.t(),
                false,
                MatMut::new(&mut bd[..], rows, np, BD_COLS),
            );
            for (jj, b) in ub[..nb].iter_mut().enumerate() {
                *b = (kern.dot)(&r.bias_u[c0..c0 + d], &k.row(j0 + jj, hd)[c0..c0 + d]);
            }
            for (pp, b) in vbias[..np].iter_mut().enumerate() {
                *b = (kern.dot)(&r.bias_v[c0..c0 + d], &r.pos.row(lo + pp, hd)[c0..c0 + d]);
            }
        }
        for r in 0..rows {
            let i = i0 + r;
            let qi_abs = (tk + i).saturating_sub(tq); // causal and rel-shift imply tk >= tq
            let srow = &mut s[r * TILE_K..r * TILE_K + nb];
            if let Some(rel) = &opts.rel {
                let c = (rel.pos.len() - 1) / 2;
                let bdrow = &bd[r * BD_COLS..(r + 1) * BD_COLS];
                for (jj, x) in srow.iter_mut().enumerate() {
                    let j = j0 + jj;
                    let prow = if rel.shift { c + j - qi_abs } else { j };
                    *x += ub[jj] + bdrow[prow - pmin] + vbias[prow - pmin];
                }
            }
            let mrow = opts.mask.map(|mk| &mk[i * tk + j0..i * tk + j1]);
            for (jj, x) in srow.iter_mut().enumerate() {
                let mut val = *x * opts.scale;
                if let Some(mr) = mrow {
                    val += mr[jj];
                }
                if opts.causal && j0 + jj > qi_abs {
                    val = MASKED;
                }
                *x = if val > MASKED { val } else { MASKED };
            }
            let bm = (kern.max)(srow);
            if bm <= MASKED {
                srow.fill(0.0);
                continue;
            }
            let m_new = m[r].max(bm);
            if m[r] > f32::NEG_INFINITY && m_new > m[r] {
                let corr = (m[r] - m_new).exp();
                l[r] *= corr;
                (kern.scale)(corr, &mut acc[r * d..(r + 1) * d]);
            }
            m[r] = m_new;
            l[r] += (kern.exp_sum)(srow, m_new);
        }
        let pm = MatRef::new(&s[..], rows, nb, TILE_K, 1);
        let vm = MatRef::new(&v.data[j0 * v.stride + v.col + c0..], nb, d, v.stride, 1);
        (kern.matmul_f32)(pm, vm, true, MatMut::new(acc, rows, d, d));
        j0 = j1;
    }
    for r in 0..rows {
        // SAFETY: each (row, head) output segment is written by exactly one task.
        let o = unsafe { out.slice((i0 + r) * hd + c0, d) };
        if l[r] > 0.0 {
            let inv = 1.0 / l[r];
            o.iter_mut()
                .zip(&acc[r * d..(r + 1) * d])
                .for_each(|(o, a)| *o = a * inv);
        } else {
            o.fill(0.0);
        }
    }
}

/// Query rows handled together by the per-row path: each key/value row is loaded once
/// for all of them (beams of a decoder step attend the same cross-attention K/V).
const ROW_GROUP: usize = 8;

/// Per-row path for query rows `r0..r1` (at most [`ROW_GROUP`]) of one head: scores of
/// [`KEY_BLOCK`] keys at a time on the stack, online softmax per row. The scores of the
/// whole row group against a key block are one register-tiled kernel call
/// (`attn_scores`: `Q[g×d]·K[nb×d]ᵀ`, key rows gathered as slices, so index tables and
/// strides cost nothing), and so is the value accumulation (`attn_pv`:
/// `acc[g×d] += P[g×nb]·V[nb×d]`) — instead of one `dot`/`axpy` call per (key, row).
#[allow(clippy::too_many_arguments)]
fn attend_rows(
    q: &Rows<'_>,
    k: &Rows<'_>,
    v: &Rows<'_>,
    opts: &AttentionOpts<'_>,
    r0: usize,
    r1: usize,
    head: usize,
    out: &SharedMut<f32>,
) {
    let kern = kernels::kernels();
    let (dot, exp_sum) = (kern.dot, kern.exp_sum);
    let (attn_scores, attn_pv) = (kern.attn_scores, kern.attn_pv);
    let d = opts.head_dim;
    let hd = opts.heads * d;
    let c0 = head * d;
    let (tq, tk) = (q.len(), k.len());
    let g = r1 - r0;
    let mut qu = [0f32; ROW_GROUP * MAX_HEAD_DIM];
    let mut qv = [0f32; ROW_GROUP * MAX_HEAD_DIM];
    let mut acc = [0f32; ROW_GROUP * MAX_HEAD_DIM];
    let mut s = [0f32; ROW_GROUP * KEY_BLOCK];
    let mut m = [f32::NEG_INFINITY; ROW_GROUP];
    let mut l = [0f32; ROW_GROUP];
    // this block's key (then value) rows of this head
    let mut rows_buf: [&[f32]; KEY_BLOCK] = [&[]; KEY_BLOCK];
    for r in 0..g {
        let qrow = &q.row(r0 + r, hd)[c0..c0 + d];
        let (u, vv) = (&mut qu[r * d..(r + 1) * d], &mut qv[r * d..(r + 1) * d]);
        match &opts.rel {
            Some(rel) => {
                for t in 0..d {
                    u[t] = qrow[t] + rel.bias_u[c0 + t];
                    vv[t] = qrow[t] + rel.bias_v[c0 + t];
                }
            }
            None => u.copy_from_slice(qrow),
        }
    }
    // Keys visible to row r: all, or up to its absolute position when causal (tk >= tq).
    let jmax = |r: usize| {
        if opts.causal {
            tk - tq + r0 + r + 1
        } else {
            tk
        }
    };
    let jend = jmax(g - 1);
    let mut j0 = 0;
    while j0 < jend {
        let j1 = (j0 + KEY_BLOCK).min(jend);
        let nb = j1 - j0;
        for (j, kr) in (j0..j1).zip(rows_buf.iter_mut()) {
            *kr = &k.row(j, hd)[c0..c0 + d];
        }
        attn_scores(&qu[..g * d], d, &rows_buf[..nb], &mut s, KEY_BLOCK);
        for r in 0..g {
            let i = r0 + r;
            let qi_abs = (tk + i).saturating_sub(tq); // causal and rel-shift imply tk >= tq
            let jm = jmax(r);
            let mask_row = opts.mask.map(|mk| &mk[i * tk..(i + 1) * tk]);
            let srow = &mut s[r * KEY_BLOCK..r * KEY_BLOCK + nb];
            for (jj, x) in srow.iter_mut().enumerate() {
                let j = j0 + jj;
                if j >= jm {
                    *x = MASKED;
                    continue;
                }
                let mut val = *x;
                if let Some(rel) = &opts.rel {
                    let prow = if rel.shift {
                        (rel.pos.len() - 1) / 2 + j - qi_abs
                    } else {
                        j
                    };
                    val += dot(&qv[r * d..(r + 1) * d], &rel.pos.row(prow, hd)[c0..c0 + d]);
                }
                val *= opts.scale;
                if let Some(mr) = mask_row {
                    val += mr[j];
                }
                // -inf (or NaN-prone) scores are clamped to a value whose exp is exactly 0.
                *x = if val > MASKED { val } else { MASKED };
            }
            let bm = (kern.max)(srow);
            if bm <= MASKED {
                srow.fill(0.0);
                continue;
            }
            let m_new = m[r].max(bm);
            if m[r] > f32::NEG_INFINITY && m_new > m[r] {
                let corr = (m[r] - m_new).exp();
                l[r] *= corr;
                (kern.scale)(corr, &mut acc[r * d..(r + 1) * d]);
            }
            m[r] = m_new;
            l[r] += exp_sum(srow, m_new);
        }
        for (j, vr) in (j0..j1).zip(rows_buf.iter_mut()) {
            *vr = &v.row(j, hd)[c0..c0 + d];
        }
        attn_pv(&s, KEY_BLOCK, &rows_buf[..nb], &mut acc[..g * d], d);
        j0 = j1;
    }
    for r in 0..g {
        // SAFETY: each (row, head) output segment is written by exactly one task.
        let o = unsafe { out.slice((r0 + r) * hd + c0, d) };
        if l[r] > 0.0 {
            let inv = 1.0 / l[r];
            o.iter_mut()
                .zip(&acc[r * d..(r + 1) * d])
                .for_each(|(o, a)| *o = a * inv);
        } else {
            o.fill(0.0);
        }
    }
}

/// ESPnet `rel_shift` on one `[t, 2t-1]` score matrix: `out[i, j] = x[i, j + t - 1 - i]`,
/// `out` is `[t, t]`. (The fused [`attention`] applies the same indexing itself.)
pub fn rel_shift(x: &[f32], t: usize, out: &mut [f32]) -> Result<()> {
    if t == 0 {
        return Ok(());
    }
    let p = 2 * t - 1;
    check_len("rel_shift", "x", x.len(), t * p)?;
    check_len("rel_shift", "out", out.len(), t * t)?;
    for i in 0..t {
        for j in 0..t {
            out[i * t + j] = x[i * p + j + t - 1 - i];
        }
    }
    Ok(())
}
