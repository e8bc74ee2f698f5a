//! Tiled inference with the tiny golden graph (56 px tiles) on tract: one tile is the untiled
//! run exactly; a uniform image, whose tiles all see the same pixels, blends their (equal) maps
//! into a map that stays inside the one tile's range everywhere — no seam at any tile border —
//! with the tile's score; a large image, at native and half scale, gets a finite map at its own
//! size, its score the largest tile's, every tile inside it; the pipeline's tiled path gives what
//! `detect_tiled` gives, bit for bit, in file order, an undecodable file at its place.

#![cfg(feature = "tract")]

use std::path::Path;
use std::sync::Arc;

use dlvp_exporter::{Checkpoint, ExportOptions};
use dlvp_runtime::pipeline::{run, PipelineOptions};
use dlvp_runtime::preprocess::DEFAULT_MAX_PIXELS;
use dlvp_runtime::tiling::{detect_tiled, TileGrid, TileOptions};
use dlvp_runtime::{BackendChoice, Detector, DetectorOptions};
use image::{Rgb, RgbImage};

fn detector() -> Detector {
    let weights =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/tiny/weights.safetensors");
    let ckpt = Arc::new(Checkpoint::open(&weights).unwrap());
    let spec = ckpt.embedded_spec().unwrap().unwrap();
    let bytes = dlvp_exporter::export(ckpt, &spec, ExportOptions::default())
        .unwrap()
        .to_bytes()
        .unwrap();
    Detector::from_bytes(
        bytes,
        &DetectorOptions {
            backend: BackendChoice::Tract,
            ..Default::default()
        },
    )
    .unwrap()
}

/// The largest difference between horizontal neighbours.
fn largest_step(map: &ndarray::Array2<f32>) -> f32 {
    map.rows()
        .into_iter()
        .flat_map(|r| {
            r.windows(2)
                .into_iter()
                .map(|p| (p[1] - p[0]).abs())
                .collect::<Vec<_>>()
        })
        .fold(0.0f32, f32::max)
}

fn max_diff(a: &ndarray::Array2<f32>, b: &ndarray::Array2<f32>) -> f32 {
    assert_eq!(a.dim(), b.dim());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn one_tile_is_the_untiled_run() {
    let detector = detector();
    let s = detector.info().spec.image_size as u32;
    let img = RgbImage::from_fn(s, s, |x, y| {
        Rgb([(x * 4) as u8, (y * 3) as u8, ((x ^ y) * 2) as u8])
    });
    let whole = detector.detect_batch(&[&img]).unwrap().remove(0);
    let tiled = detect_tiled(&detector, &img, &TileOptions::default(), 4).unwrap();
    assert_eq!(tiled.tiles.len(), 1);
    assert_eq!(tiled.score, whole.score);
    assert!(max_diff(&tiled.map, &whole.map) <= 1e-6);
}

#[test]
fn a_uniform_image_blends_without_seams() {
    let detector = detector();
    let s = detector.info().spec.image_size;
    let colour = Rgb([120, 90, 60]);
    let one = detector
        .detect_batch(&[RgbImage::from_pixel(s as u32, s as u32, colour)])
        .unwrap()
        .remove(0);
    let (lo, hi) = one
        .map
        .iter()
        .fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
    let (w, h) = (3 * s + 17, 2 * s + 5);
    let big = RgbImage::from_pixel(w as u32, h as u32, colour);
    let tiled = detect_tiled(&detector, &big, &TileOptions::default(), 3).unwrap();
    assert_eq!(tiled.map.dim(), (h, w));
    assert_eq!(tiled.tiles.len(), TileGrid::new(w, h, s, 0.25).len());
    for t in &tiled.tiles {
        assert!(
            (t.score - one.score).abs() <= 1e-5,
            "{} vs {}",
            t.score,
            one.score
        );
    }
    assert!((tiled.score - one.score).abs() <= 1e-5);
    // A weighted mean of equal tile maps: inside the tile's own range at every pixel, borders
    // included (a seam would be a value outside it, or a step no tile has).
    let outside = tiled
        .map
        .iter()
        .map(|&v| (lo - v).max(v - hi).max(0.0))
        .fold(0.0f32, f32::max);
    assert!(
        outside <= 1e-5,
        "a blended value lies {outside} outside the tile's range"
    );
    let (tile_step, blended_step) = (largest_step(&one.map), largest_step(&tiled.map));
    assert!(
        blended_step <= tile_step + 1e-5,
        "a step of {blended_step} between neighbours; the tile's own largest is {tile_step}"
    );
}

/// A `w`×`h` weave with a bright 6 px spot at (`sx`, `sy`).
fn weave_with_spot(w: u32, h: u32, (sx, sy): (u32, u32)) -> RgbImage {
    let mut img = RgbImage::from_fn(w, h, |x, y| {
        let weave = if (x / 4 + y / 4) % 2 == 0 { 40 } else { 0 };
        Rgb([100 + weave, 110 + weave, 90 + weave])
    });
    for y in sy..sy + 6 {
        for x in sx..sx + 6 {
            img.put_pixel(x, y, Rgb([250, 20, 200]));
        }
    }
    img
}

#[test]
fn a_large_image_at_two_scales_keeps_its_size_and_its_tiles_inside_it() {
    let detector = detector();
    let s = detector.info().spec.image_size as u32;
    let (w, h) = (5 * s, 3 * s);
    let img = weave_with_spot(w, h, (4 * s, 2 * s));
    for options in [
        TileOptions::default(),
        TileOptions {
            scale: 0.5,
            overlap: 0.5,
        },
    ] {
        let tiled = detect_tiled(&detector, &img, &options, 8).unwrap();
        assert_eq!(tiled.map.dim(), (h as usize, w as usize));
        assert!(tiled.map.iter().all(|v| v.is_finite()));
        let best = tiled.tiles.iter().map(|t| t.score).fold(f32::MIN, f32::max);
        assert_eq!(tiled.score, best);
        for t in &tiled.tiles {
            assert!(
                t.x >= 0.0
                    && t.y >= 0.0
                    && t.x + t.side <= w as f32 + 1.0
                    && t.y + t.side <= h as f32 + 1.0
            );
        }
    }
}

/// `detect --tile`, `eval --tile`, `threshold --tile` and `bench --tile` run the pipeline's tiled
/// path: it must give each file what `detect_tiled` gives it alone — score, map and tiles bit
/// for bit, whatever the threads, the window and the tile batch — in file order, with the frame
/// handed back when kept and an undecodable file delivered at its place.
#[test]
fn the_pipeline_tiles_as_detect_tiled_does() {
    let detector = detector();
    let s = detector.info().spec.image_size as u32;
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (i, (w, h)) in [(5 * s, 3 * s), (s / 2, s), (2 * s + 7, 2 * s)]
        .into_iter()
        .enumerate()
    {
        let path = dir.path().join(format!("{i}.png"));
        weave_with_spot(w, h, (w / 3, h / 2)).save(&path).unwrap();
        files.push(path);
    }
    let broken = dir.path().join("broken.png");
    std::fs::write(&broken, b"not a png").unwrap();
    files.insert(1, broken);
    for (options, batch, threads, keep_images) in [
        (TileOptions::default(), 8, 1, true),
        (
            TileOptions {
                scale: 0.5,
                overlap: 0.5,
            },
            3,
            2,
            false,
        ),
    ] {
        let pipeline = PipelineOptions {
            decoders: threads,
            finishers: threads,
            keep_images,
            tiling: Some(options),
            ..PipelineOptions::new(batch, DEFAULT_MAX_PIXELS)
        };
        let mut delivered = Vec::new();
        let times = run(
            &detector,
            &files,
            &pipeline,
            |_, _| (),
            |scored| {
                assert_eq!(scored.image.is_some(), keep_images);
                if let Some(img) = &scored.image {
                    assert_eq!(img.dimensions(), scored.size);
                }
                (scored.size, scored.detection, scored.tiles.unwrap())
            },
            |index, _, result| {
                delivered.push((index, result));
                true
            },
        )
        .unwrap();
        assert_eq!(
            delivered.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            (0..files.len()).collect::<Vec<_>>()
        );
        let mut tiles = 0;
        for (index, result) in delivered {
            let Ok(img) = image::open(&files[index]).map(|i| i.to_rgb8()) else {
                let Err(e) = result else {
                    panic!("the broken file was scored")
                };
                assert!(e.to_string().contains("broken.png"), "{e}");
                continue;
            };
            let (size, got, got_tiles) = result.unwrap();
            let want = detect_tiled(&detector, &img, &options, batch).unwrap();
            assert_eq!(size, img.dimensions());
            assert_eq!(got.score.to_bits(), want.score.to_bits(), "{index}");
            assert_eq!(got.map, want.map, "{index}");
            assert_eq!(got_tiles, want.tiles, "{index}");
            assert_eq!(got.topk, want.best_topk(), "{index}");
            tiles += want.tiles.len();
        }
        assert_eq!((times.images, times.failed, times.tiles), (3, 1, tiles));
        assert!(times.batches >= 3, "at least one graph run per frame");
    }
}
