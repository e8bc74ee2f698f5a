//! The embedded default model: `models/demo/dlvp-clip-demo.onnx`, compiled into the binary so
//! that `dlvp detect IMAGES` works with no other file. It is a small DLVP-CLIP trained here on
//! `dlvp demo-data --universe`'s procedural surfaces (models/demo/README.md), none of them the five
//! demo categories: a demonstration, not a production model.
//! The detector loads it straight from these bytes; nothing is written to disk.

pub const NAME: &str = "dlvp-clip-demo";
pub const BYTES: &[u8] = include_bytes!("../../models/demo/dlvp-clip-demo.onnx");
