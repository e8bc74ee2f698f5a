//! `dlvp eval`'s library: anomaly-detection metrics that match scikit-learn and the MVTec AD
//! evaluation, bounded-memory pixel metrics, the MVTec AD / VisA dataset layouts, one category's
//! evaluation with any scorer ([`evaluate`]), a whole dataset's evaluation and its files
//! ([`run`]), the report (JSON, CSV, Markdown, plots, self-contained HTML), decision
//! thresholds with a stated false-alarm rate ([`threshold`], split-conformal), and what a
//! threshold does on a labelled set ([`decisions`]: false-alarm and detection rates).

pub mod dataset;
pub mod decisions;
pub mod evaluate;
pub mod metrics;
pub mod pixels;
pub mod plot;
pub mod report;
pub mod run;
pub mod threshold;
