//! Voice activity detection: an energy + spectral detector with hysteresis and hangover.
//!
//! Design (our own, no model): the signal (16 kHz mono) is cut into 20 ms frames. For
//! each frame we compute
//! - the energy in dBFS of the frame after a one-pole high-pass at ~130 Hz (DC, mains
//!   hum and rumble do not count; vowels, formants and fricatives do: the "spectral"
//!   part, without an FFT; a steeper 0.97 pre-emphasis was tried and split utterances
//!   at weak vowels), and
//! - an adaptive noise floor: it follows the energy down at once and rises only slowly
//!   (a few dB per second), so it tracks stationary noise but not speech.
//!
//! A frame is "voiced" when its energy is `threshold_db` above the floor and above an
//! absolute minimum. Speech starts after `min_speech_ms` of voiced frames (a click does
//! not open an utterance) and ends after `hangover_ms` without any (short pauses between
//! words do not close it). Events carry sample positions counted from the first sample
//! pushed, so the caller can slice its own buffer (with some pre-roll before the start).

/// Frame length in samples at 16 kHz (20 ms).
pub const FRAME: usize = 320;

/// Tunables of [`Vad`].
#[derive(Debug, Clone, PartialEq)]
pub struct VadConfig {
    /// Sample rate of the input in Hz.
    pub sample_rate: u32,
    /// Energy above the noise floor that counts as voiced (dB).
    pub threshold_db: f32,
    /// Frames quieter than this (dBFS) are never voiced.
    pub min_energy_db: f32,
    /// Voiced time needed to declare speech (ms).
    pub min_speech_ms: u32,
    /// Unvoiced time needed to declare the end of speech (ms).
    pub hangover_ms: u32,
    /// How fast the noise floor may rise (dB per second).
    pub floor_rise_db_per_s: f32,
}

impl Default for VadConfig {
    fn default() -> Self {
        Self {
            sample_rate: 16_000,
            threshold_db: 12.0,
            min_energy_db: -55.0,
            min_speech_ms: 80,
            hangover_ms: 600,
            floor_rise_db_per_s: 3.0,
        }
    }
}

/// A change of speech state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VadEvent {
    /// Speech began at this sample (the first voiced frame of the onset).
    SpeechStart(u64),
    /// Speech ended: this is the sample after the last voiced frame (the hangover that
    /// confirmed the end lies after it).
    SpeechEnd(u64),
}

/// Streaming voice activity detector (see the module docs).
#[derive(Debug, Clone)]
pub struct Vad {
    cfg: VadConfig,
    frame: usize,
    pending: Vec<f32>,
    prev_sample: f32,
    prev_hp: f32,
    /// Samples consumed into whole frames so far.
    pos: u64,
    floor_db: Option<f32>,
    speaking: bool,
    voiced_run: usize,
    unvoiced_run: usize,
    onset_start: u64,
    last_voiced_end: u64,
    last_db: f32,
}

/// Energy in dBFS of a mean square value.
fn db(mean_square: f32) -> f32 {
    10.0 * (mean_square.max(1e-12)).log10()
}

impl Vad {
    /// A detector with `cfg`.
    pub fn new(cfg: VadConfig) -> Self {
        let frame = (cfg.sample_rate as usize / 50).max(1);
        Self {
            cfg,
            frame,
            pending: Vec::new(),
            prev_sample: 0.0,
            prev_hp: 0.0,
            pos: 0,
            floor_db: None,
            speaking: false,
            voiced_run: 0,
            unvoiced_run: 0,
            onset_start: 0,
            last_voiced_end: 0,
            last_db: -120.0,
        }
    }

    /// Whether speech is currently open.
    pub fn is_speaking(&self) -> bool {
        self.speaking
    }

    /// Energy of the last frame (dBFS, high-passed), for a level meter.
    pub fn level_db(&self) -> f32 {
        self.last_db
    }

    /// Time since the last voiced frame (ms), 0 while voiced.
    pub fn unvoiced_ms(&self) -> u32 {
        (self.unvoiced_run * self.frame * 1000 / self.cfg.sample_rate as usize) as u32
    }

    /// Current noise floor estimate (dBFS).
    pub fn noise_floor_db(&self) -> f32 {
        self.floor_db.unwrap_or(-120.0)
    }

    /// Samples consumed into whole frames so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    fn ms_to_frames(&self, ms: u32) -> usize {
        ((ms as usize * self.cfg.sample_rate as usize) / 1000)
            .div_ceil(self.frame)
            .max(1)
    }

    /// Feeds samples; appends the state changes they cause to `events`.
    pub fn push(&mut self, samples: &[f32], events: &mut Vec<VadEvent>) {
        self.pending.extend_from_slice(samples);
        let mut off = 0;
        while self.pending.len() - off >= self.frame {
            let (start, end) = (off, off + self.frame);
            off = end;
            let mut acc = 0.0f32;
            let (mut prev, mut hp) = (self.prev_sample, self.prev_hp);
            for &x in &self.pending[start..end] {
                // One-pole high-pass (~130 Hz at 16 kHz): removes DC, hum and rumble,
                // keeps vowels (a 0.97 pre-emphasis would drop them by ~20 dB).
                hp = x - prev + 0.95 * hp;
                prev = x;
                acc += hp * hp;
            }
            self.prev_sample = prev;
            self.prev_hp = hp;
            let e = db(acc / self.frame as f32);
            self.frame_decision(e, events);
        }
        self.pending.drain(..off);
    }

    fn frame_decision(&mut self, e: f32, events: &mut Vec<VadEvent>) {
        self.last_db = e;
        let frame_s = self.frame as f32 / self.cfg.sample_rate as f32;
        let floor = match self.floor_db {
            None => e,
            Some(f) if e < f => e,
            Some(f) => f + self.cfg.floor_rise_db_per_s * frame_s,
        };
        self.floor_db = Some(floor.max(-100.0));
        let floor = self.floor_db.unwrap_or(-100.0);
        let voiced = e > floor + self.cfg.threshold_db && e > self.cfg.min_energy_db;
        let frame_start = self.pos;
        self.pos += self.frame as u64;
        if voiced {
            if self.voiced_run == 0 {
                self.onset_start = frame_start;
            }
            self.voiced_run += 1;
            self.unvoiced_run = 0;
            self.last_voiced_end = self.pos;
            if !self.speaking && self.voiced_run >= self.ms_to_frames(self.cfg.min_speech_ms) {
                self.speaking = true;
                events.push(VadEvent::SpeechStart(self.onset_start));
            }
        } else {
            self.voiced_run = 0;
            self.unvoiced_run += 1;
            if self.speaking && self.unvoiced_run >= self.ms_to_frames(self.cfg.hangover_ms) {
                self.speaking = false;
                events.push(VadEvent::SpeechEnd(self.last_voiced_end));
            }
        }
    }

    /// Ends the stream: closes open speech at the last voiced frame.
    pub fn finish(&mut self, events: &mut Vec<VadEvent>) {
        if self.speaking {
            self.speaking = false;
            events.push(VadEvent::SpeechEnd(self.last_voiced_end));
        }
        self.voiced_run = 0;
        self.unvoiced_run = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(secs: f32, amp: f32, hz: f32) -> Vec<f32> {
        (0..(secs * 16000.0) as usize)
            .map(|i| amp * (2.0 * std::f32::consts::PI * hz * i as f32 / 16000.0).sin())
            .collect()
    }

    fn noise(secs: f32, amp: f32, seed: &mut u32) -> Vec<f32> {
        (0..(secs * 16000.0) as usize)
            .map(|_| {
                *seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                amp * ((*seed >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0)
            })
            .collect()
    }

    fn run(signal: &[f32], chunk: usize) -> Vec<VadEvent> {
        let mut v = Vad::new(VadConfig::default());
        let mut ev = Vec::new();
        for c in signal.chunks(chunk) {
            v.push(c, &mut ev);
        }
        v.finish(&mut ev);
        ev
    }

    #[test]
    fn vad_finds_two_bursts_in_noise_with_sample_positions() {
        let mut seed = 1;
        let mut s = noise(1.0, 0.003, &mut seed);
        let b1 = s.len();
        s.extend(
            tone(1.0, 0.3, 1000.0)
                .iter()
                .zip(noise(1.0, 0.003, &mut seed))
                .map(|(a, b)| a + b),
        );
        let e1 = s.len();
        s.extend(noise(1.0, 0.003, &mut seed));
        let b2 = s.len();
        s.extend(
            tone(0.5, 0.2, 700.0)
                .iter()
                .zip(noise(0.5, 0.003, &mut seed))
                .map(|(a, b)| a + b),
        );
        let e2 = s.len();
        s.extend(noise(1.0, 0.003, &mut seed));
        let ev = run(&s, 333);
        assert_eq!(ev.len(), 4, "{ev:?}");
        let near = |a: u64, b: usize| (a as i64 - b as i64).abs() <= FRAME as i64;
        assert!(
            matches!(ev[0], VadEvent::SpeechStart(p) if near(p, b1)),
            "{ev:?}"
        );
        assert!(
            matches!(ev[1], VadEvent::SpeechEnd(p) if near(p, e1)),
            "{ev:?}"
        );
        assert!(
            matches!(ev[2], VadEvent::SpeechStart(p) if near(p, b2)),
            "{ev:?}"
        );
        assert!(
            matches!(ev[3], VadEvent::SpeechEnd(p) if near(p, e2)),
            "{ev:?}"
        );
    }

    #[test]
    fn vad_hangover_bridges_short_pauses_but_not_long_ones() {
        let mut s = vec![0.0; 8000];
        s.extend(tone(0.5, 0.2, 500.0));
        s.extend(vec![0.0; 3200]); // 200 ms pause: bridged
        s.extend(tone(0.5, 0.2, 500.0));
        s.extend(vec![0.0; 16000]); // 1 s pause: ends speech
        s.extend(tone(0.5, 0.2, 500.0));
        let ev = run(&s, 160);
        let starts = ev
            .iter()
            .filter(|e| matches!(e, VadEvent::SpeechStart(_)))
            .count();
        let ends = ev
            .iter()
            .filter(|e| matches!(e, VadEvent::SpeechEnd(_)))
            .count();
        assert_eq!((starts, ends), (2, 2), "{ev:?}");
    }

    #[test]
    fn vad_ignores_clicks_and_stationary_hum() {
        let mut s = tone(2.0, 0.05, 50.0); // loud 50 Hz hum, present from the start
        s[16000] += 0.9; // a single click
        let ev = run(&s, 480);
        assert!(ev.is_empty(), "{ev:?}");
    }

    #[test]
    fn vad_events_do_not_depend_on_chunking() {
        let mut seed = 7;
        let mut s = noise(0.7, 0.002, &mut seed);
        s.extend(tone(0.8, 0.25, 300.0));
        s.extend(noise(0.9, 0.002, &mut seed));
        assert_eq!(run(&s, 1), run(&s, 4096));
    }

    #[test]
    fn vad_finish_closes_open_speech() {
        let mut s = vec![0.0; 3840];
        s.extend(tone(0.5, 0.2, 400.0));
        let ev = run(&s, 1000);
        assert_eq!(ev.len(), 2, "{ev:?}");
        assert!(matches!(ev[1], VadEvent::SpeechEnd(p) if p as usize == s.len()));
    }
}
