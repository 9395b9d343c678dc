//! The original release manager's server settings, read at start so that
//! a Deployment moved over from it never runs differently than it says:
//! each flag and variable of the original's `server start` is either
//! honoured (same name, or read here) or refused before anything starts,
//! with what replaces it.
//!
//! Honoured: `--config-repo` / `CONFIG_REPO`, `--ssh-private-key`,
//! `--hamctl-auth-token` / `HAMCTL_AUTH_TOKEN` and `--artifact-auth-token`
//! / `ARTIFACT_AUTH_TOKEN` (comma-separated lists), `--github-webhook-secret`
//! / `GITHUB_WEBHOOK_SECRET`, `--policy-branch-restrictions`,
//! `--log.level` / `LOG_LEVEL` and `--log.development` /
//! `LOG_DEVELOPMENT`. Everything else is in the tables below, each with its
//! replacement; docs/migration.md lists them all.
//!
//! It owns those tables and the check. It must not start anything.

use std::ffi::OsString;

/// Flags of the original's `server start` that mean nothing here, and what
/// replaces each. Flags taking a value are matched as `--flag value` and
/// `--flag=value`.
pub const REFUSED_FLAGS: &[(&str, &str)] = &[
    ("--http-port", "gRPC listens on --listen (default 0.0.0.0:8080; `GET /ping` answers there too), the webhooks, /ping and /metrics on --http-listen (default 0.0.0.0:8081)"),
    ("--timeout", "clients send their own deadline (hamctl --request-timeout); the server bounds its work with --batch-timeout and --remote-timeout"),
    ("--daemon-auth-token", "there is no daemon: Flux and Argo CD report to /webhook/flux and /webhook/argocd, secured by --deployment-webhook-secret"),
    ("--artifact-filename", "builds are always read from artifact.json"),
    ("--jwks-urls", "the issuer's keys are read from its discovery document: --oidc-issuer URL=AUDIENCE"),
    ("--jwt-audience", "each issuer's audience: --oidc-issuer URL=AUDIENCE (or --oidc-audience)"),
    ("--jwt-issuer", "--oidc-issuer URL=AUDIENCE, once per trusted issuer"),
    ("--github-api-token", "releases are not tagged on GitHub; a CloudEvents webhook (--notifications) can do it"),
    ("--slack-token", "Slack messages are sent by --notifications (Slack webhook routes)"),
    ("--grafana-annotations", "use a CloudEvents webhook in --notifications"),
    ("--grafana-api-key-dev", "use a CloudEvents webhook in --notifications"),
    ("--grafana-api-key-staging", "use a CloudEvents webhook in --notifications"),
    ("--grafana-api-key-prod", "use a CloudEvents webhook in --notifications"),
    ("--grafana-dev-url", "use a CloudEvents webhook in --notifications"),
    ("--grafana-staging-url", "use a CloudEvents webhook in --notifications"),
    ("--grafana-prod-url", "use a CloudEvents webhook in --notifications"),
    ("--email-suffix", "Slack routes in --notifications name their channels; no user lookup"),
    ("--user-mappings", "Slack routes in --notifications name their channels; no user lookup"),
    ("--mute-slack-notification-k8s", "choose what is sent per route in --notifications"),
    ("--mute-slack-notification-policy", "choose what is sent per route in --notifications"),
    ("--mute-slack-notification-release-processed", "choose what is sent per route in --notifications"),
    ("--mute-slack-notification-flux", "choose what is sent per route in --notifications"),
    ("--git-user", "--committer-name (with --committer-email); without them each release is committed by the person releasing"),
    ("--git-email", "--committer-email (with --committer-name); without them each release is committed by the person releasing"),
    ("--git-signing-key", "--signing-key FILE: an SSH key (ed25519 or P-256) that signs every commit in git's SSH format"),
    ("--git-gpg-key-import-paths", "OpenPGP signing is not supported: --signing-key takes an SSH key"),
    ("--s3-artifact-storage-bucket-name", "copy the bucket's builds into the config repository once with `release-manager import-s3 --bucket NAME` (docs/migration.md)"),
    ("--broker-type", "events are streamed by WatchEvents (hamctl watch) and sent by --notifications; no broker"),
    ("--memory-queue-size", "writes wait in the writer's queue: --queue-capacity"),
    ("--amqp-host", "no AMQP broker: events are streamed by WatchEvents and sent by --notifications"),
    ("--amqp-port", "no AMQP broker: events are streamed by WatchEvents and sent by --notifications"),
    ("--amqp-user", "no AMQP broker: events are streamed by WatchEvents and sent by --notifications"),
    ("--amqp-password", "no AMQP broker: events are streamed by WatchEvents and sent by --notifications"),
    ("--amqp-virtualhost", "no AMQP broker: events are streamed by WatchEvents and sent by --notifications"),
    ("--amqp-exchange", "no AMQP broker: events are streamed by WatchEvents and sent by --notifications"),
    ("--amqp-queue", "no AMQP broker: events are streamed by WatchEvents and sent by --notifications"),
    ("--amqp-prefetch", "no AMQP broker: events are streamed by WatchEvents and sent by --notifications"),
    ("--amqp-worker-count", "no AMQP broker: events are streamed by WatchEvents and sent by --notifications"),
    ("--amqp-reconnection-timeouts", "no AMQP broker: events are streamed by WatchEvents and sent by --notifications"),
    ("--amqp-connection-timeouts", "no AMQP broker: events are streamed by WatchEvents and sent by --notifications"),
    ("--amqp-init-timeouts", "no AMQP broker: events are streamed by WatchEvents and sent by --notifications"),
    ("--amqp-republish-timeouts", "no AMQP broker: events are streamed by WatchEvents and sent by --notifications"),
    ("--grpc-port", "gRPC listens on --listen"),
];

/// Variables the original's server read that mean nothing here, and what
/// replaces each. Refused when set (and not empty) and a config repository
/// is configured, so that a Deployment carrying them does not run
/// differently than it says; the local demo ignores them.
pub const REFUSED_VARIABLES: &[(&str, &str)] = &[
    ("DAEMON_AUTH_TOKEN", "there is no daemon: Flux and Argo CD report to /webhook/flux and /webhook/argocd, secured by DEPLOYMENT_WEBHOOK_SECRET"),
    ("RELEASE_MANAGER_AUTH_TOKEN", "one token per role: HAMCTL_AUTH_TOKEN and ARTIFACT_AUTH_TOKEN"),
    ("GITHUB_API_TOKEN", "releases are not tagged on GitHub; a CloudEvents webhook (RELEASE_MANAGER_NOTIFICATIONS) can do it"),
    ("SLACK_TOKEN", "Slack messages are sent by RELEASE_MANAGER_NOTIFICATIONS (Slack webhook routes)"),
    ("USER_MAPPINGS", "Slack routes in RELEASE_MANAGER_NOTIFICATIONS name their channels; no user lookup"),
    ("GRAFANA_DEV_API_KEY", "use a CloudEvents webhook in RELEASE_MANAGER_NOTIFICATIONS"),
    ("GRAFANA_DEV_URL", "use a CloudEvents webhook in RELEASE_MANAGER_NOTIFICATIONS"),
    ("GRAFANA_STAGING_API_KEY", "use a CloudEvents webhook in RELEASE_MANAGER_NOTIFICATIONS"),
    ("GRAFANA_STAGING_URL", "use a CloudEvents webhook in RELEASE_MANAGER_NOTIFICATIONS"),
    ("GRAFANA_PROD_API_KEY", "use a CloudEvents webhook in RELEASE_MANAGER_NOTIFICATIONS"),
    ("GRAFANA_PROD_URL", "use a CloudEvents webhook in RELEASE_MANAGER_NOTIFICATIONS"),
];

/// The original's variable naming the config repository, honoured when
/// neither `--config-repo` nor `RELEASE_MANAGER_CONFIG_REPO` is given.
pub const CONFIG_REPO_VARIABLE: &str = "CONFIG_REPO";

/// The command line with `start` put first when it begins with a flag:
/// the original's image ran `server start`, so a Deployment's `args:` are
/// flags alone; this image's command is `release-manager start` and a
/// Deployment's `args:` replace the `start`. `--help` and `--version`
/// stay the program's own.
pub fn with_start(argv: Vec<OsString>) -> Vec<OsString> {
    let first = argv.get(1).and_then(|a| a.to_str()).unwrap_or_default();
    let own = ["-h", "--help", "-V", "--version"].contains(&first);
    if first.starts_with('-') && !own {
        let mut with = argv;
        with.insert(1, OsString::from("start"));
        return with;
    }
    argv
}

/// One line per refused setting of `argv` (flags) and of the environment
/// `env` (variables, only when `configured`: a repository is configured);
/// empty when nothing is refused.
pub fn refusals(
    argv: &[OsString],
    env: &dyn Fn(&str) -> Option<String>,
    configured: bool,
) -> Vec<String> {
    let mut lines = Vec::new();
    for arg in argv.iter().filter_map(|a| a.to_str()) {
        // Everything after `--` is no flag.
        if arg == "--" {
            break;
        }
        let name = arg.split_once('=').map_or(arg, |(name, _)| name);
        if let Some((flag, instead)) = REFUSED_FLAGS.iter().find(|(flag, _)| *flag == name) {
            let line = format!("{flag} (the original release manager's): {instead}");
            if !lines.contains(&line) {
                lines.push(line);
            }
        }
    }
    if configured {
        for (variable, instead) in REFUSED_VARIABLES {
            if env(variable).is_some_and(|v| !v.trim().is_empty()) {
                lines.push(format!(
                    "{variable} (the original release manager's) is set: {instead}; unset it"
                ));
            }
        }
    }
    lines
}

/// Whether the command line or the environment names a config
/// repository in any way (the flag, ours or the original's variable).
pub fn repository_configured(argv: &[OsString], env: &dyn Fn(&str) -> Option<String>) -> bool {
    let flag = argv
        .iter()
        .filter_map(|a| a.to_str())
        .any(|a| a == "--config-repo" || a.starts_with("--config-repo="));
    flag || env("RELEASE_MANAGER_CONFIG_REPO").is_some() || env(CONFIG_REPO_VARIABLE).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(args: &[&str]) -> Vec<OsString> {
        std::iter::once("release-manager")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect()
    }

    #[test]
    fn each_refused_flag_is_named_with_its_replacement() {
        let none = |_: &str| None;
        let lines = refusals(
            &argv(&[
                "start",
                "--timeout",
                "300s",
                "--amqp-user=lunar",
                "--remote-timeout",
                "5s",
            ]),
            &none,
            true,
        );
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].starts_with("--timeout (the original"), "{lines:?}");
        assert!(lines[0].contains("--batch-timeout"), "{lines:?}");
        assert!(lines[1].starts_with("--amqp-user"), "{lines:?}");
        assert!(refusals(&argv(&["start", "--", "--timeout"]), &none, true).is_empty());
        for (flag, instead) in REFUSED_FLAGS {
            assert!(flag.starts_with("--") && !instead.is_empty(), "{flag}");
        }
    }

    #[test]
    fn variables_are_refused_only_for_a_configured_repository() {
        let env = |key: &str| match key {
            "SLACK_TOKEN" => Some("xoxb".to_string()),
            "GRAFANA_DEV_URL" => Some(" ".to_string()),
            _ => None,
        };
        let lines = refusals(&argv(&["start"]), &env, true);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].contains("RELEASE_MANAGER_NOTIFICATIONS"),
            "{lines:?}"
        );
        assert!(refusals(&argv(&["start"]), &env, false).is_empty());
    }

    #[test]
    fn a_deployments_flags_alone_mean_start() {
        let given = argv(&["--config-repo", "git@x:y.git"]);
        assert_eq!(with_start(given)[1], "start");
        for unchanged in [
            &["start", "--listen", "x"][..],
            &["--help"],
            &["import-s3"],
            &[],
        ] {
            assert_eq!(
                with_start(argv(unchanged)),
                argv(unchanged),
                "{unchanged:?}"
            );
        }
    }

    #[test]
    fn any_way_of_naming_a_repository_counts() {
        let none = |_: &str| None;
        assert!(!repository_configured(&argv(&["start"]), &none));
        assert!(repository_configured(
            &argv(&["start", "--config-repo=x"]),
            &none
        ));
        let original = |key: &str| (key == "CONFIG_REPO").then(|| "git@x:y.git".to_string());
        assert!(repository_configured(&argv(&["start"]), &original));
    }
}
