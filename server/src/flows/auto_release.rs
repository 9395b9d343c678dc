//! Auto-release: which releases a new build triggers. A build of
//! `<service>/<branch>` is released to every environment whose auto-release
//! policy names that branch (branch restrictions are checked by the release
//! itself). Each build is auto-released to an environment once: a build
//! that history shows was auto-released there before is not released again,
//! whichever source (upload, poll, webhook, start-up) notices it.

use super::{BuildSource, FlowContext, Intent, WriteRequest};
use crate::domain::FlowError;
use crate::flows::release::read_spec;
use crate::repo::index::{ReleaseKind, Signature};

/// The committer of auto-releases: the server, acting for the policy.
pub(crate) fn committer() -> Signature {
    Signature {
        name: "Release Manager (auto-release)".into(),
        email: "release-manager@localhost".into(),
    }
}

/// Releases due for the latest build of `branch` of `service` at
/// `ctx.tip`, which just arrived: one per auto-release policy naming that
/// branch, pinned to that build's artifact id (a newer build arriving in the
/// meantime triggers its own).
pub(crate) fn due_releases(
    ctx: &FlowContext<'_>,
    service: &str,
    branch: &str,
) -> Result<Vec<WriteRequest>, FlowError> {
    let policies = super::read_policies(ctx, service)?;
    let root = crate::repo::tree::tree_of(ctx.repo, ctx.tip)
        .map_err(crate::domain::git("read the tip"))?;
    let mut due = Vec::new();
    for policy in &policies.auto_releases {
        // `branch` is the folder of the build; policies name branches as
        // git does.
        let folder =
            release_manager::names::branch_folder(&policy.branch, &ctx.settings.environments);
        if folder != branch {
            continue;
        }
        let Some((path, build)) =
            super::release::branch_build_folder(ctx, &root, service, &folder)?
        else {
            continue;
        };
        let spec = read_spec(ctx.repo, &build, service, &path)?;
        let already = ctx
            .view
            .releases(&policy.environment, service)
            .any(|r| r.kind == ReleaseKind::AutoRelease && *r.artifact_id == *spec.id);
        if already {
            continue;
        }
        due.push(WriteRequest {
            intent: Intent::Release {
                service: service.to_string(),
                environment: policy.environment.clone(),
                source: BuildSource::Artifact(spec.id.clone()),
                namespace: None,
                kind: ReleaseKind::AutoRelease,
            },
            committer: committer(),
            request_id: None,
        });
    }
    Ok(due)
}
