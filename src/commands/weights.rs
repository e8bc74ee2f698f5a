//! `dlvp weights check CKPT [--spec S] [--json]`: a checkpoint compared with a spec.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Subcommand;
use dlvp_exporter::{check_checkpoint, Checkpoint};

use crate::cli::resolve_spec;

#[derive(Subcommand)]
pub enum WeightsCommand {
    /// List missing, unused, mis-shaped and non-finite tensors; exit 1 if there are any.
    Check {
        /// A safetensors checkpoint (model-spec/README.md, "Checkpoint format").
        checkpoint: PathBuf,
        /// The spec to check against; defaults to the spec stored in the checkpoint's metadata.
        #[arg(long)]
        spec: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: WeightsCommand) -> anyhow::Result<ExitCode> {
    let WeightsCommand::Check {
        checkpoint,
        spec,
        json,
    } = cmd;
    let ckpt = Arc::new(Checkpoint::open(&checkpoint)?);
    let (spec, spec_origin) = resolve_spec(&ckpt, spec)?;
    let report = check_checkpoint(Arc::clone(&ckpt), &spec)?;
    if json {
        let out = serde_json::json!({
            "checkpoint": checkpoint,
            "spec": spec_origin,
            "format": ckpt.format(),
            "ok": report.is_ok(),
            "report": report,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "{}: {} tensors, {:.1} MB, format {}, spec {} ({})",
            checkpoint.display(),
            report.tensors,
            ckpt.data_bytes() as f64 / 1e6,
            ckpt.format().unwrap_or("none (plain OpenCLIP?)"),
            spec.name,
            spec_origin,
        );
        for problem in &report.problems {
            println!("{problem}");
        }
        if report.is_ok() {
            println!(
                "ok: all {} tensors the spec expects are present, well-shaped and finite",
                report.matched
            );
        } else {
            println!(
                "{} problem(s); {} tensors matched",
                report.problems.len(),
                report.matched
            );
        }
    }
    Ok(if report.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
