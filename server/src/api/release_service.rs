//! ReleaseService handler: thin. Validates names before anything else, sends
//! writes to the writer and reads to the [`Reader`], and maps domain errors
//! through [`crate::api::errors::to_status`].

use std::sync::Arc;
use std::time::Instant;

use release_manager::names;
use release_manager::pb;
use release_manager::pb::release_request::Source;
use release_manager::pb::release_service_server::ReleaseService;
use tonic::{Request, Response, Status, Streaming};

use crate::api::errors::to_status;
use crate::api::request_fields::{namespace, optional, releaser, request_id};
use crate::auth::{Action, Gatekeeper, Role};
use crate::domain::{FlowError, Settings};
use crate::engine::events::EventBus;
use crate::engine::paging::Page;
use crate::engine::reads::Reader;
use crate::engine::wire as convert;
use crate::engine::writer::WriterHandle;
use crate::flows::{known_environment, BuildSource, Intent, ReleaseDone, WriteDone, WriteRequest};
use crate::repo::index::{ReleaseKind, Signature};

/// Serves `releasemanager.v1.ReleaseService`.
pub(crate) struct ReleaseServiceHandler {
    /// Set when the server stops; new event streams then end at once.
    stopping: Arc<std::sync::atomic::AtomicBool>,
    /// Where build uploads are received and stored.
    uploads: super::upload::UploadIntake,
    events: EventBus,
    writer: WriterHandle,
    reader: Arc<Reader>,
    settings: Arc<Settings>,
    gate: Arc<Gatekeeper>,
    /// What the cluster reported, joined to status answers.
    deployments: Arc<crate::deployments::Deployments>,
}

impl ReleaseServiceHandler {
    /// A handler over a writer and a reader (and the reader's settings).
    pub(crate) fn new(
        writer: WriterHandle,
        reader: Arc<Reader>,
        gate: Arc<Gatekeeper>,
        uploads: super::upload::UploadIntake,
        events: EventBus,
        stopping: Arc<std::sync::atomic::AtomicBool>,
        deployments: Arc<crate::deployments::Deployments>,
    ) -> Self {
        ReleaseServiceHandler {
            deployments,
            stopping,
            uploads,
            events,
            writer,
            settings: Arc::new(reader.settings().clone()),
            reader,
            gate,
        }
    }

    /// Joins what the cluster reported to one environment of a status (or
    /// a side of a comparison): the release's deployment state, and the
    /// environment's reconciliation errors.
    fn join_reports(&self, service: &str, environment: &mut pb::EnvironmentStatus) {
        let deployment_of = |release_commit_sha: &str| {
            Some(if self.deployments.takes_reports() {
                let reported =
                    self.deployments
                        .of(&environment.environment, service, release_commit_sha);
                convert::deployment(reported.as_ref())
            } else {
                convert::not_reported()
            })
        };
        if environment.artifact.is_some() {
            environment.deployment = deployment_of(&environment.release_commit_sha);
        }
        // Every namespace's release, as the one described above.
        for namespace in &mut environment.namespaces {
            if namespace.artifact.is_some() {
                namespace.deployment = deployment_of(&namespace.release_commit_sha);
            }
        }
        environment.reconciliation_errors = self
            .deployments
            .errors_of(&environment.environment)
            .iter()
            .map(|error| convert::reconciliation_error(&environment.environment, error))
            .collect();
    }

    async fn write_release(
        &self,
        request: WriteRequest,
        deadline: Option<Instant>,
    ) -> Result<ReleaseDone, Status> {
        match self.write(request, deadline).await? {
            WriteDone::Release(done) => Ok(done),
            WriteDone::Build(_) | WriteDone::Policy(_) => Err(crate::api::errors::failure(
                tonic::Code::Internal,
                crate::domain::Reason::InternalError,
                "unexpected result of a release",
            )),
        }
    }

    async fn write(
        &self,
        request: WriteRequest,
        deadline: Option<Instant>,
    ) -> Result<WriteDone, Status> {
        super::write(&self.writer, request, deadline).await
    }

    async fn read<T: Send + 'static>(
        &self,
        query: impl FnOnce(&Reader) -> Result<T, FlowError> + Send + 'static,
    ) -> Result<T, Status> {
        let reader = self.reader.clone();
        tokio::task::spawn_blocking(move || query(&reader))
            .await
            .map_err(|_| {
                crate::api::errors::failure(
                    tonic::Code::Internal,
                    crate::domain::Reason::InternalError,
                    "read query panicked",
                )
            })?
            .map_err(to_status)
    }
}

#[tonic::async_trait]
impl ReleaseService for ReleaseServiceHandler {
    async fn release(
        &self,
        request: Request<pb::ReleaseRequest>,
    ) -> Result<Response<pb::ReleaseResponse>, Status> {
        let who = super::authenticate(&self.gate, &request, Role::Operator).await?;
        let deadline = super::deadline_of(&request);
        let r = request.into_inner();
        let write = (|| {
            names::check_service(&r.service)?;
            let environment = known_environment(&self.settings, &r.environment)?;
            self.gate
                .permit(&who, Action::Release, Some(&environment))?;
            let (source, kind) = match r.source {
                None => {
                    return Err(FlowError::invalid(
                        "branch",
                        "give a branch or an artifact_id to release",
                    ))
                }
                Some(Source::Branch(branch)) => {
                    names::check_branch(&branch, &self.settings.environments)?;
                    // Builds are found by the folder their branch is stored in.
                    let folder = names::branch_folder(&branch, &self.settings.environments);
                    (BuildSource::Branch(folder), ReleaseKind::Branch)
                }
                Some(Source::ArtifactId(id)) => {
                    names::check_artifact_id(&id)?;
                    (BuildSource::Artifact(id), ReleaseKind::Artifact)
                }
            };
            Ok::<_, FlowError>(WriteRequest {
                intent: Intent::Release {
                    service: r.service,
                    environment,
                    source,
                    namespace: namespace(r.namespace)?,
                    kind,
                },
                committer: releaser(&who, r.committer)?,
                request_id: request_id(r.request_id)?,
            })
        })()?;
        let done = self.write_release(write, deadline).await?;
        Ok(Response::new(pb::ReleaseResponse {
            result: Some(convert::release_result(&done)),
        }))
    }

    async fn promote(
        &self,
        request: Request<pb::PromoteRequest>,
    ) -> Result<Response<pb::PromoteResponse>, Status> {
        let who = super::authenticate(&self.gate, &request, Role::Operator).await?;
        let deadline = super::deadline_of(&request);
        let r = request.into_inner();
        let write = (|| {
            names::check_service(&r.service)?;
            let environment = known_environment(&self.settings, &r.environment)?;
            self.gate
                .permit(&who, Action::Promote, Some(&environment))?;
            Ok::<_, FlowError>(WriteRequest {
                intent: Intent::Promote {
                    service: r.service,
                    environment,
                    namespace: namespace(r.namespace)?,
                    from_environment: match r.from_environment.as_str() {
                        "" => None,
                        from => Some(known_environment(&self.settings, from).map_err(|_| {
                            FlowError::invalid(
                                "from_environment",
                                format!(
                                    "unknown environment {from:?} to promote from; known environments: {}",
                                    self.settings.environments.join(", ")
                                ),
                            )
                        })?),
                    },
                },
                committer: releaser(&who, r.committer)?,
                request_id: request_id(r.request_id)?,
            })
        })()?;
        let done = self.write_release(write, deadline).await?;
        Ok(Response::new(pb::PromoteResponse {
            from_environment: done.from_environment.clone().unwrap_or_default(),
            result: Some(convert::release_result(&done)),
        }))
    }

    async fn rollback(
        &self,
        request: Request<pb::RollbackRequest>,
    ) -> Result<Response<pb::RollbackResponse>, Status> {
        let who = super::authenticate(&self.gate, &request, Role::Operator).await?;
        let deadline = super::deadline_of(&request);
        let r = request.into_inner();
        let write = (|| {
            names::check_service(&r.service)?;
            let artifact_id = optional(r.artifact_id);
            if let Some(id) = &artifact_id {
                names::check_artifact_id(id)?;
            }
            let environment = known_environment(&self.settings, &r.environment)?;
            self.gate
                .permit(&who, Action::Rollback, Some(&environment))?;
            Ok::<_, FlowError>(WriteRequest {
                intent: Intent::Rollback {
                    service: r.service,
                    environment,
                    artifact_id,
                    namespace: namespace(r.namespace)?,
                },
                committer: releaser(&who, r.committer)?,
                request_id: request_id(r.request_id)?,
            })
        })()?;
        let done = self.write_release(write, deadline).await?;
        Ok(Response::new(pb::RollbackResponse {
            previous_artifact_id: done.previous_artifact_id.clone().unwrap_or_default(),
            result: Some(convert::release_result(&done)),
        }))
    }

    async fn status(
        &self,
        request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        super::authenticate(&self.gate, &request, Role::Operator).await?;
        let r = request.into_inner();
        names::check_service(&r.service).map_err(FlowError::from)?;
        let ns = namespace(r.namespace)?;
        let mut response = self
            .read(move |reader| reader.status(&r.service, ns.as_deref()))
            .await?;
        for environment in &mut response.environments {
            self.join_reports(&response.service, environment);
        }
        Ok(Response::new(response))
    }

    async fn describe_release(
        &self,
        request: Request<pb::DescribeReleaseRequest>,
    ) -> Result<Response<pb::DescribeReleaseResponse>, Status> {
        super::authenticate(&self.gate, &request, Role::Operator).await?;
        let r = request.into_inner();
        let environment = (|| {
            names::check_service(&r.service)?;
            known_environment(&self.settings, &r.environment)
        })()?;
        let query = crate::engine::reads::release_query(&r.service, &environment);
        #[allow(deprecated)]
        let page = Page::of_query(r.page_size, r.count, &r.page_token, "release", &query)?;
        let response = self
            .read(move |reader| reader.describe_release(&r.service, &environment, &page))
            .await?;
        Ok(Response::new(response))
    }

    async fn describe_artifact(
        &self,
        request: Request<pb::DescribeArtifactRequest>,
    ) -> Result<Response<pb::DescribeArtifactResponse>, Status> {
        super::authenticate(&self.gate, &request, Role::Operator).await?;
        let r = request.into_inner();
        let branch = (|| {
            names::check_service(&r.service)?;
            let branch = optional(r.branch);
            if let Some(b) = &branch {
                names::check_branch(b, &self.settings.environments)?;
            }
            // Builds are indexed by the folder their branch is stored in.
            Ok::<_, FlowError>(
                branch.map(|b| names::branch_folder(&b, &self.settings.environments)),
            )
        })()?;
        let query = crate::engine::reads::build_query(&r.service, branch.as_deref());
        #[allow(deprecated)]
        let page = Page::of_query(r.page_size, r.count, &r.page_token, "build", &query)?;
        let response = self
            .read(move |reader| reader.describe_artifact(&r.service, branch.as_deref(), &page))
            .await?;
        Ok(Response::new(response))
    }

    async fn push_artifact(
        &self,
        request: Request<Streaming<pb::PushArtifactRequest>>,
    ) -> Result<Response<pb::PushArtifactResponse>, Status> {
        let who = super::authenticate(&self.gate, &request, Role::ArtifactPusher).await?;
        super::permit(&self.gate, &who, Action::PushArtifact, None)?;
        let deadline = super::deadline_of(&request);
        // Told apart by address, callers share the upload slots fairly.
        let caller = request
            .extensions()
            .get::<std::net::SocketAddr>()
            .map(|peer| peer.ip());
        let (upload, request_id, warnings) = self
            .uploads
            .receive(request.into_inner(), &self.settings, caller)
            .await?;
        let write = WriteRequest {
            intent: Intent::AddBuild(upload),
            committer: Signature::default(),
            request_id: self::request_id(request_id)?,
        };
        let WriteDone::Build(done) = self.write(write, deadline).await? else {
            return Err(crate::api::errors::failure(
                tonic::Code::Internal,
                crate::domain::Reason::InternalError,
                "unexpected result of a build upload",
            ));
        };
        Ok(Response::new(pb::PushArtifactResponse {
            outcome: convert::outcome(done.outcome) as i32,
            artifact_id: done.artifact_id,
            service: done.service,
            branch: done.branch,
            commit_sha: done.commit.to_string(),
            file_count: done.file_count as u32,
            auto_releases: done
                .auto_releases
                .iter()
                .map(convert::release_result)
                .collect(),
            warnings,
        }))
    }

    async fn list_services(
        &self,
        request: Request<pb::ListServicesRequest>,
    ) -> Result<Response<pb::ListServicesResponse>, Status> {
        super::authenticate(&self.gate, &request, Role::Operator).await?;
        let r = request.into_inner();
        // 100 by default: a service is small, and most repositories fit in
        // one page.
        let size = if r.page_size == 0 { 100 } else { r.page_size };
        let page = Page::of(size, 0, &r.page_token, "service")?;
        let response = self.read(move |reader| reader.list_services(&page)).await?;
        Ok(Response::new(response))
    }

    async fn compare_environments(
        &self,
        request: Request<pb::CompareEnvironmentsRequest>,
    ) -> Result<Response<pb::CompareEnvironmentsResponse>, Status> {
        super::authenticate(&self.gate, &request, Role::Operator).await?;
        let r = request.into_inner();
        let namespace = optional(r.namespace);
        let comparison = self
            .read(move |reader| {
                reader.compare(
                    &r.service,
                    &r.from_environment,
                    &r.to_environment,
                    namespace.as_deref(),
                )
            })
            .await?;
        let mut response = convert::comparison(&comparison);
        // What the cluster reported, joined as status joins it.
        for side in [&mut response.from_environment, &mut response.to_environment]
            .into_iter()
            .flatten()
        {
            self.join_reports(&response.service, side);
        }
        Ok(Response::new(response))
    }

    async fn report_deployment(
        &self,
        request: Request<pb::ReportDeploymentRequest>,
    ) -> Result<Response<pb::ReportDeploymentResponse>, Status> {
        let who = super::authenticate(&self.gate, &request, Role::ArtifactPusher).await?;
        let r = request.into_inner();
        super::permit(
            &self.gate,
            &who,
            Action::ReportDeployment,
            Some(&r.environment),
        )?;
        let state = match pb::DeploymentState::try_from(r.state) {
            Ok(pb::DeploymentState::Progressing) => crate::deployments::State::Progressing,
            Ok(pb::DeploymentState::Deployed) => crate::deployments::State::Succeeded,
            Ok(pb::DeploymentState::Failed) => crate::deployments::State::Failed,
            _ => {
                return Err(to_status(FlowError::invalid(
                    "state",
                    "a report's state is DEPLOYMENT_STATE_PROGRESSING, DEPLOYMENT_STATE_DEPLOYED or DEPLOYMENT_STATE_FAILED",
                )))
            }
        };
        let about = if r.service.is_empty() {
            if !r.namespace.is_empty() {
                return Err(to_status(FlowError::invalid(
                    "namespace",
                    "namespace is given without service",
                )));
            }
            crate::deployments::About::Everything
        } else {
            names::check_service(&r.service).map_err(FlowError::from)?;
            crate::deployments::About::Service {
                namespace: namespace(r.namespace)?,
                name: r.service,
            }
        };
        let observed_at = r.observed_at.map(|t| {
            t.seconds
                .saturating_mul(1_000_000_000)
                .saturating_add(i64::from(t.nanos))
        });
        let done = self
            .deployments
            .report(crate::deployments::Report {
                environment: r.environment,
                revision: r.revision,
                state,
                message: r.message,
                source: r.source,
                about,
                observed_at,
            })
            .await?;
        Ok(Response::new(pb::ReportDeploymentResponse {
            covered: done
                .covered
                .iter()
                .map(convert::deployment_reported)
                .collect(),
            ignored_as_older: done.ignored_as_older,
        }))
    }

    type WatchEventsStream = super::watch::EventStream;

    async fn watch_events(
        &self,
        request: Request<pb::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        super::authenticate(&self.gate, &request, Role::Operator).await?;
        let r = request.into_inner();
        if !r.service.is_empty() {
            names::check_service(&r.service).map_err(FlowError::from)?;
        }
        if !r.environment.is_empty() {
            known_environment(&self.settings, &r.environment)?;
        }
        let since = super::watch::since(r.since)?;
        // Subscribed before the tip is read: every event after the tip the
        // replay ends at arrives on the channel.
        let receiver = self.events.subscribe();
        // A stream either sees the flag here or gets the stop sent after it
        // was set.
        if self.stopping.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(crate::api::errors::failure(
                tonic::Code::Unavailable,
                crate::domain::Reason::ShuttingDown,
                "the server is shutting down",
            ));
        }
        // The reports' place is read before history: a report taken in
        // between comes live, and is not lost.
        let reports_at = match since {
            Some(cursor) if cursor.reports != crate::engine::events::ReportsAt::Unknown => {
                cursor.reports
            }
            _ => self.deployments.place(),
        };
        let (replay, tip) = self.read(move |reader| reader.events_since(since)).await?;
        let (reports, report_commits) = match since {
            Some(cursor) if cursor.reports != crate::engine::events::ReportsAt::Unknown => {
                self.deployments.since(cursor.reports).await?
            }
            _ => (Vec::new(), Vec::new()),
        };
        let reports_end = match report_commits.last() {
            Some(last) => crate::engine::events::ReportsAt::At {
                commit: *last,
                after: None,
            },
            None => reports_at,
        };
        Ok(Response::new(super::watch::stream(
            receiver,
            super::watch::Replayed {
                commits: replay,
                reports,
                report_commits,
            },
            tip,
            since,
            reports_end,
            r.service,
            r.environment,
        )))
    }
}
