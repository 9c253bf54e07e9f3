//! hark-audio: file decoding, microphone capture, resampling, feature extraction.
