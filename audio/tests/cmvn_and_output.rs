//! Global CMVN from Kaldi `cmvn.ark` (binary and text) and WeNet JSON, and the
//! Kaldi text / npy writers.

use hark_audio::features::cmvn::GlobalCmvn;
use hark_audio::features::output::{format_g7, write_kaldi_text, write_npy};

/// Statistics of a small feature matrix, accumulated as `compute-cmvn-stats` does.
fn stats(feats: &[[f32; 3]]) -> (Vec<f64>, Vec<f64>, f64) {
    let mut s = vec![0.0; 3];
    let mut q = vec![0.0; 3];
    for f in feats {
        for d in 0..3 {
            s[d] += f[d] as f64;
            q[d] += (f[d] as f64).powi(2);
        }
    }
    (s, q, feats.len() as f64)
}

const FEATS: [[f32; 3]; 4] = [
    [1.0, 10.0, -2.0],
    [2.0, 12.0, -1.0],
    [3.0, 11.0, 0.5],
    [6.0, 9.0, 0.0],
];

fn check_normalises(c: &GlobalCmvn) {
    let mut x: Vec<f32> = FEATS.iter().flatten().copied().collect();
    c.apply(&mut x, 3).expect("apply");
    for d in 0..3 {
        let col: Vec<f64> = (0..4).map(|t| x[t * 3 + d] as f64).collect();
        let mean = col.iter().sum::<f64>() / 4.0;
        let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 4.0;
        assert!(mean.abs() < 1e-5, "dim {d}: mean {mean}");
        assert!((var - 1.0).abs() < 1e-4, "dim {d}: var {var}");
    }
}

#[test]
fn cmvn_from_kaldi_binary_text_and_wenet_json_agree_and_normalise() {
    let (s, q, n) = stats(&FEATS);
    let dir = tempfile::tempdir().expect("tmp");
    // Kaldi binary: "key \0B" + "DM " + <4><rows> <4><cols> + f64 data (row 0 sums+count, row 1 squares+0).
    let mut bin = b"global \0BDM ".to_vec();
    bin.push(4);
    bin.extend_from_slice(&2i32.to_le_bytes());
    bin.push(4);
    bin.extend_from_slice(&4i32.to_le_bytes());
    for v in s
        .iter()
        .chain([n].iter())
        .chain(q.iter())
        .chain([0.0].iter())
    {
        bin.extend_from_slice(&v.to_le_bytes());
    }
    let pb = dir.path().join("cmvn.ark");
    std::fs::write(&pb, &bin).expect("write");
    // Kaldi text, as `copy-matrix --binary=false` prints it.
    let text = format!(
        " [\n  {} {} {} {}\n  {} {} {} 0 ]\n",
        s[0], s[1], s[2], n, q[0], q[1], q[2]
    );
    let pt = dir.path().join("cmvn.txt");
    std::fs::write(&pt, text).expect("write");
    // WeNet global_cmvn JSON.
    let json = format!(
        "{{\"mean_stat\": [{}, {}, {}], \"var_stat\": [{}, {}, {}], \"frame_num\": {}}}",
        s[0], s[1], s[2], q[0], q[1], q[2], n
    );
    let pj = dir.path().join("global_cmvn");
    std::fs::write(&pj, json).expect("write");

    let cb = GlobalCmvn::load(&pb).expect("binary");
    let ct = GlobalCmvn::load(&pt).expect("text");
    let cj = GlobalCmvn::load(&pj).expect("json");
    assert_eq!(cb, ct);
    assert_eq!(cb, cj);
    check_normalises(&cb);
}

#[test]
fn cmvn_reports_dimension_mismatch_and_bad_files() {
    let c = GlobalCmvn::from_stats(&[1.0, 2.0], &[2.0, 5.0], 2.0, true).expect("stats");
    let mut x = vec![0.0f32; 6];
    assert!(c.apply(&mut x, 3).is_err());
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path().join("broken.ark");
    std::fs::write(&p, b"key \0BCM junk").expect("write");
    let msg = GlobalCmvn::load(&p)
        .expect_err("compressed unsupported")
        .to_string();
    assert!(msg.contains("broken.ark") && msg.contains("CM"), "{msg}");
}

#[test]
fn kaldi_text_writer_matches_copy_feats_layout() {
    let mut out = Vec::new();
    write_kaldi_text(
        &mut out,
        "utt1",
        &[15.00744, 21.17303, 0.3232674, -4.92479],
        2,
        2,
    )
    .expect("write");
    assert_eq!(
        String::from_utf8(out).expect("utf8"),
        "utt1  [\n  15.00744 21.17303\n  0.3232674 -4.92479 ]\n"
    );
    assert_eq!(format_g7(1.0), "1");
    assert_eq!(format_g7(-0.5), "-0.5");
    assert_eq!(format_g7(1.5e-7), "1.5e-07");
}

#[test]
fn npy_writer_emits_a_valid_header_and_data() {
    let mut out = Vec::new();
    write_npy(&mut out, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3).expect("write");
    assert_eq!(&out[..8], b"\x93NUMPY\x01\x00");
    let hlen = u16::from_le_bytes([out[8], out[9]]) as usize;
    assert_eq!((10 + hlen) % 64, 0);
    let header = std::str::from_utf8(&out[10..10 + hlen]).expect("ascii");
    assert!(
        header.contains("'shape': (2, 3)") && header.contains("'<f4'"),
        "{header}"
    );
    assert_eq!(out.len(), 10 + hlen + 24);
    assert_eq!(
        f32::from_le_bytes([
            out[10 + hlen + 20],
            out[10 + hlen + 21],
            out[10 + hlen + 22],
            out[10 + hlen + 23]
        ]),
        6.0
    );
}
