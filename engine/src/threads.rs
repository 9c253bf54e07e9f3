//! The engine's thread pool.
//!
//! One process-wide pool ([`pool`]) sized by the `threads` setting ([`set_threads`], or
//! the `HARK_THREADS` environment variable, default `available_parallelism()`). Ops split
//! large matmuls, convs and attention heads across it with [`ThreadPool::parallel_for`];
//! the calling thread always takes part, so a pool of `n` threads has `n - 1` workers.
//!
//! Why not rayon: a decoder step must perform zero heap allocations after warm-up, and
//! rayon's injector queue allocates blocks while jobs are pushed from outside the pool.
//! This pool hands out one job at a time through a mutex/condvar pair and an atomic task
//! counter, and never allocates after construction.
//!
//! **Several streams, no oversubscription.** The pool runs one parallel op at a time.
//! When a second stream calls `parallel_for` while the pool is busy, it does not queue
//! behind it nor spawn threads: it runs its tasks on its own thread. With `S` streams the
//! engine therefore never has more than `S + n - 1` runnable threads.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

type Task = dyn Fn(usize) + Sync;

#[derive(Clone, Copy)]
struct JobPtr(*const Task);
// SAFETY: the pointee is `Sync`, and `parallel_for` keeps it alive until every worker
// has finished with it.
unsafe impl Send for JobPtr {}

struct State {
    generation: u64,
    job: Option<JobPtr>,
    n_tasks: usize,
    active: usize,
    shutdown: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Mirror of `State::generation` that idle workers poll briefly before sleeping.
    gen: AtomicU64,
    work: Condvar,
    done: Condvar,
    next: AtomicUsize,
    panicked: AtomicBool,
}

/// A fixed-size pool of worker threads running one data-parallel loop at a time.
pub struct ThreadPool {
    threads: usize,
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    busy: Mutex<()>,
}

impl std::fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ThreadPool({} threads)", self.threads)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn run_tasks(shared: &Shared, job: JobPtr, n: usize) {
    loop {
        let i = shared.next.fetch_add(1, Ordering::Relaxed);
        if i >= n {
            break;
        }
        // SAFETY: see `JobPtr`.
        let f = unsafe { &*job.0 };
        if catch_unwind(AssertUnwindSafe(|| f(i))).is_err() {
            shared.panicked.store(true, Ordering::Relaxed);
        }
    }
}

/// How long an idle worker polls for the next job before sleeping on the condvar. A
/// decoder step issues ops back to back, each shorter than a futex wake-up; polling this
/// long catches the next one without a context switch and costs little when idle.
const SPIN: Duration = Duration::from_micros(50);

fn worker(shared: Arc<Shared>) {
    let mut seen = 0u64;
    loop {
        let t0 = Instant::now();
        while shared.gen.load(Ordering::Acquire) == seen && t0.elapsed() < SPIN {
            for _ in 0..64 {
                std::hint::spin_loop();
            }
        }
        let (job, n) = {
            let mut st = lock(&shared.state);
            while st.generation == seen && !st.shutdown {
                st = shared.work.wait(st).unwrap_or_else(|p| p.into_inner());
            }
            if st.shutdown {
                return;
            }
            seen = st.generation;
            (st.job, st.n_tasks)
        };
        if let Some(job) = job {
            run_tasks(&shared, job, n);
        }
        let mut st = lock(&shared.state);
        st.active -= 1;
        if st.active == 0 {
            shared.done.notify_all();
        }
    }
}

impl ThreadPool {
    /// A pool of `threads` threads in total (the caller plus `threads - 1` workers).
    pub fn new(threads: usize) -> ThreadPool {
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                generation: 0,
                job: None,
                n_tasks: 0,
                active: 0,
                shutdown: false,
            }),
            gen: AtomicU64::new(0),
            work: Condvar::new(),
            done: Condvar::new(),
            next: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
        });
        let workers = (1..threads)
            .filter_map(|i| {
                let s = shared.clone();
                std::thread::Builder::new()
                    .name(format!("hark-engine-{i}"))
                    .spawn(move || worker(s))
                    .ok()
            })
            .collect::<Vec<_>>();
        ThreadPool {
            threads: workers.len() + 1,
            shared,
            workers,
            busy: Mutex::new(()),
        }
    }

    /// Total number of threads, including the calling thread.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `f(i)` for every `i` in `0..n_tasks`, spread over the pool; returns when all
    /// are done. Runs serially on the calling thread when the pool has one thread, when
    /// `n_tasks <= 1`, or when another stream is using the pool. Never allocates.
    ///
    /// # Panics
    /// If a task panics, the panic is re-raised here after all tasks have finished.
    pub fn parallel_for<F: Fn(usize) + Sync>(&self, n_tasks: usize, f: F) {
        if n_tasks == 0 {
            return;
        }
        let guard = if self.workers.is_empty() || n_tasks == 1 {
            None
        } else {
            self.busy.try_lock().ok()
        };
        let Some(_busy) = guard else {
            (0..n_tasks).for_each(f);
            return;
        };
        let task: &(dyn Fn(usize) + Sync + '_) = &f;
        // SAFETY: erase the lifetime; `WaitGuard` below does not return (or unwind) past
        // this frame before every worker has dropped its use of the pointer.
        let job = JobPtr(unsafe {
            std::mem::transmute::<&(dyn Fn(usize) + Sync + '_), &'static Task>(task)
        } as *const Task);
        self.shared.panicked.store(false, Ordering::Relaxed);
        {
            let mut st = lock(&self.shared.state);
            self.shared.next.store(0, Ordering::Relaxed);
            st.job = Some(job);
            st.n_tasks = n_tasks;
            st.active = self.workers.len();
            st.generation += 1;
            self.shared.gen.store(st.generation, Ordering::Release);
            self.shared.work.notify_all();
        }
        struct WaitGuard<'a>(&'a Shared);
        impl Drop for WaitGuard<'_> {
            fn drop(&mut self) {
                let mut st = lock(&self.0.state);
                while st.active > 0 {
                    st = self.0.done.wait(st).unwrap_or_else(|p| p.into_inner());
                }
                st.job = None;
            }
        }
        let wait = WaitGuard(&self.shared);
        run_tasks(&self.shared, job, n_tasks);
        drop(wait);
        if self.shared.panicked.load(Ordering::Relaxed) {
            panic!("hark-engine: a parallel task panicked");
        }
    }

    /// Runs `f(i, chunk)` on each of the first `count` chunks of `chunk` items of `data`
    /// (the last may be shorter), spread over the pool, and returns the results in chunk
    /// order. Each task owns its chunk, so the results do not depend on the number of
    /// threads. Allocates one slot per chunk (unlike [`Self::parallel_for`]).
    pub fn map_chunks_mut<T, R, F>(
        &self,
        data: &mut [T],
        chunk: usize,
        count: usize,
        f: F,
    ) -> Vec<R>
    where
        T: Send,
        R: Send,
        F: Fn(usize, &mut [T]) -> R + Sync,
    {
        type Slot<'a, T, R> = Mutex<(Option<&'a mut [T]>, Option<R>)>;
        let slots: Vec<Slot<'_, T, R>> = data
            .chunks_mut(chunk.max(1))
            .take(count)
            .map(|c| Mutex::new((Some(c), None)))
            .collect();
        self.parallel_for(slots.len(), |i| {
            let mut slot = lock(&slots[i]);
            if let Some(c) = slot.0.take() {
                slot.1 = Some(f(i, c));
            }
        });
        slots
            .into_iter()
            .filter_map(|s| s.into_inner().unwrap_or_else(|p| p.into_inner()).1)
            .collect()
    }

    /// Splits `0..len` into at most `threads * 4` contiguous chunks of at least
    /// `min_chunk` items and runs `f(start, end)` on each in parallel.
    pub fn parallel_range<F: Fn(usize, usize) + Sync>(&self, len: usize, min_chunk: usize, f: F) {
        if len == 0 {
            return;
        }
        let max_chunks = len.div_ceil(min_chunk.max(1));
        let chunks = (self.threads * 4).min(max_chunks).max(1);
        if chunks == 1 {
            f(0, len);
            return;
        }
        let per = len.div_ceil(chunks);
        let chunks = len.div_ceil(per);
        self.parallel_for(chunks, |c| {
            let s = c * per;
            f(s, (s + per).min(len));
        });
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        {
            let mut st = lock(&self.shared.state);
            st.shutdown = true;
            self.shared.work.notify_all();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

static POOL: OnceLock<ThreadPool> = OnceLock::new();
static REQUESTED: AtomicUsize = AtomicUsize::new(0);

/// The default thread count: `HARK_THREADS` if set, else `available_parallelism()`.
pub fn default_threads() -> usize {
    std::env::var("HARK_THREADS")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
}

/// Sets the size of the shared pool. Must be called before the first op runs; calling it
/// again with the same value is fine, a different value after start-up is an error.
pub fn set_threads(threads: usize) -> Result<()> {
    let threads = threads.max(1);
    REQUESTED.store(threads, Ordering::SeqCst);
    let p = POOL.get_or_init(|| ThreadPool::new(threads));
    if p.threads() != threads {
        return Err(Error::InvalidArgument {
            op: "threads::set_threads",
            reason: format!(
                "the shared pool already runs {} threads; set the count before the first op",
                p.threads()
            ),
        });
    }
    Ok(())
}

/// The shared pool (created on first use).
pub fn pool() -> &'static ThreadPool {
    POOL.get_or_init(|| {
        let r = REQUESTED.load(Ordering::SeqCst);
        ThreadPool::new(if r > 0 { r } else { default_threads() })
    })
}
