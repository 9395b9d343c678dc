//! Starting and stopping the server: the wiring. It opens the gRPC port at
//! once (NOT_SERVING until ready), prepares the engine, starts the writer,
//! the background tasks, notifications and the HTTP listener, then opens
//! the gates; and it stops them in order.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use release_manager::pb::access_service_server::AccessServiceServer;
use release_manager::pb::policy_service_server::PolicyServiceServer;
use release_manager::pb::release_service_server::ReleaseServiceServer;
use tokio::sync::oneshot;

use crate::api::access_service::AccessServiceHandler;
use crate::api::policy_service::PolicyServiceHandler;
use crate::api::release_service::ReleaseServiceHandler;
use crate::config::ServerConfig;
use crate::engine::events::{EventBus, Signal};
use crate::engine::prepare::Prepared;
use crate::engine::reads::Reader;
use crate::engine::writer::{self, WriterStats};
use crate::{api, auth, deployments, domain, engine, http, listen, notify, repo};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The mirror could not be opened, cloned or read.
    #[error("cannot prepare the mirror of the config repository")]
    Mirror(#[from] repo::RepoError),
    /// The gRPC server could not be set up.
    #[error("cannot set up the gRPC server: {0}")]
    Grpc(String),
    /// Notifications could not be set up.
    #[error("cannot set up notifications: {0}")]
    Notifications(String),
    /// The data dir is held by another server or cannot be used.
    #[error(transparent)]
    DataDir(#[from] engine::data_dir::DataDirError),
    /// The access rules cannot be read.
    #[error("{0}")]
    Access(String),
}

/// How the index was built at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartReport {
    /// Whether a persisted index was loaded (else the whole history was
    /// read).
    pub from_snapshot: bool,
    /// Commits read from history.
    pub commits_read: u64,
}

/// A running server.
pub struct RunningServer {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// The address of the HTTP listener (webhook, metrics), if any.
    pub http_addr: Option<SocketAddr>,
    /// How the index was built at start.
    pub started: StartReport,
    background: Vec<tokio::task::JoinHandle<()>>,
    background_stop: tokio::sync::watch::Sender<bool>,
    writer_handle: writer::WriterHandle,
    events: EventBus,
    stopping: Arc<std::sync::atomic::AtomicBool>,
    /// Writer counters.
    pub stats: Arc<WriterStats>,
    shutdown: oneshot::Sender<()>,
    serve: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
    writer: std::thread::JoinHandle<()>,
    /// Saves the index snapshot (a last time at shutdown).
    snapshots: Arc<engine::snapshots::SnapshotKeeper>,
    /// The data dir's lock, released when the server is dropped.
    _data_dir_lock: std::fs::File,
    /// Who may call, with the access rules in force.
    gate: Arc<auth::Gatekeeper>,
}

impl RunningServer {
    /// Reads the access file again (what `main` does on SIGHUP): returns
    /// how many rules are now in force; on an error the old rules stay.
    pub fn reload_access(&self) -> Result<usize, String> {
        let reloaded = self.gate.reload_rules();
        match &reloaded {
            Ok(rules) => tracing::info!(rules, "access rules reloaded"),
            Err(e) => tracing::error!(error = %e, "access rules not reloaded; the old ones stay"),
        }
        reloaded
    }

    /// Fetches the remote now and runs the auto-releases that makes due;
    /// returns once they are pushed. Writes queued before are done too.
    pub async fn sync(&self) -> Result<(), domain::FlowError> {
        self.writer_handle.sync(Vec::new()).await
    }

    /// Stops accepting, lets the batch in flight finish and be pushed, and
    /// waits for the writer to stop.
    pub async fn shutdown(self) {
        // The poller and the HTTP listener hold writer handles: stop them
        // first so the writer sees its queue close.
        // Event streams (gRPC watchers, the dashboard's pages) never end by
        // themselves; the stop tells each to finish, so neither listener's
        // graceful shutdown waits for them.
        self.stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = self.events.send(Signal::Stop);
        let _ = self.background_stop.send(true);
        for task in self.background {
            let _ = task.await;
        }
        let _ = self.shutdown.send(());
        drop(self.writer_handle);
        match self.serve.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "gRPC server stopped with an error"),
            Err(e) => tracing::error!(error = %e, "gRPC server task failed"),
        }
        let writer = self.writer;
        let snapshots = self.snapshots;
        // The writer has pushed its last batch: what the index holds now is
        // what the next start should not have to read again.
        let _ = tokio::task::spawn_blocking(move || {
            let _ = writer.join();
            snapshots.save_if_moved();
        })
        .await;
    }
}

/// Events kept for watchers that fall behind before they lose the oldest.
const EVENT_BUFFER: usize = 1024;

/// Asks the writer to fetch every `interval`, until told to stop.
async fn poll(
    writer: writer::WriterHandle,
    interval: std::time::Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                if let Err(e) = writer.request_sync(Vec::new()) {
                    tracing::debug!(error = %e, "poll skipped");
                }
            }
            _ = stop.changed() => return,
        }
    }
}

/// Reads the deployment states other replicas wrote every `interval`,
/// until told to stop.
async fn refresh_deployments(
    deployments: Arc<deployments::Deployments>,
    interval: std::time::Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                if let Err(e) = deployments.refresh().await {
                    tracing::warn!(error = %domain::chain(&e), "cannot read the deployment states from the remote");
                }
            }
            _ = stop.changed() => return,
        }
    }
}

/// Test builds only (feature `failpoints`): holds the start before it is
/// ready while the file `RELEASE_MANAGER_HOLD_START` names does not exist,
/// so a test can watch the server answer while it starts.
async fn hold_before_ready() {
    #[cfg(feature = "failpoints")]
    if let Ok(path) = std::env::var("RELEASE_MANAGER_HOLD_START") {
        while !std::path::Path::new(&path).exists() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}

/// Serves on `listener` at once, answering `NOT_SERVING` / `UNAVAILABLE`
/// while it opens the mirror and builds the index; returns when ready.
pub async fn start(
    config: ServerConfig,
    listener: tokio::net::TcpListener,
) -> Result<RunningServer, StartError> {
    let addr = listener
        .local_addr()
        .map_err(|e| StartError::Grpc(e.to_string()))?;
    let began = Instant::now();
    let gate = Arc::new(auth::Gatekeeper::new(&config.auth).map_err(StartError::Access)?);
    let data_dir_lock = engine::data_dir::lock(&config.data_dir).await?;
    repo::set_remote_timeout(config.remote_timeout);
    repo::pack::set_durable(config.fsync);

    // The port answers from now on: health says NOT_SERVING and the
    // services UNAVAILABLE until the gates open.
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_not_serving::<ReleaseServiceServer<ReleaseServiceHandler>>()
        .await;
    health_reporter
        .set_not_serving::<PolicyServiceServer<PolicyServiceHandler>>()
        .await;
    health_reporter
        .set_not_serving::<AccessServiceServer<AccessServiceHandler>>()
        .await;
    health_reporter
        .set_service_status("", tonic_health::ServingStatus::NotServing)
        .await;
    let release_gate = api::starting::Gate::closed();
    let policy_gate = api::starting::Gate::closed();
    let access_gate = api::starting::Gate::closed();
    // Reflection serves the error details' files too, so generic tools
    // decode the ErrorInfo every error carries.
    let reflection =
        api::reflection::Reflection::new().map_err(|e| StartError::Grpc(e.to_string()))?;
    let reflection_v1 = api::reflection::v1::service(reflection.clone());
    let reflection_v1alpha = api::reflection::v1alpha::service(reflection);
    let (shutdown, shutdown_rx) = oneshot::channel::<()>();
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = &config.tls {
        let identity = tonic::transport::Identity::from_pem(&tls.cert, &tls.key);
        builder = builder
            .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
            .map_err(|e| StartError::Grpc(format!("TLS: {e}")))?;
    }
    // gRPC-Web on the same port (HTTP/1.1 too): browsers and `buf curl
    // --protocol grpcweb` reach the API without a proxy; CORS lets pages of
    // the allowed origins call it; grpc-message is encoded as the gRPC spec
    // says (innermost, before gRPC-Web frames the trailers).
    // Every connection bounded and timed (listen/): keepalive pings find
    // peers that went away; the guard marks requests and times bodies.
    let limits = config.connections;
    let rebox: fn(listen::TimedBody<tonic::body::Body>) -> tonic::body::Body =
        tonic::body::Body::new;
    let router = builder
        .accept_http1(true)
        .http2_keepalive_interval(Some(limits.keepalive_interval))
        .http2_keepalive_timeout(Some(limits.keepalive_timeout))
        .layer(listen::GuardLayer::new(limits.body_timeout, rebox))
        .layer(tower::util::option_layer(config.cors.layer()))
        // The original release manager's probes ask `GET /ping` here.
        .layer(crate::api::ping::PingLayer)
        .layer(tonic_web::GrpcWebLayer::new())
        .layer(api::web::GrpcMessageLayer)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(release_gate.clone())
        .add_service(policy_gate.clone())
        .add_service(access_gate.clone());
    let incoming = listen::Listener::new(listener, "grpc", limits);
    let serve = tokio::spawn(router.serve_with_incoming_shutdown(incoming, async {
        let _ = shutdown_rx.await;
    }));
    tracing::info!(
        max_connections = limits.max_connections,
        header_timeout_s = limits.header_timeout.as_secs_f64(),
        idle_timeout_s = limits.idle_timeout.as_secs_f64(),
        "connections bounded, on each port"
    );
    tracing::info!(%addr, "gRPC port open; NOT_SERVING until the mirror and its index are ready");

    let prepared = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || {
            engine::prepare::prepare(
                &config.data_dir,
                config.config_repo,
                config.config_branch.as_deref(),
                config.credentials,
            )
        })
        .await
        .map_err(|e| StartError::Grpc(e.to_string()))
        .and_then(|prepared| prepared.map_err(StartError::Mirror))
    };
    let prepared = match prepared {
        Ok(prepared) => prepared,
        Err(e) => {
            let _ = shutdown.send(());
            let _ = serve.await;
            return Err(e);
        }
    };
    let Prepared {
        mirror,
        published,
        arrived,
        origin,
        snapshot_tip,
        commits_read,
    } = prepared;
    tracing::info!(
        branch = mirror.branch(),
        commits = published.index.commit_count(),
        commits_read,
        from_snapshot = snapshot_tip.is_some(),
        records = published.index.record_count(),
        tip = %published.tip,
        elapsed_ms = began.elapsed().as_millis() as u64,
        "mirror ready"
    );
    let mirror_path = mirror.path();
    let remote_lock = mirror.remote_branch_lock();
    let shared = Arc::new(RwLock::new(published));
    let settings = Arc::new(config.settings.clone());
    if let Some(issuers) = gate.issuers() {
        tracing::info!(issuers = ?issuers.describe(), "identity tokens accepted");
    }
    let (events, _) = tokio::sync::broadcast::channel(EVENT_BUFFER);
    let (writer, writer_thread) = writer::spawn(
        mirror,
        shared.clone(),
        config.settings.clone(),
        config.writer.clone(),
        events.clone(),
    );
    if !arrived.is_empty() {
        tracing::info!(
            services = arrived.len(),
            "catching up auto-releases of builds that arrived while stopped"
        );
        let _ = writer.request_sync(arrived);
    }
    let (background_stop, _) = tokio::sync::watch::channel(false);
    let mut background = Vec::new();
    let snapshots = Arc::new(engine::snapshots::SnapshotKeeper::new(
        config.data_dir.clone(),
        origin,
        shared.clone(),
        config.fsync,
        snapshot_tip,
    ));
    background.push(tokio::spawn(engine::snapshots::keep_saving(
        snapshots.clone(),
        background_stop.subscribe(),
    )));
    if !config.poll_interval.is_zero() {
        background.push(tokio::spawn(poll(
            writer.clone(),
            config.poll_interval,
            background_stop.subscribe(),
        )));
    }
    let reader = Arc::new(Reader::new(
        mirror_path.clone(),
        shared,
        config.settings.clone(),
    ));
    // The deployment states, read from the remote (a data dir of its own
    // holds nothing another replica would need).
    let store = {
        let (mirror_path, location, credentials) = (
            mirror_path.clone(),
            config.config_repo.clone(),
            config.credentials.clone(),
        );
        tokio::task::spawn_blocking(move || {
            let store = deployments::shared::Store::open(&mirror_path, location, credentials)?;
            if let Err(e) = store.load() {
                tracing::warn!(error = %domain::chain(&e), "cannot read the deployment states from the remote; using the mirror's last copy until the next poll");
            }
            Ok::<_, repo::RepoError>(store)
        })
        .await
        .map_err(|e| StartError::Grpc(e.to_string()))??
    };
    let mut notify_stats = None;
    let mut notify_journal = None;
    if let Some(notifications) = config.notifications.clone() {
        let tip = reader.with_published(|_, published, _| Ok(published.tip));
        let tip =
            tip.map_err(|e| StartError::Notifications(format!("cannot read the tip: {e}")))?;
        let lease = notify::lease::Lease::open(
            &mirror_path,
            config.config_repo.clone(),
            config.credentials.clone(),
            config.notifications_lease,
        )?;
        let reports = match store.head() {
            Some(head) => head.to_string(),
            None => "-".to_string(),
        };
        let started = notify::start(
            notifications,
            &config.data_dir,
            reader.clone(),
            &events,
            tip,
            &reports,
            lease,
            background_stop.subscribe(),
        )
        .map_err(|e| {
            StartError::Notifications(format!("cannot open the journal in the data dir: {e}"))
        })?;
        background.extend(started.tasks);
        notify_stats = Some(started.stats);
        notify_journal = Some(started.journal);
    }
    // Anyone can report: with the webhooks' secret, or a credential
    // `ReportDeployment` accepts (an artifact token, an identity token), or
    // none needed.
    let takes_reports = config.deployment_webhook_secret.is_some()
        || config
            .auth
            .tokens(crate::auth::Role::ArtifactPusher)
            .next()
            .is_some()
        || config.auth.has_oidc()
        || config.auth.role_open(crate::auth::Role::ArtifactPusher);
    let deployments = {
        let (data_dir, reader, writer, events) = (
            config.data_dir.clone(),
            reader.clone(),
            writer.clone(),
            events.clone(),
        );
        Arc::new(
            tokio::task::spawn_blocking(move || {
                deployments::Deployments::open(
                    &data_dir,
                    store,
                    takes_reports,
                    reader,
                    writer,
                    events,
                    notify_journal,
                )
            })
            .await
            .map_err(|e| StartError::Grpc(e.to_string()))?,
        )
    };
    if !config.poll_interval.is_zero() {
        background.push(tokio::spawn(refresh_deployments(
            deployments.clone(),
            config.poll_interval,
            background_stop.subscribe(),
        )));
    }
    let mut http_addr = None;
    let mut dashboard_to_warm = None;
    if let Some(listen) = config.http_listen {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| StartError::Grpc(format!("cannot listen on {listen} (HTTP): {e}")))?;
        http_addr = listener.local_addr().ok();
        if let Some(http_addr) = http_addr {
            tracing::info!(%http_addr, "HTTP listener open: dashboard, webhooks, /ping, /metrics");
        }
        let state = http::HttpState {
            gate: gate.clone(),
            writer: writer.clone(),
            stats: writer.stats_arc(),
            webhook_secret: config.github_webhook_secret.clone().map(Arc::new),
            deployments: deployments.clone(),
            notifications: notify_stats.clone(),
        };
        let hooks = http::deployment_hooks::HookState {
            secret: config.deployment_webhook_secret.clone().map(Arc::new),
            sources: Arc::new(config.deployment_sources.clone()),
            deployments: deployments.clone(),
            environments: Arc::new(config.settings.environments.clone()),
            ignored: Default::default(),
        };
        let dashboard = http::dashboard::DashboardState::new(
            reader.clone(),
            events.clone(),
            gate.clone(),
            deployments.clone(),
        )
        .with_commit_links(config.config_repo_web_url.clone());
        dashboard_to_warm = Some(dashboard.clone());
        let routes = http::router(state)
            .merge(http::deployment_hooks::router(hooks))
            .merge(http::dashboard::router(dashboard));
        let mut stop = background_stop.subscribe();
        let listener = listen::Listener::new(listener, "http", config.connections);
        background.push(tokio::spawn(listen::serve_http1(
            listener,
            routes,
            async move {
                let _ = stop.changed().await;
            },
        )));
    }
    let stats = writer.stats_arc();
    // A lock that stays on the remote's branch (not this server's: those
    // were cleared when the mirror opened) means no write can land.
    if let Some(lock) = remote_lock.filter(|lock| lock.exists()) {
        tracing::warn!(lock = %lock.display(), "the remote's branch is locked");
        stats.note_remote_locked(&lock);
    }
    let policy = PolicyServiceHandler::new(
        writer.clone(),
        reader.clone(),
        settings.clone(),
        gate.clone(),
    );
    let writer_handle = writer.clone();
    let upload_limits = config.uploads;
    let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let release = ReleaseServiceHandler::new(
        writer,
        reader,
        gate.clone(),
        api::upload::UploadIntake::new(upload_limits, mirror_path),
        events.clone(),
        stopping.clone(),
        deployments,
    );
    hold_before_ready().await;
    // A PushArtifact chunk may carry a whole file of the largest upload
    // allowed (tonic's default limit is 4 MiB); anything larger is refused
    // by the decoder, and the upload handler says so.
    release_gate.open(
        ReleaseServiceServer::new(release)
            .max_decoding_message_size(api::upload::max_chunk_bytes(&upload_limits)),
    );
    policy_gate.open(PolicyServiceServer::new(policy));
    access_gate.open(AccessServiceServer::new(AccessServiceHandler::new(
        gate.clone(),
        settings.clone(),
    )));
    if gate.issuers().is_some() {
        let gate = gate.clone();
        tokio::spawn(async move {
            if let Some(issuers) = gate.issuers() {
                issuers.warm().await;
            }
        });
    }
    health_reporter
        .set_serving::<ReleaseServiceServer<ReleaseServiceHandler>>()
        .await;
    health_reporter
        .set_serving::<PolicyServiceServer<PolicyServiceHandler>>()
        .await;
    health_reporter
        .set_serving::<AccessServiceServer<AccessServiceHandler>>()
        .await;
    health_reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    background.push(tokio::spawn(crate::health::follow_remote_lock(
        health_reporter,
        stats.clone(),
        background_stop.subscribe(),
    )));
    if let Some(dashboard) = dashboard_to_warm {
        tokio::spawn(dashboard.warm());
    }
    if let Some(http) = http_addr {
        tracing::info!(addr = %http, "serving HTTP (dashboard, webhooks, metrics)");
    }
    tracing::info!(elapsed_ms = began.elapsed().as_millis() as u64, %addr, "serving gRPC");
    Ok(RunningServer {
        addr,
        http_addr,
        started: StartReport {
            from_snapshot: snapshot_tip.is_some(),
            commits_read,
        },
        background,
        background_stop,
        writer_handle,
        events,
        stopping,
        stats,
        shutdown,
        serve,
        writer: writer_thread,
        snapshots,
        _data_dir_lock: data_dir_lock,
        gate,
    })
}
