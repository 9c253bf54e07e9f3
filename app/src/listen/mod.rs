//! Live dictation (`hark listen`): pipeline threads and the terminal UI.
//!
//! Threads joined by `crossbeam-channel`, each owning its state:
//! 1. **capture**: the [`AudioSource`] (cpal callback -> SPSC ring -> downmix +
//!    resample to 16 kHz, or a file replayed at real time through the same ring);
//! 2. **segment**: voice activity detection and utterance cutting
//!    ([`hark_models::streaming::Segmenter`]), level meter, end-of-speech clock;
//! 3. **recognise**: re-decodes the open utterance at a steady cadence (greedy, one
//!    temperature: cheap partials), commits what two successive hypotheses agree on
//!    ([`LocalAgreement`]), and decodes each complete utterance once more with the full
//!    offline options (beam search, temperature fallback) for the final text. Partial
//!    requests that pile up while a decode runs are coalesced to the newest one; finals
//!    are never dropped. The model (weights, tokenizer, mel filters) is loaded once and
//!    shared by every decode.
//!
//! One [`Event`] enum reaches the UI thread (or the `--no-tui` printer) through one
//! receiver; rendering never touches pipeline state.

pub mod ui;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use hark_audio::AudioSource;
use hark_models::streaming::{LocalAgreement, Segment, Segmenter, SegmenterConfig};
use hark_models::whisper::{TranscribeOptions, Whisper};

/// Everything the pipeline tells the UI.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Input level of the last ~50 ms (dBFS) and whether speech is open.
    Level {
        /// Level in dBFS.
        db: f32,
        /// Speech detected (utterance open).
        speaking: bool,
    },
    /// Live hypothesis of the open utterance.
    Partial {
        /// Utterance number.
        id: u64,
        /// Words committed by LocalAgreement (stable).
        committed: String,
        /// The rest of the hypothesis (may still change).
        tentative: String,
    },
    /// Final text of an utterance.
    Final {
        /// Utterance number.
        id: u64,
        /// The text (may be empty: noise, no speech).
        text: String,
        /// From the end of speech (VAD end) to this text, in ms.
        latency_ms: f64,
        /// Decode time / audio duration of the final decode.
        rtf: f64,
    },
    /// The pipeline was paused or resumed.
    Paused(bool),
    /// Something went wrong but listening goes on (buffer overrun, lost device...).
    Warning(String),
    /// A decode failed.
    Error(String),
    /// Total samples dropped by the capture ring (reported at the end).
    Overruns(u64),
    /// Everything was processed; the pipeline has stopped.
    Finished,
}

/// Shared switches the UI flips.
#[derive(Debug, Default)]
pub struct Controls {
    /// Stop capturing; the current utterance is still finished.
    pub stop: AtomicBool,
    /// Discard input (the open utterance is finished first).
    pub paused: AtomicBool,
}

/// Opens the audio source inside the capture thread (a microphone must stay on the
/// thread that opened it).
pub type SourceFactory = Box<dyn FnOnce() -> anyhow::Result<Box<dyn AudioSource>> + Send + 'static>;

struct Chunk {
    samples: Vec<f32>,
    arrived: Instant,
}

enum Job {
    Partial {
        id: u64,
        audio: Vec<f32>,
    },
    Final {
        id: u64,
        audio: Vec<f32>,
        speech_end_at: Instant,
    },
}

/// Running pipeline handles.
pub struct Pipeline {
    /// The event stream (one receiver, for the UI thread).
    pub events: Receiver<Event>,
    /// Switches.
    pub controls: Arc<Controls>,
    threads: Vec<JoinHandle<()>>,
}

impl Pipeline {
    /// Starts the threads. Fails if the source cannot be opened (e.g. no device).
    pub fn start(
        open: SourceFactory,
        whisper: Whisper,
        final_opts: TranscribeOptions,
        seg_cfg: SegmenterConfig,
    ) -> anyhow::Result<Self> {
        let (ev_tx, events) = crossbeam_channel::unbounded();
        let controls = Arc::new(Controls::default());
        let (chunk_tx, chunk_rx) = crossbeam_channel::bounded::<Chunk>(1024);
        let (job_tx, job_rx) = crossbeam_channel::unbounded::<Job>();
        let (ready_tx, ready_rx) = crossbeam_channel::bounded::<anyhow::Result<()>>(1);

        let c = controls.clone();
        let tx = ev_tx.clone();
        let capture = std::thread::Builder::new()
            .name("hark-capture".into())
            .spawn(move || capture_thread(open, c, chunk_tx, tx, ready_tx))?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let _ = capture.join();
                return Err(e);
            }
            Err(_) => anyhow::bail!("the capture thread stopped before opening the input"),
        }
        let c = controls.clone();
        let tx = ev_tx.clone();
        let segment = std::thread::Builder::new()
            .name("hark-segment".into())
            .spawn(move || segment_thread(seg_cfg, c, chunk_rx, job_tx, tx))?;
        let recognise = std::thread::Builder::new()
            .name("hark-recognise".into())
            .spawn(move || recognise_thread(whisper, final_opts, job_rx, ev_tx))?;
        Ok(Self {
            events,
            controls,
            threads: vec![capture, segment, recognise],
        })
    }

    /// Waits for the threads (after [`Event::Finished`]).
    pub fn join(self) {
        for t in self.threads {
            let _ = t.join();
        }
    }
}

fn capture_thread(
    open: SourceFactory,
    controls: Arc<Controls>,
    out: Sender<Chunk>,
    events: Sender<Event>,
    ready: Sender<anyhow::Result<()>>,
) {
    let mut source = match open() {
        Ok(s) => {
            let _ = ready.send(Ok(()));
            s
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let mut reported = 0u64;
    let mut buf = Vec::new();
    while !controls.stop.load(Ordering::Relaxed) {
        buf.clear();
        match source.read(&mut buf, Duration::from_millis(20)) {
            Ok(more) => {
                if !buf.is_empty() {
                    let chunk = Chunk {
                        samples: std::mem::take(&mut buf),
                        arrived: Instant::now(),
                    };
                    if out.send(chunk).is_err() {
                        break;
                    }
                }
                let o = source.overruns();
                if o > reported {
                    let _ = events.send(Event::Warning(format!(
                        "audio buffer overrun: {} samples dropped (total {o})",
                        o - reported
                    )));
                    reported = o;
                }
                if !more {
                    break;
                }
            }
            Err(e) => {
                let _ = events.send(Event::Warning(format!(
                    "audio input lost ({e}); finishing the current utterance, the transcript is kept"
                )));
                break;
            }
        }
    }
    let _ = events.send(Event::Overruns(source.overruns()));
}

fn segment_thread(
    cfg: SegmenterConfig,
    controls: Arc<Controls>,
    input: Receiver<Chunk>,
    jobs: Sender<Job>,
    events: Sender<Event>,
) {
    let mut seg = Segmenter::new(cfg);
    let mut out = Vec::new();
    // (stream position after the chunk, arrival time) of recent chunks.
    let mut arrivals: VecDeque<(u64, Instant)> = VecDeque::new();
    let mut was_paused = false;
    let mut level_due = Instant::now();
    let mut peak_db = -120.0f32;
    let forward = |out: &mut Vec<Segment>, arrivals: &VecDeque<(u64, Instant)>| {
        for s in out.drain(..) {
            let job = match s {
                Segment::Start { .. } => continue,
                Segment::Partial { id, audio } => Job::Partial { id, audio },
                Segment::Final {
                    id,
                    audio,
                    speech_end,
                    ..
                } => {
                    let at = arrivals
                        .iter()
                        .find(|(end, _)| *end >= speech_end)
                        .or(arrivals.back())
                        .map(|(_, t)| *t)
                        .unwrap_or_else(Instant::now);
                    Job::Final {
                        id,
                        audio,
                        speech_end_at: at,
                    }
                }
            };
            let _ = jobs.send(job);
        }
    };
    while let Ok(chunk) = input.recv() {
        let paused = controls.paused.load(Ordering::Relaxed);
        if paused != was_paused {
            was_paused = paused;
            if paused {
                seg.finish(&mut out);
                forward(&mut out, &arrivals);
            }
            let _ = events.send(Event::Paused(paused));
        }
        if paused {
            continue;
        }
        seg.push(&chunk.samples, &mut out);
        arrivals.push_back((seg.position(), chunk.arrived));
        while arrivals.len() > 2000 {
            arrivals.pop_front();
        }
        forward(&mut out, &arrivals);
        peak_db = peak_db.max(seg.vad().level_db());
        if chunk.arrived >= level_due {
            let _ = events.send(Event::Level {
                db: peak_db,
                speaking: seg.in_utterance(),
            });
            peak_db = -120.0;
            level_due = chunk.arrived + Duration::from_millis(50);
        }
    }
    seg.finish(&mut out);
    forward(&mut out, &arrivals);
    let _ = events.send(Event::Level {
        db: -120.0,
        speaking: false,
    });
}

fn text_of(w: &Whisper, audio: &[f32], opts: &TranscribeOptions) -> anyhow::Result<String> {
    let mut parts = Vec::new();
    w.transcribe(audio, opts, &mut |s| parts.push(s.text.trim().to_string()))?;
    Ok(parts
        .into_iter()
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join(" "))
}

fn recognise_thread(
    w: Whisper,
    final_opts: TranscribeOptions,
    jobs: Receiver<Job>,
    events: Sender<Event>,
) {
    // Partials: greedy, one temperature, no prompt: cheap and deterministic.
    let partial_opts = TranscribeOptions {
        beam_size: 1,
        best_of: 1,
        temperatures: vec![0.0],
        condition_on_previous_text: false,
        without_timestamps: true,
        ..final_opts.clone()
    };
    let mut agreement = LocalAgreement::new();
    let mut agreement_id = u64::MAX;
    let mut pending: VecDeque<Job> = VecDeque::new();
    let mut history: VecDeque<String> = VecDeque::new();
    loop {
        let job = match pending.pop_front() {
            Some(j) => j,
            None => match jobs.recv() {
                Ok(j) => j,
                Err(_) => break,
            },
        };
        match job {
            Job::Partial { id, mut audio } => {
                // Coalesce: skip to the newest partial unless a final is waiting.
                while let Ok(next) = jobs.try_recv() {
                    match next {
                        Job::Partial { id: i2, audio: a2 } if i2 == id && pending.is_empty() => {
                            audio = a2
                        }
                        other => pending.push_back(other),
                    }
                }
                if pending
                    .iter()
                    .any(|j| matches!(j, Job::Final { id: f, .. } if *f == id))
                {
                    continue;
                }
                if agreement_id != id {
                    agreement = LocalAgreement::new();
                    agreement_id = id;
                }
                match text_of(&w, &audio, &partial_opts) {
                    Ok(text) => {
                        agreement.update(&text);
                        let _ = events.send(Event::Partial {
                            id,
                            committed: agreement.committed().join(" "),
                            tentative: agreement.tentative().join(" "),
                        });
                    }
                    Err(e) => {
                        let _ = events.send(Event::Error(format!("partial decode failed: {e:#}")));
                    }
                }
            }
            Job::Final {
                id,
                audio,
                speech_end_at,
            } => {
                let t = Instant::now();
                // Condition on the previous finals, as offline decoding conditions each
                // window on the text before it (style, spelling, vocabulary).
                let opts = TranscribeOptions {
                    initial_prompt: (!history.is_empty())
                        .then(|| Vec::from(history.clone()).join(" ")),
                    ..final_opts.clone()
                };
                let result = text_of(&w, &audio, &opts);
                let decode_s = t.elapsed().as_secs_f64();
                match result {
                    Ok(text) => {
                        if !text.is_empty() {
                            history.push_back(text.clone());
                            if history.len() > 3 {
                                history.pop_front();
                            }
                        }
                        let latency_ms = speech_end_at.elapsed().as_secs_f64() * 1000.0;
                        let audio_s = audio.len() as f64 / 16000.0;
                        let _ = events.send(Event::Final {
                            id,
                            text,
                            latency_ms,
                            rtf: decode_s / audio_s.max(1e-3),
                        });
                    }
                    Err(e) => {
                        let _ = events.send(Event::Error(format!(
                            "final decode of utterance {id} failed: {e:#}"
                        )));
                    }
                }
                agreement_id = u64::MAX;
            }
        }
    }
    let _ = events.send(Event::Finished);
}

/// Figures gathered from the event stream (`--stats`).
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Final latencies (ms).
    pub latencies_ms: Vec<f64>,
    /// Intervals between successive partials of the same utterance (ms).
    pub partial_intervals_ms: Vec<f64>,
    /// Final decode real-time factors.
    pub rtfs: Vec<f64>,
    /// Samples dropped by the capture ring.
    pub overruns: u64,
    last_partial: Option<(u64, Instant)>,
}

fn percentile(v: &[f64], p: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let i = ((s.len() - 1) as f64 * p).round() as usize;
    Some(s[i])
}

impl Stats {
    /// Accounts one event.
    pub fn observe(&mut self, ev: &Event) {
        match ev {
            Event::Partial { id, .. } => {
                let now = Instant::now();
                if let Some((pid, t)) = self.last_partial {
                    if pid == *id {
                        self.partial_intervals_ms
                            .push((now - t).as_secs_f64() * 1000.0);
                    }
                }
                self.last_partial = Some((*id, now));
            }
            Event::Final {
                latency_ms, rtf, ..
            } => {
                self.latencies_ms.push(*latency_ms);
                self.rtfs.push(*rtf);
                self.last_partial = None;
            }
            Event::Overruns(n) => self.overruns = *n,
            _ => {}
        }
    }

    /// A one-paragraph summary.
    pub fn summary(&self) -> String {
        let f = |x: Option<f64>| {
            x.map(|v| format!("{v:.0} ms"))
                .unwrap_or_else(|| "n/a".into())
        };
        format!(
            "finals: {}; final latency (end of speech -> final text): median {}, p95 {}; \
             partial refresh interval: median {}, p95 {}; final RTF median {}; dropped audio (overruns): {} samples",
            self.latencies_ms.len(),
            f(percentile(&self.latencies_ms, 0.5)),
            f(percentile(&self.latencies_ms, 0.95)),
            f(percentile(&self.partial_intervals_ms, 0.5)),
            f(percentile(&self.partial_intervals_ms, 0.95)),
            percentile(&self.rtfs, 0.5).map(|v| format!("{v:.3}")).unwrap_or_else(|| "n/a".into()),
            self.overruns
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_percentiles_and_partial_intervals() {
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 0.5), Some(2.0));
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0, 100.0], 0.95), Some(100.0));
        assert_eq!(percentile(&[], 0.5), None);
        let mut s = Stats::default();
        let p = |id| Event::Partial {
            id,
            committed: String::new(),
            tentative: String::new(),
        };
        s.observe(&p(0));
        s.observe(&p(0));
        s.observe(&p(1));
        s.observe(&Event::Final {
            id: 1,
            text: "x".into(),
            latency_ms: 250.0,
            rtf: 0.1,
        });
        s.observe(&Event::Overruns(0));
        assert_eq!(s.partial_intervals_ms.len(), 1);
        assert_eq!(s.latencies_ms, vec![250.0]);
        assert!(s.summary().contains("median 250 ms"), "{}", s.summary());
    }

    /// A source that delivers `audio` in 20 ms pieces, then fails like an unplugged device.
    struct Unplugged {
        audio: Vec<f32>,
        pos: usize,
    }

    impl AudioSource for Unplugged {
        fn read(
            &mut self,
            out: &mut Vec<f32>,
            _timeout: Duration,
        ) -> Result<bool, hark_audio::AudioError> {
            if self.pos >= self.audio.len() {
                return Err(hark_audio::AudioError::Capture {
                    op: "read",
                    reason: "device unplugged".into(),
                });
            }
            let end = (self.pos + 320).min(self.audio.len());
            out.extend_from_slice(&self.audio[self.pos..end]);
            self.pos = end;
            Ok(true)
        }
        fn overruns(&self) -> u64 {
            0
        }
    }

    #[test]
    fn device_lost_mid_utterance_warns_keeps_the_final_and_finishes() {
        let base = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/data/an4/test/an391-mjwl-b.flac"
        );
        let model = hark_models::store::hark_home().map(|h| h.join("models/tiny.en"));
        let (Ok(model), true) = (model, std::path::Path::new(base).is_file()) else {
            eprintln!("skipping: ../shared or the tiny.en model not found");
            return;
        };
        if !model.is_dir() {
            eprintln!("skipping: tiny.en model not installed");
            return;
        }
        let cfg = hark_models::whisper::config::WhisperConfig::from_dir(&model).unwrap();
        let w = Whisper::load(&model, cfg.precision).unwrap();
        let speech = hark_audio::load_audio(std::path::Path::new(base)).unwrap();
        // Silence, then the utterance, cut off before its end by the "unplug".
        let mut audio = vec![0.0; 8000];
        audio.extend_from_slice(&speech[..speech.len() * 3 / 4]);
        let open: SourceFactory =
            Box::new(move || Ok(Box::new(Unplugged { audio, pos: 0 }) as Box<dyn AudioSource>));
        let p = Pipeline::start(
            open,
            w,
            TranscribeOptions::default(),
            SegmenterConfig::default(),
        )
        .unwrap();
        let events: Vec<Event> = p
            .events
            .iter()
            .take_while(|e| *e != Event::Finished)
            .collect();
        p.join();
        assert!(
            events.iter().any(|e| matches!(e, Event::Warning(w) if w.contains("audio input lost") && w.contains("device unplugged"))),
            "{events:?}"
        );
        let finals: Vec<&str> = events
            .iter()
            .filter_map(|e| match e {
                Event::Final { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(finals.len(), 1, "{events:?}");
        assert!(finals[0].to_lowercase().starts_with("enter"), "{finals:?}");
    }
}
