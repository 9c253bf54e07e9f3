//! Evaluation: WER/CER scoring, text normalisers, dataset readers.
