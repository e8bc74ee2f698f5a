//! The graph builder's ops one at a time: each op's inferred shape, and its value when the graph
//! runs on tract, against a hand-computed expectation; the passes (`fp16`, the LayerNorm
//! decomposition) against the graph they rewrite; and every input a caller can get wrong as a
//! `GraphError` naming the scope and op — never a panic.

use dlvp_contract::graph::META_PRECISION;
use dlvp_exporter::graph::{decompose, fp16, DType, Dim, Graph, GraphError, Wire};
use dlvp_exporter::onnx;
use ndarray::{arr1, arr2, Array, ArrayD, IxDyn, ShapeBuilder};
use proptest::prelude::*;
use tract_onnx::prelude::*;

fn fixed(dims: &[usize]) -> Vec<Dim> {
    dims.iter().map(|&d| Dim::Fixed(d)).collect()
}

fn array(dims: &[usize], values: &[f32]) -> ArrayD<f32> {
    ArrayD::from_shape_vec(IxDyn(dims), values.to_vec()).unwrap()
}

/// Runs `g` on tract with `inputs` (f32, in the graph's input order); every output as f32
/// (integer outputs converted).
fn run(g: &Graph, inputs: &[ArrayD<f32>]) -> Vec<ArrayD<f32>> {
    let bytes = onnx::to_bytes(g, "ops");
    let mut model = tract_onnx::onnx().model_for_read(&mut &bytes[..]).unwrap();
    for (i, x) in inputs.iter().enumerate() {
        model = model
            .with_input_fact(i, f32::fact(x.shape()).into())
            .unwrap();
    }
    let plan = model.into_optimized().unwrap().into_runnable().unwrap();
    let inputs: TVec<TValue> = inputs
        .iter()
        .map(|x| Tensor::from(x.clone()).into())
        .collect();
    plan.run(inputs)
        .unwrap()
        .iter()
        .map(|t| {
            t.cast_to::<f32>()
                .unwrap()
                .to_plain_array_view::<f32>()
                .unwrap()
                .to_owned()
        })
        .collect()
}

fn assert_close(got: &ArrayD<f32>, want: &ArrayD<f32>, tolerance: f32) {
    assert_eq!(got.shape(), want.shape());
    let diff = got
        .iter()
        .zip(want.iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(diff <= tolerance, "{got} vs {want}: {diff}");
}

/// A graph with one f32 input of `dims`, `op` applied, its result the output; checks the
/// inferred shape and the value on `x`.
fn check_unary(
    dims: &[usize],
    x: &[f32],
    op: impl FnOnce(&mut Graph, &Wire) -> Result<Wire, GraphError>,
    want_dims: &[usize],
    want: &[f32],
) {
    let mut g = Graph::new();
    let input = g.input("x", DType::F32, fixed(dims));
    let y = op(&mut g, &input).unwrap();
    assert_eq!(y.shape, fixed(want_dims), "inferred shape");
    g.output("y", &y);
    let out = run(&g, &[array(dims, x)]);
    assert_close(&out[0], &array(want_dims, want), 1e-6);
}

#[test]
fn elementwise_ops_broadcast_like_numpy() {
    let mut g = Graph::new();
    let a = g.input("a", DType::F32, fixed(&[2, 3]));
    let b = g.input("b", DType::F32, fixed(&[3]));
    let ops = [
        g.add(&a, &b).unwrap(),
        g.sub(&a, &b).unwrap(),
        g.mul(&a, &b).unwrap(),
        g.div(&a, &b).unwrap(),
    ];
    for (i, y) in ops.iter().enumerate() {
        assert_eq!(y.shape, fixed(&[2, 3]));
        g.output(&format!("y{i}"), y);
    }
    let out = run(
        &g,
        &[
            array(&[2, 3], &[1., 2., 3., 4., 5., 6.]),
            array(&[3], &[1., 2., 4.]),
        ],
    );
    assert_close(&out[0], &array(&[2, 3], &[2., 4., 7., 5., 7., 10.]), 0.0);
    assert_close(&out[1], &array(&[2, 3], &[0., 0., -1., 3., 3., 2.]), 0.0);
    assert_close(&out[2], &array(&[2, 3], &[1., 4., 12., 4., 10., 24.]), 0.0);
    assert_close(&out[3], &array(&[2, 3], &[1., 1., 0.75, 4., 2.5, 1.5]), 0.0);
}

#[test]
fn matmul_and_linear_multiply_by_hand() {
    let mut g = Graph::new();
    let x = g.input("x", DType::F32, fixed(&[1, 2]));
    // A PyTorch Linear weight [out = 3, in = 2].
    let weight = arr2(&[[1.0f32, -1.0], [0.0, 1.0], [2.0, 3.0]]).into_dyn();
    let bias = arr1(&[0.5f32, -1.0, 2.0]).into_dyn();
    let y = g.linear(&x, &weight, Some(&bias)).unwrap();
    assert_eq!(y.shape, fixed(&[1, 3]));
    g.output("y", &y);
    // y = x·Wᵀ + b with x = [2, 3]: W rows are [1, −1], [0, 1], [2, 3].
    let out = run(&g, &[array(&[1, 2], &[2., 3.])]);
    assert_close(&out[0], &array(&[1, 3], &[-0.5, 2.0, 15.0]), 1e-6);

    check_unary(
        &[2, 2],
        &[1., 2., 3., 4.],
        |g, x| {
            let m = g.constant_f32("m", &[2, 1], &[1., -1.]);
            g.matmul(x, &m)
        },
        &[2, 1],
        &[-1., -1.],
    );
}

#[test]
fn a_linear_weight_in_any_layout_is_read_by_index() {
    let mut g = Graph::new();
    let x = g.input("x", DType::F32, fixed(&[1, 2]));
    // [out = 2, in = 2] as a Fortran-order array: not standard layout.
    let weight = Array::from_shape_vec((2, 2).f(), vec![1.0f32, 3.0, 2.0, 4.0])
        .unwrap()
        .into_dyn();
    assert!(
        weight.as_slice().is_none(),
        "the test needs a non-standard layout"
    );
    let bias = Array::from_shape_vec((2,).f(), vec![1.0f32, -1.0])
        .unwrap()
        .into_dyn();
    let y = g.linear(&x, &weight, Some(&bias)).unwrap();
    g.output("y", &y);
    // W = [[1, 2], [3, 4]]; x = [1, 1] → [3 + 1, 7 − 1].
    let out = run(&g, &[array(&[1, 2], &[1., 1.])]);
    assert_close(&out[0], &array(&[1, 2], &[4., 6.]), 0.0);

    let mut g = Graph::new();
    let x = g.input("x", DType::F32, fixed(&[1, 2]));
    let gamma = Array::from_shape_vec((2,).f(), vec![2.0f32, 1.0])
        .unwrap()
        .into_dyn();
    let y = g
        .layer_norm(&x, &gamma, &arr1(&[0.0f32, 0.0]).into_dyn())
        .unwrap();
    g.output("y", &y);
    let out = run(&g, &[array(&[1, 2], &[-1., 1.])]);
    // Normalised [−1, 1] (ε negligible at this tolerance), scaled by [2, 1].
    assert_close(&out[0], &array(&[1, 2], &[-2., 1.]), 1e-4);
}

#[test]
fn shape_ops_move_elements_as_written() {
    let x: Vec<f32> = (0..6).map(|v| v as f32).collect();
    check_unary(
        &[2, 3],
        &x,
        |g, x| g.transpose(x, &[1, 0]),
        &[3, 2],
        &[0., 3., 1., 4., 2., 5.],
    );
    check_unary(
        &[2, 3],
        &x,
        |g, x| g.reshape(x, &fixed(&[3, 2])),
        &[3, 2],
        &x,
    );
    check_unary(
        &[2, 3],
        &x,
        |g, x| g.slice(x, 1, 1, 3),
        &[2, 2],
        &[1., 2., 4., 5.],
    );
    check_unary(&[2, 3], &x, |g, x| g.unsqueeze(x, 1), &[2, 1, 3], &x);
    check_unary(
        &[2, 3],
        &x,
        |g, x| g.concat(&[x, x], 0),
        &[4, 3],
        &[0., 1., 2., 3., 4., 5., 0., 1., 2., 3., 4., 5.],
    );
    check_unary(
        &[1, 1, 2, 2],
        &[1., 2., 3., 4.],
        |g, x| g.pad_end_2d(x, 1, 1),
        &[1, 1, 3, 3],
        &[1., 2., 0., 3., 4., 0., 0., 0., 0.],
    );
    check_unary(
        &[1, 4],
        &[1., 2., 3., 4.],
        |g, x| g.pad(x, &[0, 2], &[0, 1], "reflect"),
        &[1, 7],
        &[3., 2., 1., 2., 3., 4., 3.],
    );
}

#[test]
fn reductions_softmax_and_normalisation_by_hand() {
    let x = [1., 2., 3., 4.];
    check_unary(
        &[2, 2],
        &x,
        |g, x| g.reduce_mean(x, &[-1], false),
        &[2],
        &[1.5, 3.5],
    );
    check_unary(
        &[2, 2],
        &x,
        |g, x| g.reduce_max(x, &[0], true),
        &[1, 2],
        &[3., 4.],
    );
    check_unary(
        &[1, 2],
        &[3., 4.],
        |g, x| g.l2_normalize(x),
        &[1, 2],
        &[0.6, 0.8],
    );
    let e = 1.0f32.exp();
    check_unary(
        &[1, 2],
        &[0., 1.],
        |g, x| g.softmax(x, -1),
        &[1, 2],
        &[1. / (1. + e), e / (1. + e)],
    );
    check_unary(
        &[1, 2],
        &[0., 0.],
        |g, x| g.sigmoid(x),
        &[1, 2],
        &[0.5, 0.5],
    );
    check_unary(&[1, 2], &[0., 0.], |g, x| g.erf(x), &[1, 2], &[0., 0.]);
    check_unary(
        &[1, 2],
        &[1., 2.],
        |g, x| g.scale(x, 3.0),
        &[1, 2],
        &[3., 6.],
    );
    check_unary(
        &[1, 2],
        &[1., 2.],
        |g, x| g.offset(x, -1.0),
        &[1, 2],
        &[0., 1.],
    );
}

#[test]
fn topk_equal_and_cast_by_hand() {
    let mut g = Graph::new();
    let x = g.input("x", DType::F32, fixed(&[1, 4]));
    let (values, indices) = g.topk(&x, 2).unwrap();
    assert_eq!(values.shape, fixed(&[1, 2]));
    assert_eq!(indices.dtype, DType::I64);
    let two = g.constant_f32("two", &[], &[2.0]);
    let eq = g.equal(&x, &two).unwrap();
    let eq = g.cast(&eq, DType::F32).unwrap();
    g.output("values", &values);
    g.output("indices", &indices);
    g.output("eq", &eq);
    let out = run(&g, &[array(&[1, 4], &[2., 5., 2., 1.])]);
    assert_close(&out[0], &array(&[1, 2], &[5., 2.]), 0.0);
    // The tie between indices 0 and 2 goes to the lower index.
    assert_close(&out[1], &array(&[1, 2], &[1., 0.]), 0.0);
    assert_close(&out[2], &array(&[1, 4], &[1., 0., 1., 0.]), 0.0);
}

#[test]
fn convolutions_and_resize_by_hand() {
    // A 2×2 box filter with stride 2 is the mean times 4 of each block; its transpose spreads
    // each value back over a block.
    let x: Vec<f32> = (1..=16).map(|v| v as f32).collect();
    check_unary(
        &[1, 1, 4, 4],
        &x,
        |g, x| {
            let k = g.constant_f32("k", &[1, 1, 2, 2], &[1., 1., 1., 1.]);
            g.conv(x, &k, 2, 1)
        },
        &[1, 1, 2, 2],
        &[14., 22., 46., 54.],
    );
    check_unary(
        &[1, 1, 1, 2],
        &[1., 2.],
        |g, x| {
            let k = g.constant_f32("k", &[1, 1, 2, 2], &[1., 1., 1., 1.]);
            g.conv_transpose(x, &k, 2, 1)
        },
        &[1, 1, 2, 4],
        &[1., 1., 2., 2., 1., 1., 2., 2.],
    );
    // PyTorch's bilinear, align_corners=False, ×2.
    check_unary(
        &[1, 1, 2, 2],
        &[1., 2., 3., 4.],
        |g, x| g.resize_bilinear(x, 4, 4),
        &[1, 1, 4, 4],
        &[
            1., 1.25, 1.75, 2., 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25, 3.5, 3., 3.25, 3.75, 4.,
        ],
    );
}

/// Every input a caller can get wrong is an error naming the scope and the op.
#[test]
fn bad_shapes_axes_and_arguments_are_errors_not_panics() {
    let mut g = Graph::new();
    let x = g.input("x", DType::F32, fixed(&[2, 3]));
    let scalar = g.input("s", DType::F32, vec![]);
    let batched = g.input("b", DType::F32, vec![Dim::Batch, Dim::Fixed(3)]);
    let batch_last = g.input("t", DType::F32, vec![Dim::Fixed(3), Dim::Batch]);
    let image = g.input("i", DType::F32, fixed(&[1, 1, 4, 4]));
    let k = g.constant_f32("k", &[1, 1, 2, 2], &[1.; 4]);
    let zero_w = g.input("z", DType::F32, fixed(&[1, 1, 4, 0]));
    let errors: Vec<(&str, GraphError)> = g.scoped("block.3", |g| {
        vec![
            ("Slice", g.slice(&x, 5, 0, 1).unwrap_err()),
            ("Slice", g.slice(&x, 1, 2, 9).unwrap_err()),
            ("Concat", g.concat(&[&x, &x], 2).unwrap_err()),
            ("Concat", g.concat(&[], 0).unwrap_err()),
            ("Unsqueeze", g.unsqueeze(&x, 3).unwrap_err()),
            ("Resize", g.resize_bilinear(&x, 4, 4).unwrap_err()),
            ("Resize", g.resize_bilinear(&image, 6, 4).unwrap_err()),
            ("Resize", g.resize_bilinear(&zero_w, 4, 4).unwrap_err()),
            ("Conv", g.conv(&image, &k, 0, 1).unwrap_err()),
            ("Conv", g.conv(&image, &k, 1, 0).unwrap_err()),
            ("Conv", g.conv(&x, &k, 1, 1).unwrap_err()),
            (
                "ConvTranspose",
                g.conv_transpose(&zero_w, &k, 1, 1).unwrap_err(),
            ),
            ("TopK", g.topk(&scalar, 1).unwrap_err()),
            ("TopK", g.topk(&x, 4).unwrap_err()),
            ("TopK", g.topk(&batch_last, 1).unwrap_err()),
            ("Slice", g.slice(&batched, 0, 0, 1).unwrap_err()),
            ("Softmax", g.softmax(&x, -3).unwrap_err()),
            (
                "ReduceMean",
                g.reduce_mean(&scalar, &[0], false).unwrap_err(),
            ),
            ("Transpose", g.transpose(&x, &[0, 0]).unwrap_err()),
            ("Reshape", g.reshape(&x, &fixed(&[4, 2])).unwrap_err()),
            ("Pad", g.pad(&x, &[0], &[0, 1], "constant").unwrap_err()),
            ("Pad", g.pad(&x, &[0, 3], &[0, 0], "reflect").unwrap_err()),
            ("Pad", g.pad_end_2d(&batched, 1, 1).unwrap_err()),
            ("MatMul", g.matmul(&x, &x).unwrap_err()),
            ("MatMul", g.matmul(&scalar, &x).unwrap_err()),
            ("Add", g.add(&x, &image).unwrap_err()),
            (
                "Linear",
                g.linear(&x, &array(&[2, 2, 2], &[0.; 8]), None)
                    .unwrap_err(),
            ),
            (
                "Linear",
                g.linear(&scalar, &array(&[2, 3], &[0.; 6]), None)
                    .unwrap_err(),
            ),
            (
                "LayerNormalization",
                g.layer_norm(&x, &array(&[2], &[1.; 2]), &array(&[3], &[0.; 3]))
                    .unwrap_err(),
            ),
            (
                "LayerNormalization",
                g.layer_norm(&scalar, &array(&[1], &[1.]), &array(&[1], &[0.]))
                    .unwrap_err(),
            ),
        ]
    });
    for (op, e) in errors {
        assert_eq!((e.scope.as_str(), e.op.as_str()), ("block.3", op), "{e}");
        assert!(!e.message.is_empty());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Softmax rows sum to one, and transposing by a permutation and then its inverse is the
    /// identity, for any values and shapes.
    #[test]
    fn softmax_sums_to_one_and_transposes_invert(
        rows in 1usize..4,
        cols in 1usize..6,
        seed in any::<u64>(),
    ) {
        let n = rows * cols;
        let mut state = seed | 1;
        let values: Vec<f32> = (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 40) as f32 / (1u64 << 20) as f32 - 8.0
            })
            .collect();
        let mut g = Graph::new();
        let x = g.input("x", DType::F32, fixed(&[rows, cols]));
        let s = g.softmax(&x, -1).unwrap();
        let t = g.transpose(&x, &[1, 0]).unwrap();
        let back = g.transpose(&t, &[1, 0]).unwrap();
        g.output("s", &s);
        g.output("back", &back);
        let x = array(&[rows, cols], &values);
        let out = run(&g, std::slice::from_ref(&x));
        for row in out[0].rows() {
            prop_assert!((row.sum() - 1.0).abs() < 1e-5, "{row}");
        }
        prop_assert_eq!(&out[1], &x);
    }
}

/// A small graph with a Linear, a LayerNorm and a Softmax: what the passes rewrite.
fn block() -> Graph {
    let mut g = Graph::new();
    let x = g.input("x", DType::F32, vec![Dim::Batch, Dim::Fixed(4)]);
    let w = array(
        &[4, 4],
        &[
            0.5, -0.25, 0.1, 0.3, 0.2, 0.4, -0.6, 0.1, -0.3, 0.2, 0.7, -0.1, 0.05, 0.15, -0.2, 0.9,
        ],
    );
    let y = g
        .scoped("block", |g| -> Result<Wire, GraphError> {
            let y = g.linear(&x, &w, Some(&array(&[4], &[0.1, -0.2, 0.3, 0.0])))?;
            let y = g.layer_norm(
                &y,
                &array(&[4], &[1.0, 0.5, 2.0, 1.5]),
                &array(&[4], &[0.0, 0.1, -0.1, 0.2]),
            )?;
            g.softmax(&y, -1)
        })
        .unwrap();
    g.output("y", &y);
    g
}

fn block_input() -> ArrayD<f32> {
    array(&[2, 4], &[1.0, -2.0, 0.5, 3.0, -1.0, 0.25, 2.0, -0.5])
}

#[test]
fn fp16_stores_weights_in_f16_keeps_f32_io_and_stays_within_1e_2() {
    let reference = run(&block(), &[block_input()]);
    let mut g = block();
    fp16::convert(&mut g);
    assert!(g.initializers.iter().any(|t| t.dtype == DType::F16));
    assert_eq!(g.inputs[0].dtype, DType::F32);
    assert_eq!(g.outputs[0].dtype, DType::F32);
    assert!(g
        .metadata
        .contains(&(META_PRECISION.to_string(), "fp16".to_string())));
    // LayerNorm computes in f32: the f16 Linear's result is cast back up before it.
    let norm = g
        .nodes
        .iter()
        .find(|n| n.op == "LayerNormalization")
        .unwrap();
    let producer = g
        .nodes
        .iter()
        .find(|n| n.outputs.contains(&norm.inputs[0]))
        .unwrap();
    assert_eq!(producer.op, "Cast", "LayerNorm reads {}", norm.inputs[0]);
    let half = run(&g, &[block_input()]);
    assert_close(&half[0], &reference[0], 1e-2);
}

#[test]
fn the_layer_norm_decomposition_equals_the_fused_op() {
    let fused = run(&block(), &[block_input()]);
    let mut g = block();
    decompose::layer_norm(&mut g);
    assert!(g.nodes.iter().all(|n| n.op != "LayerNormalization"));
    for op in ["ReduceMean", "Sub", "Sqrt", "Div"] {
        assert!(g.nodes.iter().any(|n| n.op == op), "no {op}");
    }
    let decomposed = run(&g, &[block_input()]);
    assert_close(&decomposed[0], &fused[0], 1e-6);
    // After fp16 too, where LayerNorm stays f32.
    let mut g = block();
    fp16::convert(&mut g);
    decompose::layer_norm(&mut g);
    assert_close(&run(&g, &[block_input()])[0], &fused[0], 1e-2);
}
