//! Preprocessing against PIL: the bytes of `convert("RGB").resize(..., BICUBIC | BILINEAR)` and the
//! reference's normalised input, for images that shrink, enlarge, mix both, and are grayscale or
//! RGBA (fixtures/preprocess/, written by `python -m dlvp_reference.golden`).

use std::path::{Path, PathBuf};

use dlvp_contract::spec::{ResizeFilter, Spec};
use dlvp_exporter::Checkpoint;
use dlvp_runtime::preprocess::{load_rgb8, resize_rgb8, to_input, ImageErrorKind};
use dlvp_test_support::png;
use rstest::rstest;

fn folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/preprocess")
}

fn expected_u8(name: &str) -> Vec<u8> {
    let ckpt = Checkpoint::open(&folder().join("expected.safetensors")).unwrap();
    ckpt.raw_bytes(name).unwrap().to_vec()
}

#[rstest]
#[case("80x64_rgb")]
#[case("37x53_rgb")]
#[case("20x30_rgb")]
#[case("300x41_rgb")]
#[case("56x56_rgb")]
#[case("64x48_l")]
#[case("45x70_rgba")]
#[case("60x150_rgb")]
#[case("57x60_rgb")]
#[case("120x120_rgb")]
#[case("48x40_i16")]
#[case("50x44_rgb16")]
#[case("44x36_la")]
fn resize_matches_pil_byte_for_byte(#[case] name: &str) {
    let img = load_rgb8(&folder().join(format!("{name}.png"))).unwrap();
    for (label, filter) in [
        ("bicubic", ResizeFilter::Bicubic),
        ("bilinear", ResizeFilter::Bilinear),
    ] {
        let ours = resize_rgb8(&img, 56, 56, filter);
        let pil = expected_u8(&format!("{name}.{label}"));
        let differing = ours
            .as_raw()
            .iter()
            .zip(&pil)
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(
            differing,
            0,
            "{name} {label}: {differing} of {} bytes differ from PIL",
            pil.len()
        );
    }
}

/// Decoding, before any resize: PNG of every mode byte for byte; a CMYK JPEG (Adobe-inverted, as
/// Pillow and Photoshop write it) within the rounding two JPEG decoders may differ by.
#[rstest]
#[case("80x64_rgb.png", 0)]
#[case("64x48_l.png", 0)]
#[case("45x70_rgba.png", 0)]
#[case("44x36_la.png", 0)]
#[case("48x40_i16.png", 0)]
#[case("50x44_rgb16.png", 0)]
#[case("40x30_cmyk.jpg", 2)]
fn decoding_matches_pil(#[case] file: &str, #[case] tolerance: u8) {
    let ours = load_rgb8(&folder().join(file)).unwrap();
    let name = file.rsplit_once('.').unwrap().0;
    let pil = expected_u8(&format!("{name}.decoded"));
    assert_eq!(ours.as_raw().len(), pil.len(), "{file}: size");
    let worst = ours
        .as_raw()
        .iter()
        .zip(&pil)
        .map(|(a, b)| a.abs_diff(*b))
        .max()
        .unwrap();
    assert!(
        worst <= tolerance,
        "{file}: a byte differs from PIL by {worst}"
    );
}

#[rstest]
#[case("37x53_rgb")]
#[case("45x70_rgba")]
#[case("48x40_i16")]
#[case("50x44_rgb16")]
fn the_graph_input_equals_the_reference_transform(#[case] name: &str) {
    let spec =
        Spec::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../model-spec/tiny.yaml")).unwrap();
    let img = load_rgb8(&folder().join(format!("{name}.png"))).unwrap();
    let ours = to_input(&img, spec.image_size, &spec.preprocess);
    let ckpt = Checkpoint::open(&folder().join("expected.safetensors")).unwrap();
    let reference = ckpt.read_f32(&format!("{name}.input")).unwrap();
    let err = ours
        .iter()
        .zip(&reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(err <= 1e-6, "{name}: max abs difference {err}");
}

/// A PNG whose header claims 100000×100000 pixels (a decompression bomb) is refused from the
/// header, without trying to allocate 30 GB.
#[test]
fn a_decompression_bomb_is_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bomb.png");
    std::fs::write(&path, png::claiming(100_000, 100_000)).unwrap();
    let err = load_rgb8(&path).unwrap_err().to_string();
    assert!(
        err.contains("100000×100000 = 10000000000 pixels, more than the limit"),
        "{err}"
    );
    let err = dlvp_runtime::preprocess::load_rgb8_limited(&folder().join("80x64_rgb.png"), 1000)
        .unwrap_err();
    // The kind is data (serve answers 413 by it), the message says the same in words.
    assert_eq!(
        err.kind,
        ImageErrorKind::TooLarge {
            pixels: 5120,
            limit: 1000
        }
    );
    let err = err.to_string();
    assert!(
        err.contains("80×64 = 5120 pixels, more than the limit of 1000"),
        "{err}"
    );
}

/// A JPEG cut short is an error (as in Pillow), not an image with grey rows; the whole file reads.
#[test]
fn a_truncated_jpeg_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let img = load_rgb8(&folder().join("80x64_rgb.png")).unwrap();
    let whole = dir.path().join("whole.jpg");
    img.save(&whole).unwrap();
    assert!(load_rgb8(&whole).is_ok());
    let bytes = std::fs::read(&whole).unwrap();
    let cut = dir.path().join("cut.jpg");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let err = load_rgb8(&cut).unwrap_err();
    assert_eq!(err.kind, ImageErrorKind::Truncated);
    let err = err.to_string();
    assert!(
        err.contains("cut.jpg") && err.contains("truncated JPEG"),
        "{err}"
    );
    let mut padded = bytes.clone();
    padded.extend_from_slice(&[0, 0, 0]);
    std::fs::write(&cut, padded).unwrap();
    assert!(load_rgb8(&cut).is_ok(), "zero padding after EOI is fine");
}

#[test]
fn an_unreadable_image_is_named() {
    let dir = std::env::temp_dir().join(format!("dlvp-pre-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("text.png");
    std::fs::write(&path, b"not an image").unwrap();
    let err = load_rgb8(&path).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("{}: cannot read image", path.display())),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn exif_orientation_is_applied() {
    use image::ImageEncoder;
    // A 3×2 image whose EXIF says "rotate 90° clockwise to display" (orientation 6).
    let dir = tempfile_dir();
    let path = dir.join("rotated.jpg");
    let mut pixels = image::RgbImage::new(3, 2);
    pixels.put_pixel(0, 0, image::Rgb([255, 0, 0]));
    let mut jpeg = Vec::new();
    let mut encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 100);
    encoder.set_exif_metadata(exif_orientation_6()).unwrap();
    encoder
        .write_image(pixels.as_raw(), 3, 2, image::ExtendedColorType::Rgb8)
        .unwrap();
    std::fs::write(&path, jpeg).unwrap();
    let img = load_rgb8(&path).unwrap();
    assert_eq!((img.width(), img.height()), (2, 3), "rotated upright");
    assert!(
        img.get_pixel(1, 0)[0] > 200,
        "the red corner moved to the top right"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn tempfile_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dlvp-exif-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A minimal little-endian TIFF/EXIF block with Orientation = 6.
fn exif_orientation_6() -> Vec<u8> {
    let mut b = b"II*\0".to_vec();
    b.extend_from_slice(&8u32.to_le_bytes()); // IFD offset
    b.extend_from_slice(&1u16.to_le_bytes()); // one entry
    b.extend_from_slice(&0x0112u16.to_le_bytes()); // Orientation
    b.extend_from_slice(&3u16.to_le_bytes()); // SHORT
    b.extend_from_slice(&1u32.to_le_bytes()); // count
    b.extend_from_slice(&6u16.to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes()); // no next IFD
    b
}

/// A camera-sized JPEG, smooth with some texture (a gradient and a weave), encoded at quality 90.
fn camera_jpeg(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        let weave = if (x / 6 + y / 6) % 2 == 0 { 30 } else { 0 };
        image::Rgb([
            ((x * 200 / w) + weave) as u8,
            ((y * 200 / h) + weave) as u8,
            (((x + y) * 100 / (w + h)) + 60) as u8,
        ])
    });
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 90)
        .encode_image(&img)
        .unwrap();
    bytes
}

/// `--jpeg-draft`: a large JPEG decodes at the smallest of 1/2, 1/4, 1/8 that keeps both sides at
/// least the input size, and resizes to nearly what the full decode gives; anything else (small
/// JPEGs, other formats) decodes exactly as the full path; a truncated JPEG is still refused.
#[rstest]
#[case::eighth(2448, 2048, 224, (306, 256))]
#[case::quarter_for_the_short_side(2048, 1536, 224, (512, 384))]
#[case::half(600, 500, 224, (300, 250))]
#[case::too_small_to_reduce(400, 300, 224, (400, 300))]
fn a_draft_jpeg_decodes_at_the_largest_reduction_that_keeps_the_input_size(
    #[case] w: u32,
    #[case] h: u32,
    #[case] at_least: u32,
    #[case] want: (u32, u32),
) {
    use dlvp_runtime::preprocess::{decode_rgb8_draft, decode_rgb8_limited};
    let bytes = camera_jpeg(w, h);
    let name = Path::new("camera.jpg");
    let draft = decode_rgb8_draft(&bytes, name, u64::MAX, at_least).unwrap();
    assert_eq!(draft.dimensions(), want);
    let full = decode_rgb8_limited(&bytes, name, u64::MAX).unwrap();
    if want == (w, h) {
        assert_eq!(draft, full, "not reduced: the full decode, byte for byte");
        return;
    }
    let s = at_least as usize;
    let (a, b) = (
        resize_rgb8(&draft, s, s, ResizeFilter::Bicubic),
        resize_rgb8(&full, s, s, ResizeFilter::Bicubic),
    );
    let mean = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(&x, &y)| (x as f64 - y as f64).abs())
        .sum::<f64>()
        / a.as_raw().len() as f64;
    assert!(mean < 2.0, "mean |draft − full| after the resize: {mean}");
}

#[test]
fn a_draft_decode_keeps_the_full_paths_refusals_and_other_formats() {
    use dlvp_runtime::preprocess::{decode_rgb8_draft, decode_rgb8_limited};
    let name = Path::new("cut.jpg");
    let bytes = camera_jpeg(2448, 2048);
    let err = decode_rgb8_draft(&bytes[..bytes.len() / 2], name, u64::MAX, 224).unwrap_err();
    assert_eq!(err.kind, ImageErrorKind::Truncated);
    let err = decode_rgb8_draft(&bytes, name, 1000, 224).unwrap_err();
    assert!(matches!(err.kind, ImageErrorKind::TooLarge { .. }), "{err}");
    let png = std::fs::read(folder().join("80x64_rgb.png")).unwrap();
    assert_eq!(
        decode_rgb8_draft(&png, name, u64::MAX, 16).unwrap(),
        decode_rgb8_limited(&png, name, u64::MAX).unwrap()
    );
}
