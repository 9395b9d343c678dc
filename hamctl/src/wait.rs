//! `--wait` of `release`, `promote` and `rollback`: after the commit is on
//! the remote, follow the environment's events until its GitOps controller
//! reports the release deployed (exit 0), failed (exit 1, with the
//! controller's words) or `--timeout` passes (exit 3, saying what is
//! known). On a server that takes no deployment reports it says so at once
//! and exits 4: nothing would ever come. A progress line goes to stderr
//! while it waits.
//!
//! It subscribes before it asks for the state, so a report between the two
//! is not missed, and asks again at every progress line. A stream that
//! fell behind ends with where to resume: it asks for the state and
//! subscribes again from there. A stream the server ends or a connection
//! that breaks (the server restarting) is followed again from the last
//! event seen, retried until `--timeout`. A report on a later release of the service
//! counts for this one too, once status says that release is the current
//! one: a revision that holds a later release holds the earlier ones.

use std::time::{Duration, Instant};

use clap::Args;
use release_manager::pb::watch_events_response::Event;
use release_manager::pb::{
    DeploymentState, ReleaseResult, StatusRequest, StatusResponse, WatchEventsRequest,
};

use crate::error::CliError;
use crate::global::GlobalArgs;
use crate::output::Printer;
use crate::{client, present};

/// How often the waiting line says it is still waiting.
const PROGRESS_EVERY: Duration = Duration::from_secs(15);

/// The flags every write shares.
#[derive(Debug, Clone, Args)]
pub(crate) struct WaitArgs {
    /// After the commit, wait until the environment reports the release
    /// deployed (exit 0), failed (exit 1) or the timeout passes (exit 3);
    /// exit 4 at once when the server takes no deployment reports.
    #[arg(long)]
    pub(crate) wait: bool,

    /// How long --wait waits (`90s`, `10m`, `1h`).
    #[arg(long, default_value = "10m", value_parser = release_manager::duration::parse, requires = "wait")]
    pub(crate) timeout: Duration,
}

/// Waits, when asked to, for `result`'s release to be deployed.
pub(crate) async fn if_asked(
    args: &WaitArgs,
    result: &ReleaseResult,
    global: &GlobalArgs,
    printer: &mut Printer<'_>,
) -> Result<(), CliError> {
    if !args.wait {
        return Ok(());
    }
    let (service, environment) = (result.service.clone(), result.environment.clone());
    let began = Instant::now();
    let deadline = began + args.timeout;
    let mut events = subscribe(global, &service, &environment, String::new()).await?;
    let mut client = client::release_client(global).await?;
    let status = client
        .status(StatusRequest {
            service: service.clone(),
            namespace: String::new(),
        })
        .await?
        .into_inner();
    let current = status
        .environments
        .iter()
        .find(|e| e.environment == environment);
    // A release that changed nothing waits for what already runs.
    let release_commit = match (&result.commit_sha, current) {
        (sha, _) if !sha.is_empty() && !present::is_no_change(result) => sha.clone(),
        (_, Some(current)) => current.release_commit_sha.clone(),
        (sha, None) => sha.clone(),
    };
    let ours = Ours {
        service: &service,
        environment: &environment,
        artifact_id: &result.artifact_id,
        release_commit: &release_commit,
    };
    let mut known = match ours.judge(&status) {
        Judged::Settled(done) => return finish(done, printer),
        Judged::Waiting(known) => known,
    };
    printer.note(&format!(
        "waiting for {environment} to deploy {} of {service} (release {}, up to {})",
        result.artifact_id,
        present::short_sha(&release_commit),
        humanize(args.timeout)
    ))?;
    let mut next_progress = began + PROGRESS_EVERY;
    // The last event seen: where a new subscription resumes.
    let mut cursor = String::new();
    loop {
        if Instant::now() >= deadline {
            return Err(CliError::WaitTimedOut(format!(
                "{environment} did not report {} of {service} deployed within {} ({known}); \
                 is its GitOps controller set to report to the server? (docs/controllers.md: Deployment status)",
                result.artifact_id,
                humanize(args.timeout)
            )));
        }
        let wake = deadline.min(next_progress);
        let message = match tokio::time::timeout_at(wake.into(), events.message()).await {
            Err(_) if Instant::now() >= deadline => continue,
            Err(_) => {
                next_progress += PROGRESS_EVERY;
                // Events may have been missed (a stream that fell behind):
                // the state is asked for again.
                match ours.judge(&ours.status(&mut client).await?) {
                    Judged::Settled(done) => return finish(done, printer),
                    Judged::Waiting(now) => known = now,
                }
                printer.note(&format!(
                    "still waiting for {environment} ({known}, {} so far)",
                    humanize(began.elapsed())
                ))?;
                continue;
            }
            Ok(message) => message,
        };
        let event = match message {
            Ok(Some(event)) => event,
            ended => {
                let lost = match ended {
                    Ok(_) => "the server ended the event stream (it is stopping or restarting)"
                        .to_string(),
                    Err(status) => {
                        let error = CliError::Server(Box::new(status));
                        if !crate::watch::is_transient(&error) {
                            return Err(error);
                        }
                        format!("lost the event stream: {error}")
                    }
                };
                printer.note(&format!(
                    "{lost}; reconnecting (still waiting for {environment})"
                ))?;
                // Follow again from the last event seen, then ask: a
                // report while nobody listened shows in the state.
                (events, client) =
                    reconnect(global, &service, &environment, &cursor, deadline).await?;
                match ours.judge(&ours.status(&mut client).await?) {
                    Judged::Settled(done) => return finish(done, printer),
                    Judged::Waiting(now) => known = now,
                }
                continue;
            }
        };
        if !event.cursor.is_empty() {
            cursor = event.cursor.clone();
        }
        match event.event {
            Some(Event::DeploymentReported(report))
                if report.environment == environment && report.service == service =>
            {
                let Some(deployment) = report.deployment else {
                    continue;
                };
                if report.release_commit_sha != release_commit {
                    // About another release: it counts if it is the current
                    // one, committed after ours.
                    match ours.judge(&ours.status(&mut client).await?) {
                        Judged::Settled(done) => return finish(done, printer),
                        Judged::Waiting(now) => known = now,
                    }
                    continue;
                }
                known = present::deployment_cell(Some(&deployment));
                if let Some(done) = settled(
                    deployment.state,
                    &deployment.message,
                    &result.artifact_id,
                    &environment,
                ) {
                    return finish(done, printer);
                }
                printer.note(&format!("{environment}: {known}"))?;
            }
            Some(Event::Dropped(dropped)) => {
                // The stream ends here: subscribe again from where it
                // stopped, then ask (a report in between comes on the new
                // stream).
                printer.note(&format!(
                    "fell behind the server's events ({} missed); catching up from where the stream stopped",
                    dropped.missed
                ))?;
                events = subscribe(global, &service, &environment, dropped.resume_from).await?;
                match ours.judge(&ours.status(&mut client).await?) {
                    Judged::Settled(done) => return finish(done, printer),
                    Judged::Waiting(now) => known = now,
                }
            }
            Some(Event::ReconciliationError(changed)) if !changed.cleared => {
                if let Some(error) = &changed.error {
                    printer.note(&cli_support::one_line(&present::reconciliation_error_line(
                        error,
                    )))?;
                }
            }
            _ => {}
        }
    }
}

/// Subscribes again after the stream was lost, from `since`, and connects
/// a new client for status: retried, with a growing pause, while the
/// server is unreachable or unavailable (restarting), until `deadline`.
async fn reconnect(
    global: &GlobalArgs,
    service: &str,
    environment: &str,
    since: &str,
    deadline: Instant,
) -> Result<
    (
        tonic::Streaming<release_manager::pb::WatchEventsResponse>,
        cli_support::ReleaseClient,
    ),
    CliError,
> {
    let mut pause = Duration::from_millis(250);
    loop {
        let attempt = async {
            let events = subscribe(global, service, environment, since.to_string()).await?;
            let client = client::release_client(global).await?;
            Ok::<_, CliError>((events, client))
        }
        .await;
        match attempt {
            Ok(connected) => return Ok(connected),
            Err(error)
                if crate::watch::is_transient(&error) && Instant::now() + pause < deadline =>
            {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
            Err(error) => return Err(error),
        }
    }
}

/// Follows the events of `service` in `environment` (after `since`, when
/// given).
async fn subscribe(
    global: &GlobalArgs,
    service: &str,
    environment: &str,
    since: String,
) -> Result<tonic::Streaming<release_manager::pb::WatchEventsResponse>, CliError> {
    let mut watcher = client::streaming_release_client(global).await?;
    Ok(watcher
        .watch_events(WatchEventsRequest {
            service: service.to_string(),
            environment: environment.to_string(),
            since,
        })
        .await?
        .into_inner())
}

/// The release being waited for.
struct Ours<'a> {
    service: &'a str,
    environment: &'a str,
    artifact_id: &'a str,
    release_commit: &'a str,
}

/// What a status answer says of it.
enum Judged {
    Settled(Settled),
    Waiting(String),
}

impl Ours<'_> {
    async fn status(
        &self,
        client: &mut cli_support::ReleaseClient,
    ) -> Result<StatusResponse, CliError> {
        Ok(client
            .status(StatusRequest {
                service: self.service.to_string(),
                namespace: String::new(),
            })
            .await?
            .into_inner())
    }

    /// Settled when the environment's current release is ours, or one
    /// committed after it, and its state is final.
    fn judge(&self, status: &StatusResponse) -> Judged {
        let Some(current) = status
            .environments
            .iter()
            .find(|e| e.environment == self.environment)
        else {
            return Judged::Waiting("no report yet".into());
        };
        let Some(deployment) = current.deployment.as_ref() else {
            return Judged::Waiting("no report yet".into());
        };
        if deployment.state == DeploymentState::NotReported as i32 {
            return Judged::Settled(Settled::NotReported(format!(
                "this server takes no deployment reports, so {} of {} will never be reported \
                 deployed in {}: it has no --deployment-webhook-secret and ReportDeployment \
                 accepts no credential (docs/controllers.md: Deployment status)",
                self.artifact_id, self.service, self.environment
            )));
        }
        let artifact = if current.release_commit_sha == self.release_commit {
            self.artifact_id.to_string()
        } else {
            let later = current
                .artifact
                .as_ref()
                .map_or("?", |a| a.artifact_id.as_str());
            format!("{} (with the later release of {later})", self.artifact_id)
        };
        match settled(
            deployment.state,
            &deployment.message,
            &artifact,
            self.environment,
        ) {
            Some(done) => Judged::Settled(done),
            None => Judged::Waiting(present::deployment_cell(Some(deployment))),
        }
    }
}

/// How a wait ends.
enum Settled {
    Deployed(String),
    Failed(String),
    /// Nothing can be known: the server takes no reports.
    NotReported(String),
}

fn settled(state: i32, message: &str, artifact: &str, environment: &str) -> Option<Settled> {
    match DeploymentState::try_from(state) {
        Ok(DeploymentState::Deployed) => Some(Settled::Deployed(format!(
            "{environment} deployed {artifact}"
        ))),
        Ok(DeploymentState::Failed) => Some(Settled::Failed(if message.is_empty() {
            format!("{environment} failed to deploy {artifact}")
        } else {
            format!(
                "{environment} failed to deploy {artifact}: {}",
                message.trim()
            )
        })),
        _ => None,
    }
}

fn finish(done: Settled, printer: &mut Printer<'_>) -> Result<(), CliError> {
    match done {
        Settled::Deployed(line) => {
            printer.note(&line)?;
            Ok(())
        }
        Settled::Failed(line) => Err(CliError::DeploymentFailed(line)),
        Settled::NotReported(line) => Err(CliError::NoReports(line)),
    }
}

fn humanize(duration: Duration) -> String {
    let seconds = duration.as_secs();
    match seconds {
        0..60 => format!("{seconds} s"),
        60..3600 if seconds.is_multiple_of(60) => format!("{} min", seconds / 60),
        60..3600 => format!("{} min {} s", seconds / 60, seconds % 60),
        _ => format!("{} h {} min", seconds / 3600, seconds % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_read_as_people_write_them() {
        // The forms `--timeout`'s help names, and the bare seconds it
        // always took, in the shared grammar.
        let parse = release_manager::duration::parse;
        assert_eq!(parse("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse("5").unwrap(), Duration::from_secs(5));
        assert!(parse("soon").is_err());
        assert_eq!(humanize(Duration::from_secs(600)), "10 min");
        assert_eq!(humanize(Duration::from_secs(75)), "1 min 15 s");
    }
}
