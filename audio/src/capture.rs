//! Microphone capture with cpal, following cpal's `examples/feedback.rs`.
//!
//! The device callback converts samples to f32 and pushes them into a lock-free
//! SPSC ring buffer (`ringbuf::HeapRb`): it never locks, allocates, logs or
//! blocks. When the buffer is full the samples that do not fit are dropped and
//! counted in an atomic overrun counter, which [`RingReader::overruns`] reports
//! (never silent). Stream errors are counted the same way. The consumer side
//! ([`RingReader`], used from the consumer's own thread) pops, downmixes and
//! resamples to 16 kHz. The same reader serves a file replayed at real time
//! ([`crate::source::FileSource::realtime`]), so tests exercise the live path
//! without a microphone.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{SampleFormat, SizedSample};
use ringbuf::traits::{Consumer, Observer, Producer, Split};
use ringbuf::{HeapCons, HeapProd, HeapRb};

use crate::decode::TARGET_SAMPLE_RATE;
use crate::error::AudioError;
use crate::resample::StreamResampler;

/// An audio input device as `hark devices` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceInfo {
    /// Device name (pass it to [`Microphone::open`]).
    pub name: String,
    /// Whether this is the host's default input device.
    pub is_default: bool,
    /// Native (default config) sample rate in Hz.
    pub sample_rate: u32,
    /// Native channel count.
    pub channels: u16,
    /// Native sample format (`i16`, `f32`, ...).
    pub sample_format: String,
}

/// Lists the input devices of the default host. An empty list is not an error.
pub fn list_input_devices() -> Result<Vec<DeviceInfo>, AudioError> {
    let host = cpal::default_host();
    let default_name = host.default_input_device().and_then(|d| d.name().ok());
    let devices = host.input_devices().map_err(|e| AudioError::Capture {
        op: "enumerate input devices",
        reason: e.to_string(),
    })?;
    let mut out = Vec::new();
    for d in devices {
        let Ok(name) = d.name() else { continue };
        // Devices whose default config cannot be queried cannot be opened either.
        let Ok(cfg) = d.default_input_config() else {
            continue;
        };
        out.push(DeviceInfo {
            is_default: default_name.as_deref() == Some(name.as_str()),
            name,
            sample_rate: cfg.sample_rate().0,
            channels: cfg.channels(),
            sample_format: cfg.sample_format().to_string(),
        });
    }
    Ok(out)
}

fn available_list() -> String {
    match list_input_devices() {
        Ok(v) if !v.is_empty() => v
            .iter()
            .map(|d| d.name.clone())
            .collect::<Vec<_>>()
            .join(", "),
        _ => "(none)".into(),
    }
}

/// Counters shared between a producer (callback) and its [`RingReader`].
#[derive(Debug, Default)]
pub struct RingStats {
    /// Samples dropped because the ring buffer was full.
    pub overrun_samples: AtomicU64,
    /// Stream errors reported by the backend.
    pub stream_errors: AtomicU64,
    /// Set by the producer when no more samples will come.
    pub finished: AtomicBool,
}

/// Creates the SPSC ring buffer of `capacity` samples and its shared counters.
pub fn ring(capacity: usize) -> (HeapProd<f32>, HeapCons<f32>, Arc<RingStats>) {
    let (p, c) = HeapRb::<f32>::new(capacity.max(1)).split();
    (p, c, Arc::new(RingStats::default()))
}

/// Pushes `data` into the ring; counts what does not fit. Lock- and allocation-free.
#[inline]
pub fn push_counting<T: SizedSample + cpal::Sample>(
    prod: &mut HeapProd<f32>,
    stats: &RingStats,
    data: &[T],
) where
    f32: cpal::FromSample<T>,
{
    let pushed = prod.push_iter(data.iter().map(|s| s.to_sample::<f32>()));
    let dropped = data.len() - pushed;
    if dropped > 0 {
        stats
            .overrun_samples
            .fetch_add(dropped as u64, Ordering::Relaxed);
    }
}

/// Consumer side: pops interleaved samples, downmixes to mono, resamples to 16 kHz.
pub struct RingReader {
    cons: HeapCons<f32>,
    stats: Arc<RingStats>,
    channels: usize,
    resampler: StreamResampler,
    interleaved: Vec<f32>,
    mono: Vec<f32>,
    /// Samples of an incomplete frame carried to the next read.
    carry: Vec<f32>,
    done: bool,
}

impl std::fmt::Debug for RingReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingReader")
            .field("channels", &self.channels)
            .field("resampler", &self.resampler)
            .finish()
    }
}

impl RingReader {
    /// A reader of `channels`-channel audio at `rate` Hz.
    pub fn new(
        cons: HeapCons<f32>,
        stats: Arc<RingStats>,
        channels: usize,
        rate: u32,
    ) -> Result<Self, AudioError> {
        Ok(Self {
            cons,
            stats,
            channels: channels.max(1),
            resampler: StreamResampler::new(rate, TARGET_SAMPLE_RATE)?,
            interleaved: vec![0.0; 16384],
            mono: Vec::with_capacity(8192),
            carry: Vec::new(),
            done: false,
        })
    }

    /// Samples dropped so far because the consumer was too slow.
    pub fn overruns(&self) -> u64 {
        self.stats.overrun_samples.load(Ordering::Relaxed)
    }

    /// Stream errors reported by the backend so far.
    pub fn stream_errors(&self) -> u64 {
        self.stats.stream_errors.load(Ordering::Relaxed)
    }

    /// Waits for input (polling every 2 ms, up to `timeout`), then appends the
    /// available audio as mono 16 kHz to `out`. Returns `false` once the producer
    /// has finished and everything (including the resampler tail) was delivered.
    pub fn read(&mut self, out: &mut Vec<f32>, timeout: Duration) -> Result<bool, AudioError> {
        if self.done {
            return Ok(false);
        }
        let start = std::time::Instant::now();
        loop {
            let finished = self.stats.finished.load(Ordering::Acquire);
            if self.cons.occupied_len() > 0 {
                break;
            }
            if finished {
                self.resampler.finish(out)?;
                self.done = true;
                return Ok(true);
            }
            if start.elapsed() >= timeout {
                return Ok(true);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let n = self.cons.pop_slice(&mut self.interleaved);
        self.carry.extend_from_slice(&self.interleaved[..n]);
        let whole = self.carry.len() / self.channels * self.channels;
        self.mono.clear();
        if self.channels == 1 {
            self.mono.extend_from_slice(&self.carry[..whole]);
        } else {
            let scale = 1.0 / self.channels as f32;
            self.mono.extend(
                self.carry[..whole]
                    .chunks_exact(self.channels)
                    .map(|f| f.iter().sum::<f32>() * scale),
            );
        }
        self.carry.drain(..whole);
        self.resampler.push(&self.mono, out)?;
        Ok(true)
    }
}

/// An open microphone stream feeding a [`RingReader`].
pub struct Microphone {
    // Kept alive: dropping it stops capture.
    _stream: cpal::Stream,
    /// The device actually opened.
    pub info: DeviceInfo,
    reader: RingReader,
}

impl std::fmt::Debug for Microphone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Microphone")
            .field("info", &self.info)
            .finish()
    }
}

impl Microphone {
    /// Opens the default input device (`name = None`) or the one named `name`, at
    /// its native rate and format, with a ring buffer of `buffer_secs` seconds.
    pub fn open(name: Option<&str>, buffer_secs: f32) -> Result<Self, AudioError> {
        let wanted = name.unwrap_or("default").to_string();
        let not_found = |reason: String| AudioError::DeviceNotFound {
            wanted: wanted.clone(),
            reason,
            available: available_list(),
        };
        let host = cpal::default_host();
        let device = match name {
            None => host
                .default_input_device()
                .ok_or_else(|| not_found("no default input device".into()))?,
            Some(n) => host
                .input_devices()
                .map_err(|e| not_found(e.to_string()))?
                .find(|d| d.name().map(|x| x == n).unwrap_or(false))
                .ok_or_else(|| not_found("no input device with this name".into()))?,
        };
        let cfg = device
            .default_input_config()
            .map_err(|e| not_found(format!("cannot query its configuration: {e}")))?;
        let info = DeviceInfo {
            name: device.name().unwrap_or_else(|_| wanted.clone()),
            is_default: name.is_none(),
            sample_rate: cfg.sample_rate().0,
            channels: cfg.channels(),
            sample_format: cfg.sample_format().to_string(),
        };
        let capacity = ((info.sample_rate as f32 * info.channels as f32 * buffer_secs.max(0.1))
            as usize)
            .max(4096);
        let (prod, cons, stats) = ring(capacity);
        let config: cpal::StreamConfig = cfg.config();
        let stream = match cfg.sample_format() {
            SampleFormat::F32 => build::<f32>(&device, &config, prod, stats.clone()),
            SampleFormat::I16 => build::<i16>(&device, &config, prod, stats.clone()),
            SampleFormat::I32 => build::<i32>(&device, &config, prod, stats.clone()),
            SampleFormat::U16 => build::<u16>(&device, &config, prod, stats.clone()),
            SampleFormat::U8 => build::<u8>(&device, &config, prod, stats.clone()),
            SampleFormat::I8 => build::<i8>(&device, &config, prod, stats.clone()),
            SampleFormat::F64 => build::<f64>(&device, &config, prod, stats.clone()),
            other => {
                return Err(not_found(format!(
                    "unsupported native sample format {other}"
                )));
            }
        }
        .map_err(|e| not_found(format!("cannot open input stream: {e}")))?;
        stream
            .play()
            .map_err(|e| not_found(format!("cannot start input stream: {e}")))?;
        let reader = RingReader::new(cons, stats, info.channels as usize, info.sample_rate)?;
        Ok(Self {
            _stream: stream,
            info,
            reader,
        })
    }

    /// Samples dropped so far because the consumer was too slow.
    pub fn overruns(&self) -> u64 {
        self.reader.overruns()
    }

    /// The consumer side (mono 16 kHz).
    pub fn reader(&mut self) -> &mut RingReader {
        &mut self.reader
    }
}

fn build<T>(
    device: &cpal::Device,
    config: &cpal::StreamConfig,
    mut prod: HeapProd<f32>,
    stats: Arc<RingStats>,
) -> Result<cpal::Stream, cpal::BuildStreamError>
where
    T: SizedSample + cpal::Sample + Send + 'static,
    f32: cpal::FromSample<T>,
{
    let err_stats = stats.clone();
    device.build_input_stream(
        config,
        move |data: &[T], _: &cpal::InputCallbackInfo| push_counting(&mut prod, &stats, data),
        move |_err| {
            err_stats.stream_errors.fetch_add(1, Ordering::Relaxed);
        },
        None,
    )
}
