//! `hamctl whoami`: who the server sees behind hamctl's credentials (a
//! sign-in or a token), the groups and access rules that apply, and what
//! they allow in each environment.
//!
//! It owns the command's table (its JSON is the API's); the server decides.

use clap::Args;
use release_manager::pb::{CredentialKind, WhoAmIRequest, WhoAmIResponse};

use crate::client;
use crate::error::CliError;
use crate::global::GlobalArgs;
use crate::output::{OutputFormat, Printer, Table};

/// Show who the server sees, and what they may do where
///
/// The identity of the sign-in (or the kind of token) the server sees,
/// the groups its token lists, the access rules that match, and per
/// environment the actions allowed there.
#[derive(Debug, Clone, Args)]
pub(crate) struct WhoamiArgs {}

pub(crate) async fn run(
    _args: WhoamiArgs,
    global: &GlobalArgs,
    printer: &mut Printer<'_>,
) -> Result<(), CliError> {
    let mut access = client::access_client(global).await?;
    let who = access.who_am_i(WhoAmIRequest {}).await?.into_inner();
    match printer.format() {
        OutputFormat::Json => printer.json(&crate::present::api_json(&who))?,
        OutputFormat::Table => {
            for line in identity_lines(&who) {
                printer.line(&line)?;
            }
            printer.line("")?;
            printer.table(&environments_table(&who))?;
        }
    }
    Ok(())
}

fn identity_lines(who: &WhoAmIResponse) -> Vec<String> {
    match who.kind() {
        CredentialKind::IdentityToken => {
            let mut lines = vec![
                format!("{} <{}>", who.name, who.email),
                format!("  issuer:  {}", who.issuer),
                format!("  subject: {}", who.subject),
                format!("  groups:  {}", list(&who.groups)),
                format!("  rules:   {}", list(&who.rules)),
            ];
            if who.expires_at > 0 {
                let at = chrono::DateTime::from_timestamp(who.expires_at, 0)
                    .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                    .unwrap_or_default();
                lines.push(format!("  token expires: {at}"));
            }
            lines
        }
        CredentialKind::StaticToken => vec!["a static token (no personal identity)".into()],
        CredentialKind::None | CredentialKind::Unspecified => {
            vec!["nobody: this server needs no credentials".into()]
        }
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "-".into()
    } else {
        items.join(", ")
    }
}

fn environments_table(who: &WhoAmIResponse) -> Table {
    let mut table = Table::new(&["ENVIRONMENT", "MAY"]);
    for environment in &who.environments {
        table.push(vec![
            environment.environment.clone(),
            list(&environment.actions),
        ]);
    }
    table.push(vec!["(anywhere)".into(), list(&who.actions)]);
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use release_manager::pb::EnvironmentAccess;

    #[test]
    fn a_person_reads_with_what_they_may_do_where() {
        let who = WhoAmIResponse {
            kind: CredentialKind::IdentityToken as i32,
            name: "Dana".into(),
            email: "dana@example.com".into(),
            groups: vec!["dev-team".into()],
            rules: vec!["developers".into()],
            environments: vec![
                EnvironmentAccess {
                    environment: "dev".into(),
                    actions: vec!["release".into(), "promote".into()],
                },
                EnvironmentAccess {
                    environment: "prod".into(),
                    actions: vec![],
                },
            ],
            ..Default::default()
        };
        let lines = identity_lines(&who);
        assert_eq!(lines[0], "Dana <dana@example.com>");
        assert!(lines.iter().any(|l| l.contains("developers")));
        let table = environments_table(&who).render(false);
        assert!(table.contains("release, promote"), "{table}");
        assert!(
            table
                .lines()
                .any(|l| l.starts_with("prod") && l.trim_end().ends_with('-')),
            "{table}"
        );
        let value = crate::present::api_json(&who);
        assert_eq!(value["kind"], "CREDENTIAL_KIND_IDENTITY_TOKEN");
    }
}
