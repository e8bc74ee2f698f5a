//! `dlvp demo-data --universe` through the binary: byte-identical per seed, the MVTec layout with
//! the defect kind in the path, `--hold-out`, `--defects`, `--hold-out-defects` and the errors
//! for unknown names.

use std::path::{Path, PathBuf};

use dlvp_test_support::run;
use run::{assert_fails, dlvp, files_under, stderr};

/// `--universe` at 48 px with `count` test images and 1 training image per family.
fn universe_n(out: &Path, count: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "demo-data",
        "--universe",
        "--out",
        out.to_str().unwrap(),
        "--count",
        count,
        "--train-count",
        "1",
        "--size",
        "48",
    ];
    args.extend_from_slice(extra);
    dlvp(&args)
}

fn universe(out: &Path, extra: &[&str]) -> std::process::Output {
    universe_n(out, "6", extra)
}

fn names(files: &[(PathBuf, Vec<u8>)]) -> Vec<String> {
    files.iter().map(|(p, _)| p.display().to_string()).collect()
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes_in_the_mvtec_layout() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    for (out, seed) in [(&a, "3"), (&b, "3"), (&c, "4")] {
        let run = universe(out, &["--families", "woven,marble,mesh", "--seed", seed]);
        assert!(run.status.success(), "{}", stderr(&run));
    }
    let (fa, fb, fc) = (files_under(&a), files_under(&b), files_under(&c));
    assert_eq!(fa, fb, "same seed, different bytes");
    assert_eq!(names(&fa), names(&fc));
    let differing = fa.iter().zip(&fc).filter(|(x, y)| x.1 != y.1).count();
    assert!(
        differing >= fa.len() - 1,
        "another seed kept {} files",
        fa.len() - differing
    );
    let listed = names(&fa);
    for expected in [
        "woven/train/good/00000.png",
        "woven/test/good/00000.png",
        "woven/test/foreign/00000.png",
        "woven/ground_truth/foreign/00000_mask.png",
        "mesh/test/subtle_spot/00000.png",
        "mesh/ground_truth/subtle_spot/00000_mask.png",
        "marble/test/blob_lighten/00000.png",
        "marble/ground_truth/ellipse_darken/00000_mask.png",
        "universe.json",
    ] {
        assert!(
            listed.contains(&expected.to_string()),
            "{expected} not in {listed:?}"
        );
    }
    // 6 test images per family: 2 good, 4 defective, each with its mask; 1 train image
    assert_eq!(
        listed
            .iter()
            .filter(|n| n.starts_with("woven/test/"))
            .count(),
        6
    );
    assert_eq!(
        listed
            .iter()
            .filter(|n| n.starts_with("woven/ground_truth/"))
            .count(),
        4
    );
    assert!(
        !listed.iter().any(|n| n.contains(".tmp")),
        "temporary files left: {listed:?}"
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.join("universe.json")).unwrap()).unwrap();
    assert_eq!(manifest["families"]["woven"]["test_good"], 2);
    assert_eq!(manifest["families"]["woven"]["defects"]["foreign"], 1);

    let again = universe(&a, &["--families", "woven"]);
    assert_fails(&again, 1, "already exists; pass --force");
}

#[test]
fn hold_out_leaves_a_family_out_even_as_a_foreign_texture() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("u");
    let run = universe_n(&out, "0", &["--hold-out", "marble,knitted"]);
    assert!(run.status.success(), "{}", stderr(&run));
    let mut families: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    families.sort();
    assert_eq!(families.len(), 24, "{families:?}");
    assert!(!families.contains(&"marble".into()) && !families.contains(&"knitted".into()));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("universe.json")).unwrap()).unwrap();
    let pool: Vec<&str> = manifest["foreign_pool"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(pool.len(), 24);
    assert!(!pool.contains(&"marble") && !pool.contains(&"knitted"));
}

#[test]
fn defects_picks_a_group_so_subtle_defects_can_be_evaluated_alone() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("u");
    let run = universe_n(
        &out,
        "12",
        &["--families", "stripes", "--defects", "subtle"],
    );
    assert!(run.status.success(), "{}", stderr(&run));
    let mut kinds: Vec<String> = std::fs::read_dir(out.join("stripes/test"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "good",
            "subtle_blur",
            "subtle_contrast",
            "subtle_orientation",
            "subtle_scale",
            "subtle_spot",
            "subtle_thread"
        ]
    );
}

/// A styled shape or finish names every kind drawn with it: `--defects tint` draws only those,
/// `--hold-out-defects cluster,tint` leaves them all out (and says so in the manifest).
#[test]
fn defect_styles_can_be_picked_and_held_out_by_shape_or_finish() {
    let dir = tempfile::tempdir().unwrap();
    let kinds_in = |out: &Path| -> Vec<String> {
        let mut kinds: Vec<String> = std::fs::read_dir(out.join("sand/test"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|k| k != "good")
            .collect();
        kinds.sort();
        kinds
    };
    let only = dir.path().join("only");
    let run = universe_n(&only, "9", &["--families", "sand", "--defects", "tint"]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(
        kinds_in(&only),
        [
            "blob_tint",
            "cluster_tint",
            "ellipse_tint",
            "polygon_tint",
            "ring_tint",
            "stroke_tint"
        ]
    );
    let held = dir.path().join("held");
    let run = universe_n(
        &held,
        "120",
        &["--families", "sand", "--hold-out-defects", "cluster,tint"],
    );
    assert!(run.status.success(), "{}", stderr(&run));
    let kinds = kinds_in(&held);
    assert!(
        kinds.iter().any(|k| k == "stroke_relief") && kinds.iter().any(|k| k == "hole"),
        "{kinds:?}"
    );
    assert!(
        !kinds
            .iter()
            .any(|k| k.starts_with("cluster_") || k.ends_with("_tint")),
        "{kinds:?}"
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(held.join("universe.json")).unwrap()).unwrap();
    assert_eq!(
        manifest["hold_out_defects"],
        serde_json::json!(["cluster", "tint"])
    );
    assert_eq!(manifest["generator"], "dlvp demo-data --universe/2");
}

#[test]
fn unknown_names_are_errors_that_list_the_valid_ones() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("u");
    let families = "fractal, oriented, woven, knitted, woodgrain, cellular, tiles, granular, \
                    stripes, gradient, marble, mesh, pebbles, gravel, sand, stone, masonry, \
                    knurled, perforated, machined, cast, leathergrain, paper, foam, carpet, grass";
    let bad = universe(&out, &["--families", "woven,velvet"]);
    assert_fails(
        &bad,
        1,
        &format!("--families: unknown family \"velvet\"; expected one of {families}"),
    );
    let bad = universe(&out, &["--hold-out", "fabric"]);
    assert_fails(
        &bad,
        1,
        &format!("--hold-out: unknown family \"fabric\"; expected one of {families}"),
    );
    let bad = universe(&out, &["--defects", "dent"]);
    assert_fails(&bad, 1, "--defects: unknown defect kind \"dent\"");
    let bad = universe(&out, &["--hold-out-defects", "cluster,smudge"]);
    assert_fails(
        &bad,
        1,
        "--hold-out-defects: unknown defect kind \"smudge\"; expected a group (generic, physical, subtle, styled), a shape (ellipse, blob, polygon, stroke, cluster, ring) or finish (darken, lighten, tint, paint, relief, smear)",
    );
    let bad = universe(&out, &["--defects", "tint", "--hold-out-defects", "tint"]);
    assert_fails(
        &bad,
        1,
        "--hold-out-defects: the defect hold-out leaves no defect kind to draw",
    );
    let bad = universe(&out, &["--families", "mesh", "--hold-out", "mesh"]);
    assert_fails(&bad, 1, "--hold-out leaves no family to write");
    assert!(!out.exists(), "a failed run wrote {}", out.display());
    // the five demo categories and the universe are separate modes
    let mixed = dlvp(&[
        "demo-data",
        "--universe",
        "--categories",
        "wood",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(mixed.status.code(), Some(2), "{}", stderr(&mixed));
    let stray = dlvp(&[
        "demo-data",
        "--hold-out",
        "mesh",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(stray.status.code(), Some(2), "{}", stderr(&stray));
}
