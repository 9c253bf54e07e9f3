//! Streaming enumeration of the audio files named on the command line.
//!
//! Inputs are files and directories; directories are walked depth-first with each
//! directory's entries sorted by name, which yields the files in the same order as
//! sorting all their paths (component-wise) would, while holding only one directory
//! listing per level of depth in memory: a tree of a million files is never listed as a
//! whole. The walk is deterministic, so [`count`] (a first pass for the progress bar)
//! and [`InputWalker`] agree on what they see.
//!
//! Each file gets an output *stem*: the path, relative to the output directory and
//! without extension, of its transcript. A file named on the command line maps to its
//! own stem (`talk.flac` -> `talk`); a file found under a directory argument keeps its
//! sub-directory (`DIR/a/b.flac` -> `a/b`), so that same-named files in different
//! folders do not overwrite each other. Two audio files in one folder that share a stem
//! (`x.wav`, `x.flac`) keep their full names (`x.wav`, `x.flac` -> `x.wav.txt`,
//! `x.flac.txt`).

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// File extensions (lower case) treated as audio when walking a directory.
pub const AUDIO_EXTS: &[&str] = &[
    "wav", "flac", "mp3", "ogg", "oga", "opus", "m4a", "mp4", "aac", "webm", "mka", "mkv", "aif",
    "aiff", "caf", "wv",
];

/// Directory depth beyond which the walk stops (guards against symlink loops).
const MAX_DEPTH: usize = 64;

/// Whether `p` has an audio file extension.
pub fn is_audio(p: &Path) -> bool {
    p.extension()
        .and_then(|x| x.to_str())
        .is_some_and(|x| AUDIO_EXTS.contains(&x.to_ascii_lowercase().as_str()))
}

/// One thing the walk found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// An audio file and the stem of its output (relative, no extension).
    File {
        /// The audio file.
        path: PathBuf,
        /// Output path relative to the output directory, without the format extension.
        stem: PathBuf,
    },
    /// A directory that could not be read (the walk goes on past it).
    Error {
        /// The directory.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

struct Frame {
    /// The directory argument this frame descends from.
    root: PathBuf,
    /// Entries of the directory being listed, in reverse order (popped from the end).
    entries: Vec<Entry>,
    depth: usize,
}

struct Entry {
    path: PathBuf,
    is_dir: bool,
    /// Keep the whole file name in the output stem (another audio file in the same
    /// directory has the same stem).
    full_name: bool,
}

/// Iterator over the audio files under a list of inputs, see the module docs.
pub struct InputWalker {
    /// Command-line inputs not started yet, in reverse order.
    pending: Vec<PathBuf>,
    stack: Vec<Frame>,
}

impl InputWalker {
    /// Walks `inputs` (files are yielded as they are, whatever their extension;
    /// directories are searched recursively for audio files).
    pub fn new(inputs: &[PathBuf]) -> Self {
        InputWalker {
            pending: inputs.iter().rev().cloned().collect(),
            stack: Vec::new(),
        }
    }

    fn list(dir: &Path) -> std::io::Result<Vec<Entry>> {
        let mut entries = Vec::new();
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            let path = e.path();
            let ft = e.file_type()?;
            // Follow symlinks (to files or directories) like the rest of the file system.
            let is_dir = if ft.is_symlink() {
                path.is_dir()
            } else {
                ft.is_dir()
            };
            if is_dir || is_audio(&path) {
                entries.push(Entry {
                    path,
                    is_dir,
                    full_name: false,
                });
            }
        }
        entries.sort_by(|a, b| a.path.file_name().cmp(&b.path.file_name()));
        let mut stems: HashMap<OsString, usize> = HashMap::new();
        for e in entries.iter().filter(|e| !e.is_dir) {
            if let Some(s) = e.path.file_stem() {
                *stems.entry(s.to_os_string()).or_default() += 1;
            }
        }
        for e in entries.iter_mut().filter(|e| !e.is_dir) {
            e.full_name = e.path.file_stem().is_some_and(|s| stems[s] > 1);
        }
        entries.reverse();
        Ok(entries)
    }

    fn enter(&mut self, root: PathBuf, dir: &Path, depth: usize) -> Option<Found> {
        if depth > MAX_DEPTH {
            return Some(Found::Error {
                path: dir.to_path_buf(),
                message: format!("more than {MAX_DEPTH} directory levels (a symlink loop?)"),
            });
        }
        match Self::list(dir) {
            Ok(entries) => {
                self.stack.push(Frame {
                    root,
                    entries,
                    depth,
                });
                None
            }
            Err(e) => Some(Found::Error {
                path: dir.to_path_buf(),
                message: format!("reading directory: {e}"),
            }),
        }
    }
}

fn file_stem_of(path: &Path, full_name: bool) -> PathBuf {
    let name = if full_name {
        path.file_name()
    } else {
        path.file_stem()
    };
    PathBuf::from(name.unwrap_or_else(|| std::ffi::OsStr::new("out")))
}

impl Iterator for InputWalker {
    type Item = Found;

    fn next(&mut self) -> Option<Found> {
        loop {
            if let Some(frame) = self.stack.last_mut() {
                let Some(entry) = frame.entries.pop() else {
                    self.stack.pop();
                    continue;
                };
                let (root, depth) = (frame.root.clone(), frame.depth);
                if entry.is_dir {
                    if let Some(err) = self.enter(root, &entry.path, depth + 1) {
                        return Some(err);
                    }
                    continue;
                }
                let rel_dir = entry
                    .path
                    .parent()
                    .and_then(|p| p.strip_prefix(&root).ok())
                    .map(Path::to_path_buf)
                    .unwrap_or_default();
                let stem = rel_dir.join(file_stem_of(&entry.path, entry.full_name));
                return Some(Found::File {
                    path: entry.path,
                    stem,
                });
            }
            let input = self.pending.pop()?;
            if input.is_dir() {
                if let Some(err) = self.enter(input.clone(), &input, 0) {
                    return Some(err);
                }
            } else {
                let stem = file_stem_of(&input, false);
                return Some(Found::File { path: input, stem });
            }
        }
    }
}

/// Checks that every input exists (before a model is loaded, so that a typo fails fast)
/// and counts the audio files under them; warns about directories without audio files.
pub fn count(inputs: &[PathBuf]) -> anyhow::Result<usize> {
    let mut total = 0;
    for p in inputs {
        if !p.exists() {
            anyhow::bail!("input {} does not exist", p.display());
        }
        let n = InputWalker::new(std::slice::from_ref(p))
            .filter(|f| matches!(f, Found::File { .. }))
            .count();
        if n == 0 && p.is_dir() {
            eprintln!("hark: warning: no audio files found in {}", p.display());
        }
        total += n;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(p: &Path) {
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        std::fs::write(p, b"x").expect("write");
    }

    #[test]
    fn walk_is_sorted_recursive_and_keeps_subdirectories_in_stems() {
        let dir = std::env::temp_dir().join(format!("hark-walk-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for f in [
            "b.wav",
            "a/z.flac",
            "a/y.mp3",
            "a.flac",
            "c/d/e.FLAC",
            "notes.txt",
        ] {
            touch(&dir.join(f));
        }
        let single = dir.join("a.flac");
        let got: Vec<Found> = InputWalker::new(&[dir.clone(), single.clone()]).collect();
        let want = |rel: &str, stem: &str| Found::File {
            path: dir.join(rel),
            stem: PathBuf::from(stem),
        };
        assert_eq!(
            got,
            vec![
                want("a/y.mp3", "a/y"),
                want("a/z.flac", "a/z"),
                want("a.flac", "a"),
                want("b.wav", "b"),
                want("c/d/e.FLAC", "c/d/e"),
                want("a.flac", "a"),
            ]
        );
        assert_eq!(count(std::slice::from_ref(&dir)).expect("count"), 5);
        assert!(count(&[dir.join("missing")]).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn same_stem_in_one_directory_keeps_full_file_names() {
        let dir = std::env::temp_dir().join(format!("hark-walk-stem-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for f in ["x.flac", "x.wav", "y.wav"] {
            touch(&dir.join(f));
        }
        let stems: Vec<PathBuf> = InputWalker::new(std::slice::from_ref(&dir))
            .map(|f| match f {
                Found::File { stem, .. } => stem,
                Found::Error { message, .. } => panic!("{message}"),
            })
            .collect();
        assert_eq!(
            stems,
            vec![
                PathBuf::from("x.flac"),
                PathBuf::from("x.wav"),
                PathBuf::from("y")
            ]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
