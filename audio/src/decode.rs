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
use std::path::{Path, PathBuf};

use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{Decoder, DecoderOptions, CODEC_TYPE_NULL};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::{FormatOptions, FormatReader};
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
    let mut out = Vec::with_capacity(interleaved.len() / channels);
    downmix_into(interleaved, channels, &mut out);
    out
}

/// [`downmix`] appending to `out` (no allocation once `out` has grown).
pub(crate) fn downmix_into(interleaved: &[f32], channels: usize, out: &mut Vec<f32>) {
    if channels <= 1 {
        out.extend_from_slice(interleaved);
        return;
    }
    let scale = 1.0 / channels as f32;
    out.extend(
        interleaved
            .chunks_exact(channels)
            .map(|f| f.iter().sum::<f32>() * scale),
    );
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
///
/// Built on the same block-by-block packet decoder that
/// [`crate::reader::FileReader`] streams through, so both see identical samples.
pub fn decode_file(path: &Path) -> Result<DecodedAudio, AudioError> {
    let mut dec = PacketDecoder::open(path)?;
    let mut samples = Vec::new();
    while dec.next_block(&mut samples)?.is_some() {}
    let (sample_rate, channels) = dec.format().ok_or_else(|| AudioError::NoSamples {
        path: path.to_path_buf(),
    })?;
    if samples.is_empty() {
        return Err(AudioError::NoSamples {
            path: path.to_path_buf(),
        });
    }
    Ok(DecodedAudio {
        samples,
        sample_rate,
        channels,
    })
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

/// WAV frames hound decodes per block (bounded memory per call).
const WAV_BLOCK_FRAMES: usize = 4096;

/// A file decoded block by block (a symphonia packet, or 4096 WAV frames):
/// interleaved f32 in [-1, 1] at the native rate, every sample checked finite.
///
/// The container is recognised from its first bytes (`RIFF....WAVE` goes to
/// hound unless hound rejects the codec), as described in the module docs.
pub(crate) struct PacketDecoder {
    path: PathBuf,
    inner: Inner,
    /// `(rate, channels)` of the blocks decoded so far (`None` before the first).
    format: Option<(u32, usize)>,
    /// Frames returned so far.
    frames: usize,
    /// Total frames, when the container says.
    total_frames: Option<u64>,
    /// Native rate known from the header (before decoding), if any.
    header_rate: Option<u32>,
}

enum Inner {
    Wav {
        reader: hound::WavReader<std::io::BufReader<File>>,
        /// `None` for 32-bit float, else 1 / 2^(bits-1).
        int_scale: Option<f64>,
        rate: u32,
        channels: usize,
    },
    Symphonia {
        format: Box<dyn FormatReader>,
        decoder: Box<dyn Decoder>,
        track_id: u32,
        buf: Option<SampleBuffer<f32>>,
    },
}

impl PacketDecoder {
    /// Opens `path` (errors name the file: missing, empty, not audio, bad header,
    /// unsupported codec, zero channels, zero rate).
    pub(crate) fn open(path: &Path) -> Result<Self, AudioError> {
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
        let wav = if is_wav { open_wav(path)? } else { None };
        let (inner, total_frames, header_rate) = match wav {
            Some(w) => w,
            // Not WAV, or a WAV codec hound does not handle (ADPCM, mu-law...).
            None => open_symphonia(path)?,
        };
        Ok(Self {
            path: path.to_path_buf(),
            inner,
            format: None,
            frames: 0,
            total_frames,
            header_rate,
        })
    }

    /// `(sample rate, channels)` of the decoded blocks, once one was decoded.
    pub(crate) fn format(&self) -> Option<(u32, usize)> {
        self.format
    }

    /// Total duration in seconds when the container states it.
    pub(crate) fn duration_hint(&self) -> Option<f64> {
        let rate = self.format.map(|f| f.0).or(self.header_rate)?;
        Some(self.total_frames? as f64 / rate as f64)
    }

    /// Appends the next block of interleaved samples to `out`; returns
    /// `Some((rate, channels))`, or `None` at the end of the stream. A block may
    /// be empty (a packet that decoded to nothing).
    pub(crate) fn next_block(
        &mut self,
        out: &mut Vec<f32>,
    ) -> Result<Option<(u32, usize)>, AudioError> {
        let start = out.len();
        let p = || self.path.clone();
        let got = match &mut self.inner {
            Inner::Wav {
                reader,
                int_scale,
                rate,
                channels,
            } => {
                let frames = self.frames;
                let ch = *channels;
                let decode_err = |k: usize, e: hound::Error| AudioError::Decode {
                    path: p(),
                    frames_decoded: frames + k / ch,
                    reason: e.to_string(),
                };
                let want = WAV_BLOCK_FRAMES * ch;
                match int_scale {
                    None => {
                        for (k, s) in reader.samples::<f32>().take(want).enumerate() {
                            out.push(s.map_err(|e| decode_err(k, e))?);
                        }
                    }
                    Some(scale) => {
                        for (k, s) in reader.samples::<i32>().take(want).enumerate() {
                            let v = s.map_err(|e| decode_err(k, e))?;
                            out.push((v as f64 * *scale) as f32);
                        }
                    }
                }
                if out.len() == start {
                    None
                } else {
                    Some((*rate, ch))
                }
            }
            Inner::Symphonia {
                format,
                decoder,
                track_id,
                buf,
            } => {
                let frames = self.frames;
                let decode_err = |e: &SymError| AudioError::Decode {
                    path: p(),
                    frames_decoded: frames,
                    reason: sym_reason(e),
                };
                loop {
                    let packet = match format.next_packet() {
                        Ok(p) => p,
                        Err(SymError::IoError(e))
                            if e.kind() == std::io::ErrorKind::UnexpectedEof =>
                        {
                            break None
                        }
                        Err(SymError::ResetRequired) => break None,
                        Err(e) => return Err(decode_err(&e)),
                    };
                    if packet.track_id() != *track_id {
                        continue;
                    }
                    match decoder.decode(&packet) {
                        Ok(audio) => {
                            let spec = *audio.spec();
                            if spec.channels.count() == 0 {
                                return Err(AudioError::ZeroChannels { path: p() });
                            }
                            let channels = spec.channels.count();
                            let needed = audio.capacity() as u64;
                            let b = match buf {
                                Some(b) if b.capacity() as u64 >= needed * channels as u64 => b,
                                _ => buf.insert(SampleBuffer::new(needed, spec)),
                            };
                            b.copy_interleaved_ref(audio);
                            out.extend_from_slice(b.samples());
                            break Some((spec.rate, channels));
                        }
                        // A corrupt packet: skip it, as symphonia recommends.
                        Err(SymError::DecodeError(_)) => continue,
                        Err(SymError::IoError(e))
                            if e.kind() == std::io::ErrorKind::UnexpectedEof =>
                        {
                            break None
                        }
                        Err(e) => return Err(decode_err(&e)),
                    }
                }
            }
        };
        let Some((rate, channels)) = got else {
            return Ok(None);
        };
        if rate == 0 {
            return Err(AudioError::BadSampleRate { path: p() });
        }
        match self.format {
            None => self.format = Some((rate, channels)),
            Some(f) if f != (rate, channels) => {
                return Err(AudioError::Decode {
                    path: p(),
                    frames_decoded: self.frames,
                    reason: format!(
                        "stream format changed from {} Hz x{} to {rate} Hz x{channels}",
                        f.0, f.1
                    ),
                })
            }
            Some(_) => {}
        }
        let block = &out[start..];
        if let Some(i) = block.iter().position(|v| !v.is_finite()) {
            return Err(AudioError::NonFiniteSample {
                path: p(),
                index: self.frames + i / channels,
                channel: i % channels,
                value: block[i],
            });
        }
        self.frames += block.len() / channels;
        Ok(Some((rate, channels)))
    }
}

/// An opened stream: the decoder, its total frames and rate when the header states them.
type Opened = (Inner, Option<u64>, Option<u32>);

/// Opens a RIFF/WAVE file with hound. `Ok(None)` means "a WAV codec hound does
/// not support": the caller falls back to symphonia.
fn open_wav(path: &Path) -> Result<Option<Opened>, AudioError> {
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
    let int_scale = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Float, 32) => None,
        (hound::SampleFormat::Int, bits @ 1..=32) => Some(1.0 / (1u64 << (bits - 1)) as f64),
        (fmt, bits) => {
            return Err(AudioError::UnsupportedCodec {
                path: p(),
                reason: format!("WAV {fmt:?} samples of {bits} bits"),
            })
        }
    };
    let total = Some(reader.duration() as u64);
    Ok(Some((
        Inner::Wav {
            reader,
            int_scale,
            rate: spec.sample_rate,
            channels: spec.channels as usize,
        },
        total,
        Some(spec.sample_rate),
    )))
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

fn open_symphonia(path: &Path) -> Result<Opened, AudioError> {
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
    let format = probed.format;
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
    let decoder = symphonia::default::get_codecs()
        .make(&params, &DecoderOptions::default())
        .map_err(|e| AudioError::UnsupportedCodec {
            path: p(),
            reason: format!("{} (codec id {:?})", sym_reason(&e), params.codec),
        })?;
    Ok((
        Inner::Symphonia {
            format,
            decoder,
            track_id,
            buf: None,
        },
        params.n_frames,
        params.sample_rate,
    ))
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
