//! What the two CLIs (`hamctl` and `artifact`) share: the accepted forms of
//! the server address, dialling the server with the bearer token attached to
//! every call, the one-line wording of a failed call (`tonic::Status` and
//! transport errors), and the exit-code contract (clap's help, version and
//! usage errors; a closed stdout; the final `error: ...` line).
//!
//! It owns only the parts that read the same in both programs; where they
//! differ (the environment variable that holds the token, colour) the caller
//! says. It must not parse a command line, build requests or interpret
//! responses: each CLI does that itself.
//!
//! It is a crate of its own, not part of the API crate, so that a Rust
//! client of the API does not pull in clap.

use std::fmt::Display;
use std::io::Write;
use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Channel, Endpoint};
use tonic::Code;

use release_manager::pb::policy_service_client::PolicyServiceClient;
use release_manager::pb::release_service_client::ReleaseServiceClient;

/// Exit code of a successful run (also `--help`, `--version` and a stdout
/// closed early).
pub const EXIT_SUCCESS: i32 = 0;
/// Exit code when the operation failed.
pub const EXIT_FAILURE: i32 = 1;
/// Exit code of a usage error (unknown flag, missing argument, ...).
pub const EXIT_USAGE: i32 = 2;

/// How long to wait for the TCP (and HTTP/2) connection before giving up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The release service client, with the token interceptor.
pub type ReleaseClient = ReleaseServiceClient<InterceptedService<Channel, AuthInterceptor>>;

/// The policy service client, with the token interceptor.
pub type PolicyClient = PolicyServiceClient<InterceptedService<Channel, AuthInterceptor>>;

/// Why the server could not be dialled.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The channel to the server could not be opened.
    #[error("cannot reach server at {url}: {reason}")]
    Unreachable { url: String, reason: String },

    /// The auth token cannot be sent as a header value.
    #[error("invalid auth token: {0}")]
    InvalidToken(&'static str),
}

/// Adds `authorization: Bearer <token>` to every call; adds nothing when no
/// token was given.
#[derive(Debug, Clone)]
pub struct AuthInterceptor {
    header: Option<MetadataValue<Ascii>>,
    /// Sent as `grpc-timeout`, so the server drops a write it could not
    /// apply before the caller stopped waiting.
    timeout: Option<Duration>,
}

impl AuthInterceptor {
    /// Validates the token once, before any call, so a bad one fails early
    /// and without echoing the secret.
    pub fn new(token: &str) -> Result<Self, ConnectError> {
        // Tokens read from files often carry a trailing newline.
        let token = token.trim();
        if token.is_empty() {
            return Ok(AuthInterceptor {
                header: None,
                timeout: None,
            });
        }
        let mut value: MetadataValue<Ascii> = format!("Bearer {token}")
            .parse()
            .map_err(|_| ConnectError::InvalidToken("it must be printable ASCII"))?;
        value.set_sensitive(true);
        Ok(AuthInterceptor {
            header: Some(value),
            timeout: None,
        })
    }
}

impl Interceptor for AuthInterceptor {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.header {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        if let Some(timeout) = self.timeout {
            request.set_timeout(timeout);
        }
        Ok(request)
    }
}

/// Names a PEM file of extra certificate authorities to trust for `https://`
/// servers (a private CA or a self-signed server certificate), besides the
/// system's.
pub const CA_CERT_ENV: &str = "RELEASE_MANAGER_CA_CERT";

/// TLS settings for `https://` servers: the system's roots, plus the CA file
/// named by [`CA_CERT_ENV`].
fn client_tls() -> Result<tonic::transport::ClientTlsConfig, String> {
    let mut tls = tonic::transport::ClientTlsConfig::new().with_native_roots();
    if let Some(path) = std::env::var_os(CA_CERT_ENV) {
        let pem = std::fs::read(&path).map_err(|e| {
            format!(
                "cannot read {CA_CERT_ENV} file {}: {e}",
                std::path::Path::new(&path).display()
            )
        })?;
        tls = tls.ca_certificate(tonic::transport::Certificate::from_pem(pem));
    }
    Ok(tls)
}

/// Dials `url` (as [`parse_server_url`] returns it); the interceptor attaches
/// `token` (empty: none) to every call. With a `timeout`, every call gives
/// up after it (client side) and tells the server its deadline; without
/// one (streams that run until stopped) only the connect is bounded.
pub async fn connect(
    url: &str,
    token: &str,
    timeout: Option<Duration>,
) -> Result<(Channel, AuthInterceptor), ConnectError> {
    let mut interceptor = AuthInterceptor::new(token)?;
    interceptor.timeout = timeout;
    let unreachable = |reason: String| ConnectError::Unreachable {
        url: url.to_owned(),
        reason,
    };
    let mut endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|error| unreachable(error_chain(&error)))?
        .connect_timeout(timeout.map_or(CONNECT_TIMEOUT, |t| t.min(CONNECT_TIMEOUT)));
    if let Some(timeout) = timeout {
        endpoint = endpoint.timeout(timeout);
    }
    if url.starts_with("https://") {
        endpoint = endpoint
            .tls_config(client_tls().map_err(unreachable)?)
            .map_err(|error| unreachable(error_chain(&error)))?;
    }
    let channel = endpoint
        .connect()
        .await
        .map_err(|error| unreachable(error_chain(&error)))?;
    Ok((channel, interceptor))
}

/// A connected [`ReleaseClient`]; see [`connect`].
pub async fn release_client(
    url: &str,
    token: &str,
    timeout: Option<Duration>,
) -> Result<ReleaseClient, ConnectError> {
    let (channel, interceptor) = connect(url, token, timeout).await?;
    Ok(ReleaseServiceClient::with_interceptor(channel, interceptor))
}

/// A connected [`PolicyClient`]; see [`connect`].
pub async fn policy_client(
    url: &str,
    token: &str,
    timeout: Option<Duration>,
) -> Result<PolicyClient, ConnectError> {
    let (channel, interceptor) = connect(url, token, timeout).await?;
    Ok(PolicyServiceClient::with_interceptor(channel, interceptor))
}

/// Normalises a server address into the URL the gRPC channel dials.
///
/// `host:port` gets `http://` in front; `http://` and `https://` URLs are
/// kept (minus trailing slashes); any other scheme, or a URL with a path,
/// is rejected so that a typo fails at once instead of at connect time.
pub fn parse_server_url(raw: &str) -> Result<String, String> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err("the server address is empty".to_owned());
    }
    let url = match trimmed.split_once("://") {
        Some((scheme, rest)) => {
            let scheme = scheme.to_ascii_lowercase();
            if scheme != "http" && scheme != "https" {
                return Err(format!(
                    "unsupported scheme `{scheme}://`: use http://host:port, https://host:port or host:port"
                ));
            }
            format!("{scheme}://{}", rest.trim_end_matches('/'))
        }
        None => format!("http://{}", trimmed.trim_end_matches('/')),
    };
    let uri: tonic::transport::Uri = url
        .parse()
        .map_err(|error| format!("`{raw}` is not a valid server address: {error}"))?;
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("`{raw}` names no host"));
    }
    let authority = uri.authority().map_or("", |authority| authority.as_str());
    if authority.contains('@') {
        return Err(format!(
            "`{raw}` carries credentials; pass the token with --auth-token instead"
        ));
    }
    let after_host = authority
        .rsplit_once(']')
        .map_or(authority, |(_, rest)| rest);
    if let Some((_, port)) = after_host.rsplit_once(':') {
        if port.parse::<u16>().is_err() {
            return Err(format!("`{raw}` has an invalid port `{port}`"));
        }
    }
    if (uri.path() != "/" && !uri.path().is_empty()) || uri.query().is_some() {
        return Err(format!(
            "`{raw}` has a path; give only the scheme, host and port"
        ));
    }
    Ok(url)
}

/// `<code word>: <server message>`, on one line. An `Unauthenticated` status
/// ends with how to pass a token: `--auth-token` or the variable `token_env`.
pub fn describe_status(status: &tonic::Status, token_env: &str) -> String {
    if status.code() == Code::Cancelled && status.message() == "Timeout expired" {
        // The client's own deadline (--request-timeout), not the server's.
        return "timed out waiting for the server's answer (--request-timeout); \
                a write may still have been applied: check before trying again"
            .to_owned();
    }
    let word = code_word(status.code());
    let message = keep_lines(status.message());
    let mut text = if message.is_empty() {
        word.to_owned()
    } else if message.to_lowercase().starts_with(word) {
        // The server already said it; don't stutter ("not found: not found: ...").
        message
    } else {
        format!("{word}: {message}")
    };
    if status.code() == Code::Unauthenticated {
        text.push_str(&format!(" (pass --auth-token or set {token_env})"));
    }
    text
}

/// A short word for each status code; the server's message carries the detail.
fn code_word(code: Code) -> &'static str {
    match code {
        Code::Ok => "unexpected success status",
        Code::Cancelled => "cancelled",
        Code::Unknown => "server error",
        Code::InvalidArgument => "invalid argument",
        Code::DeadlineExceeded => "timed out",
        Code::NotFound => "not found",
        Code::AlreadyExists => "already exists",
        Code::PermissionDenied => "permission denied",
        Code::ResourceExhausted => "server busy",
        Code::FailedPrecondition => "refused",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out of range",
        Code::Unimplemented => "not supported by the server",
        Code::Internal => "server error",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "server error",
        Code::Unauthenticated => "unauthenticated",
    }
}

/// Like [`one_line`], but a message of several lines (a regex error whose
/// caret points into the pattern above it) keeps its lines, each after the
/// first indented by two spaces, so that the columns still line up.
pub fn keep_lines(text: &str) -> String {
    let lines: Vec<String> = text
        .trim()
        .lines()
        .map(|line| {
            line.chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect::<String>()
                .trim_end()
                .to_owned()
        })
        .collect();
    lines.join("\n  ")
}

/// Replaces control characters (newlines, escape sequences) so that a
/// message stays one line and cannot drive the terminal.
pub fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}

/// The reason inside an error: its source chain, without the generic outer
/// layers ("transport error") and without repeats.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(current) = next {
        let text = one_line(&current.to_string());
        let generic = text == "transport error" || text.is_empty();
        if !generic && !parts.iter().any(|seen| seen.contains(&text)) {
            parts.push(text);
        }
        next = current.source();
    }
    if parts.is_empty() {
        one_line(&error.to_string())
    } else {
        parts.join(": ")
    }
}

/// Where ANSI styling may be written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Colour {
    /// On stdout.
    pub out: bool,
    /// On stderr.
    pub err: bool,
}

/// Prints clap's own message: help and version on stdout (exit 0), usage
/// errors on stderr (exit 2). Styled where `colour` allows it on that stream.
pub fn report_clap_error<'a>(
    clap_error: &clap::Error,
    out: &'a mut (dyn Write + Send),
    err: &'a mut (dyn Write + Send),
    colour: Colour,
) -> i32 {
    let rendered = clap_error.render();
    // clap sends help and version to stdout and everything else to stderr.
    let (stream, colour, code) = if clap_error.use_stderr() {
        (err, colour.err, EXIT_USAGE)
    } else {
        (out, colour.out, EXIT_SUCCESS)
    };
    let text = if colour {
        rendered.ansi().to_string()
    } else {
        rendered.to_string()
    };
    // Nothing sensible is left to do when that stream is closed.
    let _ = stream
        .write_all(text.as_bytes())
        .and_then(|()| stream.flush());
    code
}

/// The exit code of a command's `outcome`, printing a failure as one
/// `error: ...` line on `err`. A failure for which `broken_pipe` holds (its
/// output could not be written because the reader went away, e.g. `| head`)
/// is a normal end: the work is done, only its report was not read to the end.
pub fn report_outcome<E: Display>(
    outcome: Result<(), E>,
    broken_pipe: impl FnOnce(&E) -> bool,
    err: &mut (dyn Write + Send),
) -> i32 {
    match outcome {
        Ok(()) => EXIT_SUCCESS,
        Err(error) if broken_pipe(&error) => EXIT_SUCCESS,
        Err(error) => {
            // Nothing sensible is left to do when stderr itself is gone.
            let _ = writeln!(err, "error: {error}");
            EXIT_FAILURE
        }
    }
}

/// Whether `error` says the reader of the output went away.
pub fn is_broken_pipe(error: &std::io::Error) -> bool {
    error.kind() == std::io::ErrorKind::BrokenPipe
}

/// Default of `--request-timeout`: how long a CLI waits for one call.
pub const DEFAULT_REQUEST_TIMEOUT: &str = "60s";

/// Parses `--request-timeout` (`30s`, `2m`, `500ms`); `0` (zero) means no
/// limit, see [`time_limit`].
pub fn parse_request_timeout(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (digits, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text, ""), |at| text.split_at(at));
    let amount: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 30s, 2m or 500ms (0: no limit)"))?;
    let duration = match unit {
        "ms" => Duration::from_millis(amount),
        "s" | "" => Duration::from_secs(amount),
        "m" => Duration::from_secs(amount.saturating_mul(60)),
        "h" => Duration::from_secs(amount.saturating_mul(3600)),
        _ => {
            return Err(format!(
                "{text:?} is not a duration like 30s, 2m or 500ms (0: no limit)"
            ))
        }
    };
    Ok(duration)
}

/// A `--request-timeout` as a limit: zero means none.
pub fn time_limit(timeout: Duration) -> Option<Duration> {
    (!timeout.is_zero()).then_some(timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_timeouts_parse() {
        assert_eq!(parse_request_timeout("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_request_timeout("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(
            parse_request_timeout("500ms"),
            Ok(Duration::from_millis(500))
        );
        assert_eq!(parse_request_timeout("0").map(time_limit), Ok(None));
        assert!(parse_request_timeout("soon").is_err());
        assert!(parse_request_timeout("5 minutes").is_err());
    }

    #[test]
    fn a_client_side_timeout_says_what_to_do() {
        let text = describe(tonic::Status::cancelled("Timeout expired"));
        assert!(
            text.starts_with("timed out waiting for the server's answer"),
            "{text}"
        );
        assert!(text.contains("--request-timeout"), "{text}");
    }

    #[test]
    fn a_regex_error_keeps_its_caret_under_the_pattern() {
        let error = regex_error("^(master");
        let status = tonic::Status::invalid_argument(format!("invalid branch regex: {error}"));
        let text = describe_status(&status, "HAMCTL_AUTH_TOKEN");
        let lines: Vec<&str> = text.lines().collect();
        let pattern = lines
            .iter()
            .position(|line| line.trim() == "^(master")
            .unwrap_or_else(|| panic!("the pattern on its own line: {text}"));
        let caret = lines[pattern + 1];
        assert_eq!(caret.trim(), "^", "{text}");
        // The caret stands under the open parenthesis, as the regex crate
        // placed it.
        let column = |line: &str, what: char| line.find(what).expect("present");
        assert_eq!(column(caret, '^'), column(lines[pattern], '('), "{text}");
        assert!(!text.contains('\x1b'));
    }

    fn regex_error(pattern: &str) -> String {
        // The regex crate's own message, as the server sends it.
        format!("regex parse error:\n    {pattern}\n     ^\nerror: unclosed group")
    }

    #[test]
    fn control_characters_never_reach_the_terminal() {
        assert_eq!(keep_lines("a\x1b[31mb\r\nc"), "a [31mb\n  c");
    }

    fn authorization(interceptor: &mut AuthInterceptor) -> Option<String> {
        let request = interceptor
            .call(tonic::Request::new(()))
            .expect("interceptor never fails");
        request
            .metadata()
            .get("authorization")
            .map(|value| value.to_str().expect("ascii").to_owned())
    }

    #[test]
    fn token_is_sent_as_bearer() {
        let mut interceptor = AuthInterceptor::new("s3cret\n").expect("valid");
        assert_eq!(
            authorization(&mut interceptor).as_deref(),
            Some("Bearer s3cret")
        );
    }

    #[test]
    fn empty_token_sends_no_header() {
        let mut interceptor = AuthInterceptor::new("  ").expect("valid");
        assert_eq!(authorization(&mut interceptor), None);
    }

    #[test]
    fn unprintable_token_is_rejected_without_echoing_it() {
        let error = AuthInterceptor::new("abc\u{7}def").expect_err("rejected");
        assert!(!error.to_string().contains("abc"), "{error}");
    }

    #[test]
    fn server_url_normalisation() {
        let ok = |raw: &str| parse_server_url(raw).expect(raw);
        assert_eq!(ok("127.0.0.1:8080"), "http://127.0.0.1:8080");
        assert_eq!(ok("localhost:9000"), "http://localhost:9000");
        assert_eq!(ok("  rm.internal:80/ "), "http://rm.internal:80");
        assert_eq!(ok("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
        assert_eq!(ok("http://127.0.0.1:8080/"), "http://127.0.0.1:8080");
        assert_eq!(ok("https://rm.example.com"), "https://rm.example.com");
        assert_eq!(ok("HTTP://rm.example.com:1"), "http://rm.example.com:1");
        assert_eq!(ok("[::1]:8080"), "http://[::1]:8080");
    }

    #[test]
    fn server_url_rejections() {
        for raw in [
            "",
            "   ",
            "grpc://host:1",
            "http://",
            "http://host:1/api",
            "host:notaport",
            "host:70000",
            "user@host:1",
            "host:1?x=y",
        ] {
            assert!(parse_server_url(raw).is_err(), "accepted {raw:?}");
        }
    }

    /// How both CLIs word a status (the variable is a parameter).
    fn describe(status: tonic::Status) -> String {
        describe_status(&status, "HAMCTL_AUTH_TOKEN")
    }

    #[test]
    fn status_gets_a_code_word() {
        assert_eq!(
            describe(tonic::Status::not_found(
                r#"no build of branch "x" for service "y""#,
            )),
            r#"not found: no build of branch "x" for service "y""#
        );
        assert_eq!(
            describe(tonic::Status::invalid_argument(
                "artifact.json: service is missing",
            )),
            "invalid argument: artifact.json: service is missing"
        );
    }

    #[test]
    fn status_message_is_not_prefixed_twice() {
        let text = describe(tonic::Status::not_found("not found: service y"));
        assert_eq!(text, "not found: service y");
    }

    #[test]
    fn empty_status_message_is_just_the_word() {
        let text = describe(tonic::Status::resource_exhausted(""));
        assert_eq!(text, "server busy");
    }

    #[test]
    fn unauthenticated_names_the_given_variable() {
        let status = tonic::Status::unauthenticated("missing token");
        assert_eq!(
            describe_status(&status, "ARTIFACT_AUTH_TOKEN"),
            "unauthenticated: missing token (pass --auth-token or set ARTIFACT_AUTH_TOKEN)"
        );
        assert_eq!(
            describe_status(&status, "HAMCTL_AUTH_TOKEN"),
            "unauthenticated: missing token (pass --auth-token or set HAMCTL_AUTH_TOKEN)"
        );
    }

    #[test]
    fn multi_line_messages_keep_their_lines_indented() {
        let text = describe(tonic::Status::invalid_argument(
            "unknown environment \"qa\"\nknown: dev, staging, prod\x1b[31m",
        ));
        assert_eq!(
            text,
            "invalid argument: unknown environment \"qa\"\n  known: dev, staging, prod [31m"
        );
        let text = describe(tonic::Status::invalid_argument("one line\r\n"));
        assert_eq!(text, "invalid argument: one line");
    }

    #[test]
    fn error_chain_skips_generic_and_repeated_layers() {
        #[derive(Debug)]
        struct Layer(&'static str, Option<Box<Layer>>);
        impl std::fmt::Display for Layer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.0)
            }
        }
        impl std::error::Error for Layer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                self.1.as_deref().map(|l| l as _)
            }
        }
        let error = Layer(
            "transport error",
            Some(Box::new(Layer(
                "tcp connect error",
                Some(Box::new(Layer("Connection refused (os error 111)", None))),
            ))),
        );
        assert_eq!(
            error_chain(&error),
            "tcp connect error: Connection refused (os error 111)"
        );
    }

    #[test]
    fn outcome_exit_codes() {
        let mut err = Vec::new();
        assert_eq!(report_outcome(Ok::<(), String>(()), |_| false, &mut err), 0);
        assert_eq!(
            report_outcome(Err("closed".to_owned()), |_| true, &mut err),
            0
        );
        assert!(err.is_empty());
        assert_eq!(
            report_outcome(Err("boom".to_owned()), |_| false, &mut err),
            1
        );
        assert_eq!(String::from_utf8(err).expect("utf-8"), "error: boom\n");
    }
}
