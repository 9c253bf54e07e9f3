//! The KV cache with beam reordering gives the same logits as recomputing attention over
//! each beam's full prefix from scratch.

mod common;

use common::{assert_close, decoder::Model, lcg};
use hark_engine::{DType, KvCache};

#[test]
fn beam_search_kv_cache_matches_full_recompute() {
    let (d, beams, frames) = (32, 3, 12);
    let model = Model::new(d, 4, 64, 97, 2, DType::F32);
    let enc = lcg(11, frames * d);
    let mut st = model.new_state(beams, 24, frames);
    model.set_encoder(&mut st, &enc, frames);
    let mut logits = vec![0f32; beams * model.vocab];

    // Shared prompt, stored once for all beams.
    let prompt = [5u32, 6, 7];
    let mut hist: Vec<Vec<u32>> = vec![prompt.to_vec(); beams];
    let toks: Vec<u32> = (0..beams).flat_map(|_| prompt).collect();
    model.step(&mut st, &toks, 3, &mut logits);
    let schedule: [([usize; 3], [u32; 3]); 6] = [
        ([0, 0, 0], [10, 11, 12]),
        ([2, 0, 1], [20, 21, 22]),
        ([1, 1, 0], [30, 31, 32]),
        ([0, 2, 2], [40, 41, 42]),
        ([2, 1, 0], [50, 51, 52]),
        ([0, 0, 1], [60, 61, 62]),
    ];
    for (step, (parents, toks)) in schedule.iter().enumerate() {
        st.cache.reorder(parents).unwrap();
        hist = parents.iter().map(|&p| hist[p].clone()).collect();
        for (b, &t) in toks.iter().enumerate() {
            hist[b].push(t);
        }
        model.step(&mut st, toks, 1, &mut logits);

        // Recompute every beam from scratch over its whole history (one call, causal).
        for (b, h) in hist.iter().enumerate() {
            let mut fresh = model.new_state(1, 24, frames);
            model.set_encoder(&mut fresh, &enc, frames);
            let mut want = vec![0f32; model.vocab];
            model.step(&mut fresh, h, h.len(), &mut want);
            let got = &logits[b * model.vocab..(b + 1) * model.vocab];
            assert_close(&format!("step {step} beam {b}"), got, &want, 1e-4, 1e-4);
        }
    }
}

#[test]
fn reorder_permutes_index_tables_without_touching_rows() {
    let mut c = KvCache::new(1, 2, 4, 2);
    c.append(0, &[1., 1., 2., 2.], &[1., 1., 2., 2.]).unwrap(); // beam0=1, beam1=2 at t=0
    c.reorder(&[1, 1]).unwrap();
    c.append(0, &[3., 3., 4., 4.], &[3., 3., 4., 4.]).unwrap();
    let rows = |c: &KvCache, b: usize| {
        let k = c.keys(0, b).unwrap();
        (0..k.len()).map(|j| k.row(j, 2)[0]).collect::<Vec<_>>()
    };
    assert_eq!(rows(&c, 0), vec![2., 3.]);
    assert_eq!(rows(&c, 1), vec![2., 4.]);
    c.truncate(1);
    assert_eq!(c.len(), 1);
    assert_eq!(rows(&c, 0), vec![2.]);
    c.reset();
    assert!(c.is_empty());
    assert!(c.reorder(&[0, 5]).is_err());
    assert!(c.append(0, &[1., 1., 1.], &[1., 1., 1.]).is_err());
}

#[test]
fn shared_prompt_is_stored_once_and_visible_to_every_beam() {
    let mut c = KvCache::new(1, 3, 4, 1);
    c.append_shared(0, &[7., 8.], &[7., 8.]).unwrap();
    for b in 0..3 {
        let k = c.keys(0, b).unwrap();
        assert_eq!(
            (0..k.len()).map(|j| k.row(j, 1)[0]).collect::<Vec<_>>(),
            vec![7., 8.]
        );
    }
    assert!(
        c.append_shared(0, &[1., 2., 3.], &[1., 2., 3.]).is_err(),
        "over capacity must fail"
    );
}

#[test]
fn prefix_of_a_cache_view_reads_only_the_first_positions() {
    let (beams, dim) = (2, 3);
    let mut c = KvCache::new(1, beams, 8, dim);
    // a shared 3-position prompt, then one step per beam
    let prompt: Vec<f32> = (0..3 * dim).map(|i| i as f32).collect();
    c.append_shared(0, &prompt, &prompt).unwrap();
    let step: Vec<f32> = (0..beams * dim).map(|i| 100.0 + i as f32).collect();
    c.append(0, &step, &step).unwrap();
    let k = c.keys(0, 1).unwrap();
    assert_eq!(k.len(), 4);
    let p = k.prefix(2);
    assert_eq!(p.len(), 2);
    assert_eq!(p.row(0, dim), &prompt[..dim]);
    assert_eq!(p.row(1, dim), &prompt[dim..2 * dim]);
    assert_eq!(k.prefix(10).len(), 4);
    assert_eq!(k.row(3, dim), &step[dim..]);
}
