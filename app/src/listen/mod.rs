//! Live dictation (`hark listen`): pipeline threads and the terminal UI.
//!
//! Threads joined by `crossbeam-channel`, each owning its state:
//! 1. **capture**: the [`AudioSource`] (cpal callback -> SPSC ring -> downmix +
//!    resample to 16 kHz, or a file replayed at real time through the same ring);
//! 2. **segment**: voice activity detection and utterance cutting
//!    ([`hark_models::streaming::Segmenter`]), level meter, end-of-speech clock;
//! 3. **recognise**: any model family through [`Recognizer`]. It re-decodes the open
//!    utterance at a steady cadence (greedy, one temperature: cheap partials) and
//!    commits what two successive hypotheses agree on ([`LocalAgreement`]).
//!
//! Final latency is what matters most, so the recogniser works by priority:
//! - the final decode starts *speculatively* when the segmenter sees `endpoint_ms` of
//!   silence ([`Segment::Endpoint`]) instead of after the VAD hangover; when the
//!   hangover confirms the end ([`Segment::Final`], same audio) the text is already
//!   there or on its way; if speech resumed ([`Segment::Resumed`]) it is dropped (it
//!   was shown as a partial);
//! - a partial never starts while an endpoint or final is queued, queued partials are
//!   coalesced to the newest, and the segmenter schedules none during a pause;
//! - running decodes that became useless are cancelled ([`Preempt`]): the flag is the
//!   decode's cancellation hook ([`TranscribeOptions::cancel`]), read by Whisper
//!   between encoder layers and decoder steps, so a running partial gives way to the
//!   final within one layer or step (a few ms) when the endpoint arrives;
//! - Whisper encodes only the utterance, not a 30 s window: every decode gets a
//!   reduced audio context ([`TranscribeOptions::audio_ctx`], as whisper.cpp's
//!   `--audio-ctx`) of the utterance's encoder positions plus a small margin
//!   ([`whisper_audio_ctx`]), in the silence-padded mode ([`AudioCtxMode::Silence`]):
//!   the positions past it hold a silent window's encoder states, computed once.
//!   Plain truncation (whisper.cpp) made tiny.en repeat the last words on most short
//!   utterances (it was trained on 30 s windows that end in silence); padding with
//!   silence keeps ~80% of AN4 transcripts identical to full-window decoding and the
//!   rest differ in punctuation or spelling style (see [`DEFAULT_AUDIO_CTX_MARGIN`]).
//!
//! Text becomes final before the utterance closes: when the segmenter reports a pause of
//! `final_pause_ms` ([`Segment::SoftFinal`]; models that accept a forced prefix:
//! Whisper, conformer-AED with a CTC head), the speculative decode of
//! that endpoint is emitted as a final and never revised, while the utterance stays open
//! until the hangover. Every later decode of the utterance (partials, endpoints, the
//! closing final) runs on the *whole* utterance audio with the text already final as a
//! forced prefix ([`TranscribeOptions::prefix`]) and yields only the words after
//! it, which become the next final piece ([`join_piece`] puts a space before words, none
//! before punctuation). So the finals of an utterance read as one decode of all of it,
//! and the final latency is the short pause plus the decode time, not the hangover.
//! [`Event::UtteranceEnd`] marks the close (the transcript file ends the line there).
//!
//! The final decode uses the full offline options (beam search, temperature fallback,
//! timestamps unless `--no-timestamps`) and is conditioned on the previous utterances'
//! finals. Latency is measured honestly: from the
//! arrival of the audio chunk holding the last voiced frame to the emission of the
//! final text (so it includes the endpoint wait, or the hangover when the decode is
//! faster than it).
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
use hark_models::recognizer::{Recognizer, RecognizerError};
use hark_models::streaming::{LocalAgreement, Segment, Segmenter, SegmenterConfig};
use hark_models::whisper::{AudioCtxMode, TranscribeOptions, WhisperError};

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
        /// Stream time (s) where the utterance's audio starts.
        start_s: f64,
        /// Stream time (s) where the decoded audio ends.
        end_s: f64,
        /// Words committed by LocalAgreement (stable).
        committed: String,
        /// The rest of the hypothesis (may still change).
        tentative: String,
    },
    /// Final text of an utterance, or of its next piece: finals with the same `id`
    /// continue one utterance ([`join_piece`]) until [`Event::UtteranceEnd`].
    Final {
        /// Utterance number.
        id: u64,
        /// Stream time (s) where the audio of this piece starts (the utterance start, or
        /// the end of the previous piece of the utterance).
        start_s: f64,
        /// Stream time (s) where it ends.
        end_s: f64,
        /// The text (may be empty: noise, no speech).
        text: String,
        /// From the arrival of the last voiced audio to this text, in ms.
        latency_ms: f64,
        /// Decode time / audio duration of the final decode.
        rtf: f64,
    },
    /// Utterance `id` is closed: no more finals with this id.
    UtteranceEnd {
        /// Utterance number.
        id: u64,
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

/// Flags the segmenter raises when a running decode became useless: a partial once
/// the end of speech is seen, a speculative final once speech resumes.
#[derive(Debug, Default)]
pub struct Preempt {
    /// Stop the running partial decode.
    pub partial: Arc<AtomicBool>,
    /// Stop the running speculative final decode.
    pub speculative: Arc<AtomicBool>,
}

/// What the recogniser thread needs from a model: 16 kHz mono in, text out.
/// Implemented by [`Recognizer`] (every model family); tests plug in fakes.
pub trait Transcriber: Send + 'static {
    /// Decodes `audio` with `opts` and returns the text (segments joined by spaces), or
    /// `None` when `opts.cancel` was raised during the decode (it stops early).
    fn text(&self, audio: &[f32], opts: &TranscribeOptions) -> anyhow::Result<Option<String>>;
}

impl Transcriber for Recognizer {
    fn text(&self, audio: &[f32], opts: &TranscribeOptions) -> anyhow::Result<Option<String>> {
        match Recognizer::text(self, audio, opts) {
            Ok(t) => Ok(Some(t)),
            Err(RecognizerError::Whisper(WhisperError::Cancelled)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// Rounding of the reduced Whisper audio context, in encoder positions (the GEMM
/// kernels' row blocks divide it).
pub const AUDIO_CTX_ROUND: usize = 32;

/// Default margin of the reduced audio context beyond the utterance, in encoder
/// positions of 20 ms (before rounding up to [`AUDIO_CTX_ROUND`]). Measured with
/// `scripts/listen/audio_ctx_margin.py` on 40 AN4 utterances in the silence-padded mode:
/// margins 0 / 16 / 64 keep 29 / 31 / 32 of 40 transcripts identical to the full
/// window's (the rest differ in punctuation or hyphenation of spelled letters); plain
/// truncation keeps 11 of 40 even with a margin of 96 and often repeats words.
pub const DEFAULT_AUDIO_CTX_MARGIN: usize = 16;

/// The reduced Whisper audio context for `samples` 16 kHz samples: the encoder
/// positions they fill (2 mel frames of 10 ms each, the padding frame included) plus
/// `margin`, rounded up to [`AUDIO_CTX_ROUND`], at most the full 1500.
pub fn whisper_audio_ctx(samples: usize, margin: usize) -> usize {
    let positions = (samples / 160 + 1).div_ceil(2);
    ((positions + margin).div_ceil(AUDIO_CTX_ROUND) * AUDIO_CTX_ROUND).min(1500)
}

/// Tokens a live Whisper decode of `samples` 16 kHz samples may generate: 24 plus 10
/// per second of audio. Speech runs at about 4-6 tokens a second (AN4's spelled letters,
/// timestamps included: ~5), so this leaves twice the room; what it stops is a
/// repetition loop running to the 224-token limit, which on a 1.6 s AN4 utterance
/// held its final text back by ~6 s (beam 5, then a temperature fallback).
pub fn live_token_cap(samples: usize) -> usize {
    24 + samples * 10 / 16_000
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
        start: u64,
        audio: Vec<f32>,
    },
    Endpoint {
        id: u64,
        start: u64,
        audio: Vec<f32>,
        speech_end: u64,
    },
    SoftFinal {
        id: u64,
        start: u64,
        audio: Vec<f32>,
        speech_end: u64,
        speech_end_at: Instant,
    },
    Resumed {
        id: u64,
    },
    Final {
        id: u64,
        start: u64,
        audio: Vec<f32>,
        speech_end: u64,
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
    /// `final_opts` are the options of the final decode (partials are greedy).
    /// `audio_ctx_margin`: every decode gets a reduced Whisper audio context of the
    /// utterance plus this margin ([`whisper_audio_ctx`]); `None` = the full 30 s window.
    /// (Other families ignore it.)
    pub fn start(
        open: SourceFactory,
        model: Box<dyn Transcriber>,
        final_opts: TranscribeOptions,
        audio_ctx_margin: Option<usize>,
        seg_cfg: SegmenterConfig,
    ) -> anyhow::Result<Self> {
        let (ev_tx, events) = crossbeam_channel::unbounded();
        let controls = Arc::new(Controls::default());
        let preempt = Arc::new(Preempt::default());
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
        let p = preempt.clone();
        let segment = std::thread::Builder::new()
            .name("hark-segment".into())
            .spawn(move || segment_thread(seg_cfg, c, chunk_rx, job_tx, tx, p))?;
        let recognise = std::thread::Builder::new()
            .name("hark-recognise".into())
            .spawn(move || {
                recognise_thread(model, final_opts, audio_ctx_margin, job_rx, ev_tx, preempt)
            })?;
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

/// Turns segmenter output into recogniser jobs, raising the preemption flags (after
/// the job is queued, so the recogniser sees either the flag or the job).
struct Forwarder {
    jobs: Sender<Job>,
    preempt: Arc<Preempt>,
    /// (stream position after the chunk, arrival time) of recent chunks.
    arrivals: VecDeque<(u64, Instant)>,
    /// `speech_end` of the last endpoint.
    last_endpoint: Option<u64>,
    /// `speech_end` of the last soft final of the open utterance.
    soft: Option<u64>,
    /// Start position of the open utterance.
    start: u64,
}

impl Forwarder {
    fn arrived(&mut self, pos: u64, at: Instant) {
        self.arrivals.push_back((pos, at));
        while self.arrivals.len() > 3000 {
            self.arrivals.pop_front();
        }
    }

    /// Arrival time of the chunk that brought stream position `speech_end`.
    fn arrival(&self, speech_end: u64) -> Instant {
        self.arrivals
            .iter()
            .find(|(end, _)| *end >= speech_end)
            .or(self.arrivals.back())
            .map(|(_, t)| *t)
            .unwrap_or_else(Instant::now)
    }

    fn forward(&mut self, out: &mut Vec<Segment>) {
        for s in out.drain(..) {
            let (job, flag) = match s {
                Segment::Start { at, .. } => {
                    self.start = at;
                    self.soft = None;
                    continue;
                }
                Segment::SoftFinal {
                    id,
                    audio,
                    speech_end,
                } => {
                    // Commits the speculative decode of this endpoint: nothing cancels it.
                    self.soft = Some(speech_end);
                    (
                        Job::SoftFinal {
                            id,
                            start: self.start,
                            audio,
                            speech_end,
                            speech_end_at: self.arrival(speech_end),
                        },
                        None,
                    )
                }
                Segment::Partial { id, audio } => (
                    Job::Partial {
                        id,
                        start: self.start,
                        audio,
                    },
                    None,
                ),
                Segment::Endpoint {
                    id,
                    audio,
                    speech_end,
                } => {
                    self.last_endpoint = Some(speech_end);
                    (
                        Job::Endpoint {
                            id,
                            start: self.start,
                            audio,
                            speech_end,
                        },
                        Some(&self.preempt.partial),
                    )
                }
                Segment::Resumed { id } => {
                    self.last_endpoint = None;
                    (Job::Resumed { id }, Some(&self.preempt.speculative))
                }
                Segment::Final {
                    id,
                    audio,
                    speech_end,
                    ..
                } => {
                    // The chunk that brought the last voiced frame.
                    let at = self.arrival(speech_end);
                    let endpoint = self.last_endpoint.take();
                    let matches = endpoint == Some(speech_end);
                    // A committed (soft final) endpoint's decode must finish.
                    let committed = endpoint.is_some() && endpoint == self.soft;
                    let job = Job::Final {
                        id,
                        start: self.start,
                        audio,
                        speech_end,
                        speech_end_at: at,
                    };
                    if matches {
                        (job, None)
                    } else {
                        let _ = self.jobs.send(job);
                        self.preempt.partial.store(true, Ordering::Relaxed);
                        if !committed {
                            self.preempt.speculative.store(true, Ordering::Relaxed);
                        }
                        continue;
                    }
                }
            };
            let _ = self.jobs.send(job);
            if let Some(f) = flag {
                f.store(true, Ordering::Relaxed);
            }
        }
    }
}

fn segment_thread(
    cfg: SegmenterConfig,
    controls: Arc<Controls>,
    input: Receiver<Chunk>,
    jobs: Sender<Job>,
    events: Sender<Event>,
    preempt: Arc<Preempt>,
) {
    let mut seg = Segmenter::new(cfg);
    let mut out = Vec::new();
    let mut fw = Forwarder {
        jobs,
        preempt,
        arrivals: VecDeque::new(),
        last_endpoint: None,
        soft: None,
        start: 0,
    };
    let mut was_paused = false;
    let mut level_due = Instant::now();
    let mut peak_db = -120.0f32;
    while let Ok(chunk) = input.recv() {
        let paused = controls.paused.load(Ordering::Relaxed);
        if paused != was_paused {
            was_paused = paused;
            if paused {
                seg.finish(&mut out);
                fw.forward(&mut out);
            }
            let _ = events.send(Event::Paused(paused));
        }
        if paused {
            continue;
        }
        // Arrival first: a final emitted by this very chunk finds its time.
        fw.arrived(seg.position() + chunk.samples.len() as u64, chunk.arrived);
        seg.push(&chunk.samples, &mut out);
        fw.forward(&mut out);
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
    fw.forward(&mut out);
    let _ = events.send(Event::Level {
        db: -120.0,
        speaking: false,
    });
}

/// One decode; `Ok(None)` when it was preempted, before it started or while it ran
/// (the flag is the decode's cancellation hook: Whisper stops at the next encoder
/// layer or decoder step). A Whisper decode encodes only the utterance plus
/// `audio_ctx_margin` positions.
fn decode(
    model: &dyn Transcriber,
    audio: &[f32],
    opts: &TranscribeOptions,
    audio_ctx_margin: Option<usize>,
    cancel: Option<&Arc<AtomicBool>>,
    prefix: &str,
) -> anyhow::Result<Option<String>> {
    if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
        return Ok(None);
    }
    let opts = TranscribeOptions {
        max_new_tokens: Some(live_token_cap(audio.len())),
        audio_ctx: audio_ctx_margin.map(|m| whisper_audio_ctx(audio.len(), m)),
        audio_ctx_mode: AudioCtxMode::Silence,
        cancel: cancel.cloned(),
        prefix: (!prefix.is_empty()).then(|| prefix.to_string()),
        ..opts.clone()
    };
    model.text(audio, &opts)
}

/// A speculative final decode (made at an endpoint).
struct Speculative {
    id: u64,
    speech_end: u64,
    audio_len: usize,
    /// Length of the forced prefix it continued.
    prefix_len: usize,
    text: String,
    decode_s: f64,
}

/// The open utterance as the recogniser sees it.
struct Utterance {
    id: u64,
    /// Its final pieces joined: the forced prefix of every later decode.
    text: String,
    /// Stream position where the next final piece starts.
    piece_start: u64,
    /// `speech_end` of its last soft final.
    soft_end: Option<u64>,
}

/// The separator between a final piece and the text before it in its utterance: none
/// before punctuation, a space otherwise.
pub fn piece_separator(piece: &str) -> &'static str {
    if piece.starts_with(|c: char| ".,;:!?%)]}'".contains(c)) {
        ""
    } else {
        " "
    }
}

/// `line` followed by the next final `piece` of the same utterance.
pub fn join_piece(line: &str, piece: &str) -> String {
    if line.is_empty() {
        piece.to_string()
    } else {
        format!("{line}{}{piece}", piece_separator(piece))
    }
}

/// Turns the event stream into transcript text: the final pieces of an utterance on
/// one line, ended when the utterance closes (or the pipeline finishes).
#[derive(Debug, Default)]
pub struct TranscriptLines {
    open: Option<u64>,
}

impl TranscriptLines {
    /// The text to append to the transcript for `ev`, if any.
    pub fn text_for(&mut self, ev: &Event) -> Option<String> {
        match ev {
            Event::Final { id, text, .. } if !text.is_empty() => {
                let s = match self.open {
                    Some(o) if o == *id => format!("{}{text}", piece_separator(text)),
                    Some(_) => format!("\n{text}"),
                    None => text.clone(),
                };
                self.open = Some(*id);
                Some(s)
            }
            Event::UtteranceEnd { id } if self.open == Some(*id) => {
                self.open = None;
                Some("\n".into())
            }
            Event::Finished if self.open.is_some() => {
                self.open = None;
                Some("\n".into())
            }
            _ => None,
        }
    }
}

fn recognise_thread(
    model: Box<dyn Transcriber>,
    final_opts: TranscribeOptions,
    audio_ctx_margin: Option<usize>,
    jobs: Receiver<Job>,
    events: Sender<Event>,
    preempt: Arc<Preempt>,
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
    let mut spec: Option<Speculative> = None;
    let mut utt: Option<Utterance> = None;
    // Condition on the previous utterances' finals, as offline decoding conditions each
    // window on the text before it (style, spelling, vocabulary).
    let final_opts_now = |history: &VecDeque<String>| TranscribeOptions {
        initial_prompt: (!history.is_empty()).then(|| Vec::from(history.clone()).join(" ")),
        ..final_opts.clone()
    };
    let secs = |pos: u64| pos as f64 / 16000.0;
    // The recogniser's view of utterance `id` (a new one starts empty at `start`).
    let open = |utt: &mut Option<Utterance>, id: u64, start: u64| {
        if utt.as_ref().is_none_or(|u| u.id != id) {
            *utt = Some(Utterance {
                id,
                text: String::new(),
                piece_start: start,
                soft_end: None,
            });
        }
    };
    let show = |id: u64,
                (start, end): (u64, u64),
                text: &str,
                agreement: &mut LocalAgreement,
                agreement_id: &mut u64| {
        if *agreement_id != id {
            *agreement = LocalAgreement::new();
            *agreement_id = id;
        }
        agreement.update(text);
        let _ = events.send(Event::Partial {
            id,
            start_s: secs(start),
            end_s: secs(end),
            committed: agreement.committed().join(" "),
            tentative: agreement.tentative().join(" "),
        });
    };
    // Emits the next final piece of `u`, ending at stream position `end`.
    let emit = |u: &mut Utterance,
                end: u64,
                text: String,
                speech_end_at: Instant,
                decode_s: f64,
                audio_len: usize| {
        let latency_ms = speech_end_at.elapsed().as_secs_f64() * 1000.0;
        let audio_s = audio_len as f64 / 16000.0;
        if !text.is_empty() {
            u.text = join_piece(&u.text, &text);
        }
        let _ = events.send(Event::Final {
            id: u.id,
            start_s: secs(u.piece_start),
            end_s: secs(end),
            text,
            latency_ms,
            rtf: decode_s / audio_s.max(1e-3),
        });
        u.piece_start = end;
    };
    loop {
        let job = match pending.pop_front() {
            Some(j) => j,
            None => match jobs.recv() {
                Ok(j) => j,
                Err(_) => break,
            },
        };
        // Look at everything queued behind this job.
        while let Ok(next) = jobs.try_recv() {
            pending.push_back(next);
        }
        match job {
            Job::Partial { id, start, audio } => {
                // Reset first, then look: a preemption raised after the reset is seen
                // by `decode`, one raised before it comes with a queued job.
                preempt.partial.store(false, Ordering::Relaxed);
                while let Ok(next) = jobs.try_recv() {
                    pending.push_back(next);
                }
                // Anything newer than a partial (a newer partial, an endpoint, a
                // final) makes it useless.
                if pending.iter().any(|j| !matches!(j, Job::Resumed { .. })) {
                    continue;
                }
                open(&mut utt, id, start);
                let Some(u) = utt.as_ref() else { continue };
                match decode(
                    &*model,
                    &audio,
                    &partial_opts,
                    audio_ctx_margin,
                    Some(&preempt.partial),
                    &u.text,
                ) {
                    Ok(Some(text)) => show(
                        id,
                        (u.piece_start, start + audio.len() as u64),
                        &text,
                        &mut agreement,
                        &mut agreement_id,
                    ),
                    Ok(None) => {}
                    Err(e) => {
                        let _ = events.send(Event::Error(format!("partial decode failed: {e:#}")));
                    }
                }
            }
            Job::Endpoint {
                id,
                start,
                audio,
                speech_end,
            } => {
                preempt.speculative.store(false, Ordering::Relaxed);
                while let Ok(next) = jobs.try_recv() {
                    pending.push_back(next);
                }
                // Stale once speech resumed or a later pause came, unless a soft final
                // committed it.
                let committed = pending.iter().any(|j| {
                    matches!(j, Job::SoftFinal { id: r, speech_end: e, .. } if *r == id && *e == speech_end)
                });
                let stale = pending.iter().any(|j| {
                    matches!(j, Job::Resumed { id: r } | Job::Endpoint { id: r, .. } if *r == id)
                });
                if stale && !committed {
                    continue;
                }
                open(&mut utt, id, start);
                let Some(u) = utt.as_ref() else { continue };
                let t = Instant::now();
                match decode(
                    &*model,
                    &audio,
                    &final_opts_now(&history),
                    audio_ctx_margin,
                    (!committed).then_some(&preempt.speculative),
                    &u.text,
                ) {
                    Ok(Some(text)) => {
                        // Until a soft final or the hangover confirms it, it is the best
                        // partial.
                        show(
                            id,
                            (u.piece_start, start + audio.len() as u64),
                            &text,
                            &mut agreement,
                            &mut agreement_id,
                        );
                        spec = Some(Speculative {
                            id,
                            speech_end,
                            audio_len: audio.len(),
                            prefix_len: u.text.len(),
                            text,
                            decode_s: t.elapsed().as_secs_f64(),
                        });
                    }
                    Ok(None) => {}
                    Err(e) => {
                        let _ = events.send(Event::Error(format!(
                            "speculative final decode failed: {e:#}"
                        )));
                    }
                }
            }
            Job::Resumed { id } => {
                if spec.as_ref().is_some_and(|s| s.id == id) {
                    spec = None;
                }
            }
            job @ (Job::SoftFinal { .. } | Job::Final { .. }) => {
                let closes = matches!(job, Job::Final { .. });
                let (Job::SoftFinal {
                    id,
                    start,
                    audio,
                    speech_end,
                    speech_end_at,
                }
                | Job::Final {
                    id,
                    start,
                    audio,
                    speech_end,
                    speech_end_at,
                }) = job
                else {
                    continue;
                };
                open(&mut utt, id, start);
                if let Some(u) = utt.as_mut() {
                    // A close at the last soft final's end of speech adds no audio: its
                    // text is all out already.
                    if !(closes && u.soft_end == Some(speech_end)) {
                        let ready = spec.take().filter(|s| {
                            s.id == id
                                && s.speech_end == speech_end
                                && s.audio_len == audio.len()
                                && s.prefix_len == u.text.len()
                        });
                        let result = match ready {
                            Some(s) => Ok((s.text, s.decode_s)),
                            None => {
                                let t = Instant::now();
                                decode(
                                    &*model,
                                    &audio,
                                    &final_opts_now(&history),
                                    audio_ctx_margin,
                                    None,
                                    &u.text,
                                )
                                .and_then(|text| {
                                    text.ok_or_else(|| anyhow::anyhow!("cancelled without a flag"))
                                })
                                .map(|text| (text, t.elapsed().as_secs_f64()))
                            }
                        };
                        match result {
                            Ok((text, decode_s)) => emit(
                                u,
                                start + audio.len() as u64,
                                text,
                                speech_end_at,
                                decode_s,
                                audio.len(),
                            ),
                            Err(e) => {
                                let _ = events.send(Event::Error(format!(
                                    "final decode of utterance {id} failed: {e:#}"
                                )));
                            }
                        }
                    }
                    u.soft_end = Some(speech_end);
                }
                if closes {
                    if let Some(u) = utt.take().filter(|u| !u.text.is_empty()) {
                        history.push_back(u.text);
                        if history.len() > 3 {
                            history.pop_front();
                        }
                    }
                    let _ = events.send(Event::UtteranceEnd { id });
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
    /// Wall clock and process CPU seconds when [`Stats::begin`] was called.
    began: Option<(Instant, f64)>,
}

/// CPU time (user + system, all threads) this process has used, in seconds (Linux
/// `/proc/self/stat`; `None` elsewhere).
pub fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14, 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // USER_HZ is 100 on every Linux ABI hark targets.
    Some(ticks / 100.0)
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
    /// Starts the CPU-use clock (call when the pipeline starts, after the model load).
    pub fn begin(&mut self) {
        if let Some(cpu) = process_cpu_seconds() {
            self.began = Some((Instant::now(), cpu));
        }
    }

    /// CPU use since [`Stats::begin`], in percent of one core.
    pub fn cpu_percent(&self) -> Option<f64> {
        let (t0, c0) = self.began?;
        let wall = t0.elapsed().as_secs_f64();
        if wall <= 0.0 {
            return None;
        }
        Some((process_cpu_seconds()? - c0) / wall * 100.0)
    }

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
             partial refresh interval: median {}, p95 {}; final RTF median {}; CPU {} (of {} cores); \
             dropped audio (overruns): {} samples",
            self.latencies_ms.len(),
            f(percentile(&self.latencies_ms, 0.5)),
            f(percentile(&self.latencies_ms, 0.95)),
            f(percentile(&self.partial_intervals_ms, 0.5)),
            f(percentile(&self.partial_intervals_ms, 0.95)),
            percentile(&self.rtfs, 0.5).map(|v| format!("{v:.3}")).unwrap_or_else(|| "n/a".into()),
            self.cpu_percent().map(|c| format!("{c:.0}%")).unwrap_or_else(|| "n/a".into()),
            std::thread::available_parallelism().map_or(1, |n| n.get()),
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
            start_s: 0.0,
            end_s: 1.0,
            committed: String::new(),
            tentative: String::new(),
        };
        s.observe(&p(0));
        s.observe(&p(0));
        s.observe(&p(1));
        s.observe(&Event::Final {
            id: 1,
            start_s: 0.0,
            end_s: 1.0,
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
        let w = Box::new(Recognizer::load(&model, None).unwrap());
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
            Some(DEFAULT_AUDIO_CTX_MARGIN),
            SegmenterConfig::default(),
        )
        .unwrap();
        let events = run_to_end(p);
        assert!(
            events.iter().any(|e| matches!(e, Event::Warning(w) if w.contains("audio input lost") && w.contains("device unplugged"))),
            "{events:?}"
        );
        let finals: Vec<String> = finals_of(&events).into_iter().map(|f| f.1).collect();
        assert_eq!(finals.len(), 1, "{events:?}");
        assert!(finals[0].to_lowercase().starts_with("enter"), "{finals:?}");
    }
    /// Every event of a pipeline run up to [`Event::Finished`]; the threads joined.
    fn run_to_end(p: Pipeline) -> Vec<Event> {
        let events: Vec<Event> = p
            .events
            .iter()
            .take_while(|e| *e != Event::Finished)
            .collect();
        p.join();
        events
    }

    /// The finals among `events`: (utterance id, text, start s, end s, latency ms).
    fn finals_of(events: &[Event]) -> Vec<(u64, String, f64, f64, f64)> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Final {
                    id,
                    text,
                    start_s,
                    end_s,
                    latency_ms,
                    ..
                } => Some((*id, text.clone(), *start_s, *end_s, *latency_ms)),
                _ => None,
            })
            .collect()
    }

    /// Three 1.2 s "utterances" (a tone) separated by 1.5 s of silence, delivered at real
    /// time through the pipeline with `model`, endpoint 100 ms and the given hangover.
    fn three_tones_at_real_time(
        model: Box<dyn Transcriber>,
        hangover_ms: u32,
        audio_ctx_margin: Option<usize>,
    ) -> Pipeline {
        let mut audio = vec![0.0f32; 8000];
        for _ in 0..3 {
            audio.extend((0..19200).map(|i| 0.3 * (i as f32 * 0.3).sin()));
            audio.extend(vec![0.0; 24000]);
        }
        let open: SourceFactory = Box::new(move || {
            Ok(Box::new(Paced {
                audio,
                pos: 0,
                next: None,
            }) as Box<dyn AudioSource>)
        });
        let mut cfg = SegmenterConfig {
            endpoint_ms: 100,
            ..Default::default()
        };
        cfg.vad.hangover_ms = hangover_ms;
        Pipeline::start(
            open,
            model,
            TranscribeOptions::default(),
            audio_ctx_margin,
            cfg,
        )
        .unwrap()
    }

    /// Delivers `audio` in 20 ms pieces at real time, then ends like a file.
    struct Paced {
        audio: Vec<f32>,
        pos: usize,
        next: Option<Instant>,
    }

    impl AudioSource for Paced {
        fn read(
            &mut self,
            out: &mut Vec<f32>,
            _timeout: Duration,
        ) -> Result<bool, hark_audio::AudioError> {
            if self.pos >= self.audio.len() {
                return Ok(false);
            }
            let next = *self.next.get_or_insert_with(Instant::now);
            let now = Instant::now();
            if next > now {
                std::thread::sleep(next - now);
            }
            self.next = Some(next + Duration::from_millis(20));
            let end = (self.pos + 320).min(self.audio.len());
            out.extend_from_slice(&self.audio[self.pos..end]);
            self.pos = end;
            Ok(true)
        }
        fn overruns(&self) -> u64 {
            0
        }
    }

    /// A model that takes `cost` per decode and answers with the audio length.
    struct Fake {
        cost: Duration,
        /// (final options?, audio length) of every decode.
        calls: Arc<std::sync::Mutex<Vec<(bool, usize)>>>,
    }

    impl Transcriber for Fake {
        fn text(&self, audio: &[f32], opts: &TranscribeOptions) -> anyhow::Result<Option<String>> {
            std::thread::sleep(self.cost);
            // Every live decode is capped by the audio's length.
            if opts.max_new_tokens != Some(live_token_cap(audio.len())) {
                anyhow::bail!("uncapped live decode: {:?}", opts.max_new_tokens);
            }
            let is_final = !opts.without_timestamps;
            if let Ok(mut c) = self.calls.lock() {
                c.push((is_final, audio.len()));
            }
            Ok(Some(format!("n{}", audio.len())))
        }
    }

    #[test]
    fn final_is_decoded_once_speculatively_and_ready_when_the_hangover_ends() {
        // Three 1.2 s "utterances" (a tone) separated by 1.5 s of silence, at real time;
        // every decode costs 250 ms; hangover 600 ms, endpoint 100 ms.
        let calls = Arc::new(std::sync::Mutex::new(Vec::new()));
        let fake = Fake {
            cost: Duration::from_millis(250),
            calls: calls.clone(),
        };
        let p = three_tones_at_real_time(Box::new(fake), 600, None);
        let events = run_to_end(p);
        let finals: Vec<(String, f64)> =
            finals_of(&events).into_iter().map(|f| (f.1, f.4)).collect();
        assert_eq!(finals.len(), 3, "{events:?}");
        let calls = calls.lock().unwrap().clone();
        let final_decodes: Vec<usize> = calls.iter().filter(|c| c.0).map(|c| c.1).collect();
        // One decode with the final options per utterance: the speculative one, reused.
        assert_eq!(final_decodes.len(), 3, "{calls:?}");
        for ((text, latency), len) in finals.iter().zip(&final_decodes) {
            assert_eq!(text, &format!("n{len}"));
            // The final waits for the hangover (latency is measured from the last voiced
            // audio, hangover included) but not for a decode after it: the decode ran
            // during the hangover. (Bounds with slack for a busy machine.)
            assert!(*latency >= 560.0, "{latency} {finals:?}");
            assert!(*latency < 600.0 + 250.0 - 50.0, "{latency} {finals:?}");
        }
        assert!(
            events.iter().any(|e| matches!(e, Event::Partial { .. })),
            "{events:?}"
        );
    }
    #[test]
    fn whisper_audio_ctx_covers_the_utterance_plus_margin_in_blocks_of_32() {
        // 2 s = 200 frames + the padding frame = 101 positions; + 64 = 165 -> 192.
        assert_eq!(whisper_audio_ctx(32000, 64), 192);
        assert_eq!(whisper_audio_ctx(32000, DEFAULT_AUDIO_CTX_MARGIN), 128);
        assert_eq!(whisper_audio_ctx(32000, 0), 128);
        assert_eq!(whisper_audio_ctx(0, 0), 32);
        for n in [1usize, 1000, 16000, 48123, 160_000] {
            let ctx = whisper_audio_ctx(n, 32);
            assert_eq!(ctx % AUDIO_CTX_ROUND, 0);
            assert!(2 * ctx >= n / 160 + 1 + 64, "{n} samples: {ctx}");
        }
        // Never beyond Whisper's 30 s window.
        assert_eq!(whisper_audio_ctx(29 * 16000, 64), 1500);
    }

    /// A model whose partial decodes take `partial_cost` and finals `final_cost`; both
    /// poll the cancellation flag every 5 ms, as Whisper does between layers and steps.
    struct Cancellable {
        partial_cost: Duration,
        final_cost: Duration,
        cancelled: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl Transcriber for Cancellable {
        fn text(&self, audio: &[f32], opts: &TranscribeOptions) -> anyhow::Result<Option<String>> {
            let cost = if opts.without_timestamps {
                self.partial_cost
            } else {
                self.final_cost
            };
            let t = Instant::now();
            while t.elapsed() < cost {
                if opts
                    .cancel
                    .as_ref()
                    .is_some_and(|c| c.load(Ordering::Relaxed))
                {
                    self.cancelled.fetch_add(1, Ordering::Relaxed);
                    return Ok(None);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(Some(format!("n{}", audio.len())))
        }
    }

    #[test]
    fn endpoint_cancels_the_running_partial_and_every_final_is_emitted() {
        // Three 1.2 s "utterances" separated by 1.5 s of silence, at real time. A partial
        // decode costs 3 s (longer than an utterance), so one is always running when the
        // utterance ends; a final costs 100 ms. Hangover 300 ms, endpoint 100 ms.
        let cancelled = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let model = Cancellable {
            partial_cost: Duration::from_secs(3),
            final_cost: Duration::from_millis(100),
            cancelled: cancelled.clone(),
        };
        let p = three_tones_at_real_time(Box::new(model), 300, Some(DEFAULT_AUDIO_CTX_MARGIN));
        let events = run_to_end(p);
        let finals: Vec<(String, f64)> =
            finals_of(&events).into_iter().map(|f| (f.1, f.4)).collect();
        assert_eq!(finals.len(), 3, "{events:?}");
        assert!(
            !events.iter().any(|e| matches!(e, Event::Error(_))),
            "{events:?}"
        );
        // One running partial cancelled per utterance.
        assert!(cancelled.load(Ordering::Relaxed) >= 3, "{events:?}");
        for (text, latency) in &finals {
            assert!(text.starts_with('n'), "{finals:?}");
            // Hangover (300) + nothing else: the final started at the endpoint instead of
            // waiting up to 3 s for the partial. (Generous slack for a busy machine.)
            assert!(*latency < 1000.0, "{latency} {finals:?}");
        }
    }

    /// A model that "hears" one word per burst of non-zero audio (`w1 w2 ...`) and
    /// honours the forced prefix: it must be the start of its words, and only the words
    /// after it are returned. Records (final options?, prefix) of every decode.
    struct Bursts {
        calls: Arc<std::sync::Mutex<Vec<(bool, String)>>>,
    }

    impl Transcriber for Bursts {
        fn text(&self, audio: &[f32], opts: &TranscribeOptions) -> anyhow::Result<Option<String>> {
            std::thread::sleep(Duration::from_millis(60));
            let mut words = Vec::new();
            let mut run = 0usize;
            for (i, x) in audio.iter().enumerate() {
                if *x != 0.0 {
                    run += 1;
                }
                if (*x == 0.0 || i + 1 == audio.len()) && run > 0 {
                    if run >= 1600 {
                        words.push(format!("w{}", words.len() + 1));
                    }
                    run = 0;
                }
            }
            let prefix = opts.prefix.clone().unwrap_or_default();
            if let Ok(mut c) = self.calls.lock() {
                c.push((!opts.without_timestamps, prefix.clone()));
            }
            let forced: Vec<&str> = prefix.split_whitespace().collect();
            anyhow::ensure!(
                words.len() >= forced.len() && words.iter().zip(&forced).all(|(a, b)| a == b),
                "prefix `{prefix}` is not the start of {words:?}"
            );
            Ok(Some(words[forced.len()..].join(" ")))
        }
    }

    #[test]
    fn soft_final_emits_text_before_the_hangover_and_continues_with_the_final_text_as_prefix() {
        // Utterance 0: two 1 s bursts with a 300 ms pause (soft final after 200 ms, the
        // 600 ms hangover does not close it); utterance 1: one burst, 1.5 s later.
        let mut audio = vec![0.0f32; 8000];
        let burst = |n: usize| {
            (0..n)
                .map(|i| 0.3 * (i as f32 * 0.3).sin())
                .collect::<Vec<f32>>()
        };
        audio.extend(burst(16000));
        audio.extend(vec![0.0; 4800]);
        audio.extend(burst(16000));
        audio.extend(vec![0.0; 24000]);
        audio.extend(burst(16000));
        audio.extend(vec![0.0; 24000]);
        let open: SourceFactory = Box::new(move || {
            Ok(Box::new(Paced {
                audio,
                pos: 0,
                next: None,
            }) as Box<dyn AudioSource>)
        });
        let mut cfg = SegmenterConfig {
            endpoint_ms: 100,
            final_pause_ms: Some(200),
            ..Default::default()
        };
        cfg.vad.hangover_ms = 600;
        let calls = Arc::new(std::sync::Mutex::new(Vec::new()));
        let model = Bursts {
            calls: calls.clone(),
        };
        let p = Pipeline::start(
            open,
            Box::new(model),
            TranscribeOptions::default(),
            None,
            cfg,
        )
        .unwrap();
        let events = run_to_end(p);
        assert!(
            !events.iter().any(|e| matches!(e, Event::Error(_))),
            "{events:?}"
        );
        let finals = finals_of(&events);
        let texts: Vec<(u64, &str)> = finals.iter().map(|f| (f.0, f.1.as_str())).collect();
        assert_eq!(texts, [(0, "w1"), (0, "w2"), (1, "w1")], "{events:?}");
        for f in &finals {
            // The pause (200 ms) + a 60 ms decode, never the 600 ms hangover.
            assert!(f.4 >= 190.0 && f.4 < 560.0, "{finals:?}");
        }
        // The second piece starts where the first ends (1.0 + 1.0 s + 100 ms post-roll).
        assert!((finals[1].2 - finals[0].3).abs() < 1e-9, "{finals:?}");
        assert!((finals[0].3 - 1.6).abs() < 0.05, "{finals:?}");
        // Each utterance is closed once, after its last piece.
        let ends: Vec<usize> = events
            .iter()
            .enumerate()
            .filter(|(_, e)| matches!(e, Event::UtteranceEnd { .. }))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(ends.len(), 2, "{events:?}");
        // Final decodes after the first soft final continued its text.
        let calls = calls.lock().unwrap().clone();
        assert!(calls.iter().any(|(f, p)| *f && p == "w1"), "{calls:?}");
        // The transcript: one line per utterance.
        let mut lines = TranscriptLines::default();
        let mut text = String::new();
        for e in events.iter().chain([&Event::Finished]) {
            text.extend(lines.text_for(e));
        }
        assert_eq!(text, "w1 w2\nw1\n");
    }

    #[test]
    fn transcript_lines_join_pieces_of_an_utterance_and_end_the_line_at_its_close() {
        let fin = |id: u64, text: &str| Event::Final {
            id,
            start_s: 0.0,
            end_s: 1.0,
            text: text.into(),
            latency_ms: 1.0,
            rtf: 0.1,
        };
        let mut l = TranscriptLines::default();
        let out: String = [
            fin(0, "Enter 29"),
            fin(0, ""),
            fin(0, "81."),
            fin(0, ", please."),
            Event::UtteranceEnd { id: 0 },
            fin(1, "Erase."),
            fin(2, "Stop"),
            Event::Finished,
        ]
        .iter()
        .filter_map(|e| l.text_for(e))
        .collect();
        assert_eq!(out, "Enter 29 81., please.\nErase.\nStop\n");
        assert_eq!(join_piece("", "a"), "a");
        assert_eq!(join_piece("a b", "c."), "a b c.");
        assert_eq!(join_piece("a b", "?"), "a b?");
    }
}
