//! [`FileReader`]: a file streamed as mono f32 at a target rate, in bounded memory.
//!
//! [`crate::load_audio`] decodes a whole file into memory (a 2-hour 16 kHz file
//! is 460 MB of f32 at 16 kHz, more at 48 kHz stereo before downmixing). The
//! reader instead pulls one decoder block at a time (a symphonia packet, or
//! 4096 WAV frames through hound), downmixes it as [`crate::downmix`] does and
//! pushes it through the same [`StreamResampler`] that [`crate::resample()`] uses
//! for whole signals. Because the decoder ([`crate::decode`]'s packet decoder),
//! the downmix and the resampler are the very code of the whole-file path, and
//! the resampler's output does not depend on how its input is chunked, the
//! concatenated chunks equal `load_audio_at(path, target_rate)` sample for
//! sample (test `reader_chunks_concatenate_to_load_audio`).
//!
//! Memory: the reader holds at most one decoded block, the resampler's pending
//! input (< one rubato chunk) and the resampled samples not yet handed out
//! (< `max_frames` + one block's output); [`FileReader::buffered_samples`]
//! reports the total and [`FileReader::buffer_bound`] a bound that does not
//! depend on the file's length (test `two_hour_file_streams_in_bounded_memory`).

use std::path::{Path, PathBuf};

use crate::decode::{downmix_into, PacketDecoder};
use crate::error::AudioError;
use crate::resample::StreamResampler;

/// Frames of one rubato chunk plus its alignment lead, an upper bound of the
/// resampler's pending input.
const RESAMPLER_PENDING_MAX: usize = 1024 + 1024;

/// A streaming reader of an audio file: mono f32 in [-1, 1] at `target_rate`.
///
/// ```no_run
/// # fn main() -> Result<(), hark_audio::AudioError> {
/// let mut r = hark_audio::FileReader::open(std::path::Path::new("talk.flac"), 16_000)?;
/// let mut chunk = Vec::new();
/// loop {
///     chunk.clear();
///     if r.read(&mut chunk, 30 * 16_000)? == 0 {
///         break; // end of file
///     }
///     // ... transcribe `chunk` ...
/// }
/// # Ok(()) }
/// ```
pub struct FileReader {
    path: PathBuf,
    decoder: PacketDecoder,
    resampler: StreamResampler,
    target_rate: u32,
    native_rate: u32,
    channels: usize,
    /// Interleaved samples of the block being converted.
    block: Vec<f32>,
    /// Mono samples of the block (scratch).
    mono: Vec<f32>,
    /// Resampled samples not yet returned: `ready[ready_pos..]`.
    ready: Vec<f32>,
    ready_pos: usize,
    /// Largest decoded block so far, in interleaved samples.
    max_block: usize,
    /// Largest `max_frames` asked for so far.
    max_request: usize,
    /// The decoder reached the end of the file.
    decoder_done: bool,
    /// The resampler's tail was flushed.
    finished: bool,
    /// Output samples returned so far.
    returned: u64,
}

impl std::fmt::Debug for FileReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileReader")
            .field("path", &self.path)
            .field("native_rate", &self.native_rate)
            .field("channels", &self.channels)
            .field("target_rate", &self.target_rate)
            .field("returned", &self.returned)
            .finish()
    }
}

impl FileReader {
    /// Opens `path` and decodes its first block (so that a file without samples,
    /// or whose first packet is corrupt, fails here). `target_rate` is the output
    /// rate in Hz (16 000 for every hark model). Errors name the file and the
    /// problem, as [`crate::load_audio`]'s do.
    pub fn open(path: &Path, target_rate: u32) -> Result<Self, AudioError> {
        let mut decoder = PacketDecoder::open(path)?;
        let mut block = Vec::new();
        let (native_rate, channels) = loop {
            match decoder.next_block(&mut block)? {
                Some(f) if !block.is_empty() => break f,
                Some(_) => continue,
                None => {
                    return Err(AudioError::NoSamples {
                        path: path.to_path_buf(),
                    })
                }
            }
        };
        let resampler = StreamResampler::new(native_rate, target_rate)?;
        let max_block = block.len();
        let mut r = Self {
            path: path.to_path_buf(),
            decoder,
            resampler,
            target_rate,
            native_rate,
            channels,
            block,
            mono: Vec::new(),
            ready: Vec::new(),
            ready_pos: 0,
            max_block,
            max_request: 0,
            decoder_done: false,
            finished: false,
            returned: 0,
        };
        r.convert_block()?;
        Ok(r)
    }

    /// Appends up to `max_frames` samples (mono, `target_rate`) to `out` and
    /// returns how many were appended. Returns fewer than `max_frames` only at
    /// the end of the file, and `0` once everything was read.
    pub fn read(&mut self, out: &mut Vec<f32>, max_frames: usize) -> Result<usize, AudioError> {
        self.max_request = self.max_request.max(max_frames);
        while self.ready.len() - self.ready_pos < max_frames && !self.finished {
            self.fill()?;
        }
        let avail = &self.ready[self.ready_pos..];
        let n = avail.len().min(max_frames);
        out.extend_from_slice(&avail[..n]);
        self.ready_pos += n;
        self.returned += n as u64;
        // Compact: keep the unread tail at the front (amortised O(1) per sample).
        if self.ready_pos > 0 && self.ready_pos * 2 >= self.ready.len() {
            self.ready.drain(..self.ready_pos);
            self.ready_pos = 0;
        }
        Ok(n)
    }

    /// Reads the rest of the file into one vector (what [`crate::load_audio_at`]
    /// returns, without the intermediate full-length native-rate buffers).
    pub fn read_to_end(&mut self, out: &mut Vec<f32>) -> Result<usize, AudioError> {
        let mut total = 0;
        loop {
            let n = self.read(out, 1 << 16)?;
            if n == 0 {
                return Ok(total);
            }
            total += n;
        }
    }

    /// Decodes one more block (or flushes the resampler at the end) into `ready`.
    fn fill(&mut self) -> Result<(), AudioError> {
        if self.decoder_done {
            self.resampler.finish(&mut self.ready)?;
            self.finished = true;
            return Ok(());
        }
        self.block.clear();
        match self.decoder.next_block(&mut self.block)? {
            Some(_) => {
                self.max_block = self.max_block.max(self.block.len());
                self.convert_block()
            }
            None => {
                self.decoder_done = true;
                Ok(())
            }
        }
    }

    /// Downmixes and resamples `block` into `ready`.
    fn convert_block(&mut self) -> Result<(), AudioError> {
        if self.channels == 1 {
            self.resampler.push(&self.block, &mut self.ready)
        } else {
            self.mono.clear();
            downmix_into(&self.block, self.channels, &mut self.mono);
            self.resampler.push(&self.mono, &mut self.ready)
        }
    }

    /// Total duration in seconds, when the container states it (WAV always;
    /// FLAC, MP3, OGG usually), for progress bars. `None` otherwise.
    pub fn duration_hint(&self) -> Option<f64> {
        self.decoder.duration_hint()
    }

    /// Seconds of audio returned so far.
    pub fn position_secs(&self) -> f64 {
        self.returned as f64 / self.target_rate as f64
    }

    /// Output samples returned so far.
    pub fn samples_read(&self) -> u64 {
        self.returned
    }

    /// Output sample rate (Hz).
    pub fn target_rate(&self) -> u32 {
        self.target_rate
    }

    /// The file's own sample rate (Hz).
    pub fn native_rate(&self) -> u32 {
        self.native_rate
    }

    /// The file's channel count (the output is always mono).
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// The file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Samples currently held in the reader's buffers (decoded block, mono
    /// scratch, resampled but unread output), excluding the resampler's fixed
    /// internal state. Stays below [`FileReader::buffer_bound`].
    pub fn buffered_samples(&self) -> usize {
        self.block.len() + self.mono.len() + (self.ready.len() - self.ready_pos)
    }

    /// An upper bound of [`FileReader::buffered_samples`] that depends only on
    /// the largest block the decoder produced so far and the largest
    /// `max_frames` requested, never on the file's length: one block, its mono
    /// mix, and unread output of at most `max_frames` plus one block's worth of
    /// resampled samples (plus the resampler's chunk it may release at once).
    pub fn buffer_bound(&self) -> usize {
        let block_frames = self.max_block / self.channels.max(1);
        let ratio = self.target_rate as f64 / self.native_rate as f64;
        let block_out = ((block_frames + RESAMPLER_PENDING_MAX) as f64 * ratio).ceil() as usize + 1;
        self.max_block + block_frames + self.max_request + 2 * block_out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_wav(path: &Path, rate: u32, channels: u16, frames: usize) {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(path, spec).expect("create");
        for i in 0..frames {
            for c in 0..channels {
                let t = i as f64 / rate as f64;
                let v = (0.3
                    * (2.0 * std::f64::consts::PI * (440.0 + 100.0 * c as f64) * t).sin()
                    * 32767.0) as i16;
                w.write_sample(v).expect("write");
            }
        }
        w.finalize().expect("finalize");
    }

    #[test]
    fn reader_reports_rates_channels_and_duration() {
        let d = tempfile::tempdir().expect("tmp");
        let p = d.path().join("a.wav");
        write_wav(&p, 22_050, 2, 22_050 * 3 / 2);
        let r = FileReader::open(&p, 16_000).expect("open");
        assert_eq!(
            (r.native_rate(), r.channels(), r.target_rate()),
            (22_050, 2, 16_000)
        );
        assert_eq!(r.duration_hint(), Some(1.5));
        assert_eq!(r.path(), p.as_path());
    }
}
