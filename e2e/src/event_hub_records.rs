//! Records as diagnostic settings and Entra ID stream them to an event hub, for the end-to-end
//! suites and the benchmark.

use azlog_test_support::examples::first_record;
use chrono::{SecondsFormat, TimeDelta, Utc};
use serde_json::{Value, json};

use crate::fake_event_hubs::FakeEventHubs;

const SUB: &str = "089bd33f-d4ec-47fe-8ba5-0753aa5c5b33";

fn iso(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The kinds of record diagnostic settings and Entra ID stream, in Azure Monitor's common schema:
/// the Activity Log (fields of the public REST example), a Key Vault resource log, and Entra ID
/// sign-ins and audit logs with the Graph record under `properties`.
#[derive(Debug)]
pub struct Records {
    activity: Value,
    audit: Value,
}

impl Default for Records {
    fn default() -> Records {
        Records::new()
    }
}

impl Records {
    pub fn new() -> Records {
        Records {
            activity: first_record("activitylog_GetActivityLogsFiltered.json"),
            audit: first_record("graph_directoryAudits_list_example1.json"),
        }
    }

    pub fn record(&self, n: usize, time: chrono::DateTime<Utc>) -> Value {
        let time = iso(time);
        match n % 5 {
            0 => json!({
                "time": time, "category": "Administrative", "level": "Information",
                "resourceId": format!("/SUBSCRIPTIONS/{SUB}/RESOURCEGROUPS/MSSUPPORTGROUP/PROVIDERS/MICROSOFT.SUPPORT/SUPPORTTICKETS/{n}"),
                "operationName": self.activity["operationName"]["value"],
                "resultType": "Success", "resultSignature": "Succeeded.OK",
                "callerIpAddress": "203.0.113.7",
                "correlationId": self.activity["correlationId"],
                "identity": {"authorization": self.activity["authorization"], "claims": self.activity["claims"]},
                "properties": {"statusCode": "OK", "serviceRequestId": null}
            }),
            1 => json!({
                "time": time, "category": "AuditEvent", "level": "Informational",
                "resourceId": format!("/SUBSCRIPTIONS/{SUB}/RESOURCEGROUPS/SECURITY/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/CONTOSO-KV"),
                "operationName": "SecretGet", "operationVersion": "7.4", "resultType": "Success",
                "resultSignature": "OK", "durationMs": "12", "callerIpAddress": "10.1.2.3",
                "identity": {"claim": {"appid": "1950a258-227b-4e31-a9cf-717495945fc2"}},
                "properties": {"id": format!("https://contoso-kv.vault.azure.net/secrets/db-password/{n}"), "httpStatusCode": 200}
            }),
            2 | 3 => json!({
                "time": time,
                "category": if n % 5 == 2 { "SignInLogs" } else { "NonInteractiveUserSignInLogs" },
                "operationName": "Sign-in activity", "resultType": "50126",
                "resultDescription": "Invalid username or password.",
                "tenantId": "72f988bf-86f1-41af-91ab-2d7cd011db47",
                "properties": {
                    "id": format!("sign-in-{n}"), "createdDateTime": time,
                    "userPrincipalName": "alice@contoso.com", "appDisplayName": "Azure Portal",
                    "ipAddress": "203.0.113.7", "clientAppUsed": "Browser",
                    "riskLevelDuringSignIn": "none",
                    "status": {"errorCode": 50126, "failureReason": "Invalid username or password."}
                }
            }),
            _ => {
                let mut audit = self.audit.clone();
                audit["id"] = json!(format!("audit-{n}"));
                audit["activityDateTime"] = json!(time);
                json!({
                    "time": time, "category": "AuditLogs", "operationName": audit["activityDisplayName"],
                    "resultType": "success", "tenantId": "72f988bf-86f1-41af-91ab-2d7cd011db47",
                    "properties": audit
                })
            }
        }
    }

    /// Sends `events` envelopes of `per_event` records to `partition`; returns their ids.
    pub fn send(
        &self,
        hub: &FakeEventHubs,
        partition: usize,
        events: usize,
        per_event: usize,
    ) -> Vec<String> {
        let first = hub.sizes()[partition];
        let mut ids = Vec::with_capacity(events * per_event);
        for sequence in first..first + events {
            let records: Vec<Value> = (0..per_event)
                .map(|i| {
                    ids.push(format!("{partition}:{sequence}:{i}"));
                    self.record(sequence * per_event + i, Utc::now() - TimeDelta::minutes(5))
                })
                .collect();
            let body = serde_json::to_vec(&json!({ "records": records })).expect("json");
            hub.send(partition, body);
        }
        ids
    }
}
