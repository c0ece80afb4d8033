//! A fake Event Hubs namespace speaking AMQP 1.0 over TLS, built on fe2o3-amqp's listener (the
//! same implementation the collector's client uses, from its other side): SASL ANONYMOUS, $cbs
//! put-token with shared access signatures, the `$management` READ of the hub, and a receiver per
//! partition with selector filters (offset, sequence number, enqueued time) and epochs.
//!
//! Faults a test can inject: every connection dropped at once, partition links detached with
//! `com.microsoft:server-busy`, and every token put so far expired (links detached with
//! `amqp:unauthorized-access` until a fresh token is put).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use base64::Engine;
use fe2o3_amqp::acceptor::{
    ConnectionAcceptor, LinkAcceptor, LinkEndpoint, ListenerSessionHandle, SaslAnonymousMechanism,
    SessionAcceptor,
};
use fe2o3_amqp::link::delivery::Sendable;
use fe2o3_amqp::types::definitions::{self, ErrorCondition};
use fe2o3_amqp::types::messaging::Target;
use fe2o3_amqp::types::messaging::annotations::OwnedKey;
use fe2o3_amqp::types::messaging::{
    AmqpValue, ApplicationProperties, Body, Message, MessageAnnotations, MessageId, Properties,
};
use fe2o3_amqp::types::performatives::Attach;
use fe2o3_amqp::types::primitives::{
    Array, Binary, OrderedMap, SimpleValue, Symbol, Timestamp, Value,
};
use fe2o3_amqp::{Receiver, Sender};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};

use crate::fake_azure::tls::certificates;

/// The shared access policy the fake accepts.
pub const KEY_NAME: &str = "azlog-listen";

struct Stored {
    enqueued_ms: i64,
    body: Vec<u8>,
}

#[derive(Default)]
struct Partition {
    events: Vec<Stored>,
    /// The highest epoch a receiver attached with, and which attach holds it.
    epoch: Option<(i64, u64)>,
}

/// What the fake saw, for assertions.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Seen {
    pub connections: u64,
    pub tokens_put: u64,
    pub tokens_refused: u64,
    pub receivers: u64,
    pub busy_detaches: u64,
    pub expired_detaches: u64,
}

struct State {
    hub: String,
    key: String,
    partitions: Vec<Mutex<Partition>>,
    pushed: Notify,
    /// Bumped to drop every open connection.
    disconnects: AtomicU64,
    /// Tokens put before this generation are expired.
    token_generation: AtomicU64,
    busy: AtomicU32,
    attaches: AtomicU64,
    seen: Mutex<Seen>,
    /// Answers whether Entra ID issued a token for Event Hubs to an identity with the Data
    /// Receiver role; None: Entra tokens are refused.
    entra: Mutex<Option<EntraCheck>>,
}

type EntraCheck = Arc<dyn Fn(&str) -> bool + Send + Sync>;

impl State {
    fn seen(&self, f: impl FnOnce(&mut Seen)) {
        f(&mut self.seen.lock().unwrap_or_else(|p| p.into_inner()));
    }
}

pub struct FakeEventHubs {
    state: Arc<State>,
    port: u16,
    ca_pem: String,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for FakeEventHubs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeEventHubs")
            .field("port", &self.port)
            .finish()
    }
}

impl Drop for FakeEventHubs {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeEventHubs {
    /// A namespace on 127.0.0.1 with one hub of `partitions` partitions.
    pub async fn start(hub: &str, partitions: usize) -> Result<FakeEventHubs, String> {
        let certificates = certificates()?;
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("fake Event Hubs cannot listen: {e}"))?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let state = Arc::new(State {
            hub: hub.to_owned(),
            key: "ZmFrZSBldmVudCBodWJzIGtleQ==".to_owned(),
            partitions: (0..partitions).map(|_| Mutex::default()).collect(),
            pushed: Notify::new(),
            disconnects: AtomicU64::new(0),
            token_generation: AtomicU64::new(0),
            busy: AtomicU32::new(0),
            attaches: AtomicU64::new(0),
            seen: Mutex::default(),
            entra: Mutex::default(),
        });
        let tls = tokio_rustls::TlsAcceptor::from(certificates.server.clone());
        let serving = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let state = serving.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let Ok(stream) = tls.accept(tcp).await else {
                        return;
                    };
                    let stream = Droppable {
                        inner: stream,
                        state: state.clone(),
                        generation: state.disconnects.load(Ordering::SeqCst),
                    };
                    serve_connection(state, stream).await;
                });
            }
        });
        Ok(FakeEventHubs {
            state,
            port,
            ca_pem: certificates.ca_pem,
            task,
        })
    }

    /// `amqps://localhost:<port>`, for `endpoint`.
    pub fn endpoint(&self) -> String {
        format!("amqps://localhost:{}", self.port)
    }

    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// A connection string of the namespace's Listen policy.
    pub fn connection_string(&self) -> String {
        format!(
            "Endpoint=sb://localhost/;SharedAccessKeyName={KEY_NAME};SharedAccessKey={};EntityPath={}",
            self.state.key, self.state.hub
        )
    }

    /// Appends an event to a partition, enqueued now.
    pub fn send(&self, partition: usize, body: Vec<u8>) {
        let enqueued_ms = chrono::Utc::now().timestamp_millis();
        lock(&self.state.partitions[partition])
            .events
            .push(Stored { enqueued_ms, body });
        self.state.pushed.notify_waiters();
    }

    /// Events each partition holds.
    pub fn sizes(&self) -> Vec<usize> {
        self.state
            .partitions
            .iter()
            .map(|p| lock(p).events.len())
            .collect()
    }

    /// Drops every open connection at once, as a network failure does.
    pub fn disconnect_all(&self) {
        self.state.disconnects.fetch_add(1, Ordering::SeqCst);
        self.state.pushed.notify_waiters();
    }

    /// The next `links` partition links to send detach with `com.microsoft:server-busy`.
    pub fn server_busy(&self, links: u32) {
        self.state.busy.fetch_add(links, Ordering::SeqCst);
        self.state.pushed.notify_waiters();
    }

    /// Expires every token put so far: their links are detached and new links refused until a
    /// fresh token is put.
    pub fn expire_tokens(&self) {
        self.state.token_generation.fetch_add(1, Ordering::SeqCst);
        self.state.pushed.notify_waiters();
    }

    /// Accepts Entra ID tokens (`jwt` on $cbs) that `check` vouches for: the fake Azure's, for an
    /// identity the test gave the Azure Event Hubs Data Receiver role.
    pub fn trust_entra(&self, check: impl Fn(&str) -> bool + Send + Sync + 'static) {
        *lock(&self.state.entra) = Some(Arc::new(check));
    }

    pub fn seen(&self) -> Seen {
        lock(&self.state.seen).clone()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A stream that fails every read and write once the fake drops all connections.
#[derive(Debug)]
struct Droppable<S> {
    inner: S,
    state: Arc<State>,
    generation: u64,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State").field("hub", &self.hub).finish()
    }
}

impl<S> Droppable<S> {
    fn dropped(&self) -> bool {
        self.state.disconnects.load(Ordering::SeqCst) != self.generation
    }
}

fn reset() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::ConnectionReset, "dropped by the fake")
}

impl<S: AsyncRead + Unpin> AsyncRead for Droppable<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.dropped() {
            return Poll::Ready(Err(reset()));
        }
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Droppable<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.dropped() {
            return Poll::Ready(Err(reset()));
        }
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// What one connection has been authorised for: the token generation its last valid token was
/// put in, and when that token expires (unix seconds).
#[derive(Default)]
struct Authorised {
    token: Option<(u64, i64)>,
}

impl Authorised {
    fn valid(&self, state: &State) -> bool {
        self.token.is_some_and(|(generation, expires)| {
            generation == state.token_generation.load(Ordering::SeqCst)
                && expires > chrono::Utc::now().timestamp()
        })
    }
}

type Replies = Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Message<AmqpValue<Value>>>>>>;

async fn serve_connection<S>(state: Arc<State>, stream: Droppable<S>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug + 'static,
{
    let acceptor = ConnectionAcceptor::builder()
        .container_id("fake-event-hubs")
        .sasl_acceptor(SaslAnonymousMechanism::new())
        .build();
    let Ok(mut connection) = acceptor.accept(stream).await else {
        return;
    };
    state.seen(|s| s.connections += 1);
    let authorised = Arc::new(Mutex::new(Authorised::default()));
    let sessions = SessionAcceptor::new();
    while let Ok(session) = sessions.accept(&mut connection).await {
        tokio::spawn(serve_session(state.clone(), session, authorised.clone()));
    }
}

async fn serve_session(
    state: Arc<State>,
    mut session: ListenerSessionHandle,
    authorised: Arc<Mutex<Authorised>>,
) {
    let links = LinkAcceptor::new();
    let replies: Replies = Arc::default();
    while let Some(attach) = session.next_incoming_attach().await {
        let address = attach_address(&attach);
        let filter = selector(&attach);
        let epoch = epoch(&attach);
        let reply_to = target_address(&attach).unwrap_or_default();
        let Ok(endpoint) = links.accept_incoming_attach(attach, &mut session).await else {
            continue;
        };
        match (endpoint, address.as_str()) {
            (LinkEndpoint::Receiver(receiver), "$cbs" | "$management") => {
                tokio::spawn(serve_requests(
                    state.clone(),
                    receiver,
                    replies.clone(),
                    authorised.clone(),
                ));
            }
            (LinkEndpoint::Sender(sender), "$cbs" | "$management") => {
                let (tx, rx) = mpsc::unbounded_channel();
                lock(&replies).insert(reply_to, tx);
                tokio::spawn(send_replies(sender, rx));
            }
            (LinkEndpoint::Sender(sender), _) => {
                tokio::spawn(serve_partition(
                    state.clone(),
                    sender,
                    address,
                    filter,
                    epoch,
                    authorised.clone(),
                ));
            }
            (LinkEndpoint::Receiver(receiver), _) => {
                let _ = receiver
                    .close_with_error(error("amqp:not-implemented", "the fake only reads"))
                    .await;
            }
        }
    }
}

fn attach_address(attach: &Attach) -> String {
    let source = attach.source.as_ref().and_then(|s| s.address.clone());
    let target = target_address(attach);
    match attach.role {
        // The client sends requests to $cbs or $management: the node is the target.
        definitions::Role::Sender => target.unwrap_or_default(),
        definitions::Role::Receiver => source.unwrap_or_default(),
    }
}

fn target_address(attach: &Attach) -> Option<String> {
    let target = Target::try_from((**attach.target.as_ref()?).clone()).ok()?;
    target.address
}

fn selector(attach: &Attach) -> Option<String> {
    let filter = attach.source.as_ref()?.filter.as_ref()?;
    filter.iter().find_map(|(_, value)| match value {
        Value::Described(described) => match &described.value {
            Value::String(text) => Some(text.clone()),
            _ => None,
        },
        Value::String(text) => Some(text.clone()),
        _ => None,
    })
}

fn epoch(attach: &Attach) -> Option<i64> {
    attach
        .properties
        .as_ref()?
        .iter()
        .find_map(|(k, v)| match v {
            Value::Long(n) if k.0 == "com.microsoft:epoch" => Some(*n),
            _ => None,
        })
}

fn error(condition: &str, description: &str) -> definitions::Error {
    definitions::Error::new(
        ErrorCondition::Custom(Symbol::from(condition)),
        Some(description.to_owned()),
        None,
    )
}

async fn send_replies(
    mut sender: Sender,
    mut replies: mpsc::UnboundedReceiver<Message<AmqpValue<Value>>>,
) {
    while let Some(reply) = replies.recv().await {
        let sendable = Sendable::builder().message(reply).settled(true).build();
        if sender.send(sendable).await.is_err() {
            return;
        }
    }
}

/// Answers $cbs put-token and $management READ requests on the reply link the request names.
async fn serve_requests(
    state: Arc<State>,
    mut receiver: Receiver,
    replies: Replies,
    authorised: Arc<Mutex<Authorised>>,
) {
    while let Ok(delivery) = receiver.recv::<Body<Value>>().await {
        let _ = receiver.accept(&delivery).await;
        let request = delivery.into_message();
        let property = |name: &str| -> Option<String> {
            request
                .application_properties
                .as_ref()?
                .0
                .get(name)
                .and_then(|v| match v {
                    SimpleValue::String(s) => Some(s.clone()),
                    _ => None,
                })
        };
        let operation = property("operation").unwrap_or_default();
        let (status, body) = match operation.as_str() {
            "put-token" => {
                let token = match &request.body {
                    Body::Value(AmqpValue(Value::String(token))) => token.clone(),
                    _ => String::new(),
                };
                let checked = match property("type").as_deref() {
                    Some("jwt") => check_entra_token(&state, &token),
                    _ => check_token(&state, &token),
                };
                match checked {
                    Ok(expires) => {
                        lock(&authorised).token =
                            Some((state.token_generation.load(Ordering::SeqCst), expires));
                        state.seen(|s| s.tokens_put += 1);
                        (202, Value::Null)
                    }
                    Err(reason) => {
                        state.seen(|s| s.tokens_refused += 1);
                        (401, Value::String(reason))
                    }
                }
            }
            "READ" if property("name").as_deref() == Some(state.hub.as_str()) => {
                let token = property("security_token").unwrap_or_default();
                let checked = if token.starts_with("SharedAccessSignature ") {
                    check_token(&state, &token)
                } else {
                    check_entra_token(&state, &token)
                };
                if checked.is_err() {
                    (401, Value::Null)
                } else {
                    let mut map = OrderedMap::new();
                    map.insert(
                        Value::String("name".into()),
                        Value::String(state.hub.clone()),
                    );
                    map.insert(
                        Value::String("partition_count".into()),
                        Value::Int(state.partitions.len() as i32),
                    );
                    let ids = (0..state.partitions.len())
                        .map(|p| Value::String(p.to_string()))
                        .collect::<Vec<_>>();
                    map.insert(
                        Value::String("partition_ids".into()),
                        Value::Array(Array::from(ids)),
                    );
                    (200, Value::Map(map))
                }
            }
            "READ" => (404, Value::Null),
            _ => (400, Value::Null),
        };
        let Some(properties) = request.properties.as_ref() else {
            continue;
        };
        let reply_to = properties.reply_to.clone().unwrap_or_default();
        let reply = Message::builder()
            .properties(Properties {
                correlation_id: properties.message_id.clone().map(|id: MessageId| id),
                ..Properties::default()
            })
            .application_properties(
                ApplicationProperties::builder()
                    .insert("status-code", SimpleValue::Int(status))
                    .insert(
                        "status-description",
                        SimpleValue::String(match status {
                            200 | 202 => "OK".into(),
                            401 => "the token is not valid".into(),
                            404 => "no such event hub".into(),
                            _ => "bad request".into(),
                        }),
                    )
                    .build(),
            )
            .value(body)
            .build();
        let sender = lock(&replies).get(&reply_to).cloned();
        if let Some(sender) = sender {
            let _ = sender.send(reply);
        }
    }
}

/// Checks an Entra ID token with the fake Azure that issued it; the connection holds it an hour
/// (the fake Azure's tokens live that long unless a test says otherwise).
fn check_entra_token(state: &State, token: &str) -> Result<i64, String> {
    let check = lock(&state.entra).clone();
    match check {
        Some(check) if check(token) => Ok(chrono::Utc::now().timestamp() + 3600),
        Some(_) => {
            Err("Entra ID did not issue this token for Event Hubs to a Data Receiver".into())
        }
        None => Err("this namespace accepts shared access signatures only".into()),
    }
}

/// Checks a shared access signature for the hub; its expiry (unix seconds) when it is valid.
fn check_token(state: &State, token: &str) -> Result<i64, String> {
    let fields: HashMap<&str, &str> = token
        .strip_prefix("SharedAccessSignature ")
        .ok_or("not a shared access signature")?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let (Some(resource), Some(signature), Some(expiry), Some(name)) = (
        fields.get("sr"),
        fields.get("sig"),
        fields.get("se"),
        fields.get("skn"),
    ) else {
        return Err("the signature lacks sr, sig, se or skn".into());
    };
    if *name != KEY_NAME {
        return Err(format!("no policy {name}"));
    }
    let decoded_resource = decode(resource);
    if !decoded_resource.ends_with(&format!("/{}", state.hub)) {
        return Err(format!("the token is for {decoded_resource}, not the hub"));
    }
    let expected = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, state.key.as_bytes()),
        format!("{resource}\n{expiry}").as_bytes(),
    );
    let given = base64::engine::general_purpose::STANDARD
        .decode(decode(signature))
        .map_err(|_| "the signature is not base64")?;
    if given != expected.as_ref() {
        return Err("the signature does not match the key".into());
    }
    let expires: i64 = expiry.parse().map_err(|_| "se is not a time")?;
    if expires <= chrono::Utc::now().timestamp() {
        return Err("the token has expired".into());
    }
    Ok(expires)
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&text[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Where a selector filter starts: the index of the first event to send.
fn start_index(filter: Option<&str>, events: &[Stored]) -> Result<usize, String> {
    let Some(filter) = filter else {
        return Ok(events.len());
    };
    let quoted = filter
        .split('\'')
        .nth(1)
        .ok_or_else(|| format!("the fake cannot read the filter {filter:?}"))?;
    let inclusive = filter.contains(">=");
    if filter.contains("x-opt-offset") {
        return match quoted {
            "-1" => Ok(0),
            "@latest" => Ok(events.len()),
            offset => offset
                .parse::<usize>()
                .map(|o| if inclusive { o } else { o + 1 })
                .map_err(|_| format!("bad offset {offset}")),
        };
    }
    let n: i64 = quoted
        .parse()
        .map_err(|_| format!("bad filter value {quoted}"))?;
    if filter.contains("x-opt-sequence-number") {
        let first = if inclusive { n } else { n + 1 };
        return Ok(first.max(0) as usize);
    }
    if filter.contains("x-opt-enqueued-time") {
        return Ok(events
            .iter()
            .position(|e| {
                if inclusive {
                    e.enqueued_ms >= n
                } else {
                    e.enqueued_ms > n
                }
            })
            .unwrap_or(events.len()));
    }
    Err(format!("the fake cannot read the filter {filter:?}"))
}

/// Sends one partition's events from where the filter says, pre-settled, as long as the link's
/// credit allows; detaches on an injected fault, an expired token or a higher epoch.
async fn serve_partition(
    state: Arc<State>,
    mut sender: Sender,
    address: String,
    filter: Option<String>,
    epoch: Option<i64>,
    authorised: Arc<Mutex<Authorised>>,
) {
    let partition = address
        .strip_prefix(&format!("{}/ConsumerGroups/", state.hub))
        .and_then(|rest| rest.split_once("/Partitions/"))
        .and_then(|(_, p)| p.parse::<usize>().ok())
        .filter(|p| *p < state.partitions.len());
    let Some(partition) = partition else {
        let _ = sender
            .close_with_error(error("amqp:not-found", &format!("no entity {address}")))
            .await;
        return;
    };
    if !lock(&authorised).valid(&state) {
        state.seen(|s| s.expired_detaches += 1);
        let _ = sender
            .close_with_error(error(
                "amqp:unauthorized-access",
                "put a valid token on $cbs first",
            ))
            .await;
        return;
    }
    let attach_id = state.attaches.fetch_add(1, Ordering::SeqCst);
    if let Some(epoch) = epoch {
        let refused = {
            let mut p = lock(&state.partitions[partition]);
            match p.epoch {
                Some((held, _)) if held > epoch => true,
                _ => {
                    p.epoch = Some((epoch, attach_id));
                    false
                }
            }
        };
        if refused {
            let _ = sender
                .close_with_error(error(
                    "com.microsoft:receiver-disconnected",
                    "a receiver with a higher epoch holds the partition",
                ))
                .await;
            return;
        }
    }
    let start = {
        let p = lock(&state.partitions[partition]);
        start_index(filter.as_deref(), &p.events)
    };
    let mut next = match start {
        Ok(next) => next,
        Err(reason) => {
            let _ = sender
                .close_with_error(error("amqp:invalid-field", &reason))
                .await;
            return;
        }
    };
    state.seen(|s| s.receivers += 1);
    loop {
        let pushed = state.pushed.notified();
        if !lock(&authorised).valid(&state) {
            state.seen(|s| s.expired_detaches += 1);
            let _ = sender
                .close_with_error(error(
                    "amqp:unauthorized-access",
                    "ExpiredToken: the token has expired",
                ))
                .await;
            return;
        }
        if epoch.is_some()
            && lock(&state.partitions[partition])
                .epoch
                .is_some_and(|(_, holder)| holder != attach_id)
        {
            let _ = sender
                .close_with_error(error(
                    "com.microsoft:receiver-disconnected",
                    "a receiver with a higher epoch took the partition",
                ))
                .await;
            return;
        }
        if state
            .busy
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            state.seen(|s| s.busy_detaches += 1);
            let _ = sender
                .close_with_error(error(
                    "com.microsoft:server-busy",
                    "The request was terminated because the namespace is being throttled.",
                ))
                .await;
            return;
        }
        let event = {
            let p = lock(&state.partitions[partition]);
            p.events.get(next).map(|e| (e.enqueued_ms, e.body.clone()))
        };
        let Some((enqueued_ms, body)) = event else {
            pushed.await;
            continue;
        };
        let message = Message::builder()
            .message_annotations(
                MessageAnnotations::builder()
                    .insert(
                        OwnedKey::Symbol(Symbol::from("x-opt-sequence-number")),
                        Value::Long(next as i64),
                    )
                    .insert(
                        OwnedKey::Symbol(Symbol::from("x-opt-offset")),
                        Value::String(next.to_string()),
                    )
                    .insert(
                        OwnedKey::Symbol(Symbol::from("x-opt-enqueued-time")),
                        Value::Timestamp(Timestamp::from_milliseconds(enqueued_ms)),
                    )
                    .build(),
            )
            .data(Binary::from(body))
            .build();
        let sendable = Sendable::builder().message(message).settled(true).build();
        if sender.send(sendable).await.is_err() {
            return;
        }
        next += 1;
    }
}
