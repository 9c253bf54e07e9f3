//! Drives the real `hark listen` TUI in a pseudo-terminal under tmux (`send-keys`,
//! `capture-pane`): live and final text, level meter, status line, `space` pauses,
//! `q` exits cleanly and leaves the terminal usable (cooked mode, shell answers).

use std::process::Command;
use std::time::{Duration, Instant};

mod common;
use common::HARK;

struct Tmux {
    socket: String,
}

impl Tmux {
    fn cmd(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
    fn screen(&self, escapes: bool) -> String {
        if escapes {
            self.cmd(&["capture-pane", "-p", "-e", "-t", "t"])
        } else {
            self.cmd(&["capture-pane", "-p", "-t", "t"])
        }
    }
    fn wait_for(&self, what: &str, secs: u64, pred: impl Fn(&str) -> bool) -> String {
        let end = Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.screen(false);
            if pred(&s) {
                return s;
            }
            assert!(
                Instant::now() < end,
                "timed out waiting for {what}; screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
    }
}

#[test]
fn listen_tui_in_tmux_shows_text_meter_status_pauses_and_quits_cleanly() {
    let Some(dir) = common::an4_test() else {
        eprintln!("skipping: ../shared not found");
        return;
    };
    if common::tiny_en_dir().is_none() {
        eprintln!("skipping: tiny.en model not installed");
        return;
    }
    if Command::new("tmux").arg("-V").output().is_err() {
        eprintln!("skipping: tmux not installed");
        return;
    }
    let tmp = std::env::temp_dir().join(format!("hark-listen-tui-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "flac"))
        .collect();
    files.sort();
    let mut audio = vec![0.0f32; 8000];
    for f in files.iter().take(10) {
        audio.extend(hark_audio::load_audio(f).unwrap());
        audio.extend(vec![0.0; 16000]);
    }
    let wav = tmp.join("in.wav");
    common::write_wav(&wav, &audio, 16000, 1);
    let transcript = tmp.join("t.txt");

    let t = Tmux {
        socket: format!("hark-listen-test-{}", std::process::id()),
    };
    t.cmd(&[
        "new-session",
        "-d",
        "-s",
        "t",
        "-x",
        "100",
        "-y",
        "30",
        "bash --norc --noprofile",
    ]);
    let cmd = format!(
        "{HARK} listen --model tiny.en --beam 1 --input {} --output {}; echo EXIT=$?",
        wav.display(),
        transcript.display()
    );
    t.cmd(&["send-keys", "-t", "t", &cmd, "Enter"]);

    // Status line and meter.
    let s = t.wait_for("the status line", 60, |s| {
        s.contains("threads") && s.contains("dBFS")
    });
    assert!(s.contains("tiny.en"), "{s}");
    assert!(s.contains("level"), "{s}");
    assert!(s.contains("q quit"), "{s}");
    // Live partial text (styled: cyan committed or italic tentative) and speaking state.
    // (Greedy finals above leave the recogniser time for partials on a loaded machine.)
    let end = Instant::now() + Duration::from_secs(50);
    let (mut saw_partial, mut saw_speaking) = (false, false);
    while Instant::now() < end && !(saw_partial && saw_speaking) {
        let e = t.screen(true);
        saw_speaking |= e.contains("SPEAKING");
        saw_partial |= e.contains("\x1b[3m") || e.contains("\x1b[36m");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(saw_speaking, "never showed SPEAKING");
    assert!(saw_partial, "never showed a styled partial hypothesis");
    // A final line lands in the transcript box and the file.
    let end = Instant::now() + Duration::from_secs(60);
    while std::fs::read_to_string(&transcript)
        .unwrap_or_default()
        .trim()
        .is_empty()
    {
        assert!(
            Instant::now() < end,
            "no final written; screen:\n{}",
            t.screen(false)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let first = std::fs::read_to_string(&transcript).unwrap();
    let first_line = first.lines().next().unwrap().to_string();
    t.wait_for("the final on screen", 10, |s| s.contains(&first_line));
    t.wait_for("a latency figure", 10, |s| s.contains(" ms | RTF"));

    // space pauses, space resumes.
    t.cmd(&["send-keys", "-t", "t", "Space"]);
    t.wait_for("PAUSED", 10, |s| s.contains("PAUSED"));
    t.cmd(&["send-keys", "-t", "t", "Space"]);
    t.wait_for("resume", 10, |s| !s.contains("PAUSED"));

    // q quits cleanly.
    t.cmd(&["send-keys", "-t", "t", "q"]);
    // The typed command line itself contains "EXIT=$?": wait for the echoed status,
    // which starts a line of its own.
    let exited = |s: &str| {
        s.lines().any(|l| {
            l.trim()
                .strip_prefix("EXIT=")
                .is_some_and(|r| !r.is_empty() && r.chars().all(|c| c.is_ascii_digit()))
        })
    };
    let s = t.wait_for("exit", 60, exited);
    assert!(s.lines().any(|l| l.trim_start() == "EXIT=0"), "{s}");
    assert!(s.contains("transcript saved to"), "{s}");
    // The terminal is usable again: canonical mode, the shell answers.
    t.cmd(&[
        "send-keys",
        "-t",
        "t",
        "stty -a | tr -s ' ;' '\\n\\n' | grep -qx icanon && echo COOKED_$((40+2))",
        "Enter",
    ]);
    t.wait_for("cooked terminal", 10, |s| s.contains("COOKED_42"));
    let _ = std::fs::remove_dir_all(&tmp);
}
