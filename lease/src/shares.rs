//! Dividing named items (an event hub's partitions; later subscriptions or containers) among the
//! live replicas of one group, through Leases: one per item, held by the replica reading it and
//! carrying where it got to, and one per replica, which says it is alive and wants a share.
//!
//! Every replica runs [`Shares::round`] every renewal period. A round renews the replica's own
//! Leases (with each item's latest committed position) and compares what it holds with a fair
//! share, `items / replicas` rounded down or up:
//! - it takes a free or expired item while it holds fewer than its share;
//! - when some replica holds less than the share rounded down, the replica holding the most gives
//!   one item up. Giving up is the caller's to finish: it stops reading the item, waits until what
//!   it read is delivered and committed, and then [`Shares::release`]s it with that position, so
//!   the next holder starts exactly after it.
//!
//! A replica that dies stops renewing; once its Leases have stood unchanged for a whole duration
//! (measured on the observer's own clock, as [`crate::LeaseLock`] does), the others take its items
//! from the positions it last recorded.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, Error};

use crate::Observed;

/// The label every Lease of a group carries: `<group>`.
pub const GROUP_LABEL: &str = "azlog.io/shares";
/// The annotation an item's Lease keeps its position in.
pub const POSITION_ANNOTATION: &str = "azlog.io/position";
const MEMBER_INFIX: &str = "-member-";

/// An item this replica now holds.
#[derive(Debug, PartialEq, Eq)]
pub struct Taken {
    pub item: String,
    /// The position its Lease recorded (None: never read).
    pub position: Option<String>,
    /// How many times the item changed hands, this take included: grows with every new holder,
    /// so a reader can use it as an epoch that outranks every earlier holder's.
    pub generation: i64,
}

/// What a round found this replica should do.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Items now held by this replica.
    pub taken: Vec<Taken>,
    /// An item to give up: stop reading it, commit, then [`Shares::release`] it.
    pub give_up: Option<String>,
    /// Items another replica took over (this one failed to renew in time): stop reading them at
    /// once, without releasing.
    pub lost: Vec<String>,
}

#[derive(Debug)]
pub struct Shares {
    api: Api<Lease>,
    group: String,
    identity: String,
    duration: Duration,
    observed: HashMap<String, Observed>,
    held: BTreeSet<String>,
}

impl Shares {
    pub fn new(
        client: Client,
        namespace: &str,
        group: &str,
        identity: &str,
        duration: Duration,
    ) -> Shares {
        Shares {
            api: Api::namespaced(client, namespace),
            group: group.to_owned(),
            identity: identity.to_owned(),
            duration,
            observed: HashMap::new(),
            held: BTreeSet::new(),
        }
    }

    /// The items this replica holds.
    pub fn held(&self) -> &BTreeSet<String> {
        &self.held
    }

    fn item_lease(&self, item: &str) -> String {
        format!("{}-{item}", self.group)
    }

    fn member_lease(&self) -> String {
        format!("{}{MEMBER_INFIX}{}", self.group, self.identity)
    }

    /// One round over `items`: renews this replica's Leases, recording `positions` (the committed
    /// position of each held item), and takes or gives up items toward a fair share.
    pub async fn round(
        &mut self,
        items: &[String],
        positions: &BTreeMap<String, String>,
    ) -> Result<Plan, Error> {
        let listed = self
            .api
            .list(&ListParams::default().labels(&format!("{GROUP_LABEL}={}", self.group)))
            .await?;
        let mut leases: BTreeMap<String, Lease> = BTreeMap::new();
        for lease in listed.items {
            if let Some(name) = lease.metadata.name.clone() {
                leases.insert(name, lease);
            }
        }
        self.observed.retain(|name, _| leases.contains_key(name));
        let member = self.member_lease();
        let mut plan = Plan::default();
        self.renew(&member, leases.get(&member).cloned(), None)
            .await?;

        // Who is alive: every member whose Lease still changes, and this replica.
        let member_prefix = format!("{}{MEMBER_INFIX}", self.group);
        let mut members: BTreeMap<String, usize> = BTreeMap::new();
        members.insert(self.identity.clone(), 0);
        for (name, lease) in &leases {
            if let Some(identity) = name.strip_prefix(&member_prefix)
                && self.live(name, lease)
            {
                members.entry(identity.to_owned()).or_default();
            }
        }
        // Who holds what.
        let mut free = Vec::new();
        for item in items {
            let name = self.item_lease(item);
            let lease = leases.get(&name);
            let holder = lease
                .filter(|l| self.live(&name, l))
                .and_then(|l| l.spec.as_ref()?.holder_identity.clone());
            match holder {
                Some(holder) if holder == self.identity => {
                    if self.held.contains(item) {
                        let position = positions.get(item).cloned();
                        if self.renew(&name, lease.cloned(), position).await.is_err() {
                            self.held.remove(item);
                            plan.lost.push(item.clone());
                            continue;
                        }
                    } else {
                        // Ours from before a restart (same identity): take it back as it stands.
                        let position = lease.and_then(position_of);
                        let Ok(generation) = self.renew(&name, lease.cloned(), None).await else {
                            continue;
                        };
                        self.held.insert(item.clone());
                        plan.taken.push(Taken {
                            item: item.clone(),
                            position,
                            generation,
                        });
                    }
                    *members.entry(holder).or_default() += 1;
                }
                Some(holder) => {
                    if self.held.remove(item) {
                        plan.lost.push(item.clone());
                    }
                    *members.entry(holder).or_default() += 1;
                }
                None => free.push((item.clone(), lease.cloned())),
            }
        }
        let mine = members.get(&self.identity).copied().unwrap_or(0);
        let floor = items.len() / members.len();
        let ceil = items.len().div_ceil(members.len());
        let someone_short = members
            .iter()
            .any(|(id, n)| *id != self.identity && *n < floor);
        // One replica gives up at a time: the one holding the most (ties: the greatest identity).
        let richest = members
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then(a.0.cmp(b.0)))
            .map(|(id, _)| id.as_str());
        if mine > ceil || (mine > floor && someone_short && richest == Some(&self.identity)) {
            plan.give_up = self.held.iter().next_back().cloned();
            return Ok(plan);
        }
        let wanted = if mine < floor {
            floor - mine
        } else {
            usize::from(mine < ceil && !someone_short)
        };
        for (item, lease) in free.into_iter().take(wanted) {
            let name = self.item_lease(&item);
            let position = lease.as_ref().and_then(position_of);
            if let Ok(generation) = self.renew(&name, lease, None).await {
                self.held.insert(item.clone());
                plan.taken.push(Taken {
                    item,
                    position,
                    generation,
                });
            }
        }
        Ok(plan)
    }

    /// Whether a Lease is held by a replica that still renews it.
    fn live(&mut self, name: &str, lease: &Lease) -> bool {
        let Some(spec) = lease.spec.as_ref() else {
            return false;
        };
        if spec.holder_identity.is_none() {
            return false;
        }
        if spec.holder_identity.as_deref() == Some(self.identity.as_str()) {
            return true;
        }
        let version = lease.metadata.resource_version.clone().unwrap_or_default();
        let held = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map_or(self.duration, Duration::from_secs);
        !self
            .observed
            .entry(name.to_owned())
            .or_default()
            .expired(&version, held)
    }

    /// Writes a Lease as held by this replica now, with `position` when given; answers its
    /// transitions. Fails with a 409 when another replica wrote it since it was read.
    async fn renew(
        &self,
        name: &str,
        lease: Option<Lease>,
        position: Option<String>,
    ) -> Result<i64, Error> {
        let now = MicroTime(Timestamp::now());
        let mut lease = lease.unwrap_or_else(|| Lease {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                labels: Some([(GROUP_LABEL.to_owned(), self.group.clone())].into()),
                ..ObjectMeta::default()
            },
            spec: None,
        });
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            spec.holder_identity = Some(self.identity.clone());
            spec.acquire_time = Some(now.clone());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.lease_duration_seconds = Some(self.duration.as_secs() as i32);
        spec.renew_time = Some(now);
        let transitions = spec.lease_transitions.unwrap_or(0);
        record(&mut lease, position);
        if lease.metadata.resource_version.is_some() {
            self.api
                .replace(name, &PostParams::default(), &lease)
                .await?;
        } else {
            self.api.create(&PostParams::default(), &lease).await?;
        }
        Ok(i64::from(transitions))
    }

    /// Gives `item` up with the position the next holder starts after.
    pub async fn release(&mut self, item: &str, position: Option<String>) -> Result<(), Error> {
        let name = self.item_lease(item);
        let mut lease = self.api.get(&name).await?;
        if let Some(spec) = lease.spec.as_mut()
            && spec.holder_identity.as_deref() == Some(self.identity.as_str())
        {
            spec.holder_identity = None;
            record(&mut lease, position);
            self.api
                .replace(&name, &PostParams::default(), &lease)
                .await?;
        }
        self.held.remove(item);
        Ok(())
    }

    /// Leaves the group: the member Lease is deleted so the others rebalance at once.
    pub async fn leave(&mut self) {
        let name = self.member_lease();
        if let Err(e) = self.api.delete(&name, &Default::default()).await {
            tracing::warn!(lease = %name, error = %e, "failed to delete the member Lease; it expires by itself");
        }
    }
}

/// Keeps `position`, when given, in the Lease's annotation.
fn record(lease: &mut Lease, position: Option<String>) {
    if let Some(position) = position {
        lease
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(POSITION_ANNOTATION.to_owned(), position);
    }
}

fn position_of(lease: &Lease) -> Option<String> {
    lease
        .metadata
        .annotations
        .as_ref()?
        .get(POSITION_ANNOTATION)
        .cloned()
}
