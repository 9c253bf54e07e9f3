//! Batch runs: many audio files through a pool of workers sharing one loaded model.
//!
//! Shape of a run ([`run`]):
//! * a *feeder* thread walks the inputs ([`inputs::InputWalker`], streaming, never the
//!   whole list in memory), skips files whose output already exists (unless
//!   `overwrite`), and hands each remaining file to the workers through a rendezvous
//!   channel, so a file is only opened when a worker is free: at most `jobs` decoded
//!   files exist at any time, however many inputs there are;
//! * `jobs` *workers* call the work function (decode + transcribe + render; the model is
//!   borrowed by all of them, it is immutable and `Sync`) and write each output as soon
//!   as it is ready, atomically (a hidden temporary file in the same directory, then a
//!   rename), so an interrupted run never leaves a half-written transcript behind;
//! * the calling thread *collects* results: progress bar, failures (printed at once and
//!   listed again at the end), and, without an output directory, stdout output in input
//!   order (results that finish early wait in a small window; the feeder does not run
//!   more than [`ORDER_WINDOW`] files ahead of the oldest unprinted one).
//!
//! Cancellation (Ctrl-C) is a flag: the feeder stops, workers finish the file they are
//! on (its output is written) and take no new one, and the summary counts the files not
//! started. A panic inside the work function fails that file only.
//!
//! Compute threads are not this module's business: the engine's shared pool runs one
//! parallel op at a time and a stream that finds it busy computes on its own thread, so
//! `jobs` workers over a pool of `n` threads never have more than `jobs + n - 1` runnable
//! threads; `hark transcribe` sizes the pool from that (see `cmd/transcribe.rs`).

pub mod inputs;

use std::collections::{BTreeMap, HashSet};
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use inputs::{Found, InputWalker};

/// How far (in files) the feeder may run ahead of the oldest result not yet printed
/// when output goes to stdout in input order.
pub const ORDER_WINDOW: usize = 256;

/// How a batch run writes its results.
#[derive(Debug, Clone)]
pub struct Config {
    /// Worker threads (files in flight), at least 1.
    pub jobs: usize,
    /// Write `<dir>/<stem>.<ext>` per input; `None`: print to stdout in input order.
    pub output_dir: Option<PathBuf>,
    /// Extension of output files (the format name).
    pub ext: &'static str,
    /// Redo inputs whose output file already exists.
    pub overwrite: bool,
    /// Draw a progress bar on stderr (only shown when stderr is a terminal).
    pub progress: bool,
}

/// Per-stage time spent on one file (or summed over many), seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timings {
    /// Reading and decoding the audio file.
    pub audio_decode: f64,
    /// Feature extraction.
    pub features: f64,
    /// Encoder.
    pub encoder: f64,
    /// Decoder.
    pub decoder: f64,
    /// Whole file (decode to rendered output).
    pub total: f64,
}

impl std::ops::AddAssign for Timings {
    fn add_assign(&mut self, o: Timings) {
        self.audio_decode += o.audio_decode;
        self.features += o.features;
        self.encoder += o.encoder;
        self.decoder += o.decoder;
        self.total += o.total;
    }
}

/// What the work function produces for one input.
#[derive(Debug, Clone, Default)]
pub struct Done {
    /// The rendered output (file contents, or what is printed on stdout).
    pub rendered: String,
    /// Duration of the audio, seconds.
    pub audio_seconds: f64,
    /// Time spent.
    pub timings: Timings,
}

/// An input that failed.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// The input (a file, or a directory that could not be read).
    pub path: PathBuf,
    /// The error, with its causes.
    pub message: String,
}

/// Totals of a batch run.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Audio files found.
    pub total: usize,
    /// Files transcribed (outputs written or printed).
    pub done: usize,
    /// Files skipped because their output exists.
    pub skipped: usize,
    /// Failures, in input order.
    pub failures: Vec<Failure>,
    /// The run was cancelled.
    pub cancelled: bool,
    /// Files not started because of the cancellation.
    pub not_started: usize,
    /// Audio transcribed, seconds.
    pub audio_seconds: f64,
    /// Wall time of the run, seconds.
    pub wall_seconds: f64,
    /// Time per stage summed over files (more than the wall time with several jobs).
    pub timings: Timings,
}

struct Job {
    index: usize,
    path: PathBuf,
    output: Option<PathBuf>,
}

enum Msg {
    Done {
        index: usize,
        done: Done,
    },
    Skipped {
        index: usize,
    },
    Failed {
        index: usize,
        failure: Failure,
        /// A file (counts towards the progress bar), not a directory.
        is_file: bool,
    },
    NotStarted {
        index: usize,
    },
}

impl Msg {
    fn index(&self) -> usize {
        match self {
            Msg::Done { index, .. }
            | Msg::Skipped { index }
            | Msg::Failed { index, .. }
            | Msg::NotStarted { index } => *index,
        }
    }
}

/// Writes `contents` to `path` through a temporary file in the same directory and a
/// rename, so that `path` either keeps its old state or holds the whole new contents.
pub fn write_atomic(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let tmp = dir.join(format!(".{name}.{}.hark-part", std::process::id()));
    let res = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {}", path.display()));
    }
    Ok(())
}

fn path_hash(p: &Path) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    p.hash(&mut h);
    h.finish()
}

/// Sends the files under `inputs` to the workers (or straight to the collector when
/// skipped or broken). Returns when the walk ends or the run is cancelled.
fn feed(
    inputs: &[PathBuf],
    cfg: &Config,
    cancel: &AtomicBool,
    jobs: &crossbeam_channel::Sender<Job>,
    results: &crossbeam_channel::Sender<Msg>,
    printed: &(Mutex<usize>, Condvar),
) {
    // Output paths claimed in this run, as 64-bit hashes (8 bytes per file).
    let mut claimed: HashSet<u64> = HashSet::new();
    for (index, found) in InputWalker::new(inputs).enumerate() {
        if cfg.output_dir.is_none() {
            // Keep the collector's reorder buffer small.
            let (lock, cv) = printed;
            let mut next = lock.lock().unwrap_or_else(|p| p.into_inner());
            while index >= *next + ORDER_WINDOW && !cancel.load(Ordering::SeqCst) {
                next = cv
                    .wait_timeout(next, Duration::from_millis(100))
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
        }
        if cancel.load(Ordering::SeqCst) {
            return;
        }
        let (path, stem) = match found {
            Found::File { path, stem } => (path, stem),
            Found::Error { path, message } => {
                let failure = Failure { path, message };
                let _ = results.send(Msg::Failed {
                    index,
                    failure,
                    is_file: false,
                });
                continue;
            }
        };
        let output = match &cfg.output_dir {
            None => None,
            Some(dir) => {
                let mut name = stem.into_os_string();
                name.push(".");
                name.push(cfg.ext);
                let out = dir.join(name);
                if !claimed.insert(path_hash(&out)) {
                    let failure = Failure {
                        path,
                        message: format!(
                            "its output {} is also the output of an earlier input; rename one of them",
                            out.display()
                        ),
                    };
                    let _ = results.send(Msg::Failed {
                        index,
                        failure,
                        is_file: true,
                    });
                    continue;
                }
                if !cfg.overwrite && out.exists() {
                    let _ = results.send(Msg::Skipped { index });
                    continue;
                }
                Some(out)
            }
        };
        if jobs
            .send(Job {
                index,
                path,
                output,
            })
            .is_err()
        {
            return;
        }
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

fn work_loop<W>(
    work: &W,
    cancel: &AtomicBool,
    jobs: &crossbeam_channel::Receiver<Job>,
    results: &crossbeam_channel::Sender<Msg>,
) where
    W: Fn(&Path) -> anyhow::Result<Done> + Sync,
{
    for job in jobs.iter() {
        if cancel.load(Ordering::SeqCst) {
            let _ = results.send(Msg::NotStarted { index: job.index });
            continue;
        }
        let res = match catch_unwind(AssertUnwindSafe(|| work(&job.path))) {
            Ok(r) => r,
            Err(p) => Err(anyhow::anyhow!(
                "internal error (panic): {}",
                panic_message(&*p)
            )),
        };
        let res = res.and_then(|mut done| {
            if let Some(out) = &job.output {
                write_atomic(out, done.rendered.as_bytes())?;
                done.rendered = String::new();
            }
            Ok(done)
        });
        let msg = match res {
            Ok(done) => Msg::Done {
                index: job.index,
                done,
            },
            Err(e) => Msg::Failed {
                index: job.index,
                failure: Failure {
                    path: job.path,
                    message: format!("{e:#}"),
                },
                is_file: true,
            },
        };
        if results.send(msg).is_err() {
            return;
        }
    }
}

fn progress_bar(cfg: &Config, total: usize) -> ProgressBar {
    let bar = if cfg.progress {
        ProgressBar::new(total as u64)
    } else {
        ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::hidden())
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{bar:30}] {pos}/{len} files {elapsed_precise} ETA {eta} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Runs `work` on every audio file under `inputs` (`total` of them, from
/// [`inputs::count`]) with `cfg.jobs` workers; see the module docs. Stdout output (no
/// output directory) goes to `out` in input order. Errors only when `out` cannot be
/// written; failing inputs are in the summary.
pub fn run<W>(
    inputs: &[PathBuf],
    total: usize,
    cfg: &Config,
    cancel: &AtomicBool,
    work: W,
    out: &mut dyn Write,
) -> anyhow::Result<Summary>
where
    W: Fn(&Path) -> anyhow::Result<Done> + Sync,
{
    let start = Instant::now();
    let jobs = cfg.jobs.max(1);
    let bar = progress_bar(cfg, total);
    let printed = (Mutex::new(0usize), Condvar::new());
    let mut summary = Summary {
        total,
        ..Default::default()
    };
    let mut out_error: Option<anyhow::Error> = None;
    let mut files_seen = 0usize;

    std::thread::scope(|s| {
        let (job_tx, job_rx) = crossbeam_channel::bounded::<Job>(0);
        let (res_tx, res_rx) = crossbeam_channel::unbounded::<Msg>();
        {
            let res_tx = res_tx.clone();
            let printed = &printed;
            s.spawn(move || feed(inputs, cfg, cancel, &job_tx, &res_tx, printed));
        }
        for _ in 0..jobs {
            let (job_rx, res_tx, work) = (job_rx.clone(), res_tx.clone(), &work);
            s.spawn(move || work_loop(work, cancel, &job_rx, &res_tx));
        }
        drop((job_rx, res_tx));

        // Stdout mode: results waiting for their turn (None = nothing to print).
        let mut pending: BTreeMap<usize, Option<String>> = BTreeMap::new();
        let mut next = 0usize;
        let mut failures: Vec<(usize, Failure)> = Vec::new();
        for msg in res_rx.iter() {
            let index = msg.index();
            let mut text = None;
            match msg {
                Msg::Done { done, .. } => {
                    files_seen += 1;
                    summary.done += 1;
                    summary.audio_seconds += done.audio_seconds;
                    summary.timings += done.timings;
                    text = Some(done.rendered);
                }
                Msg::Skipped { .. } => {
                    files_seen += 1;
                    summary.skipped += 1;
                }
                Msg::NotStarted { .. } => {}
                Msg::Failed {
                    failure, is_file, ..
                } => {
                    files_seen += usize::from(is_file);
                    bar.suspend(|| {
                        eprintln!(
                            "hark: error: {}: {}",
                            failure.path.display(),
                            failure.message
                        )
                    });
                    failures.push((index, failure));
                }
            }
            bar.set_position(files_seen as u64);
            let wall = start.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!(
                "{:.0} s audio ({:.1}x real time){}{}",
                summary.audio_seconds,
                summary.audio_seconds / wall,
                if failures.is_empty() {
                    String::new()
                } else {
                    format!(", {} failed", failures.len())
                },
                if summary.skipped == 0 {
                    String::new()
                } else {
                    format!(", {} skipped", summary.skipped)
                },
            ));
            if cfg.output_dir.is_none() {
                pending.insert(index, text);
                let before = next;
                while let Some(t) = pending.remove(&next) {
                    if let (Some(t), None) = (t, &out_error) {
                        let r = bar.suspend(|| {
                            out.write_all(t.as_bytes())?;
                            out.flush()
                        });
                        if let Err(e) = r {
                            out_error = Some(anyhow::Error::from(e).context("writing to stdout"));
                            cancel.store(true, Ordering::SeqCst);
                        }
                    }
                    next += 1;
                }
                if next != before {
                    *printed.0.lock().unwrap_or_else(|p| p.into_inner()) = next;
                    printed.1.notify_all();
                }
            }
        }
        failures.sort_by_key(|(i, _)| *i);
        summary.failures = failures.into_iter().map(|(_, f)| f).collect();
    });
    bar.finish_and_clear();
    summary.cancelled = cancel.load(Ordering::SeqCst);
    summary.not_started = total.saturating_sub(files_seen);
    summary.wall_seconds = start.elapsed().as_secs_f64();
    match out_error {
        Some(e) => Err(e),
        None => Ok(summary),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn tree(name: &str, files: &[&str]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hark-batch-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for f in files {
            let p = dir.join("in").join(f);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(&p, f.as_bytes()).expect("write");
        }
        dir
    }

    /// Reads the file; fails on names containing "bad"; sleeps longer on early files so
    /// that results come back out of order.
    fn fake_work(p: &Path) -> anyhow::Result<Done> {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name.contains("bad") {
            anyhow::bail!("cannot decode {name}");
        }
        if name.contains("panic") {
            panic!("boom");
        }
        let delay = if name.starts_with('a') { 30 } else { 1 };
        std::thread::sleep(Duration::from_millis(delay));
        let body = std::fs::read_to_string(p)?;
        Ok(Done {
            rendered: format!("{body}\n"),
            audio_seconds: 1.0,
            timings: Timings::default(),
        })
    }

    fn cfg(jobs: usize, out: Option<PathBuf>, overwrite: bool) -> Config {
        Config {
            jobs,
            output_dir: out,
            ext: "txt",
            overwrite,
            progress: false,
        }
    }

    #[test]
    fn stdout_output_keeps_input_order_with_several_jobs() {
        let files = ["a1.wav", "a2.wav", "b.wav", "c/d.wav", "e.wav", "f.wav"];
        let dir = tree("order", &files);
        let inputs = vec![dir.join("in")];
        let total = inputs::count(&inputs).expect("count");
        let mut out = Vec::new();
        let cancel = AtomicBool::new(false);
        let s = run(
            &inputs,
            total,
            &cfg(3, None, false),
            &cancel,
            fake_work,
            &mut out,
        )
        .expect("run");
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            "a1.wav\na2.wav\nb.wav\nc/d.wav\ne.wav\nf.wav\n"
        );
        assert_eq!((s.total, s.done, s.failures.len()), (6, 6, 0));
        assert_eq!(s.audio_seconds, 6.0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn failures_are_all_listed_in_input_order_and_the_rest_is_written() {
        let files = ["a_bad.wav", "b.wav", "c_panic.wav", "d/e.wav", "z_bad.flac"];
        let dir = tree("fail", &files);
        let inputs = vec![dir.join("in")];
        let outd = dir.join("out");
        let cancel = AtomicBool::new(false);
        let s = run(
            &inputs,
            5,
            &cfg(2, Some(outd.clone()), false),
            &cancel,
            fake_work,
            &mut std::io::sink(),
        )
        .expect("run");
        assert_eq!(s.done, 2);
        let failed: Vec<String> = s
            .failures
            .iter()
            .map(|f| f.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(failed, ["a_bad.wav", "c_panic.wav", "z_bad.flac"]);
        assert!(s.failures[1].message.contains("panic"), "{:?}", s.failures);
        assert_eq!(
            std::fs::read_to_string(outd.join("d/e.txt")).expect("d/e.txt"),
            "d/e.wav\n"
        );
        assert!(outd.join("b.txt").exists() && !outd.join("a_bad.txt").exists());
        // No temporary files are left behind.
        let leftovers = std::fs::read_dir(&outd)
            .expect("ls")
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".hark-part"))
            })
            .count();
        assert_eq!(leftovers, 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn existing_outputs_are_skipped_unless_overwrite() {
        let dir = tree("skip", &["x.wav", "y.wav"]);
        let inputs = vec![dir.join("in")];
        let outd = dir.join("out");
        std::fs::create_dir_all(&outd).expect("mkdir");
        std::fs::write(outd.join("x.txt"), "old").expect("write");
        let calls = AtomicUsize::new(0);
        let counting = |p: &Path| {
            calls.fetch_add(1, Ordering::SeqCst);
            fake_work(p)
        };
        let cancel = AtomicBool::new(false);
        let c = cfg(2, Some(outd.clone()), false);
        let s = run(&inputs, 2, &c, &cancel, counting, &mut std::io::sink()).expect("run");
        assert_eq!((s.done, s.skipped, calls.load(Ordering::SeqCst)), (1, 1, 1));
        assert_eq!(std::fs::read_to_string(outd.join("x.txt")).unwrap(), "old");
        let c = cfg(2, Some(outd.clone()), true);
        let s = run(&inputs, 2, &c, &cancel, counting, &mut std::io::sink()).expect("run");
        assert_eq!((s.done, s.skipped), (2, 0));
        assert_eq!(
            std::fs::read_to_string(outd.join("x.txt")).unwrap(),
            "x.wav\n"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn cancel_stops_feeding_and_counts_files_not_started() {
        let names: Vec<String> = (0..20).map(|i| format!("f{i:02}.wav")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let dir = tree("cancel", &refs);
        let inputs = vec![dir.join("in")];
        let cancel = AtomicBool::new(false);
        let calls = AtomicUsize::new(0);
        let work = |p: &Path| {
            if calls.fetch_add(1, Ordering::SeqCst) == 2 {
                cancel.store(true, Ordering::SeqCst);
            }
            fake_work(p)
        };
        let mut out = Vec::new();
        let s = run(&inputs, 20, &cfg(2, None, false), &cancel, work, &mut out).expect("run");
        assert!(s.cancelled);
        assert!(s.done >= 3 && s.done <= 5, "done {}", s.done);
        assert_eq!(s.done + s.not_started, 20);
        // What was printed is in input order and is exactly the files done.
        let text = String::from_utf8(out).expect("utf8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), s.done);
        assert!(lines.windows(2).all(|w| w[0] < w[1]), "{lines:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn two_inputs_with_the_same_output_are_not_silently_merged() {
        let dir = tree("clash", &["p/x.wav", "q/x.wav"]);
        let inputs = vec![dir.join("in/p/x.wav"), dir.join("in/q/x.wav")];
        let cancel = AtomicBool::new(false);
        let c = cfg(1, Some(dir.join("out")), false);
        let s = run(&inputs, 2, &c, &cancel, fake_work, &mut std::io::sink()).expect("run");
        assert_eq!(s.done, 1);
        assert_eq!(s.failures.len(), 1);
        assert!(s.failures[0].message.contains("also the output"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn atomic_write_replaces_whole_file() {
        let dir = std::env::temp_dir().join(format!("hark-atomic-{}", std::process::id()));
        let p = dir.join("sub/o.txt");
        write_atomic(&p, b"one").expect("write");
        write_atomic(&p, b"two two").expect("write");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "two two");
        assert_eq!(std::fs::read_dir(dir.join("sub")).unwrap().count(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
