//! End-to-end tests for hark live in `tests/tests/`; shared helpers here.
