//! From the graph's map to what a person looks at: the map resized back to the original image
//! size (bilinear, half-pixel centres), a heatmap overlay (jet colormap blended on the image, on
//! the raw scale or one anchored on a pixel threshold), the map as a 16-bit grayscale image, a
//! binary mask above a threshold, the overlay's colour scale ([`OverlayScale`]), and PNG bytes of any of them (what `dlvp detect --out` writes
//! and `dlvp serve`'s `/v1/detect` returns).

use image::{GrayImage, ImageBuffer, Luma, Rgb, RgbImage};
use ndarray::Array2;

/// Bilinear resize of an [h, w] map to [out_h, out_w] with half-pixel centres (edge-clamped).
pub fn resize_map(map: &Array2<f32>, out_w: usize, out_h: usize) -> Array2<f32> {
    let (h, w) = map.dim();
    let coord = |i: usize, inp: usize, out: usize| -> (usize, usize, f32) {
        let x = ((i as f32 + 0.5) * inp as f32 / out as f32 - 0.5).max(0.0);
        let x0 = (x.floor() as usize).min(inp - 1);
        let x1 = (x0 + 1).min(inp - 1);
        (x0, x1, x - x0 as f32)
    };
    // Each column's and row's taps once, not once per pixel (a 5 MP image has 5 M pixels and
    // only ~2 500 columns); the arithmetic per pixel is the same, so are the values.
    let columns: Vec<(usize, usize, f32)> = (0..out_w).map(|x| coord(x, w, out_w)).collect();
    let rows: Vec<(usize, usize, f32)> = (0..out_h).map(|y| coord(y, h, out_h)).collect();
    Array2::from_shape_fn((out_h, out_w), |(y, x)| {
        let (y0, y1, fy) = rows[y];
        let (x0, x1, fx) = columns[x];
        let top = map[[y0, x0]] * (1.0 - fx) + map[[y0, x1]] * fx;
        let bottom = map[[y1, x0]] * (1.0 - fx) + map[[y1, x1]] * fx;
        top * (1.0 - fy) + bottom * fy
    })
}

/// The jet colormap at t ∈ [0, 1]: dark blue → blue → cyan → yellow → red → dark red
/// (`channel = clamp(1.5 − |4t − k|)` with k = 3, 2, 1 for red, green, blue).
pub fn jet(t: f32) -> [u8; 3] {
    let t = t.clamp(0.0, 1.0);
    [3.0f32, 2.0, 1.0].map(|k| ((1.5 - (4.0 * t - k).abs()).clamp(0.0, 1.0) * 255.0).round() as u8)
}

/// The map in jet colours blended half-and-half on the image (same size as the image).
pub fn overlay(image: &RgbImage, map: &Array2<f32>) -> RgbImage {
    overlay_scaled(image, map, OverlayScale::Raw)
}

/// The map in jet colours at `scale`'s positions, blended half-and-half on the image.
pub fn overlay_scaled(image: &RgbImage, map: &Array2<f32>, scale: OverlayScale) -> RgbImage {
    RgbImage::from_fn(image.width(), image.height(), |x, y| {
        let c = jet(scale.position(map[[y as usize, x as usize]]));
        let p = image.get_pixel(x, y);
        Rgb([0, 1, 2].map(|i| (p[i] as u16 + c[i] as u16).div_ceil(2) as u8))
    })
}

/// Outlines on `image` the cells of a `grid`×`grid` patch grid (stretched over it) whose
/// row-major indices are `topk` (SLFS's selection), in white.
pub fn draw_topk(image: &mut RgbImage, topk: &[i64], grid: usize) {
    let (w, h) = (image.width() as f32, image.height() as f32);
    for &index in topk {
        if index < 0 || index as usize >= grid * grid {
            continue;
        }
        let (row, col) = (index as usize / grid, index as usize % grid);
        let x0 = (col as f32 * w / grid as f32).floor() as u32;
        let x1 = (((col + 1) as f32 * w / grid as f32).ceil() as u32)
            .min(image.width())
            .saturating_sub(1);
        let y0 = (row as f32 * h / grid as f32).floor() as u32;
        let y1 = (((row + 1) as f32 * h / grid as f32).ceil() as u32)
            .min(image.height())
            .saturating_sub(1);
        for x in x0..=x1 {
            for y in [y0, y1] {
                image.put_pixel(x, y, Rgb([255, 255, 255]));
            }
        }
        for y in y0..=y1 {
            for x in [x0, x1] {
                image.put_pixel(x, y, Rgb([255, 255, 255]));
            }
        }
    }
}

/// The map as 16-bit grayscale: [0, 1] onto 0..=65535 (clamped, rounded).
pub fn map_u16(map: &Array2<f32>) -> ImageBuffer<Luma<u16>, Vec<u16>> {
    let (h, w) = map.dim();
    ImageBuffer::from_fn(w as u32, h as u32, |x, y| {
        Luma([(map[[y as usize, x as usize]].clamp(0.0, 1.0) * 65535.0).round() as u16])
    })
}

/// An image encoded as PNG, in memory.
pub fn png_bytes(image: impl Into<image::DynamicImage>) -> Result<Vec<u8>, image::ImageError> {
    let mut bytes = Vec::new();
    image.into().write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )?;
    Ok(bytes)
}

/// How PNGs are encoded: the pixels are the same either way, the files and the time differ.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PngEncoding {
    /// Each row filtered by whichever of PNG's filters compresses it best (the `image` crate's
    /// default, [`png_bytes`]): the smallest files.
    #[default]
    Compact,
    /// Every row with the Sub filter: about half the encoding time of a 5 MP overlay, files
    /// about a third larger (measured on a 2448×2048 overlay: 41 vs 84 ms, 4 vs 3 MB).
    Fast,
}

impl PngEncoding {
    pub const ALL: [PngEncoding; 2] = [PngEncoding::Compact, PngEncoding::Fast];

    /// `compact`, `fast`.
    pub fn name(self) -> &'static str {
        match self {
            PngEncoding::Compact => "compact",
            PngEncoding::Fast => "fast",
        }
    }
}

dlvp_contract::named_enum!(PngEncoding, "PNG encoding");

/// An image encoded as PNG, in memory, as `encoding` says.
pub fn png_bytes_with(
    image: impl Into<image::DynamicImage>,
    encoding: PngEncoding,
) -> Result<Vec<u8>, image::ImageError> {
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    if encoding == PngEncoding::Compact {
        return png_bytes(image);
    }
    let mut bytes = Vec::new();
    let encoder = PngEncoder::new_with_quality(&mut bytes, CompressionType::Fast, FilterType::Sub);
    image.into().write_with_encoder(encoder)?;
    Ok(bytes)
}

/// 255 where the map is above `threshold`, 0 elsewhere (the side the decision rule decides
/// on: a value equal to a calibrated pixel threshold is not a defect).
pub fn mask(map: &Array2<f32>, threshold: f32) -> GrayImage {
    let (h, w) = map.dim();
    GrayImage::from_fn(w as u32, h as u32, |x, y| {
        // NaN is in the mask, as `Decider::in_mask` has it: a broken map never hides a defect.
        let v = map[[y as usize, x as usize]];
        Luma([if v > threshold || v.is_nan() { 255 } else { 0 }])
    })
}

/// How map values become colours on an overlay.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum OverlayScale {
    /// The map's value is the colormap position: [0, 1] from dark blue to dark red.
    #[default]
    Raw,
    /// Anchored on a pixel threshold, the same for every image of the line: values up to it
    /// take the calm lower part of the colormap (dark blue to blue, [0, 0.25]), values above it
    /// the alarming upper part (yellow to dark red, [0.65, 1] up to a map value of 1), so the
    /// colour jumps exactly where the mask begins.
    Anchored { pixel: f32 },
}

/// The calm part of the colormap ends here; the alarming part starts at [`ALARM_FROM`].
pub const CALM_UP_TO: f32 = 0.25;
pub const ALARM_FROM: f32 = 0.65;

impl OverlayScale {
    /// The colormap position, in [0, 1], of map value `v`.
    pub fn position(self, v: f32) -> f32 {
        match self {
            OverlayScale::Raw => v.clamp(0.0, 1.0),
            OverlayScale::Anchored { pixel } => {
                if v > pixel {
                    let above = if pixel < 1.0 {
                        ((v - pixel) / (1.0 - pixel)).clamp(0.0, 1.0)
                    } else {
                        1.0
                    };
                    ALARM_FROM + (1.0 - ALARM_FROM) * above
                } else if pixel > 0.0 {
                    CALM_UP_TO * (v / pixel).clamp(0.0, 1.0)
                } else {
                    0.0
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[test]
    fn resizing_keeps_constants_and_identity() {
        let flat = Array2::from_elem((7, 7), 0.25f32);
        assert!(resize_map(&flat, 30, 11)
            .iter()
            .all(|&v| (v - 0.25).abs() < 1e-6));
        let ramp = Array2::from_shape_fn((4, 5), |(y, x)| (y * 5 + x) as f32);
        assert_eq!(resize_map(&ramp, 5, 4), ramp);
    }

    #[test]
    fn topk_boxes_outline_the_selected_cells() {
        let mut img = RgbImage::new(70, 70);
        draw_topk(&mut img, &[8], 7); // row 1, column 1 of a 7×7 grid: pixels 10..=19
        assert_eq!(img.get_pixel(10, 10), &Rgb([255, 255, 255]));
        assert_eq!(img.get_pixel(19, 15), &Rgb([255, 255, 255]));
        assert_eq!(
            img.get_pixel(15, 15),
            &Rgb([0, 0, 0]),
            "inside stays untouched"
        );
        assert_eq!(img.get_pixel(5, 5), &Rgb([0, 0, 0]));
        draw_topk(&mut img, &[-1, 49], 7); // out of range: ignored
    }

    #[test]
    fn jet_runs_from_dark_blue_through_green_to_dark_red() {
        assert_eq!(jet(0.0), [0, 0, 128]);
        assert_eq!(jet(0.5), [128, 255, 128]);
        assert_eq!(jet(1.0), [128, 0, 0]);
        assert_eq!(jet(-3.0), jet(0.0));
    }

    #[test]
    fn the_anchored_scale_jumps_at_the_pixel_threshold_and_is_monotone() {
        let scale = OverlayScale::Anchored { pixel: 0.6 };
        assert_eq!(scale.position(0.0), 0.0);
        assert!((scale.position(0.6) - CALM_UP_TO).abs() < 1e-6);
        assert!(scale.position(0.600001) >= ALARM_FROM);
        assert_eq!(scale.position(1.0), 1.0);
        assert_eq!(scale.position(7.0), 1.0);
        let values: Vec<f32> = (0..=1000).map(|i| i as f32 / 1000.0).collect();
        let positions: Vec<f32> = values.iter().map(|&v| scale.position(v)).collect();
        assert!(positions.windows(2).all(|w| w[0] <= w[1]));
        // Every value at or under the threshold is calm, every value over it alarming.
        for (&v, &p) in values.iter().zip(&positions) {
            assert_eq!(p > CALM_UP_TO, v > 0.6, "{v} → {p}");
        }
    }

    #[rstest]
    #[case::zero(0.0)]
    #[case::one(1.0)]
    fn the_anchored_scale_at_the_ends_of_the_range(#[case] pixel: f32) {
        let scale = OverlayScale::Anchored { pixel };
        for v in [-1.0, 0.0, 0.5, 1.0, 2.0] {
            let p = scale.position(v);
            assert!((0.0..=1.0).contains(&p));
            assert_eq!(p >= ALARM_FROM, v > pixel, "{v} → {p}");
        }
    }
}
