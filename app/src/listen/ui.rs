//! The `hark listen` terminal UI (ratatui): state in [`App`], drawing in
//! `impl Widget for &App`, the event loop in [`run`].

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crossterm::event::{self, Event as TermEvent, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::buffer::Buffer;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Gauge, Paragraph, Widget, Wrap};

use super::{Event, Pipeline, Stats};

/// Smallest usable terminal.
pub const MIN_WIDTH: u16 = 40;
/// Smallest usable terminal height.
pub const MIN_HEIGHT: u16 = 10;

/// What the screen shows (no terminal, no threads: testable).
#[derive(Debug, Default, Clone)]
pub struct App {
    /// Model name.
    pub model: String,
    /// Weight precision.
    pub precision: String,
    /// Compute threads.
    pub threads: usize,
    /// Transcript file.
    pub transcript_path: String,
    /// Final lines shown, one per utterance (cleared by `c`).
    pub finals: Vec<String>,
    /// The utterance whose final pieces the last line collects, while it is open.
    pub open_final: Option<u64>,
    /// Committed part of the live utterance.
    pub partial_committed: String,
    /// Tentative part of the live utterance.
    pub partial_tentative: String,
    /// Input level (dBFS).
    pub level_db: f32,
    /// Speech open.
    pub speaking: bool,
    /// Paused by the user.
    pub paused: bool,
    /// Latency of the last final (ms).
    pub last_latency_ms: Option<f64>,
    /// Real-time factor of the last final.
    pub last_rtf: Option<f64>,
    /// Last warning/info message.
    pub message: Option<String>,
    /// Quit requested; waiting for the last utterance.
    pub finishing: bool,
}

impl App {
    /// Applies a pipeline event.
    pub fn apply(&mut self, ev: &Event) {
        match ev {
            Event::Level { db, speaking } => {
                self.level_db = *db;
                self.speaking = *speaking;
            }
            Event::Partial {
                committed,
                tentative,
                ..
            } => {
                self.partial_committed = committed.clone();
                self.partial_tentative = tentative.clone();
            }
            Event::Final {
                id,
                text,
                latency_ms,
                rtf,
                ..
            } => {
                if !text.is_empty() {
                    match self.finals.last_mut() {
                        Some(line) if self.open_final == Some(*id) => {
                            *line = crate::listen::join_piece(line, text);
                        }
                        _ => self.finals.push(text.clone()),
                    }
                    self.open_final = Some(*id);
                }
                self.partial_committed.clear();
                self.partial_tentative.clear();
                self.last_latency_ms = Some(*latency_ms);
                self.last_rtf = Some(*rtf);
            }
            Event::UtteranceEnd { id } => {
                if self.open_final == Some(*id) {
                    self.open_final = None;
                }
            }
            Event::Paused(p) => self.paused = *p,
            Event::Warning(w) => self.message = Some(format!("warning: {w}")),
            Event::Error(e) => self.message = Some(format!("error: {e}")),
            Event::Overruns(_) | Event::Finished => {}
        }
    }

    fn level_ratio(&self) -> f64 {
        // -60 dBFS .. 0 dBFS
        ((self.level_db as f64 + 60.0) / 60.0).clamp(0.0, 1.0)
    }
}

impl Widget for &App {
    fn render(self, area: Rect, buf: &mut Buffer) {
        if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
            let msg = format!(
                "terminal too small ({}x{}, need {MIN_WIDTH}x{MIN_HEIGHT})",
                area.width, area.height
            );
            let y = area.y + area.height / 2;
            Paragraph::new(msg)
                .alignment(Alignment::Center)
                .wrap(Wrap { trim: true })
                .render(
                    Rect {
                        x: area.x,
                        y,
                        width: area.width,
                        height: area.height - (y - area.y),
                    },
                    buf,
                );
            return;
        }
        let [top, meter, body, status, keys] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Length(3),
            Constraint::Min(3),
            Constraint::Length(1),
            Constraint::Length(1),
        ])
        .areas(area);

        let (state, style) = if self.finishing {
            ("finishing...", Style::default().fg(Color::Yellow))
        } else if self.paused {
            (
                "|| PAUSED",
                Style::default()
                    .fg(Color::Yellow)
                    .add_modifier(Modifier::BOLD),
            )
        } else if self.speaking {
            (
                "* SPEAKING",
                Style::default()
                    .fg(Color::Green)
                    .add_modifier(Modifier::BOLD),
            )
        } else {
            ("- silence", Style::default().fg(Color::DarkGray))
        };
        Line::from(vec![
            Span::styled(
                "hark listen ",
                Style::default().add_modifier(Modifier::BOLD),
            ),
            Span::styled(state, style),
            Span::raw(format!("  -> {}", self.transcript_path)),
        ])
        .render(top, buf);

        Gauge::default()
            .block(Block::default().borders(Borders::ALL).title("level"))
            .gauge_style(Style::default().fg(if self.speaking {
                Color::Green
            } else {
                Color::Blue
            }))
            .ratio(self.level_ratio())
            .label(format!("{:.0} dBFS", self.level_db.max(-120.0)))
            .render(meter, buf);

        let mut lines: Vec<Line> = self.finals.iter().map(|t| Line::raw(t.clone())).collect();
        if !self.partial_committed.is_empty() || !self.partial_tentative.is_empty() {
            let mut spans = Vec::new();
            if !self.partial_committed.is_empty() {
                spans.push(Span::styled(
                    format!("{} ", self.partial_committed),
                    Style::default().fg(Color::Cyan),
                ));
            }
            spans.push(Span::styled(
                self.partial_tentative.clone(),
                Style::default()
                    .fg(Color::DarkGray)
                    .add_modifier(Modifier::ITALIC),
            ));
            lines.push(Line::from(spans));
        }
        // Keep the end of the transcript in view (estimate wrapped height).
        let inner_w = body.width.saturating_sub(2).max(1) as usize;
        let inner_h = body.height.saturating_sub(2) as usize;
        let wrapped: usize = lines
            .iter()
            .map(|l| l.width().max(1).div_ceil(inner_w))
            .sum();
        let scroll = wrapped.saturating_sub(inner_h) as u16;
        Paragraph::new(lines)
            .block(Block::default().borders(Borders::ALL).title("transcript"))
            .wrap(Wrap { trim: false })
            .scroll((scroll, 0))
            .render(body, buf);

        let lat = self
            .last_latency_ms
            .map(|l| format!("{l:.0} ms"))
            .unwrap_or_else(|| "-".into());
        let rtf = self
            .last_rtf
            .map(|r| format!("{r:.2}"))
            .unwrap_or_else(|| "-".into());
        Line::from(format!(
            "latency {lat} | RTF {rtf} | {} | {} | {} threads",
            self.model, self.precision, self.threads
        ))
        .style(Style::default().add_modifier(Modifier::REVERSED))
        .render(status, buf);

        let keys_text = match &self.message {
            Some(m) => format!("q quit  space pause  c clear  s save | {m}"),
            None => "q quit  space pause  c clear  s save".to_string(),
        };
        Line::styled(keys_text, Style::default().fg(Color::DarkGray)).render(keys, buf);
    }
}

/// Runs the UI until the pipeline finishes; final text goes to `sink` as it arrives
/// (the text to append: [`crate::listen::TranscriptLines`]).
pub fn run(
    mut app: App,
    pipeline: &Pipeline,
    sink: &mut dyn FnMut(&str) -> std::io::Result<()>,
    stats: &mut Stats,
    transcript: &PathBuf,
) -> anyhow::Result<()> {
    // ratatui::init: raw mode + alternate screen + a panic hook that restores both.
    let mut lines = crate::listen::TranscriptLines::default();
    let mut terminal = ratatui::init();
    let result = (|| -> anyhow::Result<()> {
        let mut dirty = true;
        loop {
            while let Ok(ev) = pipeline.events.try_recv() {
                stats.observe(&ev);
                if let Some(text) = lines.text_for(&ev) {
                    if let Err(e) = sink(&text) {
                        app.message = Some(format!("error: writing {}: {e}", transcript.display()));
                    }
                }
                app.apply(&ev);
                dirty = true;
                if ev == Event::Finished {
                    return Ok(());
                }
            }
            if dirty {
                terminal.draw(|f| f.render_widget(&app, f.area()))?;
                dirty = false;
            }
            if event::poll(Duration::from_millis(30))? {
                match event::read()? {
                    TermEvent::Key(k) if k.kind == KeyEventKind::Press => {
                        let ctrl_c = k.code == KeyCode::Char('c')
                            && k.modifiers.contains(KeyModifiers::CONTROL);
                        match k.code {
                            _ if ctrl_c => quit(&mut app, pipeline),
                            KeyCode::Char('q') | KeyCode::Esc => quit(&mut app, pipeline),
                            KeyCode::Char(' ') => {
                                let p = !pipeline.controls.paused.load(Ordering::Relaxed);
                                pipeline.controls.paused.store(p, Ordering::Relaxed);
                                app.paused = p;
                            }
                            KeyCode::Char('c') => {
                                app.finals.clear();
                                app.partial_committed.clear();
                                app.partial_tentative.clear();
                            }
                            KeyCode::Char('s') => {
                                app.message = Some(
                                    match std::fs::File::open(transcript).and_then(|f| f.sync_all())
                                    {
                                        Ok(()) => format!("saved {}", transcript.display()),
                                        Err(e) => {
                                            format!("error: saving {}: {e}", transcript.display())
                                        }
                                    },
                                );
                            }
                            _ => {}
                        }
                        dirty = true;
                    }
                    TermEvent::Resize(..) => dirty = true,
                    _ => {}
                }
            }
        }
    })();
    ratatui::restore();
    std::io::stdout().flush().ok();
    result
}

fn quit(app: &mut App, pipeline: &Pipeline) {
    app.finishing = true;
    pipeline.controls.stop.store(true, Ordering::Relaxed);
    // A paused pipeline must see the stop too.
    pipeline.controls.paused.store(false, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    fn screen(app: &App, w: u16, h: u16) -> String {
        let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
        t.draw(|f| f.render_widget(app, f.area())).unwrap();
        let buf = t.backend().buffer().clone();
        (0..h)
            .map(|y| {
                (0..w)
                    .map(|x| buf[(x, y)].symbol().to_string())
                    .collect::<String>()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn sample() -> App {
        let mut a = App {
            model: "tiny.en".into(),
            precision: "f16".into(),
            threads: 2,
            transcript_path: "/tmp/t.txt".into(),
            ..Default::default()
        };
        a.apply(&Event::Final {
            id: 0,
            start_s: 0.5,
            end_s: 2.5,
            text: "Enter two nine eight one.".into(),
            latency_ms: 412.0,
            rtf: 0.21,
        });
        a.apply(&Event::Partial {
            id: 1,
            start_s: 3.0,
            end_s: 4.0,
            committed: "erase u".into(),
            tentative: "d b e".into(),
        });
        a.apply(&Event::Level {
            db: -30.0,
            speaking: true,
        });
        a
    }

    #[test]
    fn render_shows_meter_transcript_partial_and_status_line() {
        let s = screen(&sample(), 80, 16);
        assert!(s.contains("SPEAKING"), "{s}");
        assert!(s.contains("-30 dBFS"), "{s}");
        assert!(s.contains("Enter two nine eight one."), "{s}");
        assert!(s.contains("erase u d b e"), "{s}");
        assert!(
            s.contains("latency 412 ms | RTF 0.21 | tiny.en | f16 | 2 threads"),
            "{s}"
        );
        assert!(s.contains("q quit"), "{s}");
        assert!(s.contains("/tmp/t.txt"), "{s}");
    }

    #[test]
    fn render_styles_partial_text_differently_from_finals() {
        let app = sample();
        let mut t = Terminal::new(TestBackend::new(80, 16)).unwrap();
        t.draw(|f| f.render_widget(&app, f.area())).unwrap();
        let buf = t.backend().buffer().clone();
        let find = |needle: &str| {
            for y in 0..16u16 {
                let row: String = (0..80u16)
                    .map(|x| buf[(x, y)].symbol().to_string())
                    .collect();
                if let Some(x) = row.find(needle) {
                    return buf[(x as u16, y)].style();
                }
            }
            panic!("{needle} not on screen");
        };
        let final_style = find("Enter");
        let tentative = find("d b e");
        assert_ne!(final_style.fg, tentative.fg);
        assert!(tentative.add_modifier.contains(Modifier::ITALIC));
        assert_ne!(find("erase").fg, final_style.fg);
    }

    #[test]
    fn render_too_small_terminal_shows_message() {
        let s = screen(&sample(), 30, 6);
        assert!(s.contains("too small"), "{s}");
        assert!(!s.contains("Enter two"), "{s}");
    }

    #[test]
    fn render_keeps_the_end_of_a_long_transcript_in_view() {
        let mut a = sample();
        for i in 0..50 {
            a.apply(&Event::Final {
                id: i,
                start_s: i as f64,
                end_s: i as f64 + 0.5,
                text: format!("line number {i}"),
                latency_ms: 1.0,
                rtf: 0.1,
            });
        }
        let s = screen(&a, 60, 14);
        assert!(s.contains("line number 49"), "{s}");
        assert!(!s.contains("line number 3 "), "{s}");
    }

    #[test]
    fn paused_and_clear_state() {
        let mut a = sample();
        a.apply(&Event::Paused(true));
        assert!(screen(&a, 80, 16).contains("PAUSED"));
        a.apply(&Event::Warning("audio buffer overrun".into()));
        assert!(screen(&a, 100, 16).contains("warning: audio buffer overrun"));
    }

    #[test]
    fn final_pieces_of_an_utterance_share_one_line() {
        let mut a = sample();
        let fin = |id: u64, text: &str| Event::Final {
            id,
            start_s: 0.0,
            end_s: 1.0,
            text: text.into(),
            latency_ms: 200.0,
            rtf: 0.1,
        };
        a.apply(&fin(1, "Erase U D"));
        a.apply(&fin(1, "B E five."));
        a.apply(&Event::UtteranceEnd { id: 1 });
        a.apply(&fin(2, "Stop."));
        assert_eq!(
            a.finals,
            ["Enter two nine eight one.", "Erase U D B E five.", "Stop."]
        );
    }
}
