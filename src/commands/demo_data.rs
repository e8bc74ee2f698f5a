//! `dlvp demo-data`: write a synthetic anomaly-detection dataset in the MVTec AD layout — the
//! five demo categories, or with `--universe` the surface universe (many texture families,
//! generic and subtle defects) for training.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{bail, Context};
use clap::Args;

use crate::commands::write_atomically;
use crate::demo_data::universe::{self, defects as universe_defects};
use crate::demo_data::{self, defects, surfaces, Options};

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
    /// With --universe: defect kinds, or the groups generic, physical, subtle (default: all).
    #[arg(long, value_delimiter = ',', num_args = 1.., requires = "universe")]
    defects: Vec<String>,
    /// Test images per category; a third are defect-free, the rest cycle through the defect types.
    #[arg(long, default_value_t = 30)]
    count: usize,
    /// Defect-free training images per category (`train/good`).
    #[arg(long, default_value_t = 10)]
    train_count: usize,
    /// Image side in pixels.
    #[arg(long, default_value_t = 256)]
    size: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Replace category folders that already exist in --out.
    #[arg(long)]
    force: bool,
}

pub fn run(args: DemoDataArgs) -> anyhow::Result<ExitCode> {
    if args.universe {
        return run_universe(args);
    }
    let categories = if args.categories.is_empty() {
        surfaces::CATEGORIES.iter().map(|s| s.to_string()).collect()
    } else {
        args.categories.clone()
    };
    for c in &categories {
        if !surfaces::CATEGORIES.contains(&c.as_str()) {
            bail!(
                "--categories: unknown category {c:?}; expected one of {}",
                surfaces::CATEGORIES.join(", ")
            );
        }
    }
    if !(32..=4096).contains(&args.size) {
        bail!("--size {}: expected 32 to 4096 pixels", args.size);
    }
    clear_folders(&args.out, &categories, args.force)?;
    let opts = Options {
        categories,
        count: args.count,
        train_count: args.train_count,
        size: args.size,
        seed: args.seed,
    };
    let items = demo_data::plan(&args.out, &opts);
    for_each_parallel(&items, |item| {
        let (img, mask) = demo_data::render(item, &opts);
        write_image(&item.image, img, item.mask.as_deref(), mask)
    })?;

    let summary: serde_json::Map<String, serde_json::Value> = opts
        .categories
        .iter()
        .map(|c| {
            let count = |split: &str, kind: &str| items.iter().filter(|i| &i.category == c && i.split == split && i.kind == kind).count();
            let defects: serde_json::Map<_, _> =
                defects::kinds_for(c).iter().map(|k| (k.to_string(), count("test", k).into())).collect();
            (c.clone(), serde_json::json!({"train_good": count("train", "good"), "test_good": count("test", "good"), "defects": defects}))
        })
        .collect();
    let manifest = serde_json::json!({
        "generator": "dlvp demo-data/1", "seed": opts.seed, "size": opts.size, "layout": "mvtec", "categories": summary,
    });
    write_atomically(
        &args.out.join("demo-data.json"),
        serde_json::to_string_pretty(&manifest)?.as_bytes(),
    )?;
    eprintln!(
        "wrote {} images in {} categories to {} (seed {})",
        items.len(),
        opts.categories.len(),
        args.out.display(),
        opts.seed
    );
    Ok(ExitCode::SUCCESS)
}

/// `work` on every item, on up to 8 threads; each item's output depends on it alone, so the
/// files do not depend on the scheduling.
fn for_each_parallel<T: Sync>(
    items: &[T],
    work: impl Fn(&T) -> anyhow::Result<()> + Sync,
) -> anyhow::Result<()> {
    let next = AtomicUsize::new(0);
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    let results: Vec<anyhow::Result<()>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| -> anyhow::Result<()> {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else {
                            return Ok(());
                        };
                        work(item)?;
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a generator thread panicked")))
            })
            .collect()
    });
    results.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    Ok(())
}

fn write_image(
    path: &Path,
    img: image::RgbImage,
    mask_path: Option<&Path>,
    mask: Option<image::GrayImage>,
) -> anyhow::Result<()> {
    write_png(path, &image::DynamicImage::ImageRgb8(img))?;
    if let (Some(path), Some(mask)) = (mask_path, mask) {
        write_png(path, &image::DynamicImage::ImageLuma8(mask))?;
    }
    Ok(())
}

/// Checks `--families`/`--hold-out` names against [`universe::FAMILIES`].
fn check_families(flag: &str, names: &[String]) -> anyhow::Result<()> {
    for f in names {
        if !universe::FAMILIES.contains(&f.as_str()) {
            bail!(
                "{flag}: unknown family {f:?}; expected one of {}",
                universe::FAMILIES.join(", ")
            );
        }
    }
    Ok(())
}

fn run_universe(args: DemoDataArgs) -> anyhow::Result<ExitCode> {
    check_families("--families", &args.families)?;
    check_families("--hold-out", &args.hold_out)?;
    if !(32..=4096).contains(&args.size) {
        bail!("--size {}: expected 32 to 4096 pixels", args.size);
    }
    let wanted: Vec<String> = if args.families.is_empty() {
        universe::FAMILIES.iter().map(|s| s.to_string()).collect()
    } else {
        args.families.clone()
    };
    let families: Vec<String> = wanted
        .into_iter()
        .filter(|f| !args.hold_out.contains(f))
        .collect();
    if families.is_empty() {
        bail!("--hold-out leaves no family to write");
    }
    let foreign: Vec<String> = universe::FAMILIES
        .iter()
        .map(|s| s.to_string())
        .filter(|f| !args.hold_out.contains(f))
        .collect();
    let mut selected: Vec<&'static str> = Vec::new();
    for word in &args.defects {
        let Some(kinds) = universe_defects::expand(word) else {
            let all: Vec<&str> = universe_defects::GENERIC
                .iter()
                .chain(&universe_defects::PHYSICAL)
                .chain(&universe_defects::SUBTLE)
                .copied()
                .collect();
            bail!(
                "--defects: unknown defect kind {word:?}; expected a group (generic, physical, subtle) or one of {}",
                all.join(", ")
            );
        };
        selected.extend(kinds);
    }
    let kinds: Vec<&'static str> = universe_defects::CYCLE
        .iter()
        .copied()
        .filter(|k| selected.is_empty() || selected.contains(k))
        .collect();
    clear_folders(&args.out, &families, args.force)?;
    let opts = universe::Options {
        families,
        foreign,
        kinds,
        count: args.count,
        train_count: args.train_count,
        size: args.size,
        seed: args.seed,
    };
    let items = universe::plan(&args.out, &opts);
    let start = std::time::Instant::now();
    for_each_parallel(&items, |item| {
        let (img, mask) = universe::render(item, &opts);
        write_image(&item.image, img, item.mask.as_deref(), mask)
    })?;
    let seconds = start.elapsed().as_secs_f64();

    let summary: serde_json::Map<String, serde_json::Value> = opts
        .families
        .iter()
        .map(|f| {
            let count = |split: &str, kind: &str| {
                items
                    .iter()
                    .filter(|i| &i.family == f && i.split == split && i.kind == kind)
                    .count()
            };
            let mut unique = opts.kinds.clone();
            unique.sort_unstable();
            unique.dedup();
            let defects: serde_json::Map<_, _> = unique
                .iter()
                .map(|k| (k.to_string(), count("test", k).into()))
                .collect();
            (
                f.clone(),
                serde_json::json!({"train_good": count("train", "good"), "test_good": count("test", "good"), "defects": defects}),
            )
        })
        .collect();
    let manifest = serde_json::json!({
        "generator": "dlvp demo-data --universe/1", "seed": opts.seed, "size": opts.size, "layout": "mvtec",
        "hold_out": args.hold_out, "foreign_pool": opts.foreign, "families": summary,
    });
    write_atomically(
        &args.out.join("universe.json"),
        serde_json::to_string_pretty(&manifest)?.as_bytes(),
    )?;
    eprintln!(
        "wrote {} images in {} families to {} (seed {}) in {:.1} s ({:.0} images/s)",
        items.len(),
        opts.families.len(),
        args.out.display(),
        opts.seed,
        seconds,
        items.len() as f64 / seconds.max(1e-9)
    );
    Ok(ExitCode::SUCCESS)
}

fn write_png(path: &Path, img: &image::DynamicImage) -> anyhow::Result<()> {
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .with_context(|| format!("{}: cannot encode PNG", path.display()))?;
    write_atomically(path, &bytes)
}

/// The category or family folders a run will write, emptied first with `--force`, else refused
/// if they exist.
fn clear_folders(out: &Path, names: &[String], force: bool) -> anyhow::Result<()> {
    for name in names {
        let dir = out.join(name);
        if dir.exists() {
            if !force {
                bail!(
                    "{}: already exists; pass --force to replace it",
                    dir.display()
                );
            }
            std::fs::remove_dir_all(&dir)
                .with_context(|| format!("{}: cannot remove", dir.display()))?;
        }
    }
    Ok(())
}
