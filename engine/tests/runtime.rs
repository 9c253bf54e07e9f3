//! Thread pool, scratch arena, delegate dispatch and tensor views.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Barrier;

use common::lcg;
use hark_engine::delegate::{run_stage, Delegate, Executor, Stage, StageKind};
use hark_engine::threads::ThreadPool;
use hark_engine::{DType, Error, Scratch, Tensor};

#[test]
fn pool_runs_every_task_exactly_once() {
    let pool = ThreadPool::new(3);
    assert_eq!(pool.threads(), 3);
    for n in [0usize, 1, 2, 7, 1000] {
        let hits: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
        pool.parallel_for(n, |i| {
            hits[i].fetch_add(1, Ordering::Relaxed);
        });
        assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1), "n={n}");
    }
    let sum = AtomicUsize::new(0);
    pool.parallel_range(1003, 10, |a, b| {
        sum.fetch_add((a..b).sum::<usize>(), Ordering::Relaxed);
    });
    assert_eq!(sum.load(Ordering::Relaxed), (0..1003).sum::<usize>());
}

#[test]
fn pool_maps_each_chunk_once_in_order_with_any_thread_count() {
    let data: Vec<u32> = (0..103).collect();
    for threads in [1, 2, 3] {
        let pool = ThreadPool::new(threads);
        let mut d = data.clone();
        // 11 chunks of 10 exist (the last of 3); map the first 8 only.
        let sums = pool.map_chunks_mut(&mut d, 10, 8, |i, c| {
            assert_eq!(c[0] as usize, i * 10);
            c.iter_mut().for_each(|x| *x += 1000);
            c.iter().sum::<u32>()
        });
        let want: Vec<u32> = (0..8u32)
            .map(|i| (0..10).map(|j| 1000 + i * 10 + j).sum())
            .collect();
        assert_eq!(sums, want, "{threads} threads");
        assert!(d[..80].iter().zip(&data).all(|(a, b)| *a == b + 1000));
        assert_eq!(&d[80..], &data[80..], "chunks past `count` untouched");
    }
}

#[test]
fn pool_nested_and_concurrent_callers_run_inline_without_deadlock() {
    let pool = ThreadPool::new(2);
    let total = AtomicUsize::new(0);
    // Nested: inner loops run on the calling worker.
    pool.parallel_for(4, |_| {
        pool.parallel_for(5, |_| {
            total.fetch_add(1, Ordering::Relaxed);
        })
    });
    assert_eq!(total.load(Ordering::Relaxed), 20);
    // Two "streams" sharing the pool at the same time.
    let barrier = Barrier::new(2);
    let count = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                barrier.wait();
                for _ in 0..200 {
                    pool.parallel_for(8, |_| {
                        count.fetch_add(1, Ordering::Relaxed);
                    });
                }
            });
        }
    });
    assert_eq!(count.load(Ordering::Relaxed), 2 * 200 * 8);
}

#[test]
fn pool_reraises_a_task_panic_after_all_tasks_finish() {
    let pool = ThreadPool::new(2);
    let done = AtomicUsize::new(0);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        pool.parallel_for(16, |i| {
            if i == 3 {
                panic!("task 3 fails");
            }
            done.fetch_add(1, Ordering::Relaxed);
        })
    }));
    assert!(r.is_err());
    assert_eq!(done.load(Ordering::Relaxed), 15);
    // The pool still works afterwards.
    let n = AtomicUsize::new(0);
    pool.parallel_for(10, |_| {
        n.fetch_add(1, Ordering::Relaxed);
    });
    assert_eq!(n.load(Ordering::Relaxed), 10);
}

#[test]
fn scratch_grows_once_then_reuses_its_buffer() {
    let mut s = Scratch::new();
    {
        let [a, b, c] = s.split([10, 0, 5]);
        assert_eq!((a.len(), b.len(), c.len()), (10, 0, 5));
        a[9] = 1.0;
        c[0] = 2.0;
    }
    assert_eq!(s.grow_count(), 1);
    for _ in 0..10 {
        let [a, b] = s.split([7, 8]);
        a.fill(0.0);
        b.fill(1.0);
    }
    assert_eq!(s.grow_count(), 1);
    let _ = s.split([100]);
    assert_eq!(s.grow_count(), 2);
}

struct FakeNpu {
    takes: StageKind,
    ran: AtomicUsize,
}

impl Delegate for FakeNpu {
    fn name(&self) -> &str {
        "fake-npu"
    }
    fn accepts(&self, stage: &Stage<'_>) -> bool {
        stage.kind == self.takes
    }
    fn run(&self, stage: &Stage<'_>, outputs: &mut [&mut [f32]]) -> hark_engine::Result<()> {
        self.ran.fetch_add(1, Ordering::Relaxed);
        let x = stage.inputs[0].2;
        outputs[0].iter_mut().zip(x).for_each(|(o, v)| *o = 2.0 * v);
        Ok(())
    }
}

#[test]
fn delegate_runs_accepted_stages_and_cpu_runs_the_rest() {
    let npu = FakeNpu {
        takes: StageKind::Encoder,
        ran: AtomicUsize::new(0),
    };
    let x = [1f32, 2.0, 3.0];
    let shape = [3usize];
    let inputs = [("x", &shape[..], &x[..])];
    let cpu = |st: &Stage<'_>, out: &mut [&mut [f32]]| {
        out[0]
            .iter_mut()
            .zip(st.inputs[0].2)
            .for_each(|(o, v)| *o = v + 1.0);
        Ok(())
    };
    let mut y = [0f32; 3];
    let enc = Stage {
        kind: StageKind::Encoder,
        model: "test",
        inputs: &inputs,
    };
    let ex = run_stage(&[&npu], &enc, &mut [&mut y[..]], cpu).unwrap();
    assert_eq!(ex, Executor::Delegate("fake-npu".into()));
    assert_eq!(y, [2.0, 4.0, 6.0]);
    let dec = Stage {
        kind: StageKind::DecoderStep,
        model: "test",
        inputs: &inputs,
    };
    let ex = run_stage(&[&npu], &dec, &mut [&mut y[..]], cpu).unwrap();
    assert_eq!(ex, Executor::Cpu);
    assert_eq!(y, [2.0, 3.0, 4.0]);
    assert_eq!(npu.ran.load(Ordering::Relaxed), 1);
}

#[test]
fn tensor_views_share_storage_and_index_correctly() {
    let data: Vec<f32> = (0..24).map(|v| v as f32).collect();
    let t = Tensor::from_f32(&[2, 3, 4], &data).unwrap();
    let n = t.narrow(1, 1, 2).unwrap();
    assert_eq!(n.shape(), &[2, 2, 4]);
    assert!(!n.is_contiguous());
    assert_eq!(
        n.to_f32_vec().unwrap(),
        vec![4., 5., 6., 7., 8., 9., 10., 11., 16., 17., 18., 19., 20., 21., 22., 23.]
    );
    assert!(
        std::sync::Arc::ptr_eq(n.storage(), t.storage()),
        "narrow must not copy"
    );
    let tr = t.transpose(1, 2).unwrap();
    assert_eq!(tr.shape(), &[2, 4, 3]);
    assert_eq!(tr.to_f32_vec().unwrap()[..6], [0., 4., 8., 1., 5., 9.]);
    assert!(
        tr.reshape(&[24]).is_err(),
        "reshape of a non-contiguous view must fail"
    );
    let c = tr.contiguous();
    assert_eq!(
        c.reshape(&[8, 3]).unwrap().as_f32().unwrap()[3..6],
        [1., 5., 9.]
    );
    let r = t.reshape(&[6, 4]).unwrap();
    assert!(std::sync::Arc::ptr_eq(r.storage(), t.storage()));
    assert!(matches!(t.narrow(0, 1, 5), Err(Error::Layout { .. })));

    // int8: narrowing rows keeps the matching scales.
    let w = lcg(3, 4 * 5);
    let q = Tensor::from_f32(&[4, 5], &w)
        .unwrap()
        .to_dtype(DType::I8)
        .unwrap();
    let rows = q.narrow(0, 2, 2).unwrap();
    assert_eq!(
        rows.scales().unwrap().as_f32().unwrap(),
        &q.scales().unwrap().as_f32().unwrap()[2..4]
    );
    assert_eq!(rows.to_f32_vec().unwrap(), q.to_f32_vec().unwrap()[10..20]);
    assert!(q.transpose(0, 1).is_err());
    // f16 round trip through to_dtype.
    let h = Tensor::from_f32(&[4, 5], &w)
        .unwrap()
        .to_dtype(DType::F16)
        .unwrap();
    let back = h.to_dtype(DType::F32).unwrap();
    for (a, b) in back.as_f32().unwrap().iter().zip(&w) {
        assert!((a - b).abs() <= b.abs() * 2f32.powi(-11) + 1e-8);
    }
}
