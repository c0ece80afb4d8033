//! Status conditions and Events, the two ways a resource tells `kubectl` users what happens.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::runtime::events::{Event, EventType, Recorder};

/// A condition's status: True or False, or Unknown where the operator cannot tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    True,
    False,
    Unknown,
}

impl From<bool> for Status {
    fn from(value: bool) -> Status {
        if value { Status::True } else { Status::False }
    }
}

/// Sets a condition, keeping its transition time unless its status changes.
pub fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    value: impl Into<Status>,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) {
    let value = match value.into() {
        Status::True => "True",
        Status::False => "False",
        Status::Unknown => "Unknown",
    };
    let previous = conditions.iter().position(|c| c.type_ == type_);
    let transition = previous
        .map(|i| &conditions[i])
        .filter(|c| c.status == value)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| Time(k8s_openapi::jiff::Timestamp::now()));
    let condition = Condition {
        type_: type_.to_owned(),
        status: value.to_owned(),
        reason: reason.to_owned(),
        message: message.to_owned(),
        observed_generation: generation,
        last_transition_time: transition,
    };
    match previous {
        Some(i) => conditions[i] = condition,
        None => conditions.push(condition),
    }
}

/// Publishes an Event about `object`. An Event is a courtesy to whoever runs `kubectl
/// describe`; failing to write one is logged, never a reason to redo the reconcile.
pub async fn publish(
    recorder: &Recorder,
    object: &ObjectReference,
    type_: EventType,
    reason: &str,
    note: &str,
) {
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: (!note.is_empty()).then(|| note.chars().take(1000).collect()),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&event, object).await {
        tracing::warn!(error = %e, "failed to publish an Event");
    }
}
