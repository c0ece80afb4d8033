//! `kubectl-azlog`: azlog.exe's commands as a kubectl plugin. With the binary on PATH,
//! `kubectl azlog source add|list|delete|status`, `kubectl azlog authorize` and
//! `kubectl azlog createazureid` work like the azlog.exe verbs they replace, writing LogSources and
//! SubscriptionAuthorizations (or printing them, with `--dry-run`, for a GitOps repository).

mod authorize;
mod cluster;
mod show;
mod source;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// azlog.exe's verbs for Kubernetes: LogSources and SubscriptionAuthorizations from the command
/// line.
#[derive(Debug, Parser)]
#[command(name = "kubectl azlog", bin_name = "kubectl azlog", version)]
struct Cli {
    #[command(flatten)]
    target: cluster::Target,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Add, list, inspect or delete LogSources (azlog source add|list|delete).
    #[command(subcommand)]
    Source(SourceCommand),
    /// Grant an identity Reader (or another role) on subscriptions (azlog authorize).
    Authorize(authorize::AuthorizeArgs),
    /// Create an application and service principal for the collector, and grant it (azlog
    /// createazureid).
    Createazureid(authorize::CreateArgs),
}

#[derive(Debug, Subcommand)]
enum SourceCommand {
    /// Create or update a LogSource.
    Add(Box<source::AddArgs>),
    /// The LogSources of the namespace: kind, Ready, last event, lag, events delivered.
    List,
    /// Delete a LogSource (its collector and checkpoint go with it).
    Delete {
        /// The LogSource.
        name: String,
    },
    /// A LogSource's conditions, last error and what to do, and its recent Events.
    Status {
        /// The LogSource.
        name: String,
    },
}

/// What went wrong, in words that say what to do; printed as kubectl prints its errors.
#[derive(Debug)]
pub struct Failure(pub String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(error: E) -> Failure {
        Failure(error.to_string())
    }
}

fn main() -> ExitCode {
    // kube brings a rustls without a chosen provider; the process picks ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: failed to start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message)) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let target = cli.target;
    match cli.command {
        Command::Source(SourceCommand::Add(args)) => source::add(&target, *args).await,
        Command::Source(SourceCommand::List) => show::list(&target).await,
        Command::Source(SourceCommand::Delete { name }) => source::delete(&target, &name).await,
        Command::Source(SourceCommand::Status { name }) => show::status(&target, &name).await,
        Command::Authorize(args) => authorize::authorize(&target, args).await,
        Command::Createazureid(args) => authorize::create(&target, args).await,
    }
}

/// Writes `text` to stdout; a reader that went away (`| head`) ends the command quietly.
pub fn print(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to stdout: {e}");
        std::process::exit(1);
    }
}
