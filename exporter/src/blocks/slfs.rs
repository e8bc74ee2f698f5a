//! SLFS — pass 1 and the selection of K patches (model-spec/README.md §3).
//!
//! In: `Z⁰` [B, 1+N, C]. Runs visual blocks 1..L without prompts; from block L's head-averaged
//! attention takes `A_cls = A[:, 0, 1:]` [B, N], `T = TopK(A_cls, K)` [B, K] int64 (largest
//! first, ties to the lower index), and `P = V[T]` [B, K, C] with V the patch rows of block L's
//! output. The gather is a one-hot MatMul (exact: each row sums one value and zeros), which
//! every runtime supports for any batch size.

use crate::graph::{DType, Dim, Graph, Wire};
use crate::spec::Spec;
use crate::weights::Weights;

use super::vit::{residual_block, Tower};
use super::BlockError;

pub struct Selection {
    pub cls_attention: Wire,
    pub topk_indices: Wire,
    pub patches: Wire,
}

pub fn build(
    g: &mut Graph,
    blocks: &Weights,
    z0: &Wire,
    spec: &Spec,
) -> Result<Selection, BlockError> {
    let tower = Tower::vision(spec);
    let (layers, n, k) = (spec.vision.layers, spec.num_patches(), spec.slfs.top_k);
    let mut x = z0.clone();
    let mut probs = None;
    for j in 0..layers {
        let last = j + 1 == layers;
        let (y, p) = g.scoped(format!("blocks.{j}"), |g| {
            residual_block(g, &blocks.pp(j), &x, tower, None, last)
        })?;
        x = y;
        probs = p;
    }
    let probs = probs.expect("the last block returns its attention");
    let row0 = g.slice(&probs, 1, 0, 1)?;
    let row0 = g.slice(&row0, 2, 1, n + 1)?;
    let cls_attention = g.reshape(&row0, &[Dim::Batch, Dim::Fixed(n)])?;
    let (_, topk_indices) = g.topk(&cls_attention, k)?;
    let idx = g.unsqueeze(&topk_indices, 2)?; // [B, K, 1]
    let range: Vec<i64> = (0..n as i64).collect();
    let range = g.constant_i64("patch_index", &[n], &range);
    let onehot = g.equal(&idx, &range)?; // [B, K, N]
    let onehot = g.cast(&onehot, DType::F32)?;
    let v = g.slice(&x, 1, 1, n + 1)?;
    let patches = g.matmul(&onehot, &v)?;
    Ok(Selection {
        cls_attention,
        topk_indices,
        patches,
    })
}
