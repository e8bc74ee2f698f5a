//! What the subcommands share: where the binary finds ONNX Runtime and OpenVINO
//! ([`libraries`]), the images path arguments name and their output names ([`inputs`]), the
//! embedded model ([`default_model`]) and the model a command runs ([`model`]), the run flags
//! and the detector they load ([`run_args`]), clap parsers for the libraries' enums and for
//! thresholds ([`parsers`]), the tiling flags ([`tile_args`]) and the progress line
//! ([`progress`]).

pub mod default_model;
pub mod inputs;
pub mod libraries;
pub mod model;
pub mod parsers;
pub mod progress;
pub mod run_args;
pub mod tile_args;

pub use dlvp_contract::atomic_write::{write_atomically, write_atomically_with};
pub use model::{resolve_model, resolve_spec, Model};
pub use parsers::{named_values, named_values_with_help, target_parser};
pub use run_args::{load_detector, RunArgs};
pub use tile_args::TileArgs;

/// An image that could not be loaded, in the binary's terms: the option that raises the pixel
/// limit named where the limit refused it.
pub fn image_error(e: dlvp_runtime::preprocess::ImageError) -> String {
    match e.kind {
        dlvp_runtime::preprocess::ImageErrorKind::TooLarge { .. } => format!("{e} (--max-pixels)"),
        _ => e.to_string(),
    }
}
