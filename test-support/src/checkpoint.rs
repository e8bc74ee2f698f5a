//! Test-built safetensors checkpoints, written with the `safetensors` crate — an implementation
//! independent of our reader — from the spec's manifest. The exporter's tests and the CLI's
//! build checkpoints the same way.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use dlvp_contract::Spec;
use dlvp_exporter::manifest::expected_tensors;
use dlvp_exporter::weights::{FORMAT_KEY, FORMAT_TAG, SPEC_KEY};
use safetensors::tensor::{Dtype, TensorView};

pub struct Tensor {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

impl Tensor {
    pub fn f32(shape: &[usize], values: &[f32]) -> Tensor {
        assert_eq!(shape.iter().product::<usize>(), values.len());
        Tensor {
            dtype: Dtype::F32,
            shape: shape.to_vec(),
            bytes: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    pub fn f16(shape: &[usize], values: &[f32]) -> Tensor {
        let bytes = values
            .iter()
            .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
            .collect();
        Tensor {
            dtype: Dtype::F16,
            shape: shape.to_vec(),
            bytes,
        }
    }

    pub fn bf16(shape: &[usize], values: &[f32]) -> Tensor {
        let bytes = values
            .iter()
            .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
            .collect();
        Tensor {
            dtype: Dtype::BF16,
            shape: shape.to_vec(),
            bytes,
        }
    }

    /// Deterministic values in [-0.1, 0.1) from `seed` (a small LCG: tests need variety, not quality).
    pub fn seeded(shape: &[usize], seed: u64) -> Tensor {
        let n: usize = shape.iter().product();
        let mut state = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let values: Vec<f32> = (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.2
            })
            .collect();
        Tensor::f32(shape, &values)
    }
}

/// Every tensor a checkpoint for `spec` holds, with seeded values.
pub fn tensors_for(spec: &Spec) -> BTreeMap<String, Tensor> {
    expected_tensors(spec)
        .into_iter()
        .enumerate()
        .map(|(i, t)| (t.name, Tensor::seeded(&t.shape.native(), i as u64)))
        .collect()
}

/// The `format`/`spec` metadata of a self-describing DLVP checkpoint.
pub fn dlvp_metadata(spec: &Spec) -> HashMap<String, String> {
    HashMap::from([
        (FORMAT_KEY.to_string(), FORMAT_TAG.to_string()),
        (SPEC_KEY.to_string(), spec.to_yaml()),
    ])
}

pub fn write(
    path: &Path,
    tensors: &BTreeMap<String, Tensor>,
    metadata: Option<HashMap<String, String>>,
) {
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(name, t)| {
            (
                name.clone(),
                TensorView::new(t.dtype, t.shape.clone(), &t.bytes)
                    .expect("consistent test tensor"),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, metadata, path).expect("write test checkpoint");
}

/// A file with a hand-written header, for layouts no correct writer produces.
pub fn write_raw(path: &Path, header: &str, data: &[u8]) {
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(data);
    std::fs::write(path, bytes).expect("write raw checkpoint");
}

pub fn tiny_spec() -> Spec {
    Spec::load(&crate::run::repo().join("model-spec/tiny.yaml"))
        .expect("shipped tiny spec is valid")
}
