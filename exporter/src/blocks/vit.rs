//! OpenCLIP residual blocks and the visual patch embedding (model-spec/README.md §2, "Notation").
//!
//! A block maps [B, ..., S, W] → [B, ..., S, W]: `x + Attn(LN_1(x))`, then `x + MLP(LN_2(x))`,
//! MLP = `c_fc → act → c_proj`. Attention is multi-head with `in_proj_weight` [3W, W]; an
//! optional additive mask [S, S] (the text tower's causal mask). Weights (block scope):
//! `ln_1`, `attn.in_proj_weight`, `attn.in_proj_bias`, `attn.out_proj`, `ln_2`, `mlp.c_fc`,
//! `mlp.c_proj`. The patch embedding reads `visual.{conv1.weight, class_embedding,
//! positional_embedding, ln_pre}` and gives `Z⁰` [B, 1+N, C]; a positional embedding of another
//! grid is resized at export ([`crate::pos_embed`]).

use crate::graph::{shape_str, Dim, Graph, Wire};
use crate::manifest::ExpectedShape;
use crate::spec::{Activation, Spec};
use crate::weights::Weights;

use super::BlockError;

/// One LayerNorm with weights `scope.{weight,bias}`.
pub fn layer_norm(g: &mut Graph, w: &Weights, x: &Wire, width: usize) -> Result<Wire, BlockError> {
    Ok(g.layer_norm(x, &w.get("weight", &[width])?, &w.get("bias", &[width])?)?)
}

/// One PyTorch Linear with weights `scope.{weight,bias}`.
pub fn linear(
    g: &mut Graph,
    w: &Weights,
    x: &Wire,
    out: usize,
    inp: usize,
) -> Result<Wire, BlockError> {
    Ok(g.linear(
        x,
        &w.get("weight", &[out, inp])?,
        Some(&w.get("bias", &[out])?),
    )?)
}

fn activation(g: &mut Graph, x: &Wire, act: Activation) -> Result<Wire, BlockError> {
    Ok(match act {
        // 0.5·x·(1 + erf(x/√2)), as torch.nn.GELU computes it.
        Activation::Gelu => {
            let s = g.scale(x, std::f32::consts::FRAC_1_SQRT_2)?;
            let e = g.erf(&s)?;
            let e = g.offset(&e, 1.0)?;
            let y = g.mul(x, &e)?;
            g.scale(&y, 0.5)?
        }
        Activation::QuickGelu => {
            let s = g.scale(x, 1.702)?;
            let s = g.sigmoid(&s)?;
            g.mul(x, &s)?
        }
    })
}

/// The tower a block belongs to: width, heads, MLP width, activation.
#[derive(Debug, Clone, Copy)]
pub struct Tower {
    pub width: usize,
    pub heads: usize,
    pub mlp_width: usize,
    pub act: Activation,
}

impl Tower {
    pub fn vision(spec: &Spec) -> Tower {
        let v = &spec.vision;
        Tower {
            width: v.width,
            heads: v.heads,
            mlp_width: v.mlp_width(),
            act: v.act,
        }
    }

    pub fn text(spec: &Spec) -> Tower {
        let t = &spec.text;
        Tower {
            width: t.width,
            heads: t.heads,
            mlp_width: t.mlp_width(),
            act: t.act,
        }
    }
}

/// Multi-head self-attention of `x` [B, ..., S, W]; also the head-averaged probabilities
/// [B, ..., S, S] when `want_probs`.
fn attention(
    g: &mut Graph,
    w: &Weights,
    x: &Wire,
    tower: Tower,
    mask: Option<&Wire>,
    want_probs: bool,
) -> Result<(Wire, Option<Wire>), BlockError> {
    let (c, h) = (tower.width, tower.heads);
    let dh = c / h;
    let qkv = g.linear(
        x,
        &w.get("in_proj_weight", &[3 * c, c])?,
        Some(&w.get("in_proj_bias", &[3 * c])?),
    )?;
    if x.rank() < 2 {
        return Err(g
            .error(
                "Attention",
                format!("input {} has no token axis", shape_str(&x.shape)),
            )
            .into());
    }
    let p = x.rank() - 2; // axes before S
    let s = x.shape[p];
    let prefix = x.shape[..p].to_vec();
    let split = |g: &mut Graph, part: usize| -> Result<Wire, BlockError> {
        let y = g.slice(&qkv, p + 1, part * c, (part + 1) * c)?;
        let shape: Vec<Dim> = prefix
            .iter()
            .copied()
            .chain([s, Dim::Fixed(h), Dim::Fixed(dh)])
            .collect();
        Ok(g.reshape(&y, &shape)?)
    };
    let perm_heads: Vec<usize> = (0..p).chain([p + 1, p, p + 2]).collect(); // [.., H, S, dh]
    let perm_keys: Vec<usize> = (0..p).chain([p + 1, p + 2, p]).collect(); // [.., H, dh, S]
    let q = split(g, 0)?;
    let q = g.scale(&q, 1.0 / (dh as f32).sqrt())?;
    let q = g.transpose(&q, &perm_heads)?;
    let k = split(g, 1)?;
    let k = g.transpose(&k, &perm_keys)?;
    let v = split(g, 2)?;
    let v = g.transpose(&v, &perm_heads)?;
    let scores = g.matmul(&q, &k)?;
    let scores = match mask {
        Some(m) => g.add(&scores, m)?,
        None => scores,
    };
    let probs = g.softmax(&scores, -1)?;
    let out = g.matmul(&probs, &v)?; // [.., H, S, dh]
    let out = g.transpose(&out, &perm_heads)?; // [.., S, H, dh]
    let shape: Vec<Dim> = prefix.iter().copied().chain([s, Dim::Fixed(c)]).collect();
    let out = g.reshape(&out, &shape)?;
    let out = linear(g, &w.pp("out_proj"), &out, c, c)?;
    let mean = if want_probs {
        Some(g.reduce_mean(&probs, &[p as isize], false)?)
    } else {
        None
    };
    Ok((out, mean))
}

/// One residual block; with `want_probs`, also its head-averaged attention probabilities.
pub fn residual_block(
    g: &mut Graph,
    w: &Weights,
    x: &Wire,
    tower: Tower,
    mask: Option<&Wire>,
    want_probs: bool,
) -> Result<(Wire, Option<Wire>), BlockError> {
    let c = tower.width;
    let y = layer_norm(g, &w.pp("ln_1"), x, c)?;
    let (a, probs) = g.scoped("attn", |g| {
        attention(g, &w.pp("attn"), &y, tower, mask, want_probs)
    })?;
    let x = g.add(x, &a)?;
    Ok((mlp_residual(g, w, &x, tower)?, probs))
}

/// A block's second half, `x + MLP(LN_2(x))`, for any rows `x` [.., M, W].
pub fn mlp_residual(
    g: &mut Graph,
    w: &Weights,
    x: &Wire,
    tower: Tower,
) -> Result<Wire, BlockError> {
    let c = tower.width;
    let y = layer_norm(g, &w.pp("ln_2"), x, c)?;
    let y = g.scoped("mlp", |g| -> Result<Wire, BlockError> {
        let mlp = w.pp("mlp");
        let y = linear(g, &mlp.pp("c_fc"), &y, tower.mlp_width, c)?;
        let y = activation(g, &y, tower.act)?;
        linear(g, &mlp.pp("c_proj"), &y, c, tower.mlp_width)
    })?;
    Ok(g.add(x, &y)?)
}

/// One of the query / key / value projections of `in_proj_{weight,bias}` (part 0, 1, 2): the
/// rows of the packed [3W, W] weight sliced at export, so no runtime Split is needed.
fn projection(
    g: &mut Graph,
    w: &Weights,
    x: &Wire,
    width: usize,
    part: usize,
) -> Result<Wire, BlockError> {
    use ndarray::{s, Axis};
    let weight = w.get("in_proj_weight", &[3 * width, width])?;
    let bias = w.get("in_proj_bias", &[3 * width])?;
    let rows = part * width..(part + 1) * width;
    let weight = weight.slice_axis(Axis(0), rows.clone().into()).to_owned();
    let bias = bias.slice(s![rows]).to_owned().into_dyn();
    Ok(g.linear(x, &weight, Some(&bias))?)
}

/// Attention of some query rows over all rows, for rows whose outputs are the only ones needed:
/// `queries` [B, M, W] (already through `ln_1`), `rows` [B, S, W] (likewise). Returns the
/// attention output after `out_proj` [B, M, W] and the head-averaged probabilities [B, M, S].
/// Row for row the same arithmetic as [`residual_block`]'s attention over all S queries.
pub fn attention_of_rows(
    g: &mut Graph,
    w: &Weights,
    queries: &Wire,
    rows: &Wire,
    tower: Tower,
) -> Result<(Wire, Wire), BlockError> {
    let (c, h) = (tower.width, tower.heads);
    let dh = c / h;
    let heads = |g: &mut Graph, x: &Wire, perm: &[usize]| -> Result<Wire, BlockError> {
        let rows = x
            .dim(1)
            .ok_or_else(|| g.error("Attention", "expected [B, S, C]"))?;
        let y = g.reshape(x, &[Dim::Batch, rows, Dim::Fixed(h), Dim::Fixed(dh)])?;
        Ok(g.transpose(&y, perm)?)
    };
    let q = projection(g, w, queries, c, 0)?;
    let q = g.scale(&q, 1.0 / (dh as f32).sqrt())?;
    let q = heads(g, &q, &[0, 2, 1, 3])?; // [B, H, M, dh]
    let k = projection(g, w, rows, c, 1)?;
    let k = heads(g, &k, &[0, 2, 3, 1])?; // [B, H, dh, S]
    let v = projection(g, w, rows, c, 2)?;
    let v = heads(g, &v, &[0, 2, 1, 3])?; // [B, H, S, dh]
    let scores = g.matmul(&q, &k)?;
    let probs = g.softmax(&scores, -1)?;
    let out = g.matmul(&probs, &v)?; // [B, H, M, dh]
    let out = g.transpose(&out, &[0, 2, 1, 3])?;
    let rows = queries
        .dim(1)
        .ok_or_else(|| g.error("Attention", "expected queries [B, M, C]"))?;
    let out = g.reshape(&out, &[Dim::Batch, rows, Dim::Fixed(c)])?;
    let out = linear(g, &w.pp("out_proj"), &out, c, c)?;
    let mean = g.reduce_mean(&probs, &[1], false)?;
    Ok((out, mean))
}

/// §2: `image` [B, 3, H, W] → `Z⁰ = ln_pre([cls; patches] + pos)` [B, 1+N, C].
pub fn patch_embedding(
    g: &mut Graph,
    visual: &Weights,
    image: &Wire,
    spec: &Spec,
) -> Result<Wire, BlockError> {
    let (c, p, grid) = (spec.vision.width, spec.vision.patch_size, spec.grid());
    let n = grid * grid;
    let conv = visual.get("conv1.weight", &[c, 3, p, p])?;
    let conv = g.constant_array("conv1", &conv);
    let x = g.conv(image, &conv, p, 1)?; // [B, C, g, g]
    let x = g.reshape(&x, &[Dim::Batch, Dim::Fixed(c), Dim::Fixed(n)])?;
    let x = g.transpose(&x, &[0, 2, 1])?;
    // A zero row in front of the patches, then one constant = positional embedding with the
    // class embedding added to row 0: the same sums, in the same order, as [cls; patches] + pos.
    let x = g.pad(&x, &[0, 1, 0], &[0, 0, 0], "constant")?;
    let pos = visual.get_expected(
        "positional_embedding",
        &ExpectedShape::PositionalGrid {
            width: c,
            native_grid: grid,
        },
    )?;
    let old_grid = pos
        .shape()
        .first()
        .and_then(|rows| crate::manifest::square_side(rows.checked_sub(1)?))
        .ok_or_else(|| g.error("PositionalEmbedding", "not [s²+1, C]"))?;
    let pos = if old_grid == grid {
        pos
    } else {
        crate::pos_embed::resize_positional_embedding(&pos, old_grid, grid)
            .map_err(|e| g.error("PositionalEmbedding", e))?
    };
    let cls = visual.get("class_embedding", &[c])?;
    let mut folded = pos.clone();
    for (j, v) in cls.iter().enumerate() {
        folded[[0, j]] += v;
    }
    let folded = g.constant_array("positional_embedding", &folded);
    let x = g.add(&x, &folded)?;
    layer_norm(g, &visual.pp("ln_pre"), &x, c)
}
