//! Anomaly maps and the image score (model-spec/README.md §6, §7).
//!
//! In: the refined features `F^o_i` [B, N, C] for i ∈ 𝓛, the class token `c` [B, 1, C] and the
//! text features [B, 2, D]. Out: `anomaly_map` [B, 1, H, W], `anomaly_score` [B].
//! Per layer, `softmax(τ · normalize(ln_post(F^o_i)·proj) · [t_n, t_a]ᵀ)` on the g×g grid; the
//! mean of `(m^a + 1 − m^n)/2` over layers is linear, and so is the bilinear upsampling, so the
//! graph combines the layers with one 1×1 Conv at g×g and upsamples once, then adds ½ and blurs
//! (separable Conv, reflect padding, radius ⌈4σ⌉). Weights: `visual.{ln_post, proj}`,
//! `dlvp.head.local_proj`.

use crate::graph::{Dim, Graph, Wire};
use crate::spec::Spec;
use crate::weights::Weights;

use super::vit::{layer_norm, linear};
use super::BlockError;

fn project(g: &mut Graph, visual: &Weights, x: &Wire, spec: &Spec) -> Result<Wire, BlockError> {
    let (c, d) = (spec.vision.width, spec.embed_dim);
    let y = layer_norm(g, &visual.pp("ln_post"), x, c)?;
    let proj = visual.get("proj", &[c, d])?;
    let proj = g.constant_array("proj", &proj);
    Ok(g.matmul(&y, &proj)?)
}

/// Gaussian weights of radius ⌈4σ⌉, normalised to sum 1 (computed in f64, stored f32).
pub fn gaussian_kernel(sigma: f64) -> Vec<f32> {
    let radius = (4.0 * sigma).ceil() as i64;
    let w: Vec<f64> = (-radius..=radius)
        .map(|x| (-(x * x) as f64 / (2.0 * sigma * sigma)).exp())
        .collect();
    let total: f64 = w.iter().sum();
    w.iter().map(|v| (v / total) as f32).collect()
}

fn blur(g: &mut Graph, x: &Wire, sigma: f64) -> Result<Wire, BlockError> {
    let kernel = gaussian_kernel(sigma);
    let r = kernel.len() / 2;
    let horizontal = g.constant_f32("blur_x", &[1, 1, 1, kernel.len()], &kernel);
    let vertical = g.constant_f32("blur_y", &[1, 1, kernel.len(), 1], &kernel);
    let y = g.pad(x, &[0, 0, 0, r], &[0, 0, 0, r], "reflect")?;
    let y = g.conv(&y, &horizontal, 1, 1)?;
    let y = g.pad(&y, &[0, 0, r, 0], &[0, 0, r, 0], "reflect")?;
    Ok(g.conv(&y, &vertical, 1, 1)?)
}

pub struct Head {
    pub anomaly_map: Wire,
    pub anomaly_score: Wire,
}

pub fn build(
    g: &mut Graph,
    root: &Weights,
    refined: &[(usize, Wire)],
    cls: &Wire,
    text: &Wire,
    spec: &Spec,
) -> Result<Head, BlockError> {
    let visual = root.pp("visual");
    let (grid, size, c) = (spec.grid(), spec.image_size, spec.vision.width);
    let tau = (1.0 / spec.temperature) as f32;
    let text_t = g.transpose(text, &[0, 2, 1])?; // [B, D, 2]
    let mut layer_probs = Vec::new();
    for (i, f) in refined {
        let probs = g.scoped(format!("layer.{i}"), |g| -> Result<Wire, BlockError> {
            let y = project(g, &visual, f, spec)?;
            let y = g.l2_normalize(&y)?;
            let logits = g.matmul(&y, &text_t)?;
            let logits = g.scale(&logits, tau)?;
            let probs = g.softmax(&logits, -1)?; // [B, N, 2]
            let probs = g.transpose(&probs, &[0, 2, 1])?;
            Ok(g.reshape(
                &probs,
                &[
                    Dim::Batch,
                    Dim::Fixed(2),
                    Dim::Fixed(grid),
                    Dim::Fixed(grid),
                ],
            )?)
        })?;
        layer_probs.push(probs);
    }
    let parts: Vec<&Wire> = layer_probs.iter().collect();
    let stacked = g.concat(&parts, 1)?; // [B, 2L, g, g]: (normal, anomaly) per layer
    let l = refined.len();
    let weights: Vec<f32> = (0..2 * l)
        .map(|k| {
            if k % 2 == 1 {
                0.5 / l as f32
            } else {
                -0.5 / l as f32
            }
        })
        .collect();
    let combine = g.constant_f32("layer_mean", &[1, 2 * l, 1, 1], &weights);
    let map = g.conv(&stacked, &combine, 1, 1)?;
    let map = g.resize_bilinear(&map, size, size)?;
    let map = g.offset(&map, 0.5)?;
    let sigma = spec.postprocess.gaussian_sigma;
    let anomaly_map = if sigma > 0.0 {
        g.scoped("blur", |g| blur(g, &map, sigma))?
    } else {
        map
    };

    let score = g.scoped("score", |g| -> Result<Wire, BlockError> {
        let x_c = project(g, &visual, cls, spec)?; // [B, 1, D]
        let pooled: Vec<Wire> = refined
            .iter()
            .map(|(_, f)| g.reduce_mean(f, &[1], true))
            .collect::<Result<_, _>>()?;
        let parts: Vec<&Wire> = pooled.iter().collect();
        let pooled = g.concat(&parts, 2)?; // [B, 1, L·C]
        let x_p = linear(
            g,
            &root.pp("dlvp.head.local_proj"),
            &pooled,
            spec.embed_dim,
            l * c,
        )?;
        let x = g.add(&x_c, &x_p)?;
        let x = g.l2_normalize(&x)?;
        let logits = g.matmul(&x, &text_t)?;
        let logits = g.scale(&logits, tau)?;
        let probs = g.softmax(&logits, -1)?; // [B, 1, 2]
        let anomaly = g.slice(&probs, 2, 1, 2)?;
        let s = g.reshape(&anomaly, &[Dim::Batch])?;
        let w = spec.score.map_max_weight as f32;
        if w == 0.0 {
            return Ok(s);
        }
        let peak = g.reduce_max(&anomaly_map, &[1, 2, 3], false)?;
        let a = g.scale(&s, 1.0 - w)?;
        let b = g.scale(&peak, w)?;
        Ok(g.add(&a, &b)?)
    })?;
    Ok(Head {
        anomaly_map,
        anomaly_score: score,
    })
}
