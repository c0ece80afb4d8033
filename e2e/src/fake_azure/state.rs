//! What the fake Azure service knows: identities, tokens, subscriptions and their logs, and the faults
//! a test has scripted.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Which API a request went to; faults and the request log are keyed by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Api {
    Token,
    Subscriptions,
    ActivityLog,
    SecurityAlerts,
    /// Azure Resource Graph queries.
    ResourceGraph,
    DirectoryAudits,
    SignIns,
    /// ARM `roleAssignments`, `roleDefinitions` and `permissions`.
    Authorization,
    /// Graph `applications` and `servicePrincipals` with what hangs off them.
    Directory,
}

/// Who a token was issued for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    Arm,
    Graph,
    /// Azure Storage, which validates tokens itself (Azurite checks issuer, audience and expiry).
    Storage,
    /// Event Hubs, whose fake asks this one whether it issued a token ([`crate::fake_azure::FakeAzure::token_holder`]).
    EventHubs,
}

/// Something that goes wrong on purpose, once, for the next request to an API.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status and the API's error body; 429 and 503 carry Retry-After when given.
    Status {
        status: u16,
        retry_after: Option<u64>,
    },
    /// Wait this long, then answer normally.
    Delay(Duration),
    /// Answer 200 with this body instead of the real page (malformed JSON, a missing field…).
    Body(String),
}

/// A service principal or managed identity, by its client (application) id.
#[derive(Debug, Clone)]
pub struct Identity {
    pub tenant_id: String,
    /// The service principal's object id: what role assignments name and ARM's errors cite.
    pub object_id: String,
    pub display_name: String,
    /// Accepted client secrets.
    pub secrets: Vec<String>,
    /// Accepted federated subjects (workload identity): the `sub` of the client assertion.
    pub federated_subjects: Vec<String>,
    /// Whether ARM sees the principal yet: Entra replicates a new one within seconds to minutes,
    /// and ARM refuses role assignments for it until then (PrincipalNotFound).
    pub replicated: bool,
    /// Microsoft Graph application permissions held (AuditLog.Read.All, Application.ReadWrite.All…).
    pub graph_permissions: HashSet<String>,
}

/// An application registration made through Graph.
#[derive(Debug, Clone)]
pub struct Application {
    /// The application object's id (not the client id).
    pub object_id: String,
    pub app_id: String,
    pub unique_name: Option<String>,
    pub display_name: String,
    pub federated_credentials: Vec<Value>,
    pub passwords: Vec<Password>,
}

#[derive(Debug, Clone)]
pub struct Password {
    pub key_id: String,
    pub display_name: String,
    pub secret: String,
    pub end: String,
}

/// An ARM role assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleAssignment {
    /// Its name, a GUID: the last segment of its id.
    pub name: String,
    pub subscription: String,
    /// The role definition's GUID.
    pub role: String,
    pub principal_id: String,
}

impl RoleAssignment {
    pub fn id(&self) -> String {
        format!(
            "/subscriptions/{}/providers/Microsoft.Authorization/roleAssignments/{}",
            self.subscription, self.name
        )
    }
}

/// A Graph app role assignment: `principal_id` holds app role `app_role_id` of `resource_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRoleAssignment {
    pub id: String,
    pub principal_id: String,
    pub resource_id: String,
    pub app_role_id: String,
}

#[derive(Debug, Clone)]
pub struct Token {
    pub client_id: String,
    pub audience: Audience,
    pub expires: Instant,
}

#[derive(Debug, Default)]
pub struct Subscription {
    pub display_name: String,
    pub tenant_id: String,
    pub activity: Vec<Value>,
    pub alerts: Vec<Value>,
    /// ARM's per-subscription read budget (`x-ms-ratelimit-remaining-subscription-reads`).
    pub reads: ReadBudget,
}

/// ARM's read throttling since 2024: a token bucket per subscription (and principal) of 250 reads,
/// refilled at 25 a second. A read finding it empty is answered 429 with Retry-After.
#[derive(Debug, Clone)]
pub struct ReadBudget {
    tokens: f64,
    at: Instant,
}

/// ARM's subscription read bucket: its size and how many tokens come back each second.
pub const SUBSCRIPTION_READ_BUCKET: f64 = 250.0;
pub const SUBSCRIPTION_READ_REFILL_PER_SECOND: f64 = 25.0;

impl Default for ReadBudget {
    fn default() -> Self {
        ReadBudget {
            tokens: SUBSCRIPTION_READ_BUCKET,
            at: Instant::now(),
        }
    }
}

impl ReadBudget {
    /// Takes a token: the reads left, or how long until one is back.
    pub fn take(&mut self) -> Result<i64, Duration> {
        let now = Instant::now();
        let refilled =
            now.duration_since(self.at).as_secs_f64() * SUBSCRIPTION_READ_REFILL_PER_SECOND;
        self.tokens = (self.tokens + refilled).min(SUBSCRIPTION_READ_BUCKET);
        self.at = now;
        if self.tokens < 1.0 {
            return Err(Duration::from_secs_f64(
                (1.0 - self.tokens) / SUBSCRIPTION_READ_REFILL_PER_SECOND,
            ));
        }
        self.tokens -= 1.0;
        Ok(self.tokens as i64)
    }

    /// Sets the reads left, to try how a client behaves on a nearly spent budget.
    pub fn set(&mut self, tokens: f64) {
        self.tokens = tokens;
        self.at = Instant::now();
    }
}

/// One request as the fake saw it, for assertions on call counts and throttling behaviour.
#[derive(Debug, Clone)]
pub struct Served {
    pub api: Api,
    pub status: u16,
    pub query: String,
    /// The subscription of a per-subscription listing.
    pub subscription: Option<String>,
    /// When the answer was sent.
    pub at: Instant,
}

#[derive(Debug)]
pub struct State {
    pub identities: HashMap<String, Identity>,
    pub tokens: HashMap<String, Token>,
    pub token_lifetime: Duration,
    pub subscriptions: BTreeMap<String, Subscription>,
    pub directory_audits: Vec<Value>,
    pub sign_ins: Vec<Value>,
    /// Every role assignment, on any subscription.
    pub role_assignments: Vec<RoleAssignment>,
    /// Application registrations, by client id.
    pub applications: BTreeMap<String, Application>,
    pub app_role_assignments: Vec<AppRoleAssignment>,
    /// Whether a service principal created through Graph is visible to ARM at once; when false it
    /// waits for [`super::FakeAzure::replicate`].
    pub replicate_new_principals: bool,
    pub faults: VecDeque<(Api, Fault)>,
    /// Items per page on every paged API.
    pub page_size: usize,
    /// How long every ARM and Graph answer takes, as over the internet (none by default).
    pub latency: Duration,
    /// Per-subscription listing requests being answered now, by subscription.
    pub listing_in_flight: HashMap<String, usize>,
    /// The most listing requests answered at once: of one subscription, and in all.
    pub most_in_flight: (usize, usize),
    /// Repeat the last item of each page at the start of the next, as Azure sometimes does.
    pub duplicate_page_boundaries: bool,
    /// The rest of a listing and its page size, by skip token: pages come from a snapshot taken at
    /// the first page.
    pub pages: HashMap<String, (VecDeque<Value>, usize)>,
    pub served: Vec<Served>,
    next_id: u64,
}

impl Default for State {
    fn default() -> Self {
        State {
            identities: HashMap::new(),
            tokens: HashMap::new(),
            token_lifetime: Duration::from_secs(3599),
            subscriptions: BTreeMap::new(),
            directory_audits: Vec::new(),
            sign_ins: Vec::new(),
            role_assignments: Vec::new(),
            applications: BTreeMap::new(),
            app_role_assignments: Vec::new(),
            replicate_new_principals: true,
            faults: VecDeque::new(),
            page_size: 200,
            latency: Duration::ZERO,
            listing_in_flight: HashMap::new(),
            most_in_flight: (0, 0),
            duplicate_page_boundaries: false,
            pages: HashMap::new(),
            served: Vec::new(),
            next_id: 0,
        }
    }
}

impl State {
    /// A fresh opaque identifier (tokens, skip tokens, request ids).
    pub fn next_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!(
            "{prefix}{:016x}",
            self.next_id.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        )
    }

    /// The identity whose service principal has object id `object_id`, with its client id.
    pub fn principal(&self, object_id: &str) -> Option<(&String, &Identity)> {
        self.identities
            .iter()
            .find(|(_, i)| i.object_id.eq_ignore_ascii_case(object_id))
    }

    /// The actions and not-actions `client_id` holds on `subscription`, one pair per role assigned.
    pub fn permissions(
        &self,
        client_id: &str,
        subscription: &str,
    ) -> Vec<(Vec<String>, Vec<String>)> {
        let Some(identity) = self.identities.get(client_id) else {
            return Vec::new();
        };
        self.role_assignments
            .iter()
            .filter(|a| a.subscription == subscription && a.principal_id == identity.object_id)
            .filter_map(|a| super::authorization::definition(&a.role))
            .map(|d| (strings(d.actions), strings(d.not_actions)))
            .collect()
    }

    /// Whether `client_id` may perform `action` on `subscription`.
    pub fn may(&self, client_id: &str, subscription: &str, action: &str) -> bool {
        self.permissions(client_id, subscription)
            .iter()
            .any(|(actions, not_actions)| {
                azlog_operator::authorization::role::permits(actions, not_actions, action)
            })
    }

    /// The client secrets and federated subjects `client_id` may sign in with: its own, and those
    /// of its application registration.
    pub fn credentials(&self, client_id: &str) -> (Vec<String>, Vec<String>) {
        let mut secrets = Vec::new();
        let mut subjects = Vec::new();
        if let Some(identity) = self.identities.get(client_id) {
            secrets.extend(identity.secrets.iter().cloned());
            subjects.extend(identity.federated_subjects.iter().cloned());
        }
        if let Some(app) = self.applications.get(client_id) {
            secrets.extend(app.passwords.iter().map(|p| p.secret.clone()));
            subjects.extend(
                app.federated_credentials
                    .iter()
                    .filter_map(|c| c["subject"].as_str().map(str::to_owned)),
            );
        }
        (secrets, subjects)
    }

    /// Whether `client_id` holds Microsoft Graph application permission `permission`.
    pub fn has_graph_permission(&self, client_id: &str, permission: &str) -> bool {
        self.identities
            .get(client_id)
            .is_some_and(|i| i.graph_permissions.contains(permission))
    }

    /// A fresh GUID, as Entra gives objects and applications.
    pub fn next_guid(&mut self) -> String {
        let hex = self.next_id("");
        let seed = u64::from_str_radix(&hex, 16).unwrap_or_default();
        let more = seed.rotate_left(17) ^ 0xA5A5_5A5A_C3C3_3C3C;
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            seed >> 32,
            (seed >> 16) & 0xffff,
            seed & 0xfff,
            more >> 52,
            more & 0xffff_ffff_ffff
        )
    }

    /// The first scripted fault for `api`, removed from the script.
    pub fn take_fault(&mut self, api: Api) -> Option<Fault> {
        let index = self.faults.iter().position(|(a, _)| *a == api)?;
        self.faults.remove(index).map(|(_, fault)| fault)
    }

    /// Splits `items` into a first page of `size` and a skip token for the rest.
    pub fn first_page(&mut self, items: Vec<Value>, size: usize) -> (Vec<Value>, Option<String>) {
        self.page(items.into(), size)
    }

    /// The page after `token`; None when the token is unknown (expired or made up).
    pub fn next_page(&mut self, token: &str) -> Option<(Vec<Value>, Option<String>)> {
        let (rest, size) = self.pages.remove(token)?;
        Some(self.page(rest, size))
    }

    fn page(&mut self, mut items: VecDeque<Value>, size: usize) -> (Vec<Value>, Option<String>) {
        let take = size.max(1).min(items.len());
        let page: Vec<Value> = items.drain(..take).collect();
        if items.is_empty() {
            return (page, None);
        }
        if self.duplicate_page_boundaries
            && let Some(last) = page.last()
        {
            items.push_front(last.clone());
        }
        let token = self.next_id("skip");
        self.pages.insert(token.clone(), (items, size));
        (page, Some(token))
    }
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}
