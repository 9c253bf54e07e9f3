//! Test helpers: tiny synthetic Whisper checkpoints in CTranslate2 and transformers formats.
//!
//! Variable names are written out literally here (not derived from the importers'
//! mapping) so the tests check the mapping independently.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

/// Dimensions of the synthetic model.
pub const N_MELS: usize = 4;
pub const D: usize = 8;
pub const HEADS: usize = 2;
pub const ENC_LAYERS: usize = 2;
pub const DEC_LAYERS: usize = 2;
pub const VOCAB: usize = 16;
pub const AUDIO_CTX: usize = 6;
pub const TEXT_CTX: usize = 5;

/// Deterministic pseudo-random values exactly representable in f16 (multiples of 1/64 in [-2, 2)).
pub fn values(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) % 256) as f32 / 64.0 - 2.0
        })
        .collect()
}

/// One CTranslate2 variable.
#[derive(Clone, Debug)]
pub struct Var {
    pub shape: Vec<usize>,
    /// CT2 dtype id: 0 f32, 1 i8, 2 i16, 4 f16.
    pub dtype: u8,
    pub bytes: Vec<u8>,
}

impl Var {
    pub fn f16(shape: &[usize], v: &[f32]) -> Var {
        let bytes = v
            .iter()
            .flat_map(|&x| half::f16::from_f32(x).to_bits().to_le_bytes())
            .collect();
        Var {
            shape: shape.to_vec(),
            dtype: 4,
            bytes,
        }
    }
    pub fn f32(shape: &[usize], v: &[f32]) -> Var {
        Var {
            shape: shape.to_vec(),
            dtype: 0,
            bytes: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }
    pub fn i8_scalar(x: i8) -> Var {
        Var {
            shape: vec![],
            dtype: 1,
            bytes: vec![x as u8],
        }
    }
    pub fn i16_scalar(x: i16) -> Var {
        Var {
            shape: vec![],
            dtype: 2,
            bytes: x.to_le_bytes().to_vec(),
        }
    }
    pub fn i8(shape: &[usize], q: &[i8]) -> Var {
        Var {
            shape: shape.to_vec(),
            dtype: 1,
            bytes: q.iter().map(|&x| x as u8).collect(),
        }
    }
}

/// A synthetic CTranslate2 Whisper checkpoint: variables (with their f32 values) + aliases.
pub struct Ct2 {
    pub spec: String,
    pub revision: u32,
    pub vars: BTreeMap<String, Var>,
    pub values: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    pub aliases: Vec<(String, String)>,
}

impl Ct2 {
    /// The standard tiny model, all weights f16 like the real checkpoints.
    pub fn tiny() -> Ct2 {
        let mut c = Ct2 {
            spec: "WhisperSpec".into(),
            revision: 3,
            vars: BTreeMap::new(),
            values: BTreeMap::new(),
            aliases: vec![(
                "decoder/projection/weight".into(),
                "decoder/embeddings/weight".into(),
            )],
        };
        let mut seed = 1;
        let mut add = |c: &mut Ct2, name: String, shape: Vec<usize>| {
            seed += 1;
            let v = values(seed, shape.iter().product());
            c.vars.insert(name.clone(), Var::f16(&shape, &v));
            c.values.insert(name, (shape, v));
        };
        type Add<'a> = &'a mut dyn FnMut(&mut Ct2, String, Vec<usize>);
        fn norm(c: &mut Ct2, add: Add<'_>, p: &str) {
            add(c, format!("{p}/gamma"), vec![D]);
            add(c, format!("{p}/beta"), vec![D]);
        }
        fn lin(c: &mut Ct2, add: Add<'_>, p: &str, o: usize, i: usize) {
            add(c, format!("{p}/weight"), vec![o, i]);
            add(c, format!("{p}/bias"), vec![o]);
        }
        // The sub-blocks encoder and decoder layers share: self-attention with fused QKV
        // (`linear_0`) and output (`linear_1`); the feed-forward network.
        fn self_attention(c: &mut Ct2, add: Add<'_>, p: &str) {
            norm(c, add, &format!("{p}/self_attention/layer_norm"));
            lin(c, add, &format!("{p}/self_attention/linear_0"), 3 * D, D);
            lin(c, add, &format!("{p}/self_attention/linear_1"), D, D);
        }
        fn ffn(c: &mut Ct2, add: Add<'_>, p: &str) {
            norm(c, add, &format!("{p}/ffn/layer_norm"));
            lin(c, add, &format!("{p}/ffn/linear_0"), 4 * D, D);
            lin(c, add, &format!("{p}/ffn/linear_1"), D, 4 * D);
        }
        add(&mut c, "encoder/conv1/weight".into(), vec![D, N_MELS, 3]);
        add(&mut c, "encoder/conv1/bias".into(), vec![D]);
        add(&mut c, "encoder/conv2/weight".into(), vec![D, D, 3]);
        add(&mut c, "encoder/conv2/bias".into(), vec![D]);
        add(
            &mut c,
            "encoder/position_encodings/encodings".into(),
            vec![AUDIO_CTX, D],
        );
        for l in 0..ENC_LAYERS {
            let p = format!("encoder/layer_{l}");
            self_attention(&mut c, &mut add, &p);
            ffn(&mut c, &mut add, &p);
        }
        norm(&mut c, &mut add, "encoder/layer_norm");
        add(&mut c, "decoder/embeddings/weight".into(), vec![VOCAB, D]);
        add(
            &mut c,
            "decoder/position_encodings/encodings".into(),
            vec![TEXT_CTX, D],
        );
        for l in 0..DEC_LAYERS {
            let p = format!("decoder/layer_{l}");
            self_attention(&mut c, &mut add, &p);
            norm(&mut c, &mut add, &format!("{p}/attention/layer_norm"));
            lin(&mut c, &mut add, &format!("{p}/attention/linear_0"), D, D);
            lin(
                &mut c,
                &mut add,
                &format!("{p}/attention/linear_1"),
                2 * D,
                D,
            );
            lin(&mut c, &mut add, &format!("{p}/attention/linear_2"), D, D);
            ffn(&mut c, &mut add, &p);
        }
        norm(&mut c, &mut add, "decoder/layer_norm");
        c.vars
            .insert("encoder/num_heads".into(), Var::i16_scalar(HEADS as i16));
        c.vars
            .insert("decoder/num_heads".into(), Var::i16_scalar(HEADS as i16));
        c.vars
            .insert("decoder/activation".into(), Var::i8_scalar(3));
        c.vars.insert("decoder/pre_norm".into(), Var::i8_scalar(1));
        c.vars
            .insert("decoder/scale_embeddings".into(), Var::i8_scalar(0));
        c.vars.insert("decoder/alibi".into(), Var::i8_scalar(0));
        c.vars.insert(
            "decoder/start_from_zero_embedding".into(),
            Var::i8_scalar(0),
        );
        c.vars
            .insert("decoder/alignment_heads".into(), Var::i16_scalar(1));
        c.vars
            .insert("decoder/alignment_layer".into(), Var::i16_scalar(-1));
        c
    }

    /// Serialises `model.bin` as CTranslate2's `ModelSpec._serialize` does (version 6).
    pub fn to_bytes(&self) -> Vec<u8> {
        fn s(out: &mut Vec<u8>, x: &str) {
            out.extend(((x.len() + 1) as u16).to_le_bytes());
            out.extend(x.as_bytes());
            out.push(0);
        }
        let mut out = Vec::new();
        out.extend(6u32.to_le_bytes());
        s(&mut out, &self.spec);
        out.extend(self.revision.to_le_bytes());
        out.extend((self.vars.len() as u32).to_le_bytes());
        for (name, v) in &self.vars {
            s(&mut out, name);
            out.push(v.shape.len() as u8);
            for &d in &v.shape {
                out.extend((d as u32).to_le_bytes());
            }
            out.push(v.dtype);
            out.extend((v.bytes.len() as u32).to_le_bytes());
            out.extend(&v.bytes);
        }
        out.extend((self.aliases.len() as u32).to_le_bytes());
        for (a, t) in &self.aliases {
            s(&mut out, a);
            s(&mut out, t);
        }
        out
    }

    /// Writes a CTranslate2 directory (`model.bin`, `config.json`, `tokenizer.json`).
    pub fn write_dir(&self, dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("model.bin"), self.to_bytes()).unwrap();
        std::fs::write(
            dir.join("config.json"),
            r#"{"alignment_heads": [[1, 0], [1, 1]], "lang_ids": [], "suppress_ids": [1, 2, 7], "suppress_ids_begin": [3, 15]}"#,
        )
        .unwrap();
        std::fs::write(dir.join("tokenizer.json"), TOKENIZER).unwrap();
    }
}

/// Stand-in tokenizer file (the importers copy it verbatim).
pub const TOKENIZER: &str = r#"{"version": "1.0", "model": {"type": "BPE"}}"#;

/// Reads a hark `model.safetensors` into (dtype name, shape, f32 values) per tensor,
/// dequantising int8 with `<name>.scale`.
pub fn read_hark(dir: &Path) -> BTreeMap<String, (String, Vec<usize>, Vec<f32>)> {
    let st = hark_engine::safetensors::SafeTensors::open(dir.join("model.safetensors")).unwrap();
    let names: Vec<String> = st.names().map(String::from).collect();
    let mut out = BTreeMap::new();
    for n in names {
        if n.ends_with(".scale") {
            continue;
        }
        let (dtype, shape) = st.info(&n).unwrap();
        let (dtype, shape) = (format!("{dtype:?}"), shape.to_vec());
        let v = st.tensor(&n).unwrap().to_f32_vec().unwrap();
        out.insert(n, (dtype, shape, v));
    }
    out
}
