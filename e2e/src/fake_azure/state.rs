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
    DirectoryAudits,
    SignIns,
}

/// Who a token was issued for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    Arm,
    Graph,
    /// Azure Storage, which validates tokens itself (Azurite checks issuer, audience and expiry).
    Storage,
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

/// A service principal or managed identity.
#[derive(Debug, Clone)]
pub struct Identity {
    pub tenant_id: String,
    /// The object id ARM names in authorization errors.
    pub object_id: String,
    /// Accepted client secret, if any.
    pub secret: Option<String>,
    /// Accepted federated subject (workload identity): the `sub` of the client assertion.
    pub federated_subject: Option<String>,
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
    /// Client ids with Reader (or better) on the subscription.
    pub readers: HashSet<String>,
    /// ARM's per-subscription read budget (`x-ms-ratelimit-remaining-subscription-reads`).
    pub remaining_reads: i64,
}

/// One request as the fake saw it, for assertions on call counts and throttling behaviour.
#[derive(Debug, Clone)]
pub struct Served {
    pub api: Api,
    pub status: u16,
    pub query: String,
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
    /// Client ids allowed to read Entra audit logs (AuditLog.Read.All / Directory Readers).
    pub directory_readers: HashSet<String>,
    pub faults: VecDeque<(Api, Fault)>,
    /// Items per page on every paged API.
    pub page_size: usize,
    /// Repeat the last item of each page at the start of the next, as Azure sometimes does.
    pub duplicate_page_boundaries: bool,
    /// The rest of a listing and its page size, by skip token: pages come from a snapshot taken at
    /// the first page.
    pub pages: HashMap<String, (VecDeque<Value>, usize)>,
    pub served: Vec<Served>,
    next_id: u64,
}

/// ARM's documented per-subscription read budget per hour.
pub const SUBSCRIPTION_READS_PER_HOUR: i64 = 12_000;

impl Default for State {
    fn default() -> Self {
        State {
            identities: HashMap::new(),
            tokens: HashMap::new(),
            token_lifetime: Duration::from_secs(3599),
            subscriptions: BTreeMap::new(),
            directory_audits: Vec::new(),
            sign_ins: Vec::new(),
            directory_readers: HashSet::new(),
            faults: VecDeque::new(),
            page_size: 200,
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
