//! The `simulate` source: realistic Azure security records with no Azure account.
//!
//! Record `n` is a pure function of the seed and `n`, so the cursor is just the next sequence number
//! and a re-read after a crash regenerates byte-identical records with identical ids. The shapes follow
//! the public REST API examples (shared/data/azure-examples) and what the WAD agent writes to tables.

use std::fmt::Write as _;
use std::time::Duration;

use crate::checkpoint::Offsets;
use crate::json::RawJson;
use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::{Batch, Fetch, Source, SourceError};
use crate::config::SimulateConfig;
use crate::event::EventKind;
use crate::json::JsonStr as J;
use crate::normalise::RawRecord;
use crate::rng::Rng;

/// The position of the simulation, stored in the checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SimulateCursor {
    /// Sequence number of the next record.
    next: u64,
    /// Event time of record 0; later records are spaced by the configured rate.
    epoch: DateTime<Utc>,
}

#[derive(Debug)]
pub struct Simulate {
    config: SimulateConfig,
    batch_size: usize,
    cursor: SimulateCursor,
    /// Where this process started, for pacing a configured rate.
    started: (tokio::time::Instant, u64),
    weights: [(EventKind, u32); 6],
}

impl Simulate {
    pub fn new(
        config: SimulateConfig,
        batch_size: usize,
        cursor: Option<serde_json::Value>,
    ) -> Result<Self, SourceError> {
        let cursor = match cursor {
            Some(value) => serde_json::from_value(value)
                .map_err(|e| SourceError::Cursor(format!("simulate cursor: {e}")))?,
            None => SimulateCursor {
                next: 0,
                epoch: config
                    .start_time
                    .unwrap_or_else(|| Utc::now().trunc_subsecs(3)),
            },
        };
        let mix = &config.mix;
        let weights = [
            (EventKind::Wad, mix.wad),
            (EventKind::ActivityLog, mix.activity_log),
            (EventKind::SecurityAlert, mix.security_alert),
            (EventKind::DirectoryAudit, mix.directory_audit),
            (EventKind::DiagnosticLog, mix.diagnostic_log),
            (EventKind::SignIn, mix.sign_in),
        ];
        Ok(Simulate {
            started: (tokio::time::Instant::now(), cursor.next),
            config,
            batch_size,
            cursor,
            weights,
        })
    }

    /// How many records may be emitted now without exceeding the configured rate.
    fn due(&self) -> u64 {
        let limit = self.config.count.unwrap_or(u64::MAX);
        let remaining = limit.saturating_sub(self.cursor.next);
        let by_rate = match self.config.rate {
            None => u64::MAX,
            Some(rate) => {
                let elapsed = self.started.0.elapsed().as_secs_f64();
                let allowed = self.started.1 + (elapsed * rate) as u64 + 1;
                allowed.saturating_sub(self.cursor.next)
            }
        };
        remaining.min(by_rate).min(self.batch_size as u64)
    }

    fn spacing_nanos(&self) -> i64 {
        self.config.rate.map_or(1_000, |rate| (1e9 / rate) as i64)
    }

    /// Record number `n`, identical on every call.
    pub fn record(&self, n: u64) -> RawRecord {
        let mut rng = Rng::new(self.config.seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let total: u32 = self.weights.iter().map(|w| w.1).sum();
        let mut pick = rng.below(u64::from(total.max(1))) as u32;
        let kind = self
            .weights
            .iter()
            .find(|(_, w)| {
                if pick < *w {
                    true
                } else {
                    pick -= w;
                    false
                }
            })
            .map_or(EventKind::ActivityLog, |w| w.0);
        let offset = self
            .spacing_nanos()
            .saturating_mul(i64::try_from(n).unwrap_or(i64::MAX));
        let time = self.cursor.epoch + TimeDelta::nanoseconds(offset);
        let ctx = Gen {
            rng,
            n,
            time,
            subscription: self.config.subscription_id.as_str(),
        };
        let (json, id_hint) = match kind {
            EventKind::Wad => (ctx.wad(), None),
            EventKind::ActivityLog => (ctx.activity(), None),
            EventKind::SecurityAlert => (ctx.alert(), None),
            EventKind::DirectoryAudit => (ctx.audit(), None),
            EventKind::DiagnosticLog => (ctx.key_vault(), Some(format!("simulate:{n}"))),
            EventKind::SignIn => (ctx.sign_in(), None),
        };
        RawRecord {
            kind,
            raw: RawJson::parse(json).unwrap_or_else(|_| RawJson::null()),
            id_hint,
            wad_columns: None,
            schema: crate::normalise::Schema::Api,
        }
    }
}

impl Source for Simulate {
    const KIND: &'static str = "simulate";

    async fn fetch(&mut self) -> Result<Fetch, SourceError> {
        if self.config.count.is_some_and(|c| self.cursor.next >= c) {
            return Ok(Fetch::Exhausted);
        }
        let mut due = self.due();
        if due == 0 {
            if let Some(rate) = self.config.rate {
                tokio::time::sleep(Duration::from_secs_f64(1.0 / rate)).await;
            }
            due = self.due();
            if due == 0 {
                return Ok(Fetch::CaughtUp);
            }
        }
        let start = self.cursor.next;
        let records = (start..start + due).map(|n| self.record(n)).collect();
        self.cursor.next = start + due;
        let cursor = serde_json::to_value(&self.cursor)
            .map_err(|e| SourceError::Cursor(format!("simulate cursor: {e}")))?;
        Ok(Fetch::Batch(Batch {
            records,
            malformed: Vec::new(),
            cursor,
            offsets: Offsets::new(),
        }))
    }
}

const USERS: &[&str] = &[
    "alice@contoso.com",
    "bob.smith@contoso.com",
    "josé.garcía@contoso.com",
    "zoë.müller@contoso.de",
    "山田太郎@contoso.jp",
    "svc-backup@contoso.com",
    "admin@contoso.onmicrosoft.com",
];
const VMS: &[&str] = &["web-01", "web-02", "sql-01", "dc-01", "jump-01"];
const GROUPS: &[&str] = &["prod-web", "prod-data", "identity", "shared-services"];

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// .NET ticks (100 ns since 0001-01-01), the unit of WAD partition and row keys.
fn ticks(t: DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt().unwrap_or(0) / 100 + 621_355_968_000_000_000
}

struct Gen<'a> {
    rng: Rng,
    n: u64,
    time: DateTime<Utc>,
    subscription: &'a str,
}

impl Gen<'_> {
    fn wad(mut self) -> String {
        let vm = *self.rng.pick(VMS);
        let user = *self.rng.pick(USERS);
        let ip = self.rng.ip();
        let (event_id, level, channel, provider, task, description) = match self.rng.below(7) {
            0 => (4625, 0, "Security", "Microsoft-Windows-Security-Auditing", 12544,
                format!("An account failed to log on.\r\n\r\nSubject:\r\n\tSecurity ID:\t\tS-1-0-0\r\n\r\nLogon Type:\t\t\t3\r\n\r\nAccount For Which Logon Failed:\r\n\tAccount Name:\t\t{user}\r\n\r\nFailure Information:\r\n\tFailure Reason:\t\tUnknown user name or bad password.\r\n\r\nNetwork Information:\r\n\tSource Network Address:\t{ip}")),
            1 => (4624, 0, "Security", "Microsoft-Windows-Security-Auditing", 12544,
                format!("An account was successfully logged on.\r\n\r\nNew Logon:\r\n\tAccount Name:\t\t{user}\r\n\tSource Network Address:\t{ip}")),
            2 => (4688, 0, "Security", "Microsoft-Windows-Security-Auditing", 13312,
                "A new process has been created.\r\n\r\nProcess Information:\r\n\tNew Process Name:\tC:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe\r\n\tProcess Command Line:\tpowershell.exe -enc \"SQBFAFgA\" [bypass]".to_owned()),
            3 => (4720, 0, "Security", "Microsoft-Windows-Security-Auditing", 13824,
                format!("A user account was created.\r\n\r\nNew Account:\r\n\tAccount Name:\t\t{user}")),
            4 => (1102, 4, "Security", "Microsoft-Windows-Eventlog", 104,
                "The audit log was cleared.\r\nSubject:\r\n\tAccount Name:\tadministrator".to_owned()),
            5 => (7045, 4, "System", "Service Control Manager", 0,
                "A service was installed in the system.\r\n\r\nService Name:  PSEXESVC\r\nService File Name:  %SystemRoot%\\PSEXESVC.exe".to_owned()),
            _ => (7036, 4, "System", "Service Control Manager", 0,
                "The Windows Update service entered the stopped state.".to_owned()),
        };
        let record_id = 100_000 + self.n;
        let (pid, tid) = (500 + self.rng.below(5000), 1000 + self.rng.below(9000));
        let deployment = format!(
            "{:032x}",
            u128::from(self.rng.next_u64()) << 64 | u128::from(self.n)
        );
        let event_ticks = ticks(self.time);
        let minute_ticks = event_ticks - event_ticks % 600_000_000;
        let time = iso(self.time);
        let raw_xml = format!(
            "<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'><System><Provider Name='{provider}'/><EventID>{event_id}</EventID><Version>0</Version><Level>{level}</Level><Task>{task}</Task><Opcode>0</Opcode><Keywords>0x8020000000000000</Keywords><TimeCreated SystemTime='{time}'/><EventRecordID>{record_id}</EventRecordID><Correlation/><Execution ProcessID='{pid}' ThreadID='{tid}'/><Channel>{channel}</Channel><Computer>{vm}.contoso.local</Computer><Security/></System><EventData><Data Name='TargetUserName'>{user}</Data><Data Name='IpAddress'>{ip}</Data></EventData></Event>"
        );
        let mut out = String::with_capacity(2048);
        let _ = write!(
            out,
            r#"{{"PartitionKey":"0{minute_ticks}","RowKey":{rk},"Timestamp":"{time}","PreciseTimeStamp":"{time}","TIMESTAMP":"{time}","EventTickCount":"{event_ticks}","EventTickCount@odata.type":"Edm.Int64","DeploymentId":"{deployment}","Role":"IaaS","RoleInstance":"_{vm}","ProviderGuid":"{{54849625-5478-4994-a5ba-3e3b0328c30d}}","ProviderName":"{provider}","EventId":{event_id},"Level":{level},"Pid":{pid},"Tid":{tid},"Opcode":0,"Task":{task},"Channel":"{channel}","Description":{desc},"RawXml":{xml}}}"#,
            rk = J(&format!(
                "{deployment}___IaaS___{vm}___{event_ticks:019}___{record_id}"
            )),
            desc = J(&description),
            xml = J(&raw_xml),
        );
        out
    }

    fn activity(mut self) -> String {
        let (operation, display, category, level, status) = match self.rng.below(6) {
            0 => (
                "Microsoft.Compute/virtualMachines/write",
                "Create or Update Virtual Machine",
                "Administrative",
                "Informational",
                "Succeeded",
            ),
            1 => (
                "Microsoft.Network/networkSecurityGroups/securityRules/write",
                "Create or Update Security Rule",
                "Administrative",
                "Informational",
                "Succeeded",
            ),
            2 => (
                "Microsoft.Authorization/roleAssignments/write",
                "Create role assignment",
                "Administrative",
                "Informational",
                "Succeeded",
            ),
            3 => (
                "Microsoft.KeyVault/vaults/delete",
                "Delete Key Vault",
                "Administrative",
                "Warning",
                "Failed",
            ),
            4 => (
                "Microsoft.Storage/storageAccounts/listKeys/action",
                "List Storage Account Keys",
                "Administrative",
                "Informational",
                "Succeeded",
            ),
            _ => (
                "Microsoft.Security/locations/alerts/activate/action",
                "Activate alert",
                "Security",
                "Error",
                "Active",
            ),
        };
        let provider = operation.split('/').next().unwrap_or("Microsoft.Resources");
        let caller = *self.rng.pick(USERS);
        let group = *self.rng.pick(GROUPS);
        let sub = self.subscription;
        let resource = format!(
            "/subscriptions/{sub}/resourceGroups/{group}/providers/{provider}/res-{:04}",
            self.rng.below(10_000)
        );
        let (event_data_id, correlation, request) =
            (self.rng.uuid(), self.rng.uuid(), self.rng.uuid());
        let ip = self.rng.ip();
        let time = iso(self.time);
        let submitted = iso(self.time + TimeDelta::seconds(13));
        let event_ticks = ticks(self.time);
        format!(
            r#"{{"authorization":{{"action":"{operation}","scope":"{resource}"}},"caller":{c},"channels":"Operation","claims":{{"aud":"https://management.core.windows.net/","iss":"https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/","http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn":{c},"appid":"c44b4083-3bb0-49c1-b47d-974e53cbdf3c","ipaddr":"{ip}"}},"correlationId":"{correlation}","description":"","eventDataId":"{event_data_id}","eventName":{{"value":"EndRequest","localizedValue":"End request"}},"category":{{"value":"{category}","localizedValue":"{category}"}},"httpRequest":{{"clientRequestId":"{request}","clientIpAddress":"{ip}","method":"PUT"}},"id":"{resource}/events/{event_data_id}/ticks/{event_ticks}","level":"{level}","resourceGroupName":"{group}","resourceProviderName":{{"value":"{provider}","localizedValue":"{provider}"}},"resourceId":"{resource}","resourceType":{{"value":"{provider}","localizedValue":"{provider}"}},"operationId":"{correlation}","operationName":{{"value":"{operation}","localizedValue":"{display}"}},"properties":{{"statusCode":"OK"}},"status":{{"value":"{status}","localizedValue":"{status}"}},"subStatus":{{"value":"","localizedValue":""}},"eventTimestamp":"{time}","submissionTimestamp":"{submitted}","subscriptionId":"{sub}","tenantId":"72f988bf-86f1-41af-91ab-2d7cd011db47"}}"#,
            c = J(caller),
        )
    }

    fn alert(mut self) -> String {
        let (alert_type, display, severity, intent, description) = match self.rng.below(5) {
            0 => (
                "VM_RDPBruteForce",
                "Suspicious RDP brute force attempt",
                "Medium",
                "PreAttack",
                "Several failed logons were detected from one source IP; \"administrator\" was targeted [T1110].",
            ),
            1 => (
                "VM_SuspiciousPowerShell",
                "Suspicious PowerShell command line",
                "High",
                "Execution",
                "A PowerShell command line with an encoded payload was run:\npowershell.exe -enc SQBFAFgA...",
            ),
            2 => (
                "KV_UnusualAccess",
                "Unusual user accessed a key vault",
                "Medium",
                "CredentialAccess",
                "A user that rarely accesses this key vault listed its secrets.",
            ),
            3 => (
                "Storage.Blob_AnonymousAccessAnomaly",
                "Anonymous access to a storage account",
                "Low",
                "Collection",
                "A blob container was accessed anonymously from an unusual location.",
            ),
            _ => (
                "VM_EICAR",
                "Azure Security Center test alert (not a threat)",
                "High",
                "Execution",
                "This is a test alert generated by Azure Security Center. No further action is needed.",
            ),
        };
        // One alert in five is the resolution of an alert raised a little earlier: same name, new status.
        let (name_n, status) = if self.rng.below(5) == 0 && self.n >= 10 {
            (self.n - 1 - self.rng.below(10), "Resolved")
        } else {
            (self.n, "Active")
        };
        let name = format!(
            "{}_{:016x}",
            2_518_298_467_986_649_999u64.wrapping_sub(name_n),
            name_n.wrapping_mul(0x2545_F491_4F6C_DD1D)
        );
        let vm = *self.rng.pick(VMS);
        let group = *self.rng.pick(GROUPS);
        let sub = self.subscription;
        let resource = format!(
            "/subscriptions/{sub}/resourceGroups/{group}/providers/Microsoft.Compute/virtualMachines/{vm}"
        );
        let workspace = self.rng.uuid();
        let time = iso(self.time);
        format!(
            r#"{{"id":"/subscriptions/{sub}/resourceGroups/{group}/providers/Microsoft.Security/locations/westeurope/alerts/{name}","name":"{name}","type":"Microsoft.Security/Locations/alerts","properties":{{"version":"2022-01-01","alertType":"{alert_type}","systemAlertId":"{name}","productComponentName":"Servers","alertDisplayName":"{display}","description":{d},"severity":"{severity}","intent":"{intent}","startTimeUtc":"{time}","endTimeUtc":"{time}","resourceIdentifiers":[{{"azureResourceId":"{resource}","type":"AzureResource"}},{{"workspaceId":"{workspace}","workspaceSubscriptionId":"{sub}","workspaceResourceGroup":"{group}","agentId":"75724a01-f021-4aa8-9ec2-329792373e6e","type":"LogAnalytics"}}],"remediationSteps":["Review the activity of the affected machine."],"vendorName":"Microsoft","status":"{status}","extendedLinks":[],"alertUri":"https://portal.azure.com/#blade/Microsoft_Azure_Security/AlertBlade/alertId/{name}/subscriptionId/{sub}","timeGeneratedUtc":"{time}","productName":"Microsoft Defender for Cloud","processingEndTimeUtc":"{time}","entities":[{{"type":"host","hostName":"{vm}"}}],"isIncident":false,"correlationKey":"{workspace}","extendedProperties":{{"resourceType":"Virtual Machine"}},"compromisedEntity":"{vm}"}}}}"#,
            d = J(description),
        )
    }

    fn audit(mut self) -> String {
        let (activity, category, service, op) = match self.rng.below(5) {
            0 => (
                "Add member to group",
                "GroupManagement",
                "Core Directory",
                "Assign",
            ),
            1 => (
                "Reset user password",
                "UserManagement",
                "Self-service Password Management",
                "Update",
            ),
            2 => (
                "Add app role assignment to service principal",
                "ApplicationManagement",
                "Core Directory",
                "Assign",
            ),
            3 => (
                "Update conditional access policy",
                "Policy",
                "Conditional Access",
                "Update",
            ),
            _ => ("Add user", "UserManagement", "Core Directory", "Add"),
        };
        let failed = self.rng.below(8) == 0;
        let (result, reason) = if failed {
            (
                "failure",
                "Insufficient privileges to complete the operation.",
            )
        } else {
            ("success", "")
        };
        let user = *self.rng.pick(USERS);
        let target = *self.rng.pick(USERS);
        let (id_uuid, correlation, uid, tid) = (
            self.rng.uuid(),
            self.rng.uuid(),
            self.rng.uuid(),
            self.rng.uuid(),
        );
        let ip = self.rng.ip();
        let time = iso(self.time);
        let short = &correlation[..8];
        format!(
            r#"{{"id":"Directory_{id_uuid}_{short}_{n}","category":"{category}","correlationId":"{correlation}","result":"{result}","resultReason":"{reason}","activityDisplayName":"{activity}","activityDateTime":"{time}","loggedByService":"{service}","operationType":"{op}","initiatedBy":{{"app":null,"user":{{"id":"{uid}","displayName":null,"userPrincipalName":{u},"ipAddress":"{ip}","userType":null,"homeTenantId":null,"homeTenantName":null}}}},"targetResources":[{{"id":"{tid}","displayName":null,"type":"User","userPrincipalName":{t},"groupType":null,"modifiedProperties":[{{"displayName":"AccountEnabled","oldValue":"[false]","newValue":"[true]"}}]}}],"additionalDetails":[{{"key":"UserAgent","value":"Mozilla/5.0 (Windows NT 10.0; Win64; x64)"}}]}}"#,
            n = self.n,
            u = J(user),
            t = J(target),
        )
    }

    fn sign_in(mut self) -> String {
        let (app, client) = *self.rng.pick(&[
            ("Azure Portal", "Browser"),
            ("Microsoft Teams", "Mobile Apps and Desktop clients"),
            ("Azure CLI", "Mobile Apps and Desktop clients"),
            ("Office 365 Exchange Online", "Exchange ActiveSync"),
        ]);
        let (code, reason) = *self.rng.pick(&[
            (0, "Other."),
            (0, "Other."),
            (0, "Other."),
            (
                50126,
                "Error validating credentials due to invalid username or password.",
            ),
            (50074, "Strong Authentication is required."),
        ]);
        let risk = if code == 50126 && self.rng.below(3) == 0 {
            "medium"
        } else {
            "none"
        };
        let user = *self.rng.pick(USERS);
        let (id, uid, app_id, correlation) = (
            self.rng.uuid(),
            self.rng.uuid(),
            self.rng.uuid(),
            self.rng.uuid(),
        );
        let ip = self.rng.ip();
        let (city, country) =
            *self
                .rng
                .pick(&[("Redmond", "US"), ("Berlin", "DE"), ("Tokyo", "JP")]);
        let time = iso(self.time);
        format!(
            r#"{{"id":"{id}","createdDateTime":"{time}","userDisplayName":null,"userPrincipalName":{u},"userId":"{uid}","appId":"{app_id}","appDisplayName":"{app}","ipAddress":"{ip}","clientAppUsed":"{client}","correlationId":"{correlation}","conditionalAccessStatus":"notApplied","isInteractive":true,"riskDetail":"none","riskLevelAggregated":"none","riskLevelDuringSignIn":"{risk}","riskState":"none","riskEventTypes_v2":[],"resourceDisplayName":"Windows Azure Service Management API","resourceId":"797f4846-ba00-4fd7-ba43-dac1f8f63013","status":{{"errorCode":{code},"failureReason":"{reason}","additionalDetails":null}},"deviceDetail":{{"deviceId":"","displayName":null,"operatingSystem":"Windows 10","browser":"Edge 120.0.0","isCompliant":false,"isManaged":false,"trustType":null}},"location":{{"city":"{city}","state":null,"countryOrRegion":"{country}","geoCoordinates":null}},"appliedConditionalAccessPolicies":[]}}"#,
            u = J(user),
        )
    }

    fn key_vault(mut self) -> String {
        let (operation, result, code) = match self.rng.below(4) {
            0 => ("SecretGet", "Success", 200),
            1 => ("SecretList", "Success", 200),
            2 => ("VaultGet", "Success", 200),
            _ => ("SecretGet", "Unauthorized", 403),
        };
        let group = *self.rng.pick(GROUPS);
        let sub = self.subscription;
        let (correlation, oid) = (self.rng.uuid(), self.rng.uuid());
        let ip = self.rng.ip();
        let upn = *self.rng.pick(USERS);
        let time = iso(self.time);
        format!(
            r#"{{"time":"{time}","resourceId":"/SUBSCRIPTIONS/{sub}/RESOURCEGROUPS/{group}/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/KV-{g}","operationName":"{operation}","operationVersion":"7.4","category":"AuditEvent","resultType":"{result}","resultSignature":"{code}","resultDescription":"","durationMs":"{ms}","callerIpAddress":"{ip}","correlationId":"{correlation}","identity":{{"claim":{{"oid":"{oid}","upn":{u}}}}},"properties":{{"id":"https://kv-{g}.vault.azure.net/secrets/db-password","clientInfo":"azsdk-net-Security.KeyVault.Secrets/4.5.0","httpStatusCode":{code},"requestUri":"https://kv-{g}.vault.azure.net/secrets/db-password?api-version=7.4","isAccessPolicyMatch":true,"tlsVersion":"TLS1_2"}}}}"#,
            g = group.to_uppercase(),
            ms = 5 + self.rng.below(90),
            u = J(upn),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SimulateMix;
    use crate::normalise::{NormaliseContext, normalise};
    use std::sync::Arc;

    fn simulate(seed: u64) -> Simulate {
        let config = SimulateConfig {
            rate: None,
            count: Some(1000),
            seed,
            start_time: None,
            subscription_id: "00000000-0000-0000-0000-00000000cafe".into(),
            mix: SimulateMix::default(),
        };
        Simulate::new(config, 100, None).expect("simulate")
    }

    #[test]
    fn every_simulated_record_normalises_with_a_unique_id() {
        let sim = simulate(42);
        let ctx = NormaliseContext {
            source_name: Arc::from("demo"),
            subscription_id: None,
        };
        let mut ids = std::collections::HashSet::new();
        let mut kinds = std::collections::HashSet::new();
        for n in 0..1000 {
            let record = sim.record(n);
            let event =
                normalise(record, &ctx).unwrap_or_else(|r| panic!("record {n}: {}", r.error));
            kinds.insert(event.kind);
            assert!(ids.insert(event.id.clone()), "duplicate id {}", event.id);
        }
        assert_eq!(kinds.len(), 5, "all kinds generated");
    }

    #[test]
    fn a_record_is_the_same_every_time_it_is_generated() {
        let sim = simulate(7);
        assert_eq!(sim.record(17).raw.get(), sim.record(17).raw.get());
        assert_ne!(sim.record(17).raw.get(), sim.record(18).raw.get());
    }

    #[tokio::test]
    async fn a_bounded_simulation_ends_after_count_records() {
        let mut sim = simulate(1);
        let mut seen = 0;
        loop {
            match sim.fetch().await.expect("fetch") {
                Fetch::Batch(b) => seen += b.records.len(),
                Fetch::CaughtUp => continue,
                Fetch::Exhausted => break,
            }
        }
        assert_eq!(seen, 1000);
    }

    #[tokio::test]
    async fn resuming_from_a_cursor_continues_the_sequence() {
        let mut first = simulate(3);
        let Fetch::Batch(batch) = first.fetch().await.expect("fetch") else {
            panic!("expected a batch");
        };
        let mut resumed =
            Simulate::new(first.config.clone(), 100, Some(batch.cursor)).expect("resume");
        let Fetch::Batch(next) = resumed.fetch().await.expect("fetch") else {
            panic!("expected a batch");
        };
        assert_eq!(next.records[0].raw.get(), first.record(100).raw.get());
    }
}
