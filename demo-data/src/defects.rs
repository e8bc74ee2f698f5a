//! Synthetic defects painted onto a surface, each with its exact pixel mask.
//!
//! A defect is a coverage function α(x, y) ∈ [0, 1] (anti-aliased shape) and a colour rule;
//! the new pixel is `old·(1−α) + target(old)·α`, and the mask is exactly the pixels with α ≥ ½,
//! so the mask marks what a person would call the defect and nothing else.

use super::noise::ValueNoise;
use super::rng::Rng;
use super::Canvas;

/// The defect types of each category (MVTec AD names its test folders after them).
pub fn kinds_for(category: &str) -> &'static [&'static str] {
    match category {
        "fabric" => &["hole", "stain", "missing_thread", "contamination"],
        "metal" => &["scratch", "stain", "contamination"],
        "wood" => &["crack", "hole", "stain", "scratch"],
        "tile" => &["crack", "chip", "stain"],
        "leather" => &["cut", "hole", "stain", "contamination"],
        _ => &[],
    }
}

type Point = (f32, f32);

/// Euclidean RGB distance (components in [0, 1]) a contaminant keeps from the surface's mean colour.
const MIN_CONTAMINANT_CONTRAST: f32 = 0.45;

fn colour_distance(a: [f32; 3], b: [f32; 3]) -> f32 {
    (0..3).map(|c| (a[c] - b[c]).powi(2)).sum::<f32>().sqrt()
}

fn dist_to_segment(p: Point, a: Point, b: Point) -> f32 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len2 = dx * dx + dy * dy;
    let t = if len2 > 0.0 {
        (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (qx, qy) = (a.0 + t * dx - p.0, a.1 + t * dy - p.1);
    (qx * qx + qy * qy).sqrt()
}

/// Paints coverage `alpha` inside the box `[x0, x1) × [y0, y1)` with `target(old)`; marks the mask.
pub(super) fn paint(
    canvas: &mut Canvas,
    mask: &mut [u8],
    bbox: (f32, f32, f32, f32),
    alpha: impl Fn(f32, f32) -> f32,
    target: impl Fn([f32; 3], f32, f32) -> [f32; 3],
) {
    let n = canvas.size;
    let clampi = |v: f32| (v.max(0.0) as usize).min(n);
    let (x0, y0, x1, y1) = (
        clampi(bbox.0.floor()),
        clampi(bbox.1.floor()),
        clampi(bbox.2.ceil() + 1.0),
        clampi(bbox.3.ceil() + 1.0),
    );
    for y in y0..y1 {
        for x in x0..x1 {
            let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
            let a = alpha(px, py).clamp(0.0, 1.0);
            if a <= 0.0 {
                continue;
            }
            let old = canvas.get(x, y);
            let new = target(old, px, py);
            canvas.set(x, y, [0, 1, 2].map(|c| old[c] * (1.0 - a) + new[c] * a));
            if a >= 0.5 {
                mask[y * n + x] = 255;
            }
        }
    }
}

/// A stroke along a polyline, `width` px wide with a one-pixel anti-aliased edge.
fn stroke(
    canvas: &mut Canvas,
    mask: &mut [u8],
    pts: &[Point],
    width: f32,
    target: impl Fn([f32; 3]) -> [f32; 3],
) {
    // Thinner than 1.5 px, a stroke would leave almost no mask pixel at small image sizes.
    let width = width.max(1.5);
    let pad = width + 2.0;
    let bbox = pts
        .iter()
        .fold((f32::MAX, f32::MAX, f32::MIN, f32::MIN), |b, p| {
            (
                b.0.min(p.0 - pad),
                b.1.min(p.1 - pad),
                b.2.max(p.0 + pad),
                b.3.max(p.1 + pad),
            )
        });
    let alpha = |x: f32, y: f32| {
        let d = pts
            .windows(2)
            .map(|w| dist_to_segment((x, y), w[0], w[1]))
            .fold(f32::MAX, f32::min);
        width / 2.0 - d + 0.5
    };
    paint(canvas, mask, bbox, alpha, |old, _, _| target(old));
}

/// An irregular blob: radius `r` modulated by a few random harmonics of the angle.
fn blob(
    canvas: &mut Canvas,
    mask: &mut [u8],
    rng: &mut Rng,
    centre: Point,
    r: f32,
    edge: f32,
    target: impl Fn([f32; 3], f32, f32) -> [f32; 3],
) {
    let r = r.max(1.5); // as with strokes: keep a defect visible at small sizes
    let harmonics: Vec<(f32, f32, f32)> = (2..6)
        .map(|k| {
            (
                k as f32,
                rng.range(0.0, 0.12),
                rng.range(0.0, std::f32::consts::TAU),
            )
        })
        .collect();
    let radius = |theta: f32| {
        r * (1.0
            + harmonics
                .iter()
                .map(|&(k, a, p)| a * (k * theta + p).sin())
                .sum::<f32>())
    };
    let pad = r * 1.6 + edge + 2.0;
    let bbox = (
        centre.0 - pad,
        centre.1 - pad,
        centre.0 + pad,
        centre.1 + pad,
    );
    let alpha = |x: f32, y: f32| {
        let (dx, dy) = (x - centre.0, y - centre.1);
        (radius(dy.atan2(dx)) - (dx * dx + dy * dy).sqrt()) / edge + 0.5
    };
    paint(canvas, mask, bbox, alpha, target);
}

fn random_centre(rng: &mut Rng, n: f32) -> Point {
    (rng.range(0.2, 0.8) * n, rng.range(0.2, 0.8) * n)
}

/// A smooth curve (quadratic Bézier) sampled as a polyline, starting anywhere on an `n`-pixel
/// canvas, as long as features of an `f`-pixel design.
fn curve(rng: &mut Rng, n: f32, f: f32) -> Vec<Point> {
    let start = random_centre(rng, n);
    let angle = rng.range(0.0, std::f32::consts::TAU);
    let len = rng.range(0.25, 0.55) * f;
    let end = (start.0 + len * angle.cos(), start.1 + len * angle.sin());
    let bend = rng.range(-0.25, 0.25) * len;
    let ctrl = (
        (start.0 + end.0) / 2.0 - bend * angle.sin(),
        (start.1 + end.1) / 2.0 + bend * angle.cos(),
    );
    (0..=24)
        .map(|i| {
            let t = i as f32 / 24.0;
            let (a, b, c) = ((1.0 - t) * (1.0 - t), 2.0 * t * (1.0 - t), t * t);
            (
                a * start.0 + b * ctrl.0 + c * end.0,
                a * start.1 + b * ctrl.1 + c * end.1,
            )
        })
        .collect()
}

/// A jagged random walk, as cracks run.
fn jagged(rng: &mut Rng, n: f32, f: f32) -> Vec<Point> {
    let mut p = random_centre(rng, n);
    let mut angle = rng.range(0.0, std::f32::consts::TAU);
    let step = f / 64.0;
    let mut pts = vec![p];
    for _ in 0..rng.range(18.0, 36.0) as usize {
        angle += 0.45 * rng.normal();
        p = (p.0 + step * angle.cos(), p.1 + step * angle.sin());
        pts.push(p);
    }
    pts
}

/// Paints one defect of `kind` and returns its mask (0 or 255 per pixel, row-major).
pub fn apply(kind: &str, canvas: &mut Canvas, rng: &mut Rng) -> Vec<u8> {
    let detail = canvas.size;
    apply_detailed(kind, canvas, detail, rng)
}

/// [`apply`] with the defect sized as for a `detail`-pixel image (anywhere on the canvas): on a
/// 2048 px canvas with `detail` 256, holes and stains are 8–70 px across and scratches 2–4 px
/// wide, as they are on a 256 px image.
pub fn apply_detailed(kind: &str, canvas: &mut Canvas, detail: usize, rng: &mut Rng) -> Vec<u8> {
    let size = canvas.size;
    let n = size as f32;
    let f = detail as f32;
    let s = f / 256.0;
    let mut mask = vec![0u8; size * size];
    let m = &mut mask;
    match kind {
        "scratch" | "cut" => {
            let pts = curve(rng, n, f);
            let bright = kind == "scratch" && rng.chance(0.6);
            let width = rng.range(2.0, 4.0) * s;
            stroke(canvas, m, &pts, width, |c| {
                if bright {
                    c.map(|v| (v * 0.4 + 0.6).min(1.0))
                } else {
                    c.map(|v| v * 0.25)
                }
            });
        }
        "crack" => {
            let pts = jagged(rng, n, f);
            stroke(canvas, m, &pts, rng.range(1.8, 3.2) * s, |c| {
                c.map(|v| v * 0.12)
            });
            if rng.chance(0.5) {
                let from = pts[pts.len() / 2];
                let mut branch = vec![from];
                let mut angle = rng.range(0.0, std::f32::consts::TAU);
                for _ in 0..10 {
                    angle += 0.4 * rng.normal();
                    let last = *branch.last().unwrap_or(&from);
                    branch.push((
                        last.0 + f / 64.0 * angle.cos(),
                        last.1 + f / 64.0 * angle.sin(),
                    ));
                }
                stroke(canvas, m, &branch, 1.8 * s, |c| c.map(|v| v * 0.15));
            }
        }
        "hole" => {
            let centre = random_centre(rng, n);
            let r = rng.range(0.04, 0.08) * f;
            blob(canvas, m, rng, centre, r, 1.5 * s, |_, _, _| {
                [0.04, 0.035, 0.03]
            });
        }
        "chip" => {
            let centre = random_centre(rng, n);
            let r = rng.range(0.04, 0.07) * f;
            let body = [0.88, 0.85, 0.78];
            blob(canvas, m, rng, centre, r, 1.5 * s, |_, x, y| {
                let rough = 0.85 + 0.15 * ValueNoise::new(9).at(x * 0.4, y * 0.4);
                body.map(|v| v * rough)
            });
        }
        "stain" => {
            let centre = random_centre(rng, n);
            let r = rng.range(0.07, 0.13) * f;
            let tints = [[0.45, 0.32, 0.15], [0.25, 0.25, 0.3], [0.6, 0.55, 0.2]];
            let tint = tints[rng.below(tints.len())];
            blob(canvas, m, rng, centre, r, 4.0 * s, |old, _, _| {
                [0, 1, 2].map(|c| old[c] * tint[c] * 0.9)
            });
        }
        "contamination" => {
            let colours = [
                [0.15, 0.35, 0.85],
                [0.9, 0.9, 0.85],
                [0.2, 0.7, 0.25],
                [0.85, 0.15, 0.1],
            ];
            // A contaminant the colour of the surface would be invisible (a red fibre on red
            // fabric) yet still masked: only colours far from the surface's mean are drawn.
            let surface = canvas.mean();
            let visible: Vec<[f32; 3]> = colours
                .iter()
                .copied()
                .filter(|c| colour_distance(*c, surface) >= MIN_CONTAMINANT_CONTRAST)
                .collect();
            let colour = if visible.is_empty() {
                // No surface the generator paints is this close to every colour; stay total anyway.
                *colours
                    .iter()
                    .max_by(|a, b| {
                        colour_distance(**a, surface).total_cmp(&colour_distance(**b, surface))
                    })
                    .unwrap_or(&colours[0])
            } else {
                visible[rng.below(visible.len())]
            };
            if rng.chance(0.4) {
                // A stray fibre, 3 px wide at 256 px so it survives the model's resize.
                let pts = curve(rng, n * 0.5, f * 0.5);
                let shift = random_centre(rng, n * 0.5);
                let pts: Vec<Point> = pts.iter().map(|p| (p.0 + shift.0, p.1 + shift.1)).collect();
                stroke(canvas, m, &pts, 3.0 * s, |_| colour);
            } else {
                let centre = random_centre(rng, n);
                for _ in 0..1 + rng.below(3) {
                    let c = (
                        centre.0 + rng.range(-0.08, 0.08) * f,
                        centre.1 + rng.range(-0.08, 0.08) * f,
                    );
                    let r = rng.range(0.02, 0.04) * f;
                    blob(canvas, m, rng, c, r, 1.0 * s, |_, _, _| colour);
                }
            }
        }
        "missing_thread" => {
            // A band of the weave with one thread pulled out: the threads underneath show, in shadow.
            let horizontal = rng.chance(0.5);
            let width = rng.range(5.0, 8.0) * s;
            let place = rng.range(0.2, 0.8);
            let at = place * n;
            // Along the thread: an f-pixel stretch, placed on the canvas by the same draw as `at`
            // (at 0 when the canvas is f pixels).
            let origin = (n - f) * (place - 0.2) / 0.6;
            let (from, to) = (
                origin + rng.range(0.0, 0.4) * f,
                origin + rng.range(0.6, 1.0) * f,
            );
            let bbox = if horizontal {
                (from, at - width, to, at + width)
            } else {
                (at - width, from, at + width, to)
            };
            let alpha = |x: f32, y: f32| {
                let (across, along) = if horizontal { (y, x) } else { (x, y) };
                (width / 2.0 - (across - at).abs() + 0.5)
                    .min(along - from)
                    .min(to - along)
            };
            paint(canvas, m, bbox, alpha, |old, x, y| {
                let along = if horizontal { x } else { y };
                let gap = 0.3 + 0.35 * (along * 0.7 / s).sin().abs();
                old.map(|v| v * gap)
            });
        }
        other => unreachable!("apply: unknown defect {other}; callers take kinds from kinds_for"),
    }
    mask
}
