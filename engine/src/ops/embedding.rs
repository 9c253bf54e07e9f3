//! Embedding lookup from a table of any weight dtype.

use crate::dtype::Element;
use crate::error::{check_len, Error, Result};
use crate::tensor::{Tensor, WeightView};

fn copy_row<T: Element>(src: &[T], out: &mut [f32], scale: f32) {
    out.iter_mut()
        .zip(src)
        .for_each(|(o, s)| *o = s.to_f32() * scale);
}

/// Gathers rows `ids` of a `[vocab, dim]` table (f32/f16/bf16/int8) into `out`
/// `[ids.len(), dim]` as f32.
pub fn embedding(table: &Tensor, ids: &[u32], out: &mut [f32]) -> Result<()> {
    if table.rank() != 2 {
        return Err(Error::ShapeMismatch {
            what: "embedding: table must be [vocab, dim]".into(),
            expected: vec![0, 0],
            got: table.shape().to_vec(),
        });
    }
    let (vocab, dim) = (table.dim(0), table.dim(1));
    check_len("embedding", "out", out.len(), ids.len() * dim)?;
    let wv = table.weight_view()?;
    for (i, &id) in ids.iter().enumerate() {
        let id = id as usize;
        if id >= vocab {
            return Err(Error::InvalidArgument {
                op: "embedding",
                reason: format!("token id {id} out of range for vocabulary of {vocab}"),
            });
        }
        let o = &mut out[i * dim..(i + 1) * dim];
        let r = id * dim..(id + 1) * dim;
        match wv {
            WeightView::F32(d) => o.copy_from_slice(&d[r]),
            WeightView::F16(d) => copy_row(&d[r], o, 1.0),
            WeightView::Bf16(d) => copy_row(&d[r], o, 1.0),
            WeightView::I8 { q, scales } => copy_row(&q[r], o, scales[id]),
        }
    }
    Ok(())
}
