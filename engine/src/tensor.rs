//! Tensors: shared storage + layout + dtype.
//!
//! Follows the `Storage` / `Layout` split of candle (`candle-core/src/{tensor,layout}.rs`):
//! a [`Tensor`] is an `Arc<Storage>` (an owned 64-byte aligned buffer, or a byte range of a
//! memory-mapped file), a [`Layout`] (shape, strides and offset in elements) and a
//! [`DType`]. Views ([`Tensor::narrow`], [`Tensor::transpose`], [`Tensor::reshape`] of a
//! contiguous tensor) only build a new layout and clone the `Arc`.
//!
//! Tensors are mainly the *weight* side of the engine. Activations flow through ops as
//! plain `&[f32]` / `&mut [f32]` row-major buffers owned by the caller, which is what lets
//! a decoder step run without allocating.
//!
//! int8 tensors always carry per-row f32 scales (see [`crate::dtype`]); views of an int8
//! tensor may only narrow or reshape while keeping the first (row) dimension, so that
//! the scales stay attached to the right rows.

use std::sync::Arc;

use memmap2::Mmap;

use crate::dtype::{bf16, f16, DType, Element};
use crate::error::{Error, Result};

#[repr(C, align(64))]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Align64([u8; 64]);

/// An owned, zero-initialised byte buffer whose start is 64-byte aligned.
#[derive(Clone)]
pub struct AlignedBuf {
    blocks: Vec<Align64>,
    len: usize,
}

impl AlignedBuf {
    /// Allocates `len` zero bytes.
    pub fn zeroed(len: usize) -> Self {
        AlignedBuf {
            blocks: vec![Align64([0; 64]); len.div_ceil(64)],
            len,
        }
    }

    /// Copies `bytes` into a new aligned buffer.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let mut b = Self::zeroed(bytes.len());
        b.as_bytes_mut().copy_from_slice(bytes);
        b
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &bytemuck::cast_slice::<Align64, u8>(&self.blocks)[..self.len]
    }

    /// The bytes, mutably.
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        &mut bytemuck::cast_slice_mut::<Align64, u8>(&mut self.blocks)[..self.len]
    }
}

/// The bytes behind one or more tensors.
pub enum Storage {
    /// An owned aligned buffer.
    Owned(AlignedBuf),
    /// A byte range `[start, start + len)` of a memory-mapped file.
    Mapped {
        /// The mapping (shared by every tensor of the file).
        map: Arc<Mmap>,
        /// First byte.
        start: usize,
        /// Length in bytes.
        len: usize,
    },
}

impl Storage {
    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Storage::Owned(b) => b.as_bytes(),
            Storage::Mapped { map, start, len } => &map[*start..*start + *len],
        }
    }

    /// Whether this storage lives in a memory-mapped file.
    pub fn is_mapped(&self) -> bool {
        matches!(self, Storage::Mapped { .. })
    }
}

/// Shape, strides and offset of a tensor, all in elements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    shape: Vec<usize>,
    strides: Vec<usize>,
    offset: usize,
}

impl Layout {
    /// Row-major contiguous layout of `shape` starting at element 0.
    pub fn contiguous(shape: &[usize]) -> Self {
        let mut strides = vec![0; shape.len()];
        let mut s = 1;
        for i in (0..shape.len()).rev() {
            strides[i] = s;
            s *= shape[i];
        }
        Layout {
            shape: shape.to_vec(),
            strides,
            offset: 0,
        }
    }

    /// Dimensions.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Strides in elements.
    pub fn strides(&self) -> &[usize] {
        &self.strides
    }

    /// Offset of the first element, in elements.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether elements are stored densely in row-major order.
    pub fn is_contiguous(&self) -> bool {
        let mut s = 1;
        for i in (0..self.shape.len()).rev() {
            if self.shape[i] != 1 && self.strides[i] != s {
                return false;
            }
            s *= self.shape[i];
        }
        true
    }

    /// Calls `f` with the storage offset of every element, in row-major order.
    pub fn for_each_offset(&self, mut f: impl FnMut(usize)) {
        let n = self.numel();
        if n == 0 {
            return;
        }
        if self.is_contiguous() {
            (self.offset..self.offset + n).for_each(f);
            return;
        }
        let rank = self.shape.len();
        let mut idx = vec![0usize; rank];
        let mut off = self.offset;
        for _ in 0..n {
            f(off);
            for d in (0..rank).rev() {
                idx[d] += 1;
                off += self.strides[d];
                if idx[d] < self.shape[d] {
                    break;
                }
                off -= self.strides[d] * self.shape[d];
                idx[d] = 0;
            }
        }
    }
}

/// A borrowed 2-D `[rows, cols]` contiguous weight, by dtype: what GEMM kernels take.
/// The same type as [`crate::kernels::Weights`], so a view goes to the kernels as is.
pub type WeightView<'a> = crate::kernels::Weights<'a>;

/// An n-dimensional array: shared storage + layout + dtype (+ per-row scales for int8).
#[derive(Clone)]
pub struct Tensor {
    storage: Arc<Storage>,
    layout: Layout,
    dtype: DType,
    scales: Option<Arc<Tensor>>,
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Tensor({}, {:?}{})",
            self.dtype,
            self.layout.shape,
            if self.storage.is_mapped() {
                ", mapped"
            } else {
                ""
            }
        )
    }
}

fn numel_of(shape: &[usize]) -> usize {
    shape.iter().product()
}

impl Tensor {
    /// Builds a tensor over existing storage. `layout` offsets are in elements of `dtype`.
    /// For int8, `scales` must be an f32 tensor with `shape[0]` elements.
    pub fn from_storage(
        storage: Arc<Storage>,
        dtype: DType,
        layout: Layout,
        scales: Option<Tensor>,
    ) -> Result<Tensor> {
        let what = "Tensor::from_storage";
        let elems = storage.as_bytes().len() / dtype.size_in_bytes();
        // Highest element reachable through the layout must be inside the storage.
        if layout.numel() > 0 {
            let last: usize = layout.offset
                + layout
                    .shape
                    .iter()
                    .zip(&layout.strides)
                    .map(|(d, s)| (d - 1) * s)
                    .sum::<usize>();
            if last >= elems {
                return Err(Error::Layout {
                    op: what,
                    reason: format!(
                        "layout {:?} reaches past the {elems} stored elements",
                        layout
                    ),
                });
            }
        }
        let scales = match (dtype, scales) {
            (DType::I8, Some(s)) => {
                let rows = layout.shape.first().copied().unwrap_or(1);
                if s.dtype != DType::F32 || s.numel() != rows || !s.is_contiguous() {
                    return Err(Error::ShapeMismatch {
                        what: "int8 tensor scales (f32, contiguous, one per row)".into(),
                        expected: vec![rows],
                        got: s.shape().to_vec(),
                    });
                }
                Some(Arc::new(s.reshape(&[rows])?))
            }
            (DType::I8, None) => {
                return Err(Error::InvalidArgument {
                    op: what,
                    reason: "an int8 tensor needs per-row scales".into(),
                })
            }
            (_, Some(_)) => {
                return Err(Error::InvalidArgument {
                    op: what,
                    reason: format!("scales given for a {dtype} tensor"),
                })
            }
            (_, None) => None,
        };
        Ok(Tensor {
            storage,
            layout,
            dtype,
            scales,
        })
    }

    /// Copies `data` into a new tensor of `shape` (not for int8: see [`Tensor::from_i8`]).
    pub fn from_slice<T: Element>(shape: &[usize], data: &[T]) -> Result<Tensor> {
        if T::DTYPE == DType::I8 {
            return Err(Error::InvalidArgument {
                op: "Tensor::from_slice",
                reason: "int8 tensors need scales: use Tensor::from_i8".into(),
            });
        }
        if numel_of(shape) != data.len() {
            return Err(Error::ShapeMismatch {
                what: "Tensor::from_slice data".into(),
                expected: shape.to_vec(),
                got: vec![data.len()],
            });
        }
        let buf = AlignedBuf::from_bytes(bytemuck::cast_slice(data));
        Ok(Tensor {
            storage: Arc::new(Storage::Owned(buf)),
            layout: Layout::contiguous(shape),
            dtype: T::DTYPE,
            scales: None,
        })
    }

    /// Copies f32 `data` into a new tensor of `shape`.
    pub fn from_f32(shape: &[usize], data: &[f32]) -> Result<Tensor> {
        Self::from_slice(shape, data)
    }

    /// Builds an int8 tensor from quantised values and one scale per row (`shape[0]` rows).
    pub fn from_i8(shape: &[usize], q: &[i8], scales: &[f32]) -> Result<Tensor> {
        if numel_of(shape) != q.len() {
            return Err(Error::ShapeMismatch {
                what: "Tensor::from_i8 data".into(),
                expected: shape.to_vec(),
                got: vec![q.len()],
            });
        }
        let s = Tensor::from_f32(&[scales.len()], scales)?;
        let buf = AlignedBuf::from_bytes(bytemuck::cast_slice(q));
        Tensor::from_storage(
            Arc::new(Storage::Owned(buf)),
            DType::I8,
            Layout::contiguous(shape),
            Some(s),
        )
    }

    /// A zero tensor (int8: zeros with unit scales).
    pub fn zeros(dtype: DType, shape: &[usize]) -> Tensor {
        let n = numel_of(shape);
        let storage = Arc::new(Storage::Owned(AlignedBuf::zeroed(
            n * dtype.size_in_bytes(),
        )));
        let scales = (dtype == DType::I8).then(|| {
            let rows = shape.first().copied().unwrap_or(1);
            Arc::new(Tensor {
                storage: Arc::new(Storage::Owned(AlignedBuf::from_bytes(
                    bytemuck::cast_slice(&vec![1f32; rows]),
                ))),
                layout: Layout::contiguous(&[rows]),
                dtype: DType::F32,
                scales: None,
            })
        });
        Tensor {
            storage,
            layout: Layout::contiguous(shape),
            dtype,
            scales,
        }
    }

    /// Dimensions.
    pub fn shape(&self) -> &[usize] {
        &self.layout.shape
    }

    /// Dimensions (alias of [`Tensor::shape`]).
    pub fn dims(&self) -> &[usize] {
        &self.layout.shape
    }

    /// Size of dimension `d` (0 if out of range).
    pub fn dim(&self, d: usize) -> usize {
        self.layout.shape.get(d).copied().unwrap_or(0)
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.layout.shape.len()
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.layout.numel()
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Whether elements are dense and row-major.
    pub fn is_contiguous(&self) -> bool {
        self.layout.is_contiguous()
    }

    /// Per-row scales of an int8 tensor.
    pub fn scales(&self) -> Option<&Tensor> {
        self.scales.as_deref()
    }

    /// The shared storage.
    pub fn storage(&self) -> &Arc<Storage> {
        &self.storage
    }

    /// Whether the data lives in a memory-mapped file (zero-copy load).
    pub fn is_mapped(&self) -> bool {
        self.storage.is_mapped()
    }

    /// Address of the first element (for zero-copy checks and debugging).
    pub fn data_ptr(&self) -> *const u8 {
        let bytes = self.storage.as_bytes();
        bytes[self.layout.offset * self.dtype.size_in_bytes()..].as_ptr()
    }

    fn typed_storage<T: Element>(&self) -> Result<&[T]> {
        if T::DTYPE != self.dtype {
            return Err(Error::DTypeMismatch {
                what: format!("tensor {:?} as_slice", self.shape()),
                expected: T::DTYPE.to_string(),
                got: self.dtype,
            });
        }
        bytemuck::try_cast_slice(self.storage.as_bytes()).map_err(|e| Error::Layout {
            op: "Tensor::as_slice",
            reason: format!("storage is not aligned for {}: {e}", T::DTYPE),
        })
    }

    /// The elements of a contiguous tensor of element type `T`.
    pub fn as_slice<T: Element>(&self) -> Result<&[T]> {
        if !self.is_contiguous() {
            return Err(Error::Layout {
                op: "Tensor::as_slice",
                reason: format!(
                    "tensor {:?} is not contiguous; call contiguous()",
                    self.shape()
                ),
            });
        }
        let all = self.typed_storage::<T>()?;
        Ok(&all[self.layout.offset..self.layout.offset + self.numel()])
    }

    /// The elements of a contiguous f32 tensor.
    pub fn as_f32(&self) -> Result<&[f32]> {
        self.as_slice::<f32>()
    }

    /// A contiguous 2-D weight `[rows, cols]` as a typed view for GEMM.
    pub fn weight_view(&self) -> Result<WeightView<'_>> {
        Ok(match self.dtype {
            DType::F32 => WeightView::F32(self.as_slice()?),
            DType::F16 => WeightView::F16(self.as_slice()?),
            DType::BF16 => WeightView::Bf16(self.as_slice()?),
            DType::I8 => {
                let scales = self.scales.as_ref().ok_or_else(|| Error::InvalidArgument {
                    op: "Tensor::weight_view",
                    reason: "int8 tensor without scales".into(),
                })?;
                WeightView::I8 {
                    q: self.as_slice()?,
                    scales: scales.as_f32()?,
                }
            }
        })
    }

    /// A view of `len` entries of dimension `dim` starting at `start` (no copy).
    pub fn narrow(&self, dim: usize, start: usize, len: usize) -> Result<Tensor> {
        let rank = self.rank();
        if dim >= rank || start + len > self.layout.shape[dim] {
            return Err(Error::Layout {
                op: "Tensor::narrow",
                reason: format!(
                    "cannot take [{start}, {}) of dim {dim} of shape {:?}",
                    start + len,
                    self.shape()
                ),
            });
        }
        if self.dtype == DType::I8 && dim != 0 {
            return Err(Error::Layout {
                op: "Tensor::narrow",
                reason: "int8 tensors can only be narrowed along dim 0 (rows)".into(),
            });
        }
        let mut layout = self.layout.clone();
        layout.offset += start * layout.strides[dim];
        layout.shape[dim] = len;
        let scales = match &self.scales {
            Some(s) => Some(Arc::new(s.narrow(0, start, len)?)),
            None => None,
        };
        Ok(Tensor {
            storage: self.storage.clone(),
            layout,
            dtype: self.dtype,
            scales,
        })
    }

    /// A view with dimensions `d0` and `d1` swapped (no copy; not for int8).
    pub fn transpose(&self, d0: usize, d1: usize) -> Result<Tensor> {
        if d0 >= self.rank() || d1 >= self.rank() {
            return Err(Error::Layout {
                op: "Tensor::transpose",
                reason: format!(
                    "dims ({d0}, {d1}) out of range for shape {:?}",
                    self.shape()
                ),
            });
        }
        if self.dtype == DType::I8 && d0 != d1 {
            return Err(Error::Layout {
                op: "Tensor::transpose",
                reason: "int8 tensors keep their row dimension first".into(),
            });
        }
        let mut layout = self.layout.clone();
        layout.shape.swap(d0, d1);
        layout.strides.swap(d0, d1);
        Ok(Tensor {
            storage: self.storage.clone(),
            layout,
            dtype: self.dtype,
            scales: self.scales.clone(),
        })
    }

    /// A view with a new shape of the same size (no copy; the tensor must be contiguous).
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        if numel_of(shape) != self.numel() {
            return Err(Error::ShapeMismatch {
                what: "Tensor::reshape (element count)".into(),
                expected: self.shape().to_vec(),
                got: shape.to_vec(),
            });
        }
        if !self.is_contiguous() {
            return Err(Error::Layout {
                op: "Tensor::reshape",
                reason: format!(
                    "tensor {:?} is not contiguous; call contiguous()",
                    self.shape()
                ),
            });
        }
        if self.dtype == DType::I8 && shape.first() != self.shape().first() {
            return Err(Error::Layout {
                op: "Tensor::reshape",
                reason: format!(
                    "int8 tensor {:?} must keep its row dimension (got {shape:?})",
                    self.shape()
                ),
            });
        }
        let mut layout = Layout::contiguous(shape);
        layout.offset = self.layout.offset;
        Ok(Tensor {
            storage: self.storage.clone(),
            layout,
            dtype: self.dtype,
            scales: self.scales.clone(),
        })
    }

    /// This tensor if contiguous, otherwise a dense copy.
    pub fn contiguous(&self) -> Tensor {
        if self.is_contiguous() {
            return self.clone();
        }
        let size = self.dtype.size_in_bytes();
        let src = self.storage.as_bytes();
        let mut buf = AlignedBuf::zeroed(self.numel() * size);
        let dst = buf.as_bytes_mut();
        let mut i = 0;
        self.layout.for_each_offset(|off| {
            dst[i * size..(i + 1) * size].copy_from_slice(&src[off * size..(off + 1) * size]);
            i += 1;
        });
        Tensor {
            storage: Arc::new(Storage::Owned(buf)),
            layout: Layout::contiguous(self.shape()),
            dtype: self.dtype,
            scales: self.scales.as_ref().map(|s| Arc::new(s.contiguous())),
        }
    }

    fn gather_f32<T: Element>(&self, out: &mut Vec<f32>) -> Result<()> {
        let all = self.typed_storage::<T>()?;
        self.layout
            .for_each_offset(|off| out.push(all[off].to_f32()));
        Ok(())
    }

    /// All elements converted to f32 in row-major order (int8 is dequantised).
    pub fn to_f32_vec(&self) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(self.numel());
        match self.dtype {
            DType::F32 => self.gather_f32::<f32>(&mut out)?,
            DType::F16 => self.gather_f32::<f16>(&mut out)?,
            DType::BF16 => self.gather_f32::<bf16>(&mut out)?,
            DType::I8 => {
                self.gather_f32::<i8>(&mut out)?;
                let scales = self
                    .scales
                    .as_ref()
                    .map(|s| s.to_f32_vec())
                    .transpose()?
                    .unwrap_or_default();
                let rows = scales.len().max(1);
                let per_row = out.len() / rows;
                for (r, s) in scales.iter().enumerate() {
                    out[r * per_row..(r + 1) * per_row]
                        .iter_mut()
                        .for_each(|v| *v *= s);
                }
            }
        }
        Ok(out)
    }

    /// Converts to another dtype (always returns an owned, contiguous tensor).
    ///
    /// f32/f16/bf16 convert with round-to-nearest-even; to int8 quantises each row
    /// symmetrically (`scale = max|row| / 127`, `q = round(v / scale)`); from int8
    /// dequantises first.
    pub fn to_dtype(&self, dtype: DType) -> Result<Tensor> {
        if dtype == self.dtype {
            return Ok(self.contiguous());
        }
        let v = self.to_f32_vec()?;
        let shape = self.shape();
        match dtype {
            DType::F32 => Tensor::from_slice(shape, &v),
            DType::F16 => {
                let h: Vec<f16> = v.iter().map(|&x| f16::from_f32(x)).collect();
                Tensor::from_slice(shape, &h)
            }
            DType::BF16 => {
                let h: Vec<bf16> = v.iter().map(|&x| bf16::from_f32(x)).collect();
                Tensor::from_slice(shape, &h)
            }
            DType::I8 => {
                let rows = shape.first().copied().unwrap_or(1);
                let (q, s) = quantize_rows_i8(&v, rows);
                Tensor::from_i8(shape, &q, &s)
            }
        }
    }
}

/// Symmetric per-row int8 quantisation of a row-major `[rows, n / rows]` matrix, with
/// CTranslate2's weight rule (`ops::Quantize` without the u8 shift, `round_before_cast`,
/// as `Model::ensure_dtype` in `src/models/model.cc` applies it to f16/f32 weights at
/// load): `q = round_half_even(v · (127 / max|row|))` clamped to `[-127, 127]`.
///
/// Returns `(q, scales)` with hark's convention `scale = max|row| / 127` (1 for all-zero
/// rows), so that `v ≈ q · scale`.
pub fn quantize_rows_i8(v: &[f32], rows: usize) -> (Vec<i8>, Vec<f32>) {
    let cols = v.len().checked_div(rows).unwrap_or(0);
    let mut q = Vec::with_capacity(v.len());
    let mut scales = Vec::with_capacity(rows);
    for r in 0..rows {
        let row = &v[r * cols..(r + 1) * cols];
        let amax = row.iter().fold(0f32, |m, x| m.max(x.abs()));
        let (inv, scale) = if amax > 0.0 {
            (127.0 / amax, amax / 127.0)
        } else {
            (1.0, 1.0)
        };
        q.extend(
            row.iter()
                .map(|x| (x * inv).round_ties_even().clamp(-127.0, 127.0) as i8),
        );
        scales.push(scale);
    }
    (q, scales)
}
