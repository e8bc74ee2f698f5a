//! The texture families of the surface universe: each draws random parameters and returns a
//! [`Texture`], a colour for every point of the image plane.
//!
//! A family is a scalar field designed in 256-px units (`u`, `v`). [`Texture`] places it in the
//! image with a random similarity (rotation, scale, offset), stretches it to [0, 1] over what the
//! image shows, and colours it through a three-stop palette (grey or coloured). Because the
//! texture is a function and not a bitmap, a defect can re-render it locally at another
//! orientation or scale (`super::defects`).

use std::f32::consts::{PI, TAU};

use crate::noise::{Fractal, Perlin, ValueNoise};
use crate::rng::{mix, Rng};

/// Every family, in the order `--families` lists them by default: these twelve, then the
/// relief families of `super::relief` (lit height fields and plant fibre).
pub const FAMILIES: [&str; 26] = [
    "fractal",   // Perlin fBm, turbulence and ridges at several scales
    "oriented",  // anisotropic: brushed, fibres, streaks, at any angle
    "woven",     // plain, twill, satin and basket weaves with tension jitter
    "knitted",   // rows of V-shaped stitches
    "woodgrain", // growth rings, warped, with fine grain
    "cellular",  // Voronoi: leather, stone, metal grain boundaries, pebbles
    "tiles",     // tiles, bricks and grids with grout
    "granular",  // sand, concrete, carpet pile
    "stripes",   // stripes, plaid, dots, checks, zigzags
    "gradient",  // smooth illumination-like ramps
    "marble",    // turbulent veins
    "mesh",      // perforated plate and wire mesh
    "pebbles",
    "gravel",
    "sand",
    "stone",
    "masonry",
    "knurled",
    "perforated",
    "machined",
    "cast",
    "leathergrain",
    "paper",
    "foam",
    "carpet",
    "grass",
];

/// A scalar field over design coordinates (256-px units); any range, [`Texture`] normalises it.
pub type Field = Box<dyn Fn(f32, f32) -> f32 + Send + Sync>;

/// One random surface: a field, its placement in the image, its contrast and its palette.
pub struct Texture {
    field: Field,
    centre: f32,
    cos: f32,
    sin: f32,
    /// Image pixels → design units: 256 / size / scale.
    inv_scale: f32,
    offset: (f32, f32),
    lo: f32,
    span: f32,
    invert: bool,
    palette: [[f32; 3]; 3],
    /// Perspective: image points are divided by 1 + kx·dx + ky·dy (dx, dy from the centre), a
    /// camera looking at the surface obliquely (0 for a square-on view).
    keystone: (f32, f32),
    /// The direction (radians, image plane) of the texture's `u` axis: threads, fibres and
    /// streaks run along it.
    pub angle: f32,
}

impl Texture {
    /// A random member of `family` for a `size`-px image. `family` must be one of [`FAMILIES`].
    pub fn new(family: &str, size: usize, rng: &mut Rng) -> Texture {
        let field = field(family, rng);
        let angle = rng.range(0.0, TAU);
        let scale = rng.range(0.65, 1.6);
        let mut tex = Texture {
            field,
            centre: size as f32 / 2.0,
            cos: angle.cos(),
            sin: angle.sin(),
            inv_scale: 256.0 / size as f32 / scale,
            offset: (rng.range(-500.0, 500.0), rng.range(-500.0, 500.0)),
            lo: 0.0,
            span: 1.0,
            invert: rng.chance(0.35),
            palette: palette(rng),
            keystone: (0.0, 0.0),
            angle,
        };
        if rng.chance(0.35) {
            // up to about a 1.9:1 change of scale from one side of the image to the other
            let k = 0.6 / size as f32;
            tex.keystone = (rng.range(-k, k), rng.range(-k, k));
        }
        // Stretch what the image shows to [0, 1]: sample a 24×24 grid of the image.
        let (mut lo, mut hi) = (f32::MAX, f32::MIN);
        for j in 0..24 {
            for i in 0..24 {
                let (x, y) = (
                    (i as f32 + 0.5) * size as f32 / 24.0,
                    (j as f32 + 0.5) * size as f32 / 24.0,
                );
                let v = tex.raw(x, y);
                lo = lo.min(v);
                hi = hi.max(v);
            }
        }
        tex.lo = lo;
        tex.span = if hi - lo > 1e-4 { hi - lo } else { 1.0 };
        tex
    }

    fn raw(&self, x: f32, y: f32) -> f32 {
        let (dx, dy) = (x - self.centre, y - self.centre);
        let w = 1.0 + self.keystone.0 * dx + self.keystone.1 * dy;
        let (dx, dy) = (dx / w, dy / w);
        let u = (dx * self.cos + dy * self.sin) * self.inv_scale + self.offset.0;
        let v = (-dx * self.sin + dy * self.cos) * self.inv_scale + self.offset.1;
        (self.field)(u, v)
    }

    /// The colour at image point (x, y) (pixel centres are at +0.5).
    pub fn at(&self, x: f32, y: f32) -> [f32; 3] {
        let t = ((self.raw(x, y) - self.lo) / self.span).clamp(0.0, 1.0);
        let t = if self.invert { 1.0 - t } else { t };
        let [a, b, c] = self.palette;
        let (from, to, w) = if t < 0.5 {
            (a, b, t * 2.0)
        } else {
            (b, c, t * 2.0 - 1.0)
        };
        [0, 1, 2].map(|k| from[k] + (to[k] - from[k]) * w)
    }
}

fn hsv(h: f32, s: f32, v: f32) -> [f32; 3] {
    let h = h.rem_euclid(1.0) * 6.0;
    let f = h - h.floor();
    let (p, q, t) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
    match h as usize {
        0 => [v, t, p],
        1 => [q, v, p],
        2 => [p, v, t],
        3 => [p, q, v],
        4 => [t, p, v],
        _ => [v, p, q],
    }
}

/// Dark, middle and light stops: grey 40% of the time, else one hue (sometimes two).
fn palette(rng: &mut Rng) -> [[f32; 3]; 3] {
    let v0 = rng.range(0.04, 0.45);
    let v2 = (v0 + rng.range(0.3, 0.75)).min(0.97);
    let v1 = v0 + (v2 - v0) * rng.range(0.3, 0.7);
    if rng.chance(0.4) {
        return [[v0; 3], [v1; 3], [v2; 3]];
    }
    let hue = rng.uniform();
    let sat = rng.range(0.08, 0.8);
    let hue2 = if rng.chance(0.25) {
        hue + 0.5
    } else {
        hue + rng.range(-0.12, 0.12)
    };
    [
        hsv(hue, sat, v0),
        hsv(hue2, sat * rng.range(0.5, 1.0), v1),
        hsv(hue, sat * rng.range(0.3, 0.9), v2),
    ]
}

/// A hash of a lattice cell to [0, 1).
pub(super) fn cell01(seed: u64, i: i64, j: i64) -> f32 {
    let h = mix(seed ^ mix((i as u64).wrapping_mul(0x9E37_79B9) ^ (j as u64).wrapping_shl(32)));
    (h >> 40) as f32 / (1u64 << 24) as f32
}

pub(super) fn smoothstep(e0: f32, e1: f32, x: f32) -> f32 {
    let t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

pub(super) fn dist_to_segment(p: (f32, f32), a: (f32, f32), b: (f32, f32)) -> f32 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let t = (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / (dx * dx + dy * dy)).clamp(0.0, 1.0);
    ((a.0 + t * dx - p.0).powi(2) + (a.1 + t * dy - p.1).powi(2)).sqrt()
}

/// Voronoi of jittered lattice points: (nearest distance F1, second F2, nearest cell's hash).
pub(super) fn voronoi(seed: u64, x: f32, y: f32, cell: f32, jitter: f32) -> (f32, f32, f32) {
    let (gx, gy) = (x / cell, y / cell);
    let (ix, iy) = (gx.floor() as i64, gy.floor() as i64);
    let (mut f1, mut f2, mut id) = (f32::MAX, f32::MAX, 0.0);
    for j in -1..=1 {
        for i in -1..=1 {
            let (cx, cy) = (ix + i, iy + j);
            let px = cx as f32 + 0.5 + jitter * (cell01(seed, cx, cy) - 0.5);
            let py = cy as f32 + 0.5 + jitter * (cell01(seed ^ 0x5555, cx, cy) - 0.5);
            let d = ((px - gx).powi(2) + (py - gy).powi(2)).sqrt() * cell;
            if d < f1 {
                f2 = f1;
                f1 = d;
                id = cell01(seed ^ 0xAAAA, cx, cy);
            } else if d < f2 {
                f2 = d;
            }
        }
    }
    (f1, f2, id)
}

/// The random field of one family.
fn field(family: &str, rng: &mut Rng) -> Field {
    let seed = rng.next_u64();
    let p = Perlin::new(seed);
    let vn = ValueNoise::new(seed ^ 0x1234_5678);
    match family {
        "fractal" => {
            let f = 1.0 / rng.range(6.0, 90.0);
            let octaves = 2 + rng.below(5) as u32;
            let kind = [Fractal::Fbm, Fractal::Turbulence, Fractal::Ridged][rng.below(3)];
            let f2 = f * rng.range(3.0, 9.0);
            let w2 = rng.range(0.0, 0.45);
            Box::new(move |u, v| {
                (1.0 - w2) * p.fractal(u * f, v * f, octaves, kind)
                    + w2 * p.fractal(u * f2 + 31.7, v * f2, 2, Fractal::Fbm)
            })
        }
        "oriented" => {
            let along = 1.0 / rng.range(40.0, 400.0);
            let across = 1.0 / rng.range(0.8, 6.0);
            let wave = (rng.range(0.0, 6.0), 1.0 / rng.range(30.0, 120.0));
            match rng.below(3) {
                // brushed metal: fine long streaks over a soft sheen
                0 => Box::new(move |u, v| {
                    let v = v + wave.0 * (u * wave.1).sin();
                    0.7 * p.fractal(u * along, v * across, 3, Fractal::Fbm)
                        + 0.3 * p.fractal(u * 0.01, v * 0.01, 2, Fractal::Fbm)
                }),
                // fibres: sparse bright lines on a mottled ground
                1 => {
                    let thr = rng.range(0.6, 0.72);
                    Box::new(move |u, v| {
                        let v = v + wave.0 * (u * wave.1).sin();
                        let n = p.at(u * along, v * across);
                        0.4 * p.fractal(u * 0.03, v * 0.03, 3, Fractal::Fbm)
                            + 0.6 * smoothstep(thr, thr + 0.06, n)
                    })
                }
                // streaks: broad bands, ridged
                _ => {
                    let across = across * rng.range(0.1, 0.4);
                    Box::new(move |u, v| {
                        let v = v + wave.0 * (u * wave.1).sin();
                        p.fractal(u * along, v * across, 4, Fractal::Ridged)
                    })
                }
            }
        }
        "woven" => {
            let period = rng.range(5.0, 15.0);
            // (repeat n, is warp on top at (i, j))
            let weave = rng.below(5);
            let shift = 1 + rng.below(2) as i64;
            let gap = rng.range(0.0, 0.22);
            let tension = rng.range(0.0, 0.35);
            let weft_tone = rng.range(0.35, 1.0);
            let fuzz = rng.range(0.0, 0.3);
            Box::new(move |u, v| {
                let gu =
                    u / period + tension * (p.at(u / period * 0.3 + 100.0, v / period * 0.1) - 0.5);
                let gv =
                    v / period + tension * (p.at(u / period * 0.1, v / period * 0.3 + 200.0) - 0.5);
                let (i, j) = (gu.floor() as i64, gv.floor() as i64);
                let (a, b) = (gu - gu.floor(), gv - gv.floor());
                let warp_on_top = match weave {
                    0 => (i + j).rem_euclid(2) == 0,
                    1 => (i + shift * j).rem_euclid(3) == 0,
                    2 => (i + shift * j).rem_euclid(4) < 2,
                    3 => (i + 2 * j).rem_euclid(5) != 0,
                    _ => (i.div_euclid(2) + j.div_euclid(2)).rem_euclid(2) == 0,
                };
                // A warp thread runs along v (its position is a); a weft thread along u (b).
                let (pos, tone, thread) = if warp_on_top {
                    (a, 1.0, i)
                } else {
                    (b, weft_tone, j + 7919)
                };
                if pos < gap / 2.0 || pos > 1.0 - gap / 2.0 {
                    return 0.05;
                }
                let shade = (PI * (pos - gap / 2.0) / (1.0 - gap)).sin().powf(0.6);
                let slub = 0.85 + 0.15 * cell01(seed, thread, 3);
                let hair = 1.0 - fuzz + fuzz * vn.at(u * 0.8, v * 0.8);
                tone * slub * (0.3 + 0.7 * shade) * hair
            })
        }
        "knitted" => {
            let w = rng.range(6.0, 15.0);
            let h = w * rng.range(0.7, 1.3);
            let thick = rng.range(0.16, 0.3) * w;
            let jitter = rng.range(0.0, 0.25);
            Box::new(move |u, v| {
                let row = (v / h).floor() as i64;
                let shift = jitter * (cell01(seed, row, 0) - 0.5) * w;
                let uu = u + shift;
                let col = (uu / w).floor() as i64;
                let mut best: f32 = 0.0;
                for dr in -1..=1i64 {
                    for dc in -1..=1i64 {
                        let (r, c) = (row + dr, col + dc);
                        let (x0, y0) = (c as f32 * w, r as f32 * h);
                        let bottom = (x0 + 0.5 * w, y0 + 1.15 * h);
                        for top in [(x0 + 0.05 * w, y0 - 0.1 * h), (x0 + 0.95 * w, y0 - 0.1 * h)] {
                            let d = dist_to_segment((uu, v), top, bottom) / thick;
                            if d < 1.0 {
                                let t = ((v - y0) / h).clamp(0.0, 1.0);
                                let shade = (1.0 - d * d).sqrt() * (0.75 + 0.25 * (PI * t).sin());
                                best = best.max(shade * (0.85 + 0.15 * cell01(seed, r, c)));
                            }
                        }
                    }
                }
                0.08 + best
            })
        }
        "woodgrain" => {
            let period = rng.range(6.0, 24.0);
            let far = rng.range(150.0, 3000.0);
            let warp = rng.range(4.0, 30.0);
            let late = rng.range(1.5, 5.0);
            let grain = rng.range(0.1, 0.4);
            let knot = rng.chance(0.3).then(|| {
                (
                    rng.range(-100.0, 100.0),
                    rng.range(-100.0, 100.0),
                    rng.range(6.0, 18.0),
                )
            });
            Box::new(move |u, v| {
                let (x, mut y) = (u, v);
                if let Some((kx, ky, kr)) = knot {
                    // rings swerve around a knot
                    let d = ((u - kx).powi(2) + (v - ky).powi(2)).sqrt();
                    y += kr * 3.0 * (-(d / (kr * 3.0)).powi(2)).exp() * (v - ky).signum();
                }
                let r = (x * x + (y + far).powi(2)).sqrt()
                    + warp * (p.fractal(u * 0.006, v * 0.02, 3, Fractal::Fbm) - 0.5) * 2.0;
                let ring = (r / period).rem_euclid(1.0).powf(late);
                let fine = p.fractal(u * 0.03, v * 0.9, 2, Fractal::Fbm);
                (1.0 - grain) * ring + grain * fine
            })
        }
        "cellular" => {
            let cell = rng.range(7.0, 45.0);
            let jitter = rng.range(0.6, 1.0);
            let warp = rng.range(0.0, 0.25) * cell;
            let line = rng.range(0.6, 2.5);
            let variant = rng.below(4);
            Box::new(move |u, v| {
                let (x, y) = (
                    u + warp * (p.at(u * 0.05, v * 0.05) - 0.5) * 2.0,
                    v + warp * (p.at(u * 0.05 + 50.0, v * 0.05) - 0.5) * 2.0,
                );
                let (f1, f2, id) = voronoi(seed, x, y, cell, jitter);
                let edge = smoothstep(0.0, line, f2 - f1);
                match variant {
                    // leather: domed pebbles, dark creases, pores
                    0 => {
                        let dome = 1.0 - (f1 / cell).min(1.0).powi(2);
                        edge * (0.5 + 0.4 * dome + 0.1 * vn.at(u * 0.7, v * 0.7))
                    }
                    // stone: flat cells of their own shade, speckled
                    1 => edge * (0.35 + 0.5 * id + 0.15 * p.at(u * 0.3, v * 0.3)),
                    // metal grain boundaries: cells shaded, thin bright/dark lines
                    2 => (0.3 + 0.6 * id) * (0.4 + 0.6 * edge),
                    // cracked mud / scales: distance field
                    _ => edge * (f2 - f1).min(cell) / cell,
                }
            })
        }
        "tiles" => {
            let tw = rng.range(18.0, 90.0);
            let th = tw / rng.range(1.0, 2.5);
            let running = rng.chance(0.5);
            let grout = rng.range(1.2, 6.0);
            let grout_tone = if rng.chance(0.7) {
                rng.range(0.0, 0.25)
            } else {
                rng.range(0.8, 1.0)
            };
            let tile_range = rng.range(0.0, 0.25);
            let grid_only = rng.chance(0.2);
            Box::new(move |u, v| {
                let row = (v / th).floor();
                let uu = if running && (row as i64).rem_euclid(2) == 1 {
                    u + tw / 2.0
                } else {
                    u
                };
                let col = (uu / tw).floor();
                let (a, b) = (uu - col * tw, v - row * th);
                let edge = a.min(b).min(tw - a).min(th - b);
                let tile = if grid_only {
                    0.6
                } else {
                    0.45 + tile_range * cell01(seed, col as i64, row as i64)
                        + 0.1 * p.at(u * 0.2, v * 0.2)
                };
                let bevel = smoothstep(grout / 2.0, grout / 2.0 + 2.5, edge);
                grout_tone + (tile - grout_tone) * bevel
            })
        }
        "granular" => {
            let grain = rng.range(1.2, 4.5);
            match rng.below(3) {
                // sand: tiny domed grains of their own shade
                0 => Box::new(move |u, v| {
                    let (f1, _, id) = voronoi(seed, u, v, grain, 1.0);
                    (0.4 + 0.6 * id) * (1.0 - 0.5 * (f1 / grain).min(1.0))
                }),
                // concrete: soft mottling, aggregate, pores
                1 => {
                    let pores = rng.range(0.9, 0.98);
                    let agg = grain * rng.range(3.0, 7.0);
                    Box::new(move |u, v| {
                        let base = p.fractal(u * 0.02, v * 0.02, 4, Fractal::Fbm);
                        let (f1, _, id) = voronoi(seed, u, v, agg, 1.0);
                        let stone = if id > 0.6 && f1 < agg * 0.35 {
                            0.15
                        } else {
                            0.0
                        };
                        let (g1, _, gid) = voronoi(seed ^ 99, u, v, grain * 3.0, 1.0);
                        let pore = if gid > pores && g1 < grain * 0.6 {
                            0.5
                        } else {
                            0.0
                        };
                        base + stone + 0.1 * vn.at(u * 0.8, v * 0.8) - pore
                    })
                }
                // carpet: short tufts, each leaning its own way
                _ => Box::new(move |u, v| {
                    let (f1, _, id) = voronoi(seed, u, v, grain * 1.5, 1.0);
                    let lean = id * TAU;
                    let along = u * lean.cos() + v * lean.sin();
                    (0.5 + 0.3 * (along * 1.3).sin()) * (1.0 - 0.6 * (f1 / (grain * 1.5)).min(1.0))
                        + 0.2 * p.at(u * 0.05, v * 0.05)
                }),
            }
        }
        "stripes" => {
            let period = rng.range(4.0, 45.0);
            let duty = rng.range(0.2, 0.8);
            let soft = rng.range(0.3, 2.0) / period;
            let period2 = period * rng.range(0.5, 2.0);
            let variant = rng.below(5);
            let square = move |t: f32, duty: f32| {
                // signed distance (in periods) to the nearest edge of the "on" part [0, duty)
                let f = t.rem_euclid(1.0);
                let inside = if f < duty {
                    f.min(duty - f)
                } else {
                    -(f - duty).min(1.0 - f)
                };
                smoothstep(-soft, soft, inside)
            };
            Box::new(move |u, v| match variant {
                0 => square(u / period, duty),
                1 => 0.5 * square(u / period, duty) + 0.5 * square(v / period2, duty),
                2 => {
                    // dots on a staggered grid
                    let row = (v / period).floor();
                    let uu = u + if (row as i64).rem_euclid(2) == 1 {
                        period / 2.0
                    } else {
                        0.0
                    };
                    let (a, b) = (
                        uu.rem_euclid(period) - period / 2.0,
                        v - row * period - period / 2.0,
                    );
                    let r = period * duty * 0.5;
                    smoothstep(-1.0, 1.0, r - (a * a + b * b).sqrt())
                }
                3 => {
                    let c = ((u / period).floor() + (v / period).floor()) as i64;
                    if c.rem_euclid(2) == 0 {
                        1.0
                    } else {
                        0.0
                    }
                }
                _ => {
                    // zigzag / herringbone
                    let tri = ((u / period2).rem_euclid(1.0) - 0.5).abs() * period2;
                    square((v + tri) / period, duty)
                }
            })
        }
        "gradient" => {
            let (a, b) = (rng.range(-1.0, 1.0), rng.range(-1.0, 1.0));
            let radial = rng.range(-1.0, 1.0);
            let c = (rng.range(-128.0, 128.0), rng.range(-128.0, 128.0));
            let wobble = rng.range(0.0, 0.3);
            Box::new(move |u, v| {
                let (x, y) = (u / 256.0, v / 256.0);
                let (dx, dy) = ((u - c.0) / 256.0, (v - c.1) / 256.0);
                a * x + b * y + radial * (dx * dx + dy * dy) + wobble * p.at(u * 0.006, v * 0.006)
            })
        }
        "marble" => {
            let f = 1.0 / rng.range(20.0, 120.0);
            let turb = rng.range(2.0, 8.0);
            let sharp = rng.range(0.5, 6.0);
            Box::new(move |u, v| {
                let t = p.fractal(u * 0.01, v * 0.01, 5, Fractal::Turbulence);
                (0.5 + 0.5 * (u * f * TAU + turb * t * TAU).sin()).powf(sharp)
            })
        }
        "mesh" => {
            let pitch = rng.range(7.0, 32.0);
            let r = pitch * rng.range(0.15, 0.4);
            let staggered = rng.chance(0.5);
            let wire = rng.chance(0.4);
            Box::new(move |u, v| {
                if wire {
                    // two sets of round wires over a dark ground
                    let a = (u / pitch).rem_euclid(1.0) - 0.5;
                    let b = (v / pitch).rem_euclid(1.0) - 0.5;
                    let w = r / pitch;
                    let wa = (1.0 - (a / w).powi(2)).max(0.0).sqrt();
                    let wb = (1.0 - (b / w).powi(2)).max(0.0).sqrt();
                    let over = ((u / pitch).floor() + (v / pitch).floor()) as i64 % 2 == 0;
                    0.1 + if over {
                        wa.max(0.8 * wb)
                    } else {
                        wb.max(0.8 * wa)
                    }
                } else {
                    let row = (v / pitch).floor();
                    let uu = if staggered && (row as i64).rem_euclid(2) == 1 {
                        u + pitch / 2.0
                    } else {
                        u
                    };
                    let (a, b) = (
                        uu.rem_euclid(pitch) - pitch / 2.0,
                        v - row * pitch - pitch / 2.0,
                    );
                    let plate = 0.7 + 0.3 * p.fractal(u * 0.01, v * 0.6, 2, Fractal::Fbm);
                    plate * smoothstep(-0.8, 0.8, (a * a + b * b).sqrt() - r)
                }
            })
        }
        relief if super::relief::FAMILIES.contains(&relief) => super::relief::field(relief, rng),
        other => unreachable!("texture: unknown family {other}; callers check against FAMILIES"),
    }
}
