//! The `azlog-collector` command.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use azlog_collector::bench::{self, Scenario};
use azlog_collector::config::{
    Config, ConfigError, FileOutputConfig, JsonFormat, OutputConfig, Retention, SimulateConfig,
    SimulateMix, SourceConfig, StdoutFormat, StdoutOutputConfig, SyslogOutputConfig, from_yaml,
};
use azlog_collector::{platform, service};
use clap::{Parser, Subcommand, ValueEnum};
use tokio::sync::watch;

/// Pulls one Azure security log source and delivers its events to files, syslog and stdout.
///
/// Checkpoints are written only after every output has delivered, so a crash or a dead receiver never
/// loses an event; re-reads are recognised and not delivered twice.
#[derive(Debug, Parser)]
#[command(name = "azlog-collector", version, propagate_version = true)]
struct Cli {
    /// Log level or filter (error, warn, info, debug, trace, or a tracing filter such as
    /// `azlog_collector=debug`).
    #[arg(long, global = true, env = "AZLOG_LOG", default_value = "info")]
    log_level: String,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the collector described by a config file until it is stopped (SIGTERM or Ctrl-C; on
    /// Windows also Ctrl-Break, closing its console, or shutdown).
    Run {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Check a config file and explain every problem in it, without running anything.
    Validate {
        #[arg(long, short)]
        config: PathBuf,
        /// Print the whole configuration with every default filled in.
        #[arg(long)]
        effective: bool,
    },
    /// Simulated Azure security events (VM diagnostics, Activity Log, Defender alerts, Entra audit,
    /// Key Vault logs) into stdout, a folder of JSON files and optionally a syslog receiver. Needs no
    /// Azure account.
    Demo(DemoArgs),
    /// Measure events per CPU-second and peak memory of the encode-and-write paths and the whole pipeline.
    Bench {
        /// Events per scenario.
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// Run one scenario only.
        #[arg(long, value_enum)]
        scenario: Option<Scenario>,
        /// Internal: run the scenario in this process and print its result as JSON.
        #[arg(long, hide = true)]
        child: bool,
    },
}

#[derive(Debug, clap::Args)]
struct DemoArgs {
    /// How many events to generate; 0 runs until interrupted.
    #[arg(long, default_value_t = 100)]
    count: u64,
    /// Events per second; 0 is as fast as the outputs take them.
    #[arg(long, default_value_t = 50.0)]
    rate: f64,
    /// The same seed gives the same events.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Folder for the JSON files (AzureResourceManagerJson, AzureSecurityCenterJson, …) and the
    /// demo's checkpoint.
    #[arg(long, default_value = "azlog-demo")]
    dir: PathBuf,
    /// Also send to this syslog receiver (host:port), RFC 5424 over TCP.
    #[arg(long)]
    syslog: Option<String>,
    /// Do not print events to stdout.
    #[arg(long)]
    quiet: bool,
    /// Print each event to stdout as its JSON line instead of a one-line summary.
    #[arg(long, conflicts_with = "quiet")]
    json: bool,
}

fn init_logging(level: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_new(level).unwrap_or_else(|e| {
        eprintln!("--log-level {level:?} is not a valid filter ({e}); using info");
        tracing_subscriber::EnvFilter::new("info")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(azlog_collector::redact::RedactingStderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Writes a command's answer to stdout. A reader that has gone away (`| head`) is not an error:
/// the command ends quietly, as Unix tools do.
fn print_out(text: &str) -> ExitCode {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot write to stdout: {e}");
            ExitCode::FAILURE
        }
    }
}

fn print_config_error(err: &ConfigError) {
    eprintln!("error: {err}");
    for field in err.field_errors() {
        eprintln!("  - {field}");
    }
}

fn demo_config(args: &DemoArgs) -> Result<Config, ConfigError> {
    let mut outputs = vec![OutputConfig::File(FileOutputConfig {
        name: Some("files".into()),
        directory: args.dir.join("out"),
        format: JsonFormat::Ndjson,
        max_file_bytes: 1024 * 1024,
        max_file_age: Duration::from_secs(10),
        fsync: true,
        // A demo left running must not fill the disk.
        retention: Some(Retention {
            max_bytes: Some(100 * 1024 * 1024),
            max_age: None,
        }),
    })];
    if !args.quiet {
        // People watch the demo: one short line per event, not a wall of JSON (--json for that).
        outputs.push(OutputConfig::Stdout(StdoutOutputConfig {
            name: Some("stdout".into()),
            format: if args.json {
                StdoutFormat::Ndjson
            } else {
                StdoutFormat::Summary
            },
        }));
    }
    if let Some(address) = &args.syslog {
        let syslog: SyslogOutputConfig =
            from_yaml(&format!("name: syslog\naddress: {address:?}\n")).map_err(|message| {
                ConfigError::Parse {
                    origin: "--syslog".into(),
                    location: None,
                    error: azlog_collector::config::FieldError {
                        path: "--syslog".into(),
                        message,
                    },
                }
            })?;
        outputs.push(OutputConfig::Syslog(syslog));
    }
    let config = Config {
        name: "demo".into(),
        subscription_id: None,
        source: SourceConfig::Simulate(SimulateConfig {
            rate: (args.rate > 0.0).then_some(args.rate),
            count: (args.count > 0).then_some(args.count),
            seed: args.seed,
            start_time: None,
            subscription_id: "3f2c8a1e-5b7d-4c9a-8e6f-1a2b3c4d5e6f".into(),
            mix: SimulateMix::default(),
        }),
        azure: None,
        outputs,
        state_dir: args.dir.join("state"),
        checkpoint: Default::default(),
        pipeline: azlog_collector::config::PipelineConfig {
            poll_interval: Duration::from_millis(200),
            ..Default::default()
        },
        health: azlog_collector::config::HealthConfig { listen: None },
    };
    let errors = config.validate();
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError::Invalid {
            origin: "demo flags".into(),
            errors,
        })
    }
}

/// Turns a request to stop (SIGTERM and SIGINT; on Windows Ctrl-C, Ctrl-Break, closing the console
/// and system shutdown) into the pipeline's graceful shutdown; a second request exits at once.
fn shutdown_on_signals() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let mut requests = match platform::StopRequests::listen() {
            Ok(requests) => requests,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for requests to stop");
                return;
            }
        };
        for round in 0..2 {
            tokio::select! {
                () = requests.next() => {}
                () = azlog_collector::output::stdout::CLOSED.notified(), if round == 0 => {
                    tracing::info!("stdout was closed by its reader: stopping; what it did not take is read again at the next start");
                    let _ = tx.send(true);
                    continue;
                }
            }
            if round == 0 {
                tracing::info!(
                    "signal received: finishing in-flight deliveries (send it again to exit now)"
                );
                let _ = tx.send(true);
            } else {
                tracing::warn!(
                    "second signal: exiting now; undelivered events are read again at the next start"
                );
                std::process::exit(130);
            }
        }
    });
    rx
}

fn run_service(config: Config) -> ExitCode {
    // One worker: a collector's work is one source's pages in sequence, so a second worker only
    // adds hand-offs between threads (measured with e2e/scripts/bench-wad: 7.7 µs of CPU per row
    // with two workers, 6.7 with one). It stays a multi-thread runtime so that fsyncs hand the
    // worker to another thread meanwhile (block_in_place) instead of stalling every task.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: failed to start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let shutdown = shutdown_on_signals();
        match service::run(config, shutdown).await {
            Ok(summary) => {
                tracing::info!(
                    events_delivered = summary.events_committed,
                    duplicates_hidden = summary.duplicates,
                    dead_lettered = summary.dead_lettered,
                    undelivered = summary.undelivered,
                    "collector stopped"
                );
                if summary.undelivered {
                    ExitCode::from(3)
                } else {
                    ExitCode::SUCCESS
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "collector failed");
                ExitCode::FAILURE
            }
        }
    })
}

fn main() -> ExitCode {
    azlog_collector::limit_malloc_arenas();
    azlog_collector::install_crypto_provider();
    let cli = Cli::parse();
    init_logging(&cli.log_level, cli.log_format);
    match cli.command {
        Command::Run { config } => match Config::load(&config) {
            Ok(config) => run_service(config),
            Err(e) => {
                print_config_error(&e);
                ExitCode::from(2)
            }
        },
        Command::Validate {
            config: path,
            effective,
        } => match Config::load(&path) {
            Ok(config) if effective => match config.effective_yaml() {
                Ok(yaml) => print_out(&yaml),
                Err(e) => {
                    eprintln!("error: cannot print the configuration: {e}");
                    ExitCode::FAILURE
                }
            },
            Ok(config) => {
                let mut text = format!(
                    "{}: valid\n  source: {} ({})\n",
                    path.display(),
                    config.name,
                    config.source.type_name()
                );
                for (i, output) in config.outputs.iter().enumerate() {
                    text.push_str(&format!(
                        "  output {}: {}\n",
                        output.name(i),
                        output.target()
                    ));
                }
                text.push_str(&format!("  state: {}\n", config.state_dir.display()));
                print_out(&text)
            }
            Err(e) => {
                print_config_error(&e);
                ExitCode::from(2)
            }
        },
        Command::Demo(args) => match demo_config(&args) {
            Ok(config) => {
                let mut targets = vec![args.dir.join("out").display().to_string()];
                if !args.quiet {
                    targets.insert(0, "stdout".into());
                }
                targets.extend(args.syslog.iter().map(|s| format!("syslog {s}")));
                let count = if args.count == 0 {
                    "endless".to_owned()
                } else {
                    args.count.to_string()
                };
                eprintln!(
                    "azlog demo: {count} simulated Azure events -> {}",
                    targets.join(", ")
                );
                let checkpoint = args.dir.join("state/checkpoint.json");
                if checkpoint.exists() {
                    eprintln!(
                        "note: {} holds the checkpoint of an earlier run, so the demo resumes where \
                         it stopped and sends nothing it already sent; delete {} to start over",
                        checkpoint.display(),
                        args.dir.display()
                    );
                }
                run_service(config)
            }
            Err(e) => {
                print_config_error(&e);
                ExitCode::from(2)
            }
        },
        Command::Bench {
            events,
            scenario,
            child,
        } => {
            let result = match (child, scenario) {
                (true, Some(scenario)) => bench::run_scenario(scenario, events)
                    .and_then(|r| serde_json::to_string(&r).map_err(|e| e.to_string()))
                    .map(|json| {
                        print_out(&format!("{json}\n"));
                    }),
                _ => bench::run_all(events, scenario).map(|results| {
                    print_out(&bench::table(&results));
                }),
            };
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: bench failed: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
