//! Warmed-up kernels perform no heap allocation at decoder sizes (the decoder step's
//! zero-allocation guarantee depends on it): scratch buffers are per-thread and grow-only.
//! Linear layers with m > 256 rows (the encoder) and large matmuls use the `gemm` crate, which
//! allocates its packing buffers per call; that is outside this guarantee.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use hark_engine::kernels::{Isa, Kernels, MatMut, MatRef, Weights};

thread_local! {
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

struct Counting;

// SAFETY: forwards to the system allocator; only counts (per thread, const-initialised TLS).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: forwarded contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs() -> usize {
    ALLOCS.with(|c| c.get())
}

#[test]
fn warmed_up_linear_kernels_do_not_allocate() {
    let (k, n) = (96usize, 40usize);
    let wf: Vec<f32> = (0..n * k)
        .map(|i| ((i * 7 % 13) as f32 - 6.0) * 0.01)
        .collect();
    let wh: Vec<half::f16> = wf.iter().map(|&v| half::f16::from_f32(v)).collect();
    let wb: Vec<half::bf16> = wf.iter().map(|&v| half::bf16::from_f32(v)).collect();
    let q: Vec<i8> = (0..n * k).map(|i| (i % 255) as i8 / 2).collect();
    let scales = vec![0.01f32; n];
    let bias = vec![0.5f32; n];
    let weights = [
        Weights::F32(&wf),
        Weights::F16(&wh),
        Weights::Bf16(&wb),
        Weights::I8 {
            q: &q,
            scales: &scales,
        },
    ];
    for isa in Isa::to_test() {
        let kern = Kernels::for_isa(isa).expect("available");
        // Decode sizes, and m = 40 (int8 packed path, float n-blocked dot-form tiles).
        for m in [1usize, 5, 40] {
            let x: Vec<f32> = (0..m * k).map(|i| (i % 17) as f32 * 0.1 - 0.8).collect();
            let mut out = vec![0f32; m * n];
            for w in weights {
                // Warm-up call sizes the scratch buffers.
                kern.linear(&x, w, Some(&bias), MatMut::from_slice(&mut out, m, n));
                let before = allocs();
                kern.linear(&x, w, Some(&bias), MatMut::from_slice(&mut out, m, n));
                let after = allocs();
                assert_eq!(
                    after - before,
                    0,
                    "{} m={m} {:?}: {} allocations",
                    isa.name(),
                    std::mem::discriminant(&w),
                    after - before
                );
            }
        }
    }
}

#[test]
fn warmed_up_attention_tile_matmuls_do_not_allocate() {
    let (tq, tk, d) = (16usize, 64usize, 64usize);
    let q: Vec<f32> = (0..tq * d).map(|i| (i % 7) as f32 * 0.1).collect();
    let kmat: Vec<f32> = (0..tk * d).map(|i| (i % 5) as f32 * 0.1).collect();
    let mut s = vec![0f32; tq * tk];
    let mut o = vec![0f32; tq * d];
    for isa in Isa::to_test() {
        let kern = Kernels::for_isa(isa).expect("available");
        for _ in 0..2 {
            let before = allocs();
            // Q·Kᵀ, then P·V.
            (kern.matmul_f32)(
                MatRef::from_slice(&q, tq, d),
                MatRef::from_slice(&kmat, tk, d).t(),
                false,
                MatMut::from_slice(&mut s, tq, tk),
            );
            (kern.matmul_f32)(
                MatRef::from_slice(&s, tq, tk),
                MatRef::from_slice(&kmat, tk, d),
                true,
                MatMut::from_slice(&mut o, tq, d),
            );
            assert_eq!(
                allocs() - before,
                0,
                "{}: attention-tile matmuls allocated",
                isa.name()
            );
        }
    }
}
