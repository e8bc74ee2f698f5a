//! The HFD block's ONNX graph, run by tract, against model-spec/README.md §5 computed directly from its
//! window formulas, and the law IDWT∘DWT = identity (identity weights double the features).

use std::collections::BTreeMap;
use std::sync::Arc;

use checkpoint::{write, Tensor as CkTensor};
use dlvp_exporter::blocks::hfd;
use dlvp_exporter::graph::{DType, Dim, Graph};
use dlvp_exporter::{onnx, Checkpoint, Weights};
use dlvp_test_support::checkpoint;
use ndarray::{Array2, Array3, ArrayD, Axis, IxDyn};
use rstest::rstest;
use tract_onnx::prelude::*;

/// HFD weights for width `c` in scope `dlvp.hfd.1`: identity maps, or seeded random ones.
fn weights(dir: &std::path::Path, c: usize, identity: bool) -> Weights {
    let mut tensors = BTreeMap::new();
    for (i, part) in ["in_proj", "low", "high"].iter().enumerate() {
        let weight = if identity {
            let eye: Vec<f32> = (0..c * c)
                .map(|k| if k / c == k % c { 1.0 } else { 0.0 })
                .collect();
            CkTensor::f32(&[c, c], &eye)
        } else {
            CkTensor::seeded(&[c, c], 10 + i as u64)
        };
        let bias = if identity {
            CkTensor::f32(&[c], &vec![0.0; c])
        } else {
            CkTensor::seeded(&[c], 20 + i as u64)
        };
        tensors.insert(format!("dlvp.hfd.1.{part}.weight"), weight);
        tensors.insert(format!("dlvp.hfd.1.{part}.bias"), bias);
    }
    let path = dir.join("hfd.safetensors");
    write(&path, &tensors, None);
    Arc::new(Checkpoint::open(&path).unwrap())
        .root()
        .pp("dlvp.hfd.1")
}

fn export(w: &Weights, grid: usize, c: usize) -> Vec<u8> {
    let mut g = Graph::new();
    let f = g.input(
        "features",
        DType::F32,
        vec![Dim::Batch, Dim::Fixed(grid * grid), Dim::Fixed(c)],
    );
    let out = g.scoped("hfd.1", |g| hfd::build(g, w, &f, grid)).unwrap();
    g.output("refined", &out);
    onnx::to_bytes(&g, "hfd")
}

fn run_tract(bytes: &[u8], input: &ArrayD<f32>) -> ArrayD<f32> {
    let model = tract_onnx::onnx()
        .model_for_read(&mut &bytes[..])
        .unwrap()
        .with_input_fact(0, f32::fact(input.shape()).into())
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    let out = model
        .run(tvec!(Tensor::from(input.clone()).into()))
        .unwrap();
    out[0].to_plain_array_view::<f32>().unwrap().to_owned()
}

fn linear(x: &Array2<f64>, w: &ArrayD<f32>, b: &ArrayD<f32>) -> Array2<f64> {
    let w = w
        .mapv(f64::from)
        .into_dimensionality::<ndarray::Ix2>()
        .unwrap();
    let b = b
        .mapv(f64::from)
        .into_dimensionality::<ndarray::Ix1>()
        .unwrap();
    x.dot(&w.t()) + &b
}

/// §5 for one image, straight from the window formulas, in f64. `f` is [N, C].
fn hfd_direct(f: &Array2<f64>, w: &Weights, grid: usize) -> Array2<f64> {
    let c = f.ncols();
    let get = |part: &str, name: &str, shape: &[usize]| w.pp(part).get(name, shape).unwrap();
    let ft = linear(
        f,
        &get("in_proj", "weight", &[c, c]),
        &get("in_proj", "bias", &[c]),
    );
    let even = grid + grid % 2;
    let at = |y: usize, x: usize, ch: usize| {
        if y < grid && x < grid {
            ft[[y * grid + x, ch]]
        } else {
            0.0
        }
    };
    let half = even / 2;
    // bands[band] is [h*h, C]
    let mut bands = vec![Array2::<f64>::zeros((half * half, c)); 4];
    for i in 0..half {
        for j in 0..half {
            for ch in 0..c {
                let (a, b) = (at(2 * i, 2 * j, ch), at(2 * i, 2 * j + 1, ch));
                let (cc, d) = (at(2 * i + 1, 2 * j, ch), at(2 * i + 1, 2 * j + 1, ch));
                let p = i * half + j;
                bands[0][[p, ch]] = (a + b + cc + d) / 2.0;
                bands[1][[p, ch]] = (a + b - cc - d) / 2.0;
                bands[2][[p, ch]] = (a - b + cc - d) / 2.0;
                bands[3][[p, ch]] = (a - b - cc + d) / 2.0;
            }
        }
    }
    let (lw, lb) = (get("low", "weight", &[c, c]), get("low", "bias", &[c]));
    let (hw, hb) = (get("high", "weight", &[c, c]), get("high", "bias", &[c]));
    let mapped: Vec<Array2<f64>> = bands
        .iter()
        .enumerate()
        .map(|(k, band)| {
            if k == 0 {
                linear(band, &lw, &lb)
            } else {
                linear(band, &hw, &hb)
            }
        })
        .collect();
    let mut out = f.clone();
    for i in 0..half {
        for j in 0..half {
            let p = i * half + j;
            for ch in 0..c {
                let (ll, lh, hl, hh) = (
                    mapped[0][[p, ch]],
                    mapped[1][[p, ch]],
                    mapped[2][[p, ch]],
                    mapped[3][[p, ch]],
                );
                let window = [
                    (2 * i, 2 * j, (ll + lh + hl + hh) / 2.0),
                    (2 * i, 2 * j + 1, (ll + lh - hl - hh) / 2.0),
                    (2 * i + 1, 2 * j, (ll - lh + hl - hh) / 2.0),
                    (2 * i + 1, 2 * j + 1, (ll - lh - hl + hh) / 2.0),
                ];
                for (y, x, v) in window {
                    if y < grid && x < grid {
                        out[[y * grid + x, ch]] += v;
                    }
                }
            }
        }
    }
    out
}

fn features(batch: usize, n: usize, c: usize) -> ArrayD<f32> {
    let t = CkTensor::seeded(&[batch, n, c], 99);
    let values: Vec<f32> = t
        .bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) * 10.0)
        .collect();
    ArrayD::from_shape_vec(IxDyn(&[batch, n, c]), values).unwrap()
}

#[rstest]
#[case::odd_grid(7, 6)]
#[case::even_grid(8, 4)]
#[case::smallest_odd_grid(1, 3)]
fn identity_weights_double_the_features(#[case] grid: usize, #[case] c: usize) {
    let dir = tempfile::tempdir().unwrap();
    let w = weights(dir.path(), c, true);
    let input = features(2, grid * grid, c);
    let out = run_tract(&export(&w, grid, c), &input);
    let expected = input.mapv(|v| 2.0 * v);
    let err = (&out - &expected)
        .mapv(f32::abs)
        .fold(0.0f32, |m, &v| m.max(v));
    assert!(err < 1e-5, "max error {err}");
}

#[rstest]
#[case::odd_grid(7, 6)]
#[case::even_grid(6, 5)]
fn random_weights_match_the_window_formulas(#[case] grid: usize, #[case] c: usize) {
    let dir = tempfile::tempdir().unwrap();
    let w = weights(dir.path(), c, false);
    let input = features(3, grid * grid, c);
    let out = run_tract(&export(&w, grid, c), &input);
    for b in 0..3 {
        let f: Array3<f32> = input.clone().into_dimensionality().unwrap();
        let expected = hfd_direct(&f.index_axis(Axis(0), b).mapv(f64::from), &w, grid);
        let got = out.index_axis(Axis(0), b).mapv(f64::from);
        let err = (&got - &expected.into_dyn())
            .mapv(f64::abs)
            .fold(0.0f64, |m, &v| m.max(v));
        assert!(err < 1e-4, "image {b}: max error {err}");
    }
}

#[test]
fn the_same_weights_export_byte_identical_graphs() {
    let dir = tempfile::tempdir().unwrap();
    let w = weights(dir.path(), 4, false);
    assert_eq!(export(&w, 5, 4), export(&w, 5, 4));
}

#[test]
fn the_dwt_and_idwt_share_one_kernel_constant() {
    let dir = tempfile::tempdir().unwrap();
    let w = weights(dir.path(), 4, false);
    let mut g = Graph::new();
    let f = g.input(
        "features",
        DType::F32,
        vec![Dim::Batch, Dim::Fixed(25), Dim::Fixed(4)],
    );
    g.scoped("hfd.1", |g| hfd::build(g, &w, &f, 5)).unwrap();
    let haar: Vec<_> = g
        .initializers
        .iter()
        .filter(|i| i.dims == [16, 1, 2, 2])
        .collect();
    assert_eq!(haar.len(), 1);
    let users = g
        .nodes
        .iter()
        .filter(|n| n.inputs.contains(&haar[0].name))
        .map(|n| n.op)
        .collect::<Vec<_>>();
    assert_eq!(users, ["Conv", "ConvTranspose"]);
}

#[test]
fn a_mis_shaped_weight_fails_naming_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let w = weights(dir.path(), 4, false);
    let mut g = Graph::new();
    let f = g.input(
        "features",
        DType::F32,
        vec![Dim::Batch, Dim::Fixed(25), Dim::Fixed(5)],
    );
    let err = g.scoped("hfd.1", |g| hfd::build(g, &w, &f, 5)).unwrap_err();
    assert!(
        err.to_string()
            .contains("tensor `dlvp.hfd.1.in_proj.weight` has shape [4, 4], expected [5, 5]"),
        "{err}"
    );
}

#[test]
fn a_bad_node_names_its_scope() {
    let mut g = Graph::new();
    let a = g.input(
        "a",
        DType::F32,
        vec![Dim::Batch, Dim::Fixed(3), Dim::Fixed(4)],
    );
    let b = g.input("b", DType::F32, vec![Dim::Fixed(5), Dim::Fixed(2)]);
    let err = g
        .scoped("visual", |g| {
            g.scoped("blocks.7", |g| g.scoped("attn", |g| g.matmul(&a, &b)))
        })
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "visual/blocks.7/attn: MatMul: inner dimensions differ: [B, 3, 4] × [5, 2]"
    );
}
