//! One module per `dlvp` subcommand; what several share is in [`crate::cli`].

pub mod bench;
pub mod demo_data;
pub mod detect;
pub mod eval;
pub mod export;
pub mod inspect;
pub mod serve;
pub mod spec;
pub mod threshold;
pub mod weights;
