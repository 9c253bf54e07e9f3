//! transformers importer: a synthetic Hugging Face Whisper checkpoint (separate q/k/v,
//! no k bias, `model.` prefix, tied `proj_out`) imports to exactly the same hark model as
//! the equivalent CTranslate2 checkpoint (fused q/k/v), and broken inputs are named.

mod import_util;

use std::collections::HashMap;
use std::path::Path;

use hark_engine::safetensors::save_safetensors;
use hark_engine::tensor::Tensor;
use hark_models::store::convert::write_whisper_dir;
use hark_models::store::NoProgress;
use hark_models::whisper::config::Precision;
use hark_models::whisper::import_ct2::read_ct2_dir;
use hark_models::whisper::import_hf::read_hf_dir;
use import_util::*;

/// The tiny CT2 model with zero k biases (Whisper's k_proj has none), so both formats
/// describe the same network.
fn tiny_with_zero_k_bias() -> Ct2 {
    let mut c = Ct2::tiny();
    let names: Vec<String> = c.values.keys().cloned().collect();
    for n in names {
        let range = if n.ends_with("self_attention/linear_0/bias") {
            Some(D..2 * D)
        } else if n.ends_with("/attention/linear_1/bias") {
            Some(0..D)
        } else {
            None
        };
        if let Some(r) = range {
            let (shape, mut v) = c.values[&n].clone();
            v[r].iter_mut().for_each(|x| *x = 0.0);
            c.vars.insert(n.clone(), Var::f16(&shape, &v));
            c.values.insert(n, (shape, v));
        }
    }
    c
}

/// Writes the transformers layout of `c` into `dir`; `edit` may alter the tensor list.
fn write_hf(c: &Ct2, dir: &Path, edit: impl FnOnce(&mut Vec<(String, Vec<usize>, Vec<f32>)>)) {
    let mut t: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    let mut push = |n: String, s: Vec<usize>, v: Vec<f32>| t.push((format!("model.{n}"), s, v));
    let get = |n: &str| c.values[n].clone();
    for (n, s) in [
        ("encoder/conv1/weight", "encoder.conv1.weight"),
        ("encoder/conv1/bias", "encoder.conv1.bias"),
        ("encoder/conv2/weight", "encoder.conv2.weight"),
        ("encoder/conv2/bias", "encoder.conv2.bias"),
        (
            "encoder/position_encodings/encodings",
            "encoder.embed_positions.weight",
        ),
        (
            "decoder/position_encodings/encodings",
            "decoder.embed_positions.weight",
        ),
        ("decoder/embeddings/weight", "decoder.embed_tokens.weight"),
        ("encoder/layer_norm/gamma", "encoder.layer_norm.weight"),
        ("encoder/layer_norm/beta", "encoder.layer_norm.bias"),
        ("decoder/layer_norm/gamma", "decoder.layer_norm.weight"),
        ("decoder/layer_norm/beta", "decoder.layer_norm.bias"),
    ] {
        let (shape, v) = get(n);
        push(s.into(), shape, v);
    }
    let split = |push: &mut dyn FnMut(String, Vec<usize>, Vec<f32>),
                 ct2: &str,
                 hf: &str,
                 parts: &[&str]| {
        let (_, w) = get(&format!("{ct2}/weight"));
        let (_, b) = get(&format!("{ct2}/bias"));
        for (i, p) in parts.iter().enumerate() {
            push(
                format!("{hf}.{p}.weight"),
                vec![D, D],
                w[i * D * D..(i + 1) * D * D].to_vec(),
            );
            if *p != "k_proj" {
                push(
                    format!("{hf}.{p}.bias"),
                    vec![D],
                    b[i * D..(i + 1) * D].to_vec(),
                );
            }
        }
    };
    let plain =
        |push: &mut dyn FnMut(String, Vec<usize>, Vec<f32>), ct2: &str, hf: &str, norm: bool| {
            let (w, b) = if norm {
                ("gamma", "beta")
            } else {
                ("weight", "bias")
            };
            let (s, v) = get(&format!("{ct2}/{w}"));
            push(format!("{hf}.weight"), s, v);
            let (s, v) = get(&format!("{ct2}/{b}"));
            push(format!("{hf}.bias"), s, v);
        };
    for (stack, layers) in [("encoder", ENC_LAYERS), ("decoder", DEC_LAYERS)] {
        for l in 0..layers {
            let (c2, hf) = (format!("{stack}/layer_{l}"), format!("{stack}.layers.{l}"));
            split(
                &mut push,
                &format!("{c2}/self_attention/linear_0"),
                &format!("{hf}.self_attn"),
                &["q_proj", "k_proj", "v_proj"],
            );
            plain(
                &mut push,
                &format!("{c2}/self_attention/linear_1"),
                &format!("{hf}.self_attn.out_proj"),
                false,
            );
            plain(
                &mut push,
                &format!("{c2}/self_attention/layer_norm"),
                &format!("{hf}.self_attn_layer_norm"),
                true,
            );
            plain(
                &mut push,
                &format!("{c2}/ffn/layer_norm"),
                &format!("{hf}.final_layer_norm"),
                true,
            );
            plain(
                &mut push,
                &format!("{c2}/ffn/linear_0"),
                &format!("{hf}.fc1"),
                false,
            );
            plain(
                &mut push,
                &format!("{c2}/ffn/linear_1"),
                &format!("{hf}.fc2"),
                false,
            );
            if stack == "decoder" {
                plain(
                    &mut push,
                    &format!("{c2}/attention/layer_norm"),
                    &format!("{hf}.encoder_attn_layer_norm"),
                    true,
                );
                plain(
                    &mut push,
                    &format!("{c2}/attention/linear_0"),
                    &format!("{hf}.encoder_attn.q_proj"),
                    false,
                );
                split(
                    &mut push,
                    &format!("{c2}/attention/linear_1"),
                    &format!("{hf}.encoder_attn"),
                    &["k_proj", "v_proj"],
                );
                plain(
                    &mut push,
                    &format!("{c2}/attention/linear_2"),
                    &format!("{hf}.encoder_attn.out_proj"),
                    false,
                );
            }
        }
    }
    let (s, v) = get("decoder/embeddings/weight");
    t.push(("proj_out.weight".into(), s, v));
    edit(&mut t);
    std::fs::create_dir_all(dir).unwrap();
    let tensors: Vec<(String, Tensor)> = t
        .into_iter()
        .map(|(n, s, v)| (n, Tensor::from_f32(&s, &v).unwrap()))
        .collect();
    let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    save_safetensors(dir.join("model.safetensors"), &refs, &HashMap::new()).unwrap();
    let cfg = serde_json::json!({
        "model_type": "whisper", "vocab_size": VOCAB, "num_mel_bins": N_MELS,
        "encoder_layers": ENC_LAYERS, "encoder_attention_heads": HEADS,
        "decoder_layers": DEC_LAYERS, "decoder_attention_heads": HEADS, "d_model": D,
        "encoder_ffn_dim": 4 * D, "decoder_ffn_dim": 4 * D,
        "max_source_positions": AUDIO_CTX, "max_target_positions": TEXT_CTX,
        "scale_embedding": false, "activation_function": "gelu",
        "suppress_tokens": [1, 2], "begin_suppress_tokens": [3]
    });
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    let gen = serde_json::json!({"alignment_heads": [[1, 0], [1, 1]], "suppress_tokens": [1, 2, 7],
        "begin_suppress_tokens": [3, 15], "lang_to_id": {"<|en|>": 12, "<|de|>": 13}});
    std::fs::write(dir.join("generation_config.json"), gen.to_string()).unwrap();
    std::fs::write(dir.join("tokenizer.json"), TOKENIZER).unwrap();
}

#[test]
fn hf_import_fuses_qkv_and_matches_the_ctranslate2_import() {
    let c = tiny_with_zero_k_bias();
    let tmp = tempfile::tempdir().unwrap();
    write_hf(&c, &tmp.path().join("hf"), |_| {});
    c.write_dir(&tmp.path().join("ct2"));
    let hf = read_hf_dir(&tmp.path().join("hf"), "hf", &NoProgress).unwrap();
    let ct2 = read_ct2_dir(&tmp.path().join("ct2"), "ct2", &NoProgress).unwrap();
    let hf_cfg =
        write_whisper_dir(&hf, Precision::F16, &tmp.path().join("out_hf"), &NoProgress).unwrap();
    write_whisper_dir(
        &ct2,
        Precision::F16,
        &tmp.path().join("out_ct2"),
        &NoProgress,
    )
    .unwrap();
    let a = read_hark(&tmp.path().join("out_hf"));
    let b = read_hark(&tmp.path().join("out_ct2"));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (k, v) in &a {
        assert_eq!(v, &b[k], "{k}");
    }
    // Spot-check the fusion explicitly: rows D..2D of qkv are k_proj, its bias zeros.
    let (_, _, qkv_b) = &a["decoder.layers.1.self_attn.qkv_proj.bias"];
    assert!(qkv_b[D..2 * D].iter().all(|&x| x == 0.0));
    let (_, src) = &c.values["decoder/layer_1/self_attention/linear_0/weight"];
    assert_eq!(&a["decoder.layers.1.self_attn.qkv_proj.weight"].2, src);
    assert_eq!(hf_cfg.source.format, "transformers");
    assert_eq!(
        hf_cfg.suppress_tokens,
        vec![1, 2, 7],
        "generation_config wins over config"
    );
    assert_eq!(hf_cfg.begin_suppress_tokens, vec![3, 15]);
    assert_eq!(hf_cfg.alignment_heads, vec![[1, 0], [1, 1]]);
    assert_eq!(hf_cfg.lang_ids, vec![12, 13]);
}

#[test]
fn hf_untied_proj_out_is_rejected() {
    let c = tiny_with_zero_k_bias();
    let tmp = tempfile::tempdir().unwrap();
    write_hf(&c, tmp.path(), |t| {
        let p = t.iter_mut().find(|x| x.0 == "proj_out.weight").unwrap();
        p.2[0] += 1.0;
    });
    let msg = read_hf_dir(tmp.path(), "hf", &NoProgress)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("proj_out.weight") && msg.contains("ties"),
        "{msg}"
    );
}

#[test]
fn hf_missing_and_misshaped_tensors_are_named() {
    let c = tiny_with_zero_k_bias();
    let tmp = tempfile::tempdir().unwrap();
    write_hf(&c, &tmp.path().join("a"), |t| {
        t.retain(|x| x.0 != "model.decoder.layers.1.encoder_attn.v_proj.weight")
    });
    let msg = read_hf_dir(&tmp.path().join("a"), "hf", &NoProgress)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("missing tensor model.decoder.layers.1.encoder_attn.v_proj.weight"),
        "{msg}"
    );
    write_hf(&c, &tmp.path().join("b"), |t| {
        let p = t
            .iter_mut()
            .find(|x| x.0 == "model.encoder.layers.0.fc1.weight")
            .unwrap();
        p.1 = vec![D, 4 * D];
    });
    let msg = read_hf_dir(&tmp.path().join("b"), "hf", &NoProgress)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("model.encoder.layers.0.fc1.weight")
            && msg.contains(&format!("[{}, {}]", 4 * D, D)),
        "{msg}"
    );
}

#[test]
fn hf_config_options_hark_cannot_run_are_named() {
    let c = tiny_with_zero_k_bias();
    let tmp = tempfile::tempdir().unwrap();
    write_hf(&c, tmp.path(), |_| {});
    let p = tmp.path().join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    cfg["activation_function"] = "relu".into();
    std::fs::write(&p, cfg.to_string()).unwrap();
    let msg = read_hf_dir(tmp.path(), "hf", &NoProgress)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("activation_function") && msg.contains("gelu"),
        "{msg}"
    );
}
