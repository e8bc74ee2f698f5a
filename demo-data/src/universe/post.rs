//! The camera: what happens to a surface between the object and the file. Uneven illumination
//! (a linear gradient and vignetting), global contrast and brightness, optical blur, sensor
//! noise, 8-bit quantisation and, half the time, a JPEG round trip at a random quality.
//!
//! Applied to good and defective images alike, after the defect, so none of these is a cue.

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
    let contrast = rng.range(0.75, 1.25);
    let brightness = rng.range(-0.08, 0.08);
    let mean = canvas.mean();
    let half = n / 2.0;
    for y in 0..canvas.size {
        for x in 0..canvas.size {
            let (px, py) = ((x as f32 + 0.5 - half) / n, (y as f32 + 0.5 - half) / n);
            let light =
                (1.0 + slope * (px * dx + py * dy)) * (1.0 - vignette * 2.0 * (px * px + py * py));
            let c = canvas.get(x, y);
            canvas.set(
                x,
                y,
                [0, 1, 2].map(|k| ((c[k] - mean[k]) * contrast + mean[k] + brightness) * light),
            );
        }
    }
    if rng.chance(0.35) {
        gaussian_blur(&mut canvas, rng.range(0.4, 1.2) * s.max(0.5));
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
    fn blur_keeps_a_flat_canvas_flat_and_softens_an_edge() {
        let mut c = Canvas::new(16);
        c.fill(|x, _| if x < 8.0 { [0.0; 3] } else { [1.0; 3] });
        gaussian_blur(&mut c, 1.0);
        assert!(c.get(7, 5)[0] > 0.1 && c.get(8, 5)[0] < 0.9);
        assert!((c.get(0, 0)[0]).abs() < 1e-6 && (c.get(15, 15)[0] - 1.0).abs() < 1e-6);
    }
}
