//! The model store: built-in model names, pulling, importing, converting.
