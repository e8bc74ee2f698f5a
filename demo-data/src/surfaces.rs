//! Defect-free industrial surfaces, procedurally: woven fabric, brushed metal, wood grain,
//! ceramic tiles and leather. Each is a random member of its family (colour, scale, phase), so
//! a model has to learn the family, not one picture.

use super::noise::ValueNoise;
use super::rng::Rng;
use super::Canvas;

pub const CATEGORIES: [&str; 5] = ["fabric", "metal", "wood", "tile", "leather"];

fn lerp3(a: [f32; 3], b: [f32; 3], t: f32) -> [f32; 3] {
    [
        a[0] + (b[0] - a[0]) * t,
        a[1] + (b[1] - a[1]) * t,
        a[2] + (b[2] - a[2]) * t,
    ]
}

fn scale3(c: [f32; 3], s: f32) -> [f32; 3] {
    [c[0] * s, c[1] * s, c[2] * s]
}

fn jitter(rng: &mut Rng, c: [f32; 3], amount: f32) -> [f32; 3] {
    let l = 1.0 + rng.range(-amount, amount);
    [
        c[0] * l + rng.range(-amount, amount) * 0.3,
        c[1] * l,
        c[2] * l + rng.range(-amount, amount) * 0.3,
    ]
}

/// Renders one surface of `category` at `size`×`size`. `category` must be one of [`CATEGORIES`].
pub fn render(category: &str, size: usize, rng: &mut Rng) -> Canvas {
    render_detailed(category, size, size, rng)
}

/// [`render`] with the surface's features (weave, grain, tiles) drawn as for a `detail`-pixel
/// image: `detail` = `size` scales them with the image; a `size` larger than `detail` shows more
/// of the surface at the same pixel scale (a high-resolution camera over a wider field).
pub fn render_detailed(category: &str, size: usize, detail: usize, rng: &mut Rng) -> Canvas {
    let s = detail as f32 / 256.0; // feature sizes are designed at 256 px
    let noise = ValueNoise::new(rng.next_u64());
    let mut canvas = Canvas::new(size);
    match category {
        "fabric" => {
            let palettes = [
                [0.22, 0.32, 0.55],
                [0.80, 0.74, 0.62],
                [0.45, 0.45, 0.47],
                [0.55, 0.20, 0.18],
            ];
            let pick = palettes[rng.below(palettes.len())];
            let warp = jitter(rng, pick, 0.08);
            let weft = lerp3(warp, [0.9, 0.9, 0.9], rng.range(0.05, 0.25));
            let period = rng.range(7.0, 11.0) * s;
            let phase = (rng.range(0.0, period), rng.range(0.0, period));
            canvas.fill(|x, y| {
                let (gx, gy) = ((x + phase.0) / period, (y + phase.1) / period);
                let (i, j) = (gx.floor() as i64, gy.floor() as i64);
                let (u, v) = (gx - gx.floor(), gy - gy.floor());
                let across = (std::f32::consts::PI * u).sin().powf(0.6);
                let along = (std::f32::consts::PI * v).sin().powf(0.6);
                let warp_on_top = (i + j).rem_euclid(2) == 0;
                let (shade, colour) = if warp_on_top {
                    (across, warp)
                } else {
                    (along, weft)
                };
                let fibre = 0.9 + 0.2 * noise.fbm(x * 0.9 / s.max(0.25), y * 0.15, 2);
                let slub = 0.93
                    + 0.14
                        * noise.at(
                            if warp_on_top {
                                i as f32 * 3.1
                            } else {
                                j as f32 * 2.7
                            },
                            0.5,
                        );
                scale3(colour, (0.35 + 0.65 * shade) * fibre * slub)
            });
        }
        "metal" => {
            let base = jitter(rng, [0.62, 0.63, 0.66], 0.1);
            // Not TAU: 6.28 is what the demo data and the embedded model were made with, and
            // the same seed must keep giving the same images.
            #[allow(clippy::approx_constant)]
            let light_phase = rng.range(0.0, 6.28);
            let light_amp = rng.range(0.05, 0.15);
            canvas.fill(|x, y| {
                let streak = noise.fbm(x * 0.004 / s, y * 0.6 / s, 4);
                let fine = noise.at(x * 0.3 / s + 91.0, y * 2.0 / s);
                let light = 1.0 + light_amp * (x / (256.0 * s) * 3.0 + light_phase).sin();
                scale3(base, (0.8 + 0.3 * streak + 0.06 * fine) * light)
            });
        }
        "wood" => {
            let light = jitter(rng, [0.80, 0.62, 0.42], 0.08);
            let dark = lerp3(light, [0.30, 0.17, 0.08], rng.range(0.45, 0.65));
            let ring_period = rng.range(9.0, 16.0) * s;
            let warp_amp = rng.range(10.0, 30.0) * s;
            canvas.fill(|x, y| {
                let warped = y + warp_amp * (noise.fbm(x * 0.008 / s, y * 0.02 / s, 3) - 0.5) * 2.0;
                let ring = (warped / ring_period).fract();
                let late = ring.powf(3.0); // latewood: a sharp dark band at the end of each ring
                let grain = noise.fbm(x * 0.05 / s + 50.0, y * 1.2 / s, 2);
                let c = lerp3(light, dark, (0.75 * late + 0.35 * grain).min(1.0));
                scale3(c, 0.95 + 0.1 * noise.at(x * 0.02 / s, y * 0.02 / s + 7.0))
            });
        }
        "tile" => {
            let tile = (256.0 * s) / rng.range(3.0, 5.0);
            let grout_w = rng.range(3.0, 5.0) * s;
            let pick = [[0.85, 0.84, 0.80], [0.45, 0.60, 0.66], [0.70, 0.40, 0.30]][rng.below(3)];
            let glaze = jitter(rng, pick, 0.05);
            let grout = jitter(rng, [0.45, 0.44, 0.42], 0.1);
            let offset = (rng.range(0.0, tile), rng.range(0.0, tile));
            let tile_seed = rng.next_u64();
            canvas.fill(|x, y| {
                let (gx, gy) = ((x + offset.0) / tile, (y + offset.1) / tile);
                let (i, j) = (gx.floor() as i64, gy.floor() as i64);
                let (u, v) = ((gx - gx.floor()) * tile, (gy - gy.floor()) * tile);
                let edge = u.min(v).min(tile - u).min(tile - v);
                if edge < grout_w / 2.0 {
                    return scale3(grout, 0.9 + 0.2 * noise.at(x * 0.5, y * 0.5));
                }
                let per_tile = ValueNoise::new(tile_seed).at(i as f32 * 7.3, j as f32 * 3.9);
                let bevel = ((edge - grout_w / 2.0) / (3.0 * s)).min(1.0);
                let speckle = noise.fbm(x * 0.25 / s, y * 0.25 / s, 2);
                scale3(
                    glaze,
                    (0.9 + 0.12 * per_tile) * (0.8 + 0.2 * bevel) * (0.95 + 0.1 * speckle),
                )
            });
        }
        "leather" => {
            let pick = [[0.36, 0.22, 0.13], [0.15, 0.14, 0.14], [0.55, 0.38, 0.24]][rng.below(3)];
            let base = jitter(rng, pick, 0.08);
            canvas.fill(|x, y| {
                let ridges = 1.0 - (2.0 * noise.fbm(x * 0.045 / s, y * 0.045 / s, 3) - 1.0).abs();
                let wrinkle = ridges.powf(6.0);
                let pores = noise.at(x * 0.6 / s + 13.0, y * 0.6 / s);
                let broad = noise.fbm(x * 0.01 / s, y * 0.01 / s + 3.0, 2);
                scale3(
                    base,
                    (0.85 + 0.3 * broad) * (1.0 - 0.35 * wrinkle) * (0.92 + 0.16 * pores),
                )
            });
        }
        other => unreachable!("render: unknown category {other}; callers check against CATEGORIES"),
    }
    canvas
}
