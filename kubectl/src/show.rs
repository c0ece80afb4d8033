//! `kubectl azlog source list` and `status`: what azlog.exe's `source list` showed, and more.

use azlog_operator::crd::LogSource;
use k8s_openapi::api::core::v1::Event;
use kube::ResourceExt;
use kube::api::{Api, ListParams};

use crate::cluster::{self, Target};
use crate::{Failure, print};

/// Rows padded to their widest cell, as kubectl prints tables.
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|v| v.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, cell)| {
                if i + 1 == row.len() {
                    cell.clone()
                } else {
                    format!("{cell:<width$}", width = widths[i])
                }
            })
            .collect();
        out.push_str(cells.join("   ").trim_end());
        out.push('\n');
    }
    out
}

fn or_dash(value: Option<String>) -> String {
    value
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "-".into())
}

fn ready(source: &LogSource) -> Option<(String, String, String)> {
    source
        .condition("Ready")
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// The source kind as the spec names it.
fn kind(source: &LogSource) -> String {
    let spec = &source.spec;
    let kinds = [
        (spec.wad.is_some(), "wad"),
        (spec.diagnostic_logs.is_some(), "diagnosticLogs"),
        (spec.event_hubs.is_some(), "eventHubs"),
        (spec.activity_log.is_some(), "activityLog"),
        (spec.security_alerts.is_some(), "securityAlerts"),
        (spec.entra_audit.is_some(), "entraAudit"),
        (spec.simulate.is_some(), "simulate"),
    ];
    kinds
        .iter()
        .find(|(set, _)| *set)
        .map_or("?", |(_, k)| k)
        .to_owned()
}

pub async fn list(target: &Target) -> Result<(), Failure> {
    let (client, namespace) = cluster::connect(target).await?;
    let api: Api<LogSource> = Api::namespaced(client, &namespace);
    let sources = api
        .list(&ListParams::default())
        .await
        .map_err(|e| Failure(cluster::explain(&e, "list logsources")))?;
    if sources.items.is_empty() {
        eprintln!("No LogSources in namespace {namespace}; add one with kubectl azlog source add");
        return Ok(());
    }
    let mut rows = vec![
        [
            "NAME",
            "KIND",
            "READY",
            "REASON",
            "LAST EVENT",
            "LAG",
            "DELIVERED",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for source in &sources.items {
        let report = source
            .status
            .as_ref()
            .map(|s| s.collector.clone())
            .unwrap_or_default();
        let (status, reason) = ready(source).map_or((None, None), |(s, r, _)| (Some(s), Some(r)));
        rows.push(vec![
            source.name_any(),
            kind(source),
            or_dash(status),
            or_dash(reason),
            or_dash(report.last_event_time),
            or_dash(report.lag_seconds.map(|s| format!("{s}s"))),
            or_dash(report.events_delivered.map(|n| n.to_string())),
        ]);
    }
    print(&table(&rows));
    Ok(())
}

pub async fn status(target: &Target, name: &str) -> Result<(), Failure> {
    let (client, namespace) = cluster::connect(target).await?;
    let api: Api<LogSource> = Api::namespaced(client.clone(), &namespace);
    let source = api
        .get(name)
        .await
        .map_err(|e| Failure(cluster::explain(&e, &format!("get logsource {name}"))))?;
    let mut out = format!("LogSource {namespace}/{name} ({})\n", kind(&source));
    let status = source.status.clone().unwrap_or_default();
    if status.conditions.is_empty() {
        out.push_str(
            "\nNo status yet: is the azlog operator running? (kubectl get pods -n azlog-system)\n",
        );
    } else {
        out.push_str("\nConditions:\n");
        let mut rows = vec![
            ["TYPE", "STATUS", "REASON", "MESSAGE"]
                .map(String::from)
                .to_vec(),
        ];
        rows.extend(status.conditions.iter().map(|c| {
            vec![
                c.type_.clone(),
                c.status.clone(),
                c.reason.clone(),
                c.message.clone(),
            ]
        }));
        out.push_str(&table(&rows));
    }
    let report = &status.collector;
    out.push_str(&format!(
        "\nCollector: last event {}, lag {}, delivered {}, dead-lettered {}\n",
        or_dash(report.last_event_time.clone()),
        or_dash(report.lag_seconds.map(|s| format!("{s}s"))),
        or_dash(report.events_delivered.map(|n| n.to_string())),
        or_dash(report.dead_lettered.map(|n| n.to_string())),
    ));
    if let Some(error) = &report.last_error {
        out.push_str(&format!(
            "\nLast error ({:?}{}, since {}):\n  {}\n",
            error.component,
            error
                .output
                .as_deref()
                .map(|o| format!(" {o}"))
                .unwrap_or_default(),
            error.since,
            error.message
        ));
    }
    if let Some((value, reason, message)) = ready(&source)
        && value != "True"
    {
        out.push_str(&format!("\nWhat to do ({reason}):\n  {message}\n"));
    }
    let events: Api<Event> = Api::namespaced(client, &namespace);
    let selector = format!("involvedObject.kind=LogSource,involvedObject.name={name}");
    match events.list(&ListParams::default().fields(&selector)).await {
        Ok(list) if !list.items.is_empty() => {
            let mut items = list.items;
            items.sort_by_key(|e| {
                e.event_time
                    .as_ref()
                    .map(|t| t.0.to_string())
                    .or_else(|| e.last_timestamp.as_ref().map(|t| t.0.to_string()))
            });
            out.push_str("\nRecent events:\n");
            let mut rows = vec![["TYPE", "REASON", "MESSAGE"].map(String::from).to_vec()];
            rows.extend(items.iter().rev().take(10).rev().map(|e| {
                vec![
                    or_dash(e.type_.clone()),
                    or_dash(e.reason.clone()),
                    or_dash(e.message.clone()),
                ]
            }));
            out.push_str(&table(&rows));
        }
        Ok(_) => out.push_str("\nNo recent events.\n"),
        Err(e) => out.push_str(&format!(
            "\nEvents not shown: {}\n",
            cluster::explain(&e, "list events")
        )),
    }
    print(&out);
    Ok(())
}
