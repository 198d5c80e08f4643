//! The application: every store and service faultline runs on, opened once from the
//! configuration (the crash index, the object store, debug files, the processing pipeline, the
//! ingest queue, projects and tokens, alerts, the cluster's change log) and shared by the two
//! front ends (`api/`, `ui/`), the workers and the background jobs that `server/` starts.

use std::sync::Arc;

use crate::alerts::Alerts;
use crate::auth::Registry;
use crate::cluster::{Change, ChangeListener, ClusterEvents};
use crate::code::Code;
use crate::config::Config;
use crate::group::index::{CrashIndex, PayloadBudget};
use crate::ingest::queue::IngestQueue;
use crate::ingest::throttle::Throttle;
use crate::pipeline::Pipeline;
use crate::process::source::SymbolSource;
use crate::releases::Releases;
use crate::store::ObjectStore;
use crate::suspects::Suspects;
use crate::symbols::unpack::UnpackLimits;
use crate::symbols::SymbolStore;
use crate::triage::Triage;
use crate::uploads::{UploadSettings, Uploads};
use crate::upstream::Upstream;

/// What every route, page, worker and background job can reach. Cloned for every request
/// (axum hands each handler its own), so it is one shared pointer to its [`Parts`]: a clone
/// of twenty-two separate `Arc`s was forty-four atomic operations per request on cache lines
/// both cores write.
#[derive(Clone)]
pub struct App {
    parts: Arc<Parts>,
}

impl std::ops::Deref for App {
    type Target = Parts;
    fn deref(&self) -> &Parts {
        &self.parts
    }
}

/// The stores and services of the [`App`].
pub struct Parts {
    /// The configuration the server started with.
    pub config: Arc<Config>,
    /// Debug files and their caches.
    pub symbols: Arc<SymbolStore>,
    /// Processing and classification, sharing parsed symbols between requests.
    pub pipeline: Arc<Pipeline>,
    /// Crashes and groups.
    pub index: Arc<CrashIndex>,
    /// The object store (crash payloads live here beside the symbols).
    pub objects: Arc<dyn ObjectStore>,
    /// The durable ingest queue.
    pub queue: Arc<IngestQueue>,
    /// Wakes the processing workers when a crash is queued.
    pub wake: Arc<tokio::sync::Notify>,
    /// Ingest throttle rules.
    pub throttle: Arc<Throttle>,
    /// Projects, ingest keys and API tokens.
    pub registry: Registry,
    /// What this node tells other nodes, and hears from them.
    pub cluster: Arc<ClusterEvents>,
    /// Crash bodies being read now (`ingest.max_concurrent_bodies` permits).
    pub ingest_bodies: Arc<tokio::sync::Semaphore>,
    /// Alert rules, channels and the delivery outbox.
    pub alerts: Arc<Alerts>,
    /// Changing and merging groups, reading stored crashes.
    pub triage: Arc<Triage>,
    /// Storing uploaded debug files and announcing what they unblock.
    pub uploads: Arc<Uploads>,
    /// The upstream symbol sources, when any is configured.
    pub upstream: Option<Arc<Upstream>>,
    /// Repositories, their mirrors, code mappings, source context.
    pub code: Arc<Code>,
    /// Releases, their commits and deploys.
    pub releases: Arc<Releases>,
    /// Suspect commits of groups.
    pub suspects: Arc<Suspects>,
    /// Sessions and release health.
    pub health: Arc<crate::health::Health>,
    /// Crash correlations of groups.
    pub correlations: Arc<crate::correlations::Correlations>,
    /// A group's evidence, assembled.
    pub evidence: Arc<crate::evidence::Evidence>,
}

impl App {
    /// Opens the stores the configuration names (creating folders as needed).
    pub async fn open(config: Config) -> anyhow::Result<App> {
        let (objects, symbols, upstream, pipeline) = processing(&config).await?;
        let index = open_index(&config).await?;
        let throttle =
            Throttle::new(&config.ingest.throttle).map_err(|e| anyhow::anyhow!("{e}"))?;
        let node = config.node_id();
        let queue = Arc::new(IngestQueue::new(
            &index,
            node.clone(),
            std::time::Duration::from_secs(config.cluster.lease_secs),
        ));
        let cluster = Arc::new(ClusterEvents::new(&index, node.clone()));
        let registry = Registry::new(index.pool().clone(), Arc::clone(&cluster));
        cluster.listen(Arc::new(registry.clone()));
        cluster.listen(Arc::new(SymbolChanges {
            modules: pipeline.processor.modules().clone(),
            symbols: Arc::clone(&symbols),
        }));
        let public_url = config.public_url();
        let alerts = Alerts::new(
            &index,
            node.clone(),
            config.alerts.clone(),
            public_url.clone(),
        );
        index.observe(Arc::clone(&alerts) as Arc<dyn crate::group::index::RecordObserver>);
        let ingest_bodies = Arc::new(tokio::sync::Semaphore::new(
            config.ingest.max_concurrent_bodies.max(1),
        ));
        let index = Arc::new(index);
        let wake = Arc::new(tokio::sync::Notify::new());
        let triage = Arc::new(Triage::new(
            Arc::clone(&index),
            Arc::clone(&queue),
            Arc::clone(&alerts),
            Arc::clone(&objects),
        ));
        let uploads = Arc::new(Uploads::new(
            Arc::clone(&symbols),
            pipeline.processor.modules().clone(),
            Arc::clone(&cluster),
            Arc::clone(&queue),
            Arc::clone(&wake),
            UploadSettings {
                reprocess_on_upload: config.ingest.reprocess_on_upload,
                build_caches_on_upload: config.caches.build_on_upload,
            },
        ));
        let (code, releases, suspects) = code_services(&config, &index, &triage, &alerts)?;
        let health = Arc::new(crate::health::Health::new(&index));
        let correlations = Arc::new(crate::correlations::Correlations::new(
            index.pool().clone(),
            config.evidence.correlations_max_age_days,
        ));
        let evidence = Arc::new(crate::evidence::Evidence::new(
            crate::evidence::EvidenceSources::of(
                &index,
                &triage,
                &suspects,
                &correlations,
                &releases,
                &health,
            ),
            public_url.clone(),
        ));
        alerts.summarize_with(Arc::clone(&evidence) as Arc<dyn crate::outbound::EvidenceSummary>);
        let parts = Parts {
            health,
            correlations,
            evidence,
            code,
            releases,
            suspects,
            alerts,
            cluster,
            registry,
            ingest_bodies,
            config: Arc::new(config),
            symbols,
            pipeline,
            index,
            objects,
            queue,
            wake,
            throttle: Arc::new(throttle),
            triage,
            uploads,
            upstream,
        };
        Ok(App {
            parts: Arc::new(parts),
        })
    }
}

/// The crash index the configuration names, migrated.
async fn open_index(config: &Config) -> anyhow::Result<CrashIndex> {
    let budget = PayloadBudget {
        per_new_group: config.group.payloads_per_new_group,
        per_group_hour: config.group.payloads_per_group_hour,
    };
    let url = config.index_url();
    CrashIndex::open(&url, budget).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot open the crash index at {url}: {e} (set index.url or FAULTLINE_INDEX_URL)"
        )
    })
}

/// Object storage, the symbol store, upstream sources and the processing pipeline.
async fn processing(
    config: &Config,
) -> anyhow::Result<(
    Arc<dyn crate::store::ObjectStore>,
    Arc<SymbolStore>,
    Option<Arc<Upstream>>,
    Arc<Pipeline>,
)> {
    let objects = crate::store::open(&config.storage)
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    let scratch = config.storage.data_dir.join("tmp");
    let limits = UnpackLimits {
        max_entries: config.limits.max_archive_entries,
        max_unpacked_bytes: config.limits.max_archive_unpacked_bytes,
    };
    let symbols = SymbolStore::new(Arc::clone(&objects), scratch, limits).map_err(|e| {
            anyhow::anyhow!(
                "cannot create the data folder {}: {e} (set storage.data_dir or FAULTLINE_STORAGE_DATA_DIR to a writable folder)",
                config.storage.data_dir.display()
            )
        })?;
    let symbols = Arc::new(symbols);
    let upstream = Upstream::open(&config.symbols.sources, Arc::clone(&symbols))
        .await
        .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
    let pipeline = Arc::new(Pipeline::from_config(
        config,
        SymbolSource::Store(Arc::clone(&symbols), upstream.clone()),
    )?);
    Ok((objects, symbols, upstream, pipeline))
}

/// Repositories, releases and suspect commits, over the index's database; alert messages
/// gain the suspects of their group.
fn code_services(
    config: &Config,
    index: &CrashIndex,
    triage: &Arc<Triage>,
    alerts: &Alerts,
) -> anyhow::Result<(Arc<Code>, Arc<Releases>, Arc<Suspects>)> {
    let code = Arc::new(Code::new(
        index,
        &config.storage.data_dir,
        config.code.clone(),
    ));
    let releases = Arc::new(Releases::new(
        index.pool().clone(),
        Arc::clone(&code),
        Arc::clone(triage),
        &config.code.resolve_prefix,
    ));
    let suspects = Suspects::new(
        index.pool().clone(),
        Arc::clone(&code),
        Arc::clone(&releases),
        Arc::clone(triage),
    )
    .map_err(|e| anyhow::anyhow!("invalid configuration: code.bot_authors: {e}"))?;
    let suspects = Arc::new(suspects);
    alerts.explain_with(Arc::clone(&suspects) as Arc<dyn crate::outbound::SuspectLines>);
    Ok((code, releases, suspects))
}

/// Drops this node's copies of a module's symbols when another node stored files for it.
struct SymbolChanges {
    modules: crate::process::modules::ModuleCache,
    symbols: Arc<SymbolStore>,
}

#[async_trait::async_trait]
impl ChangeListener for SymbolChanges {
    async fn changed(&self, change: &Change) {
        let Change::Symbols(id) = change else { return };
        let Ok(id) = id.parse::<symbolic::common::DebugId>() else {
            return;
        };
        if let Err(e) = self.symbols.forget_local_caches(&id).await {
            tracing::warn!(debug_id = %id, error = %e, "could not drop local cache copies");
        }
        self.modules.invalidate(&id).await;
    }
}
