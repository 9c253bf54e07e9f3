//! conformer_aed loader on broken model directories: every failure names the tensor or the
//! config option at fault. Each case copies the committed fixture into a temp dir and breaks
//! one thing.

use std::path::{Path, PathBuf};

use hark_models::conformer_aed::ConformerAed;
use serde_json::Value;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/conformer/firered_d32_k15")
}

fn copy_fixture() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for f in [
        "config.json",
        "model.safetensors",
        "dict.txt",
        "train_bpe60.model",
    ] {
        std::fs::copy(fixture().join(f), tmp.path().join(f)).unwrap();
    }
    tmp
}

/// Rewrites the safetensors header with `edit` (the data block is kept as is).
fn edit_header(dir: &Path, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) {
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    edit(header.as_object_mut().unwrap());
    let mut h = serde_json::to_vec(&header).unwrap();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    out.extend_from_slice(&bytes[8 + n..]);
    std::fs::write(&path, out).unwrap();
}

fn edit_config(dir: &Path, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) {
    let path = dir.join("config.json");
    let mut cfg: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(cfg.as_object_mut().unwrap());
    std::fs::write(&path, serde_json::to_string_pretty(&cfg).unwrap()).unwrap();
}

fn load_err(dir: &Path) -> String {
    ConformerAed::load(dir)
        .expect_err("loading a broken model must fail")
        .to_string()
}

#[test]
fn fixture_copy_loads() {
    let tmp = copy_fixture();
    ConformerAed::load(tmp.path()).unwrap();
}

#[test]
fn loader_names_missing_tensor() {
    let tmp = copy_fixture();
    edit_header(tmp.path(), |h| {
        h.remove("encoder.layer_stack.1.conv.depthwise_conv.weight");
    });
    let e = load_err(tmp.path());
    assert!(
        e.contains("missing tensor `encoder.layer_stack.1.conv.depthwise_conv.weight`"),
        "{e}"
    );
}

#[test]
fn loader_names_unexpected_tensor() {
    let tmp = copy_fixture();
    edit_header(tmp.path(), |h| {
        let t = h["decoder.layer_norm_out.bias"].clone();
        h.insert("decoder.extra_head.bias".into(), t);
    });
    let e = load_err(tmp.path());
    assert!(
        e.contains("unexpected tensor(s) decoder.extra_head.bias"),
        "{e}"
    );
}

#[test]
fn loader_names_tensor_with_wrong_shape() {
    let tmp = copy_fixture();
    edit_header(tmp.path(), |h| {
        h["encoder.layer_stack.0.mhsa.w_qs.weight"]["shape"] = serde_json::json!([16, 64]);
    });
    let e = load_err(tmp.path());
    assert!(
        e.contains(
            "tensor `encoder.layer_stack.0.mhsa.w_qs.weight` has shape [16, 64], expected [32, 32]"
        ),
        "{e}"
    );
}

#[test]
fn loader_rejects_config_that_does_not_match_weights() {
    let tmp = copy_fixture();
    edit_config(tmp.path(), |c| {
        c.insert("kernel_size".into(), Value::from(9));
    });
    let e = load_err(tmp.path());
    assert!(
        e.contains("encoder.layer_stack.0.conv.depthwise_conv.weight"),
        "{e}"
    );
}

#[test]
fn loader_names_unknown_config_option() {
    let tmp = copy_fixture();
    edit_config(tmp.path(), |c| {
        c.insert("use_dynamic_chunk".into(), Value::Bool(true));
    });
    let e = load_err(tmp.path());
    assert!(e.contains("use_dynamic_chunk"), "{e}");
}

#[test]
fn loader_names_unsupported_option_value() {
    let tmp = copy_fixture();
    edit_config(tmp.path(), |c| {
        c.insert("subsampling".into(), Value::from("conv2d10"));
    });
    let e = load_err(tmp.path());
    assert!(e.contains("`subsampling` = conv2d10"), "{e}");
}

#[test]
fn loader_names_truncated_weights_file() {
    let tmp = copy_fixture();
    let p = tmp.path().join("model.safetensors");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() - 100]).unwrap();
    let e = load_err(tmp.path());
    assert!(
        e.contains("model.safetensors") && e.contains("outside the file"),
        "{e}"
    );
}

#[test]
fn encoder_rejects_input_too_short_or_ragged() {
    let model = ConformerAed::load(&fixture()).unwrap();
    // One frame + the 6 context frames still gives one encoder frame, as in the reference.
    assert_eq!(model.encode(&[0.0; 80]).unwrap().frames, 1);
    let e = model.encode(&[]).unwrap_err().to_string();
    assert!(e.contains("too short"), "{e}");
    let e = model.encode(&[0.0; 81]).unwrap_err().to_string();
    assert!(e.contains("80-dim"), "{e}");
}

fn copy_wenet_fixture() -> tempfile::TempDir {
    let src =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/conformer_wenet/wenet_bn_k15");
    let tmp = tempfile::tempdir().unwrap();
    for f in ["config.json", "model.safetensors", "units.txt", "bpe.model"] {
        std::fs::copy(src.join(f), tmp.path().join(f)).unwrap();
    }
    tmp
}

#[test]
fn wenet_loader_names_missing_ctc_tensor() {
    let tmp = copy_wenet_fixture();
    ConformerAed::load(tmp.path()).expect("untouched copy loads");
    edit_header(tmp.path(), |h| {
        h.remove("ctc.ctc_lo.bias");
    });
    let e = load_err(tmp.path());
    assert!(e.contains("missing tensor `ctc.ctc_lo.bias`"), "{e}");
}

#[test]
fn wenet_loader_names_ctc_head_the_config_does_not_declare() {
    let tmp = copy_wenet_fixture();
    edit_config(tmp.path(), |c| {
        c.insert("ctc".into(), Value::Bool(false));
    });
    let e = load_err(tmp.path());
    assert!(
        e.contains("unexpected tensor(s) ctc.ctc_lo.bias, ctc.ctc_lo.weight"),
        "{e}"
    );
}

#[test]
fn wenet_loader_names_missing_folded_depthwise_bias() {
    let tmp = copy_wenet_fixture();
    edit_header(tmp.path(), |h| {
        h.remove("encoder.layer_stack.0.conv.depthwise_conv.bias");
    });
    let e = load_err(tmp.path());
    assert!(
        e.contains("missing tensor `encoder.layer_stack.0.conv.depthwise_conv.bias`"),
        "{e}"
    );
}

#[test]
fn wenet_loader_names_batch_norm_config_mismatch() {
    // A BatchNorm model declared as LayerNorm asks for the LayerNorm's tensors.
    let tmp = copy_wenet_fixture();
    edit_config(tmp.path(), |c| {
        c.insert("conv_norm".into(), Value::from("layer_norm"));
    });
    let e = load_err(tmp.path());
    assert!(
        e.contains("missing tensor `encoder.layer_stack.0.conv.batch_norm.weight`"),
        "{e}"
    );
}

#[test]
fn wenet_loader_names_unsupported_new_option_values() {
    for (option, value, needle) in [
        (
            "pos_enc_layer_type",
            Value::from("abs_pos"),
            "`pos_enc_layer_type` = abs_pos",
        ),
        (
            "enc_activation",
            Value::from("gelu"),
            "`enc_activation` = gelu",
        ),
        (
            "conv_norm",
            Value::from("group_norm"),
            "`conv_norm` = group_norm",
        ),
        ("blank_id", Value::from(999), "`blank_id` = 999"),
    ] {
        let tmp = copy_wenet_fixture();
        edit_config(tmp.path(), |c| {
            c.insert(option.into(), value.clone());
        });
        let e = load_err(tmp.path());
        assert!(e.contains(needle), "{option}: {e}");
    }
}

#[test]
fn wenet_loader_rejects_legacy_rel_pos_without_shift() {
    let tmp = copy_wenet_fixture();
    edit_config(tmp.path(), |c| {
        c.insert("pos_enc_layer_type".into(), Value::from("legacy_rel_pos"));
        c.insert("rel_shift".into(), Value::Bool(false));
    });
    let e = load_err(tmp.path());
    assert!(e.contains("`rel_shift` = false"), "{e}");
}

#[test]
fn wenet_loader_names_unknown_config_option() {
    let tmp = copy_wenet_fixture();
    edit_config(tmp.path(), |c| {
        c.insert("reverse_weight".into(), Value::from(0.3));
    });
    let e = load_err(tmp.path());
    assert!(e.contains("reverse_weight"), "{e}");
}
