//! The embedded default model: `models/demo/dlvp-clip-demo.onnx`, compiled into the binary so
//! that `dlvp detect IMAGES` works with no other file. It is a small DLVP-CLIP trained here on
//! `dlvp demo-data` surfaces (models/demo/README.md), a demonstration, not a production model.
//!
//! The backends load graphs from files, so the bytes are written once to the user's cache folder
//! (`$XDG_CACHE_HOME/dlvp`, else `~/.cache/dlvp`, else the temp folder) under a name that carries
//! their hash, and reused while identical.

use std::path::PathBuf;

use anyhow::Context;

use super::write_atomically;
use crate::demo_data::rng::fnv1a64;

pub const NAME: &str = "dlvp-clip-demo";
pub const BYTES: &[u8] = include_bytes!("../../models/demo/dlvp-clip-demo.onnx");

fn cache_dir() -> PathBuf {
    let home_cache = || {
        std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(|h| PathBuf::from(h).join(".cache"))
    };
    std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(home_cache)
        .unwrap_or_else(std::env::temp_dir)
        .join("dlvp")
}

/// The embedded model as a file, written to the cache on first use.
pub fn path() -> anyhow::Result<PathBuf> {
    let path = cache_dir().join(format!("{NAME}-{:016x}.onnx", fnv1a64(BYTES)));
    let current = std::fs::read(&path).is_ok_and(|b| b == BYTES);
    if !current {
        write_atomically(&path, BYTES).with_context(|| {
            "cannot write the embedded default model to the cache; pass --model"
        })?;
    }
    Ok(path)
}
