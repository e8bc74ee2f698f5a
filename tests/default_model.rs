//! The embedded default model (models/demo/): its provenance, and that it finds the defects in the
//! sample images out of the box — five categories it never saw (it was trained on the surface
//! universe, with every demo-data category left out).

use std::path::{Path, PathBuf};
use std::process::Command;

use dlvp_test_support::run;
use run::{dlvp, export, stderr, stdout};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `dlvp ARGS` with the cache folder in `cache` (where nothing of ours may appear).
fn dlvp_cached(cache: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dlvp"))
        .args(args)
        .env("XDG_CACHE_HOME", cache)
        .output()
        .expect("run dlvp")
}

/// Bytes, on any CPU: export computes no float result with BLAS or threads. It copies and
/// converts the checkpoint's tensors (exact), tokenizes (integers), and what it does compute —
/// the blur kernel, a positional-embedding resize — it computes in f64 and stores as f32: a
/// last-bit difference of libm or of a matrix kernel shows only if it straddles an f32 rounding
/// boundary (odds near 2^-29 per value).
#[test]
fn re_exporting_the_committed_checkpoint_reproduces_the_committed_graph_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo.onnx");
    let ckpt = repo().join("models/demo/checkpoint.safetensors");
    export(&ckpt, &out);
    let committed = std::fs::read(repo().join("models/demo/dlvp-clip-demo.onnx")).unwrap();
    assert!(
        std::fs::read(&out).unwrap() == committed,
        "models/demo/dlvp-clip-demo.onnx is not what the committed checkpoint exports to"
    );
}

#[test]
fn detect_without_model_uses_the_embedded_model_and_marks_the_sample_defects() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let samples = repo().join("fixtures/samples");
    let run = dlvp_cached(
        dir.path(),
        &[
            "detect",
            samples.to_str().unwrap(),
            "--backend",
            "tract",
            "--json",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(
        stderr(&run).contains("embedded demo model dlvp-clip-demo"),
        "{}",
        stderr(&run)
    );
    // Loaded from the binary's own bytes: nothing is unpacked into the cache folder.
    assert!(
        !dir.path().join("dlvp").exists(),
        "the embedded model was written to the cache"
    );

    let score = |name: &str| -> f64 {
        stdout(&run)
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|v| {
                v["image"]
                    .as_str()
                    .unwrap()
                    .ends_with(&format!("{name}.png"))
            })
            .unwrap_or_else(|| panic!("no line for {name}"))["score"]
            .as_f64()
            .unwrap()
    };
    // Every category, all unseen: each defect outscores the defect-free sample of its category,
    // and the map is much hotter on the defect than around it (the overlay marks the right place).
    // Measured margins: scores 0.42 (wood) to 0.62 apart, maps 21-58x hotter on the mask.
    for (defect, good) in [
        ("fabric_hole", "fabric_good"),
        ("wood_crack", "wood_good"),
        ("metal_scratch", "metal_good"),
        ("tile_chip", "tile_good"),
        ("leather_stain", "leather_good"),
    ] {
        assert!(
            score(defect) > score(good),
            "{defect} {} vs {good} {}",
            score(defect),
            score(good)
        );
        let map = image::open(out.join(format!("{defect}.map.png")))
            .unwrap()
            .to_luma16();
        let mask = image::open(
            repo()
                .join("fixtures/sample-masks")
                .join(format!("{defect}_mask.png")),
        )
        .unwrap()
        .to_luma8();
        let (mut inside, mut n_in, mut outside, mut n_out) = (0.0, 0.0, 0.0, 0.0);
        for (m, g) in map.pixels().zip(mask.pixels()) {
            if g.0[0] > 127 {
                inside += m.0[0] as f64;
                n_in += 1.0;
            } else {
                outside += m.0[0] as f64;
                n_out += 1.0;
            }
        }
        let (inside, outside) = (inside / n_in, outside / n_out);
        assert!(
            inside > 2.0 * outside,
            "{defect}: mean map {inside:.0} on the defect vs {outside:.0} elsewhere"
        );
    }
}

/// fixtures/samples and fixtures/sample-masks are `dlvp demo-data --seed 3` output (categories
/// the demo model was not trained on), copied under descriptive names.
///
/// Compared by pixels, not bytes: demo-data draws its textures with libm's `sinf` and `powf`,
/// which glibc dispatches to other code (FMA or not) on other CPUs, so a pixel may round to the
/// next level. Every pixel stays within one level and at most 0.1% differ at all; a mask pixel
/// (a threshold of the same floats) may flip only within that budget.
#[test]
fn the_sample_images_are_demo_data_of_a_held_out_seed() {
    let dir = tempfile::tempdir().unwrap();
    let run = dlvp(&[
        "demo-data",
        "--out",
        dir.path().to_str().unwrap(),
        "--count",
        "12",
        "--train-count",
        "0",
        "--seed",
        "3",
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    let samples = repo().join("fixtures/samples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&samples).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let (category, kind) = name.trim_end_matches(".png").split_once('_').unwrap();
        let test = dir.path().join(category).join("test");
        assert_same_pixels(&samples.join(&name), &test.join(kind).join("000.png"), 1);
        if kind != "good" {
            let mask = dir
                .path()
                .join(category)
                .join("ground_truth")
                .join(kind)
                .join("000_mask.png");
            let committed = repo()
                .join("fixtures/sample-masks")
                .join(format!("{category}_{kind}_mask.png"));
            assert_same_pixels(&committed, &mask, 255);
        }
        checked += 1;
    }
    assert_eq!(checked, 10);
}

/// `committed` and `generated` decode to images of one size whose channels differ by at most
/// `max_step`, in at most 0.1% of the values.
fn assert_same_pixels(committed: &Path, generated: &Path, max_step: u8) {
    let a = image::open(committed).unwrap().into_rgb8();
    let b = image::open(generated).unwrap().into_rgb8();
    assert_eq!(
        a.dimensions(),
        b.dimensions(),
        "{} vs {}",
        committed.display(),
        generated.display()
    );
    let steps: Vec<u8> = a
        .iter()
        .zip(b.iter())
        .map(|(x, y)| x.abs_diff(*y))
        .collect();
    let largest = steps.iter().copied().max().unwrap_or(0);
    let differing = steps.iter().filter(|&&d| d > 0).count();
    assert!(
        largest <= max_step && differing * 1000 <= steps.len(),
        "{} differs from {}: {differing} of {} values differ, by up to {largest}",
        committed.display(),
        generated.display(),
        steps.len()
    );
}
