//! The Rust tokenizer against the reference's (open_clip's) token ids in fixtures/tokens.json.

use std::path::Path;

use dlvp_exporter::tokenize::{template_ids, tokenize_prompts};
use dlvp_exporter::Spec;
use instant_clip_tokenizer::Tokenizer;

fn golden() -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/tokens.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn every_golden_template_tokenizes_as_the_reference_does() {
    let tokenizer = Tokenizer::new();
    let golden = golden();
    let mut checked = 0;
    for (spec_name, entry) in golden.as_object().unwrap() {
        let top_k = entry["top_k"].as_u64().unwrap() as usize;
        for (template, ids) in entry["templates"].as_object().unwrap() {
            let expected: Vec<u32> = ids
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect();
            assert_eq!(
                template_ids(&tokenizer, top_k, template),
                expected,
                "{spec_name}: {template:?}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} templates in the golden file");
}

#[test]
fn shipped_specs_tokenize_padded_with_the_eot_position() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../model-spec");
    let spec = Spec::load(&dir.join("tiny.yaml")).unwrap();
    let tokens = tokenize_prompts(&spec).unwrap();
    assert_eq!(
        tokens.iter().map(|t| t.class).collect::<Vec<_>>(),
        [0, 0, 1]
    );
    for t in &tokens {
        assert_eq!(t.ids.len(), 77);
        assert_eq!(t.ids[t.eot], 49407);
        assert!(t.ids[t.eot + 1..].iter().all(|&id| id == 0));
        assert_eq!(t.ids[1..=4], [343; 4]);
    }
}

#[test]
fn a_template_too_long_for_the_context_is_named() {
    let mut spec = Spec { ..Spec::default() };
    spec.prompts.anomaly = vec!["antidisestablishmentarianism ".repeat(20)];
    let err = tokenize_prompts(&spec).unwrap_err();
    assert!(
        err.to_string().starts_with("prompts.anomaly: template"),
        "{err}"
    );
    assert!(
        err.to_string().contains("text.context_length is 77"),
        "{err}"
    );
}
