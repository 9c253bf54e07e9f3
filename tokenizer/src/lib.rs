//! hark-tokenizer: Whisper byte-level BPE, SentencePiece and unit-list tokenizers.
