//! Whisper's byte-level BPE tokenizer, loaded from a Hugging Face `tokenizer.json`.
//!
//! References: openai/whisper `whisper/tokenizer.py` (special tokens, timestamps,
//! `non_speech_tokens`, `sot_sequence`) and SYSTRAN/faster-whisper
//! `faster_whisper/tokenizer.py` (the same logic on top of a `tokenizer.json`).
//!
//! Design:
//! - Everything is looked up in tables built once in [`WhisperTokenizer::from_file`]:
//!   token -> id hash map, id -> token and id -> bytes vectors, a `(left, right) ->
//!   (rank, merged)` merge map, and the 256 single-byte token ids.
//! - Text tokens are stored in GPT-2's byte-level alphabet; decoding maps them back
//!   to raw bytes, so a multi-byte character split across tokens decodes correctly
//!   once all its pieces are there, and a partial sequence never panics: use
//!   [`WhisperTokenizer::decode_bytes`] for the raw bytes or
//!   [`WhisperTokenizer::decode`] for a lossy `String` (U+FFFD for broken UTF-8).
//! - Timestamp tokens `<|0.00|>` ... `<|30.00|>` are not in `tokenizer.json`; as in
//!   Whisper they are the 1501 ids following `<|notimestamps|>`
//!   (`timestamp_begin = no_timestamps + 1`). They are added to the tables, so
//!   [`WhisperTokenizer::id_to_token`] and [`WhisperTokenizer::token_to_id`] know them.
//! - [`WhisperTokenizer::encode`] matches the special tokens written in the text
//!   (leftmost-longest, as Hugging Face `tokenizers` does) and BPE-encodes the rest;
//!   [`WhisperTokenizer::encode_ordinary`] treats the whole input as plain text.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use crate::bpe::{self, Merges};
use crate::bytelevel::{bytes_to_unicode, pretokenize};
use crate::languages::LANGUAGES;
use crate::TokenizerError;

/// Number of timestamp tokens: 0.00 s to 30.00 s in 0.02 s steps.
pub const NUM_TIMESTAMP_TOKENS: u32 = 1501;

/// Seconds per timestamp token step.
pub const TIMESTAMP_STEP_SECONDS: f32 = 0.02;

/// Whisper's task token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Task {
    /// `<|transcribe|>`: speech to text in the spoken language.
    Transcribe,
    /// `<|translate|>`: speech to English text.
    Translate,
}

#[derive(Deserialize)]
struct TokenizerJson {
    #[serde(default)]
    added_tokens: Vec<AddedTokenJson>,
    model: ModelJson,
}

#[derive(Deserialize)]
struct AddedTokenJson {
    id: u32,
    content: String,
    #[serde(default)]
    special: bool,
}

#[derive(Deserialize)]
struct ModelJson {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    vocab: HashMap<String, u32>,
    merges: Vec<MergeJson>,
}

/// Older files store a merge as `"a b"`, newer ones as `["a", "b"]`.
#[derive(Deserialize)]
#[serde(untagged)]
enum MergeJson {
    Joined(String),
    Pair(String, String),
}

/// Whisper's tokenizer: byte-level BPE plus Whisper's special and timestamp tokens.
#[derive(Debug, Clone)]
pub struct WhisperTokenizer {
    token_to_id: HashMap<String, u32>,
    /// Token text by id (byte-level alphabet for text tokens), `None` for holes.
    id_to_token: Vec<Option<String>>,
    /// Raw bytes of each text token (empty for special/timestamp tokens and holes).
    id_bytes: Vec<Box<[u8]>>,
    /// `true` for special (added) and timestamp tokens.
    special: Vec<bool>,
    /// Token id of each single byte.
    byte_ids: [u32; 256],
    merges: Merges,
    /// Special tokens grouped by their first byte, longest first.
    added_by_first_byte: HashMap<u8, Vec<(String, u32)>>,
    languages: Vec<(&'static str, u32)>,
    sot: u32,
    eot: u32,
    transcribe: u32,
    translate: u32,
    sot_lm: u32,
    sot_prev: u32,
    no_speech: u32,
    no_timestamps: u32,
    timestamp_begin: u32,
}

impl WhisperTokenizer {
    /// Load a Hugging Face `tokenizer.json` of a Whisper model.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, TokenizerError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| TokenizerError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_json_str(&text, &path.display().to_string())
    }

    /// Parse the contents of a `tokenizer.json`; `origin` names it in errors.
    pub fn from_json_str(json: &str, origin: &str) -> Result<Self, TokenizerError> {
        let parsed: TokenizerJson =
            serde_json::from_str(json).map_err(|source| TokenizerError::Json {
                origin: origin.to_string(),
                source,
            })?;
        Self::build(parsed, origin)
    }

    fn build(parsed: TokenizerJson, origin: &str) -> Result<Self, TokenizerError> {
        if let Some(kind) = &parsed.model.kind {
            if kind != "BPE" {
                return Err(TokenizerError::UnsupportedModel {
                    origin: origin.to_string(),
                    kind: kind.clone(),
                });
            }
        }
        let byte_chars = bytes_to_unicode();
        let mut char_to_byte: HashMap<char, u8> = HashMap::with_capacity(256);
        for (b, &c) in byte_chars.iter().enumerate() {
            char_to_byte.insert(c, b as u8);
        }

        let mut token_to_id: HashMap<String, u32> = parsed.model.vocab;
        let added_special: Vec<(String, u32, bool)> = parsed
            .added_tokens
            .iter()
            .map(|t| (t.content.clone(), t.id, t.special))
            .collect();
        for (content, id, _) in &added_special {
            token_to_id.insert(content.clone(), *id);
        }
        let need = |map: &HashMap<String, u32>, name: &str| -> Result<u32, TokenizerError> {
            map.get(name)
                .copied()
                .ok_or_else(|| TokenizerError::MissingToken {
                    origin: origin.to_string(),
                    token: name.to_string(),
                })
        };
        let sot = need(&token_to_id, "<|startoftranscript|>")?;
        let eot = need(&token_to_id, "<|endoftext|>")?;
        let transcribe = need(&token_to_id, "<|transcribe|>")?;
        let translate = need(&token_to_id, "<|translate|>")?;
        let sot_lm = need(&token_to_id, "<|startoflm|>")?;
        let sot_prev = need(&token_to_id, "<|startofprev|>")?;
        let no_timestamps = need(&token_to_id, "<|notimestamps|>")?;
        let no_speech =
            need(&token_to_id, "<|nospeech|>").or_else(|_| need(&token_to_id, "<|nocaptions|>"))?;
        let timestamp_begin = no_timestamps + 1;
        let max_id = token_to_id.values().copied().max().unwrap_or(0);
        if max_id >= timestamp_begin {
            return Err(TokenizerError::Inconsistent {
                origin: origin.to_string(),
                detail: format!(
                    "token id {max_id} collides with the timestamp ids starting at {timestamp_begin}"
                ),
            });
        }
        let n_vocab = (timestamp_begin + NUM_TIMESTAMP_TOKENS) as usize;

        for i in 0..NUM_TIMESTAMP_TOKENS {
            token_to_id.insert(timestamp_text(i), timestamp_begin + i);
        }

        let mut id_to_token: Vec<Option<String>> = vec![None; n_vocab];
        for (tok, &id) in &token_to_id {
            id_to_token[id as usize] = Some(tok.clone());
        }
        let mut special = vec![false; n_vocab];
        for (_, id, is_special) in &added_special {
            special[*id as usize] = *is_special;
        }
        for s in special.iter_mut().skip(timestamp_begin as usize) {
            *s = true;
        }
        let mut id_bytes: Vec<Box<[u8]>> = Vec::with_capacity(n_vocab);
        for (id, tok) in id_to_token.iter().enumerate() {
            let bytes: Box<[u8]> = match tok {
                Some(t) if !special[id] => t
                    .chars()
                    .map(|c| {
                        char_to_byte
                            .get(&c)
                            .copied()
                            .ok_or_else(|| TokenizerError::Inconsistent {
                                origin: origin.to_string(),
                                detail: format!(
                                    "token {t:?} (id {id}) has a character outside the byte-level alphabet"
                                ),
                            })
                    })
                    .collect::<Result<Vec<u8>, _>>()?
                    .into_boxed_slice(),
                _ => Box::new([]),
            };
            id_bytes.push(bytes);
        }

        let mut byte_ids = [0u32; 256];
        for (b, c) in byte_chars.iter().enumerate() {
            byte_ids[b] = need(&token_to_id, &c.to_string())?;
        }

        let mut merges: Merges = HashMap::with_capacity(parsed.model.merges.len());
        for (rank, m) in parsed.model.merges.iter().enumerate() {
            let (a, b) = match m {
                MergeJson::Pair(a, b) => (a.as_str(), b.as_str()),
                MergeJson::Joined(s) => {
                    s.split_once(' ')
                        .ok_or_else(|| TokenizerError::Inconsistent {
                            origin: origin.to_string(),
                            detail: format!(
                                "merge #{rank} {s:?} is not two space-separated tokens"
                            ),
                        })?
                }
            };
            let bad = |t: &str| TokenizerError::Inconsistent {
                origin: origin.to_string(),
                detail: format!("merge #{rank} uses {t:?}, which is not in the vocabulary"),
            };
            let ia = *token_to_id.get(a).ok_or_else(|| bad(a))?;
            let ib = *token_to_id.get(b).ok_or_else(|| bad(b))?;
            let joined = format!("{a}{b}");
            let ij = *token_to_id.get(&joined).ok_or_else(|| bad(&joined))?;
            // Keep the first (lowest) rank if a pair is listed twice.
            merges.entry((ia, ib)).or_insert((rank as u32, ij));
        }

        let mut added_by_first_byte: HashMap<u8, Vec<(String, u32)>> = HashMap::new();
        for (content, id, _) in added_special {
            if let Some(&b) = content.as_bytes().first() {
                added_by_first_byte
                    .entry(b)
                    .or_default()
                    .push((content, id));
            }
        }
        for v in added_by_first_byte.values_mut() {
            v.sort_by_key(|(content, _)| std::cmp::Reverse(content.len()));
        }

        let languages: Vec<(&'static str, u32)> = LANGUAGES
            .iter()
            .filter_map(|(code, _)| {
                let id = token_to_id.get(&format!("<|{code}|>")).or_else(|| {
                    // English-only vocabularies spell Hebrew with its old code.
                    (*code == "he").then(|| token_to_id.get("<|iw|>")).flatten()
                })?;
                Some((*code, *id))
            })
            .collect();

        Ok(Self {
            token_to_id,
            id_to_token,
            id_bytes,
            special,
            byte_ids,
            merges,
            added_by_first_byte,
            languages,
            sot,
            eot,
            transcribe,
            translate,
            sot_lm,
            sot_prev,
            no_speech,
            no_timestamps,
            timestamp_begin,
        })
    }

    /// Encode text to token ids. Special tokens written in the text (e.g.
    /// `<|en|>`) become their ids, as Hugging Face `tokenizers` does; the rest is
    /// split with GPT-2's pre-tokenisation rule and BPE-encoded.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::new();
        let bytes = text.as_bytes();
        let mut seg_start = 0;
        let mut i = 0;
        while i < bytes.len() {
            if let Some(cands) = self.added_by_first_byte.get(&bytes[i]) {
                if let Some((content, id)) = cands
                    .iter()
                    .find(|(c, _)| bytes[i..].starts_with(c.as_bytes()))
                {
                    // Special tokens start with ASCII here, so `i` is a char boundary.
                    self.encode_ordinary_into(&text[seg_start..i], &mut out);
                    out.push(*id);
                    i += content.len();
                    seg_start = i;
                    continue;
                }
            }
            i += 1;
        }
        self.encode_ordinary_into(&text[seg_start..], &mut out);
        out
    }

    /// Encode text to token ids treating everything as plain text (no special
    /// tokens), like tiktoken's `encode_ordinary`.
    pub fn encode_ordinary(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::new();
        self.encode_ordinary_into(text, &mut out);
        out
    }

    fn encode_ordinary_into(&self, text: &str, out: &mut Vec<u32>) {
        let mut ids = Vec::new();
        for piece in pretokenize(text) {
            ids.clear();
            ids.extend(piece.bytes().map(|b| self.byte_ids[b as usize]));
            // No whole-piece vocabulary shortcut: the multilingual vocabulary has
            // tokens that its merges never produce (e.g. "Ġtwo"), and
            // `tokenizers` only applies merges.
            out.extend(bpe::merge(&ids, &self.merges));
        }
    }

    /// Raw bytes of the text tokens in `ids`; special, timestamp and unknown ids are
    /// skipped. The bytes may end inside a multi-byte UTF-8 character.
    pub fn decode_bytes(&self, ids: &[u32]) -> Vec<u8> {
        let mut out = Vec::new();
        for &id in ids {
            if let Some(b) = self.id_bytes.get(id as usize) {
                out.extend_from_slice(b);
            }
        }
        out
    }

    /// Decode the text tokens of `ids` (special and timestamp tokens skipped, like
    /// faster-whisper's `decode`). Invalid UTF-8 (e.g. a character whose bytes are
    /// not all there yet) becomes U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> String {
        String::from_utf8_lossy(&self.decode_bytes(ids)).into_owned()
    }

    /// Decode keeping timestamps as `<|1.08|>` markers (other special tokens are
    /// skipped), like faster-whisper's `decode_with_timestamps`.
    pub fn decode_with_timestamps(&self, ids: &[u32]) -> String {
        let mut out = String::new();
        let mut run: Vec<u32> = Vec::new();
        for &id in ids {
            if id >= self.timestamp_begin {
                out.push_str(&self.decode(&run));
                run.clear();
                if let Some(t) = self.id_to_token(id) {
                    out.push_str(t);
                }
            } else {
                run.push(id);
            }
        }
        out.push_str(&self.decode(&run));
        out
    }

    /// Id of a token given in the vocabulary's spelling (byte-level alphabet for text
    /// tokens, e.g. `"Ġhello"`), a special token (`"<|en|>"`) or a timestamp
    /// (`"<|1.00|>"`).
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.token_to_id.get(token).copied()
    }

    /// Token of an id (byte-level alphabet for text tokens), `None` if unknown.
    pub fn id_to_token(&self, id: u32) -> Option<&str> {
        self.id_to_token.get(id as usize)?.as_deref()
    }

    /// `true` for special tokens (`<|...|>`) and timestamp tokens.
    pub fn is_special(&self, id: u32) -> bool {
        self.special.get(id as usize).copied().unwrap_or(false)
    }

    /// `<|startoftranscript|>`.
    pub fn sot(&self) -> u32 {
        self.sot
    }
    /// `<|endoftext|>`.
    pub fn eot(&self) -> u32 {
        self.eot
    }
    /// `<|transcribe|>`.
    pub fn transcribe(&self) -> u32 {
        self.transcribe
    }
    /// `<|translate|>`.
    pub fn translate(&self) -> u32 {
        self.translate
    }
    /// `<|startoflm|>`.
    pub fn sot_lm(&self) -> u32 {
        self.sot_lm
    }
    /// `<|startofprev|>`.
    pub fn sot_prev(&self) -> u32 {
        self.sot_prev
    }
    /// `<|nospeech|>`, or `<|nocaptions|>` in vocabularies older than large-v3.
    pub fn no_speech(&self) -> u32 {
        self.no_speech
    }
    /// `<|notimestamps|>`.
    pub fn no_timestamps(&self) -> u32 {
        self.no_timestamps
    }
    /// Id of `<|0.00|>`, the first timestamp token (`no_timestamps + 1`).
    pub fn timestamp_begin(&self) -> u32 {
        self.timestamp_begin
    }
    /// `true` if `id` is a timestamp token.
    pub fn is_timestamp(&self, id: u32) -> bool {
        id >= self.timestamp_begin && id < self.timestamp_begin + NUM_TIMESTAMP_TOKENS
    }
    /// Seconds of a timestamp token, `None` for other ids.
    pub fn timestamp_seconds(&self, id: u32) -> Option<f32> {
        self.is_timestamp(id)
            .then(|| (id - self.timestamp_begin) as f32 * TIMESTAMP_STEP_SECONDS)
    }

    /// Id of the language token of a code such as `"en"`, if this vocabulary has it.
    /// `"iw"` is accepted for Hebrew (`"he"`).
    pub fn language_token(&self, code: &str) -> Option<u32> {
        let code = if code == "iw" { "he" } else { code };
        self.languages
            .iter()
            .find(|(c, _)| *c == code)
            .map(|&(_, id)| id)
    }
    /// Language code of a language token id.
    pub fn language_of_token(&self, id: u32) -> Option<&'static str> {
        self.languages
            .iter()
            .find(|&&(_, t)| t == id)
            .map(|&(c, _)| c)
    }
    /// Language codes with a token in this vocabulary, in Whisper's order.
    pub fn language_codes(&self) -> Vec<&'static str> {
        self.languages.iter().map(|&(c, _)| c).collect()
    }
    /// Language token ids in Whisper's order (the same order as `language_codes`).
    pub fn language_tokens(&self) -> Vec<u32> {
        self.languages.iter().map(|&(_, id)| id).collect()
    }

    /// Multilingual vocabulary (Whisper's rule: `n_vocab >= 51865`); English-only
    /// (`*.en`) models have 51864 tokens.
    pub fn is_multilingual(&self) -> bool {
        self.vocab_size() >= 51865
    }

    /// Total number of token ids, timestamps included (the model's `n_vocab`).
    pub fn vocab_size(&self) -> usize {
        (self.timestamp_begin + NUM_TIMESTAMP_TOKENS) as usize
    }

    /// The decoder prompt start: `[sot]` for English-only models, `[sot, language,
    /// task]` for multilingual ones. With `language: None` (to be detected by the
    /// model first) a multilingual model gets `[sot]` only.
    /// Reference: openai/whisper `Tokenizer.sot_sequence`.
    pub fn sot_sequence(
        &self,
        language: Option<&str>,
        task: Task,
    ) -> Result<Vec<u32>, TokenizerError> {
        let mut seq = vec![self.sot];
        if !self.is_multilingual() {
            return Ok(seq);
        }
        if let Some(code) = language {
            let id = self
                .language_token(code)
                .ok_or_else(|| TokenizerError::UnknownLanguage(code.to_string()))?;
            seq.push(id);
            seq.push(match task {
                Task::Transcribe => self.transcribe,
                Task::Translate => self.translate,
            });
        }
        Ok(seq)
    }

    /// Tokens to suppress so the model does not emit speaker tags or non-speech
    /// annotations (`suppress_tokens=-1`), computed as openai/whisper's
    /// `Tokenizer.non_speech_tokens`: symbols that encode to a single token alone or
    /// after a space, plus the first token of each musical note symbol, plus the
    /// tokens of `" -"` and `" '"`. Sorted, deduplicated.
    pub fn non_speech_tokens(&self) -> Vec<u32> {
        let mut symbols: Vec<String> = "\"#()*+/:;<=>@[\\]^_`{|}~「」『』"
            .chars()
            .map(String::from)
            .collect();
        symbols.extend(
            "<< >> <<< >>> -- --- -( -[ (' (\" (( )) ((( ))) [[ ]] {{ }} ♪♪ ♪♪♪"
                .split(' ')
                .map(String::from),
        );
        let misc = ["♩", "♪", "♫", "♬", "♭", "♮", "♯"];
        let mut result: Vec<u32> = Vec::new();
        for s in [" -", " '"] {
            if let Some(&t) = self.encode_ordinary(s).first() {
                result.push(t);
            }
        }
        let all = symbols
            .iter()
            .map(|s| (s.as_str(), false))
            .chain(misc.iter().map(|s| (*s, true)));
        for (sym, is_misc) in all {
            for text in [sym.to_string(), format!(" {sym}")] {
                let toks = self.encode_ordinary(&text);
                if toks.len() == 1 || (is_misc && !toks.is_empty()) {
                    result.push(toks[0]);
                }
            }
        }
        result.sort_unstable();
        result.dedup();
        result
    }
}

/// `<|1.08|>` text of the `i`-th timestamp token (exact, from integer centiseconds).
fn timestamp_text(i: u32) -> String {
    let cs = i * 2;
    format!("<|{}.{:02}|>", cs / 100, cs % 100)
}

#[cfg(test)]
mod tests {
    use super::timestamp_text;

    #[test]
    fn timestamp_text_matches_whisper_format() {
        assert_eq!(timestamp_text(0), "<|0.00|>");
        assert_eq!(timestamp_text(54), "<|1.08|>");
        assert_eq!(timestamp_text(1500), "<|30.00|>");
    }
}
