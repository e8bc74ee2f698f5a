//! SLFS — pass 1 and the selection of K patches (model-spec/README.md §3).
//!
//! In: `Z⁰` [B, 1+N, C]. Runs visual blocks 1..L without prompts; from block L's head-averaged
//! attention takes `A_cls = A[:, 0, 1:]` [B, N], `T = TopK(A_cls, K)` [B, K] int64 (largest
//! first, ties to the lower index), and `P = V[T]` [B, K, C] with V the patch rows of block L's
//! output. Block L is computed for the class row's attention and the K selected rows only. The
//! gather is a one-hot MatMul (exact: each row sums one value and zeros), which every runtime
//! supports for any batch size.

use crate::graph::{DType, Dim, Graph, Wire};
use crate::spec::Spec;
use crate::weights::Weights;

use super::vit::{attention_of_rows, layer_norm, mlp_residual, residual_block, Tower};
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
    for j in 0..layers - 1 {
        let (y, _) = g.scoped(format!("blocks.{j}"), |g| {
            residual_block(g, &blocks.pp(j), &x, tower, None, false)
        })?;
        x = y;
    }
    // Block L is needed at only 1 + K rows: the class token's attention (for A_cls) and the K
    // selected patches' outputs (P). Keys and values still come from every row; queries,
    // out_proj and the MLP run on those rows alone — row for row the same arithmetic as the
    // whole block, at a fraction of its cost (model-spec/README.md §3 defines P as rows of
    // block L's output, nothing more).
    g.scoped(format!("blocks.{}", layers - 1), |g| {
        let w = blocks.pp(layers - 1);
        let c = tower.width;
        let rows = layer_norm(g, &w.pp("ln_1"), &x, c)?; // [B, 1+N, C]
        let cls = g.slice(&rows, 1, 0, 1)?;
        let (_, probs) = attention_of_rows(g, &w.pp("attn"), &cls, &rows, tower)?; // [B, 1, 1+N]
        let row0 = g.slice(&probs, 2, 1, n + 1)?;
        let cls_attention = g.reshape(&row0, &[Dim::Batch, Dim::Fixed(n)])?;
        let (_, topk_indices) = g.topk(&cls_attention, k)?;
        // The selected rows of the block's input, by a one-hot MatMul over the 1+N tokens.
        // Token t holds patch t − 1 (the class token is −1, which no index equals).
        let idx = g.unsqueeze(&topk_indices, 2)?; // [B, K, 1]
        let range: Vec<i64> = (-1..n as i64).collect();
        let range = g.constant_i64("patch_of_token", &[n + 1], &range);
        let onehot = g.equal(&idx, &range)?; // [B, K, 1+N]
        let onehot = g.cast(&onehot, DType::F32)?;
        let selected = g.matmul(&onehot, &x)?; // [B, K, C]
        let queries = layer_norm(g, &w.pp("ln_1"), &selected, c)?;
        let (attn, _) = attention_of_rows(g, &w.pp("attn"), &queries, &rows, tower)?;
        let selected = g.add(&selected, &attn)?;
        let patches = mlp_residual(g, &w, &selected, tower)?;
        Ok(Selection {
            cls_attention,
            topk_indices,
            patches,
        })
    })
}
