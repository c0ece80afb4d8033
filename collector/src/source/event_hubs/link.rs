//! One AMQP 1.0 connection to an Event Hubs namespace: TLS, claims-based authorisation ($cbs), the
//! hub's partitions from `$management`, and a receiver per partition.
//!
//! Built on fe2o3-amqp's client with the collector's own TLS (rustls with ring and the configured
//! CA), not the `azure_messaging_eventhubs` crate: that crate needs a pre-release of azure_core 1.2,
//! which cannot live beside the azure_core 1.1 that `azure_identity` 1.0 uses.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use fe2o3_amqp::connection::ConnectionHandle;
use fe2o3_amqp::link::receiver::CreditMode;
use fe2o3_amqp::sasl_profile::SaslProfile;
use fe2o3_amqp::session::SessionHandle;
use fe2o3_amqp::types::definitions::Fields;
use fe2o3_amqp::types::messaging::annotations::OwnedKey;
use fe2o3_amqp::types::messaging::{
    ApplicationProperties, Body, Message, MessageAnnotations, Source,
};
use fe2o3_amqp::types::primitives::{OrderedMap, SimpleValue, Symbol, Timestamp, Value};
use fe2o3_amqp::{Connection, Receiver, Session};
use fe2o3_amqp_cbs::client::CbsClient;
use fe2o3_amqp_cbs::token::CbsToken;
use fe2o3_amqp_management::client::MgmtClient;
use fe2o3_amqp_management::error::Error as MgmtError;
use fe2o3_amqp_management::request::Request;
use fe2o3_amqp_management::response::Response;
use serde_amqp::described::Described;
use serde_amqp::descriptor::Descriptor;

use super::token::Credential;
use crate::azure::ApiError;

pub(super) const API: &str = "Event Hubs";

/// Where the namespace is and which hub and consumer group to read.
#[derive(Debug, Clone)]
pub struct Address {
    pub host: String,
    pub port: u16,
    pub hub: String,
    pub consumer_group: String,
}

impl Address {
    /// The entity tokens are issued for.
    pub fn audience(&self) -> String {
        format!("sb://{}/{}", self.host, self.hub)
    }
}

/// Where a partition's receiver starts. (`startAt: Now` is an enqueued time fixed at the first
/// start, not `@latest`: a partition whose first event comes while the collector is down would
/// lose it.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// After this sequence number (the last one delivered).
    After(i64),
    /// The oldest event the hub retains.
    Earliest,
    /// Events enqueued at or after this time.
    Enqueued(DateTime<Utc>),
}

impl Start {
    /// The selector Event Hubs reads a receiver's start from.
    fn selector(&self) -> String {
        match self {
            Start::After(sequence) => {
                format!("amqp.annotation.x-opt-sequence-number > '{sequence}'")
            }
            Start::Earliest => "amqp.annotation.x-opt-offset > '-1'".to_owned(),
            Start::Enqueued(t) => format!(
                "amqp.annotation.x-opt-enqueued-time >= '{}'",
                t.timestamp_millis()
            ),
        }
    }
}

/// An event as a partition delivered it.
#[derive(Debug)]
pub struct Received {
    pub partition: Arc<str>,
    pub sequence: i64,
    pub body: Vec<u8>,
}

/// An open connection with its session and its claims-based authorisation link.
pub struct Link {
    connection: ConnectionHandle<()>,
    session: SessionHandle<()>,
    cbs: CbsClient,
    address: Address,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

fn transport(what: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::Transport {
        api: API,
        message: format!("{what}: {e}"),
    }
}

impl Link {
    /// Connects over TLS and authorises the connection for the hub.
    pub async fn open(
        address: &Address,
        tls: Arc<rustls::ClientConfig>,
        credential: &Credential,
    ) -> Result<Link, ApiError> {
        let tcp = tokio::net::TcpStream::connect((address.host.as_str(), address.port))
            .await
            .map_err(|e| {
                transport(
                    &format!("failed to connect to {}:{}", address.host, address.port),
                    e,
                )
            })?;
        tcp.set_nodelay(true).ok();
        let name = rustls::pki_types::ServerName::try_from(address.host.clone())
            .map_err(|e| transport("invalid host name", e))?;
        let stream = tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(|e| transport("TLS handshake failed", e))?;
        let mut connection = Connection::builder()
            .container_id(format!("azlog-{}", std::process::id()))
            .hostname(address.host.as_str())
            .sasl_profile(SaslProfile::Anonymous)
            .scheme("amqp") // TLS is already established on `stream`
            .open_with_stream(stream)
            .await
            .map_err(|e| transport("failed to open the AMQP connection", e))?;
        let mut session = Session::begin(&mut connection)
            .await
            .map_err(|e| transport("failed to begin an AMQP session", e))?;
        let cbs = CbsClient::attach(&mut session)
            .await
            .map_err(|e| transport("failed to attach the $cbs link", e))?;
        let mut link = Link {
            connection,
            session,
            cbs,
            address: address.clone(),
        };
        link.authorise(credential).await?;
        Ok(link)
    }

    /// Puts a fresh token for the hub; done at connect and again before the last one expires.
    pub async fn authorise(&mut self, credential: &Credential) -> Result<(), ApiError> {
        let audience = self.address.audience();
        let token = credential.token(&audience).await?;
        let expires = Timestamp::from_milliseconds(token.expires.timestamp_millis());
        self.cbs
            .put_token(
                audience.as_str(),
                CbsToken::new(token.value.secret(), token.kind, expires),
            )
            .await
            .map_err(|e| match e {
                MgmtError::Status(status) if status.code.0.get() == 401 => {
                    credential.refused();
                    ApiError::Unauthorized {
                        api: API,
                        code: "401".into(),
                        message: status.description.unwrap_or_default(),
                    }
                }
                MgmtError::Status(status) => ApiError::Forbidden {
                    api: API,
                    code: status.code.0.get().to_string(),
                    message: status.description.unwrap_or_default(),
                    hint: "give the identity the Azure Event Hubs Data Receiver role on the hub, or use a connection string of a policy with Listen",
                },
                other => transport("the $cbs put-token request failed", other),
            })
    }

    /// The hub's partition ids, from the `$management` node.
    pub async fn partitions(&mut self, credential: &Credential) -> Result<Vec<String>, ApiError> {
        let token = credential.token(&self.address.audience()).await?;
        let mut management = MgmtClient::builder()
            .management_node_address("$management")
            .client_node_addr("azlog-management")
            .attach(&mut self.session)
            .await
            .map_err(|e| transport("failed to attach the $management link", e))?;
        let answer: Result<HubProperties, MgmtError> = management
            .call(ReadHub {
                hub: self.address.hub.clone(),
                token: token.value.secret().to_owned(),
            })
            .await;
        let _ = management.close().await;
        answer
            .map_err(|e| match e {
                MgmtError::Status(status) if status.code.0.get() == 404 => ApiError::Status {
                    api: API,
                    status: 404,
                    code: "NotFound".into(),
                    message: format!(
                        "the namespace has no event hub {:?}: {}",
                        self.address.hub,
                        status.description.unwrap_or_default()
                    ),
                },
                MgmtError::Status(status) => ApiError::Status {
                    api: API,
                    status: status.code.0.get(),
                    code: "Management".into(),
                    message: status.description.unwrap_or_default(),
                },
                other => transport("the $management request failed", other),
            })
            .map(|props| props.partition_ids)
    }

    /// A receiver of one partition from `start`. The epoch makes it the partition's only reader in
    /// the consumer group: a receiver with a higher epoch takes the partition over.
    pub async fn receiver(
        &mut self,
        partition: &str,
        start: &Start,
        epoch: i64,
        prefetch: u32,
    ) -> Result<Receiver, ApiError> {
        let address = format!(
            "{}/ConsumerGroups/{}/Partitions/{partition}",
            self.address.hub, self.address.consumer_group
        );
        let selector = Symbol::from("apache.org:selector-filter:string");
        let source = Source::builder()
            .address(address.clone())
            .add_to_filter(
                selector.clone(),
                Described {
                    descriptor: Descriptor::Name(selector),
                    value: Value::String(start.selector()),
                },
            )
            .build();
        let mut properties = Fields::new();
        properties.insert(Symbol::from("com.microsoft:epoch"), Value::Long(epoch));
        Receiver::builder()
            .name(format!("azlog-{partition}-{epoch}"))
            .source(source)
            .target("azlog")
            .properties(properties)
            .credit_mode(CreditMode::Auto(prefetch))
            .attach(&mut self.session)
            .await
            .map_err(|e| transport(&format!("failed to attach a receiver to {address}"), e))
    }

    pub async fn close(mut self) {
        let _ = self.cbs.close().await;
        let _ = self.session.end().await;
        let _ = self.connection.close().await;
    }
}

/// Reads the next event of `receiver`.
pub async fn receive(receiver: &mut Receiver, partition: &Arc<str>) -> Result<Received, ApiError> {
    let delivery = receiver.recv::<Body<Value>>().await.map_err(|e| {
        let text = e.to_string();
        if text.contains("server-busy") {
            ApiError::Throttled {
                api: API,
                status: 503,
                retry_after: None,
            }
        } else if text.contains("unauthorized-access") {
            ApiError::Unauthorized {
                api: API,
                code: "amqp:unauthorized-access".into(),
                message: text,
            }
        } else {
            transport(&format!("partition {partition} stopped"), text)
        }
    })?;
    // Events come pre-settled: accepting sends nothing, but counts the delivery as processed,
    // which is what refills the link's credit.
    receiver
        .accept(&delivery)
        .await
        .map_err(|e| transport(&format!("partition {partition}"), e))?;
    let message = delivery.into_message();
    let sequence = sequence_number(&message).ok_or_else(|| {
        transport(
            &format!("partition {partition}"),
            "an event came without x-opt-sequence-number",
        )
    })?;
    let body = match message.body {
        Body::Data(sections) => match sections.len() {
            1 => sections
                .into_iter()
                .next()
                .map(|d| d.0.into_vec())
                .unwrap_or_default(),
            _ => sections.into_iter().flat_map(|d| d.0.into_vec()).collect(),
        },
        Body::Value(value) => match value.0 {
            Value::String(text) => text.into_bytes(),
            Value::Binary(bytes) => bytes.into_vec(),
            other => format!("{other:?}").into_bytes(),
        },
        Body::Sequence(_) | Body::Empty => Vec::new(),
    };
    Ok(Received {
        partition: partition.clone(),
        sequence,
        body,
    })
}

fn sequence_number(message: &Message<Body<Value>>) -> Option<i64> {
    let annotations: &MessageAnnotations = message.message_annotations.as_ref()?;
    annotations
        .0
        .iter()
        .find_map(|(key, value)| match (key, value) {
            (OwnedKey::Symbol(s), Value::Long(n)) if s.0 == "x-opt-sequence-number" => Some(*n),
            _ => None,
        })
}

/// `$management` READ of the hub (`com.microsoft:eventhub`).
struct ReadHub {
    hub: String,
    token: String,
}

impl Request for ReadHub {
    const OPERATION: &'static str = "READ";
    type Response = HubProperties;
    type Body = ();

    fn manageable_entity_type(&mut self) -> Option<String> {
        Some("com.microsoft:eventhub".into())
    }

    fn encode_application_properties(&mut self) -> Option<ApplicationProperties> {
        Some(
            ApplicationProperties::builder()
                .insert("name", SimpleValue::String(self.hub.clone()))
                .insert(
                    "security_token",
                    SimpleValue::String(std::mem::take(&mut self.token)),
                )
                .build(),
        )
    }

    fn encode_body(self) -> Self::Body {}
}

struct HubProperties {
    partition_ids: Vec<String>,
}

impl Response for HubProperties {
    const STATUS_CODE: u16 = 200;
    type Body = Value;
    type Error = MgmtError;

    fn decode_message(message: Message<Self::Body>) -> Result<Self, Self::Error> {
        let map: OrderedMap<Value, Value> = match message.body {
            Value::Map(map) => map,
            _ => return Err(invalid("a map of the hub's properties")),
        };
        let ids = map
            .iter()
            .find_map(|(k, v)| match (k, v) {
                (Value::String(k), Value::Array(ids)) if k == "partition_ids" => Some(ids),
                _ => None,
            })
            .ok_or_else(|| invalid("partition_ids"))?;
        let partition_ids = ids
            .0
            .iter()
            .map(|id| match id {
                Value::String(id) => Ok(id.clone()),
                _ => Err(invalid("partition ids as strings")),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(HubProperties { partition_ids })
    }
}

fn invalid(expected: &str) -> MgmtError {
    MgmtError::DecodeError(Some(fe2o3_amqp_management::error::InvalidType {
        expected: expected.to_owned(),
        actual: "something else".to_owned(),
    }))
}
