//! One module per `dlvp` subcommand.

pub mod spec;
pub mod weights;
