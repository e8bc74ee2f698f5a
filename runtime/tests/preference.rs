//! The detector's one policy, which backend runs: a preference list tried in order, its skips
//! kept as typed notes; one named backend that cannot run is its own error. A test binary of its
//! own, so that no other test has loaded ONNX Runtime in its process (it loads once per
//! process, and a loaded library would answer every later path).

use std::path::PathBuf;

use dlvp_runtime::{BackendChoice, DetectError, Detector, Note, SkipReason};

const MODEL: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../models/demo/dlvp-clip-demo.onnx"
));

fn nowhere() -> PathBuf {
    PathBuf::from("/nonexistent/dlvp/libmissing.so")
}

/// The backends a note says were not used, and why, in words.
fn skipped(note: &Note) -> (Vec<BackendChoice>, &SkipReason) {
    match note {
        Note::NotUsed { backends, reason } => (backends.clone(), reason),
        other => panic!("expected a skip, got {other}"),
    }
}

#[test]
fn a_preference_list_falls_through_to_the_first_backend_that_opens() {
    if !BackendChoice::Tract.is_built() {
        return;
    }
    let detector = Detector::builder()
        .backends([
            BackendChoice::OrtCpu,
            BackendChoice::OpenVino,
            BackendChoice::Tract,
        ])
        .ort_lib(nowhere())
        .openvino_lib(nowhere())
        .threads(1)
        .build_from_bytes(MODEL.to_vec())
        .unwrap();
    assert_eq!(detector.backend(), BackendChoice::Tract);
    assert_eq!(detector.executor(), "tract");
    let notes = detector.notes();
    assert_eq!(notes.len(), 2, "{notes:?}");
    let (backends, reason) = skipped(&notes[0]);
    assert_eq!(backends, [BackendChoice::OrtCpu]);
    if BackendChoice::OrtCpu.is_built() {
        assert!(matches!(reason, SkipReason::Library(_)), "{reason}");
        assert!(
            notes[0].to_string().starts_with(
                "ort-cpu not used: ONNX Runtime library /nonexistent/dlvp/libmissing.so"
            ),
            "{}",
            notes[0]
        );
    } else {
        assert!(
            matches!(reason, SkipReason::NotBuilt { feature: "ort" }),
            "{reason}"
        );
    }
    let (backends, reason) = skipped(&notes[1]);
    assert_eq!(backends, [BackendChoice::OpenVino]);
    assert!(
        matches!(reason, SkipReason::Library(_) | SkipReason::NotBuilt { .. }),
        "{reason}"
    );
    let found = detector
        .detect(&image::DynamicImage::new_rgb8(40, 30))
        .unwrap();
    assert!((0.0..=1.0).contains(&found.score));
}

#[test]
fn auto_says_once_that_onnxruntime_is_missing_for_all_its_providers() {
    if !BackendChoice::Tract.is_built() {
        return;
    }
    let detector = Detector::builder()
        .ort_lib(nowhere())
        .openvino_lib(nowhere())
        .build_from_bytes(MODEL.to_vec())
        .unwrap();
    assert_eq!(detector.backend(), BackendChoice::Tract);
    let notes = detector.notes();
    let (backends, _) = skipped(&notes[0]);
    assert_eq!(
        backends,
        [
            BackendChoice::OrtTensorrt,
            BackendChoice::OrtCuda,
            BackendChoice::OrtCpu
        ]
    );
    assert_eq!(notes[0].subject(), "onnxruntime");
    assert!(notes[0].to_string().starts_with("onnxruntime not used: "));
    assert_eq!(skipped(&notes[1]).0, [BackendChoice::OpenVino]);
    assert_eq!(notes.len(), 2, "{notes:?}");
}

#[test]
fn one_named_backend_that_cannot_run_is_its_own_error_and_a_list_that_cannot_is_every_reason() {
    let named = Detector::builder()
        .backend(BackendChoice::OrtCpu)
        .ort_lib(nowhere())
        .build_from_bytes(MODEL.to_vec())
        .err()
        .unwrap();
    if BackendChoice::OrtCpu.is_built() {
        #[cfg(feature = "ort")]
        assert!(matches!(named, DetectError::Ort(_)), "{named}");
        assert!(
            named
                .to_string()
                .contains("/nonexistent/dlvp/libmissing.so"),
            "{named}"
        );
    } else {
        assert!(
            matches!(named, DetectError::NotBuilt { feature: "ort", .. }),
            "{named}"
        );
    }
    let list = Detector::builder()
        .backends([BackendChoice::OrtCpu, BackendChoice::OpenVino])
        .ort_lib(nowhere())
        .openvino_lib(nowhere())
        .build_from_bytes(MODEL.to_vec())
        .err()
        .unwrap();
    let DetectError::NoBackend { reasons } = &list else {
        panic!("{list}")
    };
    let backends: Vec<_> = reasons.iter().flat_map(|n| skipped(n).0).collect();
    assert_eq!(backends, [BackendChoice::OrtCpu, BackendChoice::OpenVino]);
    assert!(
        list.to_string()
            .starts_with("no backend could run the model: ort-cpu not used: "),
        "{list}"
    );
}

#[test]
fn auto_in_a_list_stands_for_the_auto_order() {
    if !BackendChoice::Tract.is_built() {
        return;
    }
    let detector = Detector::builder()
        .backends([BackendChoice::Tract, BackendChoice::Auto])
        .build_from_bytes(MODEL.to_vec())
        .unwrap();
    assert_eq!(detector.backend(), BackendChoice::Tract);
    assert!(detector.notes().is_empty(), "{:?}", detector.notes());
}
