//! Test-set readers: Kaldi data directories, the LibriSpeech layout and JSONL
//! manifests, with automatic layout detection.
//!
//! Problems in the data are reported, not hidden: utterances whose audio file is
//! missing, audio without a transcript, transcripts without audio and empty
//! transcripts are each listed (by id) in [`DatasetSummary`]. Utterances that cannot
//! be scored (no audio, or no transcript) are left out of [`Dataset::utterances`];
//! empty transcripts are kept (they score by jiwer's empty-reference convention).
//! Structural errors (unreadable files, malformed lines, piped `wav.scp` commands,
//! which hark does not run) are errors that name the file and line.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::EvalError;

/// Dataset layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatasetFormat {
    /// Detect from the path (see [`detect_format`]).
    Auto,
    /// Kaldi data dir: `wav.scp` + `text` (+ `segments`).
    Kaldi,
    /// `<spk>/<chapter>/<spk>-<chapter>.trans.txt` + `*.flac`.
    LibriSpeech,
    /// JSON lines with `audio_filepath`, `text`, optional `duration` and `id`.
    Jsonl,
}

impl DatasetFormat {
    /// Command-line name.
    pub fn name(self) -> &'static str {
        match self {
            DatasetFormat::Auto => "auto",
            DatasetFormat::Kaldi => "kaldi",
            DatasetFormat::LibriSpeech => "librispeech",
            DatasetFormat::Jsonl => "jsonl",
        }
    }
}

impl fmt::Display for DatasetFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DatasetFormat {
    type Err = EvalError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            DatasetFormat::Auto,
            DatasetFormat::Kaldi,
            DatasetFormat::LibriSpeech,
            DatasetFormat::Jsonl,
        ]
        .into_iter()
        .find(|f| f.name() == s)
        .ok_or_else(|| EvalError::UnknownFormat(s.to_string()))
    }
}

/// A time span inside a recording (Kaldi `segments`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    /// Start, seconds.
    pub start: f64,
    /// End, seconds.
    pub end: f64,
}

/// One test utterance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Utterance {
    /// Utterance id.
    pub id: String,
    /// Audio file (absolute, or relative to the current directory if the dataset
    /// path was).
    pub audio: PathBuf,
    /// Reference transcript (may be empty).
    pub text: String,
    /// Part of the recording to use, if not all of it.
    pub segment: Option<Segment>,
    /// Duration in seconds, when the dataset says it.
    pub duration: Option<f64>,
}

/// Counts (and ids) of the problems found while reading a dataset.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DatasetSummary {
    /// Utterances ready to evaluate.
    pub utterances: usize,
    /// Ids whose audio file does not exist (not evaluated).
    pub missing_audio: Vec<String>,
    /// Ids with audio but no transcript (not evaluated).
    pub missing_transcript: Vec<String>,
    /// Ids with a transcript but no audio entry (not evaluated).
    pub transcript_without_audio: Vec<String>,
    /// Ids whose transcript is empty (evaluated).
    pub empty_transcript: Vec<String>,
}

impl DatasetSummary {
    /// `true` when nothing was wrong.
    pub fn is_clean(&self) -> bool {
        self.missing_audio.is_empty()
            && self.missing_transcript.is_empty()
            && self.transcript_without_audio.is_empty()
            && self.empty_transcript.is_empty()
    }
}

/// A loaded test set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    /// The path given.
    pub path: PathBuf,
    /// The layout read (never `Auto`).
    pub format: DatasetFormat,
    /// Utterances ready to evaluate, in the dataset's order.
    pub utterances: Vec<Utterance>,
    /// Problems found.
    pub summary: DatasetSummary,
}

/// Detect the layout of `path`: a directory with `wav.scp` is Kaldi; a `.jsonl`
/// file, or a directory with `manifest.jsonl`, is JSONL; a directory tree with
/// `*.trans.txt` files is LibriSpeech.
pub fn detect_format(path: &Path) -> Result<DatasetFormat, EvalError> {
    if path.is_file() {
        if path
            .extension()
            .is_some_and(|e| e == "jsonl" || e == "json")
        {
            return Ok(DatasetFormat::Jsonl);
        }
        return Err(EvalError::UnknownLayout(path.to_path_buf()));
    }
    if !path.is_dir() {
        return Err(EvalError::NotFound(path.to_path_buf()));
    }
    if path.join("wav.scp").is_file() {
        Ok(DatasetFormat::Kaldi)
    } else if path.join("manifest.jsonl").is_file() {
        Ok(DatasetFormat::Jsonl)
    } else if !find_trans_files(path)?.is_empty() {
        Ok(DatasetFormat::LibriSpeech)
    } else {
        Err(EvalError::UnknownLayout(path.to_path_buf()))
    }
}

/// Read a dataset; `format` `Auto` detects the layout.
pub fn load_dataset(path: &Path, format: DatasetFormat) -> Result<Dataset, EvalError> {
    let format = match format {
        DatasetFormat::Auto => detect_format(path)?,
        f => f,
    };
    let mut summary = DatasetSummary::default();
    let utterances = match format {
        DatasetFormat::Kaldi => read_kaldi(path, &mut summary)?,
        DatasetFormat::LibriSpeech => read_librispeech(path, &mut summary)?,
        DatasetFormat::Jsonl => {
            let file = if path.is_dir() {
                path.join("manifest.jsonl")
            } else {
                path.to_path_buf()
            };
            read_jsonl(&file, &mut summary)?
        }
        DatasetFormat::Auto => unreachable_auto(path)?,
    };
    summary.empty_transcript = utterances
        .iter()
        .filter(|u| u.text.trim().is_empty())
        .map(|u| u.id.clone())
        .collect();
    summary.utterances = utterances.len();
    Ok(Dataset {
        path: path.to_path_buf(),
        format,
        utterances,
        summary,
    })
}

fn unreachable_auto(path: &Path) -> Result<Vec<Utterance>, EvalError> {
    Err(EvalError::UnknownLayout(path.to_path_buf()))
}

fn read_text(path: &Path) -> Result<String, EvalError> {
    std::fs::read_to_string(path).map_err(|source| EvalError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// `<key> <rest>` lines (rest may be empty); blank lines skipped.
fn key_value_lines(path: &Path) -> Result<Vec<(usize, String, String)>, EvalError> {
    let text = read_text(path)?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (k, v) = match line.split_once(char::is_whitespace) {
            Some((k, v)) => (k, v.trim()),
            None => (line, ""),
        };
        out.push((n + 1, k.to_string(), v.to_string()));
    }
    Ok(out)
}

fn resolve(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

fn read_kaldi(dir: &Path, summary: &mut DatasetSummary) -> Result<Vec<Utterance>, EvalError> {
    let scp_path = dir.join("wav.scp");
    let mut recordings: Vec<(String, PathBuf)> = Vec::new();
    for (line, id, rest) in key_value_lines(&scp_path)? {
        if rest.is_empty() {
            return Err(EvalError::Malformed {
                path: scp_path.clone(),
                line,
                detail: format!("recording {id:?} has no audio path"),
            });
        }
        if rest.ends_with('|') || rest.starts_with('|') {
            return Err(EvalError::PipedCommand {
                path: scp_path.clone(),
                line,
                entry: rest,
            });
        }
        recordings.push((id, resolve(dir, &rest)));
    }
    let text_path = dir.join("text");
    let texts: Vec<(usize, String, String)> = if text_path.is_file() {
        key_value_lines(&text_path)?
    } else {
        Vec::new()
    };
    let text_map: HashMap<&str, &str> = texts
        .iter()
        .map(|(_, k, v)| (k.as_str(), v.as_str()))
        .collect();

    // Utterance list: from `segments` when present, else one per recording.
    let seg_path = dir.join("segments");
    let mut entries: Vec<(String, PathBuf, Option<Segment>)> = Vec::new();
    let rec_map: HashMap<&str, &PathBuf> =
        recordings.iter().map(|(k, p)| (k.as_str(), p)).collect();
    if seg_path.is_file() {
        for (line, seg_id, rest) in key_value_lines(&seg_path)? {
            let f: Vec<&str> = rest.split_whitespace().collect();
            let bad = |detail: String| EvalError::Malformed {
                path: seg_path.clone(),
                line,
                detail,
            };
            if f.len() != 3 {
                return Err(bad(format!(
                    "expected `<utt> <recording> <start> <end>`, got {rest:?}"
                )));
            }
            let start: f64 = f[1]
                .parse()
                .map_err(|_| bad(format!("bad start time {:?}", f[1])))?;
            let end: f64 = f[2]
                .parse()
                .map_err(|_| bad(format!("bad end time {:?}", f[2])))?;
            match rec_map.get(f[0]) {
                Some(p) => entries.push((seg_id, (*p).clone(), Some(Segment { start, end }))),
                None => {
                    if text_map.contains_key(seg_id.as_str()) {
                        summary.transcript_without_audio.push(seg_id);
                    }
                }
            }
        }
    } else {
        entries = recordings
            .iter()
            .map(|(k, p)| (k.clone(), p.clone(), None))
            .collect();
    }
    let entry_ids: HashSet<&str> = entries.iter().map(|(k, _, _)| k.as_str()).collect();
    for (_, k, _) in &texts {
        if !entry_ids.contains(k.as_str()) && !summary.transcript_without_audio.contains(k) {
            summary.transcript_without_audio.push(k.clone());
        }
    }
    let mut out = Vec::new();
    for (id, audio, segment) in entries {
        let Some(text) = text_map.get(id.as_str()) else {
            summary.missing_transcript.push(id);
            continue;
        };
        if !audio.is_file() {
            summary.missing_audio.push(id);
            continue;
        }
        let duration = segment.map(|s| s.end - s.start);
        out.push(Utterance {
            id,
            audio,
            text: text.to_string(),
            segment,
            duration,
        });
    }
    Ok(out)
}

fn find_trans_files(root: &Path) -> Result<Vec<PathBuf>, EvalError> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let rd = std::fs::read_dir(&dir).map_err(|source| EvalError::Io {
            path: dir.clone(),
            source,
        })?;
        for entry in rd {
            let entry = entry.map_err(|source| EvalError::Io {
                path: dir.clone(),
                source,
            })?;
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(".trans.txt"))
            {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn read_librispeech(
    root: &Path,
    summary: &mut DatasetSummary,
) -> Result<Vec<Utterance>, EvalError> {
    let trans = find_trans_files(root)?;
    if trans.is_empty() {
        return Err(EvalError::UnknownLayout(root.to_path_buf()));
    }
    let mut out = Vec::new();
    for t in trans {
        let dir = t.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut listed: HashSet<String> = HashSet::new();
        for (_, id, text) in key_value_lines(&t)? {
            listed.insert(id.clone());
            let audio = dir.join(format!("{id}.flac"));
            if audio.is_file() {
                out.push(Utterance {
                    id,
                    audio,
                    text,
                    segment: None,
                    duration: None,
                });
            } else {
                summary.missing_audio.push(id);
            }
        }
        // Audio files of this chapter without a transcript line.
        let rd = std::fs::read_dir(&dir).map_err(|source| EvalError::Io {
            path: dir.clone(),
            source,
        })?;
        let mut extra: Vec<String> = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|source| EvalError::Io {
                path: dir.clone(),
                source,
            })?;
            let p = entry.path();
            if p.extension().is_some_and(|e| e == "flac") {
                if let Some(stem) = p.file_stem().and_then(|s| s.to_str()) {
                    if !listed.contains(stem) {
                        extra.push(stem.to_string());
                    }
                }
            }
        }
        extra.sort();
        summary.missing_transcript.extend(extra);
    }
    Ok(out)
}

#[derive(Deserialize)]
struct ManifestLine {
    audio_filepath: Option<String>,
    text: Option<String>,
    duration: Option<f64>,
    id: Option<serde_json::Value>,
}

fn read_jsonl(file: &Path, summary: &mut DatasetSummary) -> Result<Vec<Utterance>, EvalError> {
    let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let text = read_text(file)?;
    let mut out = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line_no = n + 1;
        if line.trim().is_empty() {
            continue;
        }
        let m: ManifestLine = serde_json::from_str(line).map_err(|e| EvalError::Malformed {
            path: file.to_path_buf(),
            line: line_no,
            detail: format!("invalid JSON: {e}"),
        })?;
        let id_given = m.id.map(|v| match v {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        });
        let Some(audio_rel) = m.audio_filepath else {
            match (id_given, m.text) {
                (Some(id), Some(_)) => {
                    summary.transcript_without_audio.push(id);
                    continue;
                }
                _ => {
                    return Err(EvalError::Malformed {
                        path: file.to_path_buf(),
                        line: line_no,
                        detail: "no \"audio_filepath\"".into(),
                    })
                }
            }
        };
        let id = id_given.unwrap_or_else(|| audio_rel.clone());
        if let Some(prev) = seen.insert(id.clone(), line_no) {
            return Err(EvalError::Malformed {
                path: file.to_path_buf(),
                line: line_no,
                detail: format!("duplicate id {id:?} (first on line {prev})"),
            });
        }
        let Some(text) = m.text else {
            summary.missing_transcript.push(id);
            continue;
        };
        let audio = resolve(&base, &audio_rel);
        if !audio.is_file() {
            summary.missing_audio.push(id);
            continue;
        }
        out.push(Utterance {
            id,
            audio,
            text,
            segment: None,
            duration: m.duration,
        });
    }
    Ok(out)
}
