//! The whole DLVP-CLIP graph: the global wiring of the blocks (model-spec/README.md §1–§7,
//! "Graph contract"). Input `image` [B, 3, H, W] f32 (or, with `embed_preprocess`, `image_u8`
//! [B, H, W, 3] uint8); outputs `anomaly_score` [B],
//! `anomaly_map` [B, 1, H, W], `topk_indices` [B, K] int64. The metadata carries the spec and
//! the preprocessing, so a runtime needs nothing else.

use std::sync::Arc;

use crate::blocks::{head, hfd, mlop, slfs, text, vit, BlockError};
use crate::graph::{DType, Dim, Graph, Wire};
use crate::spec::Spec;
use crate::tokenize::{tokenize_prompts, TokenizeError};
use crate::weights::{Checkpoint, LedgerReport, Weights};

/// metadata_props keys.
pub const META_FORMAT: &str = "dlvp.format";
pub const META_SPEC: &str = "dlvp.spec";
pub const META_IMAGE_SIZE: &str = "dlvp.image_size";
pub const META_MEAN: &str = "dlvp.preprocess.mean";
pub const META_STD: &str = "dlvp.preprocess.std";
pub const META_RESIZE: &str = "dlvp.preprocess.resize";
/// `image` (normalised f32 [B,3,H,W]) or `image_u8` (RGB uint8 [B,H,W,3], normalised in the graph).
pub const META_INPUT: &str = "dlvp.input";
pub const GRAPH_FORMAT: &str = "dlvp-clip-onnx/1";

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Block(#[from] BlockError),
    #[error(transparent)]
    Tokenize(#[from] TokenizeError),
}

/// The built graph and the account of the checkpoint tensors it read.
pub struct Exported {
    pub graph: Graph,
    pub ledger: LedgerReport,
}

/// Variants of the exported graph.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExportOptions {
    /// Take `image_u8` [B, H, W, 3] uint8 (RGB, already resized) and do §1's cast, scaling and
    /// normalisation inside the graph.
    pub embed_preprocess: bool,
}

/// `image_u8` [B, H, W, 3] → `(x/255 − mean)/std` as [B, 3, H, W], folded into one scale and shift.
fn embedded_preprocess(g: &mut Graph, spec: &Spec) -> Result<(Wire, Wire), ExportError> {
    let size = spec.image_size;
    let raw = g.input(
        "image_u8",
        DType::U8,
        vec![
            Dim::Batch,
            Dim::Fixed(size),
            Dim::Fixed(size),
            Dim::Fixed(3),
        ],
    );
    let x = g.cast(&raw, DType::F32).map_err(BlockError::from)?;
    let x = g.transpose(&x, &[0, 3, 1, 2]).map_err(BlockError::from)?;
    let (mean, std) = (&spec.preprocess.mean, &spec.preprocess.std);
    let scale: Vec<f32> = std.iter().map(|s| (1.0 / (255.0 * s)) as f32).collect();
    let shift: Vec<f32> = mean.iter().zip(std).map(|(m, s)| (-m / s) as f32).collect();
    let scale = g.constant_f32("preprocess_scale", &[3, 1, 1], &scale);
    let shift = g.constant_f32("preprocess_shift", &[3, 1, 1], &shift);
    let x = g.mul(&x, &scale).map_err(BlockError::from)?;
    let x = g.add(&x, &shift).map_err(BlockError::from)?;
    Ok((raw, x))
}

/// Builds the graph of `spec` with the weights of `ckpt`.
pub fn build(ckpt: Arc<Checkpoint>, spec: &Spec) -> Result<Exported, ExportError> {
    build_with(ckpt, spec, ExportOptions::default())
}

/// Builds the graph of `spec` with the weights of `ckpt` and the given variant options.
pub fn build_with(
    ckpt: Arc<Checkpoint>,
    spec: &Spec,
    options: ExportOptions,
) -> Result<Exported, ExportError> {
    let tokens = tokenize_prompts(spec)?;
    let root: Weights = ckpt.root();
    let visual = root.pp("visual");
    let blocks = visual.pp("transformer").pp("resblocks");
    let size = spec.image_size;
    let mut g = Graph::new();
    let image = if options.embed_preprocess {
        g.scoped("preprocess", |g| embedded_preprocess(g, spec))?.1
    } else {
        g.input(
            "image",
            DType::F32,
            vec![
                Dim::Batch,
                Dim::Fixed(3),
                Dim::Fixed(size),
                Dim::Fixed(size),
            ],
        )
    };

    let z0 = g.scoped("visual/embed", |g| {
        vit::patch_embedding(g, &visual, &image, spec)
    })?;
    let selection = g.scoped("visual/pass1", |g| slfs::build(g, &blocks, &z0, spec))?;
    let prompts = g.scoped("mlop", |g| {
        mlop::prompts(g, &root.pp("dlvp.mlop"), &selection.patches, spec)
    })?;
    let pass2 = g.scoped("visual/pass2", |g| {
        mlop::visual_pass2(g, &blocks, &z0, &prompts, spec)
    })?;
    let text = g.scoped("text", |g| text::build(g, &root, &prompts, spec, &tokens))?;
    let mut refined = Vec::new();
    for (i, f) in &pass2.features {
        let w = root.pp("dlvp.hfd").pp(i);
        refined.push((
            *i,
            g.scoped(format!("hfd.{i}"), |g| hfd::build(g, &w, f, spec.grid()))?,
        ));
    }
    let head = g.scoped("head", |g| {
        head::build(g, &root, &refined, &pass2.cls, &text, spec)
    })?;

    g.output("anomaly_score", &head.anomaly_score);
    g.output("anomaly_map", &head.anomaly_map);
    g.output("topk_indices", &selection.topk_indices);
    let list = |v: &[f64; 3]| {
        v.iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    g.metadata = vec![
        (META_FORMAT.into(), GRAPH_FORMAT.into()),
        (META_SPEC.into(), spec.to_yaml()),
        (META_IMAGE_SIZE.into(), size.to_string()),
        (META_MEAN.into(), list(&spec.preprocess.mean)),
        (META_STD.into(), list(&spec.preprocess.std)),
        (
            META_RESIZE.into(),
            serde_yaml::to_string(&spec.preprocess.resize)
                .unwrap_or_default()
                .trim()
                .to_string(),
        ),
        (
            META_INPUT.into(),
            if options.embed_preprocess {
                "image_u8"
            } else {
                "image"
            }
            .into(),
        ),
    ];
    Ok(Exported {
        ledger: root.ledger(),
        graph: g,
    })
}
