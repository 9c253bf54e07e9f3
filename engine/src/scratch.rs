//! Per-stream scratch memory.
//!
//! A [`Scratch`] is one growable f32 buffer handed out as several disjoint slices at
//! once ([`Scratch::split`]). The first decoder step sizes it; later steps with the same
//! (or smaller) sizes reuse it, so a warmed-up step performs no heap allocation.
//! [`Scratch::grow_count`] lets tests assert that.

/// A reusable f32 arena.
#[derive(Debug, Default, Clone)]
pub struct Scratch {
    buf: Vec<f32>,
    grows: usize,
}

impl Scratch {
    /// An empty arena (grows on first use).
    pub fn new() -> Self {
        Scratch::default()
    }

    /// An arena with room for `n` floats.
    pub fn with_capacity(n: usize) -> Self {
        Scratch {
            buf: vec![0.0; n],
            grows: 0,
        }
    }

    /// Current size in floats.
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// How many times the arena had to grow (allocate).
    pub fn grow_count(&self) -> usize {
        self.grows
    }

    /// `N` disjoint slices of the given sizes, growing the arena if needed. Contents are
    /// unspecified (left over from earlier use).
    pub fn split<const N: usize>(&mut self, sizes: [usize; N]) -> [&mut [f32]; N] {
        let total: usize = sizes.iter().sum();
        if self.buf.len() < total {
            self.buf.resize(total, 0.0);
            self.grows += 1;
        }
        let mut rest: &mut [f32] = &mut self.buf[..total];
        std::array::from_fn(|i| {
            let (a, b) = std::mem::take(&mut rest).split_at_mut(sizes[i]);
            rest = b;
            a
        })
    }
}
