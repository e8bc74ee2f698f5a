//! Minimal curve plots as PNG: unit square axes, a grid every 0.2, one coloured line per series.
//! Axis titles and the legend live in the HTML report beside the picture, so no font is needed.

use image::{Rgb, RgbImage};

use crate::metrics::Curve;

/// Tableau 10: distinct, colour-blind-considerate series colours.
pub const PALETTE: [[u8; 3]; 10] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
];

const MARGIN: i64 = 12;

fn plot_xy(size: u32, x: f64, y: f64) -> (f64, f64) {
    let span = (size as i64 - 2 * MARGIN) as f64;
    (
        MARGIN as f64 + x.clamp(0.0, 1.0) * span,
        MARGIN as f64 + (1.0 - y.clamp(0.0, 1.0)) * span,
    )
}

fn dot(img: &mut RgbImage, x: f64, y: f64, radius: f64, colour: [u8; 3]) {
    let r = radius.ceil() as i64;
    for dy in -r..=r {
        for dx in -r..=r {
            let (px, py) = (x.round() as i64 + dx, y.round() as i64 + dy);
            if (dx * dx + dy * dy) as f64 <= radius * radius
                && px >= 0
                && py >= 0
                && (px as u32) < img.width()
                && (py as u32) < img.height()
            {
                img.put_pixel(px as u32, py as u32, Rgb(colour));
            }
        }
    }
}

fn line(img: &mut RgbImage, a: (f64, f64), b: (f64, f64), width: f64, colour: [u8; 3]) {
    let steps = ((b.0 - a.0).abs().max((b.1 - a.1).abs()) * 2.0)
        .ceil()
        .max(1.0) as usize;
    for i in 0..=steps {
        let t = i as f64 / steps as f64;
        dot(
            img,
            a.0 + (b.0 - a.0) * t,
            a.1 + (b.1 - a.1) * t,
            width / 2.0,
            colour,
        );
    }
}

/// A square plot of `series` (x and y in [0, 1]); `diagonal` adds the chance line of a ROC plot.
pub fn curves(series: &[(&Curve, [u8; 3])], size: u32, diagonal: bool) -> RgbImage {
    let mut img = RgbImage::from_pixel(size, size, Rgb([255, 255, 255]));
    for k in 0..=5 {
        let t = k as f64 / 5.0;
        let grey = if k == 0 || k == 5 {
            [90, 90, 90]
        } else {
            [225, 225, 225]
        };
        line(
            &mut img,
            plot_xy(size, t, 0.0),
            plot_xy(size, t, 1.0),
            1.0,
            grey,
        );
        line(
            &mut img,
            plot_xy(size, 0.0, t),
            plot_xy(size, 1.0, t),
            1.0,
            grey,
        );
    }
    if diagonal {
        line(
            &mut img,
            plot_xy(size, 0.0, 0.0),
            plot_xy(size, 1.0, 1.0),
            1.0,
            [170, 170, 170],
        );
    }
    for (curve, colour) in series {
        let c = curve.thinned(4000);
        for i in 1..c.x.len() {
            line(
                &mut img,
                plot_xy(size, c.x[i - 1], c.y[i - 1]),
                plot_xy(size, c.x[i], c.y[i]),
                2.0,
                *colour,
            );
        }
    }
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_curve_is_drawn_in_its_colour_where_it_runs() {
        let c = Curve {
            x: vec![0.0, 0.0, 1.0],
            y: vec![0.0, 1.0, 1.0],
        };
        let img = curves(&[(&c, PALETTE[3])], 200, true);
        let (x, y) = plot_xy(200, 0.5, 1.0);
        assert_eq!(img.get_pixel(x as u32, y as u32).0, PALETTE[3]);
        let (x, y) = plot_xy(200, 0.7, 0.3);
        assert_ne!(img.get_pixel(x as u32, y as u32).0, PALETTE[3]);
    }
}
