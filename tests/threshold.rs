//! `dlvp threshold` through the binary: the split-conformal threshold of the good images' scores
//! (checked against `dlvp detect`'s own scores) written into the graph's metadata with nothing
//! else changed, the same file for the same images, and the refusals (too few images for the
//! rate, a rate outside (0, 1), an unreadable good image) that write nothing.

use std::path::Path;

use dlvp_onnx_proto as pb;
use dlvp_test_support::run;
use prost::Message;
use run::{assert_fails, detect_json, dlvp, exported_golden, stderr, stdout};

/// `n` good images of the demo categories, 64 px, in `dir`.
fn good_images(dir: &Path, n: usize) -> std::path::PathBuf {
    let data = dir.join("data");
    let per = n.div_ceil(5).to_string();
    let run = dlvp(&[
        "demo-data",
        "--out",
        data.to_str().unwrap(),
        "--count",
        "0",
        "--train-count",
        &per,
        "--size",
        "64",
        "--seed",
        "9",
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    data
}

fn threshold(model: &Path, good: &Path, alpha: &str, out: &Path) -> std::process::Output {
    dlvp(&[
        "threshold",
        "--model",
        model.to_str().unwrap(),
        "--good",
        good.to_str().unwrap(),
        "--false-alarm",
        alpha,
        "--out",
        out.to_str().unwrap(),
        "--backend",
        "tract",
    ])
}

fn metadata(model: &pb::ModelProto, key: &str) -> Option<String> {
    model
        .metadata_props
        .iter()
        .find(|p| p.key == key)
        .map(|p| p.value.clone())
}

#[test]
fn the_threshold_is_the_conformal_order_statistic_and_only_the_metadata_changes() {
    let dir = tempfile::tempdir().unwrap();
    let model = exported_golden(dir.path());
    let good = good_images(dir.path(), 20);
    let out = dir.path().join("line3.onnx");
    let run = threshold(&model, &good, "0.1", &out);
    assert!(run.status.success(), "{}{}", stdout(&run), stderr(&run));
    assert!(
        stdout(&run).contains("NG with probability at most 0.1"),
        "{}",
        stdout(&run)
    );

    // k = ⌈(20 + 1) × 0.9⌉ = 19: the 19th smallest of the scores detect gives the same images.
    let mut scores: Vec<f32> = detect_json(&good, &model, "tract")
        .iter()
        .map(|line| line["score"].as_f64().unwrap() as f32)
        .collect();
    assert_eq!(scores.len(), 20);
    scores.sort_by(f32::total_cmp);
    let written = pb::ModelProto::decode(std::fs::read(&out).unwrap().as_slice()).unwrap();
    let stored: f32 = metadata(&written, "dlvp.threshold.image")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(stored, scores[18]);
    assert_eq!(
        metadata(&written, "dlvp.threshold.images").as_deref(),
        Some("20")
    );
    assert_eq!(
        metadata(&written, "dlvp.threshold.false_alarm").as_deref(),
        Some("0.1")
    );
    assert!(metadata(&written, "dlvp.threshold.pixel").is_some());
    assert!(metadata(&written, "dlvp.threshold.scored_with")
        .unwrap()
        .starts_with("resize, tract"));

    // The graph, its weights and the other keys as they were.
    let original = pb::ModelProto::decode(std::fs::read(&model).unwrap().as_slice()).unwrap();
    assert_eq!(written.graph, original.graph);
    let kept: Vec<_> = written
        .metadata_props
        .iter()
        .filter(|p| !p.key.starts_with("dlvp.threshold."))
        .collect();
    assert_eq!(kept, original.metadata_props.iter().collect::<Vec<_>>());

    // The runtime reads them back; the same images give the same file.
    let info = dlvp_runtime::Detector::load(&out, &Default::default())
        .unwrap()
        .info()
        .thresholds
        .unwrap();
    assert_eq!(
        (info.image, info.images, info.false_alarm),
        (stored, 20, 0.1)
    );
    let again = dir.path().join("again.onnx");
    assert!(threshold(&model, &good, "0.1", &again).status.success());
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&again).unwrap());
}

#[test]
fn too_few_images_a_bad_rate_and_an_unreadable_image_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let model = exported_golden(dir.path());
    let good = good_images(dir.path(), 10);
    let out = dir.path().join("out.onnx");
    let few = threshold(&model, &good, "0.05", &out);
    assert_fails(
        &few,
        1,
        "10 image(s) are too few for --false-alarm 0.05: the guarantee needs at least 19",
    );
    let bad = threshold(&model, &good, "1", &out);
    assert_fails(
        &bad,
        1,
        "--false-alarm: the false-alarm rate must be between 0 and 1",
    );
    let broken = good.join("fabric/train/good/zz_broken.png");
    std::fs::write(&broken, b"not a png").unwrap();
    let unreadable = threshold(&model, &good, "0.2", &out);
    assert_fails(&unreadable, 1, "zz_broken.png");
    assert!(!out.exists(), "a refused run wrote {}", out.display());
}
