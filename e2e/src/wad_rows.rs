//! Rows as the Windows diagnostics agent writes them to WADWindowsEventLogsTable, for tests that
//! put them into Azurite, and the event id the collector gives each.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};

/// .NET ticks (100 ns since 0001-01-01), what WAD keys are made of.
pub fn ticks(t: DateTime<Utc>) -> i64 {
    (t.timestamp() + 62_135_596_800) * 10_000_000 + i64::from(t.timestamp_subsec_nanos() / 100)
}

/// The classic WAD PartitionKey: "0" + the ticks of the event's minute.
pub fn partition(minute: DateTime<Utc>) -> String {
    let whole = minute.timestamp() - minute.timestamp().rem_euclid(60);
    format!(
        "0{}",
        ticks(DateTime::from_timestamp(whole, 0).expect("time"))
    )
}

/// The bucketed PartitionKey newer diagnostics agents write to spread a minute's rows over several
/// partitions: a bucket number, `___`, then the classic key. One minute's rows are then in several
/// partitions, so the table's key order is no longer time order.
pub fn bucketed_partition(minute: DateTime<Utc>, n: u64) -> String {
    format!("{:019}___{}", n % 4, partition(minute))
}

/// A row as the Windows diagnostics agent writes it to WADWindowsEventLogsTable.
pub fn row(minute: DateTime<Utc>, n: u64) -> Value {
    row_in(partition(minute), minute, n)
}

pub fn row_in(partition_key: String, minute: DateTime<Utc>, n: u64) -> Value {
    let t = minute + TimeDelta::milliseconds((n % 60_000) as i64);
    json!({
        "PartitionKey": partition_key,
        "RowKey": format!("a1b2c3d4e5f64a5b8c9d0e1f2a3b4c5d___WebRole___WebRole_IN_0___{:019}___{n:08}", ticks(t)),
        "EventTickCount": ticks(t),
        "DeploymentId": "a1b2c3d4e5f64a5b8c9d0e1f2a3b4c5d",
        "Role": "WebRole",
        "RoleInstance": "WebRole_IN_0",
        "Level": 4,
        "EventId": 4625,
        "Pid": 636,
        "Tid": 1512,
        "ProviderGuid": "{54849625-5478-4994-A5BA-3E3B0328C30D}",
        "ProviderName": "Microsoft-Windows-Security-Auditing",
        "Channel": "Security",
        "Description": "An account failed to log on.\r\n\r\nSubject:\r\n\tSecurity ID:\t\tS-1-0-0",
        "RawXml": format!("<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'><System><Provider Name='Microsoft-Windows-Security-Auditing'/><EventID>4625</EventID><EventRecordID>{n}</EventRecordID></System></Event>"),
        "PreciseTimeStamp": t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
    })
}

pub fn id(row: &Value) -> String {
    format!(
        "{}|{}",
        row["PartitionKey"].as_str().expect("pk"),
        row["RowKey"].as_str().expect("rk")
    )
}
