//! clap parsers for the option enums the libraries define: their names only, listed in
//! `--help`, parsed to the value.

use dlvp_contract::named::Named;
use dlvp_exporter::Target;

/// `--target`'s parser: the exporter's target names, each with its one-line help.
pub fn target_parser() -> impl clap::builder::TypedValueParser<Value = Target> {
    named_values_with_help(&Target::ALL, Target::about)
}

/// A clap parser for a [`Named`] enum whose values each have a line of help (`--help` lists
/// them with it).
pub fn named_values_with_help<T>(
    all: &'static [T],
    about: fn(T) -> &'static str,
) -> impl clap::builder::TypedValueParser<Value = T>
where
    T: Named + Send + Sync,
{
    use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
    PossibleValuesParser::new(
        all.iter()
            .map(|&v| PossibleValue::new(v.name_of()).help(about(v))),
    )
    .map(move |name| {
        *all.iter()
            .find(|v| v.name_of() == name)
            .expect("clap accepts only the listed names")
    })
}

/// A clap parser for a [`Named`] enum: the listed names only (shown in `--help`), parsed to the
/// value.
pub fn named_values<T>(all: &'static [T]) -> impl clap::builder::TypedValueParser<Value = T>
where
    T: Named + Send + Sync,
{
    use clap::builder::{PossibleValuesParser, TypedValueParser};
    PossibleValuesParser::new(all.iter().map(|v| v.name_of())).map(move |name| {
        *all.iter()
            .find(|v| v.name_of() == name)
            .expect("clap accepts only the listed names")
    })
}

/// `--threshold`'s and `--pixel-threshold`'s parser: a number in [0, 1) (a NaN, infinite or
/// out-of-range threshold would decide every part the same way: `decision::check_threshold`).
pub fn threshold_value(text: &str) -> Result<f32, String> {
    let value: f32 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number; expected one in [0, 1)"))?;
    dlvp_runtime::decision::check_threshold(value).map_err(|e| e.to_string())
}
