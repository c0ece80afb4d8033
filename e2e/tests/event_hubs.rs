//! The eventHubs source as the real collector binary against the fake Event Hubs namespace (AMQP
//! 1.0 over TLS): envelopes of every kind of record, kill -9 mid-stream, dropped connections,
//! server-busy detaches and expired tokens. Every test asserts on what the file output holds.
// Runs Linux processes and signals; the Windows build has its own smoke test.
#![cfg(unix)]

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use azlog_e2e::event_hub_records::Records;
use azlog_e2e::fake_azure::{Audience, FakeAzure};
use azlog_e2e::fake_event_hubs::FakeEventHubs;
use azlog_e2e::kube_cluster::{ADMIN_TOKEN, Cluster};
use azlog_test_support::collector::{Collector, file_output_ids};
use azlog_test_support::http::healthy;
use azlog_test_support::ports::free_port;
use azlog_test_support::wait::wait_until;

const HUB: &str = "insights-logs";
const WAIT: Duration = Duration::from_secs(120);

struct Setup {
    hub: FakeEventHubs,
    dir: tempfile::TempDir,
    health: u16,
    _runtime: tokio::runtime::Runtime,
}

fn setup(partitions: usize) -> Setup {
    azlog_collector::install_crypto_provider();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let hub = runtime
        .block_on(FakeEventHubs::start(HUB, partitions))
        .expect("fake Event Hubs");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("ca.pem"), hub.ca_pem()).expect("ca");
    std::fs::write(
        dir.path().join("connection-string"),
        format!("{}\n", hub.connection_string()),
    )
    .expect("connection string");
    Setup {
        hub,
        dir,
        health: free_port(),
        _runtime: runtime,
    }
}

impl Setup {
    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn out(&self) -> PathBuf {
        self.path().join("out")
    }

    fn config(&self, start_at: &str, batch: usize) -> String {
        let dir = self.path().display();
        format!(
            "name: hub\nsource:\n  eventHubs:\n    endpoint: {endpoint}\n    hub: {HUB}\n    startAt: {start_at}\n    connectionStringFile: {dir}/connection-string\nazure:\n  caFile: {dir}/ca.pem\noutputs:\n  - file:\n      directory: {dir}/out\n      maxFileAge: 1s\nstateDir: {dir}/state\npipeline:\n  pollInterval: 200ms\n  batchSize: {batch}\n  maxInFlightEvents: {inflight}\ncheckpoint:\n  commitInterval: 100ms\nhealth:\n  listen: 127.0.0.1:{health}\n",
            endpoint = self.hub.endpoint(),
            inflight = batch * 4,
            health = self.health,
        )
    }

    fn start(&self, yaml: &str) -> Collector {
        let collector = Collector::start(self.path(), yaml);
        wait_until(WAIT, "the collector's health endpoint", || {
            healthy(self.health).then_some(())
        });
        collector
    }
}

/// Kills the collector with SIGKILL once more than `delivered` records are in the files, and
/// starts it again.
fn kill_once_some_are_delivered(s: &Setup, collector: &mut Collector, delivered: usize) {
    wait_until(WAIT, "some records delivered", || {
        (file_output_ids(&s.out()).len() > delivered).then_some(())
    });
    collector.signal(libc::SIGKILL);
    collector.wait(WAIT);
    collector.spawn();
}

#[test]
fn a_hundred_thousand_records_on_four_partitions_arrive_once_through_three_kill_9s() {
    let s = setup(4);
    let records = Records::new();
    let mut expected: HashSet<String> = HashSet::new();
    for partition in 0..4 {
        expected.extend(records.send(&s.hub, partition, 1250, 20));
    }
    assert_eq!(expected.len(), 100_000);
    let mut collector = s.start(&s.config("Earliest", 1000));
    for delivered in [15_000, 45_000, 75_000] {
        kill_once_some_are_delivered(&s, &mut collector, delivered);
    }
    azlog_test_support::collector::wait_for_exactly(
        &s.out(),
        &expected,
        WAIT,
        "100,000 records, once each",
    );

    // Each kind went to its own folder, as the REST sources' records do.
    for folder in [
        "AzureResourceManagerJson",
        "AzureDiagnosticLogsJson",
        "AzureActiveDirectorySignInsJson",
        "AzureActiveDirectoryJson",
    ] {
        assert!(
            !file_output_ids(&s.out().join(folder)).is_empty(),
            "{folder} holds records"
        );
    }
    assert_eq!(
        azlog_test_support::metrics::metric(s.health, "azlog_source_partitions", &[]),
        4.0,
        "a receiver on every partition"
    );
    let cp = collector.checkpoint().expect("checkpoint");
    let partitions = cp["cursor"]["partitions"].as_object().expect("partitions");
    assert_eq!(partitions.len(), 4, "a position per partition: {cp}");
    for (_, last) in partitions {
        assert_eq!(last, 1249, "every partition read to its end: {cp}");
    }
    collector.signal(libc::SIGTERM);
    assert!(collector.wait(WAIT).success());
}

#[test]
fn dropped_connections_server_busy_and_expired_tokens_are_retried_without_loss() {
    let s = setup(2);
    let records = Records::new();
    let mut expected: HashSet<String> = HashSet::new();
    // Enqueued before the first start: `startAt: Now` never delivers them.
    for partition in 0..2 {
        records.send(&s.hub, partition, 10, 4);
    }
    let mut collector = s.start(&s.config("Now", 100));
    wait_until(WAIT, "receivers on both partitions", || {
        (s.hub.seen().receivers >= 2).then_some(())
    });
    let send = |expected: &mut HashSet<String>| {
        for partition in 0..2 {
            expected.extend(records.send(&s.hub, partition, 50, 4));
        }
    };
    send(&mut expected);
    // A body that is not JSON goes to the dead-letter file whole; what follows it is delivered.
    s.hub.send(0, b"{\"records\": [{\"time\": ".to_vec());
    let broken = s.hub.sizes()[0] - 1;
    send(&mut expected);
    azlog_test_support::collector::wait_for_exactly(&s.out(), &expected, WAIT, "the first records");
    let dead =
        std::fs::read_to_string(s.path().join("state/dead-letter.ndjson")).expect("dead letters");
    assert!(
        dead.contains(&format!("partition 0 sequence {broken}")),
        "{dead}"
    );

    s.hub.disconnect_all();
    send(&mut expected);
    azlog_test_support::collector::wait_for_exactly(
        &s.out(),
        &expected,
        WAIT,
        "records after a dropped connection",
    );

    let before = s.hub.seen();
    s.hub.server_busy(3);
    send(&mut expected);
    azlog_test_support::collector::wait_for_exactly(
        &s.out(),
        &expected,
        WAIT,
        "records after server-busy detaches",
    );
    assert_eq!(s.hub.seen().busy_detaches - before.busy_detaches, 3);

    let before = s.hub.seen();
    s.hub.expire_tokens();
    send(&mut expected);
    azlog_test_support::collector::wait_for_exactly(
        &s.out(),
        &expected,
        WAIT,
        "records after the token expired",
    );
    let after = s.hub.seen();
    assert!(
        after.expired_detaches > before.expired_detaches,
        "the expired token was noticed"
    );
    assert!(
        after.tokens_put > before.tokens_put,
        "a fresh token was put"
    );
    assert_eq!(
        after.tokens_refused, 0,
        "every token the collector made was valid"
    );

    let log = collector.log();
    assert!(
        !log.contains("SharedAccessKey="),
        "the key never reaches the log"
    );
    assert!(!log.contains("sig="), "no signature reaches the log");
    collector.signal(libc::SIGTERM);
    assert!(collector.wait(WAIT).success());
}

/// Every record id delivered below any of `outs`, failing at once on one delivered twice, by one
/// replica or by two.
fn delivered_once(outs: &[PathBuf]) -> HashSet<String> {
    let mut seen = HashSet::new();
    for out in outs {
        for id in file_output_ids(out) {
            assert!(seen.insert(id.clone()), "{id} was delivered twice");
        }
    }
    seen
}

/// Which replica holds each partition's Lease.
fn holders(cluster: &Cluster) -> Vec<String> {
    let text = cluster.kubectl(&[
        "get",
        "leases",
        "-l",
        "azlog.io/shares=hub",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name}={.spec.holderIdentity}{\"\\n\"}{end}",
    ]);
    let mut held: Vec<String> = text
        .lines()
        .filter(|l| !l.contains("-member-"))
        .map(str::to_owned)
        .collect();
    held.sort();
    held
}

/// A collector sharing the hub as `name`, with its own state and output below `name/`.
fn start_replica(s: &Setup, cluster: &Cluster, name: &str) -> (Collector, PathBuf) {
    let kubeconfig = cluster.kubeconfig("admin", ADMIN_TOKEN);
    let dir = s.path().join(name);
    std::fs::create_dir_all(&dir).expect("replica dir");
    // No health endpoint: a port picked free here could be taken by another test's process before
    // the collector binds it, and the replica would exit.
    let yaml = format!(
        "name: hub\nsource:\n  eventHubs:\n    endpoint: {endpoint}\n    hub: {HUB}\n    startAt: Earliest\n    connectionStringFile: {root}/connection-string\n    sharing:\n      namespace: default\n      group: hub\n      leaseDuration: 6s\nazure:\n  caFile: {root}/ca.pem\noutputs:\n  - file:\n      directory: {dir}/out\n      maxFileAge: 1s\nstateDir: {dir}/state\npipeline:\n  pollInterval: 200ms\n  batchSize: 100\n  maxInFlightEvents: 400\ncheckpoint:\n  commitInterval: 100ms\nhealth:\n  listen: null\n",
        endpoint = s.hub.endpoint(),
        root = s.path().display(),
        dir = dir.display(),
    );
    let kubeconfig = kubeconfig.display().to_string();
    let env = [("KUBECONFIG", kubeconfig.as_str()), ("POD_NAME", name)];
    (
        Collector::start_with_env(&dir, &yaml, &env),
        dir.join("out"),
    )
}

fn held_by(cluster: &Cluster, replica: &str) -> usize {
    holders(cluster)
        .iter()
        .filter(|h| h.ends_with(&format!("={replica}")))
        .count()
}

#[test]
fn a_killed_replicas_partitions_are_taken_over_within_the_lease_duration_and_nothing_is_lost() {
    let s = setup(4);
    let cluster_dir = tempfile::tempdir().expect("tempdir");
    let cluster = s._runtime.block_on(Cluster::start(cluster_dir.path()));
    let records = Records::new();
    let mut expected: HashSet<String> = HashSet::new();
    let (mut r0, out0) = start_replica(&s, &cluster, "replica-0");
    let (mut r1, out1) = start_replica(&s, &cluster, "replica-1");
    let deadline = std::time::Instant::now() + WAIT;
    while !(held_by(&cluster, "replica-0") == 2 && held_by(&cluster, "replica-1") == 2) {
        assert!(
            std::time::Instant::now() < deadline,
            "two replicas did not come to hold two partitions each: {:?}\nreplica-0:\n{}\nreplica-1:\n{}",
            holders(&cluster),
            r0.log(),
            r1.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for partition in 0..4 {
        expected.extend(records.send(&s.hub, partition, 100, 3));
    }
    wait_until(WAIT, "the first records", || {
        let mut all: HashSet<String> = file_output_ids(&out0).into_iter().collect();
        all.extend(file_output_ids(&out1));
        (all.len() == expected.len()).then_some(())
    });
    r0.signal(libc::SIGKILL);
    r0.wait(WAIT);
    let killed = std::time::Instant::now();
    for partition in 0..4 {
        expected.extend(records.send(&s.hub, partition, 100, 3));
    }
    wait_until(WAIT, "the survivor to hold every partition", || {
        (held_by(&cluster, "replica-1") == 4).then_some(())
    });
    // A Lease stands 6 s unrenewed before it is taken; the survivor looks every 2 s.
    let took = killed.elapsed();
    assert!(took < Duration::from_secs(12), "took {took:?}");
    wait_until(WAIT, "every record, at least once", || {
        let mut all: HashSet<String> = file_output_ids(&out0).into_iter().collect();
        all.extend(file_output_ids(&out1));
        expected.is_subset(&all).then_some(())
    });
    r1.signal(libc::SIGTERM);
    assert!(r1.wait(WAIT).success());
}

#[test]
fn replicas_divide_the_partitions_through_leases_and_scaling_2_3_1_delivers_every_record_once() {
    let s = setup(4);
    let cluster_dir = tempfile::tempdir().expect("tempdir");
    let cluster = s._runtime.block_on(Cluster::start(cluster_dir.path()));
    let replica = |name: &str| start_replica(&s, &cluster, name);
    // Events keep coming while replicas join and leave.
    let records = Records::new();
    let mut expected: HashSet<String> = HashSet::new();
    let mut send_some = |expected: &mut HashSet<String>| {
        for partition in 0..4 {
            expected.extend(records.send(&s.hub, partition, 5, 3));
        }
    };
    let flow_until = |expected: &mut HashSet<String>,
                      send: &mut dyn FnMut(&mut HashSet<String>),
                      what: &str,
                      done: &dyn Fn() -> bool| {
        wait_until(WAIT, what, || {
            send(expected);
            std::thread::sleep(Duration::from_millis(200));
            done().then_some(())
        });
    };

    let (mut r0, out0) = replica("replica-0");
    let (mut r1, out1) = replica("replica-1");
    let outs = [out0.clone(), out1.clone(), s.path().join("replica-2/out")];
    let split = |holders: &[String], counts: &[usize]| {
        let mut found: Vec<usize> = ["replica-0", "replica-1", "replica-2"]
            .iter()
            .map(|r| {
                holders
                    .iter()
                    .filter(|h| h.ends_with(&format!("={r}")))
                    .count()
            })
            .collect();
        found.truncate(counts.len());
        let mut want = counts.to_vec();
        found.sort_unstable();
        want.sort_unstable();
        found == want
    };
    flow_until(
        &mut expected,
        &mut send_some,
        "two replicas to hold two partitions each and deliver",
        &|| {
            split(&holders(&cluster), &[2, 2])
                && !file_output_ids(&out0).is_empty()
                && !file_output_ids(&out1).is_empty()
        },
    );

    let (mut r2, out2) = replica("replica-2");
    flow_until(
        &mut expected,
        &mut send_some,
        "the third replica to take a partition",
        &|| split(&holders(&cluster), &[2, 1, 1]) && !file_output_ids(&out2).is_empty(),
    );

    // Two leave: their partitions go to the one left, each from where they were committed.
    r0.signal(libc::SIGTERM);
    r2.signal(libc::SIGTERM);
    assert!(r0.wait(WAIT).success());
    assert!(r2.wait(WAIT).success());
    flow_until(
        &mut expected,
        &mut send_some,
        "the last replica to hold every partition",
        &|| {
            holders(&cluster)
                .iter()
                .filter(|h| h.ends_with("=replica-1"))
                .count()
                == 4
        },
    );
    let deadline = std::time::Instant::now() + WAIT;
    while delivered_once(&outs) != expected && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let delivered = delivered_once(&outs);
    let mut missing: Vec<&String> = expected.difference(&delivered).collect();
    missing.sort();
    let unexpected: Vec<&String> = delivered.difference(&expected).take(10).collect();
    assert!(
        missing.is_empty() && unexpected.is_empty(),
        "{} of {} records missing ({:?}…), unexpected {unexpected:?}\nreplica-1:\n{}",
        missing.len(),
        expected.len(),
        &missing[..missing.len().min(10)],
        r1.log()
    );
    r1.signal(libc::SIGTERM);
    assert!(r1.wait(WAIT).success());
    assert!(
        holders(&cluster).iter().all(|h| h.ends_with('=')),
        "a stopped replica releases its partitions: {:?}",
        holders(&cluster)
    );
}

#[test]
fn an_entra_identity_with_the_data_receiver_role_reads_the_hub_and_a_revoked_token_is_replaced() {
    const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    const CLIENT: &str = "c44b4083-3bb0-49c1-b47d-974e53cbdf3c";
    let s = setup(2);
    let azure = std::sync::Arc::new(s._runtime.block_on(FakeAzure::start()).expect("fake Azure"));
    azure.add_client_secret(TENANT, CLIENT, "hub-reader-secret");
    let issuer = azure.clone();
    s.hub.trust_entra(move |token| {
        issuer.token_holder(token, Audience::EventHubs).as_deref() == Some(CLIENT)
    });
    let root = s.path().display().to_string();
    // One file trusts both fakes' CAs: Entra's HTTPS and the namespace's AMQPS.
    std::fs::write(
        s.path().join("ca.pem"),
        format!("{}{}", s.hub.ca_pem(), azure.ca_pem()),
    )
    .expect("ca");
    std::fs::write(s.path().join("client-secret"), "hub-reader-secret\n").expect("secret");
    let yaml = s
        .config("Earliest", 100)
        .replace(&format!("    connectionStringFile: {root}/connection-string\n"), "")
        .replace(
            &format!("azure:\n  caFile: {root}/ca.pem\n"),
            &format!(
                "azure:\n  caFile: {root}/ca.pem\n  endpoints:\n    authorityHost: {url}\n  credential:\n    clientSecret:\n      tenantId: {TENANT}\n      clientId: {CLIENT}\n      secretFile: {root}/client-secret\n",
                url = azure.url()
            ),
        );
    assert!(
        yaml.contains("clientSecret") && !yaml.contains("connectionStringFile"),
        "{yaml}"
    );
    let records = Records::new();
    let mut expected: HashSet<String> = HashSet::new();
    for partition in 0..2 {
        expected.extend(records.send(&s.hub, partition, 20, 5));
    }
    let mut collector = s.start(&yaml);
    azlog_test_support::collector::wait_for_exactly(
        &s.out(),
        &expected,
        WAIT,
        "records read with an Entra token",
    );
    assert!(s.hub.seen().tokens_put >= 1);

    // Entra revokes the token and the namespace drops the connection: the collector is refused
    // its cached token once, fetches a new one and reads on.
    azure.revoke_tokens();
    s.hub.expire_tokens();
    for partition in 0..2 {
        expected.extend(records.send(&s.hub, partition, 20, 5));
    }
    azlog_test_support::collector::wait_for_exactly(
        &s.out(),
        &expected,
        WAIT,
        "records after the token was revoked",
    );
    assert!(
        s.hub.seen().tokens_refused >= 1,
        "the revoked token was refused"
    );
    collector.signal(libc::SIGTERM);
    assert!(collector.wait(WAIT).success());
}

#[test]
fn a_partition_taken_back_hands_on_where_it_was_taken_not_an_older_position_of_its_own() {
    let s = setup(2);
    let cluster_dir = tempfile::tempdir().expect("tempdir");
    let cluster = s._runtime.block_on(Cluster::start(cluster_dir.path()));
    let records = Records::new();
    let mut expected: HashSet<String> = HashSet::new();
    let send = |expected: &mut HashSet<String>| {
        for partition in 0..2 {
            expected.extend(records.send(&s.hub, partition, 20, 2));
        }
    };
    let outs: Vec<PathBuf> = ["replica-0", "replica-1", "replica-2"]
        .iter()
        .map(|r| s.path().join(r).join("out"))
        .collect();
    let all_once = |expected: &HashSet<String>, what: &str| {
        wait_until(WAIT, what, || {
            (delivered_once(&outs) == *expected).then_some(())
        });
    };
    // replica-0 reads both partitions and commits a position of each in its own checkpoint.
    let (mut r0, _) = start_replica(&s, &cluster, "replica-0");
    wait_until(WAIT, "replica-0 to hold both partitions", || {
        (held_by(&cluster, "replica-0") == 2).then_some(())
    });
    send(&mut expected);
    all_once(&expected, "the first records");
    // replica-1 takes one partition over and reads on past replica-0's position of it.
    let (mut r1, _) = start_replica(&s, &cluster, "replica-1");
    wait_until(WAIT, "replica-1 to take a partition", || {
        (held_by(&cluster, "replica-1") == 1).then_some(())
    });
    send(&mut expected);
    all_once(&expected, "records read by both");
    r1.signal(libc::SIGTERM);
    assert!(r1.wait(WAIT).success());
    // replica-0 takes it back, its own checkpoint still at the older position, and stops before
    // anything new arrives: it must hand on where replica-1 left the partition.
    wait_until(WAIT, "replica-0 to hold both partitions again", || {
        (held_by(&cluster, "replica-0") == 2).then_some(())
    });
    r0.signal(libc::SIGTERM);
    assert!(r0.wait(WAIT).success());
    let (mut r2, _) = start_replica(&s, &cluster, "replica-2");
    send(&mut expected);
    all_once(
        &expected,
        "replica-2 to read on from the recorded positions, nothing twice",
    );
    r2.signal(libc::SIGTERM);
    assert!(r2.wait(WAIT).success());
}
