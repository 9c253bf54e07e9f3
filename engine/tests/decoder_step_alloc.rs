//! A warmed-up decoder step (self-attention over the KV cache, cross-attention, MLP,
//! logits, beam reorder) performs zero heap allocations. The global allocator counts
//! every allocation in the process (pool workers included); this binary holds a single
//! test so nothing else allocates meanwhile.

mod common;

use common::{decoder::Model, lcg};
use hark_engine::DType;
use hark_test_support::alloc::{start_counting, stop_counting, CountingAlloc};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

#[test]
fn decoder_step_allocates_nothing_after_warmup() {
    // Large enough vocabulary that the logits projection takes the multithreaded path.
    for dtype in [DType::F32, DType::F16, DType::I8] {
        let (d, beams, frames) = (64, 3, 300);
        let model = Model::new(d, 4, 256, 2048, 2, dtype);
        let mut st = model.new_state(beams, 32, frames);
        let enc = lcg(5, frames * d);
        let mut logits = vec![0f32; beams * model.vocab];

        // Warm-up: one utterance with a 3-token prompt and a few steps.
        let warm = |st: &mut common::decoder::State, logits: &mut Vec<f32>| {
            st.cache.reset();
            model.set_encoder(st, &enc, frames);
            let prompt: Vec<u32> = (0..beams).flat_map(|_| [1u32, 2, 3]).collect();
            model.step(st, &prompt, 3, logits);
            for s in 0..4u32 {
                let toks: Vec<u32> = (0..beams as u32).map(|b| 10 + s * 7 + b).collect();
                model.step(st, &toks, 1, logits);
                st.cache.reorder(&[0, 0, 1]).unwrap();
            }
        };
        warm(&mut st, &mut logits);
        warm(&mut st, &mut logits);

        // The counter itself works.
        start_counting();
        let probe = std::hint::black_box(vec![1u8; 16]);
        let probed = stop_counting();
        drop(probe);
        assert!(probed >= 1, "counting allocator is not active");

        let toks = [40u32, 41, 42];
        let parents = [1usize, 0, 0];
        start_counting();
        for _ in 0..6 {
            model.step(&mut st, &toks, 1, &mut logits);
            st.cache.reorder(&parents).unwrap();
        }
        let n = stop_counting();
        assert_eq!(
            n, 0,
            "{dtype}: {n} heap allocations in 6 warmed-up decoder steps"
        );
        assert!(logits.iter().all(|v| v.is_finite()));
    }
}
