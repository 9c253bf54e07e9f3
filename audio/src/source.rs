//! [`AudioSource`]: one interface over a microphone and a file.
//!
//! Both deliver mono f32 at 16 kHz in pieces. A file can be read as fast as
//! possible ([`FileSource::open`], streamed from disk by [`FileReader`]) or replayed at real time
//! ([`FileSource::realtime`]): then a producer thread pushes native-rate
//! interleaved chunks into the same SPSC ring buffer a microphone callback
//! would, and the same [`RingReader`] pops, downmixes and resamples, so
//! streaming tests take exactly the live path.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::capture::{push_counting, ring, Microphone, RingReader};
use crate::decode::{decode_file, TARGET_SAMPLE_RATE};
use crate::error::AudioError;
use crate::reader::FileReader;

/// A source of mono 16 kHz audio.
///
/// Not `Send`: cpal streams must stay on the thread that opened them, so a
/// consumer thread opens its own source (a [`FileSource`] is `Send` anyway).
pub trait AudioSource {
    /// Appends the next samples to `out` (possibly none if nothing arrived within
    /// `timeout`). Returns `false` at the end of the stream.
    fn read(&mut self, out: &mut Vec<f32>, timeout: Duration) -> Result<bool, AudioError>;
    /// Samples dropped so far because the consumer was too slow (0 for files read offline).
    fn overruns(&self) -> u64;
    /// Sample rate of the delivered samples (always 16 kHz).
    fn sample_rate(&self) -> u32 {
        TARGET_SAMPLE_RATE
    }
}

/// A file as an [`AudioSource`].
pub struct FileSource {
    inner: FileInner,
}

enum FileInner {
    /// Streamed from disk in bounded memory ([`FileReader`]), 20 ms per read.
    Offline {
        reader: Box<FileReader>,
        chunk: usize,
    },
    /// Replayed at real time through the live ring-buffer path.
    Realtime {
        reader: Box<RingReader>,
        _feeder: std::thread::JoinHandle<()>,
    },
}

impl std::fmt::Debug for FileSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FileSource")
    }
}

impl FileSource {
    /// Reads `path` as fast as the consumer asks, streaming it from disk (memory
    /// does not grow with the file's length).
    pub fn open(path: &Path) -> Result<Self, AudioError> {
        let reader = FileReader::open(path, TARGET_SAMPLE_RATE)?;
        Ok(Self {
            inner: FileInner::Offline {
                reader: Box::new(reader),
                chunk: TARGET_SAMPLE_RATE as usize / 50, // 20 ms
            },
        })
    }

    /// Replays `path` at `speed` x real time (1.0 = real time) through a ring
    /// buffer, in `chunk_ms` pieces like a device callback would.
    pub fn realtime(path: &Path, speed: f32, chunk_ms: u32) -> Result<Self, AudioError> {
        let d = decode_file(path)?;
        let channels = d.channels;
        let rate = d.sample_rate;
        let frames_per_chunk = ((rate as u64 * chunk_ms.max(1) as u64) / 1000).max(1) as usize;
        // Two seconds of headroom, like a microphone ring.
        let (mut prod, cons, stats) = ring(rate as usize * channels * 2);
        let reader = RingReader::new(cons, stats.clone(), channels, rate)?;
        let speed = if speed > 0.0 { speed } else { 1.0 };
        let feeder = std::thread::spawn(move || {
            let start = Instant::now();
            for (i, chunk) in d.samples.chunks(frames_per_chunk * channels).enumerate() {
                let due = Duration::from_secs_f64(
                    i as f64 * frames_per_chunk as f64 / rate as f64 / speed as f64,
                );
                if let Some(wait) = due.checked_sub(start.elapsed()) {
                    std::thread::sleep(wait);
                }
                push_counting(&mut prod, &stats, chunk);
            }
            stats.finished.store(true, Ordering::Release);
        });
        Ok(Self {
            inner: FileInner::Realtime {
                reader: Box::new(reader),
                _feeder: feeder,
            },
        })
    }
}

impl AudioSource for FileSource {
    fn read(&mut self, out: &mut Vec<f32>, timeout: Duration) -> Result<bool, AudioError> {
        match &mut self.inner {
            FileInner::Offline { reader, chunk } => Ok(reader.read(out, *chunk)? > 0),
            FileInner::Realtime { reader, .. } => reader.read(out, timeout),
        }
    }

    fn overruns(&self) -> u64 {
        match &self.inner {
            FileInner::Offline { .. } => 0,
            FileInner::Realtime { reader, .. } => reader.overruns(),
        }
    }
}

/// A microphone as an [`AudioSource`]. Not `Send` on every platform through cpal's
/// stream, so it is wrapped: create it on the thread that reads it.
pub struct MicSource {
    mic: Microphone,
}

impl std::fmt::Debug for MicSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MicSource").field("mic", &self.mic).finish()
    }
}

impl MicSource {
    /// Opens the default (`None`) or named input device.
    pub fn open(name: Option<&str>) -> Result<Self, AudioError> {
        Ok(Self {
            mic: Microphone::open(name, 2.0)?,
        })
    }

    /// The device opened.
    pub fn info(&self) -> &crate::capture::DeviceInfo {
        &self.mic.info
    }
}

impl AudioSource for MicSource {
    fn read(&mut self, out: &mut Vec<f32>, timeout: Duration) -> Result<bool, AudioError> {
        self.mic.reader().read(out, timeout)
    }

    fn overruns(&self) -> u64 {
        self.mic.overruns()
    }
}
