//! `dlvp export --int8 --calibrate DIR` end to end with the golden tiny checkpoint, calibrated on
//! the sample images: byte-identical exports, metadata that says how it was calibrated, outputs on
//! every backend within a stated tolerance of the fp32 graph, and calibration folders that cannot
//! serve refused by name with nothing written.

use std::path::{Path, PathBuf};

use dlvp_test_support::run::{self, assert_fails, dlvp, golden_weights, stderr, stdout};

/// How far the int8 graph's outputs may be from the fp32 graph's on the tiny random-weight model
/// (measured: ≤ 5.7e-2 on maps with random-normal inputs, bench/compare's tiny rows; less on the
/// sample images). A wrong scale or a transposed weight is off by far more.
const INT8_TOLERANCE: f64 = 0.1;

fn samples() -> PathBuf {
    run::repo().join("fixtures/samples")
}

fn export_int8(out: &Path, calibrate: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["--int8", "--calibrate", calibrate.to_str().unwrap()];
    args.extend_from_slice(extra);
    run::export_run(&golden_weights(), out, &args)
}

fn scores(model: &Path, backend: &str) -> Vec<(String, f64)> {
    run::detect_json(&samples(), model, backend)
        .iter()
        .map(|v| {
            (
                v["image"].as_str().unwrap().to_string(),
                v["score"].as_f64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn an_int8_export_is_deterministic_and_scores_near_the_fp32_graph() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.onnx"), dir.path().join("b.onnx"));
    for out in [&a, &b] {
        let r = export_int8(out, &samples(), &["--verify"]);
        assert!(r.status.success(), "{}{}", stdout(&r), stderr(&r));
        assert!(
            stderr(&r).contains("calibrating") && stdout(&r).contains("verify tract"),
            "{}{}",
            stdout(&r),
            stderr(&r)
        );
        // Which CPU it verified on, and that the weights need nothing of it.
        assert!(
            stdout(&r).contains("verify int8 on CPU features: ")
                && stdout(&r).contains("|q| <= 64, largest pair sum 32640: exact on every CPU"),
            "{}",
            stdout(&r)
        );
    }
    assert!(
        std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(),
        "same checkpoint and images, same bytes"
    );
    let fp32 = run::exported_golden(dir.path());
    assert!(
        std::fs::metadata(&a).unwrap().len() < std::fs::metadata(&fp32).unwrap().len(),
        "int8 weights are smaller"
    );

    let inspect = dlvp(&["inspect", a.to_str().unwrap(), "--json"]);
    assert!(inspect.status.success(), "{}", stderr(&inspect));
    let info: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    let meta = &info["metadata"];
    assert_eq!(meta["dlvp.precision"], "int8");
    assert_eq!(meta["dlvp.int8.method"], "percentile");
    assert_eq!(meta["dlvp.int8.images"], "10");
    assert_eq!(
        meta["dlvp.int8.calibration_sha256"].as_str().unwrap().len(),
        64
    );
    assert!(info["ops"]["QuantizeLinear"].as_u64().unwrap() > 0);
    let q = &info["int8"];
    assert!(q["int8_matmuls"].as_u64().unwrap() > 0, "{q}");
    assert_eq!(meta["dlvp.int8.weight_range"], "reduced");
    assert_eq!(q["weight_range"], "reduced");
    assert_eq!(q["weights"]["max_abs_q"], 64, "{q}");
    assert_eq!(q["weights"]["pairs_over_16_bits"], 0, "{q}");
    assert_eq!(q["weights"]["exact_without_vnni"], true, "{q}");
    assert!(
        q["kept_f32"]["LayerNormalization"].as_u64().unwrap() > 0,
        "{q}"
    );

    let reference = scores(&fp32, "tract");
    let mut backends = vec!["tract"];
    if dlvp_test_support::gate::onnxruntime().is_some() {
        backends.push("ort-cpu");
    }
    if dlvp_test_support::gate::openvino().is_some() {
        backends.push("openvino");
    }
    for backend in backends {
        let got = scores(&a, backend);
        assert_eq!(got.len(), reference.len());
        for ((image, x), (_, y)) in got.iter().zip(&reference) {
            assert!(
                (x - y).abs() <= INT8_TOLERANCE,
                "{backend}: {image}: int8 {x} vs fp32 {y}"
            );
        }
    }
}

/// `--int8-weights full`: ±127 weights, which the static audit flags (pairs of products past 16
/// bits); `--verify` passes where int8 products accumulate in 32 bits (VNNI, AMX) and refuses the
/// graph, writing nothing, where they do not (reference/tests/test_int8_cpu.py runs both cases
/// on an emulated AVX2-only CPU).
#[test]
fn a_full_range_int8_export_is_flagged_and_verified_only_where_it_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("full.onnx");
    let r = export_int8(&out, &samples(), &["--int8-weights", "full", "--verify"]);
    let exact_here = dlvp_runtime::int8_kernels::CpuFeatures::detect().int8_dot_product_exact();
    if exact_here {
        assert!(r.status.success(), "{}{}", stdout(&r), stderr(&r));
        assert!(
            stdout(&r).contains("pairs pass 16 bits, first"),
            "{}",
            stdout(&r)
        );
    } else {
        assert!(!r.status.success() && stderr(&r).contains("would saturate"));
        assert!(!out.exists());
        let r = export_int8(&out, &samples(), &["--int8-weights", "full"]);
        assert!(r.status.success(), "{}", stderr(&r));
    }
    let inspect = dlvp(&["inspect", out.to_str().unwrap(), "--json"]);
    let info: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    let q = &info["int8"];
    assert_eq!(q["weight_range"], "full");
    assert_eq!(q["weights"]["max_abs_q"], 127, "{q}");
    assert_eq!(q["weights"]["exact_without_vnni"], false, "{q}");
    assert!(q["weights"]["first_over"]["weight"].is_string(), "{q}");
    let r = export_int8(&out, &samples(), &["--int8-weights", "7bit"]);
    assert!(
        !r.status.success() && stderr(&r).contains("[possible values: reduced, full]"),
        "{}",
        stderr(&r)
    );
}

#[test]
fn another_method_or_image_set_changes_the_graph_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.onnx"), dir.path().join("b.onnx"));
    let r = export_int8(&a, &samples(), &["--calib-method", "minmax"]);
    assert!(r.status.success(), "{}", stderr(&r));
    let r = export_int8(&b, &samples(), &["--calib-count", "3"]);
    assert!(r.status.success(), "{}", stderr(&r));
    let meta = |p: &Path| -> serde_json::Value {
        let r = dlvp(&["inspect", p.to_str().unwrap(), "--json"]);
        serde_json::from_slice::<serde_json::Value>(&r.stdout).unwrap()["metadata"].clone()
    };
    let (ma, mb) = (meta(&a), meta(&b));
    assert_eq!(ma["dlvp.int8.method"], "minmax");
    assert_eq!(mb["dlvp.int8.images"], "3");
    assert_ne!(
        ma["dlvp.int8.calibration_sha256"],
        mb["dlvp.int8.calibration_sha256"]
    );
    assert!(std::fs::read(&a).unwrap() != std::fs::read(&b).unwrap());
}

#[test]
fn calibration_folders_that_cannot_serve_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("model.onnx");
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let no_images = dir.path().join("notes");
    std::fs::create_dir(&no_images).unwrap();
    std::fs::write(no_images.join("readme.txt"), "not an image").unwrap();
    let broken = dir.path().join("broken");
    std::fs::create_dir(&broken).unwrap();
    std::fs::write(broken.join("part.png"), b"\x89PNG but not really").unwrap();
    let missing = dir.path().join("missing");
    let cases: [(&Path, String); 4] = [
        (
            &empty,
            format!("--calibrate {}: no images", empty.display()),
        ),
        (
            &no_images,
            format!("--calibrate {}: no images", no_images.display()),
        ),
        (
            &missing,
            format!("--calibrate {}: not a folder", missing.display()),
        ),
        (&broken, format!("{}", broken.join("part.png").display())),
    ];
    for (folder, expected) in cases {
        assert_fails(&export_int8(&out, folder, &[]), 1, &expected);
        assert!(!out.exists(), "nothing written for {}", folder.display());
    }
    // --int8 needs --calibrate, and is refused beside --fp16 by name.
    let r = dlvp(&[
        "export",
        "--weights",
        golden_weights().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--int8",
    ]);
    assert!(
        !r.status.success() && stderr(&r).contains("--calibrate"),
        "{}",
        stderr(&r)
    );
    let r = export_int8(&out, &samples(), &["--fp16"]);
    assert!(
        !r.status.success() && stderr(&r).contains("--fp16"),
        "{}",
        stderr(&r)
    );
    assert!(!out.exists());
}
