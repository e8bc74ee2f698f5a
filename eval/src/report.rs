//! What `dlvp eval` reports, and its renderings: `metrics.json`, `metrics.csv`, a Markdown table,
//! `scores.csv` and a self-contained `report.html` (plots and overlays inlined as data URIs).

use base64::Engine;
use serde::Serialize;

use crate::decisions::{DecisionRates, DecisionThreshold};

/// The six metrics of one category (or their mean); `None` = undefined for these samples.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Metrics {
    pub image_auroc: Option<f64>,
    pub image_ap: Option<f64>,
    pub image_f1_max: Option<f64>,
    pub pixel_auroc: Option<f64>,
    pub pixel_ap: Option<f64>,
    pub aupro: Option<f64>,
}

pub const COLUMNS: [(&str, &str); 6] = [
    ("image_auroc", "image AUROC"),
    ("image_ap", "image AP"),
    ("image_f1_max", "image F1-max"),
    ("pixel_auroc", "pixel AUROC"),
    ("pixel_ap", "pixel AP"),
    ("aupro", "AUPRO@0.3"),
];

impl Metrics {
    pub fn values(&self) -> [Option<f64>; 6] {
        [
            self.image_auroc,
            self.image_ap,
            self.image_f1_max,
            self.pixel_auroc,
            self.pixel_ap,
            self.aupro,
        ]
    }

    fn from_values(v: [Option<f64>; 6]) -> Metrics {
        Metrics {
            image_auroc: v[0],
            image_ap: v[1],
            image_f1_max: v[2],
            pixel_auroc: v[3],
            pixel_ap: v[4],
            aupro: v[5],
        }
    }

    /// The per-metric mean over the categories where that metric is defined (MVTec AD convention:
    /// average of per-category figures), and how many categories each mean covers.
    pub fn mean(all: &[&Metrics]) -> (Metrics, [usize; 6]) {
        let mut sums = [0.0; 6];
        let mut counts = [0usize; 6];
        for m in all {
            for (k, v) in m.values().iter().enumerate() {
                if let Some(v) = v {
                    sums[k] += v;
                    counts[k] += 1;
                }
            }
        }
        let v = std::array::from_fn(|k| (counts[k] > 0).then(|| sums[k] / counts[k] as f64));
        (Metrics::from_values(v), counts)
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct CategoryReport {
    pub name: String,
    pub images: usize,
    pub anomalous: usize,
    /// Images whose maps entered the pixel metrics (normal ones, and anomalous ones with a mask).
    pub pixel_images: usize,
    pub metrics: Metrics,
    /// Pixel AUROC, pixel AP and AUPRO are computed from histograms; the exact values lie in
    /// these [lower, upper] intervals (see `dlvp_eval::pixels`).
    pub pixel_intervals: PixelIntervals,
    pub warnings: Vec<String>,
    /// The false alarms and detections at [`Report::decision`]'s threshold, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decisions: Option<DecisionRates>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct PixelIntervals {
    pub pixel_auroc: Option<[f64; 2]>,
    pub pixel_ap: Option<[f64; 2]>,
    pub aupro: Option<[f64; 2]>,
}

/// One test image's row of `scores.csv`: its score, or why it has none.
#[derive(Clone, Debug, Serialize)]
pub struct ImageScore {
    pub category: String,
    pub defect: String,
    pub anomalous: bool,
    /// `None` when the image was left out (unreadable, or a non-finite score or map).
    pub score: Option<f32>,
    pub image: String,
    /// Why the image was left out.
    pub error: Option<String>,
}

/// An image the evaluation could not score, so that it is in none of the figures: the report
/// lists it (`left_out` in `metrics.json`, a section of `report.html`, a row of `scores.csv`
/// with an empty score) besides the warning in its category.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct LeftOut {
    pub category: String,
    pub image: String,
    pub error: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub model: String,
    pub backend: String,
    pub provider: String,
    pub data: String,
    pub layout: String,
    pub map_size: usize,
    pub categories: Vec<CategoryReport>,
    pub mean: Metrics,
    /// Categories each mean is taken over.
    pub mean_over: [usize; 6],
    pub seconds: f64,
    /// The decision threshold the rates are counted at (the graph's stored threshold, or one
    /// given), and the rates over every image of every category.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<DecisionThreshold>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decisions_all: Option<DecisionRates>,
    /// Every image left out of the figures, over all categories in order (empty when none): a
    /// run with any exits 1, and `images` counts only the scored ones.
    pub left_out: Vec<LeftOut>,
}

fn fmt(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_string(), |v| format!("{:.4}", v))
}

/// RFC 4180: a field holding a comma, a quote or a line break (LF or CR) is quoted.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl Report {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the report serialises")
    }

    pub fn to_csv(&self) -> String {
        let mut s = String::from("category,images,anomalous");
        for (key, _) in COLUMNS {
            s += &format!(",{key}");
        }
        s.push('\n');
        let row = |name: &str, images: String, anomalous: String, m: &Metrics| {
            let vals: Vec<String> = m
                .values()
                .iter()
                .map(|v| v.map_or(String::new(), |v| format!("{v:.6}")))
                .collect();
            format!(
                "{},{images},{anomalous},{}\n",
                csv_field(name),
                vals.join(",")
            )
        };
        for c in &self.categories {
            s += &row(
                &c.name,
                c.images.to_string(),
                c.anomalous.to_string(),
                &c.metrics,
            );
        }
        let images: usize = self.categories.iter().map(|c| c.images).sum();
        let anomalous: usize = self.categories.iter().map(|c| c.anomalous).sum();
        s += &row(
            "mean",
            images.to_string(),
            anomalous.to_string(),
            &self.mean,
        );
        s
    }

    pub fn to_markdown(&self) -> String {
        let mut s = String::from("| category | images | anomalous |");
        for (_, h) in COLUMNS {
            s += &format!(" {h} |");
        }
        s += "\n|---|---:|---:|";
        s += &"---:|".repeat(COLUMNS.len());
        s.push('\n');
        for c in &self.categories {
            s += &format!("| {} | {} | {} |", c.name, c.images, c.anomalous);
            for v in c.metrics.values() {
                s += &format!(" {} |", fmt(v));
            }
            s.push('\n');
        }
        let images: usize = self.categories.iter().map(|c| c.images).sum();
        let anomalous: usize = self.categories.iter().map(|c| c.anomalous).sum();
        s += &format!("| **mean** | {images} | {anomalous} |");
        for v in self.mean.values() {
            s += &format!(" **{}** |", fmt(v));
        }
        s.push('\n');
        if let Some(list) = self.left_out_markdown() {
            s += "\n";
            s += &list;
        }
        if let Some(table) = self.decisions_markdown() {
            s += "\n";
            s += &table;
        }
        s
    }

    /// The images left out of the figures, named (the first [`LISTED`]; all in `metrics.json`).
    fn left_out_markdown(&self) -> Option<String> {
        const LISTED: usize = 10;
        let n = self.left_out.len();
        if n == 0 {
            return None;
        }
        let mut s = format!(
            "**{n} image{} left out** (not scored: in none of the figures above; `left_out` in metrics.json):\n\n",
            if n == 1 { "" } else { "s" }
        );
        for l in self.left_out.iter().take(LISTED) {
            s += &format!("- {}: `{}`: {}\n", l.category, l.image, l.error);
        }
        if n > LISTED {
            s += &format!("- and {} more\n", n - LISTED);
        }
        Some(s)
    }

    /// The decisions at the threshold: per category, then over all images.
    fn decisions_markdown(&self) -> Option<String> {
        let (d, all) = (self.decision.as_ref()?, self.decisions_all.as_ref()?);
        let mut s = format!("{}\n\n", decision_title(d));
        s += "| category | false alarms (good images NG) [95%] | detected (defective images NG) [95%] |\n|---|---:|---:|\n";
        for c in &self.categories {
            if let Some(r) = &c.decisions {
                s += &format!(
                    "| {} | {} | {} |\n",
                    c.name,
                    r.false_alarms.show(),
                    r.detected.show()
                );
            }
        }
        s += &format!(
            "| **all** | **{}** | **{}** |\n",
            all.false_alarms.show(),
            all.detected.show()
        );
        Some(s)
    }

    /// One row per test image; a left-out image has an empty score and its `error` (the last
    /// column, added after the others so that readers of the older columns keep working).
    pub fn scores_csv(scores: &[ImageScore]) -> String {
        let mut s = String::from("category,defect,label,score,image,error\n");
        for r in scores {
            s += &format!(
                "{},{},{},{},{},{}\n",
                csv_field(&r.category),
                csv_field(&r.defect),
                if r.anomalous { "anomaly" } else { "normal" },
                r.score.map_or(String::new(), |v| format!("{v:.6}")),
                csv_field(&r.image),
                csv_field(r.error.as_deref().unwrap_or(""))
            );
        }
        s
    }
}

/// A plot for the HTML report: title, PNG, and legend entries (label, colour).
pub struct Figure {
    pub title: String,
    pub axes: String,
    pub png: Vec<u8>,
    pub legend: Vec<(String, [u8; 3])>,
}

/// An image the model ranked worst: a normal one scored high or an anomalous one scored low.
pub struct Worst {
    pub category: String,
    pub caption: String,
    pub png: Vec<u8>,
}

/// "Decisions at threshold 0.69 (stored in the graph: ...; stated false-alarm rate ≤ 0.05):".
fn decision_title(d: &DecisionThreshold) -> String {
    let stated = d
        .stated_false_alarm
        .map(|a| format!("; calibrated for a false-alarm rate of at most {a}"))
        .unwrap_or_default();
    format!(
        "Decisions at threshold {} ({}{stated}): NG when the score is above it.",
        d.threshold, d.source
    )
}

fn data_uri(png: &[u8]) -> String {
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png)
    )
}

/// The whole report as one HTML file that needs nothing else (no scripts, no external files).
pub fn to_html(report: &Report, figures: &[Figure], worst: &[Worst]) -> String {
    let mut h = String::new();
    h += "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>dlvp eval report</title>\n<style>\n";
    h += "body{font-family:system-ui,sans-serif;margin:2em;color:#222;background:#fff}table{border-collapse:collapse;margin:1em 0}\n";
    h += "td,th{border:1px solid #bbb;padding:4px 10px;text-align:right}td:first-child,th:first-child{text-align:left}\n";
    h += "tr.mean td{font-weight:bold;background:#f2f2f2}.fig{display:inline-block;margin:0 2em 1em 0;vertical-align:top}\n";
    h += ".sw{display:inline-block;width:12px;height:12px;margin:0 4px 0 10px}.worst{display:inline-block;margin:0 1em 1em 0;font-size:12px;max-width:240px;vertical-align:top}\n";
    h += ".worst img{width:224px;height:auto;border:1px solid #999}.warn{color:#a40}#left-out-images td{text-align:left}\n</style></head><body>\n";
    h += "<h1>dlvp eval report</h1>\n";
    h += &format!(
        "<p>Model <code>{}</code> on {} / {}; data <code>{}</code> ({} layout); maps compared with masks at {}×{} px; {:.1} s.</p>\n",
        html_escape(&report.model),
        html_escape(&report.backend),
        html_escape(&report.provider),
        html_escape(&report.data),
        html_escape(&report.layout),
        report.map_size,
        report.map_size,
        report.seconds
    );
    h += "<table id=\"metrics\"><tr><th>category</th><th>images</th><th>anomalous</th>";
    for (_, head) in COLUMNS {
        h += &format!("<th>{head}</th>");
    }
    h += "</tr>\n";
    for c in &report.categories {
        h += &format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td>",
            html_escape(&c.name),
            c.images,
            c.anomalous
        );
        for v in c.metrics.values() {
            h += &format!("<td>{}</td>", fmt(v));
        }
        h += "</tr>\n";
    }
    h += "<tr class=\"mean\"><td>mean</td><td></td><td></td>";
    for v in report.mean.values() {
        h += &format!("<td>{}</td>", fmt(v));
    }
    h += "</tr></table>\n<p>n/a: undefined for these samples (one class only, or no masks). AUPRO as the MVTec AD evaluation defines it (FPR ≤ 0.3, normalised). Pixel metrics come from bounded-memory histograms; <code>metrics.json</code> gives intervals that contain their exact values.</p>\n";
    if let (Some(d), Some(all)) = (&report.decision, &report.decisions_all) {
        h += &format!(
            "<h2>Decisions</h2><p>{}</p>\n<table id=\"decisions\"><tr><th>category</th><th>false alarms (good images NG) [95%]</th><th>detected (defective images NG) [95%]</th></tr>\n",
            html_escape(&decision_title(d))
        );
        for c in &report.categories {
            if let Some(r) = &c.decisions {
                h += &format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                    html_escape(&c.name),
                    r.false_alarms.show(),
                    r.detected.show()
                );
            }
        }
        h += &format!(
            "<tr class=\"mean\"><td>all</td><td>{}</td><td>{}</td></tr></table>\n<p>Intervals: 95% Wilson score intervals of the rates.</p>\n",
            all.false_alarms.show(),
            all.detected.show()
        );
    }
    if !report.left_out.is_empty() {
        h += &format!(
            "<h2 id=\"left-out\">Left out</h2><p class=\"warn\">{} image(s) could not be scored and are in none of the figures above (the run exits 1):</p>\n<table id=\"left-out-images\"><tr><th>category</th><th>image</th><th>why</th></tr>\n",
            report.left_out.len()
        );
        for l in &report.left_out {
            h += &format!(
                "<tr class=\"warn\"><td>{}</td><td><code>{}</code></td><td>{}</td></tr>\n",
                html_escape(&l.category),
                html_escape(&l.image),
                html_escape(&l.error)
            );
        }
        h += "</table>\n";
    }
    let warnings: Vec<&String> = report.categories.iter().flat_map(|c| &c.warnings).collect();
    if !warnings.is_empty() {
        h += "<h2>Warnings</h2><ul class=\"warn\">\n";
        for w in warnings {
            h += &format!("<li>{}</li>\n", html_escape(w));
        }
        h += "</ul>\n";
    }
    h += "<h2>Curves</h2>\n";
    for f in figures {
        h += &format!(
            "<div class=\"fig\"><h3>{}</h3><img alt=\"{}\" src=\"{}\"><br><small>{}</small><br>",
            html_escape(&f.title),
            html_escape(&f.title),
            data_uri(&f.png),
            html_escape(&f.axes)
        );
        for (label, c) in &f.legend {
            h += &format!(
                "<span class=\"sw\" style=\"background:rgb({},{},{})\"></span>{}",
                c[0],
                c[1],
                c[2],
                html_escape(label)
            );
        }
        h += "</div>\n";
    }
    if !worst.is_empty() {
        h += "<h2>Worst-ranked images</h2><p>Per category, the normal images scored highest and the anomalous images scored lowest; ground-truth defects outlined in white. With a decision threshold each caption says whether the image is NG (score above it) or OK there: a good image NG is a false alarm, a defective one OK a miss.</p>\n";
        let mut last = "";
        for w in worst {
            if w.category != last {
                h += &format!("<h3>{}</h3>\n", html_escape(&w.category));
                last = &w.category;
            }
            h += &format!(
                "<div class=\"worst\"><img alt=\"overlay\" src=\"{}\"><br>{}</div>\n",
                data_uri(&w.png),
                html_escape(&w.caption)
            );
        }
    }
    h += "</body></html>\n";
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_with_separators_or_line_breaks_are_quoted() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
        assert_eq!(csv_field("cr\rhere"), "\"cr\rhere\"");
    }

    fn report() -> Report {
        let m = Metrics {
            image_auroc: Some(0.9),
            image_ap: None,
            ..Default::default()
        };
        Report {
            model: "m.onnx".into(),
            backend: "tract".into(),
            provider: "cpu".into(),
            data: "d".into(),
            layout: "mvtec".into(),
            map_size: 56,
            categories: vec![CategoryReport {
                name: "a,b".into(),
                images: 3,
                anomalous: 1,
                pixel_images: 3,
                metrics: m.clone(),
                pixel_intervals: PixelIntervals::default(),
                warnings: vec!["<x> missing".into()],
                decisions: None,
            }],
            mean: m,
            mean_over: [1, 0, 0, 0, 0, 0],
            seconds: 1.0,
            decision: None,
            decisions_all: None,
            left_out: vec![],
        }
    }

    #[test]
    fn decisions_are_reported_only_with_a_threshold() {
        let mut r = report();
        assert!(!r.to_markdown().contains("Decisions"));
        assert!(!r.to_json().contains("decision"));
        assert!(!to_html(&r, &[], &[]).contains("Decisions"));
        let rates = DecisionRates::at(0.5, [(0.1, false), (0.7, false), (0.9, true)]);
        r.categories[0].decisions = Some(rates);
        r.decisions_all = Some(rates);
        r.decision = Some(DecisionThreshold {
            threshold: 0.5,
            stated_false_alarm: Some(0.05),
            source: "stored in the graph".into(),
        });
        let md = r.to_markdown();
        assert!(
            md.contains("Decisions at threshold 0.5 (stored in the graph; calibrated for a false-alarm rate of at most 0.05)"),
            "{md}"
        );
        assert!(
            md.contains("| a,b | 1/2 = 50.0% [9.5, 90.5] | 1/1 = 100.0% [20.7, 100.0] |"),
            "{md}"
        );
        let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(json["decisions_all"]["false_alarms"]["count"], 1);
        assert_eq!(json["categories"][0]["decisions"]["detected"]["of"], 1);
        assert!(to_html(&r, &[], &[]).contains("<table id=\"decisions\">"));
    }

    #[test]
    fn undefined_metrics_are_blank_in_csv_na_in_tables_and_null_in_json() {
        let r = report();
        assert!(r
            .to_csv()
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("\"a,b\",3,1,0.900000,,"));
        assert!(r.to_markdown().contains("| 0.9000 | n/a |"));
        let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert!(json["categories"][0]["metrics"]["image_ap"].is_null());
        let html = to_html(&r, &[], &[]);
        assert!(html.contains("&lt;x&gt; missing") && !html.contains("<x>"));
    }

    #[test]
    fn mean_skips_undefined_values() {
        let a = Metrics {
            image_auroc: Some(1.0),
            aupro: None,
            ..Default::default()
        };
        let b = Metrics {
            image_auroc: Some(0.5),
            aupro: Some(0.4),
            ..Default::default()
        };
        let (m, n) = Metrics::mean(&[&a, &b]);
        assert_eq!(m.image_auroc, Some(0.75));
        assert_eq!(m.aupro, Some(0.4));
        assert_eq!(m.pixel_ap, None);
        assert_eq!(n, [2, 0, 0, 0, 0, 1]);
    }
}
