//! Promote: release to environment N the artifact that runs in environment
//! N-1 (for the first environment, the latest build of the default branch),
//! taking that artifact's own `<env N>` manifests from its build commit.

use super::release::{find_build, read_spec, release_build};
use super::{BuildSource, FlowContext, ReleaseDone, WriteRequest};
use crate::domain::{git, FlowError, Reason};
use crate::repo::index::ReleaseKind;
use crate::repo::tree::tree_at;

pub(super) fn promote(
    ctx: &FlowContext<'_>,
    request: &WriteRequest,
    service: &str,
    environment: &str,
    namespace: Option<&str>,
) -> Result<ReleaseDone, FlowError> {
    let position = ctx
        .settings
        .environments
        .iter()
        .position(|e| e == environment)
        .expect("the handler checked the environment is configured");
    if position == 0 {
        let source = BuildSource::Branch(ctx.settings.default_branch.clone());
        let build = find_build(ctx, service, &source)?;
        return release_build(
            ctx,
            request,
            service,
            environment,
            &build,
            namespace,
            ReleaseKind::Promote,
        );
    }
    let from = &ctx.settings.environments[position - 1];
    let from_namespace = namespace
        .map(str::to_string)
        .or_else(|| {
            ctx.view
                .releases(from, service)
                .next()
                .map(|r| r.namespace.to_string())
        })
        .unwrap_or_else(|| from.clone());
    let root = crate::repo::tree::tree_of(ctx.repo, ctx.tip).map_err(git("read the tip"))?;
    let path = format!("{from}/releases/{from_namespace}/{service}");
    let Some(folder) = tree_at(ctx.repo, &root, &path).map_err(git("read a tree"))? else {
        return Err(FlowError::precondition(Reason::NothingToPromote, format!(
            "nothing to promote: service {service:?} is not released to {from} (namespace {from_namespace})"
        )));
    };
    let running = read_spec(ctx.repo, &folder, service, &path)?;
    let build = find_build(ctx, service, &BuildSource::Artifact(running.id.clone()))?;
    let mut done = release_build(
        ctx,
        request,
        service,
        environment,
        &build,
        namespace,
        ReleaseKind::Promote,
    )?;
    done.from_environment = Some(from.clone());
    Ok(done)
}
