//! End-to-end tests of batch `hark transcribe` (the real binary and the tiny.en model):
//! a directory tree with good, corrupt and empty files through `--jobs 2`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::HARK;

/// The AN4 test dir and the model dir, or `None` after printing why the test is skipped.
fn setup() -> Option<(PathBuf, PathBuf)> {
    let Some(an4) = common::an4_test() else {
        eprintln!("skipping: ../shared not found");
        return None;
    };
    let Some(model) = common::tiny_en_dir() else {
        eprintln!("skipping: tiny.en model not installed (hark models pull tiny.en)");
        return None;
    };
    Some((an4, model))
}

/// A fresh temporary directory for one test.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hark-batch-e2e-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("creating the scratch dir");
    d
}

/// Good files (relative paths) of the tree built by [`tree`].
const GOOD: [&str; 4] = ["a/one.flac", "a/two.flac", "b/c/three.flac", "four.flac"];

/// `in/` with four real AN4 test utterances in sub-directories, a corrupt FLAC and an
/// empty WAV.
fn tree(root: &Path, an4: &Path) -> PathBuf {
    let mut flacs: Vec<PathBuf> = std::fs::read_dir(an4)
        .expect("listing AN4 test")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "flac"))
        .collect();
    flacs.sort();
    assert!(flacs.len() >= GOOD.len(), "AN4 test has too few files");
    let input = root.join("in");
    for (rel, src) in GOOD.iter().zip(&flacs) {
        let dst = input.join(rel);
        std::fs::create_dir_all(dst.parent().expect("parent")).expect("mkdir");
        std::fs::copy(src, &dst).expect("copying an AN4 file");
    }
    // Starts like a FLAC stream, then garbage.
    let mut corrupt = b"fLaC".to_vec();
    corrupt.extend((0..4000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    std::fs::write(input.join("a/corrupt.flac"), corrupt).expect("write corrupt");
    std::fs::write(input.join("b/empty.wav"), b"").expect("write empty");
    input
}

fn hark(model: &Path, args: &[&str]) -> Output {
    Command::new(HARK)
        .arg("transcribe")
        .arg("--model")
        .arg(model)
        .args(["--beam", "1", "--temperature", "0"])
        .args(args)
        .output()
        .expect("running hark")
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

fn out_file(dir: &Path, rel: &str) -> PathBuf {
    dir.join(Path::new(rel).with_extension("txt"))
}

#[test]
fn batch_jobs_2_writes_same_text_as_jobs_1_and_lists_all_failures() {
    let Some((an4, model)) = setup() else { return };
    let root = scratch("jobs");
    let input = tree(&root, &an4);
    let (out1, out2) = (root.join("out1"), root.join("out2"));
    let in_s = input.to_str().expect("utf-8 path");

    let r1 = hark(
        &model,
        &[in_s, "--jobs", "1", "--output-dir", out1.to_str().unwrap()],
    );
    let r2 = hark(
        &model,
        &[in_s, "--jobs", "2", "--output-dir", out2.to_str().unwrap()],
    );
    for r in [&r1, &r2] {
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(!r.status.success(), "bad inputs must fail the run: {err}");
        assert_eq!(r.status.code(), Some(1), "{err}");
        assert!(err.contains("4 of 6 files transcribed"), "{err}");
        assert!(err.contains("2 failed"), "{err}");
        // Both failures are listed in the final summary, after its header.
        let list = err
            .split("hark: failed inputs:")
            .nth(1)
            .expect("failure list");
        assert!(list.contains("corrupt.flac"), "{err}");
        assert!(list.contains("empty.wav"), "{err}");
    }
    for rel in GOOD {
        let (a, b) = (read(&out_file(&out1, rel)), read(&out_file(&out2, rel)));
        assert!(!a.trim().is_empty(), "{rel}: empty transcript");
        assert_eq!(a, b, "{rel}: --jobs 2 differs from --jobs 1");
    }
    assert!(!out2.join("a/corrupt.txt").exists());
    assert!(!out2.join("b/empty.txt").exists());
    // Only the transcripts: no temporary files left behind.
    let mut n = 0;
    let mut stack = vec![out2.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("ls") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                assert_eq!(p.extension().and_then(|x| x.to_str()), Some("txt"), "{p:?}");
                n += 1;
            }
        }
    }
    assert_eq!(n, GOOD.len());
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn batch_rerun_skips_existing_outputs_and_overwrite_rewrites_them() {
    let Some((an4, model)) = setup() else { return };
    let root = scratch("skip");
    let input = tree(&root, &an4);
    // Only the good files, so that a clean run succeeds.
    std::fs::remove_file(input.join("a/corrupt.flac")).expect("rm");
    std::fs::remove_file(input.join("b/empty.wav")).expect("rm");
    let out = root.join("out");
    let args = [
        input.to_str().expect("utf-8 path"),
        "--jobs",
        "2",
        "--output-dir",
        out.to_str().unwrap(),
    ];
    let first = hark(&model, &args);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let want = read(&out_file(&out, GOOD[0]));
    std::fs::write(out_file(&out, GOOD[0]), "stale\n").expect("write");

    let again = hark(&model, &args);
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "{err}");
    assert!(err.contains("0 of 4 files transcribed"), "{err}");
    assert!(err.contains("4 skipped"), "{err}");
    assert_eq!(read(&out_file(&out, GOOD[0])), "stale\n");

    let mut over = args.to_vec();
    over.push("--overwrite");
    let r = hark(&model, &over);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(r.status.success(), "{err}");
    assert!(err.contains("4 of 4 files transcribed"), "{err}");
    assert_eq!(read(&out_file(&out, GOOD[0])), want);
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn batch_stdout_keeps_input_order_with_two_jobs() {
    let Some((an4, model)) = setup() else { return };
    let root = scratch("stdout");
    let input = tree(&root, &an4);
    let in_s = input.to_str().expect("utf-8 path");
    let one = hark(&model, &[in_s, "--jobs", "1", "--format", "json"]);
    let two = hark(&model, &[in_s, "--jobs", "2", "--format", "json"]);
    let files = |o: &Output| -> Vec<(String, String)> {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
                (
                    v["file"].as_str().unwrap_or_default().to_string(),
                    v["text"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    };
    let (a, b) = (files(&one), files(&two));
    let want: Vec<String> = ["a/one.flac", "a/two.flac", "b/c/three.flac", "four.flac"]
        .iter()
        .map(|r| input.join(r).display().to_string())
        .collect();
    assert_eq!(a.iter().map(|x| x.0.clone()).collect::<Vec<_>>(), want);
    assert_eq!(a, b);
    assert_eq!(two.status.code(), Some(1));
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn batch_ctrl_c_finishes_files_in_flight_and_leaves_only_whole_outputs() {
    let Some((an4, model)) = setup() else { return };
    let root = scratch("sigint");
    let input = tree(&root, &an4);
    std::fs::remove_file(input.join("a/corrupt.flac")).expect("rm");
    std::fs::remove_file(input.join("b/empty.wav")).expect("rm");
    // Reference transcripts from an uninterrupted run.
    let refs = root.join("ref");
    let r = hark(
        &model,
        &[
            input.to_str().expect("utf-8 path"),
            "--output-dir",
            refs.to_str().unwrap(),
        ],
    );
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    // Enough files that the run is still going when it is interrupted.
    for copy in 0..6 {
        for rel in GOOD {
            let dst = input.join(format!("copy{copy}")).join(rel);
            std::fs::create_dir_all(dst.parent().expect("parent")).expect("mkdir");
            std::fs::copy(input.join(rel), dst).expect("copy");
        }
    }
    let total = GOOD.len() * 7;
    let out = root.join("out");
    let mut child = Command::new(HARK)
        .arg("transcribe")
        .arg("--model")
        .arg(&model)
        .args(["--beam", "1", "--temperature", "0", "--jobs", "2"])
        .arg(&input)
        .arg("--output-dir")
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starting hark");
    // Interrupt once the first transcript exists.
    let first = out_file(&out, GOOD[0]);
    let t0 = std::time::Instant::now();
    while !first.exists() {
        assert!(t0.elapsed().as_secs() < 600, "no output after 10 minutes");
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .is_ok_and(|s| s.success());
    let res = child.wait_with_output().expect("waiting for hark");
    let err = String::from_utf8_lossy(&res.stderr);
    if !sent {
        eprintln!("skipping the interrupt checks: could not send SIGINT");
        return;
    }
    // Written outputs are whole transcripts (equal to an uninterrupted run's), never
    // partial files; files not started have no output.
    let mut written = 0;
    let mut stack = vec![out.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("ls") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            assert_eq!(p.extension().and_then(|x| x.to_str()), Some("txt"), "{p:?}");
            let rel = p.strip_prefix(&out).expect("under out");
            let base = GOOD
                .iter()
                .find(|g| rel.ends_with(Path::new(g).with_extension("txt")))
                .expect("a known file");
            assert_eq!(read(&p), read(&out_file(&refs, base)), "{p:?}");
            written += 1;
        }
    }
    if res.status.code() == Some(0) {
        // The run ended before the signal arrived (a very fast machine).
        assert_eq!(written, total);
        return;
    }
    assert_eq!(res.status.code(), Some(130), "{err}");
    assert!(err.contains("not started (cancelled)"), "{err}");
    assert!(written < total, "{err}");
    let _ = std::fs::remove_dir_all(&root);
}
