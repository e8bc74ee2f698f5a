//! dlvp-demo-data (`dlvp demo-data`): procedurally generated industrial surfaces with synthetic
//! defects and exact pixel masks, in the MVTec AD folder layout (`<cat>/train/good`,
//! `<cat>/test/<defect>`, `<cat>/ground_truth/<defect>/<stem>_mask.png`). The embedded demo
//! model trains and is evaluated on nothing else, so the same seed must give the same bytes.
//!
//! Deterministic: every image has its own random stream derived from (seed, category, folder,
//! index), so the same seed gives byte-identical files whatever the counts or thread scheduling.
//!
//! `universe` is the other generator: many texture families and generic defects, for training.
//! [`write`] writes either to a folder, with a manifest.

pub mod defects;
pub mod noise;
pub mod rng;
pub mod surfaces;
pub mod universe;
pub mod write;

use std::path::{Path, PathBuf};

use rng::Rng;
pub use write::{write_categories, write_universe, DemoDataError, UniverseRequest, Written};

/// An RGB image in linear [0, 1] floats, square.
pub struct Canvas {
    pub size: usize,
    rgb: Vec<[f32; 3]>,
}

impl Canvas {
    pub fn new(size: usize) -> Self {
        Canvas {
            size,
            rgb: vec![[0.0; 3]; size * size],
        }
    }

    /// Sets every pixel from its centre coordinates.
    pub fn fill(&mut self, f: impl Fn(f32, f32) -> [f32; 3]) {
        for y in 0..self.size {
            for x in 0..self.size {
                self.rgb[y * self.size + x] = f(x as f32 + 0.5, y as f32 + 0.5);
            }
        }
    }

    pub fn get(&self, x: usize, y: usize) -> [f32; 3] {
        self.rgb[y * self.size + x]
    }

    pub fn set(&mut self, x: usize, y: usize, c: [f32; 3]) {
        self.rgb[y * self.size + x] = c;
    }

    /// The mean colour of the whole canvas.
    pub fn mean(&self) -> [f32; 3] {
        let mut sum = [0.0f64; 3];
        for px in &self.rgb {
            for c in 0..3 {
                sum[c] += px[c] as f64;
            }
        }
        sum.map(|v| (v / self.rgb.len().max(1) as f64) as f32)
    }

    /// 8-bit RGB with a little sensor noise, as a camera would deliver it.
    pub fn to_rgb8(&self, rng: &mut Rng, noise_sigma: f32) -> image::RgbImage {
        let n = self.size as u32;
        image::RgbImage::from_fn(n, n, |x, y| {
            let c = self.get(x as usize, y as usize);
            image::Rgb(
                c.map(|v| ((v + noise_sigma * rng.normal()).clamp(0.0, 1.0) * 255.0).round() as u8),
            )
        })
    }
}

#[derive(Clone, Debug)]
pub struct Options {
    pub categories: Vec<String>,
    /// Test images per category; a third of them (at least one) are good.
    pub count: usize,
    pub train_count: usize,
    pub size: usize,
    /// Surfaces and defects are drawn as for an image of this many pixels (`None`: `size`): a
    /// `size` above it shows more surface at the same pixel scale, defects keeping their pixel
    /// sizes — a high-resolution camera's frames.
    pub detail: Option<usize>,
    pub seed: u64,
}

/// One image to generate: where it goes, and its mask's path for a defective one.
#[derive(Clone, Debug)]
pub struct Item {
    pub category: String,
    pub split: &'static str,
    pub kind: String,
    pub index: usize,
    pub image: PathBuf,
    pub mask: Option<PathBuf>,
}

/// Every image `options` asks for, in a fixed order.
pub fn plan(root: &Path, options: &Options) -> Vec<Item> {
    let mut items = Vec::new();
    for cat in &options.categories {
        let base = root.join(cat);
        for i in 0..options.train_count {
            items.push(Item {
                category: cat.clone(),
                split: "train",
                kind: "good".into(),
                index: i,
                image: base.join("train/good").join(format!("{i:03}.png")),
                mask: None,
            });
        }
        let good = if options.count == 0 {
            0
        } else {
            (options.count / 3).max(1)
        };
        let kinds = defects::kinds_for(cat);
        let mut per_kind = vec![0usize; kinds.len()];
        for t in 0..options.count {
            let kind = if t < good {
                "good"
            } else {
                kinds[(t - good) % kinds.len()]
            };
            let index = if t < good {
                t
            } else {
                let k = (t - good) % kinds.len();
                per_kind[k] += 1;
                per_kind[k] - 1
            };
            let image = base.join("test").join(kind).join(format!("{index:03}.png"));
            let mask = (kind != "good").then(|| {
                base.join("ground_truth")
                    .join(kind)
                    .join(format!("{index:03}_mask.png"))
            });
            items.push(Item {
                category: cat.clone(),
                split: "test",
                kind: kind.into(),
                index,
                image,
                mask,
            });
        }
    }
    items
}

/// The image and (for a defect) its mask, for one planned item.
pub fn render(item: &Item, options: &Options) -> (image::RgbImage, Option<image::GrayImage>) {
    let mut rng = Rng::for_item(
        options.seed,
        &[&item.category, item.split, &item.kind],
        item.index as u64,
    );
    let detail = options.detail.unwrap_or(options.size);
    let mut canvas = surfaces::render_detailed(&item.category, options.size, detail, &mut rng);
    let mask = (item.kind != "good").then(|| {
        let m = defects::apply_detailed(&item.kind, &mut canvas, detail, &mut rng);
        let n = options.size as u32;
        image::GrayImage::from_raw(n, n, m).expect("mask buffer is size×size")
    });
    (canvas.to_rgb8(&mut rng, 0.012), mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> Options {
        Options {
            categories: surfaces::CATEGORIES.iter().map(|s| s.to_string()).collect(),
            count: 7,
            train_count: 1,
            size: 64,
            detail: None,
            seed: 5,
        }
    }

    /// A high-resolution frame (`detail` below `size`) keeps a defect's pixel size: the mask of
    /// the same hole covers about as many pixels at 512 px as at 128, where scaling with the
    /// image would make it 16 times larger.
    #[test]
    fn a_detailed_frame_keeps_defects_at_their_pixel_size() {
        let item = |size: usize| Item {
            category: "fabric".into(),
            split: "test",
            kind: "hole".into(),
            index: 0,
            image: PathBuf::from(format!("{size}.png")),
            mask: Some(PathBuf::from("m.png")),
        };
        let area = |size: usize, detail: Option<usize>| {
            let opts = Options {
                size,
                detail,
                ..options()
            };
            let (img, mask) = render(&item(size), &opts);
            assert_eq!(img.dimensions(), (size as u32, size as u32));
            mask.unwrap().pixels().filter(|p| p[0] > 0).count() as f64
        };
        let (small, scaled, detailed) = (area(128, None), area(512, None), area(512, Some(128)));
        assert!(scaled / small > 10.0, "{small} {scaled}");
        assert!(
            (0.5..2.0).contains(&(detailed / small)),
            "{small} {detailed}"
        );
    }

    #[test]
    fn every_category_and_defect_renders_with_a_non_empty_mask_that_marks_changed_pixels() {
        let opts = Options {
            count: 13,
            ..options()
        };
        for item in plan(Path::new("/d"), &opts) {
            let (img, mask) = render(&item, &opts);
            if let Some(mask) = mask {
                let marked = mask.pixels().filter(|p| p.0[0] == 255).count();
                assert!(marked > 5, "{item:?}: only {marked} mask pixels");
                assert!(mask.pixels().all(|p| p.0[0] == 0 || p.0[0] == 255));
                // The defect really changed the picture where the mask says: compare with the
                // same surface rendered without it.
                let clean = Item {
                    kind: "good".into(),
                    ..item.clone()
                };
                let mut rng = Rng::for_item(
                    opts.seed,
                    &[&item.category, item.split, &item.kind],
                    item.index as u64,
                );
                let surface = surfaces::render(&clean.category, opts.size, &mut rng)
                    .to_rgb8(&mut Rng::new(0), 0.0);
                let diff: f32 = img
                    .pixels()
                    .zip(surface.pixels())
                    .zip(mask.pixels())
                    .filter(|(_, m)| m.0[0] == 255)
                    .map(|((a, b), _)| {
                        (0..3)
                            .map(|c| (a.0[c] as f32 - b.0[c] as f32).abs())
                            .sum::<f32>()
                    })
                    .sum::<f32>()
                    / marked as f32;
                assert!(
                    diff > 20.0,
                    "{item:?}: mean change under the mask only {diff}"
                );
            }
        }
    }

    #[test]
    fn plan_follows_the_mvtec_layout_and_counts() {
        let items = plan(Path::new("/d"), &options());
        let fabric: Vec<_> = items.iter().filter(|i| i.category == "fabric").collect();
        assert_eq!(fabric.len(), 8);
        assert_eq!(
            fabric
                .iter()
                .filter(|i| i.split == "test" && i.kind == "good")
                .count(),
            2
        );
        let hole = fabric.iter().find(|i| i.kind == "hole").unwrap();
        assert_eq!(hole.image, Path::new("/d/fabric/test/hole/000.png"));
        assert_eq!(
            hole.mask.as_deref(),
            Some(Path::new("/d/fabric/ground_truth/hole/000_mask.png"))
        );
    }

    #[test]
    fn same_seed_same_pixels_other_seed_other_pixels() {
        let opts = options();
        let item = &plan(Path::new("/d"), &opts)[3];
        assert_eq!(render(item, &opts).0, render(item, &opts).0);
        assert_ne!(
            render(item, &opts).0,
            render(
                item,
                &Options {
                    seed: 6,
                    ..opts.clone()
                }
            )
            .0
        );
    }
}
