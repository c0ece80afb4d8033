//! `azlog-fake-azure`: the fake Azure service as a process, seeded with realistic records, for trying
//! the collector by hand or from scripts.

use std::path::PathBuf;

use azlog_collector::config::{SimulateConfig, SimulateMix};
use azlog_collector::event::EventKind;
use azlog_collector::source::simulate::Simulate;
use azlog_e2e::fake_azure::FakeAzure;
use clap::Parser;

/// A fake Azure (Entra ID token endpoint, ARM, Microsoft Graph) on HTTPS with its own CA.
#[derive(Debug, Parser)]
#[command(name = "azlog-fake-azure", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8443")]
    listen: std::net::SocketAddr,
    /// Where to write the CA certificate clients must trust.
    #[arg(long, default_value = "fake-azure-ca.pem")]
    ca_file: PathBuf,
    #[arg(long, default_value = "72f988bf-86f1-41af-91ab-2d7cd011db47")]
    tenant_id: String,
    #[arg(long, default_value = "c44b4083-3bb0-49c1-b47d-974e53cbdf3c")]
    client_id: String,
    /// The client secret the fake accepts for `--client-id`.
    #[arg(long, default_value = "fake-secret")]
    client_secret: String,
    /// Subscriptions the client can read (comma-separated).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "3f2c8a1e-5b7d-4c9a-8e6f-1a2b3c4d5e6f"
    )]
    subscriptions: Vec<String>,
    /// Simulated records to seed per subscription (Activity Log events, alerts, audit records).
    #[arg(long, default_value_t = 1000)]
    records: u64,
    /// Which records to seed: activity, alerts, audits, signins (comma-separated).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "activity,alerts,audits,signins"
    )]
    kinds: Vec<String>,
    /// Items per page on every paged API.
    #[arg(long, default_value_t = 200)]
    page_size: usize,
    /// How long every ARM and Graph answer takes, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
}

#[tokio::main]
async fn main() -> Result<(), String> {
    azlog_collector::install_crypto_provider();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let azure = FakeAzure::start_on(args.listen).await?;
    std::fs::write(&args.ca_file, azure.ca_pem())
        .map_err(|e| format!("cannot write {}: {e}", args.ca_file.display()))?;
    azure.add_client_secret(&args.tenant_id, &args.client_id, &args.client_secret);
    azure.grant_directory_reader(&args.client_id);
    azure.set_page_size(args.page_size);
    azure.set_latency(std::time::Duration::from_millis(args.latency_ms));
    let weight = |kind: &str, weight: u32| {
        if args.kinds.iter().any(|k| k == kind) {
            weight
        } else {
            0
        }
    };
    if ["activity", "alerts", "audits", "signins"]
        .iter()
        .all(|kind| weight(kind, 1) == 0)
    {
        return Err("--kinds names none of activity, alerts, audits, signins".into());
    }
    let mut seeded = [0u64; EventKind::ALL.len()];
    for (i, subscription) in args.subscriptions.iter().enumerate() {
        azure.add_subscription(subscription, &args.tenant_id);
        azure.grant_reader(&args.client_id, subscription);
        let config = SimulateConfig {
            rate: None,
            count: Some(args.records),
            // Each subscription its own records, so ids never repeat across subscriptions.
            seed: 1 + i as u64,
            start_time: Some(chrono::Utc::now() - chrono::TimeDelta::hours(1)),
            subscription_id: subscription.clone(),
            mix: SimulateMix {
                wad: 0,
                activity_log: weight("activity", 3),
                security_alert: weight("alerts", 1),
                directory_audit: weight("audits", 2),
                diagnostic_log: 0,
                sign_in: weight("signins", 1),
            },
        };
        let simulate = Simulate::new(config, 100, None).map_err(|e| e.to_string())?;
        for n in 0..args.records {
            let record = simulate.record(n);
            let value: serde_json::Value =
                serde_json::from_str(record.raw.get()).map_err(|e| e.to_string())?;
            seeded[record.kind.index()] += 1;
            match record.kind {
                EventKind::ActivityLog => azure.push_activity(subscription, value),
                EventKind::SecurityAlert => azure.push_alert(subscription, value),
                EventKind::DirectoryAudit => azure.push_directory_audit(value),
                EventKind::SignIn => azure.push_sign_in(value),
                EventKind::Wad | EventKind::DiagnosticLog => {}
            }
        }
    }
    println!("fake Azure listening on {}", azure.url());
    println!("  CA certificate:  {}", args.ca_file.display());
    println!(
        "  tenant / client: {} / {} (secret: {})",
        args.tenant_id, args.client_id, args.client_secret
    );
    println!("  subscriptions:   {}", args.subscriptions.join(", "));
    let seeded: Vec<String> = EventKind::ALL
        .iter()
        .filter(|kind| seeded[kind.index()] > 0)
        .map(|kind| format!("{} {}", seeded[kind.index()], kind.as_str()))
        .collect();
    println!("  seeded:          {}", seeded.join(", "));
    println!(
        "  token endpoint:  {}/{}/oauth2/v2.0/token",
        azure.url(),
        args.tenant_id
    );
    tokio::signal::ctrl_c().await.map_err(|e| e.to_string())?;
    Ok(())
}
