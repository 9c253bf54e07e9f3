//! Why do the CPU and GPU transcripts of a file differ? For each audio file, transcribes it
//! with the Whisper model on the CPU encoder and on the GPU delegate (beam 5, hark's
//! defaults, as `hark transcribe`), and when the texts differ, teacher-forces both
//! decoded sequences (timestamps rebuilt from the segments) through the CPU decoder on
//! each encoder output and prints:
//! * the encoder outputs' normalised MSE (GPU vs CPU),
//! * at the first differing token: both candidates' logits and the top-2 logit gap under
//!   each encoder (a near-tie flips under a ~1e-5 relative change of the encoder output),
//! * each whole sequence's log-probability under each encoder (the beam keeps the larger).
//!
//! `cargo run --release -p hark-gpu --example explain_divergence -- MODEL_DIR [--all] FILE...`
//! (used by scripts/gpu/compare_cpu_gpu.py `--explain`); `--all` analyses identical
//! transcripts too (the "first differing token" is then the end of the sequence).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use hark_gpu::whisper::WhisperEncoderDelegate;
use hark_gpu::{Delegate, DevicePreference, GpuContext};
use hark_models::whisper::{
    DecodeRows, EncoderOutput, Precision, Segment, TranscribeOptions, Whisper, WhisperModel,
};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn transcribe(w: &Whisper, samples: &[f32]) -> Res<Vec<Segment>> {
    let segs = Mutex::new(Vec::new());
    w.transcribe(
        samples,
        &TranscribeOptions::default(),
        &mut |s: &Segment| {
            if let Ok(mut v) = segs.lock() {
                v.push(s.clone());
            }
        },
    )?;
    Ok(segs.into_inner().unwrap_or_default())
}

/// The generated sequence of one window: `<|start|> tokens <|end|>` per segment, then EOT.
fn sequence(w: &Whisper, segs: &[Segment]) -> Vec<u32> {
    let sp = w.special_tokens();
    let ts = |t: f64| sp.timestamp_begin + (t / 0.02).round() as u32;
    let mut out = Vec::new();
    for s in segs {
        out.push(ts(s.start));
        out.extend_from_slice(&s.tokens);
        out.push(ts(s.end));
    }
    out.push(sp.eot);
    out
}

fn log_softmax(row: &[f32]) -> Vec<f32> {
    let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let lse = m + row.iter().map(|v| (v - m).exp()).sum::<f32>().ln();
    row.iter().map(|v| v - lse).collect()
}

/// Logits `[prompt.len() + seq.len(), vocab]` of the teacher-forced sequence.
fn forced_logits(
    model: &WhisperModel,
    enc: &EncoderOutput,
    prompt: &[u32],
    seq: &[u32],
) -> Res<Vec<Vec<f32>>> {
    let mut st = model.new_state(1);
    model.set_audio(&mut st, enc)?;
    let mut toks = prompt.to_vec();
    toks.extend_from_slice(seq);
    let hidden = model.decode_rows(&mut st, &toks, DecodeRows::Shared)?;
    let v = model.dims().n_vocab;
    let all = model.logits(&hidden, toks.len())?;
    Ok(all.chunks_exact(v).map(|r| r.to_vec()).collect())
}

fn main() -> Res<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .ok_or("usage: explain_divergence MODEL_DIR FILE...")?,
    );
    let mut all = false;
    let mut files = Vec::new();
    for a in args {
        if a == "--all" {
            all = true;
        } else {
            files.push(PathBuf::from(a));
        }
    }
    let ctx = GpuContext::new(DevicePreference::Any)?;
    let delegate = Arc::new(WhisperEncoderDelegate::load(ctx, &dir)?);
    let cpu = Whisper::load(&dir, Precision::F16)?;
    let mut gpu = Whisper::load(&dir, Precision::F16)?;
    gpu.set_delegates(vec![delegate.clone() as Arc<dyn Delegate>]);
    let model = &cpu.model;
    let tok = &cpu.tokenizer;
    let prompt = vec![cpu.special_tokens().sot];
    for f in &files {
        let name = f
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into());
        let samples = hark_audio::load_audio(f)?;
        let (sc, sg) = (transcribe(&cpu, &samples)?, transcribe(&gpu, &samples)?);
        let text = |s: &[Segment]| s.iter().map(|x| x.text.as_str()).collect::<String>();
        let (tc, tg) = (text(&sc), text(&sg));
        println!("== {name}\n  cpu: {:?}\n  gpu: {:?}", tc.trim(), tg.trim());
        if tc == tg {
            println!("  identical");
            if !all {
                continue;
            }
        }
        let lm = hark_audio::features::whisper::log_mel_spectrogram(
            &samples,
            model.dims().n_mels,
            hark_audio::features::whisper::FASTER_WHISPER_PADDING,
        )?;
        let mel = lm.pad_or_trim(model.n_frames()).data;
        let enc_c = model.encode(&mel)?;
        let enc_g = EncoderOutput {
            data: delegate.encode(&mel)?,
            frames: enc_c.frames,
        };
        let num: f64 = enc_g
            .data
            .iter()
            .zip(&enc_c.data)
            .map(|(a, b)| ((a - b) as f64).powi(2))
            .sum();
        let den: f64 = enc_c.data.iter().map(|b| (*b as f64).powi(2)).sum();
        println!("  encoder normalised MSE gpu vs cpu: {:.2e}", num / den);
        let (qc, qg) = (sequence(&cpu, &sc), sequence(&cpu, &sg));
        let first = qc.iter().zip(&qg).take_while(|(a, b)| a == b).count();
        let show = |t: u32| format!("{t} {:?}", tok.decode(&[t]));
        let (ac, ag) = (qc.get(first).copied(), qg.get(first).copied());
        println!(
            "  first differing token #{first}: cpu {}, gpu {}",
            ac.map_or("(end)".into(), show),
            ag.map_or("(end)".into(), show)
        );
        for (label, enc) in [("cpu encoder", &enc_c), ("gpu encoder", &enc_g)] {
            let lc = forced_logits(model, enc, &prompt, &qc)?;
            let lg = forced_logits(model, enc, &prompt, &qg)?;
            // Row prompt.len() - 1 + i predicts token i.
            let row = &lc[prompt.len() - 1 + first];
            let mut order: Vec<usize> = (0..row.len()).collect();
            order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
            let lp = |q: &[u32], l: &[Vec<f32>]| -> f32 {
                q.iter()
                    .enumerate()
                    .map(|(i, &t)| log_softmax(&l[prompt.len() - 1 + i])[t as usize])
                    .sum()
            };
            let at = |t: Option<u32>| t.map_or(f32::NAN, |t| row[t as usize]);
            println!(
                "  {label}: logit cpu-token {:.4}, gpu-token {:.4} (difference {:+.4}); \
                 top-2 {} {:.4} / {} {:.4} (gap {:.4}); sequence log-prob cpu {:.4}, gpu {:.4}",
                at(ac),
                at(ag),
                at(ac) - at(ag),
                show(order[0] as u32),
                row[order[0]],
                show(order[1] as u32),
                row[order[1]],
                row[order[0]] - row[order[1]],
                lp(&qc, &lc),
                lp(&qg, &lg),
            );
        }
    }
    Ok(())
}
