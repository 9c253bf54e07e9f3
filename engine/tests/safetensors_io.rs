//! Safetensors loading: zero-copy mapping, round trips, precision conversion at load,
//! and errors (malformed, truncated, wrong shape/dtype, missing tensors) that name the
//! tensor and what was expected, without panicking.

mod common;

use std::collections::HashMap;
use std::io::Write;

use common::lcg;
use hark_engine::{
    save_safetensors, DType, Error, Precision, PrecisionPolicy, SafeTensors, Tensor, Weights,
};

fn sample_file(dir: &std::path::Path) -> std::path::PathBuf {
    let w = Tensor::from_f32(&[8, 6], &lcg(1, 48)).unwrap();
    let b = Tensor::from_f32(&[8], &lcg(2, 8)).unwrap();
    let h = Tensor::from_f32(&[5, 3], &lcg(3, 15))
        .unwrap()
        .to_dtype(DType::F16)
        .unwrap();
    let bf = Tensor::from_f32(&[3], &lcg(4, 3))
        .unwrap()
        .to_dtype(DType::BF16)
        .unwrap();
    let q = Tensor::from_f32(&[4, 7], &lcg(5, 28))
        .unwrap()
        .to_dtype(DType::I8)
        .unwrap();
    let path = dir.join("m.safetensors");
    let mut meta = HashMap::new();
    meta.insert("family".to_string(), "test".to_string());
    save_safetensors(
        &path,
        &[
            ("enc.fc.weight", &w),
            ("enc.fc.bias", &b),
            ("enc.h", &h),
            ("enc.odd", &bf),
            ("dec.q", &q),
        ],
        &meta,
    )
    .unwrap();
    path
}

#[test]
fn loaded_weights_point_into_the_mapping() {
    let dir = tempfile::tempdir().unwrap();
    let path = sample_file(dir.path());
    let st = SafeTensors::open(&path).unwrap();
    let map = st.mapped_bytes().as_ptr_range();
    for name in ["enc.fc.weight", "enc.fc.bias", "enc.h", "enc.odd", "dec.q"] {
        let t = st.tensor(name).unwrap();
        assert!(t.is_mapped(), "{name} was copied");
        let p = t.data_ptr();
        let end = p.wrapping_add(t.numel() * t.dtype().size_in_bytes());
        assert!(
            map.contains(&p) && end <= map.end,
            "{name} data not inside the mapping"
        );
    }
    let q = st.tensor("dec.q").unwrap();
    let s = q.scales().unwrap();
    assert!(map.contains(&s.data_ptr()), "int8 scales copied");
    // Through Weights with a matching policy: still zero-copy.
    let w = Weights::open(&[&path], PrecisionPolicy::new(Precision::F32)).unwrap();
    let t = w.pp("enc").pp("fc").get_matrix("weight", &[8, 6]).unwrap();
    assert!(map.contains(&t.data_ptr()) || t.is_mapped());
    assert_eq!(w.metadata("family"), Some("test"));
}

#[test]
fn save_then_load_round_trips_every_dtype() {
    let dir = tempfile::tempdir().unwrap();
    let path = sample_file(dir.path());
    let st = SafeTensors::open(&path).unwrap();
    assert_eq!(
        st.tensor("enc.fc.weight").unwrap().as_f32().unwrap(),
        &lcg(1, 48)[..]
    );
    let h = st.tensor("enc.h").unwrap();
    assert_eq!(h.dtype(), DType::F16);
    let want: Vec<f32> = lcg(3, 15)
        .iter()
        .map(|&v| hark_engine::f16::from_f32(v).to_f32())
        .collect();
    assert_eq!(h.to_f32_vec().unwrap(), want);
    let q = st.tensor("dec.q").unwrap();
    assert_eq!((q.dtype(), q.shape()), (DType::I8, &[4usize, 7][..]));
    let deq = q.to_f32_vec().unwrap();
    let orig = lcg(5, 28);
    for r in 0..4 {
        let step = orig[r * 7..(r + 1) * 7]
            .iter()
            .fold(0f32, |a, v| a.max(v.abs()))
            / 127.0;
        for c in 0..7 {
            assert!((deq[r * 7 + c] - orig[r * 7 + c]).abs() <= step / 2.0 + 1e-7);
        }
    }
    assert!(
        st.contains("dec.q.scale"),
        "int8 scales are stored as <name>.scale"
    );
}

#[test]
fn precision_policy_converts_at_load_and_pins_prefixes() {
    let dir = tempfile::tempdir().unwrap();
    let path = sample_file(dir.path());
    let policy = PrecisionPolicy::new(Precision::Int8).pin_f32("enc.h");
    let w = Weights::open(&[&path], policy).unwrap();
    let fc = w.get_matrix("enc.fc.weight", &[8, 6]).unwrap();
    assert_eq!(fc.dtype(), DType::I8);
    assert_eq!(fc.scales().unwrap().numel(), 8);
    assert_eq!(
        w.get_matrix("enc.h", &[5, 3]).unwrap().dtype(),
        DType::F32,
        "pinned to f32"
    );
    let w16 = Weights::open(&[&path], PrecisionPolicy::new(Precision::F16)).unwrap();
    assert_eq!(
        w16.get_matrix("enc.fc.weight", &[8, 6]).unwrap().dtype(),
        DType::F16
    );
    assert_eq!(
        w16.get_matrix("dec.q", &[4, 7]).unwrap().dtype(),
        DType::F16,
        "int8 -> f16 dequantises"
    );
    assert_eq!(w16.get_f32("enc.h", &[5, 3]).unwrap().dtype(), DType::F32);
}

fn write_raw(dir: &std::path::Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::File::create(&p).unwrap().write_all(bytes).unwrap();
    p
}

fn with_header(json: &str, data: &[u8]) -> Vec<u8> {
    let mut v = (json.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(json.as_bytes());
    v.extend_from_slice(data);
    v
}

#[test]
fn malformed_and_truncated_files_are_errors_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("short", vec![1, 2, 3], "too short"),
        (
            "hugeheader",
            with_header("{}", &[])
                .iter()
                .enumerate()
                .map(|(i, &b)| if i == 0 { 200 } else { b })
                .collect(),
            "exceeds the file size",
        ),
        ("notjson", with_header("{not json", &[]), "not valid JSON"),
        ("array", with_header("[1,2]", &[]), "not a JSON object"),
        (
            "noshape",
            with_header(r#"{"a":{"dtype":"F32","data_offsets":[0,4]}}"#, &[0; 4]),
            "tensor 'a': missing array 'shape'",
        ),
        (
            "size",
            with_header(
                r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#,
                &[0; 4],
            ),
            "tensor 'a': shape [2]",
        ),
        (
            "truncdata",
            with_header(
                r#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#,
                &[0; 10],
            ),
            "tensor 'w': data_offsets [0, 16] outside the 10 data bytes",
        ),
    ];
    for (name, bytes, expect) in cases {
        let p = write_raw(dir.path(), name, &bytes);
        let err = SafeTensors::open(&p).expect_err(name);
        let msg = err.to_string();
        assert!(
            matches!(err, Error::SafetensorsFormat { .. }),
            "{name}: {msg}"
        );
        assert!(
            msg.contains(expect) && msg.contains(name),
            "{name}: message '{msg}' lacks '{expect}'"
        );
    }
    // A real file cut in the middle of its data.
    let good = std::fs::read(sample_file(dir.path())).unwrap();
    let p = write_raw(dir.path(), "cut.safetensors", &good[..good.len() - 20]);
    let msg = SafeTensors::open(&p).unwrap_err().to_string();
    assert!(
        msg.contains("outside") && msg.contains("truncated"),
        "{msg}"
    );
    // Missing file.
    assert!(matches!(
        SafeTensors::open(dir.path().join("nope")),
        Err(Error::Io { .. })
    ));
}

#[test]
fn unsupported_dtype_is_reported_when_the_tensor_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_raw(
        dir.path(),
        "f64.safetensors",
        &with_header(
            r#"{"x":{"dtype":"F64","shape":[1],"data_offsets":[0,8]},"y":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#,
            &[0; 12],
        ),
    );
    let st = SafeTensors::open(&p).unwrap();
    assert!(st.tensor("y").is_ok());
    let msg = st.tensor("x").unwrap_err().to_string();
    assert!(msg.contains("'x'") && msg.contains("F64"), "{msg}");
}

#[test]
fn wrong_shape_missing_tensor_and_missing_scale_name_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let path = sample_file(dir.path());
    let w = Weights::open(&[&path], PrecisionPolicy::default()).unwrap();
    let e = w.pp("enc.fc").get("weight", &[6, 8]).unwrap_err();
    assert!(matches!(&e, Error::ShapeMismatch { .. }));
    let msg = e.to_string();
    assert!(
        msg.contains("enc.fc.weight") && msg.contains("[6, 8]") && msg.contains("[8, 6]"),
        "{msg}"
    );

    let e = w.pp("enc").get_f32("nonexistent", &[1]).unwrap_err();
    assert!(matches!(&e, Error::MissingTensor { .. }));
    assert!(e.to_string().contains("enc.nonexistent"), "{e}");

    // An f16 tensor asked for as f32 slice: dtype error naming the dtypes.
    let h = w.get("enc.h", &[5, 3]).unwrap();
    let e = h.as_f32().unwrap_err();
    assert!(
        matches!(&e, Error::DTypeMismatch { .. }) && e.to_string().contains("f16"),
        "{e}"
    );

    // A stored dtype other than the one the caller requires.
    let e = w.pp("enc").get_typed("h", &[5, 3], DType::F32).unwrap_err();
    assert!(matches!(&e, Error::DTypeMismatch { .. }));
    let msg = e.to_string();
    assert!(
        msg.contains("enc.h") && msg.contains("expected dtype f32, got f16"),
        "{msg}"
    );
    assert!(w.get_typed("enc.h", &[5, 3], DType::F16).is_ok());

    // An int8 tensor whose `.scale` is missing.
    let q = Tensor::from_f32(&[2, 2], &[1., 2., 3., 4.])
        .unwrap()
        .to_dtype(DType::I8)
        .unwrap();
    let raw = dir.path().join("noscale.safetensors");
    save_safetensors(&raw, &[("q", &q)], &HashMap::new()).unwrap();
    // Rewrite the header without the scale entry (keep the same data region).
    let bytes = std::fs::read(&raw).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut hdr: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    hdr.as_object_mut().unwrap().remove("q.scale");
    let p = write_raw(
        dir.path(),
        "noscale2.safetensors",
        &with_header(&hdr.to_string(), &bytes[8 + n..]),
    );
    let e = SafeTensors::open(&p).unwrap().tensor("q").unwrap_err();
    assert!(matches!(&e, Error::MissingTensor { .. }));
    assert!(
        e.to_string().contains("q.scale") && e.to_string().contains("int8 tensor 'q'"),
        "{e}"
    );

    // Op-level shape mismatch: linear with a wrong input size reports the buffer.
    let fc = w.get_matrix("enc.fc.weight", &[8, 6]).unwrap();
    let mut out = vec![0f32; 8];
    let e = hark_engine::ops::linear(&[0f32; 5], 1, &fc, None, &mut out).unwrap_err();
    assert!(
        e.to_string().contains("'x'") && e.to_string().contains("expected 6"),
        "{e}"
    );
}

#[test]
fn misaligned_tensors_from_foreign_writers_are_copied_not_rejected() {
    let dir = tempfile::tempdir().unwrap();
    // F16 of 1 element (2 bytes) first, then an F32 at data offset 2: misaligned.
    let json = r#"{"a":{"dtype":"F16","shape":[1],"data_offsets":[0,2]},"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}}"#;
    let mut data = vec![0u8; 2];
    data.extend_from_slice(&1.5f32.to_le_bytes());
    // Pad the header so the data start is 4-aligned, making offset 2 misaligned.
    let mut j = json.to_string();
    while !(8 + j.len()).is_multiple_of(4) {
        j.push(' ');
    }
    let p = write_raw(dir.path(), "mis.safetensors", &with_header(&j, &data));
    let st = SafeTensors::open(&p).unwrap();
    let b = st.tensor("b").unwrap();
    assert_eq!(b.as_f32().unwrap(), &[1.5]);
    assert!(!b.is_mapped());
}
