//! Exclusive ownership with a coordination.k8s.io Lease: of several operator replicas exactly one
//! reconciles, and of several collectors on one checkpoint exactly one reads and writes it. The
//! holder renews the Lease every third of its duration (or as set); another takes it over only
//! once it has not been renewed for a whole duration. Writes carry the resourceVersion read, so
//! two replicas racing for an expired Lease cannot both win.
//!
//! "Not renewed for a whole duration" is measured on this replica's own monotonic clock, from when
//! it last saw the Lease change, as client-go does: comparing the holder's renewTime with the local
//! wall clock would let two machines' clock skew hand the Lease to a second leader.

pub mod shares;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::{Client, Error};

#[derive(Debug, Clone)]
pub struct LeaseLock {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
    /// How often the holder renews it; a third of `duration` unless set.
    renew_every: Duration,
    observed: Arc<Mutex<Observed>>,
}

/// The last version of another holder's Lease this replica saw, and when it first saw it.
#[derive(Debug, Default)]
struct Observed {
    version: Option<String>,
    since: Option<tokio::time::Instant>,
}

impl Observed {
    /// Whether the Lease at `version` has stood unchanged for longer than `held`.
    fn expired(&mut self, version: &str, held: Duration) -> bool {
        let now = tokio::time::Instant::now();
        if self.version.as_deref() != Some(version) {
            self.version = Some(version.to_owned());
            self.since = Some(now);
            return false;
        }
        self.since
            .is_some_and(|since| now.duration_since(since) > held)
    }
}

/// Who this process is to a Lease: its pod's name (`POD_NAME`, from the downward API), else the
/// host name (or `fallback`) and the process id.
pub fn identity(fallback: &str) -> String {
    std::env::var("POD_NAME").unwrap_or_else(|_| {
        format!(
            "{}-{}",
            std::env::var("HOSTNAME").unwrap_or_else(|_| fallback.into()),
            std::process::id()
        )
    })
}

impl LeaseLock {
    pub fn new(client: Client, namespace: &str, name: &str, identity: &str) -> LeaseLock {
        LeaseLock {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            identity: identity.to_owned(),
            duration: Duration::from_secs(15),
            renew_every: Duration::from_secs(5),
            observed: Arc::default(),
        }
    }

    /// How long the Lease holds without a renewal (15 s unless set), and how often the holder
    /// renews it; the difference is the time a renewal has to get through.
    pub fn with_timing(mut self, duration: Duration, renew_every: Duration) -> LeaseLock {
        self.duration = duration;
        self.renew_every = renew_every.min(duration);
        self
    }

    /// How soon a failed attempt, or a waiting replica's look, is made again: a long Lease must
    /// not make a retry or a takeover after a release wait for a renewal period.
    fn retry_after(&self) -> Duration {
        self.renew_every.min(Duration::from_secs(5))
    }

    /// Waits until this replica holds the Lease.
    pub async fn acquire(&self) {
        let mut waiting_logged = false;
        loop {
            match self.try_acquire().await {
                Ok(true) => {
                    tracing::info!(lease = %self.name, identity = %self.identity, "holding the Lease");
                    return;
                }
                Ok(false) => {
                    if !waiting_logged {
                        tracing::info!(lease = %self.name, "another process holds the Lease; waiting to take over");
                        waiting_logged = true;
                    }
                }
                Err(e) => {
                    tracing::warn!(lease = %self.name, error = %e, "failed to read or write the Lease; retrying")
                }
            }
            tokio::time::sleep(self.retry_after()).await;
        }
    }

    /// Renews the Lease until a renewal has failed for a whole duration; then returns, and the
    /// replica must stop reconciling, because another may have taken over.
    pub async fn hold(&self) {
        let mut last_renewed = tokio::time::Instant::now();
        let mut wait = self.renew_every;
        loop {
            tokio::time::sleep(wait).await;
            match self.try_acquire().await {
                Ok(true) => {
                    last_renewed = tokio::time::Instant::now();
                    wait = self.renew_every;
                }
                Ok(false) => {
                    tracing::error!(lease = %self.name, "another process took the Lease over");
                    return;
                }
                Err(e) => {
                    tracing::warn!(lease = %self.name, error = %e, "failed to renew the Lease");
                    wait = self.retry_after();
                }
            }
            if last_renewed.elapsed() >= self.duration {
                tracing::error!(lease = %self.name, "could not renew the Lease in time");
                return;
            }
        }
    }

    /// Gives the Lease up if this process holds it, so that a waiting one takes over at once
    /// instead of after a whole duration. Best effort: an error leaves it to expire.
    pub async fn release(&self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await else {
            return;
        };
        let Some(spec) = lease.spec.as_mut() else {
            return;
        };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => tracing::info!(lease = %self.name, "released the Lease"),
            Err(e) => {
                tracing::warn!(lease = %self.name, error = %e, "failed to release the Lease; it expires by itself")
            }
        }
    }

    /// Takes or renews the Lease if it is free, expired or ours; answers whether we hold it.
    async fn try_acquire(&self) -> Result<bool, Error> {
        let now = Timestamp::now();
        let spec = |transitions: i32, acquired: Option<MicroTime>| LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.duration.as_secs() as i32),
            acquire_time: acquired.or(Some(MicroTime(now))),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        };
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(spec(0, None)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let current = lease.spec.clone().unwrap_or_default();
        let ours = current.holder_identity.as_deref() == Some(self.identity.as_str());
        let held = current
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map_or(self.duration, Duration::from_secs);
        // Every renewal changes the resourceVersion.
        let version = lease.metadata.resource_version.clone().unwrap_or_default();
        let expired = current.holder_identity.is_none()
            || self
                .observed
                .lock()
                .is_ok_and(|mut observed| observed.expired(&version, held));
        if !ours && !expired {
            return Ok(false);
        }
        let transitions = current.lease_transitions.unwrap_or(0) + i32::from(!ours);
        let acquired = if ours { current.acquire_time } else { None };
        lease.spec = Some(spec(transitions, acquired));
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_lease_expires_after_standing_unchanged_on_this_replicas_clock() {
        let held = Duration::from_secs(15);
        let mut observed = Observed::default();
        // However old its renewTime reads, a Lease first seen now is not expired.
        assert!(!observed.expired("41", held));
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(!observed.expired("41", held));
        // Renewed: the wait starts again.
        assert!(!observed.expired("42", held));
        tokio::time::advance(Duration::from_secs(14)).await;
        assert!(!observed.expired("42", held));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(observed.expired("42", held));
    }
}
