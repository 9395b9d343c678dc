//! PolicyService handler: validates names, sends policy changes to the
//! writer, and lists a service's policies (server-wide restrictions
//! included) from the published tip.

use std::sync::Arc;

use release_manager::names;
use release_manager::pb;
use release_manager::pb::policy_service_server::PolicyService;
use tonic::{Request, Response, Status};

use crate::auth::{Action, Gatekeeper, Identity, Role};
use crate::domain::{FlowError, Settings};
use crate::engine::reads::Reader;
use crate::engine::wire as convert;
use crate::engine::writer::WriterHandle;
use crate::flows::{known_environment, Intent, PolicyChange, PolicyDone, WriteDone, WriteRequest};

/// Serves `releasemanager.v1.PolicyService`.
pub(crate) struct PolicyServiceHandler {
    writer: WriterHandle,
    reader: Arc<Reader>,
    settings: Arc<Settings>,
    gate: Arc<Gatekeeper>,
}

impl PolicyServiceHandler {
    /// A handler over the writer and a reader.
    pub(crate) fn new(
        writer: WriterHandle,
        reader: Arc<Reader>,
        settings: Arc<Settings>,
        gate: Arc<Gatekeeper>,
    ) -> Self {
        PolicyServiceHandler {
            writer,
            reader,
            settings,
            gate,
        }
    }

    async fn change(
        &self,
        who: &Identity,
        service: String,
        change: PolicyChange,
        committer: Option<pb::Person>,
        request_id: String,
        deadline: Option<std::time::Instant>,
    ) -> Result<PolicyDone, Status> {
        let request = WriteRequest {
            intent: Intent::Policy { service, change },
            committer: super::request_fields::releaser(who, committer)?,
            request_id: super::request_fields::request_id(request_id)?,
        };
        match super::write(&self.writer, request, deadline).await? {
            WriteDone::Policy(done) => Ok(done),
            WriteDone::Release(_) | WriteDone::Build(_) => Err(crate::api::errors::failure(
                tonic::Code::Internal,
                crate::domain::Reason::InternalError,
                "unexpected result of a policy change",
            )),
        }
    }
}

/// The environment a policy id is about (`auto-release-<branch>-<env>`,
/// `branch-restriction-<env>`): the longest configured environment it ends
/// with.
fn environment_of_id<'s>(settings: &'s Settings, id: &str) -> Option<&'s str> {
    settings
        .environments
        .iter()
        .filter(|e| id.ends_with(&format!("-{e}")))
        .max_by_key(|e| e.len())
        .map(String::as_str)
}

#[tonic::async_trait]
impl PolicyService for PolicyServiceHandler {
    async fn list_policies(
        &self,
        request: Request<pb::ListPoliciesRequest>,
    ) -> Result<Response<pb::ListPoliciesResponse>, Status> {
        super::authenticate(&self.gate, &request, Role::Operator).await?;
        let service = request.into_inner().service;
        names::check_service(&service).map_err(FlowError::from)?;
        let reader = self.reader.clone();
        let file = tokio::task::spawn_blocking(move || reader.policies(&service))
            .await
            .map_err(|_| {
                crate::api::errors::failure(
                    tonic::Code::Internal,
                    crate::domain::Reason::InternalError,
                    "read query panicked",
                )
            })??;
        let mut branch_restrictions: Vec<pb::BranchRestrictionPolicy> = self
            .settings
            .global_restrictions
            .iter()
            .map(|g| pb::BranchRestrictionPolicy {
                id: crate::domain::policy_file::branch_restriction_id(&g.environment),
                environment: g.environment.clone(),
                branch_regex: g.regex.as_str().to_string(),
                server_wide: true,
            })
            .collect();
        branch_restrictions.extend(file.branch_restrictions.iter().map(|r| {
            pb::BranchRestrictionPolicy {
                id: r.id.clone(),
                environment: r.environment.clone(),
                branch_regex: r.branch_regex.clone(),
                server_wide: false,
            }
        }));
        Ok(Response::new(pb::ListPoliciesResponse {
            service: file.service.clone(),
            auto_releases: file
                .auto_releases
                .iter()
                .map(|a| pb::AutoReleasePolicy {
                    id: a.id.clone(),
                    branch: a.branch.clone(),
                    environment: a.environment.clone(),
                })
                .collect(),
            branch_restrictions,
        }))
    }

    async fn apply_auto_release(
        &self,
        request: Request<pb::ApplyAutoReleaseRequest>,
    ) -> Result<Response<pb::ApplyAutoReleaseResponse>, Status> {
        let who = super::authenticate(&self.gate, &request, Role::Operator).await?;
        let deadline = super::deadline_of(&request);
        let r = request.into_inner();
        let change = (|| {
            names::check_service(&r.service)?;
            names::check_branch(&r.branch, &self.settings.environments)?;
            let environment = known_environment(&self.settings, &r.environment)?;
            self.gate.permit(&who, Action::Policy, Some(&environment))?;
            Ok::<_, FlowError>(PolicyChange::AutoRelease {
                branch: r.branch.clone(),
                environment,
            })
        })()?;
        let done = self
            .change(&who, r.service, change, r.committer, r.request_id, deadline)
            .await?;
        Ok(Response::new(pb::ApplyAutoReleaseResponse {
            id: done.id,
            outcome: convert::outcome(done.outcome) as i32,
            replayed: done.replayed,
        }))
    }

    async fn apply_branch_restriction(
        &self,
        request: Request<pb::ApplyBranchRestrictionRequest>,
    ) -> Result<Response<pb::ApplyBranchRestrictionResponse>, Status> {
        let who = super::authenticate(&self.gate, &request, Role::Operator).await?;
        let deadline = super::deadline_of(&request);
        let r = request.into_inner();
        let change = (|| {
            names::check_service(&r.service)?;
            let environment = known_environment(&self.settings, &r.environment)?;
            self.gate.permit(&who, Action::Policy, Some(&environment))?;
            if r.branch_regex.is_empty() || r.branch_regex.len() > 500 {
                return Err(FlowError::invalid(
                    "branch_regex",
                    "invalid branch_regex: give a regex of at most 500 characters",
                ));
            }
            if r.branch_regex.chars().any(names::is_forbidden_char) {
                return Err(FlowError::invalid(
                    "branch_regex",
                    "invalid branch_regex: it must not contain control or bidirectional-control characters (it goes into a commit title; match a newline with \\n)",
                ));
            }
            crate::domain::policy_file::compile(&r.branch_regex)
                .map_err(|message| FlowError::invalid("branch_regex", message))?;
            Ok(PolicyChange::BranchRestriction {
                environment,
                regex: r.branch_regex.clone(),
            })
        })()?;
        let done = self
            .change(&who, r.service, change, r.committer, r.request_id, deadline)
            .await?;
        Ok(Response::new(pb::ApplyBranchRestrictionResponse {
            id: done.id,
            outcome: convert::outcome(done.outcome) as i32,
            replayed: done.replayed,
        }))
    }

    async fn delete_policies(
        &self,
        request: Request<pb::DeletePoliciesRequest>,
    ) -> Result<Response<pb::DeletePoliciesResponse>, Status> {
        let who = super::authenticate(&self.gate, &request, Role::Operator).await?;
        let deadline = super::deadline_of(&request);
        let r = request.into_inner();
        names::check_service(&r.service).map_err(FlowError::from)?;
        if r.ids.is_empty() {
            return Err(crate::api::errors::invalid(
                "ids",
                "give the ids of the policies to delete",
            ));
        }
        // Ids are `auto-release-<branch>-<env>` or `branch-restriction-<env>`:
        // one line of printable characters, as the names in them.
        if let Some(bad) = r.ids.iter().find(|id| {
            id.is_empty()
                || id.len() > 300
                || id.chars().any(|c| c.is_control() || c.is_whitespace())
        }) {
            return Err(crate::api::errors::invalid(
                "ids",
                format!("invalid policy id {bad:?}: an id is at most 300 bytes, without whitespace or control characters (hamctl policy list shows them)"),
            ));
        }
        // Deleting a policy is changing that environment's policies; an id
        // that names no configured environment needs them everywhere.
        for id in &r.ids {
            match environment_of_id(&self.settings, id) {
                Some(environment) => {
                    super::permit(&self.gate, &who, Action::Policy, Some(environment))?
                }
                None => {
                    for environment in &self.settings.environments {
                        super::permit(&self.gate, &who, Action::Policy, Some(environment))?;
                    }
                }
            }
        }
        let done = self
            .change(
                &who,
                r.service,
                PolicyChange::Delete { ids: r.ids },
                r.committer,
                r.request_id,
                deadline,
            )
            .await?;
        Ok(Response::new(pb::DeletePoliciesResponse {
            deleted: done.deleted as u32,
            replayed: done.replayed,
        }))
    }
}
