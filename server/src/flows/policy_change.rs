//! Policy changes as intents: read `policies/<service>.json` at the tip,
//! apply the change with the rules of [`crate::policy`], and commit the file
//! (or delete it once no policy is left). Also the read of a service's
//! policies that every release checks its branch restrictions against.

use git2::FileMode;

use super::{FlowContext, Outcome, WriteRequest};
use crate::domain::policy_file::{auto_release_id, branch_restriction_id, PolicyFile};
use crate::domain::{git, FlowError, Reason};
use crate::repo::message::compose;
use crate::repo::tree::replace_at;

/// A change to a service's policies.
#[derive(Debug, Clone)]
pub(crate) enum PolicyChange {
    /// Release every new build of `branch` to `environment`.
    AutoRelease {
        /// Source branch.
        branch: String,
        /// Target environment.
        environment: String,
    },
    /// Allow only branches matching `regex` in `environment`.
    BranchRestriction {
        /// Environment.
        environment: String,
        /// Branch regex.
        regex: String,
    },
    /// Delete policies by id.
    Delete {
        /// Policy ids.
        ids: Vec<String>,
    },
}

impl std::fmt::Display for PolicyChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PolicyChange::AutoRelease {
                branch,
                environment,
            } => write!(f, "auto-release {branch} to {environment}"),
            PolicyChange::BranchRestriction { environment, regex } => {
                write!(f, "branch restriction {regex:?} in {environment}")
            }
            PolicyChange::Delete { ids } => write!(f, "delete {}", ids.join(", ")),
        }
    }
}

/// What a policy change did.
#[derive(Debug, Clone)]
pub(crate) struct PolicyDone {
    /// Commit made or not.
    pub(crate) outcome: Outcome,
    /// The policy applied (empty for deletions).
    pub(crate) id: String,
    /// Policies deleted.
    pub(crate) deleted: usize,
    /// The commit (or the tip when nothing changed).
    pub(crate) commit: git2::Oid,
    /// Whether `commit` is new.
    pub(crate) created: bool,
    /// Whether the request id was already in history and this answers from
    /// the commit that carries it.
    pub(crate) replayed: bool,
}

/// The policies of `service` at `ctx.tip`.
pub(crate) fn read_policies(ctx: &FlowContext<'_>, service: &str) -> Result<PolicyFile, FlowError> {
    let root = crate::repo::tree::tree_of(ctx.repo, ctx.tip).map_err(git("read the tip"))?;
    crate::domain::policy_file::read_at(ctx.repo, &root, service)
}

/// Fails when a restriction forbids releasing `branch` (as git names it,
/// not its folder) of `service` to `environment`.
pub(crate) fn check_branch_allowed(
    ctx: &FlowContext<'_>,
    service: &str,
    environment: &str,
    branch: &str,
) -> Result<(), FlowError> {
    read_policies(ctx, service)?
        .check_release(&ctx.settings.global_restrictions, environment, branch)
        .map_err(|message| {
            FlowError::precondition(Reason::BranchRestricted, message)
                .with("policy_id", branch_restriction_id(environment))
                .with("environment", environment)
        })
}

pub(super) fn change_policies(
    ctx: &FlowContext<'_>,
    request: &WriteRequest,
    service: &str,
    change: &PolicyChange,
) -> Result<PolicyDone, FlowError> {
    if let Some(request_id) = &request.request_id {
        if let Some(commit) = ctx.view.request(request_id) {
            return replayed(ctx, request_id, service, commit);
        }
    }
    let repo = ctx.repo;
    let parent = repo.find_commit(ctx.tip).map_err(git("read the tip"))?;
    let root = parent.tree().map_err(git("read the tip"))?;
    // No builds yet is fine: policies set before a service's first build
    // apply to that build.
    let mut file = read_policies(ctx, service)?;
    let globals = &ctx.settings.global_restrictions;
    let (changed, id, deleted, summary) = match change {
        PolicyChange::AutoRelease {
            branch,
            environment,
        } => {
            let changed = file
                .apply_auto_release(globals, branch, environment)
                .map_err(|message| {
                    // The restriction of that environment is in the way.
                    FlowError::precondition(Reason::PolicyConflict, message)
                        .with("policy_id", branch_restriction_id(environment))
                        .with("environment", environment.as_str())
                })?;
            let summary = format!("apply auto-release from '{branch}' to '{environment}'");
            (changed, auto_release_id(branch, environment), 0, summary)
        }
        PolicyChange::BranchRestriction { environment, regex } => {
            crate::domain::policy_file::compile(regex)
                .map_err(|message| FlowError::invalid("branch_regex", message))?;
            let in_the_way = file
                .auto_releases
                .iter()
                .find(|a| a.environment == *environment)
                .map(|a| a.id.clone());
            let changed = file
                .apply_branch_restriction(environment, regex)
                .map_err(|message| {
                    // The auto-release to that environment is in the way.
                    let error = FlowError::precondition(Reason::PolicyConflict, message)
                        .with("environment", environment.as_str());
                    match &in_the_way {
                        Some(id) => error.with("policy_id", id.clone()),
                        None => error,
                    }
                })?;
            let summary = format!("apply branch restriction '{regex}' to '{environment}'");
            (changed, branch_restriction_id(environment), 0, summary)
        }
        PolicyChange::Delete { ids } => {
            if let Some(global) = ids.iter().find(|id| {
                globals
                    .iter()
                    .any(|g| branch_restriction_id(&g.environment) == **id)
                    && !file.branch_restrictions.iter().any(|r| r.id == **id)
            }) {
                return Err(FlowError::precondition(
                    Reason::ServerWidePolicy,
                    format!(
                    "{global} is a server-wide policy set by configuration and cannot be deleted"
                ),
                )
                .with("policy_id", global.clone()));
            }
            let deleted = file.delete(ids);
            let summary = format!("delete policies {}", ids.join(", "));
            (deleted > 0, String::new(), deleted, summary)
        }
    };
    if !changed {
        return Ok(PolicyDone {
            outcome: Outcome::AlreadyUpToDate,
            id,
            deleted,
            commit: ctx.tip,
            created: false,
            replayed: false,
        });
    }
    let path = ["policies", &format!("{service}.json")];
    let entry = if file.is_empty() {
        None
    } else {
        let blob = repo
            .blob(file.to_json().as_bytes())
            .map_err(git("write a blob"))?;
        Some((blob, FileMode::Blob))
    };
    let new_root = replace_at(repo, Some(&root), &[path[0], path[1]], entry)
        .map_err(git("write a tree"))?
        .ok_or_else(|| {
            FlowError::precondition(
                Reason::PolicyConflict,
                "the config repository would be empty",
            )
        })?;
    let new_root = repo.find_tree(new_root).map_err(git("read a tree"))?;
    let who = format!("{} <{}>", request.committer.name, request.committer.email);
    let deleted_count = if matches!(change, PolicyChange::Delete { .. }) {
        deleted.to_string()
    } else {
        String::new()
    };
    let message = compose(
        &format!("[{service}] policy update: {summary}"),
        &[
            ("Service", service),
            ("Policy-ID", &id),
            ("Policies-deleted", &deleted_count),
            ("Changed-by", &who),
            (
                "Request-ID",
                request.request_id.as_deref().unwrap_or_default(),
            ),
        ],
    );
    let signature = git2::Signature::now(&request.committer.name, &request.committer.email)
        .map_err(|_| {
            FlowError::invalid(
                "committer",
                format!("committer {who:?} is not a valid git identity"),
            )
        })?;
    let oid = crate::repo::commits::write_commit(
        repo,
        ctx.commits,
        &signature,
        &signature,
        &message,
        &new_root,
        &[&parent],
    )
    .map_err(git("write a commit"))?;
    Ok(PolicyDone {
        outcome: Outcome::Applied,
        id,
        deleted,
        commit: oid,
        created: true,
        replayed: false,
    })
}

/// The answer to a request id already in history: what its policy commit
/// did, with no new commit. An id used for anything else is refused.
fn replayed(
    ctx: &FlowContext<'_>,
    request_id: &str,
    service: &str,
    commit: git2::Oid,
) -> Result<PolicyDone, FlowError> {
    let found = ctx.repo.find_commit(commit).map_err(git("read a commit"))?;
    let message = String::from_utf8_lossy(found.message_bytes()).into_owned();
    let field = |key: &str| {
        crate::repo::message::trailer(&message, key)
            .unwrap_or_default()
            .to_string()
    };
    let is_policy = crate::repo::message::trailer(&message, "Changed-by").is_some();
    if !is_policy || field("Service") != service {
        return Err(FlowError::invalid(
            "request_id",
            format!("request_id {request_id:?} was already used for another request"),
        ));
    }
    Ok(PolicyDone {
        outcome: Outcome::Applied,
        id: field("Policy-ID"),
        deleted: field("Policies-deleted").parse().unwrap_or(0),
        commit,
        created: false,
        replayed: true,
    })
}
