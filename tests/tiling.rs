//! `dlvp detect --tile` through the binary: every tile reported with its place and score, the
//! image's score the largest of them, the map and overlay at the image's own size, and tile
//! options outside their range refused by name.

use dlvp_test_support::run;
use run::{assert_fails, dlvp, exported_golden, stderr, stdout};

#[test]
fn detect_tiles_a_large_image_and_reports_every_tile() {
    let dir = tempfile::tempdir().unwrap();
    let model = exported_golden(dir.path()); // 56 px tiles
    let image = dir.path().join("wide.png");
    image::RgbImage::from_fn(200, 120, |x, y| {
        image::Rgb([
            (x % 97) as u8 * 2,
            (y % 53) as u8 * 4,
            ((x ^ y) % 255) as u8,
        ])
    })
    .save(&image)
    .unwrap();
    let out = dir.path().join("out");
    let run = dlvp(&[
        "detect",
        image.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--backend",
        "tract",
        "--tile",
        "--json",
        "--batch",
        "4",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    let line: serde_json::Value = serde_json::from_str(stdout(&run).trim()).unwrap();
    let tiles = line["tiles"].as_array().unwrap();
    // 200 px: stride ⌊56 × 0.75⌋ = 42, ⌈144 / 42⌉ + 1 = 5 columns; 120 px: ⌈64 / 42⌉ + 1 = 3 rows.
    assert_eq!(tiles.len(), 15, "{line}");
    let best = tiles
        .iter()
        .map(|t| t["score"].as_f64().unwrap())
        .fold(f64::MIN, f64::max);
    assert_eq!(line["score"].as_f64().unwrap(), best);
    let last = &tiles[14];
    assert_eq!(
        (
            last["x"].as_f64(),
            last["y"].as_f64(),
            last["side"].as_f64()
        ),
        (Some(144.0), Some(64.0), Some(56.0))
    );
    for kind in ["overlay", "map"] {
        let written = image::open(out.join(format!("wide.{kind}.png"))).unwrap();
        assert_eq!((written.width(), written.height()), (200, 120), "{kind}");
    }

    let bad = dlvp(&[
        "detect",
        image.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--tile",
        "--tile-overlap",
        "0.95",
    ]);
    assert_fails(&bad, 1, "tile overlap 0.95 must be between 0 and 0.9");
    let lonely = dlvp(&["detect", image.to_str().unwrap(), "--tile-scale", "0.5"]);
    assert_eq!(
        lonely.status.code(),
        Some(2),
        "--tile-scale without --tile is bad usage"
    );
}

/// `threshold --tile` calibrates on tiled scores (the largest tile's, as `detect --tile` gives
/// them) and records the tiling; `detect` warns when it cuts images otherwise.
#[test]
fn a_threshold_calibrated_with_tiling_records_it_and_detect_warns_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let model = exported_golden(dir.path());
    let good = run::good_images(dir.path(), "good", 2, 100, 6);
    let line = dir.path().join("line.onnx");
    let run = run::threshold(&model, &good, "0.1", &line, "tract", &["--tile"]);
    assert!(run.status.success(), "{}", stderr(&run));
    let stored = dlvp_runtime::Detector::load(&line, &Default::default())
        .unwrap()
        .info()
        .thresholds
        .unwrap();
    assert_eq!(
        stored.tiling,
        Some(dlvp_runtime::tiling::TileOptions::default())
    );
    // k = ⌈11 × 0.9⌉ = 10 of the 10 tiled scores: the largest, plus the margin (1e-4).
    let detect = |extra: &[&str]| {
        let mut args = vec![
            "detect",
            good.to_str().unwrap(),
            "--model",
            line.to_str().unwrap(),
            "--backend",
            "tract",
            "--json",
        ];
        args.extend_from_slice(extra);
        dlvp(&args)
    };
    let tiled = detect(&["--tile"]);
    assert!(tiled.status.success(), "{}", stderr(&tiled));
    assert!(!stderr(&tiled).contains("warning"), "{}", stderr(&tiled));
    let top = stdout(&tiled)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["score"]
                .as_f64()
                .unwrap() as f32
        })
        .fold(f32::MIN, f32::max);
    let above = stored.image as f64 - top as f64;
    assert!(
        (1e-4..1e-4 + 1e-7).contains(&above),
        "{} vs {top}",
        stored.image
    );
    let whole = detect(&[]);
    assert!(
        stderr(&whole).contains("thresholds were calibrated on tiled (scale 1, overlap 0.25), this run scores whole images resized"),
        "{}",
        stderr(&whole)
    );
}

/// `bench --pipeline DIR --tile` reports the tiles it ran and seconds per megapixel.
#[test]
fn bench_times_tiled_inference_per_megapixel() {
    let dir = tempfile::tempdir().unwrap();
    let model = exported_golden(dir.path());
    let frames = dir.path().join("frames");
    std::fs::create_dir(&frames).unwrap();
    for i in 0..2u8 {
        image::RgbImage::from_pixel(200, 120, image::Rgb([i * 90, 60, 200]))
            .save(frames.join(format!("{i}.png")))
            .unwrap();
    }
    let run = dlvp(&[
        "bench",
        "--model",
        model.to_str().unwrap(),
        "--backend",
        "tract",
        "--pipeline",
        frames.to_str().unwrap(),
        "--tile",
        "--json",
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    let report: serde_json::Value = serde_json::from_str(stdout(&run).trim()).unwrap();
    assert_eq!(report["images"], 2);
    assert_eq!(report["tiles"], 30, "15 tiles per 200×120 frame: {report}");
    assert!((report["megapixels"].as_f64().unwrap() - 0.048).abs() < 1e-9);
    assert!(report["seconds_per_megapixel"].as_f64().unwrap() > 0.0);
    let alone = dlvp(&["bench", "--model", model.to_str().unwrap(), "--tile"]);
    assert_fails(
        &alone,
        1,
        "--tile times images end to end: give them with --pipeline",
    );
}
