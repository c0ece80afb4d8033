//! The LogSource controller: render → check the Secrets referenced → apply the children that
//! differ from what runs → report status. A LogSource whose children already match causes no
//! write at all, so a resync of hundreds of them costs the API server nothing but the watch.

use std::sync::Arc;
use std::time::{Duration, Instant};

use azlog_config::report::Component;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, PartialObjectMeta, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::children::{self, COLLECTOR_STATE, Children, CollectorDefaults, MANAGED_BY};
use crate::conditions;
use crate::crd::{LogSource, LogSourceStatus, SubscriptionAuthorization};
use crate::metrics::Metrics;
use crate::policy::{self, Policy};
use crate::render::{self, Rendered};

/// The field manager of every apply, so ownership of fields is clear in `managedFields`.
pub const FIELD_MANAGER: &str = "azlog-operator";
/// How often a LogSource is looked at when nothing changes (a cache read, not an API call).
const RESYNC: Duration = Duration::from_secs(600);
/// How soon a failed apply that may pass by itself (a 5xx, throttling) is tried again.
const APPLY_RETRY: Duration = Duration::from_secs(15);
/// How soon a LogSource waiting for its SubscriptionAuthorization is looked at again, should a
/// change of it be missed (the watch brings it at once).
const AUTHORIZATION_RETRY: Duration = Duration::from_secs(60);
/// How soon a LogSource waiting for a Secret is looked at again.
const SECRET_RETRY: Duration = Duration::from_secs(5);

/// What a reconcile can fail with; the category is the Event reason and the metric label.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to apply {kind} {name}: {source}")]
    Apply {
        kind: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "{kind} {name} exists and does not belong to this LogSource; the operator takes over \
         nothing it did not create: rename the LogSource, or delete the {kind} if it is stale"
    )]
    NotOwned { kind: String, name: String },
    #[error("failed to look up Secret {name}: {source}")]
    Secret {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to look up SubscriptionAuthorization {name}: {source}")]
    Authorization {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to update the status: {source}")]
    Status {
        #[source]
        source: kube::Error,
    },
}

impl Error {
    pub fn category(&self) -> &'static str {
        match self {
            Error::Apply { .. } => "apply",
            Error::NotOwned { .. } => "name_conflict",
            Error::Secret { .. } => "secret_lookup",
            Error::Authorization { .. } => "authorization_lookup",
            Error::Status { .. } => "status",
        }
    }
}

/// Caches of the children, kept by watches, so comparing desired with live state costs no call.
/// Of the children the collector writes (checkpoint, Lease) only the metadata is kept: the
/// operator sets nothing else in them.
#[derive(Debug, Clone)]
pub struct Stores {
    pub config_maps: Store<ConfigMap>,
    pub checkpoints: Store<PartialObjectMeta<ConfigMap>>,
    pub service_accounts: Store<ServiceAccount>,
    pub roles: Store<Role>,
    pub role_bindings: Store<RoleBinding>,
    pub leases: Store<PartialObjectMeta<Lease>>,
    pub deployments: Store<Deployment>,
}

impl Stores {
    /// Whether every cache holds its first complete listing.
    fn ready(&self) -> bool {
        fn filled<K: Resource<DynamicType = ()> + Clone>(store: &Store<K>) -> bool {
            store
                .wait_until_ready()
                .now_or_never()
                .is_some_and(|r| r.is_ok())
        }
        filled(&self.config_maps)
            && filled(&self.checkpoints)
            && filled(&self.service_accounts)
            && filled(&self.roles)
            && filled(&self.role_bindings)
            && filled(&self.leases)
            && filled(&self.deployments)
    }
}

pub struct Context {
    pub client: Client,
    pub defaults: CollectorDefaults,
    pub policy: Policy,
    pub stores: Stores,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("defaults", &self.defaults)
            .finish_non_exhaustive()
    }
}

/// Runs the controller until `shutdown` resolves: over every namespace when `namespaces` is
/// empty, else one controller per namespace (each with its own watches, so the operator needs
/// rights in those namespaces only).
pub async fn run(
    client: Client,
    namespaces: Vec<String>,
    defaults: CollectorDefaults,
    policy: Policy,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let shutdown = shutdown.boxed().shared();
    let scopes: Vec<Option<String>> = if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.into_iter().map(Some).collect()
    };
    futures::future::join_all(scopes.into_iter().map(|namespace| {
        run_in(
            client.clone(),
            namespace,
            defaults.clone(),
            policy.clone(),
            metrics.clone(),
            shutdown.clone(),
        )
    }))
    .await;
}

async fn run_in(
    client: Client,
    namespace: Option<String>,
    defaults: CollectorDefaults,
    policy: Policy,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        match namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }
    let ns = namespace.as_deref();
    let owned = watcher::Config::default().labels(&format!(
        "{}={},!{}",
        MANAGED_BY.0, MANAGED_BY.1, COLLECTOR_STATE.0
    ));
    let (config_maps, cm_stream) = cached(api::<ConfigMap>(&client, ns), &owned);
    let (service_accounts, sa_stream) = cached(api::<ServiceAccount>(&client, ns), &owned);
    let (roles, role_stream) = cached(api::<Role>(&client, ns), &owned);
    let (role_bindings, binding_stream) = cached(api::<RoleBinding>(&client, ns), &owned);
    let (deployments, deploy_stream) = cached(api::<Deployment>(&client, ns), &owned);
    let state = watcher::Config::default().labels(&format!(
        "{}={},{}={}",
        MANAGED_BY.0, MANAGED_BY.1, COLLECTOR_STATE.0, COLLECTOR_STATE.1
    ));
    // Metadata only (an Api of PartialObjectMeta asks for nothing else), kept up to date but
    // never a reason to reconcile: the collector changes them all the time.
    let (checkpoints, checkpoint_watch) =
        cached(api::<PartialObjectMeta<ConfigMap>>(&client, ns), &state);
    let (leases, lease_watch) = cached(api::<PartialObjectMeta<Lease>>(&client, ns), &state);
    tokio::spawn(checkpoint_watch.for_each(|_| async {}));
    tokio::spawn(lease_watch.for_each(|_| async {}));
    let context = Arc::new(Context {
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: FIELD_MANAGER.into(),
                instance: std::env::var("POD_NAME").ok(),
            },
        ),
        client: client.clone(),
        defaults,
        policy,
        stores: Stores {
            config_maps,
            checkpoints,
            service_accounts,
            roles,
            role_bindings,
            leases,
            deployments,
        },
        metrics,
    });
    let controller = Controller::new(api::<LogSource>(&client, ns), watcher::Config::default());
    // A LogSource waiting for its SubscriptionAuthorization is looked at when that changes.
    let log_sources = controller.store();
    controller
        .watches(
            api::<SubscriptionAuthorization>(&client, ns),
            watcher::Config::default(),
            move |authorization| {
                let namespace = authorization.namespace();
                let name = authorization.name_any();
                log_sources
                    .state()
                    .into_iter()
                    .filter(|source| {
                        source.namespace() == namespace
                            && source
                                .spec
                                .authorization_ref
                                .as_ref()
                                .is_some_and(|r| r.name == name)
                    })
                    .map(|source| ObjectRef::from_obj(source.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .owns_stream(cm_stream)
        .owns_stream(sa_stream)
        .owns_stream(role_stream)
        .owns_stream(binding_stream)
        .owns_stream(deploy_stream)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, context)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "reconcile did not complete");
            }
        })
        .await;
}

/// A watch of the operator's children of one kind, and the cache it fills.
fn cached<K>(
    api: Api<K>,
    config: &watcher::Config,
) -> (
    Store<K>,
    impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let stream = watcher(api, config.clone())
        .default_backoff()
        .modify(|object| object.managed_fields_mut().clear())
        .reflect(writer)
        .applied_objects();
    (store, stream)
}

fn error_policy(source: Arc<LogSource>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics
        .reconcile_errors
        .with_label_values(&[error.category()])
        .inc();
    tracing::warn!(logsource = %source.name_any(), namespace = source.namespace().unwrap_or_default(), error = %error, "reconcile failed; retrying in 15s");
    Action::requeue(Duration::from_secs(15))
}

pub async fn reconcile(source: Arc<LogSource>, ctx: Arc<Context>) -> Result<Action, Error> {
    // Right after a start the LogSources can arrive before the children's caches are filled; an
    // empty cache would make every child look missing and cost a write each. The watches fill
    // them within moments, so the LogSource is simply looked at again.
    if !ctx.stores.ready() {
        ctx.metrics
            .reconciles
            .with_label_values(&["waiting_for_caches"])
            .inc();
        return Ok(Action::requeue(Duration::from_millis(500)));
    }
    let started = Instant::now();
    let result = reconcile_inner(&source, &ctx).await;
    ctx.metrics
        .reconcile_duration
        .observe(started.elapsed().as_secs_f64());
    ctx.metrics
        .reconciles
        .with_label_values(&[if result.is_ok() { "ok" } else { "error" }])
        .inc();
    result
}

async fn reconcile_inner(source: &LogSource, ctx: &Context) -> Result<Action, Error> {
    let namespace = source.namespace().unwrap_or_default();
    let generation = source.metadata.generation;
    let mut status = source.status.clone().unwrap_or_default();
    status.observed_generation = generation;

    let rendered = match render::render(source) {
        Ok(rendered) => rendered,
        Err(invalid) => {
            let message = format!("{invalid}.{}", running_note(source, ctx));
            not_ready(source, ctx, status, "InvalidSpec", &message).await?;
            return Ok(Action::await_change());
        }
    };
    status.source = Some(rendered.source.to_owned());

    let refusals = policy::check(source, &ctx.policy);
    if !refusals.is_empty() {
        let problems: Vec<String> = refusals.iter().map(ToString::to_string).collect();
        let message = format!(
            "the operator's policy refuses {}.{}",
            problems.join("; "),
            running_note(source, ctx)
        );
        not_ready(source, ctx, status, "PolicyRefused", &message).await?;
        return Ok(Action::await_change());
    }

    if let Some((reason, problem)) = secret_problem(source, &rendered, ctx).await? {
        not_ready(source, ctx, status, reason, &problem).await?;
        return Ok(Action::requeue(SECRET_RETRY));
    }

    if source.spec.authorization_ref.is_none() {
        status.conditions.retain(|c| c.type_ != "Authorized");
    }
    if let Some(reference) = &source.spec.authorization_ref {
        match authorization(source, &reference.name, ctx).await? {
            Ok(message) => {
                set_condition(
                    &mut status,
                    "Authorized",
                    true,
                    "Granted",
                    &message,
                    generation,
                );
            }
            Err((reason, message)) => {
                let message = format!(
                    "{message}; the collector starts once it is.{}",
                    running_note(source, ctx)
                );
                set_condition(
                    &mut status,
                    "Authorized",
                    false,
                    reason,
                    &message,
                    generation,
                );
                not_ready(source, ctx, status, reason, &message).await?;
                return Ok(Action::requeue(AUTHORIZATION_RETRY));
            }
        }
    }

    let children = children::build(source, &rendered, &ctx.defaults);
    let (deployment, applied) = match apply_children(source, ctx, &namespace, children).await {
        Ok(applied) => applied,
        Err(conflict @ Error::NotOwned { .. }) => {
            // Rechecked now and then: a stale object may be garbage-collected meanwhile.
            not_ready(source, ctx, status, "NameConflict", &conflict.to_string()).await?;
            return Ok(Action::requeue(SECRET_RETRY));
        }
        Err(Error::Apply {
            kind,
            name,
            source: error,
        }) => {
            // Whatever the API server says, the status says it too: a refusal that repeats (a
            // limit, an admission policy, the operator's own rights, a value it cannot convert)
            // must not stay in the operator's log alone.
            ctx.metrics
                .reconcile_errors
                .with_label_values(&["apply"])
                .inc();
            let (code, detail) = match &error {
                kube::Error::Api(refused) => (
                    Some(refused.code),
                    format!("{} {}: {}", refused.code, refused.reason, refused.message),
                ),
                other => (None, other.to_string()),
            };
            let message = format!(
                "the API server refused {kind} {name} ({detail}); change the LogSource, or ask \
                 the cluster admin if a policy or the operator's RBAC refuses it"
            );
            not_ready(source, ctx, status, "ApplyFailed", &message).await?;
            let transient = code.is_none_or(|c| c >= 500 || c == 429);
            return Ok(Action::requeue(if transient {
                APPLY_RETRY
            } else {
                RESYNC / 10
            }));
        }
        Err(other) => return Err(other),
    };

    let available = deployment
        .status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0);
    if available > 0 {
        set_condition(
            &mut status,
            "Ready",
            true,
            "CollectorRunning",
            "the collector pod is running",
            generation,
        );
        set_progress(&mut status, Progress::Done, generation);
    } else {
        let message = format!(
            "waiting for the collector pod of Deployment {} to become available; `kubectl describe pod -l azlog.io/logsource={}` says why it is not",
            children::child_name(source),
            source.name_any()
        );
        set_condition(
            &mut status,
            "Ready",
            false,
            "CollectorNotAvailable",
            &message,
            generation,
        );
        set_progress(
            &mut status,
            Progress::Reconciling("CollectorNotAvailable", &message),
            generation,
        );
    }
    let replicas = source.spec.replicas.unwrap_or(1);
    match status.collector.events_delivered.filter(|n| *n > 0) {
        // Collectors sharing an event hub keep their own checkpoints; none reports here.
        _ if replicas > 1 => set_condition(
            &mut status,
            "Collecting",
            conditions::Status::Unknown,
            "SharedByReplicas",
            &format!(
                "{replicas} collectors share the event hub and report their progress in their metrics (azlog_events_delivered_total, azlog_source_partitions), not here"
            ),
            generation,
        ),
        // The count stays out of the message: the condition changes only when collecting starts
        // or stops, not at every progress report (eventsDelivered carries the number).
        Some(_) => set_condition(
            &mut status,
            "Collecting",
            true,
            "Delivering",
            "the collector delivers events to every output",
            generation,
        ),
        None => set_condition(
            &mut status,
            "Collecting",
            false,
            "NoEventsYet",
            "the collector has not reported a delivered event yet",
            generation,
        ),
    }
    if let Some(message) = dead_letters(&status) {
        warn(
            source,
            ctx,
            &mut status,
            "DeadLetters",
            "RecordsDeadLettered",
            &message,
        )
        .await;
    }
    if let Some(message) = dedup_window(&status) {
        warn(
            source,
            ctx,
            &mut status,
            "DedupWindowExceeded",
            "IdsForgottenEarly",
            &message,
        )
        .await;
    }
    if let Some((reason, message)) = degraded(&status) {
        set_condition(&mut status, "Degraded", true, reason, &message, generation);
        report(source, ctx, status, EventType::Warning, reason, &message).await?;
        return Ok(Action::requeue(RESYNC));
    }
    set_condition(
        &mut status,
        "Degraded",
        false,
        "NoErrors",
        "the collector reports no errors",
        generation,
    );
    let note = if applied.is_empty() {
        String::new()
    } else {
        format!("applied {}", applied.join(", "))
    };
    report(source, ctx, status, EventType::Normal, "Applied", &note).await?;
    Ok(Action::requeue(RESYNC))
}

/// The reason and message of the Degraded condition, from the error the collector reports.
fn degraded(status: &LogSourceStatus) -> Option<(&'static str, String)> {
    let error = status.collector.last_error.as_ref()?;
    let (reason, what, next) = match error.component {
        Component::Source => (
            "SourceFailing",
            "reading from Azure fails".to_owned(),
            "check the credential, its role assignments and the endpoint",
        ),
        Component::Output => (
            "OutputFailing",
            format!(
                "delivering to output {} fails",
                error.output.as_deref().unwrap_or("?")
            ),
            "check that the receiver is reachable and accepts the connection",
        ),
        Component::Checkpoint => (
            "CheckpointFailing",
            "saving the checkpoint fails".to_owned(),
            "check the collector's ConfigMap and Role",
        ),
        Component::Collector => (
            "CollectorFailing",
            "the collector reports a failure".to_owned(),
            "see the collector's log",
        ),
    };
    Some((
        reason,
        format!(
            "{what} since {}: {}. Events wait and nothing is lost; {next}.",
            error.since, error.message
        ),
    ))
}

/// What a refused spec adds to its message when an earlier spec's collector still runs.
fn running_note(source: &LogSource, ctx: &Context) -> &'static str {
    let namespace = source.namespace().unwrap_or_default();
    let running = ctx
        .stores
        .deployments
        .get(&ObjectRef::new(&children::child_name(source)).within(&namespace))
        .is_some();
    if running {
        " The collector keeps running the last valid spec."
    } else {
        ""
    }
}

/// Whether the SubscriptionAuthorization `name` has granted what it declares: the Authorized
/// condition's message, or its reason and message when not.
async fn authorization(
    source: &LogSource,
    name: &str,
    ctx: &Context,
) -> Result<Result<String, (&'static str, String)>, Error> {
    let namespace = source.namespace().unwrap_or_default();
    let api: Api<SubscriptionAuthorization> = Api::namespaced(ctx.client.clone(), &namespace);
    let found = api
        .get_opt(name)
        .await
        .map_err(|source| Error::Authorization {
            name: name.to_owned(),
            source,
        })?;
    let Some(found) = found else {
        return Ok(Err((
            "AuthorizationNotFound",
            format!(
                "SubscriptionAuthorization {name} (spec.authorizationRef) does not exist in namespace {namespace}; create it, or remove spec.authorizationRef"
            ),
        )));
    };
    if found.metadata.deletion_timestamp.is_some() {
        return Ok(Err((
            "NotAuthorized",
            format!("SubscriptionAuthorization {name} is being deleted"),
        )));
    }
    let ready = found
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"));
    Ok(match ready {
        Some(c) if c.status == "True" => {
            Ok(format!("SubscriptionAuthorization {name}: {}", c.message))
        }
        Some(c) => Err((
            "NotAuthorized",
            format!(
                "SubscriptionAuthorization {name} is not ready ({}: {})",
                c.reason, c.message
            ),
        )),
        None => Err((
            "NotAuthorized",
            format!("SubscriptionAuthorization {name} has not been acted on yet"),
        )),
    })
}

/// The first Secret the LogSource references that does not exist or has not opted in to being
/// mounted by LogSources: the condition's reason and what to do.
async fn secret_problem(
    source: &LogSource,
    rendered: &Rendered,
    ctx: &Context,
) -> Result<Option<(&'static str, String)>, Error> {
    let namespace = source.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    for (name, keys) in &rendered.secrets {
        // Metadata only: the operator never reads a Secret's values.
        let found = secrets
            .get_metadata_opt(name)
            .await
            .map_err(|source| Error::Secret {
                name: name.clone(),
                source,
            })?;
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let Some(found) = found else {
            return Ok(Some((
                "SecretNotFound",
                format!(
                    "Secret {name} does not exist in namespace {namespace}; create it with the key(s) {} and the label {}=true, and the collector starts",
                    keys.join(", "),
                    policy::SECRET_ACCESS_LABEL
                ),
            )));
        };
        let opted_in = found
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(policy::SECRET_ACCESS_LABEL))
            .is_some_and(|v| v == "true");
        if !opted_in {
            return Ok(Some((
                "SecretNotAllowed",
                format!(
                    "Secret {name} has not opted in to being mounted by LogSources; if it is meant for azlog, label it: kubectl label secret {name} -n {namespace} {}=true",
                    policy::SECRET_ACCESS_LABEL
                ),
            )));
        }
    }
    Ok(None)
}

/// Applies every child, the Deployment last; answers it and what had to be written.
async fn apply_children(
    source: &LogSource,
    ctx: &Context,
    namespace: &str,
    children: Children,
) -> Result<(Deployment, Vec<String>), Error> {
    let Children {
        config_map,
        checkpoint,
        service_account,
        role,
        role_binding,
        lease,
        deployment,
    } = children;
    let stores = &ctx.stores;
    let mut applier = Applier {
        ctx,
        namespace,
        owner: source.metadata.uid.clone().unwrap_or_default(),
        applied: Vec::new(),
    };
    applier.apply(&stores.config_maps, config_map).await?;
    applier.apply(&stores.checkpoints, checkpoint).await?;
    applier
        .apply(&stores.service_accounts, service_account)
        .await?;
    applier.apply(&stores.roles, role).await?;
    applier.apply(&stores.role_bindings, role_binding).await?;
    applier.apply(&stores.leases, lease).await?;
    let name = deployment.name_any();
    let deployment = match applier
        .apply(&stores.deployments, deployment.clone())
        .await?
    {
        Some(written) => written,
        None => stores
            .deployments
            .get(&ObjectRef::new(&name).within(namespace))
            .map_or(deployment, |live| live.as_ref().clone()),
    };
    Ok((deployment, applier.applied))
}

/// Applies a LogSource's children, remembering which it had to write.
struct Applier<'a> {
    ctx: &'a Context,
    namespace: &'a str,
    /// The LogSource's uid: a child is applied only when it is absent or this LogSource's.
    owner: String,
    /// "Kind name" of every child written, for the Event.
    applied: Vec<String>,
}

impl Applier<'_> {
    /// Applies `desired` unless the live object in `store` (the whole object, or its metadata
    /// where that is all the operator sets) already holds every field of it. Answers the object
    /// written, or None when nothing had to be.
    async fn apply<K, L>(&mut self, store: &Store<L>, desired: K) -> Result<Option<K>, Error>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + Serialize
            + DeserializeOwned
            + std::fmt::Debug,
        L: Resource<DynamicType = ()> + Clone + Serialize,
    {
        let (ctx, namespace) = (self.ctx, self.namespace);
        let name = desired.name_any();
        let kind = K::kind(&()).into_owned();
        let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
        let mut object = serde_json::to_value(&desired).unwrap_or_default();
        // Compared without its type: a metadata-only cache holds PartialObjectMetadata.
        if let Some(fields) = object.as_object_mut() {
            fields.remove("apiVersion");
            fields.remove("kind");
        }
        let owned = |meta: &kube::api::ObjectMeta| {
            meta.owner_references
                .iter()
                .flatten()
                .any(|r| r.uid == self.owner && r.controller == Some(true))
        };
        let not_owned = || Error::NotOwned {
            kind: kind.clone(),
            name: name.clone(),
        };
        let apply_error = |source| Error::Apply {
            kind: kind.clone(),
            name: name.clone(),
            source,
        };
        match store.get(&ObjectRef::new(&name).within(namespace)) {
            Some(live) if !owned(live.meta()) => return Err(not_owned()),
            Some(live)
                if contains(
                    &serde_json::to_value(live.as_ref()).unwrap_or_default(),
                    &object,
                ) =>
            {
                return Ok(None);
            }
            Some(_) => {}
            // The cache holds only objects with the operator's label; one without it may still
            // stand under this name, and server-side apply would silently adopt it.
            None => {
                let existing = api.get_metadata_opt(&name).await.map_err(apply_error)?;
                if existing.is_some_and(|found| !owned(&found.metadata)) {
                    return Err(not_owned());
                }
            }
        }
        object["apiVersion"] = K::api_version(&()).into();
        object["kind"] = kind.as_str().into();
        let result = api
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(object),
            )
            .await
            .map_err(apply_error)?;
        ctx.metrics.writes.with_label_values(&[&kind]).inc();
        self.applied.push(format!("{kind} {name}"));
        Ok(Some(result))
    }
}

/// Whether `live` holds every field of `desired` with the same value. The API server adds
/// defaults and bookkeeping to what was applied, so equality would never hold; this checks that
/// nothing the operator sets has drifted.
fn contains(live: &serde_json::Value, desired: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (live, desired) {
        (Value::Object(l), Value::Object(d)) => d
            .iter()
            .all(|(k, dv)| l.get(k).is_some_and(|lv| contains(lv, dv))),
        (Value::Array(l), Value::Array(d)) => {
            l.len() == d.len() && l.iter().zip(d).all(|(lv, dv)| contains(lv, dv))
        }
        (l, d) => l == d,
    }
}

/// Sets a condition of the LogSource's status (see [`conditions::set`]).
fn set_condition(
    status: &mut LogSourceStatus,
    type_: &str,
    value: impl Into<conditions::Status>,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) {
    conditions::set(
        &mut status.conditions,
        type_,
        value,
        reason,
        message,
        generation,
    );
}

/// Where the LogSource stands for tools that read the kstatus conventions (Flux, kpt, `kubectl
/// wait`): `Reconciling` while the operator works towards the spec, `Stalled` when it cannot
/// without a change from a human. Both are "abnormal-true": False means all is well.
#[derive(Debug, Clone, Copy)]
enum Progress<'a> {
    Reconciling(&'a str, &'a str),
    Stalled(&'a str, &'a str),
    Done,
}

fn set_progress(status: &mut LogSourceStatus, progress: Progress<'_>, generation: Option<i64>) {
    let (reconciling, stalled) = match progress {
        Progress::Reconciling(reason, message) => ((true, reason, message), None),
        Progress::Stalled(reason, message) => (
            (
                false,
                reason,
                "the operator waits for a change to the spec or what it refers to",
            ),
            Some((reason, message)),
        ),
        Progress::Done => (
            (false, "Reconciled", "the collector runs the current spec"),
            None,
        ),
    };
    let (value, reason, message) = reconciling;
    set_condition(status, "Reconciling", value, reason, message, generation);
    match stalled {
        Some((reason, message)) => {
            set_condition(status, "Stalled", true, reason, message, generation)
        }
        None => set_condition(
            status,
            "Stalled",
            false,
            "Progressing",
            "nothing blocks the collector",
            generation,
        ),
    }
}

/// Reports that the collector cannot run as specified, and why: Ready=False, Stalled=True and a
/// warning Event.
async fn not_ready(
    source: &LogSource,
    ctx: &Context,
    mut status: LogSourceStatus,
    reason: &str,
    message: &str,
) -> Result<(), Error> {
    let generation = source.metadata.generation;
    set_condition(&mut status, "Ready", false, reason, message, generation);
    set_progress(&mut status, Progress::Stalled(reason, message), generation);
    report(source, ctx, status, EventType::Warning, reason, message).await
}

/// Writes the status if it changed, with an Event saying why.
async fn report(
    source: &LogSource,
    ctx: &Context,
    status: LogSourceStatus,
    type_: EventType,
    reason: &str,
    note: &str,
) -> Result<(), Error> {
    let unchanged = source.status.as_ref() == Some(&status);
    // A warning is told once, when the status turns to it, not at every retry.
    if unchanged && (note.is_empty() || type_ == EventType::Warning) {
        return Ok(());
    }
    if !unchanged {
        let api: Api<LogSource> =
            Api::namespaced(ctx.client.clone(), &source.namespace().unwrap_or_default());
        api.patch_status(
            &source.name_any(),
            &PatchParams::default(),
            // Only the operator's own fields: the collector writes its progress beside them, and
            // a stale copy of it must not overwrite a newer report.
            &Patch::Merge(serde_json::json!({ "status": {
                "observedGeneration": status.observed_generation,
                "source": status.source,
                "conditions": status.conditions,
            }})),
        )
        .await
        .map_err(|source| Error::Status { source })?;
        ctx.metrics
            .writes
            .with_label_values(&["LogSourceStatus"])
            .inc();
    }
    publish(source, ctx, type_, reason, note).await;
    Ok(())
}

/// Publishes an Event about `source` (see [`conditions::publish`]).
async fn publish(source: &LogSource, ctx: &Context, type_: EventType, reason: &str, note: &str) {
    conditions::publish(&ctx.recorder, &source.object_ref(&()), type_, reason, note).await;
}

/// Sets condition `type_` to True, with a Warning Event when its message is new: something the
/// collector reported that needs a look but does not stop it.
async fn warn(
    source: &LogSource,
    ctx: &Context,
    status: &mut LogSourceStatus,
    type_: &str,
    reason: &str,
    message: &str,
) {
    let told = source
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
        .is_some_and(|c| c.message == message);
    set_condition(
        status,
        type_,
        true,
        reason,
        message,
        source.metadata.generation,
    );
    if !told {
        publish(source, ctx, EventType::Warning, reason, message).await;
    }
}

/// The DedupWindowExceeded condition's message when the collector forgot ids its source could
/// still read again. The count stays out of it, so the Event is told once, not at every report.
fn dedup_window(status: &LogSourceStatus) -> Option<String> {
    status.collector.dedup_forgotten_early.filter(|n| *n > 0)?;
    Some(
        "the source may read events again for longer than the collector remembers their ids, so such events can be delivered twice (status.dedupForgottenEarly counts the ids forgotten early): raise spec.collector.dedupCapacity, about 50 bytes of memory each, with the memory limit"
            .to_owned(),
    )
}

/// The DeadLetters condition's message when the collector reports records it could not read.
fn dead_letters(status: &LogSourceStatus) -> Option<String> {
    let count = status.collector.dead_lettered.filter(|n| *n > 0)?;
    Some(format!(
        "{count} records could not be read and were kept in the collector's dead-letter file ({}/dead-letter.ndjson) instead of delivered; the collector log says why for each",
        render::STATE_DIR
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_live_object_with_server_defaults_still_contains_what_was_applied() {
        let desired = json!({"spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        let live = json!({"metadata": {"uid": "u"}, "spec": {"replicas": 1, "revisionHistoryLimit": 10,
            "template": {"spec": {"containers": [{"name": "c", "image": "i", "terminationMessagePath": "/dev/termination-log"}]}}}});
        assert!(contains(&live, &desired));
        let drifted = json!({"spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        assert!(!contains(&drifted, &desired));
        let sidecar_added = json!({"spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "c", "image": "i"}, {"name": "x"}]}}}});
        assert!(!contains(&sidecar_added, &desired));
    }

    #[test]
    fn a_condition_keeps_its_transition_time_while_its_status_holds() {
        let mut status = LogSourceStatus::default();
        set_condition(&mut status, "Ready", false, "A", "a", Some(1));
        let first = status.conditions[0].last_transition_time.clone();
        set_condition(&mut status, "Ready", false, "B", "b", Some(2));
        assert_eq!(status.conditions.len(), 1);
        assert_eq!(status.conditions[0].last_transition_time, first);
        assert_eq!(status.conditions[0].reason, "B");
    }
}
