//! Family-independent streaming policy for encoder-decoder models (Whisper & co.).
//!
//! Encoder-decoder models see a whole window at once, so hark streams them by
//! re-decoding: a voice activity detector ([`hark_audio::vad`]) cuts the input into
//! utterances ([`Segmenter`]); while an utterance is open it is re-decoded at a steady
//! cadence and the words two successive hypotheses agree on are committed
//! ([`LocalAgreement`], after Macháček et al., "Turning Whisper into Real-Time
//! Transcription System", 2023, `whisper_online.py` `HypothesisBuffer`); at the end of
//! the utterance it is decoded once more for the final text.
//!
//! End of speech is two-staged so that the final decode does not wait for the VAD
//! hangover: after `endpoint_ms` of silence the segmenter asks for the final decode
//! speculatively ([`Segment::Endpoint`], with exactly the audio the final will have);
//! when the hangover confirms the end, [`Segment::Final`] carries the same `id`,
//! `speech_end` and audio, so the recogniser can commit the text it already has. If
//! speech resumes first, [`Segment::Resumed`] says the speculative result is stale.
//!
//! "The text is final" is decoupled from "the utterance is closed": after a shorter
//! pause of `final_pause_ms` ([`Segment::SoftFinal`]) the text up to that endpoint is
//! final and emitted, while the utterance stays open until the hangover. If speech
//! resumes, the recogniser keeps decoding the *whole* utterance audio with the text
//! already final forced as the decoder prefix and emits only the words after it, so the
//! finals of one utterance read as one decode of all of it (a short hangover instead
//! cuts the audio, and Whisper transcribes the fragments on their own, badly), and the
//! final latency is the short pause plus the decode, not the hangover.
//!
//! An utterance longer than
//! `max_utterance_s` is cut at its quietest 100 ms in the last seconds (a pause between
//! words, not the middle of one) and the remainder opens the next utterance, so no
//! audio is dropped.

use hark_audio::vad::{Vad, VadConfig, VadEvent};

/// Word-level LocalAgreement-2: commits the longest common prefix of two successive
/// hypotheses of the same utterance.
#[derive(Debug, Clone, Default)]
pub struct LocalAgreement {
    committed: Vec<String>,
    prev: Vec<String>,
}

/// Word comparison key: case and surrounding punctuation do not matter.
fn key(w: &str) -> String {
    w.trim_matches(|c: char| !c.is_alphanumeric())
        .to_lowercase()
}

impl LocalAgreement {
    /// A fresh agreement for a new utterance.
    pub fn new() -> Self {
        Self::default()
    }

    /// Words committed so far (never retracted within the utterance).
    pub fn committed(&self) -> &[String] {
        &self.committed
    }

    /// Feeds the next full hypothesis of the utterance; returns the words it newly
    /// commits. The uncommitted tail is [`LocalAgreement::tentative`].
    pub fn update(&mut self, hypothesis: &str) -> Vec<String> {
        let cur: Vec<String> = hypothesis.split_whitespace().map(str::to_string).collect();
        let mut n = 0;
        while n < cur.len() && n < self.prev.len() && key(&cur[n]) == key(&self.prev[n]) {
            n += 1;
        }
        // Committed words stay committed even if this hypothesis drops them.
        let mut newly = Vec::new();
        if n > self.committed.len()
            && cur[..self.committed.len()]
                .iter()
                .zip(&self.committed)
                .all(|(a, b)| key(a) == key(b))
        {
            newly = cur[self.committed.len()..n].to_vec();
            self.committed.extend(newly.iter().cloned());
        }
        self.prev = cur;
        newly
    }

    /// The words of the last hypothesis after the committed ones.
    pub fn tentative(&self) -> Vec<String> {
        let c = self.committed.len();
        let aligned = self.prev.len() >= c
            && self.prev[..c]
                .iter()
                .zip(&self.committed)
                .all(|(a, b)| key(a) == key(b));
        if aligned {
            self.prev[c..].to_vec()
        } else {
            Vec::new()
        }
    }
}

/// Tunables of [`Segmenter`].
#[derive(Debug, Clone)]
pub struct SegmenterConfig {
    /// The voice activity detector's settings.
    pub vad: VadConfig,
    /// Audio kept before the detected onset (ms), so the first phoneme is not clipped.
    pub pre_roll_ms: u32,
    /// Audio kept after the detected end (ms).
    pub post_roll_ms: u32,
    /// Silence after the last voiced frame at which the final decode is requested
    /// speculatively ([`Segment::Endpoint`]); raised to `post_roll_ms` if below it,
    /// so the speculative audio equals the final audio.
    pub endpoint_ms: u32,
    /// Silence after the last voiced frame at which the text decoded at the endpoint
    /// becomes final ([`Segment::SoftFinal`]) while the utterance stays open; `None` =
    /// text is final only when the utterance closes. Raised to the endpoint wait if
    /// below it. Only for models that can continue a decode from a forced prefix.
    pub final_pause_ms: Option<u32>,
    /// Soft finals wait until the utterance holds this much audio (ms, pre-roll and
    /// post-roll included): a short opening fragment decoded on its own is where a
    /// decode errs most (AN4's spelled "RUBOUT" alone comes out as "Rub out", with the
    /// letters that follow as "Robot"), so its text stays open until more speech or the
    /// hangover gives it context.
    pub final_min_ms: u32,
    /// Re-decode cadence while an utterance is open (ms of new audio).
    pub partial_every_ms: u32,
    /// Longest utterance (s); longer ones are cut at a pause.
    pub max_utterance_s: f32,
    /// How far back from the maximum a cut point is searched (s).
    pub cut_search_s: f32,
}

impl Default for SegmenterConfig {
    fn default() -> Self {
        Self {
            vad: VadConfig::default(),
            pre_roll_ms: 300,
            post_roll_ms: 100,
            endpoint_ms: 100,
            final_pause_ms: None,
            final_min_ms: 0,
            partial_every_ms: 400,
            max_utterance_s: 25.0,
            cut_search_s: 3.0,
        }
    }
}

/// What the segmenter asks of the recogniser.
#[derive(Debug, Clone, PartialEq)]
pub enum Segment {
    /// Speech began; utterance `id` is open.
    Start {
        /// Utterance number (from 0).
        id: u64,
        /// Stream position (samples) of its first sample: the audio of every later
        /// segment of this utterance starts here.
        at: u64,
    },
    /// Re-decode utterance `id`: here is all its audio so far.
    Partial {
        /// Utterance number.
        id: u64,
        /// 16 kHz mono samples from the utterance start.
        audio: Vec<f32>,
    },
    /// Speech has paused for `endpoint_ms`: utterance `id` probably ends here. Decode
    /// it now; a [`Segment::Final`] with the same `id`, `speech_end` and audio confirms
    /// it after the hangover, a [`Segment::Resumed`] discards it.
    Endpoint {
        /// Utterance number.
        id: u64,
        /// Its 16 kHz mono samples (up to `speech_end` + post-roll).
        audio: Vec<f32>,
        /// Stream position (samples) of the end of the last voiced frame.
        speech_end: u64,
    },
    /// Speech has paused for `final_pause_ms`: the text of utterance `id` decoded at
    /// the last [`Segment::Endpoint`] (same `speech_end` and audio) is final, while the
    /// utterance stays open. Later decodes of this utterance continue after that text
    /// (a forced decoder prefix); no [`Segment::Resumed`] follows for this endpoint, and
    /// a [`Segment::Final`] with the same `speech_end` adds no audio.
    SoftFinal {
        /// Utterance number.
        id: u64,
        /// Its 16 kHz mono samples (up to `speech_end` + post-roll): the endpoint's.
        audio: Vec<f32>,
        /// Stream position (samples) of the end of the last voiced frame.
        speech_end: u64,
    },
    /// Speech resumed after a [`Segment::Endpoint`] of utterance `id`: that
    /// speculative decode is stale.
    Resumed {
        /// Utterance number.
        id: u64,
    },
    /// Utterance `id` is complete: decode it for the final text.
    Final {
        /// Utterance number.
        id: u64,
        /// Its 16 kHz mono samples.
        audio: Vec<f32>,
        /// Stream position (samples) where speech ended (VAD end), for latency.
        speech_end: u64,
        /// Whether it was cut at the maximum length (speech goes on).
        cut: bool,
    },
}

/// Cuts a 16 kHz stream into utterances (see the module docs).
#[derive(Debug)]
pub struct Segmenter {
    cfg: SegmenterConfig,
    vad: Vad,
    events: Vec<VadEvent>,
    /// Audio kept: from `buf_start` (stream position) on.
    buf: Vec<f32>,
    buf_start: u64,
    /// Open utterance: its id and start position.
    open: Option<(u64, u64)>,
    /// End of speech seen; waiting for the post-roll audio.
    closing: Option<u64>,
    next_id: u64,
    last_partial_len: u64,
    /// `speech_end` of the last [`Segment::Endpoint`] of the open utterance.
    endpoint_sent: Option<u64>,
    /// `speech_end` of the last [`Segment::SoftFinal`] of the open utterance.
    soft_sent: Option<u64>,
    /// End of the last closed utterance: the next one's pre-roll starts no earlier.
    last_close: u64,
}

impl Segmenter {
    /// A segmenter with `cfg`.
    pub fn new(cfg: SegmenterConfig) -> Self {
        Self {
            vad: Vad::new(cfg.vad.clone()),
            cfg,
            events: Vec::new(),
            buf: Vec::new(),
            buf_start: 0,
            open: None,
            closing: None,
            next_id: 0,
            last_partial_len: 0,
            endpoint_sent: None,
            soft_sent: None,
            last_close: 0,
        }
    }

    /// The detector (level, state).
    pub fn vad(&self) -> &Vad {
        &self.vad
    }

    /// Whether an utterance is open.
    pub fn in_utterance(&self) -> bool {
        self.open.is_some()
    }

    /// Stream position (samples pushed so far).
    pub fn position(&self) -> u64 {
        self.buf_start + self.buf.len() as u64
    }

    fn ms(&self, ms: u32) -> u64 {
        ms as u64 * self.cfg.vad.sample_rate as u64 / 1000
    }

    fn slice(&self, from: u64, to: u64) -> Vec<f32> {
        let a = from.saturating_sub(self.buf_start) as usize;
        let b = (to.saturating_sub(self.buf_start) as usize).min(self.buf.len());
        self.buf[a.min(b)..b].to_vec()
    }

    fn close(&mut self, end: u64, speech_end: u64, cut: bool, out: &mut Vec<Segment>) {
        if let Some((id, start)) = self.open.take() {
            let audio = self.slice(start, end);
            self.last_close = end;
            out.push(Segment::Final {
                id,
                audio,
                speech_end,
                cut,
            });
        }
        self.closing = None;
        self.endpoint_sent = None;
        self.soft_sent = None;
        self.trim();
    }

    /// Drops audio no longer needed (keeps the pre-roll).
    fn trim(&mut self) {
        let keep_from = match self.open {
            Some((_, start)) => start,
            // The onset is confirmed up to `min_speech_ms` (+ a chunk) after it began:
            // keep a second more than the pre-roll.
            None => self
                .position()
                .saturating_sub(self.ms(self.cfg.pre_roll_ms + 1000)),
        };
        let n = keep_from.saturating_sub(self.buf_start) as usize;
        if n > 0 {
            self.buf.drain(..n.min(self.buf.len()));
            self.buf_start += n as u64;
        }
    }

    /// Quietest 100 ms window start in [from, to) (stream positions).
    fn quietest(&self, from: u64, to: u64) -> u64 {
        let w = self.ms(100) as usize;
        let step = w / 4;
        let a = from.saturating_sub(self.buf_start) as usize;
        let b = (to.saturating_sub(self.buf_start) as usize).min(self.buf.len());
        let mut best = (f32::INFINITY, b);
        let mut i = a;
        while i + w <= b {
            let e: f32 = self.buf[i..i + w].iter().map(|x| x * x).sum();
            if e < best.0 {
                best = (e, i + w / 2);
            }
            i += step.max(1);
        }
        self.buf_start + best.1 as u64
    }

    /// Feeds samples; appends requests for the recogniser to `out`.
    pub fn push(&mut self, samples: &[f32], out: &mut Vec<Segment>) {
        self.buf.extend_from_slice(samples);
        self.events.clear();
        self.vad.push(samples, &mut self.events);
        let events = std::mem::take(&mut self.events);
        for ev in &events {
            match *ev {
                VadEvent::SpeechStart(p) => {
                    if self.closing.take().is_some() {
                        // Speech resumed within the post-roll: same utterance.
                        continue;
                    }
                    if self.open.is_none() {
                        let start = p
                            .saturating_sub(self.ms(self.cfg.pre_roll_ms))
                            .max(self.buf_start)
                            .max(self.last_close.min(p));
                        let id = self.next_id;
                        self.next_id += 1;
                        self.open = Some((id, start));
                        self.last_partial_len = 0;
                        out.push(Segment::Start { id, at: start });
                    }
                }
                VadEvent::SpeechEnd(p) => {
                    if self.open.is_some() {
                        self.closing = Some(p);
                    }
                }
            }
        }
        self.events = events;
        let pos = self.position();
        if let Some(end) = self.closing {
            let stop = end + self.ms(self.cfg.post_roll_ms);
            if pos >= stop {
                self.close(stop, end, false, out);
            }
        }
        if let Some((id, start)) = self.open {
            let len = pos - start;
            let max = (self.cfg.max_utterance_s * self.cfg.vad.sample_rate as f32) as u64;
            if len >= max {
                let search = (self.cfg.cut_search_s * self.cfg.vad.sample_rate as f32) as u64;
                // Never before the end of audio whose text is already final.
                let committed = self
                    .soft_sent
                    .map_or(start, |e| e + self.ms(self.cfg.post_roll_ms));
                let from = (start + max.saturating_sub(search)).max(committed);
                let cut = self.quietest(from.min(start + max), start + max);
                self.close(cut, cut, true, out);
                // The rest continues as a new utterance.
                let id = self.next_id;
                self.next_id += 1;
                self.open = Some((id, cut));
                self.last_partial_len = 0;
                out.push(Segment::Start { id, at: cut });
            } else if self.closing.is_none() && self.vad.is_speaking() {
                self.endpoint(id, start, pos, out);
            }
        }
        if let Some((id, start)) = self.open {
            let len = pos - start;
            if self.closing.is_none()
                && self.endpoint_sent.is_none()
                // In a pause the utterance may be ending: a re-decode now would only
                // delay the (speculative) final decode that follows.
                && self.vad.unvoiced_ms() < self.cfg.endpoint_ms.clamp(20, 100)
                && len >= self.last_partial_len + self.ms(self.cfg.partial_every_ms)
            {
                self.last_partial_len = len;
                out.push(Segment::Partial {
                    id,
                    audio: self.slice(start, pos),
                });
            }
        }
        if self.open.is_none() {
            self.trim();
        }
    }

    /// Speculative end of speech: [`Segment::Endpoint`] once per pause of at least
    /// `endpoint_ms`, [`Segment::Resumed`] when voice returns after one.
    fn endpoint(&mut self, id: u64, start: u64, pos: u64, out: &mut Vec<Segment>) {
        let silent = self.vad.unvoiced_ms();
        if silent == 0 {
            // A committed endpoint is not stale: its text is final.
            if let Some(e) = self.endpoint_sent.take() {
                if self.soft_sent != Some(e) {
                    out.push(Segment::Resumed { id });
                }
            }
            return;
        }
        let post = self.ms(self.cfg.post_roll_ms);
        let wait = self.cfg.endpoint_ms.max(self.cfg.post_roll_ms);
        // The end of the last voiced frame (the VAD counts whole 20 ms frames).
        let speech_end = self
            .vad
            .position()
            .saturating_sub(self.ms(silent))
            .max(start);
        if silent >= wait && pos >= speech_end + post && self.endpoint_sent != Some(speech_end) {
            if let Some(e) = self.endpoint_sent {
                if self.soft_sent != Some(e) {
                    out.push(Segment::Resumed { id });
                }
            }
            self.endpoint_sent = Some(speech_end);
            out.push(Segment::Endpoint {
                id,
                audio: self.slice(start, speech_end + post),
                speech_end,
            });
        }
        if let Some(pause) = self.cfg.final_pause_ms {
            let long_enough = speech_end + post >= start + self.ms(self.cfg.final_min_ms);
            if silent >= pause.max(wait)
                && long_enough
                && self.endpoint_sent == Some(speech_end)
                && self.soft_sent != Some(speech_end)
            {
                self.soft_sent = Some(speech_end);
                out.push(Segment::SoftFinal {
                    id,
                    audio: self.slice(start, speech_end + post),
                    speech_end,
                });
            }
        }
    }

    /// Ends the stream (end of file, quit, pause): closes the open utterance. The
    /// segmenter can be fed again afterwards (positions go on).
    pub fn finish(&mut self, out: &mut Vec<Segment>) {
        let mut ev = Vec::new();
        self.vad.finish(&mut ev);
        let pos = self.position();
        let end = self.closing.or(ev.iter().find_map(|e| match e {
            VadEvent::SpeechEnd(p) => Some(*p),
            _ => None,
        }));
        if self.open.is_some() {
            let speech_end = end.unwrap_or(pos).min(pos);
            let stop = pos.min(speech_end + self.ms(self.cfg.post_roll_ms));
            self.close(stop, speech_end, false, out);
        }
        self.closing = None;
        self.trim();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_agreement_commits_common_prefix_of_two_hypotheses() {
        let mut la = LocalAgreement::new();
        assert!(la.update("the cat").is_empty());
        assert_eq!(la.update("the cat sat on"), vec!["the", "cat"]);
        assert_eq!(la.tentative(), vec!["sat", "on"]);
        assert_eq!(la.update("the cat sat in the"), vec!["sat"]);
        assert_eq!(la.update("The cat, sat in the hat."), vec!["in", "the"]);
        assert_eq!(la.tentative(), vec!["hat."]);
    }

    #[test]
    fn local_agreement_never_retracts_committed_words() {
        let mut la = LocalAgreement::new();
        la.update("one two three");
        la.update("one two four");
        assert_eq!(la.committed(), ["one", "two"]);
        // A hypothesis that disagrees with the committed prefix commits nothing.
        assert!(la.update("won too four").is_empty());
        assert!(la.update("won too four").is_empty());
        assert_eq!(la.committed(), ["one", "two"]);
        assert!(la.tentative().is_empty());
    }

    fn tone(n: usize, amp: f32) -> Vec<f32> {
        (0..n).map(|i| amp * (i as f32 * 0.3).sin()).collect()
    }

    fn run(sig: &[f32], chunk: usize, cfg: SegmenterConfig) -> Vec<Segment> {
        let mut s = Segmenter::new(cfg);
        let mut out = Vec::new();
        for c in sig.chunks(chunk) {
            s.push(c, &mut out);
        }
        s.finish(&mut out);
        out
    }

    #[test]
    fn segmenter_emits_partials_then_final_per_utterance_with_pre_roll() {
        let mut sig = vec![0.0; 16000];
        sig.extend(tone(32000, 0.3)); // 2 s "speech" at 1.0..3.0 s
        sig.extend(vec![0.0; 16000]);
        sig.extend(tone(16000, 0.3)); // 1 s at 4.0..5.0 s
        sig.extend(vec![0.0; 16000]);
        let out = run(&sig, 320, SegmenterConfig::default());
        let finals: Vec<_> = out
            .iter()
            .filter_map(|s| match s {
                Segment::Final {
                    id,
                    audio,
                    speech_end,
                    cut,
                } => Some((*id, audio.len(), *speech_end, *cut)),
                _ => None,
            })
            .collect();
        assert_eq!(finals.len(), 2, "{finals:?}");
        // 300 ms pre-roll + 2 s + 100 ms post-roll.
        assert_eq!(finals[0].0, 0);
        assert!((finals[0].1 as i64 - 38400).abs() <= 640, "{finals:?}");
        assert!((finals[0].2 as i64 - 48000).abs() <= 320, "{finals:?}");
        assert!((finals[1].1 as i64 - 22400).abs() <= 640, "{finals:?}");
        let partials = out
            .iter()
            .filter(|s| matches!(s, Segment::Partial { id: 0, .. }))
            .count();
        // 2 s at a 400 ms cadence: about 5 partials.
        assert!((4..=7).contains(&partials), "{partials}");
    }

    #[test]
    fn segmenter_cuts_long_utterances_at_a_pause_without_losing_audio() {
        let mut sig = vec![0.0; 8000];
        // 8 s of "speech" with a 150 ms dip at 5.5 s (inside the 3 s search range).
        let mut speech = tone(16000 * 8, 0.3);
        for x in &mut speech[88000..90400] {
            *x *= 0.01;
        }
        sig.extend(speech);
        sig.extend(vec![0.0; 16000]);
        let cfg = SegmenterConfig {
            max_utterance_s: 6.0,
            ..Default::default()
        };
        let out = run(&sig, 512, cfg);
        let finals: Vec<_> = out
            .iter()
            .filter_map(|s| match s {
                Segment::Final { audio, cut, .. } => Some((audio.len(), *cut)),
                _ => None,
            })
            .collect();
        assert_eq!(finals.len(), 2, "{finals:?}");
        assert!(finals[0].1 && !finals[1].1);
        // The cut lies in the dip: 0.3 s pre-roll + 5.5..5.65 s.
        let cut_at = finals[0].0 as i64 - 4800;
        let starts: Vec<_> = out
            .iter()
            .map(|s| match s {
                Segment::Start { id, .. } => format!("S{id}"),
                Segment::Partial { id, audio } => format!("P{id}:{}", audio.len()),
                Segment::Endpoint { id, audio, .. } => format!("E{id}:{}", audio.len()),
                Segment::Resumed { id } => format!("R{id}"),
                Segment::SoftFinal { id, audio, .. } => format!("SF{id}:{}", audio.len()),
                Segment::Final {
                    id,
                    audio,
                    speech_end,
                    cut,
                } => format!("F{id}:{}:{speech_end}:{cut}", audio.len()),
            })
            .collect();
        assert!((88000..=90400).contains(&cut_at), "{cut_at} {starts:?}");
        // Nothing lost: both parts together cover pre-roll + speech + post-roll.
        assert!((finals[0].0 + finals[1].0) as i64 >= 4800 + 128000 + 1600 - 640);
    }

    #[test]
    fn endpoint_comes_before_the_hangover_with_the_final_audio_and_resumed_discards_it() {
        // 1 s speech, 300 ms pause (an endpoint, then speech resumes), 1 s speech, then
        // silence: the second endpoint is confirmed by the final (hangover 600 ms).
        let mut sig = vec![0.0; 16000];
        sig.extend(tone(16000, 0.3));
        sig.extend(vec![0.0; 4800]);
        sig.extend(tone(16000, 0.3));
        sig.extend(vec![0.0; 24000]);
        let mut s = Segmenter::new(SegmenterConfig::default());
        let mut out = Vec::new();
        let mut at = Vec::new();
        for c in sig.chunks(320) {
            let before = out.len();
            s.push(c, &mut out);
            for _ in before..out.len() {
                at.push(s.position());
            }
        }
        s.finish(&mut out);
        let kinds: Vec<(usize, &Segment)> = out
            .iter()
            .enumerate()
            .filter(|(_, s)| !matches!(s, Segment::Partial { .. }))
            .collect();
        let names: Vec<String> = kinds
            .iter()
            .map(|(_, s)| match s {
                Segment::Start { .. } => "S".to_string(),
                Segment::Endpoint { .. } => "E".into(),
                Segment::Resumed { .. } => "R".into(),
                Segment::Final { .. } => "F".into(),
                Segment::SoftFinal { .. } | Segment::Partial { .. } => unreachable!(),
            })
            .collect();
        assert_eq!(names, ["S", "E", "R", "E", "F"], "{names:?}");
        let (
            ie,
            Segment::Endpoint {
                audio: ea,
                speech_end: es,
                id: eid,
            },
        ) = kinds[3]
        else {
            panic!()
        };
        let (
            i_f,
            Segment::Final {
                audio: fa,
                speech_end: fs,
                id: fid,
                cut,
            },
        ) = kinds[4]
        else {
            panic!()
        };
        assert_eq!(
            (eid, es, ea),
            (fid, fs, fa),
            "the final has the endpoint's audio"
        );
        assert!(!cut);
        // Speech ends at 3.3 s: the endpoint is asked ~100 ms later, the final after
        // the 600 ms hangover.
        assert!((*es as i64 - 52800).abs() <= 640, "{es}");
        assert!(at[ie] as i64 - (*es as i64) <= 1600 + 320, "{}", at[ie]);
        assert!(at[i_f] as i64 - (*es as i64) >= 9600, "{}", at[i_f]);
        // Nothing of the first pause's endpoint is final: one utterance.
        assert_eq!(
            out.iter()
                .filter(|s| matches!(s, Segment::Final { .. }))
                .count(),
            1
        );
    }

    #[test]
    fn next_utterance_pre_roll_does_not_overlap_the_previous_one() {
        // Two bursts 250 ms apart with a 200 ms hangover: two utterances whose audio
        // does not overlap (the second pre-roll stops at the first one's end).
        let mut sig = vec![0.0; 16000];
        sig.extend(tone(16000, 0.3));
        sig.extend(vec![0.0; 4000]);
        sig.extend(tone(16000, 0.3));
        sig.extend(vec![0.0; 16000]);
        let mut cfg = SegmenterConfig::default();
        cfg.vad.hangover_ms = 200;
        let out = run(&sig, 320, cfg);
        let lens: Vec<usize> = out
            .iter()
            .filter_map(|s| match s {
                Segment::Final { audio, .. } => Some(audio.len()),
                _ => None,
            })
            .collect();
        assert_eq!(lens.len(), 2, "{lens:?}");
        // 300 ms pre-roll + 1 s + 100 ms post-roll, then only the 150 ms of the gap
        // after it (not a full 300 ms pre-roll) + 1 s + 100 ms.
        assert!((lens[0] as i64 - 22400).abs() <= 640, "{lens:?}");
        assert!((lens[1] as i64 - 20000).abs() <= 640, "{lens:?}");
    }

    /// Non-partial segments of `sig` fed in 20 ms chunks, with the stream position at
    /// which each was emitted.
    fn events_at(sig: &[f32], cfg: SegmenterConfig) -> Vec<(u64, Segment)> {
        let mut s = Segmenter::new(cfg);
        let mut out = Vec::new();
        let mut at = Vec::new();
        for c in sig.chunks(320) {
            let before = out.len();
            s.push(c, &mut out);
            for e in out.drain(before..) {
                at.push((s.position(), e));
            }
        }
        s.finish(&mut out);
        at.extend(out.into_iter().map(|e| (u64::MAX, e)));
        at.retain(|(_, e)| !matches!(e, Segment::Partial { .. }));
        at
    }

    fn name(s: &Segment) -> &'static str {
        match s {
            Segment::Start { .. } => "S",
            Segment::Partial { .. } => "P",
            Segment::Endpoint { .. } => "E",
            Segment::SoftFinal { .. } => "SF",
            Segment::Resumed { .. } => "R",
            Segment::Final { .. } => "F",
        }
    }

    fn soft_cfg(pause: u32) -> SegmenterConfig {
        SegmenterConfig {
            final_pause_ms: Some(pause),
            ..Default::default()
        }
    }

    #[test]
    fn soft_final_commits_the_endpoint_after_a_short_pause_and_the_utterance_stays_open() {
        // 1 s speech, 300 ms pause, 1 s speech, 1 s silence; final pause 200 ms,
        // hangover 600 ms: the pause makes the text so far final without closing.
        let mut sig = vec![0.0; 16000];
        sig.extend(tone(16000, 0.3));
        sig.extend(vec![0.0; 4800]);
        sig.extend(tone(16000, 0.3));
        sig.extend(vec![0.0; 16000]);
        let ev = events_at(&sig, soft_cfg(200));
        let names: Vec<&str> = ev.iter().map(|(_, e)| name(e)).collect();
        assert_eq!(names, ["S", "E", "SF", "E", "SF", "F"], "{names:?}");
        // Each soft final carries its endpoint's audio and end of speech, 200 ms after it.
        for (e, sf) in [(1, 2), (3, 4)] {
            let (
                _,
                Segment::Endpoint {
                    id: ei,
                    audio: ea,
                    speech_end: es,
                },
            ) = &ev[e]
            else {
                panic!()
            };
            let (
                at,
                Segment::SoftFinal {
                    id: si,
                    audio: sa,
                    speech_end: ss,
                },
            ) = &ev[sf]
            else {
                panic!()
            };
            assert_eq!((ei, es, ea), (si, ss, sa));
            assert!((3200..=3200 + 640).contains(&(at - ss)), "{at} {ss}");
        }
        // First pause: speech ended at 2.0 s; the utterance (one id) goes on.
        let Segment::SoftFinal { speech_end, .. } = ev[2].1 else {
            panic!()
        };
        assert!((speech_end as i64 - 32000).abs() <= 640, "{speech_end}");
        // The closing final is the last soft final's audio: nothing new to decode.
        let (
            Segment::SoftFinal {
                audio: a,
                speech_end: e,
                ..
            },
            Segment::Final {
                audio: fa,
                speech_end: fe,
                id,
                cut,
            },
        ) = (&ev[4].1, &ev[5].1)
        else {
            panic!()
        };
        assert_eq!((a, e, *id, *cut), (fa, fe, 0, false));
    }

    #[test]
    fn short_opening_fragment_is_not_made_final_before_the_utterance_reaches_final_min() {
        // 400 ms speech, 300 ms pause, 1 s speech, 1 s silence. The first pause comes
        // when the utterance holds 800 ms (300 pre-roll + 400 + 100 post-roll).
        let mut sig = vec![0.0; 16000];
        sig.extend(tone(6400, 0.3));
        sig.extend(vec![0.0; 4800]);
        sig.extend(tone(16000, 0.3));
        sig.extend(vec![0.0; 16000]);
        let names = |min: u32| -> Vec<&str> {
            let cfg = SegmenterConfig {
                final_min_ms: min,
                ..soft_cfg(200)
            };
            events_at(&sig, cfg).iter().map(|(_, e)| name(e)).collect()
        };
        // Below 1.5 s the first pause only resumes; the second (2.1 s in) is final.
        assert_eq!(names(1500), ["S", "E", "R", "E", "SF", "F"]);
        // Without the minimum both pauses make the text so far final.
        assert_eq!(names(0), ["S", "E", "SF", "E", "SF", "F"]);
    }

    #[test]
    fn pause_shorter_than_the_final_pause_only_resumes_and_no_soft_final_without_the_option() {
        // 150 ms pause < 200 ms final pause: the speculative endpoint is discarded.
        let mut sig = vec![0.0; 16000];
        sig.extend(tone(16000, 0.3));
        sig.extend(vec![0.0; 2400]);
        sig.extend(tone(16000, 0.3));
        sig.extend(vec![0.0; 16000]);
        let names: Vec<&str> = events_at(&sig, soft_cfg(200))
            .iter()
            .map(|(_, e)| name(e))
            .collect();
        assert_eq!(names, ["S", "E", "R", "E", "SF", "F"], "{names:?}");
        // `final_pause_ms: None`: text is final only at the close, as before.
        let names: Vec<&str> = events_at(&sig, SegmenterConfig::default())
            .iter()
            .map(|(_, e)| name(e))
            .collect();
        assert_eq!(names, ["S", "E", "R", "E", "F"], "{names:?}");
    }

    #[test]
    fn final_pause_below_the_endpoint_wait_is_raised_to_it() {
        let mut sig = vec![0.0; 16000];
        sig.extend(tone(16000, 0.3));
        sig.extend(vec![0.0; 16000]);
        let ev = events_at(&sig, soft_cfg(20));
        let names: Vec<&str> = ev.iter().map(|(_, e)| name(e)).collect();
        assert_eq!(names, ["S", "E", "SF", "F"], "{names:?}");
        // Endpoint and soft final in the same chunk, after the 100 ms endpoint wait.
        assert_eq!(ev[1].0, ev[2].0);
    }

    #[test]
    fn max_length_cut_never_falls_inside_text_already_final() {
        // Speech from 0.5 s with a digital-silence dip of 150 ms at 3.6 s (the quietest
        // spot) and a quiet 300 ms pause at 4.4 s that makes the text final; the 6 s
        // maximum cuts in [start + 3 s, start + 6 s]: after the committed audio.
        let mut sig = vec![0.0; 8000];
        let mut speech = tone(16000 * 7, 0.3);
        for x in &mut speech[3 * 16000 + 1600..3 * 16000 + 4000] {
            *x = 0.0;
        }
        for x in &mut speech[62400..67200] {
            *x *= 0.003;
        }
        sig.extend(speech);
        sig.extend(vec![0.0; 16000]);
        let cfg = SegmenterConfig {
            max_utterance_s: 6.0,
            ..soft_cfg(200)
        };
        let ev = events_at(&sig, cfg.clone());
        let soft: Vec<u64> = ev
            .iter()
            .filter_map(|(_, e)| match e {
                Segment::SoftFinal { speech_end, .. } => Some(*speech_end),
                _ => None,
            })
            .collect();
        let cuts: Vec<(u64, usize)> = ev
            .iter()
            .filter_map(|(_, e)| match e {
                Segment::Final {
                    speech_end,
                    audio,
                    cut: true,
                    ..
                } => Some((*speech_end, audio.len())),
                _ => None,
            })
            .collect();
        assert_eq!(cuts.len(), 1, "{ev:?}");
        let committed = soft
            .iter()
            .filter(|&&e| e < cuts[0].0)
            .max()
            .copied()
            .expect("a soft final before the cut");
        assert!(
            (committed as i64 - 8000 - 62400).abs() <= 640,
            "{committed}"
        );
        assert!(
            cuts[0].0 >= committed + 1600,
            "cut {} in final text",
            cuts[0].0
        );
        // Without soft finals the dip is where it cuts.
        let ev = events_at(
            &sig,
            SegmenterConfig {
                final_pause_ms: None,
                ..cfg
            },
        );
        let cut = ev
            .iter()
            .find_map(|(_, e)| match e {
                Segment::Final {
                    speech_end,
                    cut: true,
                    ..
                } => Some(*speech_end),
                _ => None,
            })
            .unwrap();
        assert!(
            (8000 + 3 * 16000 + 1600..8000 + 3 * 16000 + 4000).contains(&cut),
            "{cut}"
        );
    }
}
