//! The oldest ONNX Runtime dlvp supports: the library from the onnxruntime 1.19.2 wheel (the
//! first whose wheel carries `libonnxruntime.so`; docs/jetson.md says which JetPack gets which)
//! runs the exported golden tiny graph and reproduces the PyTorch reference within 1e-4, Top-K
//! exact. A dependency bump that raises ort's API floor past 1.19 fails here, in a process of its
//! own (a process loads one ONNX Runtime).

use dlvp_exporter::Checkpoint;
use dlvp_test_support::run;

const TOLERANCE: f32 = 1e-4;

#[test]
fn the_oldest_supported_onnx_runtime_reproduces_the_reference() {
    let Some(lib) = dlvp_test_support::gate::onnxruntime_floor() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let model = run::exported_golden(dir.path());
    let golden = run::repo().join("fixtures/tiny/golden.safetensors");
    let out = dir.path().join("out.safetensors");
    let r = run::bench_once(
        &model,
        "ort-cpu",
        &[
            "--ort-lib",
            lib.to_str().unwrap(),
            "--input",
            golden.to_str().unwrap(),
            "--save-outputs",
            out.to_str().unwrap(),
        ],
    );
    let report = run::json_report(&r);
    assert_eq!(report["provider"], "CPUExecutionProvider", "{report}");
    let (expected, got) = (
        Checkpoint::open(&golden).unwrap(),
        Checkpoint::open(&out).unwrap(),
    );
    for name in ["anomaly_score", "anomaly_map"] {
        let (e, g) = (
            expected.read_f32(name).unwrap(),
            got.read_f32(name).unwrap(),
        );
        assert_eq!(e.len(), g.len(), "{name}");
        let worst = e
            .iter()
            .zip(&g)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            worst <= TOLERANCE,
            "{name}: max abs difference {worst:.2e} on {}",
            lib.display()
        );
    }
    assert_eq!(
        expected.read_i64("topk_indices").unwrap(),
        got.read_i64("topk_indices").unwrap()
    );
}
