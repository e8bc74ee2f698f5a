//! What the tests of every crate in the workspace share (a dev-dependency only; one crate instead
//! of source files included by path).
//!
//! - [`gate`]: tests that need a tool the test command may provide — skip, or fail when required;
//! - [`checkpoint`]: safetensors checkpoints built from a spec's manifest with the `safetensors`
//!   crate (independent of our reader);
//! - [`mutate`]: byte-level mutations of valid files, the fuzz targets' proptest strategies;
//! - [`png`]: hand-built PNG files no encoder writes;
//! - [`onnx_edit`]: exported graphs edited into broken or disallowed ones;
//! - [`run`]: the `dlvp` binary run from the root package's tests, and the failure contract.

pub mod checkpoint;
pub mod gate;
pub mod mutate;
pub mod onnx_edit;
pub mod png;
pub mod run;
