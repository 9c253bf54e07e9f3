//! hark-format Whisper configuration (`config.json`), shared by importers and the model.
