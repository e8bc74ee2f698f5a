//! `dlvp`: the DLVP-CLIP model compiler and runtime command line.
//!
//! Exit codes: 0 success, 1 the work failed (invalid spec, bad checkpoint, ...), 2 bad usage.

mod cli;
mod commands;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "dlvp",
    version,
    about = "DLVP-CLIP: checkpoint → ONNX graph → anomaly scores and maps"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate or show model specs (model-spec/README.md).
    #[command(subcommand)]
    Spec(commands::spec::SpecCommand),
    /// Check checkpoints against a spec.
    #[command(subcommand)]
    Weights(commands::weights::WeightsCommand),
    /// Compile a checkpoint into one ONNX graph.
    Export(commands::export::ExportArgs),
    /// Describe an ONNX graph: I/O, metadata, ops, parameters.
    Inspect(commands::inspect::InspectArgs),
    /// Score images and write anomaly maps with an exported graph.
    Detect(commands::detect::DetectArgs),
    /// Measure detection quality on a labelled dataset (MVTec AD or VisA layout).
    Eval(commands::eval::EvalArgs),
    /// Measure load time, latency, throughput and memory of a graph on a backend.
    Bench(commands::bench::BenchArgs),
    /// Serve a graph over the KServe v2 / Triton protocol (HTTP, gRPC) with dynamic batching.
    Serve(commands::serve::ServeArgs),
    /// Calibrate decision thresholds on a line's good images (a false-alarm rate you choose) and
    /// store them in the graph.
    Threshold(commands::threshold::ThresholdArgs),
    /// Generate a synthetic defect dataset (MVTec AD layout) for demos, tests and training.
    DemoData(commands::demo_data::DemoDataArgs),
}

impl Command {
    /// Whether the command runs a graph on a backend with TF32 not allowed (`--allow-tf32` absent).
    fn runs_a_graph_without_tf32(&self) -> bool {
        match self {
            Command::Detect(a) => !a.run.allow_tf32,
            Command::Eval(a) => !a.run.allow_tf32,
            Command::Bench(a) => !a.run.allow_tf32,
            Command::Serve(a) => !a.run.allow_tf32,
            Command::Threshold(a) => !a.run.allow_tf32,
            _ => false,
        }
    }
}

fn main() -> ExitCode {
    // Like other Unix tools, stop quietly when the reader of stdout goes away (`dlvp detect ... | head`)
    // instead of panicking on the failed print.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    // TensorRT computes in TF32 unless NVIDIA's libraries find NVIDIA_TF32_OVERRIDE=0 when they
    // initialise, and its provider has no option for it: set here, while this process has one
    // thread, unless --allow-tf32 or the user's own value says otherwise.
    if cli.command.runs_a_graph_without_tf32()
        && std::env::var_os(dlvp_runtime::ort_backend::TF32_OVERRIDE).is_none()
    {
        std::env::set_var(dlvp_runtime::ort_backend::TF32_OVERRIDE, "0");
    }
    // tract's thread count for the whole process (README, Backends); unset: one per CPU.
    if let Some(n) = std::env::var("DLVP_TRACT_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
    {
        dlvp_runtime::tract_backend::set_threads(n);
    }
    let outcome = match cli.command {
        Command::Spec(cmd) => commands::spec::run(cmd),
        Command::Weights(cmd) => commands::weights::run(cmd),
        Command::Export(args) => commands::export::run(args),
        Command::Inspect(args) => commands::inspect::run(args),
        Command::Detect(args) => commands::detect::run(args),
        Command::Eval(args) => commands::eval::run(args),
        Command::Bench(args) => commands::bench::run(args),
        Command::Serve(args) => commands::serve::run(args),
        Command::Threshold(args) => commands::threshold::run(args),
        Command::DemoData(args) => commands::demo_data::run(args),
    };
    match outcome {
        Ok(code) => code,
        Err(err) => {
            // `{:#}` puts the whole context chain on one line: "while X: because Y".
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    /// clap's own consistency checks of every subcommand's flags (ids that `requires` and
    /// `conflicts_with` name must exist in that subcommand), which it otherwise makes only in
    /// debug builds, when the command is first parsed.
    #[test]
    fn every_command_line_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }

    /// Every argument of every subcommand (positionals included) says what it is in `--help`:
    /// a blank entry leaves the user guessing what a flag means or what a file must be.
    #[test]
    fn every_argument_has_help_text() {
        use clap::CommandFactory;
        fn walk(cmd: &clap::Command, path: &str, blank: &mut Vec<String>) {
            let path = format!("{path} {}", cmd.get_name());
            for arg in cmd.get_arguments() {
                // clap's own --help and --version.
                if matches!(arg.get_id().as_str(), "help" | "version") {
                    continue;
                }
                let help = arg.get_help().or(arg.get_long_help());
                if help.is_none_or(|h| h.to_string().trim().is_empty()) {
                    blank.push(format!("{path} {}", arg.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &path, blank);
            }
        }
        let mut blank = Vec::new();
        walk(&super::Cli::command(), "", &mut blank);
        assert!(blank.is_empty(), "arguments without help text: {blank:#?}");
    }
}
