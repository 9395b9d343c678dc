//! The wording of a failed call: a `tonic::Status` as a code word and the
//! server's message, a transport error as its chain of reasons, always
//! free of control characters so that nothing the server sends can drive
//! the terminal.

use tonic::Code;

/// `<code word>: <server message>`, on one line. An `Unauthenticated` status
/// ends with how to pass a token: `--auth-token` or the variable `token_env`.
pub fn describe_status(status: &tonic::Status, token_env: &str) -> String {
    if status.code() == Code::Cancelled && status.message() == "Timeout expired" {
        // The client's own deadline (--request-timeout), not the server's.
        return format!("{CLIENT_TIMEOUT}{CHECK_FIRST}");
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
    if let Some(hint) = wrong_place_hint(status) {
        text.push_str(hint);
    }
    text
}

/// What a status that the server never sent says about where the client
/// dialled: the HTTP port instead of the gRPC one, or plaintext to a TLS
/// port.
fn wrong_place_hint(status: &tonic::Status) -> Option<&'static str> {
    let message = status.message();
    if message.contains("grpc-status header missing") && message.contains("HTTP status code") {
        return Some(
            " (this address answers HTTP but not gRPC: is it the server's HTTP port \
             (dashboard, webhooks, /metrics; 8081 by default)? gRPC is on --listen, \
             8080 by default)",
        );
    }
    // A TLS port answers plaintext HTTP/2 with a TLS alert: the client
    // sees the connection break, or (depending on when the bytes arrive)
    // an HTTP/2 frame it cannot parse.
    let broke = message == "transport error" || message.starts_with("h2 protocol error");
    if matches!(status.code(), Code::Unknown | Code::Internal) && broke {
        return Some(
            " (the connection broke before any answer: is this the server's gRPC port \
             (--listen, 8080 by default; 8081 is its HTTP port)? if the server serves \
             TLS (--tls-cert), use https://)",
        );
    }
    None
}

/// What a failed connect means, when its reason is one a person can fix:
/// the scheme does not match the port, or the certificate is not one TLS
/// accepts for a server.
pub fn connect_hint(reason: &str) -> Option<&'static str> {
    if reason.contains("InvalidContentType") {
        Some(
            "; the server does not speak TLS on this port: use http:// (or start it \
             with --tls-cert and --tls-key)",
        )
    } else if reason.contains("CaUsedAsEndEntity") {
        Some(
            "; the server's certificate is a CA certificate (what `openssl req -x509` \
             makes), which TLS does not accept as a server's: give the server a \
             certificate signed by a small CA of your own and trust that CA with \
             RELEASE_MANAGER_CA_CERT (docs/running.md, TLS)",
        )
    } else if reason.contains("UnknownIssuer") {
        Some(
            "; the server's certificate is signed by a CA this machine does not \
             trust: set RELEASE_MANAGER_CA_CERT to that CA's PEM file",
        )
    } else if reason.contains("NotValidForName") {
        Some(
            "; the server's certificate does not name this host: dial a name or IP \
             address in its subjectAltName",
        )
    } else {
        None
    }
}

/// The client's own deadline passed.
const CLIENT_TIMEOUT: &str = "timed out waiting for the server's answer (--request-timeout)";
/// What a person should know after a call that may have written something.
const CHECK_FIRST: &str = "; a write may still have been applied: check before trying again";

/// A write sent with `request_id` that failed in a way that may still have
/// applied it: the failure, the id, and `retry`, the command that retries
/// it safely (see [`crate::retry_command`]).
pub fn describe_unsure_write(
    status: &tonic::Status,
    token_env: &str,
    what: &str,
    request_id: &str,
    retry: Option<&str>,
) -> String {
    let failure = describe_status(status, token_env);
    let failure = failure.strip_suffix(CHECK_FIRST).unwrap_or(&failure);
    let retry = retry.map_or_else(
        || format!("run the same command with --request-id {request_id}"),
        |command| format!("run: {command}"),
    );
    format!(
        "{failure}; the {what} may have been applied (request id {request_id}): to retry it safely (it lands once), {retry}"
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wrong_port_or_scheme_is_named() {
        let dashboard = tonic::Status::unimplemented(
            "grpc-status header missing, mapped from HTTP status code 404",
        );
        let text = describe_status(&dashboard, "T");
        assert!(text.contains("not gRPC"), "{text}");
        assert!(text.contains("--listen"), "{text}");
        let tls = tonic::Status::unknown("transport error");
        assert!(describe_status(&tls, "T").contains("use https://"));
        // What the TLS alert reads as when it arrives as an HTTP/2 frame.
        let alert = tonic::Status::internal("h2 protocol error: http2 error");
        assert!(describe_status(&alert, "T").contains("use https://"));
        assert!(
            connect_hint("received corrupt message of type InvalidContentType")
                .is_some_and(|h| h.contains("use http://"))
        );
        assert!(
            connect_hint("invalid peer certificate: Other(OtherError(CaUsedAsEndEntity))")
                .is_some_and(|h| h.contains("RELEASE_MANAGER_CA_CERT"))
        );
        assert_eq!(connect_hint("Connection refused"), None);
    }

    #[test]
    fn an_unsure_write_says_how_to_retry_it() {
        let text = describe_unsure_write(
            &tonic::Status::cancelled("Timeout expired"),
            "HAMCTL_AUTH_TOKEN",
            "release",
            "id-1",
            Some("hamctl release --request-id id-1"),
        );
        assert_eq!(
            text,
            "timed out waiting for the server's answer (--request-timeout); the release may have \
             been applied (request id id-1): to retry it safely (it lands once), run: hamctl \
             release --request-id id-1"
        );
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
}
