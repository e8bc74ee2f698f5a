//! The physical families of the surface universe: surfaces with relief (pebbles, gravel, sand,
//! stone, masonry, knurled and perforated metal, machined and cast metal, leather grain, paper,
//! foam, carpet) drawn as a height field lit from one direction, and plant fibre drawn as
//! strokes. Like the families of `super::textures`, each returns a scalar field over design
//! coordinates (256-px units) that [`super::textures::Texture`] places, stretches and colours.
//!
//! Lighting: Lambert shading of the height field's normals (central differences half a design
//! pixel apart) under a light at a random azimuth and elevation, plus an ambient term, times an
//! albedo field — so grains, domes and grooves show the bright and shadowed sides a camera with
//! a directional light sees, not a flat print of the same pattern.

use std::f32::consts::{PI, TAU};

use super::textures::{cell01, dist_to_segment, smoothstep, voronoi, Field};
use crate::noise::{Fractal, Perlin, ValueNoise};
use crate::rng::Rng;

/// The families this module draws, in `FAMILIES` order.
pub const FAMILIES: [&str; 14] = [
    "pebbles",      // rounded stones of their own shades, lit
    "gravel",       // small angular stones, faceted
    "sand",         // grains, with or without wind ripples
    "stone",        // rough rock: ridged relief, mineral speckles
    "masonry",      // bricks and blocks in recessed mortar
    "knurled",      // diamond and straight knurling
    "perforated",   // plate with round holes or slots, lit rims
    "machined",     // turned, face-milled and ground metal
    "cast",         // sand-cast metal: undulating, pitted
    "leathergrain", // creased grain with pores, in relief
    "paper",        // fibres over a cloudy formation
    "foam",         // open cells: bright struts, shadowed pores
    "carpet",       // loop pile, heathered
    "grass",        // plant fibre: thin curved strokes, mostly one way
];

/// A directional light: unit vector (z towards the camera), the ambient share and how strongly
/// the relief's slopes turn the normals.
#[derive(Clone, Copy)]
struct Light {
    dir: [f32; 3],
    ambient: f32,
    depth: f32,
}

fn light(rng: &mut Rng) -> Light {
    let azimuth = rng.range(0.0, TAU);
    let elevation = rng.range(0.35, 1.15); // 20–66 degrees above the surface
    Light {
        dir: [
            elevation.cos() * azimuth.cos(),
            elevation.cos() * azimuth.sin(),
            elevation.sin(),
        ],
        ambient: rng.range(0.12, 0.4),
        depth: rng.range(0.6, 1.6),
    }
}

/// `albedo · (ambient + (1 − ambient) · max(0, n · l))` for the normals of `height` (in design
/// pixels).
fn lit(
    height: impl Fn(f32, f32) -> f32 + Send + Sync + 'static,
    albedo: impl Fn(f32, f32) -> f32 + Send + Sync + 'static,
    light: Light,
) -> Field {
    Box::new(move |u, v| {
        let e = 0.5;
        let hx = (height(u + e, v) - height(u - e, v)) / (2.0 * e);
        let hy = (height(u, v + e) - height(u, v - e)) / (2.0 * e);
        let n = [-light.depth * hx, -light.depth * hy, 1.0];
        let len = (n[0] * n[0] + n[1] * n[1] + 1.0).sqrt();
        let lambert = ((n[0] * light.dir[0] + n[1] * light.dir[1] + light.dir[2]) / len).max(0.0);
        albedo(u, v) * (light.ambient + (1.0 - light.ambient) * lambert)
    })
}

/// A triangle wave in [0, ½]: the distance of `x` to the nearest integer.
fn tri(x: f32) -> f32 {
    (x - x.round()).abs()
}

/// A circular cap rising from an edge: height at distance `d` inside, radius `r`.
fn cap(d: f32, r: f32) -> f32 {
    let d = d.clamp(0.0, r);
    (d * (2.0 * r - d)).sqrt()
}

/// The random field of one relief family (`family` is one of [`FAMILIES`]).
pub fn field(family: &str, rng: &mut Rng) -> Field {
    let seed = rng.next_u64();
    let p = Perlin::new(seed);
    let vn = ValueNoise::new(seed ^ 0x1234_5678);
    let lt = light(rng);
    match family {
        "pebbles" => {
            let cell = rng.range(10.0, 40.0);
            let round = rng.range(0.35, 0.9);
            let gap = rng.range(0.4, 3.0);
            let spread = rng.range(0.2, 0.7);
            let gap_tone = rng.range(0.1, 0.5);
            let r = cell * 0.35;
            let height = move |u: f32, v: f32| {
                let (f1, f2, id) = voronoi(seed, u, v, cell, 1.0);
                let edge = (f2 - f1) * 0.5 - gap * 0.5;
                round * cap(edge, r) * (0.8 + 0.4 * id)
            };
            lit(
                height,
                move |u, v| {
                    let (f1, f2, id) = voronoi(seed, u, v, cell, 1.0);
                    if (f2 - f1) * 0.5 < gap * 0.5 {
                        gap_tone
                    } else {
                        (1.0 - spread) + spread * id + 0.1 * (vn.at(u * 0.6, v * 0.6) - 0.5)
                    }
                },
                lt,
            )
        }
        "gravel" => {
            let cell = rng.range(4.0, 12.0);
            let slope = rng.range(0.3, 0.8);
            let spread = rng.range(0.3, 0.8);
            lit(
                move |u, v| {
                    let (f1, f2, id) = voronoi(seed, u, v, cell, 1.0);
                    slope * (f2 - f1) * 0.5 + id * cell * 0.3
                },
                move |u, v| {
                    let (_, _, id) = voronoi(seed, u, v, cell, 1.0);
                    (1.0 - spread) + spread * cell01(seed ^ 7, (id * 1e6) as i64, 1)
                },
                lt,
            )
        }
        "sand" => {
            let wave = rng.range(8.0, 30.0);
            let amp = if rng.chance(0.7) {
                wave * rng.range(0.04, 0.12)
            } else {
                0.0
            };
            let lee = rng.range(0.55, 0.85);
            let warp = rng.range(0.0, 0.6);
            let grain = rng.range(0.6, 1.6);
            lit(
                move |u, v| {
                    let t = (u / wave + warp * p.fractal(u * 0.01, v * 0.01, 2, Fractal::Fbm))
                        .rem_euclid(1.0);
                    let ripple = if t < lee {
                        t / lee
                    } else {
                        (1.0 - t) / (1.0 - lee)
                    };
                    amp * ripple + 0.6 * vn.at(u * grain, v * grain)
                },
                move |u, v| 0.85 + 0.3 * (vn.at(u * grain * 1.3 + 7.0, v * grain * 1.3) - 0.5),
                lt,
            )
        }
        "stone" => {
            let f = 1.0 / rng.range(15.0, 80.0);
            let amp = rng.range(6.0, 30.0);
            let kind = [Fractal::Fbm, Fractal::Ridged][rng.below(2)];
            let speck = rng.range(1.5, 5.0);
            let speck_share = rng.range(0.0, 0.25);
            lit(
                move |u, v| amp * p.fractal(u * f, v * f, 5, kind),
                move |u, v| {
                    let (f1, _, id) = voronoi(seed ^ 3, u, v, speck, 1.0);
                    let mineral = if id < speck_share && f1 < speck * 0.5 {
                        if id < speck_share / 2.0 {
                            -0.35
                        } else {
                            0.3
                        }
                    } else {
                        0.0
                    };
                    0.6 + 0.3 * (p.fractal(u * 0.01 + 9.0, v * 0.01, 3, Fractal::Fbm) - 0.5)
                        + mineral
                },
                lt,
            )
        }
        "masonry" => {
            let bw = rng.range(20.0, 80.0);
            let bh = bw / rng.range(1.5, 3.2);
            let bond = rng.below(3); // running, stack, random offsets
            let mortar = rng.range(1.5, 5.0);
            let mortar_tone = if rng.chance(0.5) {
                rng.range(0.7, 0.95)
            } else {
                rng.range(0.15, 0.4)
            };
            let spread = rng.range(0.1, 0.4);
            let rough = rng.range(0.3, 2.0);
            let brick = move |u: f32, v: f32| {
                let row = (v / bh).floor();
                let shift = match bond {
                    0 => {
                        if (row as i64).rem_euclid(2) == 1 {
                            bw / 2.0
                        } else {
                            0.0
                        }
                    }
                    1 => 0.0,
                    _ => cell01(seed, row as i64, 11) * bw,
                };
                let col = ((u + shift) / bw).floor();
                let (a, b) = (u + shift - col * bw, v - row * bh);
                let edge = a.min(b).min(bw - a).min(bh - b);
                (edge, cell01(seed, col as i64, row as i64))
            };
            lit(
                move |u, v| {
                    let (edge, _) = brick(u, v);
                    3.0 * smoothstep(mortar / 2.0, mortar / 2.0 + 1.5, edge)
                        + rough * p.fractal(u * 0.15, v * 0.15, 3, Fractal::Fbm)
                },
                move |u, v| {
                    let (edge, id) = brick(u, v);
                    let face = 0.55 + spread * (id - 0.5) + 0.1 * (vn.at(u * 0.4, v * 0.4) - 0.5);
                    let w = smoothstep(mortar / 2.0, mortar / 2.0 + 1.0, edge);
                    mortar_tone + (face - mortar_tone) * w
                },
                lt,
            )
        }
        "knurled" => {
            let pitch = rng.range(4.0, 12.0);
            let diamond = rng.chance(0.7);
            let aspect = rng.range(0.7, 1.4);
            let worn = rng.range(0.3, 0.5);
            lit(
                move |u, v| {
                    let t = if diamond {
                        tri((u + v * aspect) / pitch).min(tri((u - v * aspect) / pitch))
                    } else {
                        tri(u / pitch)
                    };
                    pitch * 0.6 * t.min(worn * 0.5)
                },
                move |u, v| 0.75 + 0.15 * (p.fractal(u * 0.02, v * 0.02, 2, Fractal::Fbm) - 0.5),
                lt,
            )
        }
        "perforated" => {
            let pitch = rng.range(8.0, 30.0);
            let r = pitch * rng.range(0.2, 0.42);
            let staggered = rng.chance(0.5);
            let slot = if rng.chance(0.3) {
                rng.range(1.5, 3.0)
            } else {
                1.0
            };
            let hole = move |u: f32, v: f32| {
                let row = (v / pitch).floor();
                let uu = if staggered && (row as i64).rem_euclid(2) == 1 {
                    u + pitch * slot / 2.0
                } else {
                    u
                };
                let (a, b) = (
                    uu.rem_euclid(pitch * slot) - pitch * slot / 2.0,
                    v - row * pitch - pitch / 2.0,
                );
                // a slot is a capsule: a segment of half-length (slot − 1)·pitch/2, radius r
                let reach = ((slot - 1.0) * pitch / 2.0).max(0.0);
                let a = (a.abs() - reach).max(0.0);
                (a * a + b * b).sqrt() - r
            };
            lit(
                move |u, v| {
                    2.0 * smoothstep(-1.0, 1.0, hole(u, v))
                        + 0.3 * p.fractal(u * 0.05, v * 0.05, 2, Fractal::Fbm)
                },
                move |u, v| if hole(u, v) < 0.0 { 0.12 } else { 0.8 },
                lt,
            )
        }
        "machined" => {
            let pitch = rng.range(1.5, 6.0);
            let variant = rng.below(3);
            let far = rng.range(200.0, 2000.0);
            let stride = rng.range(30.0, 120.0);
            let sheen = rng.range(0.05, 0.25);
            lit(
                move |u, v| match variant {
                    // turned: rings about a far centre, with chatter
                    0 => {
                        let r = (u * u + (v + far).powi(2)).sqrt();
                        0.4 * (TAU * r / pitch).sin() + 0.2 * p.at(u * 0.02, v * 0.5)
                    }
                    // face-milled: overlapping arcs, one per pass along u
                    1 => {
                        let k = (u / stride).round();
                        let d = ((u - k * stride).powi(2) + (v + stride).powi(2)).sqrt();
                        0.4 * (TAU * d / pitch).sin()
                    }
                    // ground: fine straight scratches
                    _ => 1.2 * p.fractal(u * 0.004, v * 0.8, 3, Fractal::Fbm),
                },
                move |u, v| 0.8 + sheen * (p.fractal(u * 0.006, v * 0.006, 2, Fractal::Fbm) - 0.5),
                lt,
            )
        }
        "cast" => {
            let f = 1.0 / rng.range(15.0, 45.0);
            let amp = rng.range(3.0, 10.0);
            let pit = rng.range(5.0, 15.0);
            let pits = rng.range(0.0, 0.25);
            lit(
                move |u, v| {
                    let (f1, _, id) = voronoi(seed ^ 5, u, v, pit, 1.0);
                    let dip = if id < pits {
                        -2.0 * (1.0 - (f1 / (pit * 0.3)).min(1.0)).powi(2)
                    } else {
                        0.0
                    };
                    amp * p.fractal(u * f, v * f, 4, Fractal::Fbm) + vn.at(u * 0.8, v * 0.8) + dip
                },
                move |u, v| {
                    0.55 + 0.15 * (p.fractal(u * 0.01 + 3.0, v * 0.01, 2, Fractal::Fbm) - 0.5)
                },
                lt,
            )
        }
        "leathergrain" => {
            let cell = rng.range(5.0, 18.0);
            let crease = rng.range(0.5, 2.0);
            let warp = rng.range(0.1, 0.4) * cell;
            let pores = rng.range(0.0, 0.4);
            lit(
                move |u, v| {
                    let (x, y) = (
                        u + warp * (p.at(u * 0.04, v * 0.04) - 0.5) * 2.0,
                        v + warp * (p.at(u * 0.04 + 40.0, v * 0.04) - 0.5) * 2.0,
                    );
                    let (f1, f2, _) = voronoi(seed, x, y, cell, 0.9);
                    let (g1, _, gid) = voronoi(seed ^ 9, u, v, 2.5, 1.0);
                    let pore = if gid < pores && g1 < 0.8 { -0.6 } else { 0.0 };
                    1.5 * smoothstep(0.0, crease, f2 - f1) + 0.5 * vn.at(u * 0.3, v * 0.3) + pore
                },
                move |u, v| 0.75 + 0.1 * (vn.at(u * 0.05, v * 0.05) - 0.5),
                lt,
            )
        }
        "paper" => {
            let cell = rng.range(10.0, 20.0);
            let direction = rng.range(0.0, 0.8); // how strongly fibres align
            let formation = rng.range(0.1, 0.4);
            let width = rng.range(0.4, 1.1);
            let fibres = move |u: f32, v: f32| {
                let (ci, cj) = ((u / cell).floor() as i64, (v / cell).floor() as i64);
                let mut best: f32 = 0.0;
                for dj in -1..=1 {
                    for di in -1..=1 {
                        let (i, j) = (ci + di, cj + dj);
                        for k in 0..3i64 {
                            let h = |s: i64| cell01(seed ^ (s * 31 + k) as u64, i, j);
                            let c = ((i as f32 + h(1)) * cell, (j as f32 + h(2)) * cell);
                            let a = (h(3) - 0.5) * PI * (1.0 - direction);
                            let len = cell * (0.5 + h(4));
                            let d = (a.cos() * len / 2.0, a.sin() * len / 2.0);
                            let dist = dist_to_segment(
                                (u, v),
                                (c.0 - d.0, c.1 - d.1),
                                (c.0 + d.0, c.1 + d.1),
                            );
                            best = best.max((1.0 - dist / width).max(0.0) * (0.6 + 0.4 * h(5)));
                        }
                    }
                }
                best
            };
            lit(
                move |u, v| {
                    0.8 * fibres(u, v) + 2.0 * p.fractal(u * 0.03, v * 0.03, 3, Fractal::Fbm)
                },
                move |u, v| {
                    0.8 + formation * (p.fractal(u * 0.015 + 5.0, v * 0.015, 3, Fractal::Fbm) - 0.5)
                        + 0.1 * fibres(u, v)
                },
                Light {
                    depth: lt.depth * 0.4,
                    ..lt
                },
            )
        }
        "foam" => {
            let cell = rng.range(6.0, 25.0);
            let wall = rng.range(0.6, 2.5);
            let depth = rng.range(0.25, 0.5) * cell;
            let pore = move |u: f32, v: f32| {
                let (f1, f2, _) = voronoi(seed, u, v, cell, 1.0);
                smoothstep(wall * 0.5, wall * 0.5 + cell * 0.3, (f2 - f1) * 0.5)
            };
            lit(
                move |u, v| -depth * pore(u, v),
                move |u, v| 0.85 - 0.55 * pore(u, v),
                lt,
            )
        }
        "carpet" => {
            let pitch = rng.range(3.0, 8.0);
            let row = pitch * rng.range(0.8, 1.6);
            let stretch = rng.range(0.6, 1.0);
            let heather = rng.range(0.1, 0.5);
            let jitter = rng.range(0.0, 0.35);
            let loops = move |u: f32, v: f32| {
                let (ci, cj) = ((u / pitch).floor() as i64, (v / row).floor() as i64);
                let (mut h, mut id) = (0.0f32, 0.0f32);
                for dj in -1..=1 {
                    for di in -1..=1 {
                        let (i, j) = (ci + di, cj + dj);
                        let c = (
                            (i as f32 + 0.5 + jitter * (cell01(seed, i, j) - 0.5)) * pitch,
                            (j as f32 + 0.5 + jitter * (cell01(seed ^ 1, i, j) - 0.5)) * row,
                        );
                        let (dx, dy) = (
                            (u - c.0) / (pitch * 0.55),
                            (v - c.1) / (row * 0.55 * stretch),
                        );
                        let b = (1.0 - dx * dx - dy * dy).max(0.0).sqrt();
                        if b > h {
                            h = b;
                            id = cell01(seed ^ 2, i, j);
                        }
                    }
                }
                (h, id)
            };
            lit(
                move |u, v| loops(u, v).0 * pitch * 0.5,
                move |u, v| {
                    let (h, id) = loops(u, v);
                    (0.35 + 0.65 * h.min(0.5) * 2.0) * (1.0 - heather + heather * id)
                },
                lt,
            )
        }
        "grass" => {
            let cell = rng.range(10.0, 28.0);
            let spread = rng.range(0.1, 0.6);
            let width = rng.range(0.7, 2.2);
            let bend = rng.range(0.0, 0.5);
            let ground = rng.range(0.02, 0.2);
            Box::new(move |u, v| {
                let (ci, cj) = ((u / cell).floor() as i64, (v / cell).floor() as i64);
                let mut best = ground;
                for dj in -1..=1 {
                    for di in -2..=2 {
                        let (i, j) = (ci + di, cj + dj);
                        for k in 0..4i64 {
                            let h = |s: i64| cell01(seed ^ (s * 17 + k) as u64, i, j);
                            let a0 = (i as f32 + h(1)) * cell;
                            let b0 = (j as f32 + h(2)) * cell;
                            let angle = (h(3) - 0.5) * 2.0 * spread;
                            let len = cell * (1.0 + h(4));
                            let (ca, sa) = (angle.cos(), angle.sin());
                            // two segments bending by `bend` at the middle
                            let mid = (
                                a0 + ca * len / 2.0 - sa * bend * len * (h(5) - 0.5),
                                b0 + sa * len / 2.0 + ca * bend * len * (h(5) - 0.5),
                            );
                            let end = (a0 + ca * len, b0 + sa * len);
                            let d = dist_to_segment((u, v), (a0, b0), mid).min(dist_to_segment(
                                (u, v),
                                mid,
                                end,
                            ));
                            // thinner towards the tip: the blade's own width at its far half
                            let w = width * (0.6 + 0.4 * h(6));
                            if d < w {
                                let profile = (1.0 - (d / w).powi(2)).sqrt();
                                best = best.max((0.4 + 0.6 * h(7)) * (0.5 + 0.5 * profile));
                            }
                        }
                    }
                }
                best
            })
        }
        other => unreachable!("relief: unknown family {other}; callers check against FAMILIES"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dome lit from +x: its +x flank (facing the light) is brighter than its −x flank, and the
    /// flat ground between them has the shading of a flat surface.
    #[test]
    fn relief_is_lit_from_the_light_side() {
        let light = Light {
            dir: [0.6, 0.0, 0.8],
            ambient: 0.2,
            depth: 1.0,
        };
        let f = lit(
            |u, v| 10.0 * (1.0 - (u * u + v * v) / 100.0).max(0.0),
            |_, _| 1.0,
            light,
        );
        let (facing, away, flat) = (f(5.0, 0.0), f(-5.0, 0.0), f(50.0, 50.0));
        assert!(facing > flat && flat > away, "{facing} {flat} {away}");
        assert!((flat - (0.2 + 0.8 * 0.8)).abs() < 1e-5, "{flat}");
    }

    #[test]
    fn the_universe_lists_these_families_after_its_first_twelve() {
        assert_eq!(&super::super::textures::FAMILIES[12..], &FAMILIES[..]);
    }

    #[test]
    fn a_capped_edge_rises_and_levels() {
        assert_eq!(cap(0.0, 5.0), 0.0);
        assert!(cap(1.0, 5.0) < cap(3.0, 5.0));
        assert_eq!(cap(5.0, 5.0), cap(50.0, 5.0));
        assert!((tri(2.25) - 0.25).abs() < 1e-6 && tri(3.0) == 0.0);
    }
}
