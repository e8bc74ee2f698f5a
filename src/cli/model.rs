//! Which graph or checkpoint a command works on: `--model` or the embedded demo model, and a
//! checkpoint's spec.

use std::path::{Path, PathBuf};

use anyhow::Context;
use dlvp_exporter::{Checkpoint, Spec};

use super::default_model;

/// The spec for a checkpoint, and a phrase saying where it came from. An explicit `--spec`
/// wins; a differing embedded spec is reported so the user knows the two disagree.
pub fn resolve_spec(
    ckpt: &Checkpoint,
    explicit: Option<PathBuf>,
) -> anyhow::Result<(Spec, String)> {
    let embedded = ckpt.embedded_spec()?;
    match (explicit, embedded) {
        (Some(path), embedded) => {
            let spec = Spec::load(&path)?;
            if embedded.is_some_and(|e| e != spec) {
                eprintln!(
                    "warning: {}: the spec in the checkpoint's metadata differs from {}; checking against {}",
                    ckpt.path().display(),
                    path.display(),
                    path.display()
                );
            }
            Ok((spec, format!("from {}", path.display())))
        }
        (None, Some(spec)) => Ok((spec, "from the checkpoint's metadata".to_string())),
        (None, None) => Err(anyhow::anyhow!(
            "the checkpoint carries no `spec` metadata; pass --spec FILE"
        ))
        .with_context(|| ckpt.path().display().to_string()),
    }
}

/// The graph a command runs.
pub enum Model {
    File(PathBuf),
    /// The embedded default model ([`default_model`]).
    Embedded,
}

impl Model {
    /// How reports name it: the file's path, or the embedded model's name.
    pub fn label(&self) -> String {
        match self {
            Model::File(path) => path.display().to_string(),
            Model::Embedded => format!("{} (embedded)", default_model::NAME),
        }
    }
}

/// The graph to run: `--model`, or else the embedded default model (said on stderr).
pub fn resolve_model(model: Option<&Path>) -> Model {
    match model {
        Some(m) => Model::File(m.to_path_buf()),
        None => {
            eprintln!(
                "model: the embedded demo model {} (a small model trained on synthetic surfaces; pass --model for yours)",
                default_model::NAME
            );
            Model::Embedded
        }
    }
}
