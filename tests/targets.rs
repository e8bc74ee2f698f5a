//! `dlvp inspect --target`: the static compatibility check against each export target's parser
//! (exporter/src/targets/rules.rs). The exported graphs pass where they should, and graphs deliberately
//! built with a disallowed construct are flagged by node, op and reason.

use std::path::{Path, PathBuf};

use dlvp_onnx_proto as pb;
use dlvp_test_support::{onnx_edit, run};
use rstest::rstest;
use run::{dlvp, export_with, golden_weights, stderr, stdout};

fn export(dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let model = dir.join(name);
    export_with(&golden_weights(), &model, extra);
    model
}

/// (exit code, violations as (node, op, reason)) of `dlvp inspect MODEL --target T --json`.
fn check(model: &Path, target: &str) -> (i32, Vec<(String, String, String)>) {
    let run = dlvp(&[
        "inspect",
        model.to_str().unwrap(),
        "--target",
        target,
        "--json",
    ]);
    let json: serde_json::Value = serde_json::from_slice(&run.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(&run), stderr(&run)));
    let target_json = &json["target"];
    assert_eq!(target_json["name"], target);
    let violations: Vec<_> = target_json["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let s = |k: &str| v[k].as_str().unwrap().to_string();
            (s("node"), s("op"), s("reason"))
        })
        .collect();
    assert_eq!(target_json["compatible"], violations.is_empty());
    (run.status.code().unwrap(), violations)
}

#[rstest]
#[case("generic")]
#[case("tensorrt-8.6")]
#[case("tensorrt-10")]
fn the_exported_graphs_pass_where_their_ops_are_supported(#[case] target: &str) {
    let dir = tempfile::tempdir().unwrap();
    for (name, extra) in [
        ("tiny.onnx", &[][..]),
        ("tiny_fp16.onnx", &["--fp16"][..]),
        ("tiny_u8.onnx", &["--embed-preprocess"][..]),
    ] {
        let model = export(dir.path(), name, extra);
        assert_eq!(check(&model, target), (0, vec![]), "{name} on {target}");
    }
}

/// int8 exports for each TensorRT target pass that target's check (symmetric INT8 Q/DQ, zero
/// points zero, LayerNormalization decomposed for 8.5); a zero point that is not zero, or a
/// QuantizeLinear without one (UINT8), is flagged on every TensorRT target and not on generic.
#[test]
fn int8_exports_pass_each_tensorrt_target_and_asymmetric_qdq_is_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let samples = run::repo().join("fixtures/samples");
    let calibrate = ["--int8", "--calibrate", samples.to_str().unwrap()];
    for target in ["generic", "tensorrt-8.5", "tensorrt-8.6", "tensorrt-10"] {
        let mut extra = calibrate.to_vec();
        extra.extend(["--target", target]);
        let model = export(dir.path(), &format!("int8-{target}.onnx"), &extra);
        assert_eq!(check(&model, target), (0, vec![]), "int8 on {target}");
    }
    let model = dir.path().join("int8-tensorrt-10.onnx");
    let asymmetric = edited(&model, &dir.path().join("asymmetric.onnx"), |m| {
        let graph = m.graph.as_mut().unwrap();
        let q = graph
            .node
            .iter()
            .position(|n| n.op_type == "QuantizeLinear")
            .unwrap();
        let zp = graph.node[q].input[2].clone();
        let init = graph.initializer.iter_mut().find(|t| t.name == zp).unwrap();
        let mut shifted = init.clone();
        shifted.name = "shifted_zero_point".into();
        shifted.raw_data = vec![3];
        graph.initializer.push(shifted);
        graph.node[q].input[2] = "shifted_zero_point".into();
        // And one QuantizeLinear with no zero point at all: UINT8.
        let second = graph
            .node
            .iter()
            .enumerate()
            .filter(|(_, n)| n.op_type == "QuantizeLinear")
            .nth(1)
            .unwrap()
            .0;
        graph.node[second].input.truncate(2);
    });
    for target in ["tensorrt-8.5", "tensorrt-8.6", "tensorrt-10"] {
        let (code, violations) = check(&asymmetric, target);
        assert_eq!(code, 1, "{target}");
        let reasons: Vec<&str> = violations.iter().map(|v| v.2.as_str()).collect();
        assert!(
            reasons
                .iter()
                .any(|r| r.starts_with("zero point `shifted_zero_point` is not zero")),
            "{target}: {reasons:?}"
        );
        assert!(
            reasons
                .iter()
                .any(|r| r.starts_with("no zero point (UINT8)")),
            "{target}: {reasons:?}"
        );
    }
    assert_eq!(check(&asymmetric, "generic").0, 0);
}

#[test]
fn tensorrt_8_5_flags_layer_normalization_and_a_uint8_input() {
    let dir = tempfile::tempdir().unwrap();
    let model = export(dir.path(), "tiny.onnx", &[]);
    let (code, violations) = check(&model, "tensorrt-8.5");
    assert_eq!(code, 1);
    // 4 layers × 2 LayerNorms × 2 visual passes share weights but not nodes, plus ln_pre, ln_post and the text tower's.
    assert!(violations.len() >= 8, "{violations:?}");
    for (_, op, reason) in &violations {
        assert_eq!(op, "LayerNormalization");
        assert_eq!(
            reason,
            "tensorrt-8.5 has no importer for LayerNormalization"
        );
    }
    let text = stdout(&dlvp(&[
        "inspect",
        model.to_str().unwrap(),
        "--target",
        "tensorrt-8.5",
    ]));
    assert!(text.contains("target tensorrt-8.5: visual/pass1/blocks.0/layernormalization  LayerNormalization  tensorrt-8.5 has no importer"), "{text}");

    let u8_model = export(dir.path(), "tiny_u8.onnx", &["--embed-preprocess"]);
    let (_, violations) = check(&u8_model, "tensorrt-8.5");
    assert!(violations.contains(&(
        "image_u8".into(),
        "input".into(),
        "input of type UINT8; tensorrt-8.5 takes FLOAT, FLOAT16, INT32, INT64, INT8, BOOL".into()
    )));
}

fn edited(model: &Path, out: &Path, edit: impl FnOnce(&mut pb::ModelProto)) -> PathBuf {
    std::fs::write(out, onnx_edit::edited(model, edit)).unwrap();
    out.to_path_buf()
}

fn topk(proto: &mut pb::ModelProto) -> &mut pb::NodeProto {
    let graph = proto.graph.as_mut().unwrap();
    graph.node.iter_mut().find(|n| n.op_type == "TopK").unwrap()
}

#[test]
fn a_dynamic_k_a_large_k_a_cubic_resize_and_a_new_opset_are_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let model = export(dir.path(), "tiny.onnx", &[]);

    // K computed at run time: an Identity between the initializer and TopK.
    let dynamic_k = edited(&model, &dir.path().join("dynamic_k.onnx"), |m| {
        let k = topk(m).input[1].clone();
        topk(m).input[1] = "k_at_run_time".into();
        m.graph.as_mut().unwrap().node.insert(
            0,
            pb::NodeProto {
                op_type: "Identity".into(),
                name: "make_k".into(),
                input: vec![k],
                output: vec!["k_at_run_time".into()],
                ..Default::default()
            },
        );
    });
    let (code, v) = check(&dynamic_k, "tensorrt-8.5");
    assert_eq!(code, 1);
    assert!(
        v.iter().any(|(_, op, reason)| op == "TopK"
            && reason == "input 1 (K) `k_at_run_time` is computed at run time; tensorrt-8.5 needs an initializer"),
        "{v:?}"
    );
    assert!(
        check(&dynamic_k, "tensorrt-10").1.is_empty(),
        "TensorRT 10 takes a run-time K"
    );

    // K of 4000: over TensorRT's limit everywhere, fine for ONNX Runtime.
    let big_k = edited(&model, &dir.path().join("big_k.onnx"), |m| {
        let k = topk(m).input[1].clone();
        let init = m
            .graph
            .as_mut()
            .unwrap()
            .initializer
            .iter_mut()
            .find(|t| t.name == k)
            .unwrap();
        if init.int64_data.is_empty() {
            init.raw_data = 4000i64.to_le_bytes().to_vec();
        } else {
            init.int64_data = vec![4000];
        }
    });
    for target in ["tensorrt-8.5", "tensorrt-8.6", "tensorrt-10"] {
        let (_, v) = check(&big_k, target);
        assert!(
            v.iter()
                .any(|(_, op, reason)| op == "TopK" && reason.starts_with("K = 4000;")),
            "{target}: {v:?}"
        );
    }
    assert_eq!(check(&big_k, "generic").0, 0);

    // A cubic Resize: TensorRT resizes nearest or linear only.
    let cubic = edited(&model, &dir.path().join("cubic.onnx"), |m| {
        let graph = m.graph.as_mut().unwrap();
        let resize = graph
            .node
            .iter_mut()
            .find(|n| n.op_type == "Resize")
            .unwrap();
        resize
            .attribute
            .iter_mut()
            .find(|a| a.name == "mode")
            .unwrap()
            .s = b"cubic".to_vec();
    });
    let (_, v) = check(&cubic, "tensorrt-10");
    assert!(
        v.iter().any(|(_, op, r)| op == "Resize"
            && r == "mode `cubic`; tensorrt-10 resizes with nearest, linear"),
        "{v:?}"
    );

    // Opset 18: past TensorRT 8's parser, within TensorRT 10's.
    let opset18 = edited(&model, &dir.path().join("opset18.onnx"), |m| {
        m.opset_import.iter_mut().for_each(|o| o.version = 18);
    });
    let (_, v) = check(&opset18, "tensorrt-8.6");
    assert!(
        v.contains(&(
            "model".into(),
            "opset".into(),
            "opset 18; tensorrt-8.6 parses opsets 1 to 17".into()
        )),
        "{v:?}"
    );
    assert!(!check(&opset18, "tensorrt-10")
        .1
        .iter()
        .any(|(_, op, _)| op == "opset"));
}

#[test]
fn an_unknown_target_is_bad_usage() {
    let run = dlvp(&["inspect", "model.onnx", "--target", "tensorrt-7"]);
    assert_eq!(run.status.code(), Some(2));
    assert!(stderr(&run).contains("tensorrt-8.5"), "{}", stderr(&run));
}

/// `dlvp export --target T` writes a graph that passes T's check; for TensorRT 8.5 LayerNorm is
/// decomposed, and the decomposed graph matches the fused one within 1e-5 on tract and ONNX
/// Runtime CPU (scores and maps; Top-K equal).
#[test]
fn export_for_each_target_passes_its_check_and_decomposed_layernorm_matches_fused() {
    use dlvp_runtime::detector::{BackendChoice, Detector, DetectorOptions};
    let dir = tempfile::tempdir().unwrap();
    for target in ["generic", "tensorrt-8.5", "tensorrt-8.6", "tensorrt-10"] {
        let model = export(dir.path(), &format!("{target}.onnx"), &["--target", target]);
        assert_eq!(check(&model, target), (0, vec![]), "{target}");
    }
    let decomposed = dir.path().join("tensorrt-8.5.onnx");
    let ops = stdout(&dlvp(&["inspect", decomposed.to_str().unwrap()]));
    assert!(
        !ops.contains("LayerNormalization") && ops.contains("Sqrt"),
        "{ops}"
    );
    assert!(ops.contains("metadata dlvp.target: tensorrt-8.5"), "{ops}");
    // ONNX Runtime's TensorRT LayerNorm fp32 fallback matches a Pow layer immediately followed by
    // a Reduce layer: every decomposed LayerNorm squares with Pow(d, 2.0) and averages it in the
    // very next node; nothing squares with Mul.
    let proto: pb::ModelProto =
        prost::Message::decode(std::fs::read(&decomposed).unwrap().as_slice()).unwrap();
    let graph = proto.graph.as_ref().unwrap();
    let generic: pb::ModelProto = prost::Message::decode(
        std::fs::read(dir.path().join("generic.onnx"))
            .unwrap()
            .as_slice(),
    )
    .unwrap();
    let layer_norms = generic
        .graph
        .as_ref()
        .unwrap()
        .node
        .iter()
        .filter(|n| n.op_type == "LayerNormalization")
        .count();
    let pows: Vec<usize> = (0..graph.node.len())
        .filter(|&i| graph.node[i].op_type == "Pow")
        .collect();
    assert_eq!(pows.len(), layer_norms);
    for i in pows {
        let (pow, next) = (&graph.node[i], &graph.node[i + 1]);
        let two = graph
            .initializer
            .iter()
            .find(|t| t.name == pow.input[1])
            .unwrap();
        assert_eq!(two.raw_data, 2f32.to_le_bytes(), "{}", pow.name);
        assert_eq!(
            next.op_type, "ReduceMean",
            "{} is followed by {}",
            pow.name, next.name
        );
        assert_eq!(next.input[0], pow.output[0]);
    }
    assert!(!graph
        .node
        .iter()
        .any(|n| n.op_type == "Mul" && n.input.len() == 2 && n.input[0] == n.input[1]));

    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/samples");
    let images: Vec<_> = ["fabric_hole.png", "wood_crack.png", "metal_good.png"]
        .iter()
        .map(|n| dlvp_runtime::preprocess::load_rgb8(&samples.join(n)).unwrap())
        .collect();
    let mut backends = vec![BackendChoice::Tract];
    if dlvp_test_support::gate::onnxruntime().is_some() {
        backends.push(BackendChoice::OrtCpu);
    }
    for backend in backends {
        let run = |model: &Path| {
            Detector::load(
                model,
                &DetectorOptions {
                    backend,
                    ..Default::default()
                },
            )
            .unwrap()
            .detect_batch(&images)
            .unwrap()
        };
        let (fused, split) = (run(&dir.path().join("generic.onnx")), run(&decomposed));
        for (f, s) in fused.iter().zip(&split) {
            let map = f
                .map
                .iter()
                .zip(s.map.iter())
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(
                (f.score - s.score).abs() <= 1e-5 && map <= 1e-5,
                "{backend:?}: score {} vs {}, map {map}",
                f.score,
                s.score
            );
            assert_eq!(f.topk, s.topk, "{backend:?}");
        }
    }
}

/// `inspect --trt-layer-precisions` on an `--fp16` export (both LayerNorm forms) names every
/// node the export keeps in f32 — each LayerNormalization (or the 8.5 decomposition's Pow and
/// ReduceMean), Softmax, ReduceL2, TopK and Resize — and no f16 contraction; an fp32 graph has
/// no island and is refused by name.
#[rstest]
#[case::layernorm_op(&[][..])]
#[case::decomposed_layernorm(&["--target", "tensorrt-8.5"][..])]
fn trt_layer_precisions_name_the_fp32_islands(#[case] extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["--fp16"];
    args.extend(extra);
    let model = export(dir.path(), "fp16.onnx", &args);
    let run = dlvp(&["inspect", model.to_str().unwrap(), "--trt-layer-precisions"]);
    assert!(run.status.success(), "{}", stderr(&run));
    let spec = stdout(&run);
    let pinned: Vec<&str> = spec
        .trim()
        .split(',')
        .map(|entry| entry.strip_suffix(":fp32").expect(entry))
        .collect();
    let bytes = std::fs::read(&model).unwrap();
    let graph = <pb::ModelProto as prost::Message>::decode(bytes.as_slice())
        .unwrap()
        .graph
        .unwrap();
    let island_ops = [
        "LayerNormalization",
        "Pow",
        "ReduceMean",
        "Softmax",
        "ReduceL2",
        "TopK",
        "Resize",
    ];
    for n in &graph.node {
        if island_ops.contains(&n.op_type.as_str()) {
            assert!(
                pinned.contains(&n.name.as_str()),
                "{} ({}) not pinned",
                n.name,
                n.op_type
            );
        }
        if matches!(n.op_type.as_str(), "MatMul" | "Conv" | "Gemm") {
            assert!(
                !pinned.contains(&n.name.as_str()),
                "{} is f16 but pinned",
                n.name
            );
        }
    }
    let fp32 = export(dir.path(), "fp32.onnx", &[]);
    let run = dlvp(&["inspect", fp32.to_str().unwrap(), "--trt-layer-precisions"]);
    run::assert_fails(
        &run,
        1,
        "computes nothing in fp16 (not a `dlvp export --fp16` graph)",
    );
}
