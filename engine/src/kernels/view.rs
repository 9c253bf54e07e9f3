//! Strided matrix views used by the kernels.
//!
//! [`MatMut`] is a mutable 2-D view that can be split into disjoint row or column blocks and
//! sent to other threads (like `split_at_mut`, but in two dimensions; the idea of faer's
//! `MatMut`). Column blocks of a row-major matrix interleave in memory, which plain slices
//! cannot express without aliasing, hence the raw pointer inside.

use std::marker::PhantomData;
use std::ptr::NonNull;

/// Mutable `rows×cols` f32 matrix view with row stride `row_stride` (column stride 1).
pub struct MatMut<'a> {
    ptr: NonNull<f32>,
    rows: usize,
    cols: usize,
    row_stride: usize,
    _life: PhantomData<&'a mut [f32]>,
}

// SAFETY: a MatMut is a unique borrow of the elements it covers (split_* hand out disjoint
// element sets), exactly like `&mut [f32]`, which is Send and Sync.
unsafe impl Send for MatMut<'_> {}
unsafe impl Sync for MatMut<'_> {}

impl<'a> MatMut<'a> {
    /// View `data` as `rows×cols` with the given row stride (`row_stride >= cols`).
    ///
    /// Panics if `data` is too short or `row_stride < cols`.
    pub fn new(data: &'a mut [f32], rows: usize, cols: usize, row_stride: usize) -> Self {
        assert!(
            row_stride >= cols,
            "MatMut::new: row stride {row_stride} < cols {cols}"
        );
        if rows > 0 && cols > 0 {
            let need = (rows - 1) * row_stride + cols;
            assert!(
                data.len() >= need,
                "MatMut::new: {rows}×{cols} (stride {row_stride}) needs {need} values, got {}",
                data.len()
            );
        }
        MatMut {
            ptr: NonNull::new(data.as_mut_ptr()).unwrap_or(NonNull::dangling()),
            rows,
            cols,
            row_stride,
            _life: PhantomData,
        }
    }

    /// Contiguous row-major view (`row_stride == cols`); panics if `data.len() != rows·cols`.
    pub fn from_slice(data: &'a mut [f32], rows: usize, cols: usize) -> Self {
        assert!(
            data.len() == rows * cols,
            "MatMut::from_slice: {} values for {rows}×{cols}",
            data.len()
        );
        Self::new(data, rows, cols, cols)
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Distance in elements between the starts of consecutive rows.
    pub fn row_stride(&self) -> usize {
        self.row_stride
    }

    /// Reborrow for a shorter lifetime.
    pub fn rb(&mut self) -> MatMut<'_> {
        MatMut {
            ptr: self.ptr,
            rows: self.rows,
            cols: self.cols,
            row_stride: self.row_stride,
            _life: PhantomData,
        }
    }

    /// Row `i` as a slice (`cols` values). Panics if `i >= rows`.
    pub fn row_mut(&mut self, i: usize) -> &mut [f32] {
        assert!(i < self.rows, "MatMut::row_mut: row {i} of {}", self.rows);
        // SAFETY: row i lies inside the borrowed region (checked in `new`/splits) and we hold
        // a unique borrow of self.
        unsafe {
            std::slice::from_raw_parts_mut(self.ptr.as_ptr().add(i * self.row_stride), self.cols)
        }
    }

    /// Splits into columns `0..at` and `at..cols` (disjoint views). Panics if `at > cols`.
    pub fn split_cols(self, at: usize) -> (MatMut<'a>, MatMut<'a>) {
        assert!(
            at <= self.cols,
            "MatMut::split_cols: {at} > cols {}",
            self.cols
        );
        let right_ptr = if at < self.cols {
            // SAFETY: at < cols so the offset stays within the first row.
            unsafe { NonNull::new_unchecked(self.ptr.as_ptr().add(at)) }
        } else {
            NonNull::dangling()
        };
        let left = MatMut {
            ptr: self.ptr,
            rows: self.rows,
            cols: at,
            row_stride: self.row_stride,
            _life: PhantomData,
        };
        let right = MatMut {
            ptr: right_ptr,
            rows: self.rows,
            cols: self.cols - at,
            row_stride: self.row_stride,
            _life: PhantomData,
        };
        (left, right)
    }

    /// Splits into rows `0..at` and `at..rows` (disjoint views). Panics if `at > rows`.
    pub fn split_rows(self, at: usize) -> (MatMut<'a>, MatMut<'a>) {
        assert!(
            at <= self.rows,
            "MatMut::split_rows: {at} > rows {}",
            self.rows
        );
        let bottom_ptr = if at < self.rows && self.cols > 0 {
            // SAFETY: row `at` exists, so its start is inside the region.
            unsafe { NonNull::new_unchecked(self.ptr.as_ptr().add(at * self.row_stride)) }
        } else {
            NonNull::dangling()
        };
        let top = MatMut {
            ptr: self.ptr,
            rows: at,
            cols: self.cols,
            row_stride: self.row_stride,
            _life: PhantomData,
        };
        let bottom = MatMut {
            ptr: bottom_ptr,
            rows: self.rows - at,
            cols: self.cols,
            row_stride: self.row_stride,
            _life: PhantomData,
        };
        (top, bottom)
    }

    /// Raw pointer to element (0, 0). Writes through it must stay inside the view.
    pub fn as_mut_ptr(&mut self) -> *mut f32 {
        self.ptr.as_ptr()
    }
}

/// Read-only `rows×cols` f32 matrix view with arbitrary (non-negative) row and column strides.
#[derive(Clone, Copy)]
pub struct MatRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// View `data` with element `(i, j)` at `data[i·row_stride + j·col_stride]`.
    ///
    /// Panics if the last element lies outside `data`.
    pub fn new(
        data: &'a [f32],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Self {
        if rows > 0 && cols > 0 {
            let last = (rows - 1) * row_stride + (cols - 1) * col_stride;
            assert!(
                last < data.len(),
                "MatRef::new: {rows}×{cols} (strides {row_stride},{col_stride}) needs {} values, got {}",
                last + 1,
                data.len()
            );
        }
        MatRef {
            data,
            rows,
            cols,
            row_stride,
            col_stride,
        }
    }

    /// Contiguous row-major view; panics if `data.len() != rows·cols`.
    pub fn from_slice(data: &'a [f32], rows: usize, cols: usize) -> Self {
        assert!(
            data.len() == rows * cols,
            "MatRef::from_slice: {} values for {rows}×{cols}",
            data.len()
        );
        Self::new(data, rows, cols, cols, 1)
    }

    /// The transposed view (no copy).
    pub fn t(self) -> MatRef<'a> {
        MatRef {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Row stride in elements.
    pub fn row_stride(&self) -> usize {
        self.row_stride
    }

    /// Column stride in elements.
    pub fn col_stride(&self) -> usize {
        self.col_stride
    }

    /// Element `(i, j)` (bounds-checked).
    pub fn at(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.row_stride + j * self.col_stride]
    }

    /// The underlying slice (element (0,0) first).
    pub fn data(&self) -> &'a [f32] {
        self.data
    }
}
