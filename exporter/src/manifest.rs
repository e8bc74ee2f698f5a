//! The tensors a DLVP-CLIP checkpoint holds for a given spec (model-spec/README.md
//! "Checkpoint format"): OpenCLIP names for the CLIP towers plus the
//! `dlvp.*` tensors, each with the shape the spec implies (PyTorch Linear layout, [out, in]).
//!
//! The manifest is the single list that `dlvp weights check` compares a checkpoint against.

use std::fmt;

use crate::spec::Spec;

/// The shape a tensor must have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpectedShape {
    Exact(Vec<usize>),
    /// `[s² + 1, width]` for any grid side s ≥ 1: a visual positional embedding, which the
    /// exporter resizes to the spec's grid `native_grid` when s differs (model-spec/README.md §2).
    PositionalGrid {
        width: usize,
        native_grid: usize,
    },
}

impl ExpectedShape {
    pub fn matches(&self, shape: &[usize]) -> bool {
        match self {
            ExpectedShape::Exact(dims) => dims.as_slice() == shape,
            ExpectedShape::PositionalGrid { width, .. } => {
                shape.len() == 2
                    && shape[1] == *width
                    && shape[0] >= 2
                    && square_side(shape[0] - 1).is_some()
            }
        }
    }

    /// The shape a checkpoint made for this very spec has (the spec's own grid).
    pub fn native(&self) -> Vec<usize> {
        match self {
            ExpectedShape::Exact(dims) => dims.clone(),
            ExpectedShape::PositionalGrid { width, native_grid } => {
                vec![native_grid * native_grid + 1, *width]
            }
        }
    }
}

/// The side s with s² = n, if n is a perfect square.
pub fn square_side(n: usize) -> Option<usize> {
    let s = (n as f64).sqrt().round() as usize;
    (s.checked_mul(s) == Some(n)).then_some(s)
}

impl fmt::Display for ExpectedShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedShape::Exact(dims) => write!(f, "{dims:?}"),
            ExpectedShape::PositionalGrid { width, native_grid } => {
                write!(
                    f,
                    "[s²+1, {width}] for a square grid side s (this spec's s = {native_grid})"
                )
            }
        }
    }
}

/// Whether the exported graph reads a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    Graph,
    /// Part of a valid checkpoint but not read by the graph (`logit_scale`): never "unused".
    Ignored,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedTensor {
    pub name: String,
    pub shape: ExpectedShape,
    pub usage: Usage,
}

/// Every tensor of a checkpoint for `spec`, in a stable order (vision, text, dlvp).
pub fn expected_tensors(spec: &Spec) -> Vec<ExpectedTensor> {
    let mut out = Vec::new();
    let mut add = |name: String, dims: &[usize]| {
        out.push(ExpectedTensor {
            name,
            shape: ExpectedShape::Exact(dims.to_vec()),
            usage: Usage::Graph,
        })
    };
    let (v, t) = (&spec.vision, &spec.text);
    let (c, ct, d, p, m) = (
        v.width,
        t.width,
        spec.embed_dim,
        v.patch_size,
        spec.slfs.top_k,
    );

    add("visual.conv1.weight".into(), &[c, 3, p, p]);
    add("visual.class_embedding".into(), &[c]);
    add("visual.ln_pre.weight".into(), &[c]);
    add("visual.ln_pre.bias".into(), &[c]);
    for n in 0..v.layers {
        residual_block(
            &format!("visual.transformer.resblocks.{n}"),
            c,
            v.mlp_width(),
            &mut add,
        );
    }
    add("visual.ln_post.weight".into(), &[c]);
    add("visual.ln_post.bias".into(), &[c]);
    add("visual.proj".into(), &[c, d]);

    add("token_embedding.weight".into(), &[t.vocab_size, ct]);
    add("positional_embedding".into(), &[t.context_length, ct]);
    for n in 0..t.layers {
        residual_block(
            &format!("transformer.resblocks.{n}"),
            ct,
            t.mlp_width(),
            &mut add,
        );
    }
    add("ln_final.weight".into(), &[ct]);
    add("ln_final.bias".into(), &[ct]);
    add("text_projection".into(), &[ct, d]);

    add("dlvp.mlop.norm.weight".into(), &[c]);
    add("dlvp.mlop.norm.bias".into(), &[c]);
    add("dlvp.mlop.proj.weight".into(), &[c, c]);
    add("dlvp.mlop.proj.bias".into(), &[c]);
    add("dlvp.mlop.text_proj.weight".into(), &[ct, c]);
    add("dlvp.mlop.text_proj.bias".into(), &[ct]);
    add(
        "dlvp.mlop.text_static".into(),
        &[spec.mlop.text_depth, m, ct],
    );
    for layer in &spec.feature_layers {
        for part in ["in_proj", "low", "high"] {
            add(format!("dlvp.hfd.{layer}.{part}.weight"), &[c, c]);
            add(format!("dlvp.hfd.{layer}.{part}.bias"), &[c]);
        }
    }
    add(
        "dlvp.head.local_proj.weight".into(),
        &[d, spec.feature_layers.len() * c],
    );
    add("dlvp.head.local_proj.bias".into(), &[d]);

    out.push(ExpectedTensor {
        name: "visual.positional_embedding".into(),
        shape: ExpectedShape::PositionalGrid {
            width: c,
            native_grid: spec.grid(),
        },
        usage: Usage::Graph,
    });
    out.push(ExpectedTensor {
        name: "logit_scale".into(),
        shape: ExpectedShape::Exact(vec![]),
        usage: Usage::Ignored,
    });
    out
}

/// OpenCLIP `ResidualAttentionBlock` parameters of width `w` and MLP hidden width `h`.
fn residual_block(prefix: &str, w: usize, h: usize, add: &mut impl FnMut(String, &[usize])) {
    for (name, dims) in [
        ("ln_1.weight", vec![w]),
        ("ln_1.bias", vec![w]),
        ("attn.in_proj_weight", vec![3 * w, w]),
        ("attn.in_proj_bias", vec![3 * w]),
        ("attn.out_proj.weight", vec![w, w]),
        ("attn.out_proj.bias", vec![w]),
        ("ln_2.weight", vec![w]),
        ("ln_2.bias", vec![w]),
        ("mlp.c_fc.weight", vec![h, w]),
        ("mlp.c_fc.bias", vec![h]),
        ("mlp.c_proj.weight", vec![w, h]),
        ("mlp.c_proj.bias", vec![w]),
    ] {
        add(format!("{prefix}.{name}"), &dims);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_count_matches_the_architecture() {
        let spec = Spec::default();
        let list = expected_tensors(&spec);
        let names: std::collections::BTreeSet<_> = list.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names.len(), list.len());
        // 12 per block in each tower; 7 fixed vision + visual positional embedding; 5 fixed text
        // + logit_scale; 7 MLoP; 6 per HFD layer; 2 head.
        let expected = 12 * (24 + 12) + 7 + 1 + 5 + 1 + 7 + 6 * 4 + 2;
        assert_eq!(list.len(), expected);
    }

    #[test]
    fn positional_grid_accepts_square_grids_only() {
        let shape = ExpectedShape::PositionalGrid {
            width: 8,
            native_grid: 37,
        };
        assert_eq!(shape.native(), vec![37 * 37 + 1, 8]);
        assert!(shape.matches(&[37 * 37 + 1, 8]));
        assert!(shape.matches(&[2, 8]));
        assert!(!shape.matches(&[37 * 37, 8]));
        assert!(!shape.matches(&[51, 8]));
        assert!(!shape.matches(&[37 * 37 + 1, 9]));
        assert!(!shape.matches(&[37 * 37 + 1]));
    }
}
