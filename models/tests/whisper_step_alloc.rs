//! A warmed-up Whisper decoder step on the real tiny.en model (self-attention over
//! hark-engine's KvCache, cross-attention over the window's CrossKv, MLP, vocabulary
//! logits, beam reorder through the index table) performs zero heap allocations, for
//! f16 and int8 weights and for 1 and 5 beam rows. The global allocator counts every
//! allocation in the process; this binary holds a single test so nothing else allocates
//! meanwhile. Skips when tiny.en is not installed.

mod whisper_common;

use hark_models::whisper::{DecodeRows, Precision, WhisperModel};
use hark_test_support::alloc::{start_counting, stop_counting, CountingAlloc};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

#[test]
fn whisper_decoder_step_allocates_nothing_after_warmup() {
    let Some(dir) = whisper_common::model_dir("tiny.en") else {
        return;
    };
    for precision in [Precision::F16, Precision::Int8] {
        let model = WhisperModel::load(&dir, precision).expect("loading tiny.en");
        let mel: Vec<f32> = (0..80 * model.n_frames())
            .map(|i| ((i % 97) as f32 / 97.0) - 0.5)
            .collect();
        let enc = model.encode(&mel).expect("encoder");
        let mut st = model.new_state(5);
        model.set_audio(&mut st, &enc).expect("cross K/V");
        model
            .decode_step(&mut st, &[50257, 50362], DecodeRows::Shared)
            .expect("prompt");
        let beams = [0usize, 1, 2, 3, 4];
        let mut sink = 0f32;
        let mut step = |st: &mut _, rows: usize, k: u32| {
            let toks: [u32; 5] = std::array::from_fn(|i| 220 + k + i as u32);
            model
                .decode_step(st, &toks[..rows], DecodeRows::Beams(&beams[..rows]))
                .expect("step");
            sink += model.step_logits(st, 0, rows).expect("logits")[7];
            st.reorder(&[4, 3, 2, 1, 0][..rows]).expect("reorder");
        };
        // warm-up with both shapes
        for k in 0..3 {
            step(&mut st, 5, k);
            step(&mut st, 1, k);
        }
        start_counting();
        for k in 3..8 {
            step(&mut st, 5, k);
            step(&mut st, 1, k);
        }
        let n = stop_counting();
        assert!(sink.is_finite());
        assert_eq!(
            n, 0,
            "{precision}: {n} allocations in 10 warmed-up decoder steps"
        );
    }
}
