//! The exported tiny golden checkpoint, run by tract, against the PyTorch reference's outputs
//! (fixtures/tiny/golden.safetensors, written by `python -m dlvp_reference.golden`).

use std::path::Path;
use std::sync::Arc;

use dlvp_exporter::model::build;
use dlvp_exporter::{onnx, Checkpoint};
use ndarray::{ArrayD, IxDyn};
use tract_onnx::prelude::*;

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/tiny")
}

fn golden(name: &str) -> ArrayD<f32> {
    let ckpt = Checkpoint::open(&fixtures().join("golden.safetensors")).unwrap();
    let shape = ckpt.tensors()[name].shape.clone();
    ArrayD::from_shape_vec(IxDyn(&shape), ckpt.read_f32(name).unwrap()).unwrap()
}

fn golden_i64(name: &str) -> Vec<i64> {
    // topk_indices is stored as I64, which the f32 reader refuses: read the raw bytes.
    let bytes = std::fs::read(fixtures().join("golden.safetensors")).unwrap();
    let ckpt = Checkpoint::open(&fixtures().join("golden.safetensors")).unwrap();
    let info = &ckpt.tensors()[name];
    let start = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    bytes[start + info.data_offsets.0..start + info.data_offsets.1]
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

fn max_abs(a: &ArrayD<f32>, b: &ArrayD<f32>) -> f32 {
    assert_eq!(a.shape(), b.shape());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn tract_matches_the_reference_on_the_golden_batch() {
    let ckpt = Arc::new(Checkpoint::open(&fixtures().join("weights.safetensors")).unwrap());
    let spec = ckpt.embedded_spec().unwrap().unwrap();
    let exported = build(ckpt, &spec).unwrap();
    assert!(exported.ledger.missing.is_empty() && exported.ledger.mis_shaped.is_empty());
    assert_eq!(exported.ledger.unused, ["logit_scale"]);
    let bytes = onnx::to_bytes(&exported.graph, &spec.name);
    let image = golden("image");
    let model = tract_onnx::onnx()
        .model_for_read(&mut &bytes[..])
        .unwrap()
        .with_input_fact(0, f32::fact(image.shape()).into())
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    let out = model.run(tvec!(Tensor::from(image).into())).unwrap();
    let score = out[0].to_plain_array_view::<f32>().unwrap().to_owned();
    let map = out[1].to_plain_array_view::<f32>().unwrap().to_owned();
    let topk: Vec<i64> = out[2].to_plain_array_view::<i64>().unwrap().iter().copied().collect();
    assert_eq!(topk, golden_i64("topk_indices"));
    let (e_score, e_map) = (max_abs(&score, &golden("anomaly_score")), max_abs(&map, &golden("anomaly_map")));
    eprintln!("max abs error: score {e_score:.2e}, map {e_map:.2e}");
    assert!(e_score <= 1e-4 && e_map <= 1e-4, "score {e_score}, map {e_map}");
}
