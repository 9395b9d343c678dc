//! `hamctl policy`: the release policies of a service. `policy list` shows
//! them, `policy apply auto-release` and `policy apply branch-restriction`
//! add or replace one, `policy delete` removes some by id.
//!
//! It owns the subcommands' flags, the policy table, the success lines and
//! the JSON. It must not decide policy ids, check regexes or judge whether an
//! auto-release violates a restriction; the server does all of that.

use clap::{Args, Subcommand};
use release_manager::pb::{
    ApplyAutoReleaseRequest, ApplyAutoReleaseResponse, ApplyBranchRestrictionRequest,
    ApplyBranchRestrictionResponse, DeletePoliciesRequest, ListPoliciesRequest,
    ListPoliciesResponse, Outcome,
};

use crate::error::CliError;
use crate::global::GlobalArgs;
use crate::output::{OutputFormat, Printer, Table};
use crate::{client, identity, present};

/// Show, apply and delete the release policies of a service
///
/// An auto-release policy releases every new build of a branch to an
/// environment. A branch restriction lets only branches matching a regex be
/// released to an environment; server-wide restrictions come from the
/// server's configuration and cannot be deleted here. Writes are committed
/// with you as committer, as git knows you.
#[derive(Debug, Clone, Args)]
pub(crate) struct PolicyArgs {
    /// Filled in from the global `--service` (or shuttle.yaml) by
    /// `Cli::parse_checked`.
    #[arg(skip)]
    pub(crate) service: String,

    #[command(subcommand)]
    pub(crate) what: PolicyCommand,
}

// `policy list`, `policy apply ...` and `policy delete`; their help is the
// doc comment of their `Args` structs (a doc comment here would override it).
#[derive(Debug, Clone, Subcommand)]
pub(crate) enum PolicyCommand {
    List(PolicyListArgs),
    Apply(PolicyApplyArgs),
    Delete(PolicyDeleteArgs),
}

/// List the policies of a service, server-wide restrictions included
#[derive(Debug, Clone, Args)]
pub(crate) struct PolicyListArgs {}

/// Add or replace a policy
#[derive(Debug, Clone, Args)]
pub(crate) struct PolicyApplyArgs {
    #[command(subcommand)]
    pub(crate) what: ApplyCommand,
}

// `policy apply auto-release` and `policy apply branch-restriction`.
#[derive(Debug, Clone, Subcommand)]
pub(crate) enum ApplyCommand {
    AutoRelease(AutoReleaseArgs),
    BranchRestriction(BranchRestrictionArgs),
}

/// Release every new build of a branch to an environment
///
/// The policy id is auto-release-<branch>-<env>. An environment has at most
/// one auto-release: applying another branch to it replaces the old one.
#[derive(Debug, Clone, Args)]
pub(crate) struct AutoReleaseArgs {
    /// Branch whose new builds are released, e.g. master.
    #[arg(long, short = 'b')]
    pub(crate) branch: String,

    /// Environment they are released to, e.g. dev.
    #[arg(long, short = 'e')]
    pub(crate) env: String,
}

/// Allow only branches matching a regex to be released to an environment
///
/// The policy id is branch-restriction-<env>. It applies to every release,
/// manual or automatic; the server refuses it if an existing auto-release to
/// that environment would break it.
#[derive(Debug, Clone, Args)]
pub(crate) struct BranchRestrictionArgs {
    /// Environment to restrict, e.g. prod.
    #[arg(long, short = 'e')]
    pub(crate) env: String,

    /// Regex a branch must match to be released there, e.g. '^master$'.
    #[arg(long, value_name = "REGEX")]
    pub(crate) branch_regex: String,
}

/// Delete policies of a service by id
///
/// Ids are as `hamctl policy list` shows them. Server-wide restrictions
/// cannot be deleted.
#[derive(Debug, Clone, Args)]
pub(crate) struct PolicyDeleteArgs {
    /// Ids of the policies to delete, e.g. auto-release-master-dev.
    #[arg(required = true, value_name = "ID")]
    pub(crate) ids: Vec<String>,
}

pub(crate) async fn run(
    args: PolicyArgs,
    global: &GlobalArgs,
    printer: &mut Printer<'_>,
) -> Result<(), CliError> {
    // `Cli::parse_checked` has rejected a missing --service already.
    let service = args.service;
    match args.what {
        PolicyCommand::List(_) => run_list(service, global, printer).await,
        PolicyCommand::Apply(apply) => match apply.what {
            ApplyCommand::AutoRelease(args) => {
                run_auto_release(service, args, global, printer).await
            }
            ApplyCommand::BranchRestriction(args) => {
                run_branch_restriction(service, args, global, printer).await
            }
        },
        PolicyCommand::Delete(args) => run_delete(service, args, global, printer).await,
    }
}

async fn run_list(
    service: String,
    global: &GlobalArgs,
    printer: &mut Printer<'_>,
) -> Result<(), CliError> {
    let request = ListPoliciesRequest {
        service: service.clone(),
    };
    let mut client = client::policy_client(global).await?;
    let response = client.list_policies(request).await?.into_inner();
    match printer.format() {
        OutputFormat::Json => printer.json(&present::api_json(&response))?,
        OutputFormat::Table
            if response.auto_releases.is_empty() && response.branch_restrictions.is_empty() =>
        {
            printer.line(&format!("No policies for {service}"))?;
        }
        OutputFormat::Table => printer.table(&policies_table(&response))?,
    }
    Ok(())
}

async fn run_auto_release(
    service: String,
    args: AutoReleaseArgs,
    global: &GlobalArgs,
    printer: &mut Printer<'_>,
) -> Result<(), CliError> {
    let request = ApplyAutoReleaseRequest {
        service,
        branch: args.branch,
        environment: args.env,
        committer: Some(identity::resolve_committer(global.user_email.as_deref())?),
        request_id: cli_support::new_request_id(),
    };
    let mut client = client::policy_client(global).await?;
    let response = client
        .apply_auto_release(request.clone())
        .await?
        .into_inner();
    match printer.format() {
        OutputFormat::Json => printer.json(&present::api_json(&response))?,
        OutputFormat::Table => printer.line(&auto_release_line(&request, &response))?,
    }
    Ok(())
}

async fn run_branch_restriction(
    service: String,
    args: BranchRestrictionArgs,
    global: &GlobalArgs,
    printer: &mut Printer<'_>,
) -> Result<(), CliError> {
    let request = ApplyBranchRestrictionRequest {
        service,
        environment: args.env,
        branch_regex: args.branch_regex,
        committer: Some(identity::resolve_committer(global.user_email.as_deref())?),
        request_id: cli_support::new_request_id(),
    };
    let mut client = client::policy_client(global).await?;
    let response = client
        .apply_branch_restriction(request.clone())
        .await?
        .into_inner();
    match printer.format() {
        OutputFormat::Json => printer.json(&present::api_json(&response))?,
        OutputFormat::Table => printer.line(&branch_restriction_line(&request, &response))?,
    }
    Ok(())
}

async fn run_delete(
    service: String,
    args: PolicyDeleteArgs,
    global: &GlobalArgs,
    printer: &mut Printer<'_>,
) -> Result<(), CliError> {
    let request = DeletePoliciesRequest {
        service,
        ids: args.ids,
        committer: Some(identity::resolve_committer(global.user_email.as_deref())?),
        request_id: cli_support::new_request_id(),
    };
    let mut client = client::policy_client(global).await?;
    let response = client.delete_policies(request.clone()).await?.into_inner();
    match printer.format() {
        OutputFormat::Json => printer.json(&present::api_json(&response))?,
        OutputFormat::Table => printer.line(&deleted_line(&request.service, response.deleted))?,
    }
    Ok(())
}

/// One row per policy: auto-releases first, then branch restrictions, each
/// in the server's order. SCOPE tells server-wide restrictions (set by the
/// server's configuration, not deletable) from the service's own.
fn policies_table(response: &ListPoliciesResponse) -> Table {
    let mut table = Table::new(&["ID", "TYPE", "BRANCH / REGEX", "ENV", "SCOPE"]);
    for policy in &response.auto_releases {
        table.push(vec![
            policy.id.clone(),
            "auto-release".to_owned(),
            policy.branch.clone(),
            policy.environment.clone(),
            "service".to_owned(),
        ]);
    }
    for policy in &response.branch_restrictions {
        table.push(vec![
            policy.id.clone(),
            "branch-restriction".to_owned(),
            policy.branch_regex.clone(),
            policy.environment.clone(),
            scope_word(policy.server_wide).to_owned(),
        ]);
    }
    table
}

fn scope_word(server_wide: bool) -> &'static str {
    if server_wide {
        "server-wide"
    } else {
        "service"
    }
}

/// `Applied auto-release-master-dev: every new build of master of
/// product-api is released to dev`, or the no-change line.
fn auto_release_line(
    request: &ApplyAutoReleaseRequest,
    response: &ApplyAutoReleaseResponse,
) -> String {
    if response.outcome() == Outcome::AlreadyUpToDate {
        return no_change_line(&response.id);
    }
    format!(
        "Applied {}: every new build of {} of {} is released to {}",
        response.id, request.branch, request.service, request.environment
    )
}

/// `Applied branch-restriction-prod: only branches matching ^master$ may be
/// released to prod`, or the no-change line.
fn branch_restriction_line(
    request: &ApplyBranchRestrictionRequest,
    response: &ApplyBranchRestrictionResponse,
) -> String {
    if response.outcome() == Outcome::AlreadyUpToDate {
        return no_change_line(&response.id);
    }
    format!(
        "Applied {}: only branches matching {} may be released to {}",
        response.id, request.branch_regex, request.environment
    )
}

/// `auto-release-master-dev is already in place (no change)`.
fn no_change_line(id: &str) -> String {
    format!("{id} is already in place (no change)")
}

/// `Deleted 2 policies of product-api`, `Deleted 1 policy of ...`, or
/// `No policies deleted`.
fn deleted_line(service: &str, deleted: u32) -> String {
    match deleted {
        0 => "No policies deleted".to_owned(),
        1 => format!("Deleted 1 policy of {service}"),
        n => format!("Deleted {n} policies of {service}"),
    }
}

#[cfg(test)]
mod tests {
    use release_manager::pb::{AutoReleasePolicy, BranchRestrictionPolicy};

    use super::*;

    fn listing() -> ListPoliciesResponse {
        ListPoliciesResponse {
            service: "product-api".into(),
            auto_releases: vec![AutoReleasePolicy {
                id: "auto-release-master-dev".into(),
                branch: "master".into(),
                environment: "dev".into(),
            }],
            branch_restrictions: vec![
                BranchRestrictionPolicy {
                    id: "branch-restriction-prod".into(),
                    environment: "prod".into(),
                    branch_regex: "^master$".into(),
                    server_wide: true,
                },
                BranchRestrictionPolicy {
                    id: "branch-restriction-staging".into(),
                    environment: "staging".into(),
                    branch_regex: "^(master|release/.*)$".into(),
                    server_wide: false,
                },
            ],
        }
    }

    fn auto_release_request() -> ApplyAutoReleaseRequest {
        ApplyAutoReleaseRequest {
            service: "product-api".into(),
            branch: "master".into(),
            environment: "dev".into(),
            committer: None,
            request_id: String::new(),
        }
    }

    fn restriction_request() -> ApplyBranchRestrictionRequest {
        ApplyBranchRestrictionRequest {
            service: "product-api".into(),
            environment: "prod".into(),
            branch_regex: "^master$".into(),
            committer: None,
            request_id: String::new(),
        }
    }

    #[test]
    fn table_lists_both_kinds_and_marks_server_wide_ones() {
        assert_eq!(
            policies_table(&listing()).render(false),
            "\
ID                           TYPE                 BRANCH / REGEX          ENV       SCOPE
auto-release-master-dev      auto-release         master                  dev       service
branch-restriction-prod      branch-restriction   ^master$                prod      server-wide
branch-restriction-staging   branch-restriction   ^(master|release/.*)$   staging   service
"
        );
    }

    #[test]
    fn json_is_the_apis() {
        let value = present::api_json(&listing());
        assert_eq!(value["service"], "product-api");
        assert_eq!(value["autoReleases"][0]["id"], "auto-release-master-dev");
        assert_eq!(value["autoReleases"][0]["branch"], "master");
        assert_eq!(value["branchRestrictions"][0]["branchRegex"], "^master$");
        assert_eq!(value["branchRestrictions"][0]["serverWide"], true);
        // proto3 JSON leaves default values out.
        assert_eq!(value["branchRestrictions"][1].get("serverWide"), None);
    }

    #[test]
    fn auto_release_lines() {
        let mut response = ApplyAutoReleaseResponse {
            id: "auto-release-master-dev".into(),
            outcome: Outcome::Applied.into(),
            replayed: false,
        };
        assert_eq!(
            auto_release_line(&auto_release_request(), &response),
            "Applied auto-release-master-dev: every new build of master of product-api is released to dev"
        );
        response.outcome = Outcome::AlreadyUpToDate.into();
        assert_eq!(
            auto_release_line(&auto_release_request(), &response),
            "auto-release-master-dev is already in place (no change)"
        );
        let value = present::api_json(&response);
        assert_eq!(value["outcome"], "OUTCOME_ALREADY_UP_TO_DATE");
        assert_eq!(value["id"], "auto-release-master-dev");
    }

    #[test]
    fn branch_restriction_lines() {
        let mut response = ApplyBranchRestrictionResponse {
            id: "branch-restriction-prod".into(),
            outcome: Outcome::Applied.into(),
            replayed: false,
        };
        assert_eq!(
            branch_restriction_line(&restriction_request(), &response),
            "Applied branch-restriction-prod: only branches matching ^master$ may be released to prod"
        );
        let value = present::api_json(&response);
        assert_eq!(value["outcome"], "OUTCOME_APPLIED");
        response.outcome = Outcome::AlreadyUpToDate.into();
        assert_eq!(
            branch_restriction_line(&restriction_request(), &response),
            "branch-restriction-prod is already in place (no change)"
        );
    }

    #[test]
    fn deleted_lines_count_properly() {
        assert_eq!(deleted_line("shop", 0), "No policies deleted");
        assert_eq!(deleted_line("shop", 1), "Deleted 1 policy of shop");
        assert_eq!(deleted_line("shop", 2), "Deleted 2 policies of shop");
    }
}
