//! One module per subcommand; each defines `Args` (clap) and `run(Args)`.

pub mod bench;
pub mod devices;
pub mod eval;
pub mod features;
pub mod listen;
pub mod models;
pub mod transcribe;
