//! Device selection and delegate construction (`Delegates::for_model`), as the CLI uses them.

use std::path::PathBuf;

use hark_engine::delegate::{Stage, StageKind};
use hark_gpu::{Delegates, DevicePreference, GpuContext, GpuError};

/// On a machine without a hardware GPU (this one, CI) `HardwareOnly` fails with a
/// message that names what was found and suggests `--device cpu`; with one, the opened
/// adapter is not a software one.
#[test]
fn hardware_only_preference_never_opens_a_software_adapter() {
    match GpuContext::new(DevicePreference::HardwareOnly) {
        Ok(ctx) => assert!(!ctx.adapter().is_software, "{:?}", ctx.adapter()),
        Err(e @ GpuError::NoAdapter { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("--device cpu"), "{msg}");
            for a in hark_gpu::probe() {
                assert!(a.is_software, "hardware adapter {a:?} was not used");
                assert!(msg.contains(&a.name), "{msg} does not list {}", a.name);
            }
        }
        Err(e) => panic!("unexpected error: {e}"),
    }
}

#[test]
fn families_without_a_gpu_implementation_get_no_delegates() {
    let dir = std::env::temp_dir().join(format!("hark-gpu-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), r#"{"family": "conformer_aed"}"#).unwrap();
    let d = Delegates::for_model(&dir, DevicePreference::Any).unwrap();
    assert!(d.is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn missing_model_dir_is_a_clear_error() {
    let err = Delegates::for_model(
        &PathBuf::from("/nonexistent/hark-model"),
        DevicePreference::Any,
    )
    .err()
    .expect("no error for a missing directory");
    assert!(err.to_string().contains("config.json"), "{err}");
}

#[test]
fn whisper_model_gets_an_encoder_delegate() {
    let Some(dir) = hark_test_support::model_dir("tiny.en") else {
        return;
    };
    let d = match Delegates::for_model(&dir, DevicePreference::Any) {
        Ok(d) => d,
        Err(e @ GpuError::NoAdapter { .. }) => {
            eprintln!("skipping: {e}");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    assert_eq!(d.len(), 1);
    let mel = vec![0f32; 80 * 3000];
    let shape = [80usize, 3000];
    let stage = Stage {
        kind: StageKind::Encoder,
        model: "whisper",
        inputs: &[("mel", &shape, &mel)],
    };
    assert!(d[0].accepts(&stage));
    assert!(d[0].name().starts_with("gpu:"), "{}", d[0].name());
}
