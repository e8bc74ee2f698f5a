//! The spec parser and validator against the shipped specs and a table of bad ones.

use std::path::{Path, PathBuf};

use dlvp_contract::spec::{Activation, ResizeFilter, Spec, SpecError};
use rstest::rstest;

fn spec_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../model-spec")
}

fn tiny_text() -> String {
    std::fs::read_to_string(spec_dir().join("tiny.yaml")).unwrap()
}

#[rstest]
#[case("dlvp-clip-vit-l14-518.yaml", 37, 1024)]
#[case("dlvp-clip-vit-b16-224.yaml", 14, 768)]
#[case("tiny.yaml", 7, 64)]
fn shipped_specs_are_valid(#[case] file: &str, #[case] grid: usize, #[case] width: usize) {
    let spec = Spec::load(&spec_dir().join(file)).unwrap();
    assert_eq!(spec.grid(), grid);
    assert_eq!(spec.vision.width, width);
}

#[test]
fn the_paper_spec_is_the_default() {
    let paper = Spec::load(&spec_dir().join("dlvp-clip-vit-l14-518.yaml")).unwrap();
    let defaults = Spec {
        name: paper.name.clone(),
        ..Spec::default()
    };
    assert_eq!(paper, defaults);
    assert_eq!(paper.num_patches(), 1369);
}

#[test]
fn a_spec_lists_only_what_differs_from_the_defaults() {
    let spec = Spec::from_yaml("image_size: 224\nvision:\n  patch_size: 16\n", "inline").unwrap();
    assert_eq!(spec.grid(), 14);
    assert_eq!(spec.vision.width, 1024);
    assert_eq!(spec.text.act, Activation::Gelu);
}

#[rstest]
#[case("dlvp-clip-vit-l14-518.yaml")]
#[case("dlvp-clip-vit-b16-224.yaml")]
#[case("tiny.yaml")]
fn resolved_yaml_round_trips(#[case] file: &str) {
    let spec = Spec::load(&spec_dir().join(file)).unwrap();
    let again = Spec::from_yaml(&spec.to_yaml(), "resolved").unwrap();
    assert_eq!(spec, again);
}

/// Each case edits tiny.yaml once (`from` must occur in it) and names the field the error must cite.
#[rstest]
#[case::image_not_multiple_of_patch(
    "image_size: 56",
    "image_size: 60",
    "image_size: 60 is not a multiple of vision.patch_size 8"
)]
#[case::zero_patch(
    "patch_size: 8",
    "patch_size: 0",
    "vision.patch_size: must be at least 1"
)]
#[case::heads_do_not_divide(
    "heads: 4",
    "heads: 5",
    "vision.heads: 5 does not divide vision.width 64"
)]
#[case::text_heads_do_not_divide(
    "heads: 2",
    "heads: 3",
    "text.heads: 3 does not divide text.width 32"
)]
#[case::feature_layer_beyond_depth(
    "feature_layers: [1, 2, 3, 4]",
    "feature_layers: [1, 2, 5]",
    "feature_layers: layer 5 is outside 1..=4"
)]
#[case::feature_layer_zero(
    "feature_layers: [1, 2, 3, 4]",
    "feature_layers: [0, 2]",
    "feature_layers: layer 0 is outside"
)]
#[case::feature_layers_unsorted(
    "feature_layers: [1, 2, 3, 4]",
    "feature_layers: [2, 1]",
    "feature_layers: must be strictly increasing"
)]
#[case::feature_layers_empty(
    "feature_layers: [1, 2, 3, 4]",
    "feature_layers: []",
    "feature_layers: must list at least one layer"
)]
#[case::top_k_zero("top_k: 4", "top_k: 0", "slfs.top_k: must be at least 1")]
#[case::top_k_beyond_patches(
    "top_k: 4",
    "top_k: 50",
    "slfs.top_k: 50 exceeds the 49 patch tokens of a 7×7 grid"
)]
#[case::text_depth_beyond_layers(
    "text_depth: 2",
    "text_depth: 4",
    "mlop.text_depth: 4 exceeds text.layers 3"
)]
#[case::text_depth_zero(
    "text_depth: 2",
    "text_depth: 0",
    "mlop.text_depth: must be at least 1"
)]
#[case::static_layers_beyond_depth(
    "visual_static_layers: 2",
    "visual_static_layers: 5",
    "mlop.visual_static_layers: 5 exceeds vision.layers 4"
)]
#[case::empty_prompt_list(
    "anomaly: [\"damaged object.\"]",
    "anomaly: []",
    "prompts.anomaly: must list at least one template"
)]
#[case::blank_template(
    "anomaly: [\"damaged object.\"]",
    "anomaly: [\"  \"]",
    "prompts.anomaly: a template is empty"
)]
#[case::template_too_long_for_context(
    "context_length: 77",
    "context_length: 7",
    "prompts.normal: template \"flawless object.\" needs at least 8 tokens"
)]
#[case::negative_temperature(
    "temperature: 0.07",
    "temperature: -1",
    "temperature: must be a positive number, found -1"
)]
#[case::map_weight_out_of_range(
    "gaussian_sigma: 1.5",
    "gaussian_sigma: 1.5\nscore:\n  map_max_weight: 1.5",
    "score.map_max_weight: must lie in [0, 1], found 1.5"
)]
#[case::negative_sigma(
    "gaussian_sigma: 1.5",
    "gaussian_sigma: -2",
    "postprocess.gaussian_sigma: must be 0 (off) or a positive number"
)]
#[case::sigma_too_wide(
    "gaussian_sigma: 1.5",
    "gaussian_sigma: 20",
    "postprocess.gaussian_sigma: kernel radius ⌈4σ⌉ = 80 must be below image_size 56"
)]
#[case::fractional_mlp(
    "mlp_ratio: 4.0\n  act: gelu",
    "mlp_ratio: 4.01\n  act: gelu",
    "vision.mlp_ratio: vision.width 64 × 4.01"
)]
#[case::zero_std(
    "gaussian_sigma: 1.5",
    "gaussian_sigma: 1.5\npreprocess:\n  std: [0.2, 0.0, 0.2]",
    "preprocess.std: channel 1 is 0, expected a positive number"
)]
#[case::zero_embed_dim("embed_dim: 32", "embed_dim: 0", "embed_dim: must be at least 1")]
// Found by the spec fuzz target (tests/fuzz.rs): both overflowed in validation.
#[case::huge_top_k(
    "top_k: 4",
    "top_k: 18446744073709551615",
    "slfs.top_k: 18446744073709551615 exceeds the 49 patch tokens"
)]
#[case::huge_image_size(
    "image_size: 56",
    "image_size: 8589934592",
    "image_size: 8589934592 is above the largest supported, 8192"
)]
#[case::empty_name("name: dlvp-clip-tiny", "name: \"\"", "name: must not be empty")]
fn invalid_combinations_name_the_field(
    #[case] from: &str,
    #[case] to: &str,
    #[case] expected: &str,
) {
    let text = tiny_text();
    assert!(text.contains(from), "tiny.yaml no longer contains {from:?}");
    let err = Spec::from_yaml(&text.replacen(from, to, 1), "bad.yaml").unwrap_err();
    assert!(matches!(err, SpecError::Invalid { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.starts_with("bad.yaml: "), "{message}");
    assert!(
        message.contains(expected),
        "expected {expected:?} in {message:?}"
    );
}

/// Errors the parser itself raises: they carry the field and the line.
#[rstest]
#[case::unknown_field(
    "image_size: 56",
    "image_size: 56\nimage_sise: 56",
    "unknown field `image_sise`",
    "line 6"
)]
#[case::unknown_nested_field(
    "patch_size: 8",
    "patch_size: 8\n  patch_stride: 8",
    "vision: unknown field `patch_stride`",
    "line 8"
)]
#[case::wrong_type(
    "width: 64",
    "width: wide",
    "vision.width: invalid type: string \"wide\"",
    "line 8"
)]
#[case::negative_size(
    "image_size: 56",
    "image_size: -56",
    "image_size: invalid type: integer `-56`, expected usize",
    "line 5"
)]
#[case::bad_activation(
    "act: gelu",
    "act: relu",
    "vision.act: unknown variant `relu`",
    "line 12"
)]
#[case::bad_wavelet(
    "gaussian_sigma: 1.5",
    "gaussian_sigma: 1.5\nhfd:\n  wavelet: db4",
    "hfd.wavelet: unknown variant `db4`",
    "line 35"
)]
#[case::mean_of_two_channels(
    "gaussian_sigma: 1.5",
    "gaussian_sigma: 1.5\npreprocess:\n  mean: [0.5, 0.5]",
    "preprocess.mean: invalid length 2, expected an array of length 3",
    "line 35"
)]
#[case::yaml_syntax_error(
    "heads: 4",
    "heads: 4\n\tbad: 1",
    "found a tab character that violates indentation",
    "line 11"
)]
fn parse_errors_name_the_field_and_line(
    #[case] from: &str,
    #[case] to: &str,
    #[case] expected: &str,
    #[case] line: &str,
) {
    let text = tiny_text();
    assert!(text.contains(from), "tiny.yaml no longer contains {from:?}");
    let err = Spec::from_yaml(&text.replacen(from, to, 1), "bad.yaml").unwrap_err();
    assert!(matches!(err, SpecError::Parse { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains(expected),
        "expected {expected:?} in {message:?}"
    );
    assert!(message.contains(line), "expected {line:?} in {message:?}");
}

#[test]
fn several_problems_are_reported_together() {
    let text = tiny_text()
        .replacen("heads: 4", "heads: 5", 1)
        .replacen("top_k: 4", "top_k: 0", 1);
    let Err(SpecError::Invalid { problems, .. }) = Spec::from_yaml(&text, "bad.yaml") else {
        panic!("expected Invalid")
    };
    let fields: Vec<_> = problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(fields, ["vision.heads", "slfs.top_k"]);
}

#[rstest]
#[case::empty("")]
#[case::only_comments("# nothing here\n\n")]
fn an_empty_spec_is_an_error(#[case] text: &str) {
    let err = Spec::from_yaml(text, "empty.yaml").unwrap_err();
    assert_eq!(err.to_string(), "empty.yaml: the spec is empty");
}

#[test]
fn a_missing_file_is_named() {
    let err = Spec::load(Path::new("/nonexistent/spec.yaml")).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("/nonexistent/spec.yaml: cannot read spec"),
        "{err}"
    );
}

/// The resize filter's name (written into the graph's metadata) is its spelling in the spec.
#[rstest]
#[case(ResizeFilter::Bicubic)]
#[case(ResizeFilter::Bilinear)]
fn resize_filter_names_are_their_yaml_spelling(#[case] filter: ResizeFilter) {
    assert_eq!(
        serde_yaml::to_string(&filter).unwrap().trim(),
        filter.name()
    );
}
