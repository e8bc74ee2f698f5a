//! `POST /v1/detect`'s query string, checked before the body is read: every parameter must be one
//! `/v1/detect` knows ([`KNOWN`]), given at most once, with a value of its kind; a threshold must
//! be able to decide (`dlvp_runtime::decision::check_threshold`: a number in [0, 1)).
//!
//! A misspelt parameter is refused rather than ignored: `?treshold=0.1` answered without a
//! decision looks like an OK part to a client that only reads `decision` when it is there, so the
//! refusal names the parameter and the nearest known one.

use axum::http::Uri;
use dlvp_runtime::decision::Decider;
use dlvp_runtime::metadata::Thresholds;
use dlvp_runtime::tiling::TileOptions;

use crate::tensor::{self, BadRequest};

/// The query parameters `/v1/detect` takes, in the order its refusals list them.
pub const KNOWN: [&str; 7] = [
    "threshold",
    "map",
    "mask",
    "name",
    "tile",
    "tile_scale",
    "tile_overlap",
];

/// A misspelling at most this many edits from a known name gets it suggested: `treshold`,
/// `tile_ovelap`, `msk` — and not a short unrelated word such as `a` for `map`.
const SUGGEST_WITHIN: usize = 2;

/// What a `/v1/detect` request asks for, checked.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DetectQuery {
    /// The thresholds it decides with: the request's `threshold`, else the graph's stored ones;
    /// `None`: no decision.
    pub decider: Option<Decider>,
    /// `map=png`: the answer adds `map_png`, the map at the image's size as a 16-bit grayscale
    /// PNG, base64.
    pub map: bool,
    /// `mask=png`: the answer adds `mask_png`, where the map at the image's size is above the
    /// pixel threshold, as an 8-bit PNG (255 in the mask), base64; needs `decider`.
    pub mask: bool,
    /// `name`: what the answer's `image` says (default: the multipart file name, else
    /// "request").
    pub name: Option<String>,
    /// `tile=1` or `true`, with `tile_scale` (default 1) and `tile_overlap` (default 0.25): score
    /// the image in overlapping tiles, as `dlvp detect --tile` does.
    pub tile: Option<TileOptions>,
}

/// The raw values, each given at most once.
#[derive(Default)]
struct Given {
    values: [Option<String>; KNOWN.len()],
}

impl Given {
    fn get(&self, key: &str) -> Option<&str> {
        let i = KNOWN.iter().position(|&k| k == key).expect("a known name");
        self.values[i].as_deref()
    }
}

impl DetectQuery {
    /// Reads `uri`'s query; `stored` are the graph's thresholds, which a request's `threshold`
    /// overrides.
    pub fn parse(uri: &Uri, stored: Option<&Thresholds>) -> Result<DetectQuery, BadRequest> {
        let pairs = axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri)
            .map_err(|e| tensor::invalid(format!("reading the query string: {}", e.body_text())))?
            .0;
        let mut given = Given::default();
        for (key, value) in pairs {
            let Some(i) = KNOWN.iter().position(|&k| k == key) else {
                return Err(tensor::invalid(unknown(&key)));
            };
            if given.values[i].is_some() {
                // Two values would leave the server to pick one; the client meant one of them.
                return Err(tensor::invalid(format!(
                    "query parameter `{key}` is given more than once; give it once"
                )));
            }
            given.values[i] = Some(value);
        }
        let threshold = match given.get("threshold") {
            None => None,
            Some(v) => Some(v.trim().parse::<f32>().map_err(|_| {
                tensor::invalid(format!(
                    "query parameter `threshold`={v:?} is not a number (a threshold in [0, 1))"
                ))
            })?),
        };
        let decider = Decider::resolve(stored, threshold, None).map_err(|e| {
            let raw = given.get("threshold").unwrap_or_default();
            tensor::invalid(format!("query parameter `threshold`={raw}: {e}"))
        })?;
        let mut formats = [false; 2];
        for (wanted, key) in formats.iter_mut().zip(["map", "mask"]) {
            match given.get(key) {
                None => {}
                Some("png") => *wanted = true,
                Some(other) => {
                    return Err(tensor::invalid(format!(
                        "query parameter `{key}`={other:?}: the only {key} format is `png`"
                    )))
                }
            }
        }
        let [map, mask] = formats;
        if mask && decider.is_none() {
            return Err(tensor::invalid(
                "mask=png needs a threshold: the model has none stored (`dlvp threshold`) and the request gives no `threshold`",
            ));
        }
        Ok(DetectQuery {
            decider,
            map,
            mask,
            name: given.get("name").map(str::to_string),
            tile: tile_options(&given)?,
        })
    }
}

/// The tiling a request asks for, checked.
fn tile_options(given: &Given) -> Result<Option<TileOptions>, BadRequest> {
    let on = match given.get("tile") {
        None | Some("0") | Some("false") => false,
        Some("1") | Some("true") => true,
        Some(other) => {
            return Err(tensor::invalid(format!(
                "tile={other}: expected 1 or true (0 or false for none)"
            )))
        }
    };
    let number = |key: &str| -> Result<Option<f32>, BadRequest> {
        given
            .get(key)
            .map(|v| {
                v.trim().parse::<f32>().map_err(|_| {
                    tensor::invalid(format!("query parameter `{key}`={v:?} is not a number"))
                })
            })
            .transpose()
    };
    let (scale, overlap) = (number("tile_scale")?, number("tile_overlap")?);
    if !on {
        if scale.is_some() || overlap.is_some() {
            return Err(tensor::invalid("tile_scale and tile_overlap need tile=1"));
        }
        return Ok(None);
    }
    let defaults = TileOptions::default();
    let options = TileOptions {
        scale: scale.unwrap_or(defaults.scale),
        overlap: overlap.unwrap_or(defaults.overlap),
    };
    options.check().map_err(tensor::invalid)?;
    Ok(Some(options))
}

/// The refusal of an unknown parameter: its name, the nearest known one when it is close, and
/// the known ones.
fn unknown(key: &str) -> String {
    let nearest = KNOWN
        .iter()
        .map(|&k| (edits(&key.to_lowercase(), k), k))
        .filter(|&(d, _)| d <= SUGGEST_WITHIN)
        .min_by_key(|&(d, _)| d);
    let hint = match nearest {
        Some((_, k)) => format!(" (did you mean `{k}`?)"),
        None => String::new(),
    };
    format!(
        "unknown query parameter `{key}`{hint}: /v1/detect takes {}",
        KNOWN.join(", ")
    )
}

/// Edits between `a` and `b`: insertions, deletions, substitutions and swaps of two neighbours
/// (the optimal string alignment distance), so `thersh` is as near `thresh` as `thresh` itself is
/// to `thres`.
fn edits(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    // d[i][j]: edits between a[..i] and b[..j].
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &str, stored: Option<&Thresholds>) -> Result<DetectQuery, String> {
        let uri: Uri = format!("/v1/detect?{query}").parse().unwrap();
        DetectQuery::parse(&uri, stored).map_err(|e| e.message)
    }

    fn stored() -> Thresholds {
        Thresholds {
            image: 0.6,
            pixel: 0.7,
            false_alarm: 0.01,
            images: 100,
            tiling: None,
        }
    }

    #[test]
    fn a_threshold_that_cannot_decide_is_refused_by_name_with_its_reason() {
        // NaN would pass every part (every comparison with it is false); so would 1 and above;
        // below 0 would fail every part. Each names `threshold`, and says why.
        for (query, why) in [
            ("threshold=nan", "not a number"),
            ("threshold=NaN", "not a number"),
            ("threshold=inf", "would pass every part"),
            ("threshold=1", "would pass every part"),
            ("threshold=1.5", "would pass every part"),
            ("threshold=-1", "would make every part NG"),
            ("threshold=-inf", "would make every part NG"),
            ("threshold=abc", "is not a number"),
            ("threshold=", "is not a number"),
        ] {
            for stored in [None, Some(&stored())] {
                let e = parse(query, stored).unwrap_err();
                assert!(e.contains("`threshold`") && e.contains(why), "{query}: {e}");
            }
        }
    }

    #[test]
    fn a_threshold_in_the_unit_interval_decides_instead_of_the_stored_one() {
        for (query, image) in [("threshold=0", 0.0), ("threshold=0.5", 0.5), ("", 0.6)] {
            let q = parse(query, Some(&stored())).unwrap();
            assert_eq!(q.decider.map(|d| d.image), Some(image), "{query}");
        }
        assert_eq!(parse("", None).unwrap().decider, None);
    }

    #[test]
    fn an_unknown_parameter_is_refused_naming_it_the_nearest_and_the_known_ones() {
        for (query, key, nearest) in [
            ("treshold=0.1", "treshold", Some("threshold")),
            ("Threshold=0.1", "Threshold", Some("threshold")),
            ("thershold=0.1", "thershold", Some("threshold")),
            (
                "tile_ovelap=0.5&tile=1",
                "tile_ovelap",
                Some("tile_overlap"),
            ),
            ("masks=png", "masks", Some("mask")),
            ("format=png", "format", None),
            ("x=1", "x", None),
        ] {
            let e = parse(query, None).unwrap_err();
            assert!(
                e.contains(&format!("unknown query parameter `{key}`")),
                "{e}"
            );
            match nearest {
                Some(k) => assert!(e.contains(&format!("did you mean `{k}`?")), "{e}"),
                None => assert!(!e.contains("did you mean"), "{e}"),
            }
            assert!(e.ends_with(&KNOWN.join(", ")), "{e}");
        }
    }

    #[test]
    fn a_parameter_given_twice_is_refused() {
        let e = parse("threshold=0.1&threshold=0.2", None).unwrap_err();
        assert!(e.contains("`threshold` is given more than once"), "{e}");
    }

    #[test]
    fn formats_names_and_tiles_are_read_and_checked() {
        let q = parse(
            "map=png&mask=png&threshold=0.5&name=part%201.png&tile=1&tile_scale=0.5",
            None,
        )
        .unwrap();
        assert!(q.map && q.mask);
        assert_eq!(q.name.as_deref(), Some("part 1.png"));
        assert_eq!(
            q.tile,
            Some(TileOptions {
                scale: 0.5,
                overlap: 0.25
            })
        );
        for (query, says) in [
            ("map=jpg", "only map format is `png`"),
            ("mask=png", "mask=png needs a threshold"),
            ("tile=maybe", "tile=maybe"),
            ("tile_scale=0.5", "need tile=1"),
            ("tile=1&tile_overlap=0.95", "overlap"),
            ("tile=1&tile_scale=nan", "tile scale NaN"),
            (
                "tile=1&tile_scale=big",
                "`tile_scale`=\"big\" is not a number",
            ),
        ] {
            let e = parse(query, None).unwrap_err();
            assert!(e.contains(says), "{query}: {e}");
        }
    }

    #[test]
    fn edits_count_a_swap_as_one() {
        for (a, b, want) in [
            ("threshold", "threshold", 0),
            ("treshold", "threshold", 1),
            ("thershold", "threshold", 1),
            ("tile", "tiles", 1),
            ("abc", "", 3),
        ] {
            assert_eq!(edits(a, b), want, "{a} {b}");
        }
    }
}
