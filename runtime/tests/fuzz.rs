//! Fuzz targets of the runtime's readers: the ONNX metadata reader (with the graph-input check)
//! and image decoding + preprocessing, on mutations of valid files. Whatever the bytes, they
//! return `Ok` or an error naming the file — never panic, never allocate what a header claims.
//!
//! CI runs a bounded number of cases per target; `DLVP_FUZZ_CASES=200000 cargo test --release
//! -p dlvp-runtime --test fuzz` runs longer. Failures shrink to a short mutation list and become
//! cases of the CLI's bad-input matrix (`tests/bad_input.rs`).

use std::path::Path;
use std::sync::OnceLock;

use dlvp_exporter::{Checkpoint, Spec};
use dlvp_runtime::{metadata, preprocess};
use dlvp_test_support::mutate;
use proptest::prelude::*;

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// The tiny golden checkpoint exported in memory (no binary needed).
fn tiny_model() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let ckpt = Checkpoint::open(&repo().join("fixtures/tiny/weights.safetensors")).unwrap();
        let spec = ckpt.embedded_spec().unwrap().unwrap();
        let exported = dlvp_exporter::model::build(std::sync::Arc::new(ckpt), &spec).unwrap();
        dlvp_exporter::onnx::to_bytes(&exported.graph, &spec.name)
    })
}

fn tiny_spec() -> Spec {
    Spec::load(&repo().join("model-spec/tiny.yaml")).unwrap()
}

/// Small valid images of each format and layout the decoder has its own code for.
fn seeds() -> &'static [(&'static str, Vec<u8>)] {
    static SEEDS: OnceLock<Vec<(&'static str, Vec<u8>)>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let rgb = image::RgbImage::from_fn(24, 18, |x, y| {
            image::Rgb([(x * 10) as u8, (y * 14) as u8, 77])
        });
        let encode = |img: image::DynamicImage, format| {
            let mut out = std::io::Cursor::new(Vec::new());
            img.write_to(&mut out, format).unwrap();
            out.into_inner()
        };
        let folder = repo().join("fixtures/preprocess");
        vec![
            ("png", encode(rgb.clone().into(), image::ImageFormat::Png)),
            ("jpg", encode(rgb.clone().into(), image::ImageFormat::Jpeg)),
            ("bmp", encode(rgb.clone().into(), image::ImageFormat::Bmp)),
            ("tif", encode(rgb.into(), image::ImageFormat::Tiff)),
            ("png", std::fs::read(folder.join("48x40_i16.png")).unwrap()),
            ("png", std::fs::read(folder.join("45x70_rgba.png")).unwrap()),
            ("jpg", std::fs::read(folder.join("40x30_cmyk.jpg")).unwrap()),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(mutate::cases(80_000)))]

    #[test]
    fn the_metadata_reader_takes_any_mutation_of_a_graph(mutations in mutate::mutations()) {
        let bytes = mutate::apply(tiny_model(), &mutations);
        if let Err(e) = metadata::read(&bytes, Path::new("fuzz.onnx")) {
            prop_assert!(e.to_string().starts_with("fuzz.onnx: "), "{e}");
        }
    }

    #[test]
    fn image_loading_takes_any_mutation_of_an_image(
        seed in any::<prop::sample::Index>(),
        mutations in mutate::mutations(),
    ) {
        let (ext, bytes) = &seeds()[seed.index(seeds().len())];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("fuzz.{ext}"));
        std::fs::write(&path, mutate::apply(bytes, &mutations)).unwrap();
        // A 4-megapixel limit: a mutated header may claim any size.
        match preprocess::load_rgb8_limited(&path, 1 << 22) {
            Ok(img) => {
                let spec = tiny_spec();
                let input = preprocess::to_input(&img, spec.image_size, &spec.preprocess);
                prop_assert!(input.iter().all(|v| v.is_finite()));
            }
            Err(e) => prop_assert!(e.to_string().contains("fuzz."), "{e}"),
        }
    }
}
