//! SentencePiece BPE models read straight from the `.model` protobuf file.
//!
//! The `.model` file is a serialized `ModelProto` (sentencepiece_model.proto). Only the
//! fields needed to encode and decode are read, with a ~60-line protobuf wire-format reader
//! (no protoc, no generated code):
//! * `pieces` (field 1): `piece` (1, string), `score` (2, float), `type` (3, enum);
//! * `trainer_spec` (2): `model_type` (3; must be BPE = 2), `unk_id` (40);
//! * `normalizer_spec` (3): `name` (1), `add_dummy_prefix` (3), `remove_extra_whitespaces`
//!   (4), `escape_whitespaces` (5).
//!
//! Encoding follows sentencepiece's `bpe_model.cc`: the normalised text is split into
//! characters and the adjacent pair whose concatenation is a vocabulary piece with the
//! highest score is merged repeatedly (leftmost first on ties); characters left outside the
//! vocabulary become `<unk>`, and runs of unknown pieces are merged into one, as
//! `SentencePieceProcessor::Encode` does. Normalisation implements whitespace handling
//! (strip, collapse, dummy prefix, "▁" escaping); the NFKC character map of `nmt_nfkc`
//! models is not applied (it is the identity on the upper-case ASCII text FireRedASR feeds
//! it). This file is self-contained (its own error type) on purpose.

use std::collections::HashMap;
use std::path::Path;

/// The whitespace marker "▁" (U+2581).
pub const SPM_SPACE: char = '\u{2581}';

/// Errors reading a SentencePiece model.
#[derive(Debug, thiserror::Error)]
pub enum SentencePieceError {
    /// The file could not be read.
    #[error("sentencepiece: cannot read {path}: {source}")]
    Io {
        /// File path.
        path: String,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The protobuf is malformed or uses an unsupported model type.
    #[error("sentencepiece: {origin}: {message}")]
    Format {
        /// File path or other origin.
        origin: String,
        /// What is wrong.
        message: String,
    },
}

/// Kind of a vocabulary piece (`SentencePiece.Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PieceType {
    /// Ordinary piece.
    Normal,
    /// `<unk>`.
    Unknown,
    /// Control symbol (`<s>`, `</s>`), never produced by encoding.
    Control,
    /// User-defined symbol.
    UserDefined,
    /// Unused piece.
    Unused,
    /// Byte-fallback piece.
    Byte,
}

/// A loaded SentencePiece BPE model.
#[derive(Debug, Clone)]
pub struct SentencePieceModel {
    pieces: Vec<(String, f32, PieceType)>,
    index: HashMap<String, u32>,
    unk_id: u32,
    add_dummy_prefix: bool,
    remove_extra_whitespaces: bool,
    escape_whitespaces: bool,
    normalizer: String,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos)?;
            self.pos += 1;
            v |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    /// Next (field number, value); length-delimited values are returned as bytes.
    fn field(&mut self) -> Option<(u64, Value<'a>)> {
        let key = self.varint()?;
        let v = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                let b = self.buf.get(self.pos..self.pos + 8)?;
                self.pos += 8;
                Value::Fixed64(u64::from_le_bytes(b.try_into().ok()?))
            }
            2 => {
                let n = self.varint()? as usize;
                let b = self.buf.get(self.pos..self.pos.checked_add(n)?)?;
                self.pos += n;
                Value::Bytes(b)
            }
            5 => {
                let b = self.buf.get(self.pos..self.pos + 4)?;
                self.pos += 4;
                Value::Fixed32(u32::from_le_bytes(b.try_into().ok()?))
            }
            _ => return None,
        };
        Some((key >> 3, v))
    }

    /// All fields of a message, or None if malformed.
    fn fields(buf: &'a [u8]) -> Option<Vec<(u64, Value<'a>)>> {
        let mut r = Reader { buf, pos: 0 };
        let mut out = Vec::new();
        while r.pos < buf.len() {
            out.push(r.field()?);
        }
        Some(out)
    }
}

#[derive(Debug, Clone, Copy)]
enum Value<'a> {
    Varint(u64),
    Fixed64(#[allow(dead_code)] u64),
    Fixed32(u32),
    Bytes(&'a [u8]),
}

impl SentencePieceModel {
    /// Reads a `.model` file.
    pub fn load(path: &Path) -> Result<Self, SentencePieceError> {
        let bytes = std::fs::read(path).map_err(|source| SentencePieceError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_bytes(&bytes, &path.display().to_string())
    }

    /// Parses serialized `ModelProto` bytes (`origin` labels errors).
    pub fn from_bytes(bytes: &[u8], origin: &str) -> Result<Self, SentencePieceError> {
        let err = |message: String| SentencePieceError::Format {
            origin: origin.to_string(),
            message,
        };
        let top = Reader::fields(bytes).ok_or_else(|| err("malformed protobuf".into()))?;
        let mut m = SentencePieceModel {
            pieces: Vec::new(),
            index: HashMap::new(),
            unk_id: 0,
            add_dummy_prefix: true,
            remove_extra_whitespaces: true,
            escape_whitespaces: true,
            normalizer: String::new(),
        };
        let mut model_type = 1u64; // UNIGRAM is the proto default
        for (field, v) in top {
            match (field, v) {
                (1, Value::Bytes(b)) => {
                    let (mut piece, mut score, mut ty) = (String::new(), 0.0f32, 1u64);
                    for (f, v) in Reader::fields(b)
                        .ok_or_else(|| err(format!("malformed piece #{}", m.pieces.len())))?
                    {
                        match (f, v) {
                            (1, Value::Bytes(s)) => {
                                piece = String::from_utf8(s.to_vec()).map_err(|_| {
                                    err(format!("piece #{} is not UTF-8", m.pieces.len()))
                                })?
                            }
                            (2, Value::Fixed32(x)) => score = f32::from_bits(x),
                            (3, Value::Varint(x)) => ty = x,
                            _ => {}
                        }
                    }
                    let ty = match ty {
                        1 => PieceType::Normal,
                        2 => PieceType::Unknown,
                        3 => PieceType::Control,
                        4 => PieceType::UserDefined,
                        5 => PieceType::Unused,
                        6 => PieceType::Byte,
                        other => return Err(err(format!("piece {piece:?}: unknown type {other}"))),
                    };
                    m.pieces.push((piece, score, ty));
                }
                (2, Value::Bytes(b)) => {
                    for (f, v) in
                        Reader::fields(b).ok_or_else(|| err("malformed trainer_spec".into()))?
                    {
                        if let (3, Value::Varint(x)) = (f, v) {
                            model_type = x;
                        }
                    }
                }
                (3, Value::Bytes(b)) => {
                    for (f, v) in
                        Reader::fields(b).ok_or_else(|| err("malformed normalizer_spec".into()))?
                    {
                        match (f, v) {
                            (1, Value::Bytes(s)) => {
                                m.normalizer = String::from_utf8_lossy(s).into_owned()
                            }
                            (3, Value::Varint(x)) => m.add_dummy_prefix = x != 0,
                            (4, Value::Varint(x)) => m.remove_extra_whitespaces = x != 0,
                            (5, Value::Varint(x)) => m.escape_whitespaces = x != 0,
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        if model_type != 2 {
            return Err(err(format!("model_type {model_type} is not BPE (2)")));
        }
        if m.pieces.is_empty() {
            return Err(err("no pieces".into()));
        }
        for (i, (p, _, ty)) in m.pieces.iter().enumerate() {
            if *ty == PieceType::Unknown {
                m.unk_id = i as u32;
            }
            m.index.entry(p.clone()).or_insert(i as u32);
        }
        Ok(m)
    }

    /// Vocabulary size.
    pub fn len(&self) -> usize {
        self.pieces.len()
    }

    /// True if the model has no pieces (never after a successful load).
    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }

    /// Piece string of an id.
    pub fn id_to_piece(&self, id: u32) -> Option<&str> {
        self.pieces.get(id as usize).map(|p| p.0.as_str())
    }

    /// Id of a piece (`<unk>`'s id if absent).
    pub fn piece_to_id(&self, piece: &str) -> u32 {
        self.index.get(piece).copied().unwrap_or(self.unk_id)
    }

    /// Name of the normaliser the model was trained with (`identity`, `nmt_nfkc`, ...).
    pub fn normalizer(&self) -> &str {
        &self.normalizer
    }

    fn normalize(&self, text: &str) -> String {
        let mut s: String = if self.remove_extra_whitespaces {
            text.split(' ')
                .filter(|w| !w.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        } else {
            text.to_string()
        };
        if s.is_empty() {
            return s;
        }
        if self.add_dummy_prefix {
            s.insert(0, ' ');
        }
        if self.escape_whitespaces {
            s = s.replace(' ', &SPM_SPACE.to_string());
        }
        s
    }

    fn mergeable(&self, piece: &str) -> Option<f32> {
        let id = *self.index.get(piece)?;
        let (_, score, ty) = &self.pieces[id as usize];
        matches!(ty, PieceType::Normal | PieceType::UserDefined).then_some(*score)
    }

    /// Encodes text into pieces (`EncodeAsPieces`).
    pub fn encode_as_pieces(&self, text: &str) -> Vec<String> {
        let norm = self.normalize(text);
        let mut syms: Vec<String> = norm.chars().map(|c| c.to_string()).collect();
        loop {
            let mut best: Option<(f32, usize)> = None;
            for i in 0..syms.len().saturating_sub(1) {
                let cat = format!("{}{}", syms[i], syms[i + 1]);
                if let Some(score) = self.mergeable(&cat) {
                    if best.is_none_or(|(s, _)| score > s) {
                        best = Some((score, i));
                    }
                }
            }
            let Some((_, i)) = best else { break };
            let right = syms.remove(i + 1);
            syms[i].push_str(&right);
        }
        // Runs of unknown pieces become one piece.
        let mut out: Vec<String> = Vec::with_capacity(syms.len());
        let mut prev_unk = false;
        for s in syms {
            let unk = self.mergeable(&s).is_none();
            match out.last_mut() {
                Some(last) if unk && prev_unk => last.push_str(&s),
                _ => out.push(s),
            }
            prev_unk = unk;
        }
        out
    }

    /// Encodes text into ids (`<unk>` for pieces outside the vocabulary).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        self.encode_as_pieces(text)
            .iter()
            .map(|p| self.piece_to_id(p))
            .collect()
    }

    /// Decodes ids: concatenates pieces (control pieces dropped, `<unk>` as " ⁇ "), turns
    /// "▁" into spaces and drops the dummy-prefix space.
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut s = String::new();
        for &id in ids {
            match self.pieces.get(id as usize) {
                Some((_, _, PieceType::Control)) | None => {}
                Some((_, _, PieceType::Unknown)) => s.push_str(" \u{2047} "),
                Some((p, _, _)) => s.push_str(p),
            }
        }
        let s = s.replace(SPM_SPACE, " ");
        match (self.add_dummy_prefix, s.strip_prefix(' ')) {
            (true, Some(rest)) => rest.to_string(),
            _ => s,
        }
    }
}
