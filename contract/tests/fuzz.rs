//! Fuzz targets of the spec parser, on arbitrary text and on edits and mutations of a valid
//! spec. Whatever the input, it returns `Ok` or an error — never panics — and a spec that parses
//! is written back to YAML and reparsed (the round trip must hold).
//!
//! CI runs a bounded number of cases per target; `DLVP_FUZZ_CASES=200000 cargo test --release
//! -p dlvp-contract --test fuzz` runs longer. A failure prints the shrunk case and proptest
//! records its seed in `fuzz.proptest-regressions`; each becomes a case of the bad-spec table
//! (`tests/spec.rs`).

use std::path::Path;

use dlvp_contract::Spec;
use dlvp_test_support::mutate;
use proptest::prelude::*;

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn tiny_yaml() -> String {
    std::fs::read_to_string(repo().join("model-spec/tiny.yaml")).unwrap()
}

/// Values a hand-edited spec might hold in the wrong place.
fn odd_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("-1".to_string()),
        Just("0".to_string()),
        Just("1e309".to_string()),
        Just(".nan".to_string()),
        Just("-.inf".to_string()),
        Just("[]".to_string()),
        Just("{}".to_string()),
        Just("~".to_string()),
        Just("99999999999999999999".to_string()),
        Just("18446744073709551615".to_string()),
        Just("[1, 2, 99]".to_string()),
        Just("\"\"".to_string()),
        Just("&a [*a]".to_string()),
        "[a-z0-9 .:-]{0,12}",
    ]
}

fn check_spec(text: &str) {
    if let Ok(spec) = Spec::from_yaml(text, "fuzz.yaml") {
        let again = Spec::from_yaml(&spec.to_yaml(), "round trip").expect("a parsed spec reparses");
        assert_eq!(again, spec);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(mutate::cases(40_000)))]

    #[test]
    fn the_spec_parser_takes_any_text(text in "\\PC{0,400}") {
        check_spec(&text);
    }

    #[test]
    fn the_spec_parser_takes_any_edit_of_a_valid_spec(
        line in any::<usize>(),
        value in odd_value(),
        mutations in mutate::mutations(),
    ) {
        let yaml = tiny_yaml();
        let lines: Vec<&str> = yaml.lines().collect();
        let i = line % lines.len();
        // Replace one line's value, then mutate the bytes.
        let edited: Vec<String> = lines.iter().enumerate().map(|(k, l)| {
            match (k == i, l.split_once(':')) {
                (true, Some((key, _))) => format!("{key}: {value}"),
                _ => l.to_string(),
            }
        }).collect();
        check_spec(&edited.join("\n"));
        let bytes = mutate::apply(edited.join("\n").as_bytes(), &mutations);
        check_spec(&String::from_utf8_lossy(&bytes));
    }
}
