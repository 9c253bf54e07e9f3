//! Decoder KV caches.
//!
//! [`KvCache`] holds one preallocated K and one V buffer per decoder layer, sized at
//! stream start for `max_len` positions × `beams`. Physical row `t · beams + b` holds
//! the key/value written by beam slot `b` at position `t`; rows are written exactly once,
//! in place, and never moved.
//!
//! Each beam reads its history through an index table `table[b][t]` (physical row of the
//! token it descends from at position `t`), shared by all layers. Beam reordering after
//! a search step ([`KvCache::reorder`]) permutes these index rows (a few hundred `u32`
//! per beam, double-buffered, no allocation) and never copies K/V data — the same idea as
//! llama.cpp's cells shared by sequence id (`src/llama-kv-cache.cpp`). Attention reads
//! [`Rows`] views over the buffers ([`KvCache::keys`], [`KvCache::values`]).
//!
//! [`KvCache::append_shared`] (prompt before the beams diverge) writes rows once and
//! points every beam at them.
//!
//! [`CrossKv`] holds cross-attention K/V, computed once per utterance (or window) and
//! reused by every step and every beam.

use crate::error::{Error, Result};
use crate::ops::Rows;

/// Self-attention K/V cache for all decoder layers of one stream.
#[derive(Debug, Clone)]
pub struct KvCache {
    beams: usize,
    max_len: usize,
    dim: usize,
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    lens: Vec<usize>,
    table: Vec<u32>,
    table_tmp: Vec<u32>,
}

fn kv_err(reason: String) -> Error {
    Error::KvCache { reason }
}

impl KvCache {
    /// Allocates buffers for `layers` layers, `beams` beams, `max_len` positions and rows
    /// of `dim` values (`heads · head_dim`).
    pub fn new(layers: usize, beams: usize, max_len: usize, dim: usize) -> KvCache {
        let beams = beams.max(1);
        let rows = beams * max_len;
        let mut table = vec![0u32; rows];
        for b in 0..beams {
            for t in 0..max_len {
                table[b * max_len + t] = (t * beams + b) as u32;
            }
        }
        KvCache {
            beams,
            max_len,
            dim,
            k: vec![vec![0f32; rows * dim]; layers],
            v: vec![vec![0f32; rows * dim]; layers],
            lens: vec![0; layers],
            table_tmp: table.clone(),
            table,
        }
    }

    /// Number of positions cached in every layer.
    pub fn len(&self) -> usize {
        self.lens.iter().copied().min().unwrap_or(0)
    }

    /// Whether no position is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Positions cached in `layer` (ahead of [`KvCache::len`] while a step is in flight).
    pub fn layer_len(&self, layer: usize) -> usize {
        self.lens.get(layer).copied().unwrap_or(0)
    }

    /// Number of beams.
    pub fn beams(&self) -> usize {
        self.beams
    }

    /// Capacity in positions.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Row width.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of layers.
    pub fn layers(&self) -> usize {
        self.lens.len()
    }

    /// Appends `n` positions to `layer`: `k` and `v` are `[beams, n, dim]` (beam-major),
    /// `n` is inferred from the length. See [`KvCache::append_shared`] for rows common to
    /// all beams.
    pub fn append(&mut self, layer: usize, k: &[f32], v: &[f32]) -> Result<()> {
        if layer >= self.lens.len() {
            return Err(kv_err(format!(
                "layer {layer} out of range ({} layers)",
                self.lens.len()
            )));
        }
        if k.len() != v.len() || self.dim == 0 || !k.len().is_multiple_of(self.dim) {
            return Err(kv_err(format!(
                "append to layer {layer}: k has {} and v {} values, expected equal multiples of dim {}",
                k.len(),
                v.len(),
                self.dim
            )));
        }
        let rows = k.len() / self.dim;
        if !rows.is_multiple_of(self.beams) {
            return Err(kv_err(format!(
                "append to layer {layer}: {rows} rows are not [beams={}, n, dim] (use append_shared for rows shared by all beams)",
                self.beams
            )));
        }
        let (src_beams, n) = (self.beams, rows / self.beams);
        let t0 = self.lens[layer];
        if t0 + n > self.max_len {
            return Err(kv_err(format!(
                "layer {layer}: {t0} + {n} positions exceed max_len {}",
                self.max_len
            )));
        }
        let d = self.dim;
        for b in 0..src_beams {
            for s in 0..n {
                let t = t0 + s;
                let phys = t * self.beams + b;
                let src = (b * n + s) * d;
                self.k[layer][phys * d..(phys + 1) * d].copy_from_slice(&k[src..src + d]);
                self.v[layer][phys * d..(phys + 1) * d].copy_from_slice(&v[src..src + d]);
                self.table[b * self.max_len + t] = phys as u32;
            }
        }
        self.lens[layer] = t0 + n;
        Ok(())
    }

    /// Appends `n` positions `[n, dim]` shared by all beams: the rows are stored once (in
    /// beam slot 0) and every beam's index table points at them.
    pub fn append_shared(&mut self, layer: usize, k: &[f32], v: &[f32]) -> Result<()> {
        if layer >= self.lens.len() {
            return Err(kv_err(format!(
                "layer {layer} out of range ({} layers)",
                self.lens.len()
            )));
        }
        if k.len() != v.len() || self.dim == 0 || !k.len().is_multiple_of(self.dim) {
            return Err(kv_err(format!(
                "append_shared to layer {layer}: k has {} and v {} values, expected equal multiples of dim {}",
                k.len(),
                v.len(),
                self.dim
            )));
        }
        let n = k.len() / self.dim;
        let t0 = self.lens[layer];
        if t0 + n > self.max_len {
            return Err(kv_err(format!(
                "layer {layer}: {t0} + {n} positions exceed max_len {}",
                self.max_len
            )));
        }
        let d = self.dim;
        for s in 0..n {
            let t = t0 + s;
            let phys = t * self.beams;
            self.k[layer][phys * d..(phys + 1) * d].copy_from_slice(&k[s * d..(s + 1) * d]);
            self.v[layer][phys * d..(phys + 1) * d].copy_from_slice(&v[s * d..(s + 1) * d]);
            for b in 0..self.beams {
                self.table[b * self.max_len + t] = phys as u32;
            }
        }
        self.lens[layer] = t0 + n;
        Ok(())
    }

    /// Keeps only the first `len` positions in every layer.
    pub fn truncate(&mut self, len: usize) {
        self.lens.iter_mut().for_each(|l| *l = (*l).min(len));
    }

    /// Clears the cache for a new utterance (buffers are kept).
    pub fn reset(&mut self) {
        self.lens.iter_mut().for_each(|l| *l = 0);
    }

    /// After a beam-search step, beam `b` continues the history of beam `parents[b]`.
    /// Only index tables are permuted; no K/V data is copied. All layers must be at the
    /// same length.
    pub fn reorder(&mut self, parents: &[usize]) -> Result<()> {
        if parents.len() != self.beams {
            return Err(kv_err(format!(
                "reorder: {} parents for {} beams",
                parents.len(),
                self.beams
            )));
        }
        if let Some(&p) = parents.iter().find(|&&p| p >= self.beams) {
            return Err(kv_err(format!(
                "reorder: parent beam {p} out of range ({} beams)",
                self.beams
            )));
        }
        let len = self.len();
        if self.lens.iter().any(|&l| l != len) {
            return Err(kv_err(format!(
                "reorder: layers have different lengths {:?} (step not finished)",
                self.lens
            )));
        }
        let ml = self.max_len;
        for (b, &p) in parents.iter().enumerate() {
            self.table_tmp[b * ml..b * ml + len].copy_from_slice(&self.table[p * ml..p * ml + len]);
        }
        for b in 0..self.beams {
            self.table[b * ml..b * ml + len].copy_from_slice(&self.table_tmp[b * ml..b * ml + len]);
        }
        Ok(())
    }

    fn view<'a>(&'a self, buf: &'a [Vec<f32>], layer: usize, beam: usize) -> Result<Rows<'a>> {
        if layer >= self.lens.len() || beam >= self.beams {
            return Err(kv_err(format!(
                "view of layer {layer} beam {beam} out of range"
            )));
        }
        let len = self.lens[layer];
        let ix = &self.table[beam * self.max_len..beam * self.max_len + len];
        Ok(Rows::indexed(&buf[layer], self.dim, ix))
    }

    /// Keys of `beam` in `layer`, positions `0..layer_len(layer)`.
    pub fn keys(&self, layer: usize, beam: usize) -> Result<Rows<'_>> {
        self.view(&self.k, layer, beam)
    }

    /// Values of `beam` in `layer`, positions `0..layer_len(layer)`.
    pub fn values(&self, layer: usize, beam: usize) -> Result<Rows<'_>> {
        self.view(&self.v, layer, beam)
    }
}

/// Cross-attention K/V for all decoder layers, computed once per utterance.
#[derive(Debug, Clone)]
pub struct CrossKv {
    max_frames: usize,
    dim: usize,
    frames: Vec<usize>,
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
}

impl CrossKv {
    /// Allocates `layers` K and V buffers of `max_frames × dim`.
    pub fn new(layers: usize, max_frames: usize, dim: usize) -> CrossKv {
        CrossKv {
            max_frames,
            dim,
            frames: vec![0; layers],
            k: vec![vec![0f32; max_frames * dim]; layers],
            v: vec![vec![0f32; max_frames * dim]; layers],
        }
    }

    /// Mutable K and V buffers `[frames, dim]` of `layer`, to project the encoder output
    /// into directly; marks the layer as holding `frames` frames.
    pub fn buffers_mut(&mut self, layer: usize, frames: usize) -> Result<(&mut [f32], &mut [f32])> {
        if layer >= self.frames.len() || frames > self.max_frames {
            return Err(kv_err(format!(
                "cross kv: layer {layer} / {frames} frames out of range ({} layers, max {} frames)",
                self.frames.len(),
                self.max_frames
            )));
        }
        self.frames[layer] = frames;
        let n = frames * self.dim;
        Ok((&mut self.k[layer][..n], &mut self.v[layer][..n]))
    }

    /// Number of frames held for `layer`.
    pub fn frames(&self, layer: usize) -> usize {
        self.frames.get(layer).copied().unwrap_or(0)
    }

    /// Keys of `layer`.
    pub fn keys(&self, layer: usize) -> Result<Rows<'_>> {
        let f = self
            .frames
            .get(layer)
            .copied()
            .ok_or_else(|| kv_err(format!("cross kv: layer {layer} out of range")))?;
        Ok(Rows::new(&self.k[layer][..f * self.dim], f, self.dim))
    }

    /// Values of `layer`.
    pub fn values(&self, layer: usize) -> Result<Rows<'_>> {
        let f = self
            .frames
            .get(layer)
            .copied()
            .ok_or_else(|| kv_err(format!("cross kv: layer {layer} out of range")))?;
        Ok(Rows::new(&self.v[layer][..f * self.dim], f, self.dim))
    }
}
