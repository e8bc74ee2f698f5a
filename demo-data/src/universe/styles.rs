//! Styled defects of the surface universe: every defect is a **shape** drawn with a **finish**,
//! each an independent renderer, so that no one renderer's signature is what a model learns.
//! The kind is `<shape>_<finish>` (`blob_tint`, `stroke_relief`, ...): six shapes × six
//! finishes, 36 kinds.
//!
//! Shapes (a signed distance in pixels, positive inside; the mask is where it is ≥ 0, the
//! coverage ramps over one pixel around it, as in `super::defects`):
//! `ellipse` (rotated, its rim wobbling), `blob` (thresholded noise under a radial falloff),
//! `polygon` (star-convex, 3–9 corners), `stroke` (a bent polyline 1.5–6 px wide), `cluster`
//! (4–15 specks scattered over a small area) and `ring` (a full or partial annulus).
//!
//! Finishes (what the surface becomes inside): `darken` (multiplied down, sometimes tinted),
//! `lighten` (towards white), `tint` (the colour shifts, the brightness stays), `paint` (a flat
//! foreign colour at an opacity), `relief` (a dent or bump shaded by a directional light) and
//! `smear` (the surface dragged sideways and softened).
//!
//! Leaving a shape or a finish out of training (`--hold-out-defects cluster,tint`) leaves out
//! every kind drawn with it; those kinds then measure how far a model generalises to defects
//! drawn by renderers it never saw.

use std::f32::consts::{PI, TAU};
use std::sync::OnceLock;

use super::defects::{bilinear, centre, luma};
use super::textures::dist_to_segment;
use crate::defects::paint;
use crate::noise::{Fractal, Perlin};
use crate::rng::Rng;
use crate::Canvas;

pub const SHAPES: [&str; 6] = ["ellipse", "blob", "polygon", "stroke", "cluster", "ring"];
pub const FINISHES: [&str; 6] = ["darken", "lighten", "tint", "paint", "relief", "smear"];

/// Every styled kind, `<shape>_<finish>`, interleaved so that consecutive kinds differ in both
/// (shape i with finish (i + j) mod 6 for j = 0, 1, ...).
pub fn kinds() -> &'static [&'static str] {
    static KINDS: OnceLock<Vec<&'static str>> = OnceLock::new();
    KINDS.get_or_init(|| {
        let mut kinds = Vec::new();
        for j in 0..FINISHES.len() {
            for (i, shape) in SHAPES.iter().enumerate() {
                let finish = FINISHES[(i + j) % FINISHES.len()];
                kinds.push(&*Box::leak(format!("{shape}_{finish}").into_boxed_str()));
            }
        }
        kinds
    })
}

/// A styled kind's shape and finish; `None` for any other kind.
pub fn split(kind: &str) -> Option<(&'static str, &'static str)> {
    let (shape, finish) = kind.split_once('_')?;
    let shape = SHAPES.iter().find(|s| **s == shape)?;
    let finish = FINISHES.iter().find(|f| **f == finish)?;
    Some((shape, finish))
}

/// The styled kinds drawn with a shape or finish named `word`.
pub fn with(word: &str) -> Vec<&'static str> {
    kinds()
        .iter()
        .copied()
        .filter(|k| split(k).is_some_and(|(s, f)| s == word || f == word))
        .collect()
}

/// A shape's signed distance (px, positive inside) and the box that holds it.
struct Shape {
    bbox: (f32, f32, f32, f32),
    sd: Box<dyn Fn(f32, f32) -> f32>,
}

fn around(c: (f32, f32), r: f32) -> (f32, f32, f32, f32) {
    (c.0 - r, c.1 - r, c.0 + r, c.1 + r)
}

fn shape(name: &str, n: f32, rng: &mut Rng) -> Shape {
    let s = n / 256.0;
    match name {
        "ellipse" => {
            let a = rng.range(3.0, 22.0) * s;
            let b = a * rng.range(0.35, 1.0);
            let (a, b) = (a.max(1.5), b.max(1.5));
            let turn = rng.range(0.0, TAU);
            let (lobes, wobble, phase) = (
                2.0 + rng.below(4) as f32,
                rng.range(0.0, 0.2),
                rng.range(0.0, TAU),
            );
            let c = centre(rng, n, a + 2.0);
            let (cos, sin) = (turn.cos(), turn.sin());
            Shape {
                bbox: around(c, a * 1.3 + 2.0),
                sd: Box::new(move |x, y| {
                    let (dx, dy) = (x - c.0, y - c.1);
                    let (p, q) = (dx * cos + dy * sin, -dx * sin + dy * cos);
                    let rho = ((p / a).powi(2) + (q / b).powi(2)).sqrt();
                    let rim = 1.0 + wobble * (lobes * q.atan2(p) + phase).sin();
                    (rim - rho) * b
                }),
            }
        }
        "blob" => {
            let r = rng.range(6.0, 35.0) * s;
            let c = centre(rng, n, r);
            let noise = Perlin::new(rng.next_u64());
            let f = 1.0 / (r * rng.range(0.4, 0.9));
            let (ox, oy) = (rng.range(0.0, 100.0), rng.range(0.0, 100.0));
            Shape {
                bbox: around(c, r + 2.0),
                sd: Box::new(move |x, y| {
                    let d = ((x - c.0).powi(2) + (y - c.1).powi(2)).sqrt() / r;
                    let v = noise.fractal(x * f + ox, y * f + oy, 2, Fractal::Fbm)
                        + 0.75 * (1.0 - d)
                        - 0.7;
                    // ≈ px: the field changes by about 0.75 over r
                    v * r / 0.75
                }),
            }
        }
        "polygon" => {
            let r = rng.range(5.0, 25.0) * s;
            let c = centre(rng, n, r);
            let k = 3 + rng.below(7);
            let mut angles: Vec<f32> = (0..k).map(|_| rng.range(0.0, TAU)).collect();
            angles.sort_by(f32::total_cmp);
            let corners: Vec<(f32, f32)> = angles
                .iter()
                .map(|&a| {
                    let rr = (r * rng.range(0.45, 1.0)).max(2.0);
                    (c.0 + rr * a.cos(), c.1 + rr * a.sin())
                })
                .collect();
            Shape {
                bbox: around(c, r + 2.0),
                sd: Box::new(move |x, y| {
                    let mut inside = false;
                    let mut d = f32::MAX;
                    for i in 0..corners.len() {
                        let (a, b) = (corners[i], corners[(i + 1) % corners.len()]);
                        d = d.min(dist_to_segment((x, y), a, b));
                        if (a.1 > y) != (b.1 > y) && x < a.0 + (y - a.1) * (b.0 - a.0) / (b.1 - a.1)
                        {
                            inside = !inside;
                        }
                    }
                    if inside {
                        d
                    } else {
                        -d
                    }
                }),
            }
        }
        "stroke" => {
            let len = rng.range(20.0, 90.0) * s;
            let width = (rng.range(1.5, 6.0) * s).max(1.5);
            let parts = 2 + rng.below(4);
            let c = centre(rng, n, len / 2.0);
            let mut heading = rng.range(0.0, TAU);
            let mut pts = vec![(
                c.0 - heading.cos() * len / 2.0,
                c.1 - heading.sin() * len / 2.0,
            )];
            for _ in 0..parts {
                let last = *pts.last().expect("a start");
                pts.push((
                    last.0 + heading.cos() * len / parts as f32,
                    last.1 + heading.sin() * len / parts as f32,
                ));
                heading += rng.range(-0.6, 0.6);
            }
            let (x0, y0, x1, y1) = pts
                .iter()
                .fold((f32::MAX, f32::MAX, f32::MIN, f32::MIN), |b, p| {
                    (b.0.min(p.0), b.1.min(p.1), b.2.max(p.0), b.3.max(p.1))
                });
            let pad = width + 2.0;
            Shape {
                bbox: (x0 - pad, y0 - pad, x1 + pad, y1 + pad),
                sd: Box::new(move |x, y| {
                    let d = pts
                        .windows(2)
                        .map(|w| dist_to_segment((x, y), w[0], w[1]))
                        .fold(f32::MAX, f32::min);
                    width / 2.0 - d
                }),
            }
        }
        "cluster" => {
            let r = rng.range(8.0, 25.0) * s;
            let c = centre(rng, n, r + 3.0 * s);
            let dots: Vec<(f32, f32, f32)> = (0..4 + rng.below(12))
                .map(|_| {
                    let (a, d) = (rng.range(0.0, TAU), r * rng.uniform().sqrt());
                    (
                        c.0 + d * a.cos(),
                        c.1 + d * a.sin(),
                        (rng.range(0.8, 3.0) * s).max(1.0),
                    )
                })
                .collect();
            Shape {
                bbox: around(c, r + 4.0 * s + 2.0),
                sd: Box::new(move |x, y| {
                    dots.iter()
                        .map(|&(dx, dy, dr)| dr - ((x - dx).powi(2) + (y - dy).powi(2)).sqrt())
                        .fold(f32::MIN, f32::max)
                }),
            }
        }
        "ring" => {
            let r = rng.range(5.0, 20.0) * s;
            let width = (rng.range(1.5, 4.0) * s).max(1.5);
            let c = centre(rng, n, r + width);
            let (from, span) = (
                rng.range(0.0, TAU),
                if rng.chance(0.5) {
                    TAU
                } else {
                    rng.range(PI, 1.8 * PI)
                },
            );
            Shape {
                bbox: around(c, r + width + 2.0),
                sd: Box::new(move |x, y| {
                    let (dx, dy) = (x - c.0, y - c.1);
                    let along = (dy.atan2(dx) - from).rem_euclid(TAU);
                    let band = width / 2.0 - ((dx * dx + dy * dy).sqrt() - r).abs();
                    if along <= span {
                        band
                    } else {
                        // past the arc's end: the distance to its end caps, roughly
                        band - (along - span).min(TAU - along) * r
                    }
                }),
            }
        }
        other => unreachable!("styles: unknown shape {other}"),
    }
}

/// Paints a `<shape>_<finish>` defect; `kind` must be one of [`kinds`].
pub fn draw(kind: &str, canvas: &mut Canvas, mask: &mut [u8], rng: &mut Rng) {
    let (shape_name, finish) = split(kind).expect("a styled kind");
    let n = canvas.size as f32;
    let s = n / 256.0;
    let shape = shape(shape_name, n, rng);
    let sd = &shape.sd;
    let alpha = |x: f32, y: f32| sd(x, y) + 0.5;
    match finish {
        "darken" | "lighten" => {
            let k = rng.range(0.25, 0.7);
            let tint = if rng.chance(0.3) {
                [0; 3].map(|_| rng.range(0.7, 1.0))
            } else {
                [1.0; 3]
            };
            let dark = finish == "darken";
            paint(canvas, mask, shape.bbox, alpha, |old, _, _| {
                [0, 1, 2].map(|c| {
                    if dark {
                        old[c] * (1.0 - k) * tint[c]
                    } else {
                        old[c] + (1.0 - old[c]) * k * tint[c]
                    }
                })
            });
        }
        "tint" => {
            // a saturated colour's chroma (its luma removed), added: the brightness stays
            let hue = rng.range(0.0, TAU);
            let rgb = [0.0, 2.0 * PI / 3.0, 4.0 * PI / 3.0].map(|o| 0.5 + 0.5 * (hue + o).cos());
            let l = luma(rgb);
            let strength = rng.range(0.2, 0.5);
            paint(canvas, mask, shape.bbox, alpha, |old, _, _| {
                [0, 1, 2].map(|c| old[c] + strength * (rgb[c] - l))
            });
        }
        "paint" => {
            let colour = [0; 3].map(|_| rng.uniform());
            let opacity = rng.range(0.6, 1.0);
            let grain = Perlin::new(rng.next_u64());
            paint(canvas, mask, shape.bbox, alpha, |old, x, y| {
                let g = 0.12 * (grain.at(x * 0.4 / s, y * 0.4 / s) - 0.5);
                [0, 1, 2].map(|c| old[c] * (1.0 - opacity) + (colour[c] + g) * opacity)
            });
        }
        "relief" => {
            // height: a ramp from the rim inwards; shading: its slope against the light's
            // direction in the image plane, and a dent is darker at its bottom
            let depth = if rng.chance(0.5) { -1.0 } else { 1.0 } * rng.range(0.5, 1.0);
            let ramp = (rng.range(1.0, 5.0) * s).max(1.0);
            let azimuth = rng.range(0.0, TAU);
            let (lx, ly) = (azimuth.cos(), azimuth.sin());
            let h = |x: f32, y: f32| depth * (sd(x, y) / ramp).clamp(0.0, 1.0);
            paint(canvas, mask, shape.bbox, alpha, |old, x, y| {
                let hx = (h(x + 0.5, y) - h(x - 0.5, y)) * ramp;
                let hy = (h(x, y + 0.5) - h(x, y - 0.5)) * ramp;
                let shade = (1.0 - 0.6 * (hx * lx + hy * ly)).clamp(0.3, 1.8);
                let floor = if depth < 0.0 {
                    1.0 + 0.35 * h(x, y)
                } else {
                    1.0 + 0.1 * h(x, y)
                };
                old.map(|v| (v * shade * floor).clamp(0.0, 1.0))
            });
        }
        "smear" => {
            let reach = rng.range(2.0, 8.0) * s;
            let angle = rng.range(0.0, TAU);
            let (dx, dy) = (angle.cos() * reach, angle.sin() * reach);
            let source = Canvas {
                size: canvas.size,
                rgb: canvas.rgb.clone(),
            };
            paint(canvas, mask, shape.bbox, alpha, |_, x, y| {
                // dragged along (dx, dy), averaged over the drag: a streak of the surface itself
                let mut acc = [0.0f32; 3];
                for t in 0..5 {
                    let f = 0.5 + t as f32 * 0.25;
                    let c = bilinear(&source, x - dx * f, y - dy * f);
                    (0..3).for_each(|k| acc[k] += c[k] / 5.0);
                }
                acc
            });
        }
        other => unreachable!("styles: unknown finish {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shape_and_finish_makes_a_kind_and_splits_back() {
        assert_eq!(kinds().len(), SHAPES.len() * FINISHES.len());
        let mut unique = kinds().to_vec();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), kinds().len());
        for kind in kinds() {
            let (s, f) = split(kind).unwrap();
            assert_eq!(format!("{s}_{f}"), *kind);
        }
        assert_eq!(split("missing_thread"), None);
        assert_eq!(split("subtle_spot"), None);
        assert_eq!(with("cluster").len(), 6);
        assert_eq!(with("tint").len(), 6);
        assert!(with("hole").is_empty());
    }

    /// Each shape's signed distance is positive somewhere inside its box and negative at the
    /// box's corners: the mask is a bounded, non-empty region.
    #[test]
    fn every_shape_is_a_bounded_region() {
        for (i, name) in SHAPES.iter().enumerate() {
            for seed in 0..20u64 {
                let mut rng = Rng::new(seed * 31 + i as u64);
                let sh = shape(name, 256.0, &mut rng);
                let (x0, y0, x1, y1) = sh.bbox;
                let mut inside = 0;
                for j in 0..64 {
                    for k in 0..64 {
                        let (x, y) = (
                            x0 + (x1 - x0) * k as f32 / 63.0,
                            y0 + (y1 - y0) * j as f32 / 63.0,
                        );
                        inside += usize::from((sh.sd)(x, y) >= 0.0);
                    }
                }
                assert!(inside > 0, "{name} #{seed}: empty");
                for (x, y) in [(x0, y0), (x1, y0), (x0, y1), (x1, y1)] {
                    assert!((sh.sd)(x, y) < 0.0, "{name} #{seed}: corner inside");
                }
            }
        }
    }
}
