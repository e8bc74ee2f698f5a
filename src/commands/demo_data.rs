//! `dlvp demo-data`: writes a synthetic anomaly-detection dataset in the MVTec AD layout — the
//! five demo categories, or with `--universe` the surface universe (many texture families,
//! generic and subtle defects) for training. The generator is the `dlvp-demo-data` crate; this
//! module parses the flags and names them in its errors.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use dlvp_demo_data::{DemoDataError, Options, UniverseRequest};

#[derive(Args)]
pub struct DemoDataArgs {
    /// Dataset root to write (one folder per category inside).
    #[arg(long)]
    out: PathBuf,
    /// Categories to generate (default: all of fabric, metal, wood, tile, leather).
    #[arg(long, value_delimiter = ',', num_args = 1.., conflicts_with = "universe")]
    categories: Vec<String>,
    /// Write the surface universe instead: one category per texture family, generic, physical
    /// and subtle defects (models/demo/README.md, "The surface universe").
    #[arg(long)]
    universe: bool,
    /// With --universe: the families to write (default: all).
    #[arg(long, value_delimiter = ',', num_args = 1.., requires = "universe")]
    families: Vec<String>,
    /// With --universe: families left out entirely, also as the foreign texture of other
    /// families' defects (for training that holds them out).
    #[arg(long = "hold-out", value_delimiter = ',', num_args = 1.., requires = "universe")]
    hold_out: Vec<String>,
    /// With --universe: defect kinds, the groups generic, physical, subtle, styled, or a shape or
    /// finish of the styled kinds (every kind drawn with it) (default: all).
    #[arg(long, value_delimiter = ',', num_args = 1.., requires = "universe")]
    defects: Vec<String>,
    /// With --universe: defect kinds left out, named as --defects names them (for training that
    /// holds defect styles out: `--hold-out-defects cluster,tint`).
    #[arg(long, value_delimiter = ',', num_args = 1.., requires = "universe")]
    hold_out_defects: Vec<String>,
    /// Test images per category; a third are defect-free, the rest cycle through the defect types.
    #[arg(long, default_value_t = 30)]
    count: usize,
    /// Defect-free training images per category (`train/good`).
    #[arg(long, default_value_t = 10)]
    train_count: usize,
    /// Image side in pixels.
    #[arg(long, default_value_t = 256)]
    size: usize,
    /// Draw surfaces and defects as for a PX-pixel image (default: --size), so a larger --size
    /// shows more of the surface at the same pixel scale and defects keep their pixel sizes:
    /// `--size 2048 --detail-size 256` gives high-resolution frames with 8–70 px defects (the
    /// test set for `detect --tile`). The demo categories only.
    #[arg(long, value_name = "PX", conflicts_with = "universe")]
    detail_size: Option<usize>,
    /// Random seed: the same seed and options give byte-identical files; another seed, other
    /// surfaces and defects.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Replace category folders that already exist in --out.
    #[arg(long)]
    force: bool,
}

pub fn run(args: DemoDataArgs) -> anyhow::Result<ExitCode> {
    let written = if args.universe {
        let request = UniverseRequest {
            families: args.families.clone(),
            hold_out: args.hold_out.clone(),
            defects: args.defects.clone(),
            hold_out_defects: args.hold_out_defects.clone(),
            count: args.count,
            train_count: args.train_count,
            size: args.size,
            seed: args.seed,
        };
        dlvp_demo_data::write_universe(&args.out, &request, args.force)
    } else {
        let options = Options {
            categories: Vec::new(),
            count: args.count,
            train_count: args.train_count,
            size: args.size,
            detail: args.detail_size,
            seed: args.seed,
        };
        dlvp_demo_data::write_categories(&args.out, &args.categories, &options, args.force)
    }
    .map_err(|e| in_flags(e, &args))?;
    let what = if args.universe {
        "families"
    } else {
        "categories"
    };
    eprintln!(
        "wrote {} images in {} {what} to {} (seed {}) in {:.1} s ({:.0} images/s)",
        written.images,
        written.folders,
        args.out.display(),
        args.seed,
        written.seconds,
        written.images as f64 / written.seconds.max(1e-9)
    );
    Ok(ExitCode::SUCCESS)
}

/// The generator's error with the flag it concerns.
fn in_flags(e: DemoDataError, args: &DemoDataArgs) -> anyhow::Error {
    match &e {
        DemoDataError::UnknownCategory { .. } => anyhow::anyhow!("--categories: {e}"),
        DemoDataError::UnknownFamily { name } if args.hold_out.contains(name) => {
            anyhow::anyhow!("--hold-out: {e}")
        }
        DemoDataError::UnknownFamily { .. } => anyhow::anyhow!("--families: {e}"),
        DemoDataError::UnknownDefect { name } if args.hold_out_defects.contains(name) => {
            anyhow::anyhow!("--hold-out-defects: {e}")
        }
        DemoDataError::UnknownDefect { .. } => anyhow::anyhow!("--defects: {e}"),
        DemoDataError::NoDefectLeft => anyhow::anyhow!("--hold-out-defects: {e}"),
        DemoDataError::NothingLeft => anyhow::anyhow!("--hold-out leaves no family to write"),
        DemoDataError::Size { .. } | DemoDataError::Detail { .. } => anyhow::anyhow!("--{e}"),
        DemoDataError::Exists { .. } => anyhow::anyhow!("{e}; pass --force to replace it"),
        _ => e.into(),
    }
}
