//! The camera: what happens to a surface between the object and the file. Uneven illumination
//! (a linear gradient, vignetting and, some of the time, a blotchy low-frequency light field),
//! global contrast and brightness, optics (Gaussian blur, a defocus disc or motion along a line,
//! each some of the time), sensor noise, 8-bit quantisation and, half the time, a JPEG round
//! trip at a random quality. (Perspective is the texture's: `super::textures::Texture` views
//! the surface through a random keystone, so defects drawn on it keep exact masks.)
//!
//! Applied to good and defective images alike, after the defect, so none of these is a cue.

use crate::noise::Perlin;
use crate::rng::Rng;
use crate::Canvas;

/// Separable Gaussian blur of the whole canvas, edges clamped.
pub fn gaussian_blur(canvas: &mut Canvas, sigma: f32) {
    let radius = (sigma * 2.5).ceil().max(1.0) as isize;
    let weights: Vec<f32> = (-radius..=radius)
        .map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp())
        .collect();
    let total: f32 = weights.iter().sum();
    let weights: Vec<f32> = weights.iter().map(|w| w / total).collect();
    let n = canvas.size as isize;
    let pass = |src: &[[f32; 3]], horizontal: bool| -> Vec<[f32; 3]> {
        let mut out = vec![[0.0f32; 3]; src.len()];
        for y in 0..n {
            for x in 0..n {
                let mut acc = [0.0f32; 3];
                for (k, w) in weights.iter().enumerate() {
                    let d = k as isize - radius;
                    let (sx, sy) = if horizontal {
                        ((x + d).clamp(0, n - 1), y)
                    } else {
                        (x, (y + d).clamp(0, n - 1))
                    };
                    let p = src[(sy * n + sx) as usize];
                    for c in 0..3 {
                        acc[c] += w * p[c];
                    }
                }
                out[(y * n + x) as usize] = acc;
            }
        }
        out
    };
    let h = pass(&canvas.rgb, true);
    canvas.rgb = pass(&h, false);
}

/// Illumination, contrast, blur, noise and compression: the 8-bit image a camera delivers.
pub fn camera(mut canvas: Canvas, rng: &mut Rng) -> image::RgbImage {
    let n = canvas.size as f32;
    let s = n / 256.0;
    // light: a linear falloff across the field and a vignette
    let dir = rng.range(0.0, std::f32::consts::TAU);
    let (dx, dy) = (dir.cos(), dir.sin());
    let slope = rng.range(0.0, 0.35);
    let vignette = if rng.chance(0.5) {
        rng.range(0.0, 0.35)
    } else {
        0.0
    };
    // a blotchy light field: (noise, amplitude, frequency over the image)
    let blotches = rng.chance(0.4).then(|| {
        (
            Perlin::new(rng.next_u64()),
            rng.range(0.1, 0.35),
            rng.range(1.0, 3.5),
        )
    });
    let contrast = rng.range(0.75, 1.25);
    let brightness = rng.range(-0.08, 0.08);
    let mean = canvas.mean();
    let half = n / 2.0;
    for y in 0..canvas.size {
        for x in 0..canvas.size {
            let (px, py) = ((x as f32 + 0.5 - half) / n, (y as f32 + 0.5 - half) / n);
            let mut light =
                (1.0 + slope * (px * dx + py * dy)) * (1.0 - vignette * 2.0 * (px * px + py * py));
            if let Some((noise, amp, f)) = &blotches {
                light *= 1.0 + amp * 2.0 * (noise.at(px * f + 7.0, py * f + 3.0) - 0.5);
            }
            let c = canvas.get(x, y);
            canvas.set(
                x,
                y,
                [0, 1, 2].map(|k| ((c[k] - mean[k]) * contrast + mean[k] + brightness) * light),
            );
        }
    }
    let optics = rng.uniform();
    if optics < 0.25 {
        gaussian_blur(&mut canvas, rng.range(0.4, 1.2) * s.max(0.5));
    } else if optics < 0.35 {
        defocus(&mut canvas, rng.range(1.0, 2.5) * s.max(0.5));
    } else if optics < 0.45 {
        let angle = rng.range(0.0, std::f32::consts::PI);
        motion_blur(&mut canvas, rng.range(2.0, 6.0) * s.max(0.5), angle);
    }
    let noise = if rng.chance(0.7) {
        rng.range(0.002, 0.03)
    } else {
        0.0
    };
    let img = canvas.to_rgb8(rng, noise);
    if rng.chance(0.5) {
        let quality = 50 + rng.below(46) as u8;
        jpeg_round_trip(&img, quality)
    } else {
        img
    }
}

/// A defocused lens: the mean over a disc of `radius` px (edges clamped).
pub fn defocus(canvas: &mut Canvas, radius: f32) {
    let r = radius.ceil() as isize;
    let taps: Vec<(isize, isize)> = (-r..=r)
        .flat_map(|j| (-r..=r).map(move |i| (i, j)))
        .filter(|&(i, j)| ((i * i + j * j) as f32).sqrt() <= radius)
        .collect();
    convolve(canvas, &taps);
}

/// Motion during the exposure: the mean along a line `length` px long at `angle` (radians).
pub fn motion_blur(canvas: &mut Canvas, length: f32, angle: f32) {
    let steps = length.ceil().max(1.0) as isize;
    let (dx, dy) = (angle.cos(), angle.sin());
    let taps: Vec<(isize, isize)> = (-steps..=steps)
        .map(|t| {
            let d = t as f32 * length / (2.0 * steps as f32);
            ((d * dx).round() as isize, (d * dy).round() as isize)
        })
        .collect();
    convolve(canvas, &taps);
}

/// The mean of each pixel's `taps` (offsets, edges clamped).
fn convolve(canvas: &mut Canvas, taps: &[(isize, isize)]) {
    let n = canvas.size as isize;
    let w = 1.0 / taps.len() as f32;
    let src = canvas.rgb.clone();
    for y in 0..n {
        for x in 0..n {
            let mut acc = [0.0f32; 3];
            for &(i, j) in taps {
                let p = src[((y + j).clamp(0, n - 1) * n + (x + i).clamp(0, n - 1)) as usize];
                (0..3).for_each(|c| acc[c] += w * p[c]);
            }
            canvas.rgb[(y * n + x) as usize] = acc;
        }
    }
}

/// Encodes `img` as JPEG at `quality` in memory and decodes it back: the blocks and ringing
/// of a compressed camera stream.
pub fn jpeg_round_trip(img: &image::RgbImage, quality: u8) -> image::RgbImage {
    let mut bytes = Vec::new();
    let encoded = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, quality)
        .encode_image(img)
        .is_ok();
    // Encoding to memory cannot fail for an RGB8 image; if it ever did, keep the clean image.
    match encoded.then(|| image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg)) {
        Some(Ok(decoded)) => decoded.to_rgb8(),
        _ => img.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jpeg_round_trip_keeps_the_picture_but_changes_bytes() {
        let img = image::RgbImage::from_fn(32, 32, |x, y| {
            image::Rgb([(x * 8) as u8, (y * 8) as u8, 90])
        });
        let back = jpeg_round_trip(&img, 60);
        assert_eq!(back.dimensions(), (32, 32));
        assert_ne!(back, img);
        let err: f32 = img
            .pixels()
            .zip(back.pixels())
            .map(|(a, b)| (a.0[0] as f32 - b.0[0] as f32).abs())
            .sum::<f32>()
            / 1024.0;
        assert!(err < 12.0, "mean error {err}");
    }

    #[test]
    fn defocus_and_motion_keep_a_flat_canvas_flat_and_spread_a_point_their_way() {
        for horizontal in [true, false] {
            let mut c = Canvas::new(16);
            c.fill(|_, _| [0.5; 3]);
            defocus(&mut c, 2.0);
            motion_blur(&mut c, 4.0, 0.3);
            assert!(c.rgb.iter().all(|p| (p[0] - 0.5).abs() < 1e-6));
            let mut c = Canvas::new(16);
            c.set(8, 8, [1.0; 3]);
            let angle = if horizontal {
                0.0
            } else {
                std::f32::consts::FRAC_PI_2
            };
            motion_blur(&mut c, 4.0, angle);
            let (along, across) = if horizontal {
                (c.get(10, 8)[0], c.get(8, 10)[0])
            } else {
                (c.get(8, 10)[0], c.get(10, 8)[0])
            };
            assert!(along > 0.0 && across == 0.0, "{along} {across}");
        }
    }

    #[test]
    fn blur_keeps_a_flat_canvas_flat_and_softens_an_edge() {
        let mut c = Canvas::new(16);
        c.fill(|x, _| if x < 8.0 { [0.0; 3] } else { [1.0; 3] });
        gaussian_blur(&mut c, 1.0);
        assert!(c.get(7, 5)[0] > 0.1 && c.get(8, 5)[0] < 0.9);
        assert!((c.get(0, 0)[0]).abs() < 1e-6 && (c.get(15, 15)[0] - 1.0).abs() < 1e-6);
    }
}
