//! `hark devices` through the real binary: it succeeds on any machine, listing
//! the input devices or saying plainly that there are none (CI machines and
//! containers have no sound card), then the compute devices, and its help describes it.

use std::process::{Command, Output};

const HARK: &str = env!("CARGO_BIN_EXE_hark");

fn hark(args: &[&str]) -> Output {
    Command::new(HARK).args(args).output().expect("run hark")
}

#[test]
fn devices_lists_inputs_or_says_there_are_none() {
    let o = hark(&["devices"]);
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {out}\nstderr: {err}",
        o.status.code()
    );
    assert!(!err.contains("panicked"), "{err}");
    // Audio inputs first, then the compute devices: the CPU always, GPU adapters when
    // the `gpu` feature is built in and finds one.
    let (audio, compute) = out
        .split_once("Compute devices (--device auto|cpu|gpu):\n")
        .unwrap_or_else(|| panic!("no compute device section: {out}"));
    let compute: Vec<&str> = compute.lines().collect();
    assert!(
        compute[0].starts_with("  cpu: ") && compute[0].contains(" threads, kernels "),
        "{out}"
    );
    for d in &compute[1..] {
        assert!(d.starts_with("  gpu: "), "{d:?}");
    }
    let out = audio;
    if out.contains("No audio input devices found") {
        // The whole answer is that one line.
        assert_eq!(out.lines().count(), 1, "{out}");
    } else {
        // "Audio input devices:", one indented line per device with its native
        // format, and the legend of the default marker.
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.first(), Some(&"Audio input devices:"), "{out}");
        assert_eq!(lines.last(), Some(&"(* = default input device)"), "{out}");
        let devices = &lines[1..lines.len() - 1];
        assert!(!devices.is_empty(), "{out}");
        for d in devices {
            assert!(d.starts_with("  "), "{d:?}");
            assert!(d.contains(" Hz, ") && d.contains(" ch, "), "{d:?}");
        }
        assert!(
            devices
                .iter()
                .filter(|d| d.trim_start().starts_with('*'))
                .count()
                <= 1,
            "at most one default: {out}"
        );
    }
}

#[test]
fn devices_help_describes_the_command() {
    let o = hark(&["devices", "--help"]);
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("List audio input devices"), "{out}");
    assert!(out.contains("Usage: hark devices"), "{out}");
    // The top-level help lists the subcommand too.
    let o = hark(&["--help"]);
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.lines()
            .any(|l| l.trim_start().starts_with("devices") && l.contains("input devices")),
        "{out}"
    );
}

#[test]
fn devices_rejects_unexpected_arguments() {
    let o = hark(&["devices", "--sample-rate", "48000"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("unexpected argument"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
