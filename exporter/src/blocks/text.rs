//! The text tower with deep local prompts (model-spec/README.md §4, text side).
//!
//! In: `P'` [B, M, C]. Out: `[t_n, t_a]` [B, 2, D], L2-normalised, per image.
//! Token ids are fixed at export (the spec's templates), so their embeddings plus the positional
//! embedding fold into one constant [T, S, C_t] — the 49408-row table never enters the graph —
//! and the sequence is cut after the last EOT (exact under the causal mask: later tokens never
//! reach an EOT state). Prompt injection is arithmetic, exact in floating point: the constant
//! has zeros at positions 1..M, `Pᵗ_j` zero-padded to S rows is added, and before block j+1 the
//! states are multiplied by a 0/1 row mask first. Weights: `dlvp.mlop.{text_proj,text_static}`,
//! `token_embedding.weight`, `positional_embedding`, `transformer.resblocks.*`, `ln_final`,
//! `text_projection`.

use ndarray::{Array2, Array3, ArrayD, IxDyn};

use crate::graph::{Dim, Graph, Wire};
use crate::spec::Spec;
use crate::tokenize::TemplateTokens;
use crate::weights::Weights;

use super::vit::{layer_norm, linear, residual_block, Tower};
use super::BlockError;

pub fn build(
    g: &mut Graph,
    root: &Weights,
    prompts: &Wire,
    spec: &Spec,
    tokens: &[TemplateTokens],
) -> Result<Wire, BlockError> {
    let t = &spec.text;
    let (ct, c, d, m, depth) = (
        t.width,
        spec.vision.width,
        spec.embed_dim,
        spec.slfs.top_k,
        spec.mlop.text_depth,
    );
    let nt = tokens.len();
    let s = tokens
        .iter()
        .map(|tk| tk.eot + 1)
        .max()
        .ok_or_else(|| g.error("text", "no prompt templates"))?;

    // Constant input: token embeddings (zero at the prompt positions) + positional embedding.
    let table = root.get("token_embedding.weight", &[t.vocab_size, ct])?;
    let pos = root.get("positional_embedding", &[t.context_length, ct])?;
    let mut base = Array3::<f32>::zeros((nt, s, ct));
    for (ti, tk) in tokens.iter().enumerate() {
        for pi in 0..s {
            for ch in 0..ct {
                let token = if (1..=m).contains(&pi) {
                    0.0
                } else {
                    table[[tk.ids[pi] as usize, ch]]
                };
                base[[ti, pi, ch]] = token + pos[[pi, ch]];
            }
        }
    }
    let base = g.constant_array("text_input", &base.into_dyn());

    // Pᵗ_j = P'·W_θᵀ + b_θ + E_j, zero-padded to [B, 1, S, C_t].
    let mlop = root.pp("dlvp.mlop");
    let projected = linear(g, &mlop.pp("text_proj"), prompts, ct, c)?;
    let statics = mlop.get("text_static", &[depth, m, ct])?;
    let mut layer_prompt = Vec::with_capacity(depth);
    for j in 0..depth {
        let e = statics
            .index_axis(ndarray::Axis(0), j)
            .to_owned()
            .into_dyn();
        let e = g.constant_array("text_static", &e);
        let p = g.add(&projected, &e)?;
        let p = g.unsqueeze(&p, 1)?;
        layer_prompt.push(g.pad(&p, &[0, 0, 1, 0], &[0, 0, s - 1 - m, 0], "constant")?);
    }
    let mut keep = ArrayD::<f32>::ones(IxDyn(&[s, 1]));
    for pi in 1..=m {
        keep[[pi, 0]] = 0.0;
    }
    let keep = g.constant_array("prompt_keep", &keep);
    let mask: Vec<f32> = (0..s * s)
        .map(|k| {
            if k % s > k / s {
                f32::NEG_INFINITY
            } else {
                0.0
            }
        })
        .collect();
    let mask = g.constant_f32("causal_mask", &[s, s], &mask);

    let mut x = g.add(&base, &layer_prompt[0])?; // [B, T, S, C_t]
    let tower = Tower::text(spec);
    let blocks = root.pp("transformer").pp("resblocks");
    for j in 0..t.layers {
        if let Some(prompt) = layer_prompt.get(j).filter(|_| (1..depth).contains(&j)) {
            let kept = g.mul(&x, &keep)?;
            x = g.add(&kept, prompt)?;
        }
        x = g
            .scoped(format!("blocks.{j}"), |g| {
                residual_block(g, &blocks.pp(j), &x, tower, Some(&mask), false)
            })?
            .0;
    }

    // EOT rows by a one-hot MatMul [T, 1, S] × [B, T, S, C_t] → [B, T, 1, C_t].
    let mut pick = Array3::<f32>::zeros((nt, 1, s));
    for (ti, tk) in tokens.iter().enumerate() {
        pick[[ti, 0, tk.eot]] = 1.0;
    }
    let pick = g.constant_array("eot_pick", &pick.into_dyn());
    let x = g.matmul(&pick, &x)?;
    let x = layer_norm(g, &root.pp("ln_final"), &x, ct)?;
    let projection = root.get("text_projection", &[ct, d])?;
    let projection = g.constant_array("text_projection", &projection);
    let x = g.matmul(&x, &projection)?;
    let x = g.reshape(&x, &[Dim::Batch, Dim::Fixed(nt), Dim::Fixed(d)])?;
    let x = g.l2_normalize(&x)?;

    // Mean of each class's normalised template embeddings: [2, T] × [B, T, D].
    let mut average = Array2::<f32>::zeros((2, nt));
    for class in 0..2 {
        let members: Vec<usize> = tokens
            .iter()
            .enumerate()
            .filter(|(_, tk)| tk.class == class)
            .map(|(i, _)| i)
            .collect();
        for &i in &members {
            average[[class, i]] = 1.0 / members.len() as f32;
        }
    }
    let average = g.constant_array("class_average", &average.into_dyn());
    let x = g.matmul(&average, &x)?;
    Ok(g.l2_normalize(&x)?)
}
