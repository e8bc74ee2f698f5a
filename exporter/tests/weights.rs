//! The safetensors reader: dtypes, scopes, the ledger, and every damaged layout it must refuse.

use std::collections::BTreeMap;
use std::sync::Arc;

use checkpoint::{dlvp_metadata, tensors_for, tiny_spec, write, write_raw, Tensor};
use dlvp_exporter::manifest::ExpectedShape;
use dlvp_exporter::weights::{Checkpoint, WeightsError};
use dlvp_exporter::{check_checkpoint, Problem};
use dlvp_test_support::checkpoint;
use proptest::prelude::*;
use rstest::rstest;

fn open_single(tensor: Tensor) -> (tempfile::TempDir, Checkpoint) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    write(&path, &BTreeMap::from([("x".to_string(), tensor)]), None);
    let ckpt = Checkpoint::open(&path).unwrap();
    (dir, ckpt)
}

#[rstest]
#[case::f32(Tensor::f32(&[2, 3], &[0.5, -1.25, 3.0, 1e-8, -0.0, 65504.0]))]
#[case::f16(Tensor::f16(&[2, 3], &[0.5, -1.25, 3.0, 1e-8, -0.0, 65504.0]))]
#[case::bf16(Tensor::bf16(&[2, 3], &[0.5, -1.25, 3.0, 1e-8, -0.0, 65504.0]))]
fn float_dtypes_read_as_f32(#[case] tensor: Tensor) {
    let dtype = tensor.dtype;
    let (_dir, ckpt) = open_single(tensor);
    let values = ckpt.read_f32("x").unwrap();
    // Each value goes through its storage type exactly once.
    let expected: Vec<f32> = [0.5f32, -1.25, 3.0, 1e-8, -0.0, 65504.0]
        .iter()
        .map(|&v| match dtype {
            safetensors::Dtype::F16 => half::f16::from_f32(v).to_f32(),
            safetensors::Dtype::BF16 => half::bf16::from_f32(v).to_f32(),
            _ => v,
        })
        .collect();
    assert_eq!(values, expected);
}

proptest! {
    #[test]
    fn f16_values_round_trip_exactly(bits in proptest::collection::vec(any::<u16>(), 1..64)) {
        let values: Vec<f32> = bits.iter().map(|&b| half::f16::from_bits(b).to_f32()).filter(|v| v.is_finite()).collect();
        prop_assume!(!values.is_empty());
        let (_dir, ckpt) = open_single(Tensor::f16(&[values.len()], &values));
        prop_assert_eq!(ckpt.read_f32("x").unwrap(), values);
    }
}

#[rstest]
#[case::nan(f32::NAN, 1, 0)]
#[case::inf(f32::INFINITY, 0, 1)]
#[case::neg_inf(f32::NEG_INFINITY, 0, 1)]
fn non_finite_values_are_refused_by_name(
    #[case] bad: f32,
    #[case] nans: usize,
    #[case] infs: usize,
) {
    let (_dir, ckpt) = open_single(Tensor::f32(&[4], &[1.0, 2.0, bad, 4.0]));
    let err = ckpt.read_f32("x").unwrap_err();
    let WeightsError::NonFinite {
        ref tensor,
        nan,
        inf,
        first_index,
        ..
    } = err
    else {
        panic!("{err:?}")
    };
    assert_eq!(
        (tensor.as_str(), nan, inf, first_index),
        ("x", nans, infs, 2)
    );
    assert!(err.to_string().contains("tensor `x` holds"), "{err}");
}

#[test]
fn scopes_prefix_names_and_share_one_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    let tensors = BTreeMap::from([
        ("visual.ln_pre.weight".to_string(), Tensor::seeded(&[4], 1)),
        ("visual.ln_pre.bias".to_string(), Tensor::seeded(&[4], 2)),
        ("visual.proj".to_string(), Tensor::seeded(&[4, 2], 3)),
        ("spare".to_string(), Tensor::seeded(&[1], 4)),
    ]);
    write(&path, &tensors, None);
    let root = Arc::new(Checkpoint::open(&path).unwrap()).root();
    let visual = root.pp("visual");
    let ln_pre = visual.pp("ln_pre");
    assert_eq!(ln_pre.get("weight", &[4]).unwrap().shape(), &[4]);
    assert_eq!(ln_pre.full_name("bias"), "visual.ln_pre.bias");

    let err = visual.get("proj", &[2, 4]).unwrap_err();
    assert!(
        err.to_string()
            .contains("tensor `visual.proj` has shape [4, 2], expected [2, 4]"),
        "{err}"
    );
    let err = visual.pp("ln_post").get("weight", &[4]).unwrap_err();
    assert!(
        err.to_string()
            .contains("tensor `visual.ln_post.weight` is missing"),
        "{err}"
    );

    let ledger = root.ledger();
    assert_eq!(ledger.used, ["visual.ln_pre.weight"]);
    assert_eq!(
        ledger.missing,
        [(
            "visual.ln_post.weight".to_string(),
            ExpectedShape::Exact(vec![4])
        )]
    );
    assert_eq!(
        ledger.mis_shaped,
        [(
            "visual.proj".to_string(),
            vec![4, 2],
            ExpectedShape::Exact(vec![2, 4])
        )]
    );
    assert_eq!(ledger.unused, ["spare", "visual.ln_pre.bias"]);
}

#[test]
fn metadata_format_and_spec_are_read() {
    let spec = tiny_spec();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    write(&path, &tensors_for(&spec), Some(dlvp_metadata(&spec)));
    let ckpt = Checkpoint::open(&path).unwrap();
    assert_eq!(ckpt.format(), Some("dlvp-clip/1"));
    assert_eq!(ckpt.embedded_spec().unwrap(), Some(spec));
}

#[test]
fn a_foreign_format_tag_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    let metadata =
        std::collections::HashMap::from([("format".to_string(), "dlvp-clip/9".to_string())]);
    write(
        &path,
        &BTreeMap::from([("x".to_string(), Tensor::seeded(&[1], 0))]),
        Some(metadata),
    );
    let err = Checkpoint::open(&path).unwrap_err();
    assert!(
        err.to_string()
            .contains("metadata `format` is \"dlvp-clip/9\"; this version reads \"dlvp-clip/1\""),
        "{err}"
    );
}

#[test]
fn an_invalid_embedded_spec_names_the_metadata_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    let metadata =
        std::collections::HashMap::from([("spec".to_string(), "image_size: 57\n".to_string())]);
    write(
        &path,
        &BTreeMap::from([("x".to_string(), Tensor::seeded(&[1], 0))]),
        Some(metadata),
    );
    let err = Checkpoint::open(&path)
        .unwrap()
        .embedded_spec()
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("(metadata `spec`): image_size: 57 is not a multiple"),
        "{err}"
    );
}

#[test]
fn a_complete_checkpoint_checks_clean() {
    let spec = tiny_spec();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    let mut tensors = tensors_for(&spec);
    // A checkpoint trained at another resolution is fine: the exporter resizes the grid.
    tensors.insert(
        "visual.positional_embedding".into(),
        Tensor::seeded(&[5 * 5 + 1, 64], 9),
    );
    write(&path, &tensors, None);
    let report = check_checkpoint(Arc::new(Checkpoint::open(&path).unwrap()), &spec).unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(report.tensors, tensors.len());
    assert_eq!(report.matched, tensors.len() - 1); // all but logit_scale, which the graph ignores
}

#[test]
fn the_check_reports_every_problem_by_name() {
    let spec = tiny_spec();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    let mut tensors = tensors_for(&spec);
    tensors.remove("dlvp.hfd.3.low.bias");
    tensors.insert("dlvp.extra.weight".into(), Tensor::seeded(&[3], 0));
    tensors.insert("visual.proj".into(), Tensor::seeded(&[64, 31], 0));
    tensors.insert(
        "ln_final.bias".into(),
        Tensor::f32(&[2, 16], &[f32::NAN; 32]),
    );
    tensors.insert(
        "positional_embedding".into(),
        Tensor {
            dtype: safetensors::Dtype::I32,
            shape: vec![77, 32],
            bytes: vec![0; 77 * 32 * 4],
        },
    );
    tensors.insert(
        "visual.positional_embedding".into(),
        Tensor::seeded(&[51, 64], 0),
    );
    write(&path, &tensors, None);
    let report = check_checkpoint(Arc::new(Checkpoint::open(&path).unwrap()), &spec).unwrap();
    let mut found: Vec<(String, String)> = report
        .problems
        .iter()
        .map(|p| {
            (
                p.tensor().to_string(),
                serde_json::to_value(p).unwrap()["kind"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    found.sort();
    let expected = [
        ("dlvp.extra.weight", "unused"),
        ("dlvp.hfd.3.low.bias", "missing"),
        ("ln_final.bias", "shape"),
        ("positional_embedding", "dtype"),
        ("visual.positional_embedding", "shape"),
        ("visual.proj", "shape"),
    ];
    assert_eq!(found, expected.map(|(a, b)| (a.to_string(), b.to_string())));
    assert!(report.problems.contains(&Problem::Shape {
        tensor: "visual.proj".into(),
        found: vec![64, 31],
        expected: "[64, 32]".into()
    }));
}

#[test]
fn non_finite_values_are_a_check_problem() {
    let spec = tiny_spec();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    let mut tensors = tensors_for(&spec);
    let mut values = vec![0.0f32; 64];
    values[7] = f32::INFINITY;
    tensors.insert("visual.ln_post.bias".into(), Tensor::f32(&[64], &values));
    write(&path, &tensors, None);
    let report = check_checkpoint(Arc::new(Checkpoint::open(&path).unwrap()), &spec).unwrap();
    assert_eq!(
        report.problems,
        [Problem::NonFinite {
            tensor: "visual.ln_post.bias".into(),
            nan: 0,
            inf: 1
        }]
    );
}

/// Layouts no correct writer makes; each must fail at open, naming what is wrong.
#[rstest]
#[case::header_past_end(
    r#"{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
    4,
    Some(1000),
    "header length 1000 runs past the end"
)]
#[case::not_json("{not json", 0, None, "safetensors header is not valid JSON")]
#[case::header_not_an_object("[1, 2]", 0, None, "safetensors header is not valid JSON")]
#[case::offsets_past_end(
    r#"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
    4,
    None,
    "tensor `x` ends at byte 8 of a 4-byte data section"
)]
#[case::overlap(r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#, 12, None, "tensors `a` and `b` overlap")]
#[case::hole(
    r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
    8,
    None,
    "4 bytes that no tensor covers, starting at byte 0"
)]
#[case::trailing_bytes(
    r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
    8,
    None,
    "4 bytes that no tensor covers, starting at byte 4"
)]
#[case::offsets_reversed(
    r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}"#,
    4,
    None,
    "tensor `a`: data_offsets [4, 0] end before they begin"
)]
#[case::size_disagrees_with_shape(
    r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#,
    8,
    None,
    "tensor `a`: shape [3] of F32 needs 12 bytes but data_offsets [0, 8] hold 8"
)]
#[case::unknown_dtype(
    r#"{"a":{"dtype":"Q4","shape":[1],"data_offsets":[0,1]}}"#,
    1,
    None,
    "tensor `a`: unknown dtype \"Q4\""
)]
#[case::missing_offsets(
    r#"{"a":{"dtype":"F32","shape":[1]}}"#,
    4,
    None,
    "tensor `a`: malformed entry: missing field `data_offsets`"
)]
#[case::shape_overflow(
    r#"{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}"#,
    4,
    None,
    "needs more than usize::MAX bytes"
)]
#[case::bad_metadata(
    r#"{"__metadata__":{"format":3}}"#,
    0,
    None,
    "`__metadata__` must map strings to strings"
)]
fn damaged_layouts_are_refused(
    #[case] header: &str,
    #[case] data_len: usize,
    #[case] claimed_len: Option<u64>,
    #[case] expected: &str,
) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.safetensors");
    write_raw(&path, header, &vec![0u8; data_len]);
    if let Some(len) = claimed_len {
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[..8].copy_from_slice(&len.to_le_bytes());
        std::fs::write(&path, bytes).unwrap();
    }
    let err = Checkpoint::open(&path).unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with(&path.display().to_string()),
        "{message}"
    );
    assert!(
        message.contains(expected),
        "expected {expected:?} in {message:?}"
    );
}

#[rstest]
#[case::empty(0)]
#[case::seven_bytes(7)]
fn files_shorter_than_the_length_prefix_are_refused(#[case] len: usize) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("short.safetensors");
    std::fs::write(&path, vec![0u8; len]).unwrap();
    let err = Checkpoint::open(&path).unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("{len} bytes, fewer than the 8-byte header length")),
        "{err}"
    );
}

#[test]
fn a_truncated_checkpoint_is_refused() {
    let spec = tiny_spec();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    write(&path, &tensors_for(&spec), Some(dlvp_metadata(&spec)));
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
    let err = Checkpoint::open(&path).unwrap_err();
    assert!(matches!(err, WeightsError::PastEnd { .. }), "{err:?}");
    assert!(err.to_string().contains("(truncated file?)"), "{err}");
}

#[test]
fn a_huge_header_length_is_refused_before_reading_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    let mut bytes = u64::MAX.to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    std::fs::write(&path, bytes).unwrap();
    let err = Checkpoint::open(&path).unwrap_err();
    assert!(
        err.to_string().contains("exceeds the 100000000-byte limit"),
        "{err}"
    );
}

#[test]
fn an_unsupported_dtype_fails_when_read_naming_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    write_raw(
        &path,
        r#"{"ids":{"dtype":"I64","shape":[2],"data_offsets":[0,16]}}"#,
        &[0u8; 16],
    );
    let ckpt = Checkpoint::open(&path).unwrap();
    let err = ckpt.read_f32("ids").unwrap_err();
    assert!(
        err.to_string()
            .contains("tensor `ids` has dtype I64; only F32, F16 and BF16 are supported"),
        "{err}"
    );
}

proptest! {
    /// Whatever the bytes, opening either succeeds or returns an error — never a panic.
    #[test]
    fn arbitrary_bytes_never_panic(header in ".{0,200}", data in proptest::collection::vec(any::<u8>(), 0..64), len_delta in -8i64..8) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fuzz.safetensors");
        write_raw(&path, &header, &data);
        let mut bytes = std::fs::read(&path).unwrap();
        let len = (header.len() as i64 + len_delta).max(0) as u64;
        bytes[..8].copy_from_slice(&len.to_le_bytes());
        std::fs::write(&path, bytes).unwrap();
        if let Ok(c) = Checkpoint::open(&path) {
            for k in c.tensors().keys() {
                let _ = c.read_f32(k);
            }
        }
    }
}
