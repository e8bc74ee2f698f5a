//! `dlvp demo-data --universe`: the surface universe — many texture families with random
//! parameters, seen through a random camera, with generic, physical and subtle defects and
//! their exact masks — for training a detector that has to generalise to surfaces it never saw.
//!
//! Layout: MVTec AD with one category per family (`<family>/train/good/00000.png`,
//! `<family>/test/<kind>/00000.png`, `<family>/ground_truth/<kind>/00000_mask.png`), so the
//! defect kind is in the path and a group (say, the subtle defects) can be evaluated alone.
//!
//! Deterministic like the demo categories: every image has its own stream derived from
//! (seed, "universe", family, split, kind, index); the foreign-texture pool (the families not
//! held out) is the only other input an image depends on.

pub mod defects;
pub mod post;
pub mod relief;
pub mod styles;
pub mod textures;

use std::path::{Path, PathBuf};

use super::rng::Rng;
use super::Canvas;
use textures::Texture;
pub use textures::FAMILIES;

#[derive(Clone, Debug)]
pub struct Options {
    /// Families to write, in order.
    pub families: Vec<String>,
    /// Families a `foreign` defect may borrow its texture from (every family not held out).
    pub foreign: Vec<String>,
    /// The defect kinds test images cycle through (a sub-sequence of [`defects::cycle`]).
    pub kinds: Vec<&'static str>,
    /// Test images per family; a third of them (at least one) are good.
    pub count: usize,
    pub train_count: usize,
    pub size: usize,
    pub seed: u64,
}

/// One image to generate.
#[derive(Clone, Debug)]
pub struct Item {
    pub family: String,
    pub split: &'static str,
    pub kind: &'static str,
    pub index: usize,
    pub image: PathBuf,
    pub mask: Option<PathBuf>,
}

/// Every image `options` asks for, in a fixed order.
pub fn plan(root: &Path, options: &Options) -> Vec<Item> {
    let mut items = Vec::new();
    for family in &options.families {
        let base = root.join(family);
        for i in 0..options.train_count {
            items.push(Item {
                family: family.clone(),
                split: "train",
                kind: "good",
                index: i,
                image: base.join("train/good").join(format!("{i:05}.png")),
                mask: None,
            });
        }
        let good = if options.count == 0 || options.kinds.is_empty() {
            options.count
        } else {
            (options.count / 3).max(1)
        };
        let mut per_kind = std::collections::BTreeMap::<&str, usize>::new();
        for t in 0..options.count {
            let kind = if t < good {
                "good"
            } else {
                options.kinds[(t - good) % options.kinds.len()]
            };
            let counter = per_kind.entry(kind).or_default();
            let index = *counter;
            *counter += 1;
            let image = base.join("test").join(kind).join(format!("{index:05}.png"));
            let mask = (kind != "good").then(|| {
                base.join("ground_truth")
                    .join(kind)
                    .join(format!("{index:05}_mask.png"))
            });
            items.push(Item {
                family: family.clone(),
                split: "test",
                kind,
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
        &["universe", &item.family, item.split, item.kind],
        item.index as u64,
    );
    let tex = Texture::new(&item.family, options.size, &mut rng);
    let mut canvas = Canvas::new(options.size);
    canvas.fill(|x, y| tex.at(x, y));
    let mask = (item.kind != "good").then(|| {
        let m = defects::apply(item.kind, &mut canvas, &tex, &options.foreign, &mut rng);
        let n = options.size as u32;
        image::GrayImage::from_raw(n, n, m).expect("mask buffer is size×size")
    });
    (post::camera(canvas, &mut rng), mask)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn options(size: usize) -> Options {
        Options {
            families: FAMILIES.iter().map(|s| s.to_string()).collect(),
            foreign: FAMILIES.iter().map(|s| s.to_string()).collect(),
            kinds: defects::CYCLE.to_vec(),
            count: 0,
            train_count: 0,
            size,
            seed: 11,
        }
    }

    fn item(family: &str, kind: &'static str, index: usize) -> Item {
        Item {
            family: family.into(),
            split: "test",
            kind,
            index,
            image: PathBuf::new(),
            mask: None,
        }
    }

    fn grey_std(img: &image::RgbImage) -> f32 {
        let v: Vec<f32> = img
            .pixels()
            .map(|p| (p.0[0] as f32 + p.0[1] as f32 + p.0[2] as f32) / 3.0)
            .collect();
        let mean = v.iter().sum::<f32>() / v.len() as f32;
        (v.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / v.len() as f32).sqrt()
    }

    #[test]
    fn every_family_renders_a_varied_surface() {
        for family in FAMILIES {
            renders_varied(family);
        }
    }

    fn renders_varied(family: &str) {
        let opts = options(64);
        let mut first = None;
        for index in 0..6 {
            let (img, mask) = render(&item(family, "good", index), &opts);
            assert!(mask.is_none());
            let std = grey_std(&img);
            assert!(std > 3.0, "{family} #{index}: grey std {std}");
            // not one image repeated: each index draws its own parameters
            match &first {
                None => first = Some(img),
                Some(f) => assert_ne!(f, &img, "{family} #{index} repeats #0"),
            }
        }
    }

    #[test]
    fn the_family_list_matches_the_texture_generator() {
        // every name in FAMILIES renders (a name missing from `field`'s match would panic)
        for family in FAMILIES {
            render(&item(family, "good", 0), &options(32));
        }
    }

    #[rstest]
    fn every_defect_kind_has_a_non_empty_mask_of_changed_pixels(
        #[values(
            "foreign",
            "cutpaste",
            "hole",
            "scratch",
            "stain",
            "crack",
            "chip",
            "cut",
            "contamination",
            "missing_thread",
            "subtle_spot",
            "subtle_orientation",
            "subtle_scale",
            "subtle_blur",
            "subtle_contrast",
            "subtle_thread"
        )]
        kind: &'static str,
    ) {
        for (index, family) in FAMILIES.iter().enumerate() {
            check_defect(family, kind, index);
        }
    }

    /// Every styled kind (`<shape>_<finish>`), each on six families in turn.
    #[test]
    fn every_styled_kind_has_a_non_empty_mask_of_changed_pixels() {
        for (k, kind) in styles::kinds().iter().enumerate() {
            for j in 0..6 {
                let index = k * 6 + j;
                check_defect(FAMILIES[index % FAMILIES.len()], kind, index);
            }
        }
    }

    /// The defect `kind` on `family` (image `index`, 128 px): a mask of 0 and 255, not empty,
    /// under the subtle bound for subtle kinds, equal to what `defects::apply` paints, over
    /// pixels it changed by at least `MIN_CHANGE` on average (before the camera).
    fn check_defect(family: &str, kind: &'static str, index: usize) {
        let opts = options(128);
        let area_bound = (defects::SUBTLE_MAX_AREA * 128.0 * 128.0) as usize;
        {
            let it = item(family, kind, index);
            let (_, mask) = render(&it, &opts);
            let mask = mask.expect("a defect has a mask");
            let marked = mask.pixels().filter(|p| p.0[0] == 255).count();
            assert!(mask.pixels().all(|p| p.0[0] == 0 || p.0[0] == 255));
            assert!(marked > 0, "{it:?}: empty mask");
            if kind.starts_with("subtle_") {
                assert!(
                    marked <= area_bound,
                    "{it:?}: subtle mask of {marked} px, over {area_bound}"
                );
            }
            // Before the camera, the defect changed the surface under its mask visibly.
            let mut rng =
                Rng::for_item(opts.seed, &["universe", family, "test", kind], index as u64);
            let tex = Texture::new(family, 128, &mut rng);
            let mut canvas = Canvas::new(128);
            canvas.fill(|x, y| tex.at(x, y));
            let clean = Canvas {
                size: 128,
                rgb: canvas.rgb.clone(),
            };
            let m = defects::apply(kind, &mut canvas, &tex, &opts.foreign, &mut rng);
            assert_eq!(m, mask.into_raw(), "{it:?}: render and apply disagree");
            let change: f32 = (0..128 * 128)
                .filter(|&i| m[i] != 0)
                .map(|i| {
                    (0..3)
                        .map(|c| (canvas.rgb[i][c] - clean.rgb[i][c]).abs())
                        .sum::<f32>()
                        / 3.0
                })
                .sum::<f32>()
                / marked as f32;
            assert!(
                change >= defects::MIN_CHANGE,
                "{it:?}: mean change {change}"
            );
        }
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let opts = options(64);
        let it = item("woven", "foreign", 2);
        let (a, ma) = render(&it, &opts);
        let (b, mb) = render(&it, &opts);
        assert_eq!((a.clone(), ma), (b, mb));
        let (c, _) = render(&it, &Options { seed: 12, ..opts });
        assert_ne!(a, c);
    }

    #[test]
    fn plan_writes_the_kind_into_the_path_and_cycles_kinds() {
        let opts = Options {
            families: vec!["marble".into()],
            count: 30,
            train_count: 2,
            ..options(64)
        };
        let items = plan(Path::new("/u"), &opts);
        assert_eq!(items.len(), 32);
        assert_eq!(items.iter().filter(|i| i.kind == "good").count(), 12);
        let spot = items.iter().find(|i| i.kind == "subtle_spot").unwrap();
        assert_eq!(
            spot.image,
            Path::new("/u/marble/test/subtle_spot/00000.png")
        );
        assert_eq!(
            spot.mask.as_deref(),
            Some(Path::new(
                "/u/marble/ground_truth/subtle_spot/00000_mask.png"
            ))
        );
        let foreign: Vec<_> = items.iter().filter(|i| i.kind == "foreign").collect();
        assert_eq!(foreign.len(), 4);
        assert_eq!(
            foreign[3].image,
            Path::new("/u/marble/test/foreign/00003.png")
        );
    }
}
