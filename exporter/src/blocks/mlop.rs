//! MLoP — local prompts and visual pass 2 (model-spec/README.md §4, visual side).
//!
//! `P' = LN_m(P)·W_mᵀ + b_m` [B, M, C] (weights `dlvp.mlop.{norm,proj}`). Pass 2 runs the same
//! visual blocks (the same initializers as pass 1) on `[Z⁰; P']` [B, 1+N+M, C], resetting the
//! prompt slots to P' after blocks 1..J. Out: `F_i = Z^i[:, 1:N+1]` for i ∈ 𝓛 and `c = Z^L[:, 0:1]`.

use crate::graph::{Graph, Wire};
use crate::spec::Spec;
use crate::weights::Weights;

use super::vit::{layer_norm, linear, residual_block, Tower};
use super::BlockError;

pub fn prompts(
    g: &mut Graph,
    mlop: &Weights,
    patches: &Wire,
    spec: &Spec,
) -> Result<Wire, BlockError> {
    let c = spec.vision.width;
    let x = layer_norm(g, &mlop.pp("norm"), patches, c)?;
    linear(g, &mlop.pp("proj"), &x, c, c)
}

pub struct Pass2 {
    /// (i, F_i [B, N, C]) for i ∈ 𝓛, in order.
    pub features: Vec<(usize, Wire)>,
    /// The class token after block L, [B, 1, C].
    pub cls: Wire,
}

pub fn visual_pass2(
    g: &mut Graph,
    blocks: &Weights,
    z0: &Wire,
    prompts: &Wire,
    spec: &Spec,
) -> Result<Pass2, BlockError> {
    let tower = Tower::vision(spec);
    let n = spec.num_patches();
    let mut z = g.concat(&[z0, prompts], 1)?;
    let mut features = Vec::new();
    for j in 1..=spec.vision.layers {
        z = g
            .scoped(format!("blocks.{}", j - 1), |g| {
                residual_block(g, &blocks.pp(j - 1), &z, tower, None, false)
            })?
            .0;
        if j <= spec.mlop.visual_static_layers {
            let kept = g.slice(&z, 1, 0, n + 1)?;
            z = g.concat(&[&kept, prompts], 1)?;
        }
        if spec.feature_layers.contains(&j) {
            features.push((j, g.slice(&z, 1, 1, n + 1)?));
        }
    }
    let cls = g.slice(&z, 1, 0, 1)?;
    Ok(Pass2 { features, cls })
}
