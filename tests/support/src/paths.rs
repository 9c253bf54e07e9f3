//! Locating the workspace, the `../shared` reference data beside it and installed models.

use std::path::PathBuf;

/// The workspace root (the directory holding the root `Cargo.toml`), resolved at compile
/// time from this crate's place in it (`tests/support`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// The `../shared` reference-data directory beside the workspace, or `None` after
/// printing `skipping: ../shared not found` when it is absent.
pub fn shared_dir() -> Option<PathBuf> {
    let p = workspace_root().join("../shared");
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!("skipping: ../shared not found");
        None
    }
}

/// `../shared/<rel>` (a file or a directory), or `None` after printing
/// `skipping: ../shared not found (<path>)` when it does not exist.
pub fn shared_path(rel: &str) -> Option<PathBuf> {
    let p = workspace_root().join("../shared").join(rel);
    if p.exists() {
        Some(p)
    } else {
        eprintln!("skipping: ../shared not found ({})", p.display());
        None
    }
}

/// Where hark keeps its models: `$HARK_HOME/models`, else `~/.cache/hark/models`
/// (`None` when neither variable is set).
pub fn models_root() -> Option<PathBuf> {
    let home = std::env::var_os("HARK_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/hark")))?;
    Some(home.join("models"))
}

/// The installed model `name` (a directory under [`models_root`] holding `config.json`
/// and `model.safetensors`), or `None` after printing
/// `skipping: model <name> not found at <dir> (run `hark models pull <name>`)`.
pub fn model_dir(name: &str) -> Option<PathBuf> {
    let Some(root) = models_root() else {
        eprintln!("skipping: model {name} not found (neither HARK_HOME nor HOME is set)");
        return None;
    };
    let dir = root.join(name);
    if dir.join("config.json").is_file() && dir.join("model.safetensors").is_file() {
        Some(dir)
    } else {
        eprintln!(
            "skipping: model {name} not found at {} (run `hark models pull {name}`)",
            dir.display()
        );
        None
    }
}
