//! Defects of the surface universe, each painted with its exact mask. Four groups:
//!
//! * generic: `foreign` — a Perlin-thresholded region of another texture blended in at a random
//!   opacity (the DRAEM recipe); `cutpaste` — a patch or thin scar of the same image pasted
//!   elsewhere, rotated or flipped, slightly recoloured (CutPaste);
//! * physical: the demo categories' defects (`crate::defects`), on any surface;
//! * subtle: what a line inspector hunts — `subtle_spot` (2–8 px across at 256 px), a small
//!   disc where the texture turns (`subtle_orientation`), changes scale (`subtle_scale`), blurs
//!   (`subtle_blur`) or changes contrast (`subtle_contrast`), and `subtle_thread`, a pulled
//!   (bright) or missing (dark) thread 1–2.5 px wide along the texture's grain.
//!
//! * styled: `<shape>_<finish>` (`super::styles`) — six shape generators × six finishes, each
//!   an independent renderer, so that defects are not one renderer's signature.
//!
//! Mask rule: a defect has a coverage α ∈ [0, 1] per pixel and the mask is exactly the pixels
//! with α ≥ ½. For `foreign` the coverage is the thresholded noise region and the opacity
//! (0.4–1) does not enter the mask: the whole region is the defect.
//!
//! Visibility rule (version 2): a defect must change its masked pixels by at least
//! [`MIN_CHANGE`] on average, **and** change the region's appearance — its mean colour or the
//! mean energy of its horizontal or vertical gradients ([`Region`]) — by at least
//! [`MIN_REGION_CHANGE`] and by [`NULL_RATIO`] times what moving the same region to another
//! place on the clean surface changes (the least of eight offsets). Per-pixel change alone is
//! fooled by fine random textures: sand pasted onto sand, or turned, changes every pixel and not
//! the picture, and such a mask teaches a model to mark what does not differ. A defect that
//! fails (a blur on a flat patch, a paste onto its own period, a turn of isotropic grain) is
//! drawn again elsewhere; after [`ATTEMPTS`] misses, a strong spot takes its place, so no mask
//! marks an invisible defect. Subtle masks stay under 1% of the image's area.

use std::f32::consts::{PI, TAU};

use super::post::gaussian_blur;
use super::textures::Texture;
use crate::defects::paint;
use crate::noise::{Fractal, Perlin};
use crate::rng::Rng;
use crate::Canvas;

pub const GENERIC: [&str; 2] = ["foreign", "cutpaste"];
pub const PHYSICAL: [&str; 8] = [
    "hole",
    "scratch",
    "stain",
    "crack",
    "chip",
    "cut",
    "contamination",
    "missing_thread",
];
pub const SUBTLE: [&str; 6] = [
    "subtle_spot",
    "subtle_orientation",
    "subtle_scale",
    "subtle_blur",
    "subtle_contrast",
    "subtle_thread",
];

/// The order test images cycle through defect kinds: 4 foreign, 3 cutpaste, each physical
/// and each subtle kind once (21 in all), interleaved so that small counts see every group.
pub const CYCLE: [&str; 21] = [
    "foreign",
    "subtle_spot",
    "cutpaste",
    "hole",
    "subtle_orientation",
    "foreign",
    "scratch",
    "subtle_blur",
    "cutpaste",
    "stain",
    "subtle_contrast",
    "foreign",
    "crack",
    "subtle_scale",
    "chip",
    "cutpaste",
    "subtle_thread",
    "cut",
    "foreign",
    "contamination",
    "missing_thread",
];

/// The order test images cycle through all four groups by default: [`CYCLE`] twice, each entry
/// followed by a styled kind (42 of the 36, the first six twice): half the defects styled.
pub fn cycle() -> Vec<&'static str> {
    let styled = super::styles::kinds();
    (0..2 * CYCLE.len())
        .flat_map(|i| [CYCLE[i % CYCLE.len()], styled[i % styled.len()]])
        .collect()
}

/// Mean absolute change per channel (0–1 scale, ≈ 7.7/255) a defect must make inside its mask.
pub const MIN_CHANGE: f32 = 0.03;
/// The least change of a region statistic ([`Region`]) a defect must make.
pub const MIN_REGION_CHANGE: f32 = 0.015;
/// How many times the surface's own change from place to place a defect's change must be.
pub const NULL_RATIO: f32 = 2.0;
/// Tries at a visible defect before a strong spot stands in.
pub const ATTEMPTS: usize = 8;
/// Subtle masks cover at most this fraction of the image.
pub const SUBTLE_MAX_AREA: f32 = 0.01;

/// The kinds a `--defects` (or `--hold-out-defects`) word names: a kind, a group (`generic`,
/// `physical`, `subtle`, `styled`), or a shape or finish of the styled kinds (every kind drawn
/// with it).
pub fn expand(word: &str) -> Option<Vec<&'static str>> {
    let styles = &super::styles::SHAPES
        .iter()
        .chain(&super::styles::FINISHES)
        .any(|w| *w == word);
    match word {
        "generic" => Some(GENERIC.to_vec()),
        "physical" => Some(PHYSICAL.to_vec()),
        "subtle" => Some(SUBTLE.to_vec()),
        "styled" => Some(super::styles::kinds().to_vec()),
        _ if *styles => Some(super::styles::with(word)),
        _ => GENERIC
            .iter()
            .chain(&PHYSICAL)
            .chain(&SUBTLE)
            .chain(super::styles::kinds())
            .find(|k| **k == word)
            .map(|k| vec![*k]),
    }
}

/// Every word [`expand`] knows, for error messages: the groups, the shapes and finishes, then
/// every kind.
pub fn words() -> Vec<&'static str> {
    ["generic", "physical", "subtle", "styled"]
        .iter()
        .chain(&super::styles::SHAPES)
        .chain(&super::styles::FINISHES)
        .chain(&GENERIC)
        .chain(&PHYSICAL)
        .chain(&SUBTLE)
        .chain(super::styles::kinds())
        .copied()
        .collect()
}

fn copy(c: &Canvas) -> Canvas {
    Canvas {
        size: c.size,
        rgb: c.rgb.clone(),
    }
}

/// A region's appearance: the mean of each colour channel and the mean magnitude of the luma
/// gradient along four directions (0°, 90°, 45°, 135°; half central differences) over its
/// pixels — colour, texture energy and its orientation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Region([f32; 7]);

impl Region {
    /// The statistics of `c` over `pixels` (row-major indices), shifted by (`dx`, `dy`) with
    /// wrap-around.
    pub fn of(c: &Canvas, pixels: &[usize], (dx, dy): (usize, usize)) -> Region {
        let n = c.size;
        let at = |x: usize, y: usize| c.rgb[(y % n) * n + (x % n)];
        let l = |x: usize, y: usize| luma(at(x, y));
        let mut sum = [0.0f32; 7];
        for &i in pixels {
            // + n keeps the neighbours' coordinates non-negative; `at` wraps them
            let (x, y) = (i % n + dx + n, i / n + dy + n);
            let p = at(x, y);
            (0..3).for_each(|k| sum[k] += p[k]);
            sum[3] += 0.5 * (l(x + 1, y) - l(x - 1, y)).abs();
            sum[4] += 0.5 * (l(x, y + 1) - l(x, y - 1)).abs();
            sum[5] += 0.5 * (l(x + 1, y + 1) - l(x - 1, y - 1)).abs();
            sum[6] += 0.5 * (l(x + 1, y - 1) - l(x - 1, y + 1)).abs();
        }
        Region(sum.map(|v| v / pixels.len().max(1) as f32))
    }

    /// The largest difference of one statistic.
    pub fn distance(&self, other: &Region) -> f32 {
        (0..7)
            .map(|k| (self.0[k] - other.0[k]).abs())
            .fold(0.0, f32::max)
    }
}

/// Offsets (fractions of the side) to other places on the same surface, for the null change.
const ELSEWHERE: [(f32, f32); 8] = [
    (0.21, 0.0),
    (0.0, 0.23),
    (0.37, 0.13),
    (0.13, 0.41),
    (0.5, 0.5),
    (0.29, 0.71),
    (0.71, 0.31),
    (0.47, 0.07),
];

/// The visibility rule of the module header.
fn visible(before: &Canvas, after: &Canvas, mask: &[u8]) -> bool {
    if mean_change(before, after, mask) < MIN_CHANGE {
        return false;
    }
    let inside: Vec<usize> = (0..mask.len()).filter(|&i| mask[i] != 0).collect();
    let here = Region::of(before, &inside, (0, 0));
    let change = here.distance(&Region::of(after, &inside, (0, 0)));
    let n = before.size as f32;
    let null = ELSEWHERE
        .iter()
        .map(|&(fx, fy)| {
            let offset = ((fx * n) as usize, (fy * n) as usize);
            here.distance(&Region::of(before, &inside, offset))
        })
        .fold(f32::MAX, f32::min);
    change >= MIN_REGION_CHANGE && change >= NULL_RATIO * null
}

fn mean_change(before: &Canvas, after: &Canvas, mask: &[u8]) -> f32 {
    let (mut sum, mut count) = (0.0f32, 0usize);
    for (i, &m) in mask.iter().enumerate() {
        if m != 0 {
            let (a, b) = (before.rgb[i], after.rgb[i]);
            sum += (0..3).map(|c| (a[c] - b[c]).abs()).sum::<f32>() / 3.0;
            count += 1;
        }
    }
    if count == 0 {
        0.0
    } else {
        sum / count as f32
    }
}

/// Paints one defect of `kind` (from [`CYCLE`]) onto `canvas`, a rendering of `tex`, and returns
/// its mask (0 or 255, row-major). `foreign` are the families `foreign` may borrow from.
pub fn apply(
    kind: &str,
    canvas: &mut Canvas,
    tex: &Texture,
    foreign: &[String],
    rng: &mut Rng,
) -> Vec<u8> {
    for _ in 0..ATTEMPTS {
        let mut trial = copy(canvas);
        let mask = draw(kind, &mut trial, tex, foreign, rng);
        if visible(canvas, &trial, &mask) {
            *canvas = trial;
            return mask;
        }
    }
    let mut mask = vec![0u8; canvas.size * canvas.size];
    spot(canvas, &mut mask, rng, true);
    mask
}

fn draw(
    kind: &str,
    canvas: &mut Canvas,
    tex: &Texture,
    foreign: &[String],
    rng: &mut Rng,
) -> Vec<u8> {
    let n = canvas.size;
    let mut mask = vec![0u8; n * n];
    let m = &mut mask;
    match kind {
        "foreign" => foreign_region(canvas, m, foreign, rng),
        "cutpaste" => cut_paste(canvas, m, rng),
        "subtle_spot" => spot(canvas, m, rng, false),
        "subtle_orientation" | "subtle_scale" | "subtle_blur" | "subtle_contrast" => {
            local_change(kind, canvas, m, tex, rng)
        }
        "subtle_thread" => thread(canvas, m, tex, rng),
        styled if super::styles::split(styled).is_some() => {
            super::styles::draw(styled, canvas, m, rng)
        }
        physical => return crate::defects::apply(physical, canvas, rng),
    }
    mask
}

/// DRAEM: 2-octave Perlin noise at a random scale, thresholded, filled with another texture.
fn foreign_region(canvas: &mut Canvas, mask: &mut [u8], foreign: &[String], rng: &mut Rng) {
    let n = canvas.size;
    let family = &foreign[rng.below(foreign.len())];
    let other = Texture::new(family, n, rng);
    let noise = Perlin::new(rng.next_u64());
    let freq = (1u32 << (1 + rng.below(4))) as f32 / n as f32;
    let thr = rng.range(0.56, 0.66);
    let opacity = rng.range(0.4, 1.0);
    let (ox, oy) = (rng.range(0.0, 100.0), rng.range(0.0, 100.0));
    let coverage: Vec<f32> = (0..n * n)
        .map(|i| {
            let (x, y) = ((i % n) as f32 + 0.5, (i / n) as f32 + 0.5);
            let v = noise.fractal(x * freq + ox, y * freq + oy, 2, Fractal::Fbm);
            ((v - thr) / 0.04 + 0.5).clamp(0.0, 1.0)
        })
        .collect();
    let area = coverage.iter().filter(|&&c| c >= 0.5).count() as f32 / (n * n) as f32;
    if !(0.004..=0.35).contains(&area) {
        return; // empty mask: the caller draws again
    }
    for (i, &c) in coverage.iter().enumerate() {
        if c <= 0.0 {
            continue;
        }
        let (x, y) = (i % n, i / n);
        let old = canvas.get(x, y);
        let new = other.at(x as f32 + 0.5, y as f32 + 0.5);
        let a = opacity * c;
        canvas.set(x, y, [0, 1, 2].map(|k| old[k] * (1.0 - a) + new[k] * a));
        if c >= 0.5 {
            mask[i] = 255;
        }
    }
}

pub(super) fn bilinear(c: &Canvas, x: f32, y: f32) -> [f32; 3] {
    let n = c.size as f32;
    let (x, y) = ((x - 0.5).clamp(0.0, n - 1.0), (y - 0.5).clamp(0.0, n - 1.0));
    let (x0, y0) = (x.floor() as usize, y.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(c.size - 1), (y0 + 1).min(c.size - 1));
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let (a, b, d, e) = (c.get(x0, y0), c.get(x1, y0), c.get(x0, y1), c.get(x1, y1));
    [0, 1, 2].map(|k| {
        (a[k] * (1.0 - fx) + b[k] * fx) * (1.0 - fy) + (d[k] * (1.0 - fx) + e[k] * fx) * fy
    })
}

/// CutPaste: a rectangle (or a thin "scar") of the image, rotated or flipped and slightly
/// recoloured, pasted at another place.
fn cut_paste(canvas: &mut Canvas, mask: &mut [u8], rng: &mut Rng) {
    let nf = canvas.size as f32;
    let s = nf / 256.0;
    let scar = rng.chance(0.35);
    let (w, h) = if scar {
        (
            (rng.range(2.0, 6.0) * s).max(1.5),
            rng.range(12.0, 40.0) * s,
        )
    } else {
        (rng.range(0.08, 0.25) * nf, rng.range(0.08, 0.25) * nf)
    };
    let src = (rng.range(0.15, 0.85) * nf, rng.range(0.15, 0.85) * nf);
    let dst = (rng.range(0.15, 0.85) * nf, rng.range(0.15, 0.85) * nf);
    let rot = if scar || rng.chance(0.5) {
        rng.range(0.0, TAU)
    } else {
        0.0
    };
    let flip = rng.below(3);
    let tint = [0; 3].map(|_| 1.0 + rng.range(-0.1, 0.1));
    let lift = rng.range(-0.05, 0.05);
    let (cos, sin) = (rot.cos(), rot.sin());
    let reach = (w * w + h * h).sqrt() / 2.0 + 2.0;
    let source = copy(canvas);
    let local = move |x: f32, y: f32| {
        let (dx, dy) = (x - dst.0, y - dst.1);
        let (mut qx, mut qy) = (dx * cos + dy * sin, -dx * sin + dy * cos);
        match flip {
            1 => qx = -qx,
            2 => qy = -qy,
            _ => {}
        }
        (qx, qy)
    };
    paint(
        canvas,
        mask,
        (dst.0 - reach, dst.1 - reach, dst.0 + reach, dst.1 + reach),
        |x, y| {
            let (qx, qy) = local(x, y);
            (w / 2.0 - qx.abs()).min(h / 2.0 - qy.abs()) + 0.5
        },
        |_, x, y| {
            let (qx, qy) = local(x, y);
            let c = bilinear(&source, src.0 + qx, src.1 + qy);
            [0, 1, 2].map(|k| c[k] * tint[k] + lift)
        },
    );
}

/// A random centre at least `margin` px inside the image's middle 80%.
pub(super) fn centre(rng: &mut Rng, n: f32, margin: f32) -> (f32, f32) {
    let lo = (0.1 * n + margin).min(n / 2.0);
    let hi = (0.9 * n - margin).max(n / 2.0);
    (rng.range(lo, hi), rng.range(lo, hi))
}

pub(super) fn luma(c: [f32; 3]) -> f32 {
    0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]
}

/// A round spot 2–8 px across (at 256 px), darker or lighter than the surface under it;
/// `strong` (the stand-in for an invisible defect) picks the direction with the most change.
fn spot(canvas: &mut Canvas, mask: &mut [u8], rng: &mut Rng, strong: bool) {
    let nf = canvas.size as f32;
    let s = nf / 256.0;
    let r = (rng.range(1.0, 4.0) * s).max(1.0);
    let c = centre(rng, nf, r + 1.0);
    let k = if strong { 0.7 } else { rng.range(0.3, 0.65) };
    let darker = if strong {
        luma(canvas.get(c.0 as usize, c.1 as usize)) > 0.5
    } else {
        rng.chance(0.5)
    };
    let edge = 0.7;
    paint(
        canvas,
        mask,
        (c.0 - r - 2.0, c.1 - r - 2.0, c.0 + r + 2.0, c.1 + r + 2.0),
        |x, y| (r - ((x - c.0).powi(2) + (y - c.1).powi(2)).sqrt()) / edge + 0.5,
        |old, _, _| {
            if darker {
                old.map(|v| v * (1.0 - k))
            } else {
                old.map(|v| v + (1.0 - v) * k)
            }
        },
    );
}

/// A disc (6–13 px in radius at 256 px) where the texture turns, rescales, blurs or changes
/// contrast; its edge fades over 2 px.
fn local_change(kind: &str, canvas: &mut Canvas, mask: &mut [u8], tex: &Texture, rng: &mut Rng) {
    let nf = canvas.size as f32;
    let s = nf / 256.0;
    // within the subtle bound whatever the size: π r² ≤ SUBTLE_MAX_AREA · n² with a pixel to spare
    let r = (rng.range(6.0, 13.0) * s)
        .max(3.0)
        .min((SUBTLE_MAX_AREA * nf * nf / PI).sqrt() - 1.0);
    let edge = (2.0 * s).max(1.0);
    let c = centre(rng, nf, r + edge);
    let sign = if rng.chance(0.5) { 1.0 } else { -1.0 };
    let turn = sign * rng.range(0.15, 0.45); // 9–26 degrees
    let zoom = if rng.chance(0.5) {
        rng.range(0.7, 0.85)
    } else {
        rng.range(1.2, 1.45)
    };
    let gain = if rng.chance(0.5) {
        rng.range(0.25, 0.6)
    } else {
        rng.range(1.6, 2.2)
    };
    let blurred = (kind == "subtle_blur").then(|| {
        let mut b = copy(canvas);
        gaussian_blur(&mut b, (rng.range(1.2, 2.5) * s).max(0.8));
        b
    });
    let inside = |x: f32, y: f32| ((x - c.0).powi(2) + (y - c.1).powi(2)).sqrt() <= r;
    let mut local_mean = [0.0f32; 3];
    let mut count = 0.0;
    for y in 0..canvas.size {
        for x in 0..canvas.size {
            if inside(x as f32 + 0.5, y as f32 + 0.5) {
                let p = canvas.get(x, y);
                (0..3).for_each(|k| local_mean[k] += p[k]);
                count += 1.0;
            }
        }
    }
    let local_mean = local_mean.map(|v| v / f32::max(count, 1.0));
    let (cos, sin) = (turn.cos(), turn.sin());
    let pad = r + edge + 2.0;
    paint(
        canvas,
        mask,
        (c.0 - pad, c.1 - pad, c.0 + pad, c.1 + pad),
        |x, y| (r - ((x - c.0).powi(2) + (y - c.1).powi(2)).sqrt()) / edge + 0.5,
        |old, x, y| {
            let (dx, dy) = (x - c.0, y - c.1);
            match kind {
                "subtle_orientation" => {
                    tex.at(c.0 + dx * cos - dy * sin, c.1 + dx * sin + dy * cos)
                }
                "subtle_scale" => tex.at(c.0 + dx * zoom, c.1 + dy * zoom),
                "subtle_blur" => match &blurred {
                    Some(b) => b.get((x as usize).min(b.size - 1), (y as usize).min(b.size - 1)),
                    None => old,
                },
                _ => [0, 1, 2].map(|k| local_mean[k] + (old[k] - local_mean[k]) * gain),
            }
        },
    );
}

/// A pulled (brighter, raised) or missing (dark gap) thread along the texture's grain.
fn thread(canvas: &mut Canvas, mask: &mut [u8], tex: &Texture, rng: &mut Rng) {
    let nf = canvas.size as f32;
    let s = nf / 256.0;
    let len = rng.range(20.0, 60.0) * s;
    let width = (rng.range(1.0, 2.5) * s).max(1.0);
    let angle = tex.angle + if rng.chance(0.5) { PI / 2.0 } else { 0.0 };
    let c = centre(rng, nf, len / 2.0 + 2.0);
    let (ux, uy) = (angle.cos(), angle.sin());
    let (a, b) = (
        (c.0 - ux * len / 2.0, c.1 - uy * len / 2.0),
        (c.0 + ux * len / 2.0, c.1 + uy * len / 2.0),
    );
    let pulled = rng.chance(0.5);
    let k = rng.range(0.3, 0.55);
    let pad = width + 2.0;
    paint(
        canvas,
        mask,
        (
            a.0.min(b.0) - pad,
            a.1.min(b.1) - pad,
            a.0.max(b.0) + pad,
            a.1.max(b.1) + pad,
        ),
        |x, y| {
            // distance to the segment a–b
            let t = ((x - a.0) * ux + (y - a.1) * uy).clamp(0.0, len);
            let d = ((a.0 + t * ux - x).powi(2) + (a.1 + t * uy - y).powi(2)).sqrt();
            width / 2.0 - d + 0.5
        },
        |old, _, _| {
            if pulled {
                old.map(|v| v + (1.0 - v) * k)
            } else {
                old.map(|v| v * (1.0 - k))
            }
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Grey noise, every pixel its own uniform value: the finest random texture there is.
    fn grain(n: usize, seed: u64) -> Canvas {
        let mut rng = Rng::new(seed);
        let mut c = Canvas::new(n);
        for p in c.rgb.iter_mut() {
            *p = [rng.range(0.3, 0.7); 3];
        }
        c
    }

    /// A 20-px square of grain replaced by grain from elsewhere changes every pixel (mean 0.13)
    /// and not the picture: not visible. The same square darkened by 30% is.
    #[test]
    fn grain_moved_onto_grain_is_invisible_and_a_darkened_patch_is_not() {
        let n = 128;
        let before = grain(n, 7);
        let mut mask = vec![0u8; n * n];
        let (mut moved, mut darker) = (copy(&before), copy(&before));
        for y in 40..60 {
            for x in 40..60 {
                let i = y * n + x;
                mask[i] = 255;
                moved.rgb[i] = before.rgb[(y + 37) * n + x + 29];
                darker.rgb[i] = before.rgb[i].map(|v| v * 0.7);
            }
        }
        assert!(mean_change(&before, &moved, &mask) > 2.0 * MIN_CHANGE);
        assert!(!visible(&before, &moved, &mask));
        assert!(visible(&before, &darker, &mask));
    }
}
