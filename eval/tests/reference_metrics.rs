//! The metrics equal scikit-learn and the MVTec AD AUPRO (fixtures/metrics/cases.safetensors,
//! written by `python -m dlvp_reference.golden`) within 1e-4, undefined where they are undefined.

use std::path::PathBuf;

use dlvp_eval::metrics::Groups;
use dlvp_eval::pixels::PixelAccumulator;
use dlvp_eval::report::COLUMNS;

/// The reference's metric names, in its order (metrics.NAMES = the report's columns).
const NAMES: [&str; 6] = [
    COLUMNS[0].0,
    COLUMNS[1].0,
    COLUMNS[2].0,
    COLUMNS[3].0,
    COLUMNS[4].0,
    COLUMNS[5].0,
];
use rstest::rstest;
use safetensors::SafeTensors;

fn fixture() -> Vec<u8> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/metrics/cases.safetensors");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn tensor(st: &SafeTensors, name: &str) -> (Vec<u8>, Vec<usize>) {
    let t = st.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    (t.data().to_vec(), t.shape().to_vec())
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[rstest]
#[case("random")]
#[case("ties")]
#[case("all_equal")]
#[case("tiny_defects")]
#[case("diagonal_regions")]
#[case("one_class")]
#[case("perfect")]
fn metrics_match_the_reference(#[case] name: &str) {
    let bytes = fixture();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let scores = f32s(&tensor(&st, &format!("{name}.scores")).0);
    let labels: Vec<bool> = tensor(&st, &format!("{name}.labels"))
        .0
        .iter()
        .map(|&b| b != 0)
        .collect();
    let (maps, shape) = tensor(&st, &format!("{name}.maps"));
    let maps = f32s(&maps);
    let masks: Vec<bool> = tensor(&st, &format!("{name}.masks"))
        .0
        .iter()
        .map(|&b| b != 0)
        .collect();
    let expected: Vec<f64> = tensor(&st, &format!("{name}.expected"))
        .0
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect();

    let groups = Groups::from_scores(&scores, &labels);
    let (h, w) = (shape[1], shape[2]);
    let mut pixels = PixelAccumulator::default();
    for i in 0..shape[0] {
        pixels.add(
            &maps[i * h * w..(i + 1) * h * w],
            &masks[i * h * w..(i + 1) * h * w],
            w,
            h,
        );
    }
    let got = [
        groups.auroc(),
        groups.average_precision(),
        groups.f1_max(),
        pixels.auroc(),
        pixels.average_precision(),
        pixels.aupro(),
    ];
    // The binning intervals contain the exact reference values.
    for (k, interval) in pixels.intervals().iter().enumerate() {
        let want = expected[3 + k];
        match interval {
            None => assert!(
                want.is_nan(),
                "{name} {}: no interval, reference {want}",
                NAMES[3 + k]
            ),
            Some([lo, hi]) => assert!(
                *lo - 1e-9 <= want && want <= *hi + 1e-9,
                "{name} {}: {want} outside [{lo}, {hi}]",
                NAMES[3 + k]
            ),
        }
    }
    for ((metric, got), want) in NAMES.iter().zip(got).zip(expected) {
        match got {
            None => assert!(
                want.is_nan(),
                "{name} {metric}: undefined here, reference {want}"
            ),
            Some(g) => assert!(
                (g - want).abs() <= 1e-4,
                "{name} {metric}: {g} vs reference {want}"
            ),
        }
    }
}
