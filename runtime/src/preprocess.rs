//! Image preprocessing (model-spec/README.md §1): decode → RGB8 (grayscale replicated, alpha
//! dropped) → resize to H×W exactly as PIL does → [0, 1] → normalise, giving the graph input
//! [3, H, W] f32 ([`graph_input`] batches it, or keeps the resized pixels for `image_u8` graphs).
//!
//! The resize reproduces Pillow's 8-bit path bit for bit: the weights of
//! [`dlvp_contract::resample`] are rounded to 22-bit fixed point; one pass, rounded and clipped to
//! u8, then the other (horizontal first unless the vertical pass shrinks more, as Pillow 13
//! orders them). A dimension whose size does not change is not resampled. `fixtures/preprocess/` (written by the reference with PIL)
//! holds the expected bytes.

use std::path::Path;

use dlvp_contract::resample::{windows, Kernel};
use dlvp_contract::spec::{PreprocessSpec, ResizeFilter};
use dlvp_contract::InputKind;
use image::RgbImage;
use ndarray::Array3;

use crate::input::GraphInput;

const PRECISION_BITS: u32 = 32 - 8 - 2;

#[derive(Debug, thiserror::Error)]
#[error("{}: cannot read image: {message}", path.display())]
pub struct ImageError {
    pub path: std::path::PathBuf,
    /// What went wrong, as data: callers branch on this, never on the message.
    pub kind: ImageErrorKind,
    pub message: String,
}

/// Why an image could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageErrorKind {
    /// The file could not be read.
    Io,
    /// Not an image in a format we decode, or a corrupt one.
    Decode,
    /// A JPEG cut short (no end-of-image marker).
    Truncated,
    /// More pixels than the limit, refused from the header before decoding.
    TooLarge { pixels: u64, limit: u64 },
}

/// Decodes an image file to RGB8, upright per its EXIF orientation (as PIL's
/// `ImageOps.exif_transpose`), grayscale replicated, alpha dropped, 16-bit samples reduced to
/// their high byte (what Pillow does for 16-bit RGB, and the reference's `to_rgb` for 16-bit
/// grayscale — a plain `v / 257` would round differently from the model's training data).
pub fn load_rgb8(path: &Path) -> Result<RgbImage, ImageError> {
    load_rgb8_limited(path, DEFAULT_MAX_PIXELS)
}

/// Images larger than this are refused (`--max-pixels` changes it): 2²⁸ pixels, 768 MiB as RGB8.
pub const DEFAULT_MAX_PIXELS: u64 = 1 << 28;

/// [`load_rgb8`], refusing an image of more than `max_pixels` pixels from its header, before any
/// pixel memory is allocated — a decompression bomb's header can claim 10¹⁰ pixels in a few bytes.
pub fn load_rgb8_limited(path: &Path, max_pixels: u64) -> Result<RgbImage, ImageError> {
    let bytes = std::fs::read(path).map_err(|e| ImageError {
        path: path.to_path_buf(),
        kind: ImageErrorKind::Io,
        message: e.to_string(),
    })?;
    decode_rgb8_limited(&bytes, path, max_pixels)
}

/// [`decode_rgb8_draft`] of a file.
pub fn load_rgb8_draft(
    path: &Path,
    max_pixels: u64,
    at_least: u32,
) -> Result<RgbImage, ImageError> {
    let bytes = std::fs::read(path).map_err(|e| ImageError {
        path: path.to_path_buf(),
        kind: ImageErrorKind::Io,
        message: e.to_string(),
    })?;
    decode_rgb8_draft(&bytes, path, max_pixels, at_least)
}

/// [`load_rgb8_limited`] on an encoded image already in memory (an HTTP request's body, say);
/// `name` is what errors call it.
pub fn decode_rgb8_limited(
    bytes: &[u8],
    name: &Path,
    max_pixels: u64,
) -> Result<RgbImage, ImageError> {
    use image::ImageDecoder;
    let fail = |e: image::ImageError| ImageError {
        path: name.to_path_buf(),
        kind: ImageErrorKind::Decode,
        message: e.to_string(),
    };
    let reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ImageError {
            path: name.to_path_buf(),
            kind: ImageErrorKind::Decode,
            message: e.to_string(),
        })?;
    if reader.format() == Some(image::ImageFormat::Jpeg) {
        check_jpeg_complete(bytes, name)?;
    }
    let mut decoder = reader.into_decoder().map_err(fail)?;
    let (w, h) = decoder.dimensions();
    if w as u64 * h as u64 > max_pixels {
        return Err(ImageError {
            path: name.to_path_buf(),
            kind: ImageErrorKind::TooLarge {
                pixels: w as u64 * h as u64,
                limit: max_pixels,
            },
            message: format!(
                "{w}×{h} = {} pixels, more than the limit of {max_pixels}",
                w as u64 * h as u64
            ),
        });
    }
    let orientation = decoder.orientation().map_err(fail)?;
    let mut img = image::DynamicImage::from_decoder(decoder).map_err(fail)?;
    img.apply_orientation(orientation);
    Ok(match img {
        image::DynamicImage::ImageLuma16(_)
        | image::DynamicImage::ImageLumaA16(_)
        | image::DynamicImage::ImageRgb16(_)
        | image::DynamicImage::ImageRgba16(_) => {
            let wide = img.to_rgb16();
            RgbImage::from_fn(wide.width(), wide.height(), |x, y| {
                image::Rgb(wide.get_pixel(x, y).0.map(|v| (v >> 8) as u8))
            })
        }
        other => other.to_rgb8(),
    })
}

/// [`decode_rgb8_limited`], except that a JPEG at least twice `at_least` on both sides is decoded
/// at 1/2, 1/4 or 1/8 of its size — the smallest of them that keeps both sides at least
/// `at_least` — by scaling in the DCT domain (libjpeg's and Pillow's `Image.draft`; here
/// jpeg-decoder's scaled IDCT). A 5 MP frame for a 224 px model decodes at 1/8 in a fraction of
/// the full decode's time, but the pixels the resize then sees are not Pillow's full decode:
/// scores move (the demo model on 5 MP JPEGs: 0.005 on average, up to 0.04; outside the
/// preprocessing parity, as `--jpeg-draft` says). Other
/// formats, smaller JPEGs and JPEGs this decoder cannot reduce (grey 16-bit, CMYK) decode as
/// [`decode_rgb8_limited`] does. The size limit and the truncation check apply to the full size.
pub fn decode_rgb8_draft(
    bytes: &[u8],
    name: &Path,
    max_pixels: u64,
    at_least: u32,
) -> Result<RgbImage, ImageError> {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return decode_rgb8_limited(bytes, name, max_pixels);
    }
    let fail = |message: String| ImageError {
        path: name.to_path_buf(),
        kind: ImageErrorKind::Decode,
        message,
    };
    let mut decoder = jpeg_decoder::Decoder::new(std::io::Cursor::new(bytes));
    if decoder.read_info().is_err() {
        // Whatever is wrong, the full decoder names it as it always has.
        return decode_rgb8_limited(bytes, name, max_pixels);
    }
    let Some(info) = decoder.info() else {
        return decode_rgb8_limited(bytes, name, max_pixels);
    };
    let (w, h) = (info.width as u32, info.height as u32);
    let eighths = [1u32, 2, 4]
        .into_iter()
        .find(|&k| (w * k).div_ceil(8) >= at_least && (h * k).div_ceil(8) >= at_least);
    let reducible = matches!(
        info.pixel_format,
        jpeg_decoder::PixelFormat::L8 | jpeg_decoder::PixelFormat::RGB24
    );
    let (Some(k), true) = (eighths, reducible) else {
        return decode_rgb8_limited(bytes, name, max_pixels);
    };
    if w as u64 * h as u64 > max_pixels {
        // The full path words the refusal.
        return decode_rgb8_limited(bytes, name, max_pixels);
    }
    check_jpeg_complete(bytes, name)?;
    let (sw, sh) = ((w * k).div_ceil(8) as u16, (h * k).div_ceil(8) as u16);
    let got = decoder.scale(sw, sh).map_err(|e| fail(e.to_string()))?;
    if got != (sw, sh) {
        return Err(fail(format!(
            "the JPEG decoder scaled {w}×{h} to {}×{}, not the {sw}×{sh} asked",
            got.0, got.1
        )));
    }
    let pixels = decoder.decode().map_err(|e| fail(e.to_string()))?;
    let (sw, sh) = (sw as u32, sh as u32);
    let rgb = match info.pixel_format {
        jpeg_decoder::PixelFormat::RGB24 => RgbImage::from_raw(sw, sh, pixels),
        _ => RgbImage::from_raw(sw, sh, pixels.iter().flat_map(|&v| [v, v, v]).collect()),
    }
    .ok_or_else(|| fail("the JPEG decoder returned fewer pixels than its size".into()))?;
    let mut img = image::DynamicImage::ImageRgb8(rgb);
    if let Some(orientation) = decoder
        .exif_data()
        .and_then(image::metadata::Orientation::from_exif_chunk)
    {
        img.apply_orientation(orientation);
    }
    Ok(img.into_rgb8())
}

/// A JPEG cut short still decodes (the decoder fills the missing rows with grey), so such a file
/// would be scored as if it were whole; Pillow refuses it ("image file is truncated"), and so do
/// we: after any trailing zero padding, the file must end with the EOI marker FF D9.
fn check_jpeg_complete(bytes: &[u8], name: &Path) -> Result<(), ImageError> {
    let mut end = bytes.len();
    while end > 0 && bytes[end - 1] == 0x00 {
        end -= 1;
    }
    if end >= 2 && bytes[end - 2] == 0xFF && bytes[end - 1] == 0xD9 {
        Ok(())
    } else {
        Err(ImageError {
            path: name.to_path_buf(),
            kind: ImageErrorKind::Truncated,
            message: "truncated JPEG: no end-of-image marker (FF D9) at the end of the file".into(),
        })
    }
}

fn fixed_point(weights: &[f64]) -> Vec<i64> {
    let one = (1u64 << PRECISION_BITS) as f64;
    // C's (int) truncation after adding ±0.5: round half away from zero.
    weights
        .iter()
        .map(|&w| {
            if w < 0.0 {
                (-0.5 + w * one) as i64
            } else {
                (0.5 + w * one) as i64
            }
        })
        .collect()
}

fn clip8(v: i64) -> u8 {
    if v <= 0 {
        0
    } else if v >= (1i64 << (PRECISION_BITS + 8)) {
        255
    } else {
        (v >> PRECISION_BITS) as u8
    }
}

/// One separable pass over `src` ([rows][cols][3] as `h`×`w`) along columns (horizontal) or rows.
/// The horizontal pass keeps one output pixel's three channels together over its taps; the
/// vertical pass adds whole source rows into a row of accumulators (contiguous, so it
/// vectorises). Each output is the same sum, in the same order, as the per-sample definition.
fn pass(
    src: &[u8],
    w: usize,
    h: usize,
    out_len: usize,
    kernel: Kernel,
    horizontal: bool,
) -> (Vec<u8>, usize, usize) {
    let input = if horizontal { w } else { h };
    let wins: Vec<(usize, Vec<i64>)> = windows(input, out_len, kernel)
        .into_iter()
        .map(|win| (win.start, fixed_point(&win.weights)))
        .collect();
    let (ow, oh) = if horizontal {
        (out_len, h)
    } else {
        (w, out_len)
    };
    let half: i64 = 1 << (PRECISION_BITS - 1);
    let mut out = vec![0u8; ow * oh * 3];
    if horizontal {
        for (row, to) in src.chunks_exact(w * 3).zip(out.chunks_exact_mut(ow * 3)) {
            for ((start, k), px) in wins.iter().zip(to.chunks_exact_mut(3)) {
                let taps = &row[start * 3..(start + k.len()) * 3];
                let mut acc = [half; 3];
                for (p, &kt) in taps.chunks_exact(3).zip(k) {
                    acc[0] += p[0] as i64 * kt;
                    acc[1] += p[1] as i64 * kt;
                    acc[2] += p[2] as i64 * kt;
                }
                px.copy_from_slice(&acc.map(clip8));
            }
        }
    } else {
        let len = w * 3;
        let mut acc = vec![0i64; len];
        for ((start, k), to) in wins.iter().zip(out.chunks_exact_mut(len)) {
            acc.fill(half);
            for (t, &kt) in k.iter().enumerate() {
                let row = &src[(start + t) * len..(start + t + 1) * len];
                for (a, &v) in acc.iter_mut().zip(row) {
                    *a += v as i64 * kt;
                }
            }
            for (o, &a) in to.iter_mut().zip(&acc) {
                *o = clip8(a);
            }
        }
    }
    (out, ow, oh)
}

/// Resizes as Pillow's `Image.resize((width, height), BICUBIC | BILINEAR)` does for RGB images.
pub fn resize_rgb8(img: &RgbImage, width: usize, height: usize, filter: ResizeFilter) -> RgbImage {
    let kernel = match filter {
        ResizeFilter::Bicubic => Kernel::Bicubic,
        ResizeFilter::Bilinear => Kernel::Bilinear,
    };
    let (mut w, mut h) = (img.width() as usize, img.height() as usize);
    // The first pass reads the image in place (a 5 MP frame is not copied); later ones the last
    // pass's output.
    let mut data: Option<Vec<u8>> = None;
    // Pillow 13 runs the vertical pass first when it shrinks more than the horizontal one does
    // (measured on a grid of sizes against Pillow 13.0.0; with u8 rounding between passes the
    // order changes the result).
    let (in_w, in_h) = (w as u64, h as u64);
    let vertical_first = in_h > height as u64 && in_h * width as u64 > in_w * height as u64;
    let resample = |data: &mut Option<Vec<u8>>, w: &mut usize, h: &mut usize, len, horizontal| {
        let src = data.as_deref().unwrap_or(img.as_raw());
        let (out, ow, oh) = pass(src, *w, *h, len, kernel, horizontal);
        (*data, *w, *h) = (Some(out), ow, oh);
    };
    if vertical_first && h != height {
        resample(&mut data, &mut w, &mut h, height, false);
    }
    if w != width {
        resample(&mut data, &mut w, &mut h, width, true);
    }
    if !vertical_first && h != height {
        resample(&mut data, &mut w, &mut h, height, false);
    }
    match data {
        Some(data) => RgbImage::from_raw(w as u32, h as u32, data).expect("sized by the passes"),
        None => img.clone(),
    }
}

/// The graph input [3, size, size] f32 of an RGB8 image: resize, scale to [0, 1], normalise.
pub fn to_input(img: &RgbImage, size: usize, pre: &PreprocessSpec) -> Array3<f32> {
    let resized = resize_rgb8(img, size, size, pre.resize);
    let mean = pre.mean.map(|m| m as f32);
    let std = pre.std.map(|s| s as f32);
    Array3::from_shape_fn((3, size, size), |(c, y, x)| {
        let v = resized.get_pixel(x as u32, y as u32)[c] as f32 / 255.0;
        (v - mean[c]) / std[c]
    })
}

/// One image prepared for the graph, as §1 says: for an `image` graph resized, scaled and
/// normalised (f32 [3, S, S]); for an `image_u8` graph resized (the graph normalises).
#[derive(Debug, Clone)]
pub enum Prepared {
    Image(Array3<f32>),
    ImageU8(RgbImage),
}

/// `img` (RGB8, any size) prepared for a graph of input `kind` and side `size`.
pub fn prepare(img: &RgbImage, size: usize, pre: &PreprocessSpec, kind: InputKind) -> Prepared {
    match kind {
        InputKind::Image => Prepared::Image(to_input(img, size, pre)),
        InputKind::ImageU8 => Prepared::ImageU8(resize_rgb8(img, size, size, pre.resize)),
    }
}

/// Prepared images of one `kind` stacked into the graph's input batch: f32 [B, 3, S, S] or
/// u8 [B, S, S, 3].
pub fn stack<P: std::borrow::Borrow<Prepared>>(
    images: &[P],
    size: usize,
    kind: InputKind,
) -> GraphInput {
    match kind {
        InputKind::Image => {
            let mut batch = ndarray::Array4::<f32>::zeros((images.len(), 3, size, size));
            for (i, p) in images.iter().enumerate() {
                let Prepared::Image(x) = p.borrow() else {
                    panic!("an `image_u8` preparation stacked for an `image` graph")
                };
                batch.index_axis_mut(ndarray::Axis(0), i).assign(x);
            }
            GraphInput::Image(batch.into_dyn())
        }
        InputKind::ImageU8 => {
            let mut batch = ndarray::Array4::<u8>::zeros((images.len(), size, size, 3));
            for (i, p) in images.iter().enumerate() {
                let Prepared::ImageU8(resized) = p.borrow() else {
                    panic!("an `image` preparation stacked for an `image_u8` graph")
                };
                let pixels = ndarray::ArrayView3::from_shape((size, size, 3), resized.as_raw())
                    .expect("an RGB8 image of size × size");
                batch.index_axis_mut(ndarray::Axis(0), i).assign(&pixels);
            }
            GraphInput::ImageU8(batch.into_dyn())
        }
    }
}

/// The graph input for a batch of RGB8 images of any size, as §1 says: each resized to
/// `size` × `size`; for an `image` graph also scaled and normalised (f32 [B, 3, S, S]), for an
/// `image_u8` graph kept as pixels (u8 [B, S, S, 3]; the graph normalises).
pub fn graph_input<I: std::borrow::Borrow<RgbImage>>(
    images: &[I],
    size: usize,
    pre: &PreprocessSpec,
    kind: InputKind,
) -> GraphInput {
    let prepared: Vec<Prepared> = images
        .iter()
        .map(|img| prepare(img.borrow(), size, pre, kind))
        .collect();
    stack(&prepared, size, kind)
}
