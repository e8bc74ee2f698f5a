//! `dlvp demo-data`: write a synthetic anomaly-detection dataset in the MVTec AD layout.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{bail, Context};
use clap::Args;

use crate::commands::write_atomically;
use crate::demo_data::{self, defects, surfaces, Options};

#[derive(Args)]
pub struct DemoDataArgs {
    /// Dataset root to write (one folder per category inside).
    #[arg(long)]
    out: PathBuf,
    /// Categories to generate (default: all of fabric, metal, wood, tile, leather).
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    categories: Vec<String>,
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
    for c in &categories {
        let dir = args.out.join(c);
        if dir.exists() {
            if !args.force {
                bail!(
                    "{}: already exists; pass --force to replace it",
                    dir.display()
                );
            }
            std::fs::remove_dir_all(&dir)
                .with_context(|| format!("{}: cannot remove", dir.display()))?;
        }
    }
    let opts = Options {
        categories,
        count: args.count,
        train_count: args.train_count,
        size: args.size,
        seed: args.seed,
    };
    let items = demo_data::plan(&args.out, &opts);
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
                        let (img, mask) = demo_data::render(item, &opts);
                        write_png(&item.image, &image::DynamicImage::ImageRgb8(img))?;
                        if let (Some(path), Some(mask)) = (&item.mask, mask) {
                            write_png(path, &image::DynamicImage::ImageLuma8(mask))?;
                        }
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

fn write_png(path: &Path, img: &image::DynamicImage) -> anyhow::Result<()> {
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .with_context(|| format!("{}: cannot encode PNG", path.display()))?;
    write_atomically(path, &bytes)
}
