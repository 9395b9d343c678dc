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
    from_environment: Option<&str>,
) -> Result<ReleaseDone, FlowError> {
    let position = ctx
        .settings
        .environments
        .iter()
        .position(|e| e == environment)
        .expect("the handler checked the environment is configured");
    if position == 0 && from_environment.is_none() {
        let source = BuildSource::Branch(ctx.settings.default_branch.clone());
        let build = find_build(ctx, service, &source)?;
        // The original writes the branch as where a first environment's
        // promotion comes from.
        let from = ctx.settings.default_branch.as_str();
        return release_build(
            ctx,
            request,
            service,
            environment,
            &build,
            namespace,
            ReleaseKind::Promote,
            Some(from),
        );
    }
    let from = match from_environment {
        Some(from) if from == environment => {
            return Err(FlowError::invalid(
                "from_environment",
                format!("cannot promote {environment} from itself"),
            ))
        }
        Some(from) => from,
        None => ctx.settings.environments[position - 1].as_str(),
    };
    let from = &from.to_string();
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
        Some(from),
    )?;
    done.from_environment = Some(from.clone());
    Ok(done)
}
