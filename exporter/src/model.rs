//! The whole DLVP-CLIP graph: the global wiring of the blocks (model-spec/README.md §1–§7,
//! "Graph contract", written down in [`dlvp_contract::graph`]). Input `image` [B, 3, H, W] f32
//! (or `image_u8` [B, H, W, 3] uint8); outputs `anomaly_score` [B], `anomaly_map`
//! [B, 1, H, W], `topk_indices` [B, K] int64. The metadata carries the spec and the
//! preprocessing, so a runtime needs nothing else.

use std::sync::Arc;

use dlvp_contract::graph::{
    self as contract, ElemType, InputKind, OUTPUT_MAP, OUTPUT_SCORE, OUTPUT_TOPK,
};

use crate::blocks::{head, hfd, mlop, slfs, text, vit, BlockError};
use crate::graph::{DType, Dim, Graph, Wire};
use crate::spec::Spec;
use crate::tokenize::{tokenize_prompts, TokenizeError};
use crate::weights::{Checkpoint, LedgerReport, Weights};

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The spec cannot describe a model (a `Spec` built in code skips the parser's validation).
    #[error(transparent)]
    Spec(#[from] crate::spec::SpecError),
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

/// Variants of the graph.
#[derive(Debug, Clone, Copy, Default)]
pub struct GraphOptions {
    /// `image_u8` [B, H, W, 3] uint8 (RGB, already resized) does §1's cast, scaling and
    /// normalisation inside the graph.
    pub input: InputKind,
}

/// `image_u8` [B, H, W, 3] → `(x/255 − mean)/std` as [B, 3, H, W], folded into one scale and shift.
fn embedded_preprocess(g: &mut Graph, spec: &Spec) -> Result<(Wire, Wire), BuildError> {
    let raw = graph_input(g, InputKind::ImageU8, spec.image_size);
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

/// The graph input the contract prescribes for `kind` at side `size`.
fn graph_input(g: &mut Graph, kind: InputKind, size: usize) -> Wire {
    let desc = kind.desc(size);
    let dtype = match desc.elem {
        ElemType::F32 => DType::F32,
        ElemType::U8 => DType::U8,
        ElemType::I64 => DType::I64,
    };
    let dims = desc
        .dims
        .iter()
        .map(|d| match d {
            contract::Dim::Batch => Dim::Batch,
            contract::Dim::Fixed(n) => Dim::Fixed(*n),
        })
        .collect();
    g.input(desc.name, dtype, dims)
}

/// Builds the graph of `spec` with the weights of `ckpt`.
pub fn build(ckpt: Arc<Checkpoint>, spec: &Spec) -> Result<Exported, BuildError> {
    build_with(ckpt, spec, GraphOptions::default())
}

/// Builds the graph of `spec` with the weights of `ckpt` and the given variant options.
pub fn build_with(
    ckpt: Arc<Checkpoint>,
    spec: &Spec,
    options: GraphOptions,
) -> Result<Exported, BuildError> {
    spec.validate()
        .map_err(|problems| crate::spec::SpecError::Invalid {
            origin: format!("spec {:?}", spec.name),
            problems,
        })?;
    let tokens = tokenize_prompts(spec)?;
    let root: Weights = ckpt.root();
    let visual = root.pp("visual");
    let blocks = visual.pp("transformer").pp("resblocks");
    let mut g = Graph::new();
    let image = match options.input {
        InputKind::ImageU8 => g.scoped("preprocess", |g| embedded_preprocess(g, spec))?.1,
        InputKind::Image => graph_input(&mut g, InputKind::Image, spec.image_size),
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

    g.output(OUTPUT_SCORE, &head.anomaly_score);
    g.output(OUTPUT_MAP, &head.anomaly_map);
    g.output(OUTPUT_TOPK, &selection.topk_indices);
    g.metadata = contract::metadata(spec, options.input);
    Ok(Exported {
        ledger: root.ledger(),
        graph: g,
    })
}
