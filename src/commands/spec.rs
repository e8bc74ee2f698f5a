//! `dlvp spec validate FILE...` and `dlvp spec show FILE`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};
use dlvp_exporter::Spec;

#[derive(Subcommand)]
pub enum SpecCommand {
    /// Check that each spec parses and describes a buildable model; exit 1 if any does not.
    Validate {
        /// Spec files (YAML or JSON, model-spec/README.md) to check, one `ok` line or error each.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print the resolved spec, every default filled in.
    Show {
        /// The spec file (YAML or JSON, model-spec/README.md) to resolve.
        file: PathBuf,
        /// How to print it.
        #[arg(long, value_enum, default_value_t = Format::Yaml)]
        format: Format,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    /// YAML, as spec files are written.
    Yaml,
    /// JSON, for scripts.
    Json,
}

pub fn run(cmd: SpecCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SpecCommand::Validate { files } => {
            let mut failed = false;
            for file in &files {
                match Spec::load(file) {
                    Ok(spec) => println!("{}: ok ({})", file.display(), summary(&spec)),
                    Err(err) => {
                        eprintln!("error: {err}");
                        failed = true;
                    }
                }
            }
            Ok(if failed {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        SpecCommand::Show { file, format } => {
            let spec = Spec::load(&file)?;
            match format {
                Format::Yaml => print!("{}", spec.to_yaml()),
                Format::Json => println!("{}", serde_json::to_string_pretty(&spec)?),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// One line that tells two specs apart at a glance.
pub fn summary(spec: &Spec) -> String {
    let v = &spec.vision;
    format!(
        "{}: ViT {}×{} p{} @ {} px, {g}×{g} grid, text {}×{}, K={}, feature layers {:?}",
        spec.name,
        v.layers,
        v.width,
        v.patch_size,
        spec.image_size,
        spec.text.layers,
        spec.text.width,
        spec.slfs.top_k,
        spec.feature_layers,
        g = spec.grid(),
    )
}
