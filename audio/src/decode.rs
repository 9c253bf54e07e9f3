//! File decoding: WAV through `hound`, everything else (FLAC, MP3, OGG/Vorbis,
//! AAC/MP4, CAF, MKV, ADPCM/PCM WAV variants hound rejects) through `symphonia`.
//!
//! Design: the container is recognised from its first bytes (`RIFF....WAVE` goes to
//! hound), not from the file name, so a mis-named file still decodes. Samples are
//! returned as interleaved f32 in [-1, 1] (integer PCM is divided by 2^(bits-1)),
//! at the file's native rate; [`load_audio`] then downmixes and resamples to 16 kHz.
//! Every failure is an [`AudioError`] naming the file; non-finite samples are
//! rejected here so that no NaN ever reaches the features.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{DecoderOptions, CODEC_TYPE_NULL};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use crate::error::AudioError;
use crate::resample::resample;

/// The sample rate every model in hark consumes.
pub const TARGET_SAMPLE_RATE: u32 = 16_000;

/// A decoded file at its native rate and channel count.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedAudio {
    /// Interleaved samples in [-1, 1]: frame `i`, channel `c` is at `i * channels + c`.
    pub samples: Vec<f32>,
    /// Native sample rate in Hz.
    pub sample_rate: u32,
    /// Number of channels (>= 1).
    pub channels: usize,
}

impl DecodedAudio {
    /// Number of frames (samples per channel).
    pub fn frames(&self) -> usize {
        self.samples.len() / self.channels.max(1)
    }

    /// Duration in seconds.
    pub fn duration_secs(&self) -> f64 {
        self.frames() as f64 / self.sample_rate as f64
    }

    /// Average of the channels (a plain mean, as ffmpeg's `-ac 1` and
    /// faster-whisper's `decode_audio` do).
    pub fn to_mono(&self) -> Vec<f32> {
        downmix(&self.samples, self.channels)
    }
}

/// Averages interleaved `channels`-channel samples into one channel.
pub fn downmix(interleaved: &[f32], channels: usize) -> Vec<f32> {
    if channels <= 1 {
        return interleaved.to_vec();
    }
    let scale = 1.0 / channels as f32;
    interleaved
        .chunks_exact(channels)
        .map(|f| f.iter().sum::<f32>() * scale)
        .collect()
}

/// Decodes any supported file, then downmixes to mono and resamples to 16 kHz.
///
/// This is what every model front end wants: mono f32 in [-1, 1] at
/// [`TARGET_SAMPLE_RATE`].
pub fn load_audio(path: &Path) -> Result<Vec<f32>, AudioError> {
    load_audio_at(path, TARGET_SAMPLE_RATE)
}

/// Like [`load_audio`] but resamples to `sample_rate` Hz.
pub fn load_audio_at(path: &Path, sample_rate: u32) -> Result<Vec<f32>, AudioError> {
    let decoded = decode_file(path)?;
    let mono = decoded.to_mono();
    if decoded.sample_rate == sample_rate {
        return Ok(mono);
    }
    resample(&mono, decoded.sample_rate, sample_rate)
}

/// Decodes a file to interleaved f32 at its native rate.
pub fn decode_file(path: &Path) -> Result<DecodedAudio, AudioError> {
    let mut file = File::open(path).map_err(|io| AudioError::Open {
        path: path.to_path_buf(),
        io,
    })?;
    let mut head = [0u8; 12];
    let n = read_up_to(&mut file, &mut head).map_err(|io| AudioError::Open {
        path: path.to_path_buf(),
        io,
    })?;
    if n == 0 {
        return Err(AudioError::EmptyFile {
            path: path.to_path_buf(),
        });
    }
    let is_wav = n == 12 && &head[0..4] == b"RIFF" && &head[8..12] == b"WAVE";
    let decoded = if is_wav {
        match decode_wav(path)? {
            Some(d) => d,
            // A WAV codec hound does not handle (ADPCM, mu-law...): try symphonia.
            None => decode_symphonia(path)?,
        }
    } else {
        decode_symphonia(path)?
    };
    validate(path, decoded)
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = file.read(&mut buf[filled..])?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

fn validate(path: &Path, d: DecodedAudio) -> Result<DecodedAudio, AudioError> {
    if d.channels == 0 {
        return Err(AudioError::ZeroChannels {
            path: path.to_path_buf(),
        });
    }
    if d.sample_rate == 0 {
        return Err(AudioError::BadSampleRate {
            path: path.to_path_buf(),
        });
    }
    if d.samples.is_empty() {
        return Err(AudioError::NoSamples {
            path: path.to_path_buf(),
        });
    }
    if let Some(i) = d.samples.iter().position(|v| !v.is_finite()) {
        return Err(AudioError::NonFiniteSample {
            path: path.to_path_buf(),
            index: i / d.channels,
            channel: i % d.channels,
            value: d.samples[i],
        });
    }
    Ok(d)
}

/// Decodes a RIFF/WAVE file with hound. `Ok(None)` means "a WAV codec hound does
/// not support": the caller falls back to symphonia.
fn decode_wav(path: &Path) -> Result<Option<DecodedAudio>, AudioError> {
    let p = || path.to_path_buf();
    let reader = match hound::WavReader::open(path) {
        Ok(r) => r,
        Err(hound::Error::Unsupported) => return Ok(None),
        Err(hound::Error::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Err(AudioError::UnrecognizedFormat {
                path: p(),
                reason: "truncated WAV header".into(),
            })
        }
        Err(e) => {
            // hound reports a zero channel count as a generic format error; say so plainly.
            if wav_header_channels(path) == Some(0) {
                return Err(AudioError::ZeroChannels { path: p() });
            }
            return Err(AudioError::UnrecognizedFormat {
                path: p(),
                reason: format!("invalid WAV: {e}"),
            });
        }
    };
    let spec = reader.spec();
    if spec.channels == 0 {
        return Err(AudioError::ZeroChannels { path: p() });
    }
    if spec.sample_rate == 0 {
        return Err(AudioError::BadSampleRate { path: p() });
    }
    let channels = spec.channels as usize;
    let decode_err = |frames: usize, e: hound::Error| AudioError::Decode {
        path: p(),
        frames_decoded: frames,
        reason: e.to_string(),
    };
    let samples: Vec<f32> = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Float, 32) => {
            let mut out = Vec::with_capacity(reader.len() as usize);
            for s in reader.into_samples::<f32>() {
                out.push(s.map_err(|e| decode_err(out.len() / channels, e))?);
            }
            out
        }
        (hound::SampleFormat::Int, bits @ 1..=32) => {
            let scale = 1.0 / (1u64 << (bits - 1)) as f64;
            let mut out = Vec::with_capacity(reader.len() as usize);
            for s in reader.into_samples::<i32>() {
                let v = s.map_err(|e| decode_err(out.len() / channels, e))?;
                out.push((v as f64 * scale) as f32);
            }
            out
        }
        (fmt, bits) => {
            return Err(AudioError::UnsupportedCodec {
                path: p(),
                reason: format!("WAV {fmt:?} samples of {bits} bits"),
            })
        }
    };
    Ok(Some(DecodedAudio {
        samples,
        sample_rate: spec.sample_rate,
        channels,
    }))
}

/// Reads the channel count straight from the `fmt ` chunk (for error messages only).
fn wav_header_channels(path: &Path) -> Option<u16> {
    let bytes = std::fs::read(path).ok()?;
    let mut pos = 12;
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let len = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().ok()?) as usize;
        if id == b"fmt " {
            let c = bytes.get(pos + 10..pos + 12)?;
            return Some(u16::from_le_bytes([c[0], c[1]]));
        }
        pos += 8 + len + (len & 1);
    }
    None
}

fn decode_symphonia(path: &Path) -> Result<DecodedAudio, AudioError> {
    let p = || path.to_path_buf();
    let file = File::open(path).map_err(|io| AudioError::Open { path: p(), io })?;
    let mss = MediaSourceStream::new(Box::new(file), Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    let format_opts = FormatOptions {
        enable_gapless: true,
        ..Default::default()
    };
    let probed = symphonia::default::get_probe()
        .format(&hint, mss, &format_opts, &MetadataOptions::default())
        .map_err(|e| AudioError::UnrecognizedFormat {
            path: p(),
            reason: sym_reason(&e),
        })?;
    let mut format = probed.format;
    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| AudioError::UnsupportedCodec {
            path: p(),
            reason: "no audio track with a known codec".into(),
        })?;
    let track_id = track.id;
    let params = track.codec_params.clone();
    if let Some(ch) = params.channels {
        if ch.count() == 0 {
            return Err(AudioError::ZeroChannels { path: p() });
        }
    }
    let mut decoder = symphonia::default::get_codecs()
        .make(&params, &DecoderOptions::default())
        .map_err(|e| AudioError::UnsupportedCodec {
            path: p(),
            reason: format!("{} (codec id {:?})", sym_reason(&e), params.codec),
        })?;

    let mut samples: Vec<f32> = Vec::new();
    let mut sample_rate = params.sample_rate.unwrap_or(0);
    let mut channels = params.channels.map(|c| c.count()).unwrap_or(0);
    let mut buf: Option<SampleBuffer<f32>> = None;
    loop {
        let packet = match format.next_packet() {
            Ok(p) => p,
            Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(SymError::ResetRequired) => break,
            Err(e) => {
                return Err(AudioError::Decode {
                    path: p(),
                    frames_decoded: samples.len() / channels.max(1),
                    reason: sym_reason(&e),
                })
            }
        };
        if packet.track_id() != track_id {
            continue;
        }
        match decoder.decode(&packet) {
            Ok(audio) => {
                let spec = *audio.spec();
                if spec.channels.count() == 0 {
                    return Err(AudioError::ZeroChannels { path: p() });
                }
                sample_rate = spec.rate;
                channels = spec.channels.count();
                let needed = audio.capacity() as u64;
                let b = match &mut buf {
                    Some(b) if b.capacity() as u64 >= needed * channels as u64 => b,
                    _ => buf.insert(SampleBuffer::new(needed, spec)),
                };
                b.copy_interleaved_ref(audio);
                samples.extend_from_slice(b.samples());
            }
            // A corrupt packet: skip it, as symphonia recommends (the rest still decodes).
            Err(SymError::DecodeError(_)) => continue,
            Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => {
                return Err(AudioError::Decode {
                    path: p(),
                    frames_decoded: samples.len() / channels.max(1),
                    reason: sym_reason(&e),
                })
            }
        }
    }
    if channels == 0 {
        return Err(if samples.is_empty() {
            AudioError::NoSamples { path: p() }
        } else {
            AudioError::ZeroChannels { path: p() }
        });
    }
    Ok(DecodedAudio {
        samples,
        sample_rate,
        channels,
    })
}

fn sym_reason(e: &SymError) -> String {
    match e {
        SymError::Unsupported(what) => format!("unsupported format or codec ({what})"),
        SymError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            "unexpected end of file (truncated or not audio)".into()
        }
        other => other.to_string(),
    }
}
