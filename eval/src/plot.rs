//! Minimal curve plots as PNG: unit square axes, a grid every 0.2 with its values, the two axis
//! titles (the y title turned to read upwards), one coloured line per series. The text is drawn
//! with a built-in 5×7 pixel font ([`GLYPHS`]) so that a PNG saved on its own still says what its
//! axes are, with no font file or crate needed; the legend lives in the HTML report beside it.

use image::{Rgb, RgbImage};

use crate::metrics::Curve;

/// A 5×7 pixel font, each glyph 7 rows of 5 columns (`#` ink): the letters, digits and marks
/// that axis titles and tick values use. A character without a glyph is drawn as a box, and the
/// tests check that every title the report draws has its glyphs.
const GLYPHS: &[(char, [&str; 7])] = &[
    (
        ' ',
        [
            ".....", ".....", ".....", ".....", ".....", ".....", ".....",
        ],
    ),
    (
        '.',
        [
            ".....", ".....", ".....", ".....", ".....", ".##..", ".##..",
        ],
    ),
    (
        '-',
        [
            ".....", ".....", ".....", "#####", ".....", ".....", ".....",
        ],
    ),
    (
        '0',
        [
            ".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###.",
        ],
    ),
    (
        '1',
        [
            "..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###.",
        ],
    ),
    (
        '2',
        [
            ".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####",
        ],
    ),
    (
        '3',
        [
            "#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###.",
        ],
    ),
    (
        '4',
        [
            "...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#.",
        ],
    ),
    (
        '5',
        [
            "#####", "#....", "####.", "....#", "....#", "#...#", ".###.",
        ],
    ),
    (
        '6',
        [
            "..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###.",
        ],
    ),
    (
        '7',
        [
            "#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#...",
        ],
    ),
    (
        '8',
        [
            ".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###.",
        ],
    ),
    (
        '9',
        [
            ".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##..",
        ],
    ),
    (
        'F',
        [
            "#####", "#....", "#....", "####.", "#....", "#....", "#....",
        ],
    ),
    (
        'P',
        [
            "####.", "#...#", "#...#", "####.", "#....", "#....", "#....",
        ],
    ),
    (
        'R',
        [
            "####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#",
        ],
    ),
    (
        'T',
        [
            "#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#..",
        ],
    ),
    (
        'a',
        [
            ".....", ".....", ".###.", "....#", ".####", "#...#", ".####",
        ],
    ),
    (
        'b',
        [
            "#....", "#....", "#.##.", "##..#", "#...#", "#...#", "####.",
        ],
    ),
    (
        'c',
        [
            ".....", ".....", ".###.", "#....", "#....", "#...#", ".###.",
        ],
    ),
    (
        'd',
        [
            "....#", "....#", ".##.#", "#..##", "#...#", "#...#", ".####",
        ],
    ),
    (
        'e',
        [
            ".....", ".....", ".###.", "#...#", "#####", "#....", ".###.",
        ],
    ),
    (
        'f',
        [
            "..##.", ".#..#", ".#...", "###..", ".#...", ".#...", ".#...",
        ],
    ),
    (
        'g',
        [
            ".....", ".####", "#...#", "#...#", ".####", "....#", ".###.",
        ],
    ),
    (
        'h',
        [
            "#....", "#....", "#.##.", "##..#", "#...#", "#...#", "#...#",
        ],
    ),
    (
        'i',
        [
            "..#..", ".....", ".##..", "..#..", "..#..", "..#..", ".###.",
        ],
    ),
    (
        'k',
        [
            "#....", "#....", "#..#.", "#.#..", "##...", "#.#..", "#..#.",
        ],
    ),
    (
        'l',
        [
            ".##..", "..#..", "..#..", "..#..", "..#..", "..#..", ".###.",
        ],
    ),
    (
        'm',
        [
            ".....", ".....", "##.#.", "#.#.#", "#.#.#", "#...#", "#...#",
        ],
    ),
    (
        'n',
        [
            ".....", ".....", "#.##.", "##..#", "#...#", "#...#", "#...#",
        ],
    ),
    (
        'o',
        [
            ".....", ".....", ".###.", "#...#", "#...#", "#...#", ".###.",
        ],
    ),
    (
        'p',
        [
            ".....", ".....", "####.", "#...#", "####.", "#....", "#....",
        ],
    ),
    (
        'r',
        [
            ".....", ".....", "#.##.", "##..#", "#....", "#....", "#....",
        ],
    ),
    (
        's',
        [
            ".....", ".....", ".###.", "#....", ".###.", "....#", "####.",
        ],
    ),
    (
        't',
        [
            ".#...", ".#...", "###..", ".#...", ".#...", ".#..#", "..##.",
        ],
    ),
    (
        'u',
        [
            ".....", ".....", "#...#", "#...#", "#...#", "#..##", ".##.#",
        ],
    ),
    (
        'v',
        [
            ".....", ".....", "#...#", "#...#", "#...#", ".#.#.", "..#..",
        ],
    ),
    (
        'w',
        [
            ".....", ".....", "#...#", "#...#", "#.#.#", "#.#.#", ".#.#.",
        ],
    ),
    (
        'x',
        [
            ".....", ".....", "#...#", ".#.#.", "..#..", ".#.#.", "#...#",
        ],
    ),
    (
        'y',
        [
            ".....", ".....", "#...#", "#...#", ".####", "....#", ".###.",
        ],
    ),
];

/// What a character without a glyph looks like: a box, visibly not a letter.
const MISSING: [&str; 7] = [
    "#####", "#...#", "#...#", "#...#", "#...#", "#...#", "#####",
];

fn glyph(c: char) -> &'static [&'static str; 7] {
    GLYPHS
        .iter()
        .find(|(g, _)| *g == c)
        .map_or(&MISSING, |(_, rows)| rows)
}

/// Whether the font draws `c` (else it is a box).
pub fn has_glyph(c: char) -> bool {
    GLYPHS.iter().any(|(g, _)| *g == c)
}

const GLYPH_W: u32 = 5;
const GLYPH_H: u32 = 7;

/// The width in pixels of `text` at `scale` (one column of space between characters).
fn text_width(text: &str, scale: u32) -> u32 {
    let n = text.chars().count() as u32;
    (n * (GLYPH_W + 1)).saturating_sub(1) * scale
}

/// `text` drawn from its top-left corner `(x, y)`, each font pixel `scale` × `scale`; `upwards`
/// turns it a quarter counter-clockwise, to read from the bottom up with `(x, y)` then its
/// bottom-left corner (as a y axis's title reads).
fn draw_text(
    img: &mut RgbImage,
    x: i64,
    y: i64,
    text: &str,
    scale: u32,
    upwards: bool,
    colour: [u8; 3],
) {
    let s = scale as i64;
    for (k, c) in text.chars().enumerate() {
        let origin = k as i64 * (GLYPH_W + 1) as i64 * s;
        for (row, bits) in glyph(c).iter().enumerate() {
            for (col, bit) in bits.bytes().enumerate() {
                if bit != b'#' {
                    continue;
                }
                // Along the text and across it (downwards from its top), in image pixels.
                let (along, across) = (origin + col as i64 * s, row as i64 * s);
                for dy in 0..s {
                    for dx in 0..s {
                        let (px, py) = if upwards {
                            (x + across + dy, y - along - dx)
                        } else {
                            (x + along + dx, y + across + dy)
                        };
                        if px >= 0
                            && py >= 0
                            && (px as u32) < img.width()
                            && (py as u32) < img.height()
                        {
                            img.put_pixel(px as u32, py as u32, Rgb(colour));
                        }
                    }
                }
            }
        }
    }
}

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

/// Blank pixels above and right of the plot's square.
const MARGIN: i64 = 12;
/// Left of the square: the y title (14 px tall letters, turned) and the tick values.
const LEFT: i64 = 48;
/// Below the square: the tick values, then the x title.
const BOTTOM: i64 = 40;
const INK: [u8; 3] = [40, 40, 40];

/// The side of the plot's square in an image made for `size` ([`curves`]).
fn span(size: u32) -> i64 {
    size as i64 - 2 * MARGIN
}

fn plot_xy(size: u32, x: f64, y: f64) -> (f64, f64) {
    let span = span(size) as f64;
    (
        LEFT as f64 + x.clamp(0.0, 1.0) * span,
        MARGIN as f64 + (1.0 - y.clamp(0.0, 1.0)) * span,
    )
}

/// The x axis's title: its top-left corner, for the title's width in pixels.
fn x_title_at(size: u32, width: u32) -> (i64, i64) {
    (
        LEFT + (span(size) - width as i64) / 2,
        MARGIN + span(size) + 5 + GLYPH_H as i64 + 8,
    )
}

/// The y axis's title, read upwards: its bottom-left corner, for the title's length in pixels.
fn y_title_at(size: u32, length: u32) -> (i64, i64) {
    (7, MARGIN + (span(size) + length as i64) / 2)
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

/// A plot of `series` (x and y in [0, 1]) in a square of `size` − 24 pixels, its axes titled
/// `axes` (x, y) and their grid lines numbered, so the image is `size` + 36 wide and `size` + 28
/// tall; `diagonal` adds the chance line of a ROC plot.
pub fn curves(
    series: &[(&Curve, [u8; 3])],
    size: u32,
    diagonal: bool,
    axes: (&str, &str),
) -> RgbImage {
    let (width, height) = (
        (LEFT + span(size) + MARGIN) as u32,
        (MARGIN + span(size) + BOTTOM) as u32,
    );
    let mut img = RgbImage::from_pixel(width, height, Rgb([255, 255, 255]));
    for (k, value) in ["0", "0.2", "0.4", "0.6", "0.8", "1"].iter().enumerate() {
        let t = k as f64 / 5.0;
        let w = text_width(value, 1) as i64;
        let (x, y) = plot_xy(size, t, t);
        let (x, y) = (x.round() as i64, y.round() as i64);
        draw_text(
            &mut img,
            x - w / 2,
            MARGIN + span(size) + 5,
            value,
            1,
            false,
            INK,
        );
        draw_text(
            &mut img,
            LEFT - 5 - w,
            y - GLYPH_H as i64 / 2,
            value,
            1,
            false,
            INK,
        );
    }
    let (x_title, y_title) = axes;
    let (x, y) = x_title_at(size, text_width(x_title, 2));
    draw_text(&mut img, x, y, x_title, 2, false, INK);
    let (x, y) = y_title_at(size, text_width(y_title, 2));
    draw_text(&mut img, x, y, y_title, 2, true, INK);
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
        let img = curves(&[(&c, PALETTE[3])], 200, true, ("", ""));
        let (x, y) = plot_xy(200, 0.5, 1.0);
        assert_eq!(img.get_pixel(x as u32, y as u32).0, PALETTE[3]);
        let (x, y) = plot_xy(200, 0.7, 0.3);
        assert_ne!(img.get_pixel(x as u32, y as u32).0, PALETTE[3]);
    }

    /// The inked pixels' bounding box (x0, y0, x1, y1) within a region of `img`, if any.
    fn ink(img: &RgbImage, x: std::ops::Range<u32>, y: std::ops::Range<u32>) -> Option<[u32; 4]> {
        let mut b: Option<[u32; 4]> = None;
        for py in y {
            for px in x.clone() {
                if img.get_pixel(px, py).0 == INK {
                    let [x0, y0, x1, y1] = b.unwrap_or([px, py, px, py]);
                    b = Some([x0.min(px), y0.min(py), x1.max(px), y1.max(py)]);
                }
            }
        }
        b
    }

    /// The axis titles are drawn where a reader looks for them, as wide (x) and as tall (y, read
    /// upwards) as their text at 2× the font, and without titles those places stay blank; the
    /// grid values are drawn under and left of the square.
    #[test]
    fn the_axes_are_titled_and_numbered() {
        let (fx, fy) = ("False positive rate", "True positive rate");
        let titled = curves(&[], 320, true, (fx, fy));
        let blank = curves(&[], 320, true, ("", ""));
        assert_eq!(titled.dimensions(), (356, 348));
        let (w, h) = titled.dimensions();
        let span = span(320) as u32;
        let below = (MARGIN as u32 + span + 5 + GLYPH_H + 2)..h;
        let left = 0..(LEFT as u32 - 24);
        // x title: one line centred under the square, 19 characters of 12 px less the last gap,
        // as tall as the font at 2×.
        let [x0, y0, x1, y1] = ink(&titled, 0..w, below.clone()).expect("no x title drawn");
        assert_eq!(x1 - x0 + 1, text_width(fx, 2), "the x title's width");
        assert_eq!(y1 - y0 + 1, 2 * GLYPH_H, "the x title's height");
        assert!(((x0 + x1) as i64 / 2 - (LEFT + span as i64 / 2)).abs() <= 8);
        // y title: turned, as tall as its text is wide, centred beside the square.
        let [x0, y0, x1, y1] = ink(&titled, left.clone(), 0..h).expect("no y title drawn");
        assert_eq!(y1 - y0 + 1, text_width(fy, 2), "the y title's length");
        assert_eq!(x1 - x0 + 1, 2 * GLYPH_H, "the y title's thickness");
        assert!(((y0 + y1) as i64 / 2 - (MARGIN + span as i64 / 2)).abs() <= 8);
        assert_eq!(ink(&blank, 0..w, below), None);
        assert_eq!(ink(&blank, left, 0..h), None);
        // The values: "0.2" under its grid line and left of its grid line.
        let (gx, gy) = plot_xy(320, 0.2, 0.2);
        let under = MARGIN as u32 + span + 5..MARGIN as u32 + span + 5 + GLYPH_H;
        let [x0, _, x1, _] = ink(&blank, gx as u32 - 12..gx as u32 + 12, under).unwrap();
        assert_eq!(x1 - x0 + 1, text_width("0.2", 1));
        let [_, y0, _, y1] = ink(
            &blank,
            LEFT as u32 - 24..LEFT as u32,
            gy as u32 - 6..gy as u32 + 6,
        )
        .unwrap();
        assert_eq!(y1 - y0 + 1, GLYPH_H);
    }

    #[test]
    fn every_title_the_report_draws_has_its_glyphs() {
        for title in [
            "False positive rate",
            "True positive rate",
            "Recall",
            "Precision",
            "0.2468",
            "1357",
        ] {
            assert!(title.chars().all(has_glyph), "{title}");
        }
        assert!(!has_glyph('%'));
        for (c, rows) in GLYPHS {
            assert!(rows.iter().all(|r| r.len() == GLYPH_W as usize), "{c:?}");
        }
    }
}
