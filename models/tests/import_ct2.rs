//! CTranslate2 importer: synthetic checkpoints written in CT2's binary layout are
//! converted into hark's format; every tensor, dtype and config field is checked, and each
//! kind of broken input yields an error naming the file/tensor/option.

mod import_util;

use hark_models::store::convert::write_whisper_dir;
use hark_models::store::{NoProgress, StoreError};
use hark_models::whisper::config::{Precision, WhisperConfig};
use hark_models::whisper::import_ct2::read_ct2_dir;
use import_util::*;

/// hark name of a CT2 variable, written independently of the importer's mapping.
fn hark_of(ct2: &str) -> String {
    let mut s = ct2.replace("der/layer_norm/", "der/LN/");
    for (a, b) in [
        ("/position_encodings/encodings", "/embed_positions/weight"),
        ("decoder/embeddings/", "decoder/embed_tokens/"),
        ("/self_attention/layer_norm/", "/self_attn_layer_norm/"),
        ("/self_attention/linear_0/", "/self_attn/qkv_proj/"),
        ("/self_attention/linear_1/", "/self_attn/out_proj/"),
        ("/attention/layer_norm/", "/encoder_attn_layer_norm/"),
        ("/attention/linear_0/", "/encoder_attn/q_proj/"),
        ("/attention/linear_1/", "/encoder_attn/kv_proj/"),
        ("/attention/linear_2/", "/encoder_attn/out_proj/"),
        ("/ffn/layer_norm/", "/final_layer_norm/"),
        ("/ffn/linear_0/", "/fc1/"),
        ("/ffn/linear_1/", "/fc2/"),
        ("/gamma", "/weight"),
        ("/beta", "/bias"),
        ("/layer_", "/layers/"),
        ("/LN/", "/layer_norm/"),
    ] {
        s = s.replace(a, b);
    }
    s.replace('/', ".")
}

fn import(c: &Ct2, precision: Precision) -> Result<(tempfile::TempDir, WhisperConfig), StoreError> {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("ct2");
    c.write_dir(&src);
    let model = read_ct2_dir(&src, "tiny-test", &NoProgress)?;
    let out = tmp.path().join("hark");
    let cfg = write_whisper_dir(&model, precision, &out, &NoProgress)?;
    Ok((tmp, cfg))
}

fn is_matrix(name: &str) -> bool {
    name.ends_with(".weight") && !name.contains("layer_norm") && !name.contains("embed_positions")
}

#[test]
fn ct2_import_keeps_every_tensor_bit_exact_in_f16() {
    let c = Ct2::tiny();
    let (tmp, cfg) = import(&c, Precision::F16).unwrap();
    let got = read_hark(&tmp.path().join("hark"));
    assert_eq!(got.len(), c.values.len(), "one hark tensor per CT2 weight");
    for (ct2, (shape, v)) in &c.values {
        let h = hark_of(ct2);
        let (dtype, s, g) = got
            .get(&h)
            .unwrap_or_else(|| panic!("missing {h} (from {ct2})"));
        assert_eq!(s, shape, "{h}");
        assert_eq!(g, v, "{h} values");
        assert_eq!(
            dtype,
            if is_matrix(&h) { "F16" } else { "F32" },
            "{h} dtype"
        );
    }
    let d = cfg.dims;
    assert_eq!(
        (
            d.n_mels,
            d.n_audio_ctx,
            d.n_audio_state,
            d.n_audio_head,
            d.n_audio_layer
        ),
        (N_MELS, AUDIO_CTX, D, HEADS, ENC_LAYERS)
    );
    assert_eq!(
        (
            d.n_vocab,
            d.n_text_ctx,
            d.n_text_state,
            d.n_text_head,
            d.n_text_layer
        ),
        (VOCAB, TEXT_CTX, D, HEADS, DEC_LAYERS)
    );
    assert_eq!(cfg.suppress_tokens, vec![1, 2, 7]);
    assert_eq!(cfg.begin_suppress_tokens, vec![3, 15]);
    assert_eq!(cfg.alignment_heads, vec![[1, 0], [1, 1]]);
    assert_eq!(cfg.source.format, "ctranslate2");
    assert_eq!(cfg.source.file_sha256.len(), 64);
    assert!(!cfg.multilingual);
    // The written config reads back and the tokenizer is copied verbatim.
    let back = WhisperConfig::from_dir(&tmp.path().join("hark")).unwrap();
    assert_eq!(back, cfg);
    let tok = std::fs::read_to_string(tmp.path().join("hark/tokenizer.json")).unwrap();
    assert_eq!(tok, TOKENIZER);
}

#[test]
fn ct2_import_converts_to_f32_exactly_and_int8_within_half_a_step() {
    let c = Ct2::tiny();
    let (tmp, cfg) = import(&c, Precision::F32).unwrap();
    assert_eq!(cfg.precision, Precision::F32);
    for (ct2, (_, v)) in &c.values {
        let (dtype, _, g) = &read_hark(&tmp.path().join("hark"))[&hark_of(ct2)];
        assert_eq!(dtype, "F32");
        assert_eq!(g, v);
    }
    let (tmp, cfg) = import(&c, Precision::Int8).unwrap();
    assert_eq!(cfg.precision, Precision::Int8);
    let got = read_hark(&tmp.path().join("hark"));
    let st = hark_engine::safetensors::SafeTensors::open(tmp.path().join("hark/model.safetensors"))
        .unwrap();
    for (ct2, (shape, v)) in &c.values {
        let h = hark_of(ct2);
        let (dtype, _, g) = &got[&h];
        if !is_matrix(&h) {
            assert_eq!(dtype, "F32", "{h}");
            assert_eq!(g, v, "{h}");
            continue;
        }
        assert_eq!(dtype, "I8", "{h}");
        let rows = shape[0];
        let per = v.len() / rows;
        let (_, sshape) = st.info(&format!("{h}.scale")).expect("int8 scale tensor");
        assert_eq!(sshape, &[rows]);
        for r in 0..rows {
            let row = &v[r * per..(r + 1) * per];
            let amax = row.iter().fold(0f32, |m, x| m.max(x.abs()));
            for (a, b) in row.iter().zip(&g[r * per..(r + 1) * per]) {
                assert!(
                    (a - b).abs() <= amax / 127.0 * 0.5 + 1e-6,
                    "{h} row {r}: {a} vs {b}"
                );
            }
        }
    }
}

#[test]
fn ct2_int8_checkpoint_is_dequantised_with_its_scales() {
    let mut c = Ct2::tiny();
    let name = "encoder/layer_0/ffn/linear_0/weight";
    let (shape, _) = c.values[name].clone();
    let q: Vec<i8> = (0..shape[0] * shape[1]).map(|i| (i % 255) as i8).collect();
    let scales: Vec<f32> = (0..shape[0]).map(|r| 2.0 + r as f32).collect();
    c.vars.insert(name.into(), Var::i8(&shape, &q));
    c.vars
        .insert(format!("{name}_scale"), Var::f32(&[shape[0]], &scales));
    let (tmp, _) = import(&c, Precision::F32).unwrap();
    let (_, _, g) = &read_hark(&tmp.path().join("hark"))["encoder.layers.0.fc1.weight"];
    for (i, (&qi, &gi)) in q.iter().zip(g).enumerate() {
        // CTranslate2 stores round(value * scale): value = q / scale.
        assert_eq!(gi, qi as f32 / scales[i / shape[1]]);
    }
}

fn err_of(c: &Ct2) -> String {
    import(c, Precision::F16)
        .map(|_| ())
        .unwrap_err()
        .to_string()
}

#[test]
fn ct2_truncated_file_reports_offset_and_what_was_read() {
    let c = Ct2::tiny();
    let tmp = tempfile::tempdir().unwrap();
    c.write_dir(tmp.path());
    let bytes = c.to_bytes();
    std::fs::write(tmp.path().join("model.bin"), &bytes[..bytes.len() / 2]).unwrap();
    let err = read_ct2_dir(tmp.path(), "t", &NoProgress).unwrap_err();
    assert!(matches!(err, StoreError::Truncated { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("truncated") && msg.contains("model.bin") && msg.contains("of variable"),
        "{msg}"
    );
}

#[test]
fn ct2_unknown_spec_and_revision_are_rejected() {
    let mut c = Ct2::tiny();
    c.spec = "TransformerSpec".into();
    let msg = err_of(&c);
    assert!(
        msg.contains("TransformerSpec") && msg.contains("WhisperSpec"),
        "{msg}"
    );
    let mut c = Ct2::tiny();
    c.revision = 9;
    assert!(err_of(&c).contains("revision 9"));
}

#[test]
fn ct2_missing_tensor_is_named() {
    let mut c = Ct2::tiny();
    c.vars.remove("decoder/layer_1/ffn/linear_1/bias");
    let msg = err_of(&c);
    assert!(
        msg.contains("missing tensor decoder/layer_1/ffn/linear_1/bias"),
        "{msg}"
    );
}

#[test]
fn ct2_wrong_shape_names_tensor_and_expected_shape() {
    let mut c = Ct2::tiny();
    let v = values(99, 2 * D * D);
    c.vars.insert(
        "encoder/layer_1/self_attention/linear_0/weight".into(),
        Var::f16(&[2 * D, D], &v),
    );
    let msg = err_of(&c);
    assert!(
        msg.contains("encoder/layer_1/self_attention/linear_0/weight")
            && msg.contains(&format!("[{}, {}]", 3 * D, D)),
        "{msg}"
    );
}

#[test]
fn ct2_untied_output_projection_is_rejected() {
    let mut c = Ct2::tiny();
    c.aliases.clear();
    c.vars.insert(
        "decoder/projection/weight".into(),
        Var::f16(&[VOCAB, D], &values(7, VOCAB * D)),
    );
    let msg = err_of(&c);
    assert!(
        msg.contains("decoder/projection/weight") && msg.contains("ties"),
        "{msg}"
    );
    // An identical (un-aliased) copy is accepted.
    let mut c = Ct2::tiny();
    c.aliases.clear();
    let emb = c.vars["decoder/embeddings/weight"].clone();
    c.vars.insert("decoder/projection/weight".into(), emb);
    import(&c, Precision::F16).unwrap();
}

#[test]
fn ct2_unexpected_weights_and_activation_are_rejected() {
    let mut c = Ct2::tiny();
    c.vars.insert(
        "decoder/layernorm_embedding/gamma".into(),
        Var::f16(&[D], &values(3, D)),
    );
    let msg = err_of(&c);
    assert!(
        msg.contains("decoder/layernorm_embedding/gamma") && msg.contains("unexpected"),
        "{msg}"
    );
    let mut c = Ct2::tiny();
    c.vars
        .insert("decoder/activation".into(), Var::i8_scalar(0));
    let msg = err_of(&c);
    assert!(
        msg.contains("decoder/activation") && msg.contains("GELU"),
        "{msg}"
    );
}

#[test]
fn ct2_unknown_dtype_id_is_rejected() {
    let mut c = Ct2::tiny();
    let mut v = c.vars["encoder/conv1/bias"].clone();
    v.dtype = 9;
    c.vars.insert("encoder/conv1/bias".into(), v);
    let msg = err_of(&c);
    assert!(
        msg.contains("encoder/conv1/bias") && msg.contains("dtype id 9"),
        "{msg}"
    );
}
