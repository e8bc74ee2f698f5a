//! Fuzz target of the exporter's reader: the safetensors checkpoint reader on mutations of a
//! valid file. Whatever the input, it returns `Ok` or an error — never panics, never allocates
//! what the file merely claims. A checkpoint that opens is read in full and checked against the
//! spec it embeds. (The spec parser's targets are the contract crate's, `contract/tests/fuzz.rs`.)
//!
//! CI runs a bounded number of cases per target; `DLVP_FUZZ_CASES=200000 cargo test --release
//! -p dlvp-exporter --test fuzz` runs longer. A failure prints the shrunk mutation list and
//! proptest records its seed in `proptest-regressions/`; each becomes a case of the CLI's
//! bad-input matrix (`tests/bad_input.rs`).

use std::path::Path;
use std::sync::Arc;

use dlvp_exporter::check::check_checkpoint;
use dlvp_exporter::Checkpoint;
use dlvp_test_support::mutate;
use proptest::prelude::*;

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn tiny_checkpoint() -> &'static [u8] {
    static BYTES: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BYTES.get_or_init(|| std::fs::read(repo().join("fixtures/tiny/weights.safetensors")).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(mutate::cases(30_000)))]

    #[test]
    fn the_checkpoint_reader_takes_any_mutation_of_a_valid_file(mutations in mutate::mutations()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fuzz.safetensors");
        std::fs::write(&path, mutate::apply(tiny_checkpoint(), &mutations)).unwrap();
        if let Ok(ckpt) = Checkpoint::open(&path) {
            for name in ckpt.tensors().keys() {
                let _ = ckpt.read_f32(name);
            }
            let spec = ckpt.embedded_spec().ok().flatten();
            if let Some(spec) = spec {
                let _ = check_checkpoint(Arc::new(ckpt), &spec);
            }
        }
    }
}
