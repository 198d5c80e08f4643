//! The ingest queue and the crash index shared by several nodes, on SQLite and on Postgres:
//! each "node" here is its own connection pool on one database, as separate servers would be.
//! The hazards: a crash claimed by two workers, a restart requeueing crashes another node is
//! working on, and two nodes creating the same group at once.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use common::Db;
use faultline::cluster::{Change, ChangeListener, ClusterEvents};
use faultline::group::index::{
    CrashAttributes, CrashIndex, FinishedCrash, GroupSort, NewCrash, PayloadBudget,
};
use faultline::ingest::queue::IngestQueue;

const BUDGET: PayloadBudget = PayloadBudget {
    per_new_group: 1000,
    per_group_hour: 1000,
};

/// A database of kind `db` and a way to open nodes on it.
struct Cluster {
    url: String,
    _dir: tempfile::TempDir,
}

impl Cluster {
    async fn new(db: Db) -> Option<Cluster> {
        let dir = tempfile::tempdir().unwrap();
        let url = common::database_url(db, dir.path()).await?;
        Some(Cluster { url, _dir: dir })
    }

    async fn index(&self) -> Arc<CrashIndex> {
        Arc::new(CrashIndex::open(&self.url, BUDGET).await.unwrap())
    }

    async fn node(&self, name: &str, lease_secs: u64) -> (Arc<CrashIndex>, Arc<IngestQueue>) {
        let index = self.index().await;
        let queue = IngestQueue::new(&index, name, Duration::from_secs(lease_secs));
        (index, Arc::new(queue))
    }
}

fn crash(id: &str, fingerprint: &str, at: i64) -> NewCrash {
    NewCrash {
        attributes: CrashAttributes {
            id: id.to_owned(),
            project_id: 1,
            received_at: at,
            product: Some("Game".into()),
            release: Some("1.0.0".into()),
            platform: Some("Linux".into()),
            cpu: Some("amd64".into()),
            user_id: Some(format!("user-{}", id.len() % 3)),
            annotations: BTreeMap::new(),
            fingerprint: fingerprint.to_owned(),
            signature: format!("sig {fingerprint}"),
            fault_class: faultline::classify::FaultClass::NullRead.into(),
            kind: Default::default(),
        },
        payload_key: format!("crashes/x/{id}/processed.json"),
        top_frames: Vec::new(),
        replaces_earlier: false,
        facts: Default::default(),
    }
}

on_both_databases! {
/// Eight workers on two nodes drain one queue: every crash is claimed exactly once. (Before
/// `FOR UPDATE SKIP LOCKED`, two Postgres sessions running the claim at once both got the same
/// oldest row.)
async fn two_nodes_claiming_at_once_never_get_the_same_crash(db: Db) {
    let Some(cluster) = Cluster::new(db).await else {
        return;
    };
    let (_a_index, a) = cluster.node("node-a", 30).await;
    let (_b_index, b) = cluster.node("node-b", 30).await;
    for n in 0..300 {
        a.enqueue(&format!("crash-{n:03}"), 1, &format!("raw/{n}"))
            .await
            .unwrap();
    }
    let mut workers = Vec::new();
    for w in 0..8 {
        let queue = if w % 2 == 0 { a.clone() } else { b.clone() };
        workers.push(tokio::spawn(async move {
            let mut claimed = Vec::new();
            loop {
                let batch = queue.claim_many(3).await.unwrap();
                if batch.is_empty() {
                    break claimed;
                }
                for entry in batch {
                    assert_eq!(entry.state, "processing");
                    claimed.push(entry.crash_id);
                }
            }
        }));
    }
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.unwrap());
    }
    let distinct: BTreeSet<_> = all.iter().cloned().collect();
    assert_eq!(
        all.len(),
        distinct.len(),
        "some crashes were claimed twice"
    );
    assert_eq!(distinct.len(), 300);
    let depth = a.depth().await.unwrap();
    assert_eq!((depth.queued, depth.processing), (0, 300));
}
}

on_both_databases! {
/// A node that restarts takes back only what it held itself; another node's claims stay
/// with it while that node renews its lease, and go back to the queue once it stops renewing.
async fn a_restart_requeues_its_own_claims_and_only_expired_leases(db: Db) {
    let Some(cluster) = Cluster::new(db).await else {
        return;
    };
    let (_ai, a) = cluster.node("node-a", 30).await;
    let (_bi, b) = cluster.node("node-b", 4).await;
    let (_ci, c) = cluster.node("node-c", 4).await;
    for n in 0..4 {
        a.enqueue(&format!("crash-{n}"), 1, "raw").await.unwrap();
    }
    let held_by_a = a.claim_many(2).await.unwrap();
    let held_by_b = b.claim_many(1).await.unwrap().remove(0);
    let held_by_c = c.claim_many(1).await.unwrap().remove(0);

    // Node a restarts: its two crashes are queued again, b's and c's are not touched.
    let (_ai2, a_again) = cluster.node("node-a", 30).await;
    assert_eq!(a_again.recover().await.unwrap(), 2);
    for entry in &held_by_a {
        assert_eq!(a.entry(&entry.crash_id).await.unwrap().unwrap().state, "queued");
    }
    for id in [&held_by_b.crash_id, &held_by_c.crash_id] {
        assert_eq!(a.entry(id).await.unwrap().unwrap().state, "processing");
    }

    // b keeps renewing; c has died. After c's lease (4 s) has run out, only c's crash is
    // requeued.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(b.renew().await.unwrap(), 1);
    tokio::time::sleep(Duration::from_millis(3200)).await;
    assert_eq!(a_again.requeue_expired().await.unwrap(), 1);
    assert_eq!(
        a.entry(&held_by_c.crash_id).await.unwrap().unwrap().state,
        "queued"
    );
    assert_eq!(
        a.entry(&held_by_b.crash_id).await.unwrap().unwrap().state,
        "processing"
    );
    // The requeued crash is claimable again, and counts a second attempt.
    let again: Vec<_> = a_again.claim_many(10).await.unwrap();
    assert_eq!(again.len(), 3);
    let retried = again
        .iter()
        .find(|e| e.crash_id == held_by_c.crash_id)
        .unwrap();
    assert_eq!(retried.attempts, 2);
}
}

on_both_databases! {
/// Two nodes record crashes with the same new fingerprints at the same moment (some crashes
/// delivered to both): one group per fingerprint, and every group counts exactly its crashes.
/// (Before, the slower node's insert of the fingerprint failed on the unique key and its whole
/// batch was lost.)
async fn two_nodes_creating_the_same_groups_at_once_make_one_each(db: Db) {
    let Some(cluster) = Cluster::new(db).await else {
        return;
    };
    let nodes = [cluster.index().await, cluster.index().await];
    let at = 1_795_240_800;
    let mut tasks = Vec::new();
    for round in 0..5 {
        for (n, node) in nodes.iter().enumerate() {
            for i in 0..40 {
                // Ten fingerprints new in each round; every 10th crash goes to both nodes.
                let id = if i % 10 == 0 {
                    format!("r{round}-shared-{i}")
                } else {
                    format!("r{round}-n{n}-{i}")
                };
                let fingerprint = format!("r{round}-fp{}", i % 10);
                let node = node.clone();
                tasks.push(tokio::spawn(async move {
                    node.record(&crash(&id, &fingerprint, at + i)).await.unwrap()
                }));
            }
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    let groups = nodes[0]
        .groups(&common::group_query(GroupSort::Events, 500, None))
        .await
        .unwrap();
    assert_eq!(groups.items.len(), 50, "one group per fingerprint");
    let total: i64 = groups.items.iter().map(|g| g.event_count).sum();
    // 5 rounds × (2 nodes × 36 own crashes + 4 shared ones).
    assert_eq!(total, 5 * (2 * 36 + 4));
    for group in &groups.items {
        assert_eq!(group.fingerprints.len(), 1);
        let expected = if group.fingerprints[0].ends_with("fp0") { 4 } else { 8 };
        assert_eq!(group.event_count, expected, "{:?}", group.fingerprints);
        assert_eq!(group.payloads_kept, expected);
    }
}
}

/// Records the changes it hears about.
#[derive(Default)]
struct Heard(std::sync::Mutex<Vec<Change>>);

#[async_trait::async_trait]
impl ChangeListener for Heard {
    async fn changed(&self, change: &Change) {
        self.0.lock().unwrap().push(change.clone());
    }
}

on_both_databases! {
/// What one node announces, the others apply once, by reading the log (the path that works
/// even when a Postgres notification was lost); a node does not re-apply its own changes.
async fn other_nodes_apply_each_change_once_by_reading_the_log(db: Db) {
    let Some(cluster) = Cluster::new(db).await else {
        return;
    };
    let (a_index, b_index) = (cluster.index().await, cluster.index().await);
    let a = ClusterEvents::new(&a_index, "node-a");
    let b = ClusterEvents::new(&b_index, "node-b");
    let (heard_a, heard_b) = (Arc::new(Heard::default()), Arc::new(Heard::default()));
    a.listen(heard_a.clone());
    b.listen(heard_b.clone());
    a.publish(&Change::Symbols("0123456789abcdef0123456789abcdef1".into()))
        .await
        .unwrap();
    a.publish(&Change::Access).await.unwrap();
    assert_eq!(b.catch_up().await.unwrap(), 2);
    assert_eq!(b.catch_up().await.unwrap(), 0, "applied once");
    assert_eq!(a.catch_up().await.unwrap(), 0, "not its own");
    assert_eq!(
        *heard_b.0.lock().unwrap(),
        [
            Change::Symbols("0123456789abcdef0123456789abcdef1".into()),
            Change::Access
        ]
    );
    assert!(heard_a.0.lock().unwrap().is_empty());
    // A node that starts now has nothing to apply from before it started.
    let c_index = cluster.index().await;
    let c = ClusterEvents::new(&c_index, "node-c");
    c.skip_past().await.unwrap();
    assert_eq!(c.catch_up().await.unwrap(), 0);
}
}

on_both_databases! {
/// Crashes enqueued at the same time (sharing commits) are each queued exactly once, with its
/// own raw key, also when the callers of some of them give up while their commit is running
/// (a client hanging up must not cancel a commit other crashes wait for).
async fn concurrent_enqueues_each_land_once_even_when_callers_give_up(db: Db) {
    let Some(cluster) = Cluster::new(db).await else {
        return;
    };
    let (_index, queue) = cluster.node("node-a", 30).await;
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..600 {
        let queue = Arc::clone(&queue);
        tasks.spawn(async move {
            let (id, raw) = (format!("crash-{n:03}"), format!("raw/{n}"));
            let enqueue = queue.enqueue(&id, 1, &raw);
            if n % 10 == 0 {
                // Given up on almost at once: the crash is queued anyway or not at all.
                let _ = tokio::time::timeout(Duration::from_micros(50), enqueue).await;
                None
            } else {
                enqueue.await.unwrap();
                Some(n)
            }
        });
    }
    let mut acknowledged = BTreeSet::new();
    while let Some(done) = tasks.join_next().await {
        if let Some(n) = done.unwrap() {
            acknowledged.insert(n);
        }
    }
    assert_eq!(acknowledged.len(), 540);
    // Whatever was waiting is written by the next enqueue at the latest.
    queue.enqueue("crash-last", 1, "raw/last").await.unwrap();
    let claimed = queue.claim_many(1000).await.unwrap();
    let ids: BTreeSet<String> = claimed.iter().map(|e| e.crash_id.clone()).collect();
    assert_eq!(ids.len(), claimed.len(), "a crash was queued twice");
    for n in &acknowledged {
        let entry = claimed
            .iter()
            .find(|e| e.crash_id == format!("crash-{n:03}"))
            .unwrap_or_else(|| panic!("acknowledged crash {n} is not queued"));
        assert_eq!(entry.raw_key, format!("raw/{n}"));
    }
}
}

on_both_databases! {
/// Workers record crashes and mark them processed concurrently, the finishes riding in the
/// index's record batches or committed alone: every row ends processed with the modules its
/// crash lacked, and a crash processed again replaces that list instead of adding to it.
async fn recording_and_finishing_at_once_leave_every_row_processed(db: Db) {
    let Some(cluster) = Cluster::new(db).await else {
        return;
    };
    let (index, queue) = cluster.node("node-a", 30).await;
    for n in 0..200 {
        queue
            .enqueue(&format!("crash-{n:03}"), 1, &format!("raw/{n}"))
            .await
            .unwrap();
    }
    let claimed = queue.claim_many(200).await.unwrap();
    assert_eq!(claimed.len(), 200);
    let mut tasks = tokio::task::JoinSet::new();
    for (n, entry) in claimed.into_iter().enumerate() {
        let index = Arc::clone(&index);
        tasks.spawn(async move {
            let id = entry.crash_id;
            index
                .record(&crash(&id, &format!("fp-{}", n % 7), 1_700_000_000))
                .await
                .unwrap();
            index
                .finish(vec![FinishedCrash {
                    crash_id: id,
                    missing_modules: vec![missing(&format!("DEBUG{}", n % 3)), missing("ALL")],
                    // Many batches at once record the same modules' use (one upsert each).
                    used_modules: vec![format!("used-{}", n % 4), "used-by-all".into()],
                }])
                .await
                .unwrap();
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let depth = queue.depth().await.unwrap();
    assert_eq!((depth.queued, depth.processing), (0, 0), "{depth:?}");
    assert_eq!(queue.missing("ALL", 1000).await.unwrap().len(), 200);
    assert_eq!(queue.missing("DEBUG0", 1000).await.unwrap().len(), 67);
    let used = index.symbol_last_used().await.unwrap();
    assert_eq!(used.len(), 5, "{used:?}");
    assert!(used.values().all(|&at| at > 1_700_000_000), "{used:?}");

    // Processed again with its symbols found: its list is replaced.
    index
        .finish(vec![FinishedCrash {
            crash_id: "crash-000".into(),
            missing_modules: Vec::new(),
            used_modules: Vec::new(),
        }])
        .await
        .unwrap();
    assert_eq!(queue.missing("ALL", 1000).await.unwrap().len(), 199);
    let entry = queue.entry("crash-000").await.unwrap().unwrap();
    assert_eq!(entry.state, "processed");
}
}

/// A module missing symbols, by debug ID alone.
fn missing(debug_id: &str) -> faultline::group::index::MissingModule {
    faultline::group::index::MissingModule {
        code_id: None,
        debug_id: debug_id.to_owned(),
        debug_file: Some(format!("{debug_id}.pdb")),
        code_file: None,
    }
}
