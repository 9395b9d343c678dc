//! The accepted forms of the server address (`host:port`, `http://...`,
//! `https://...`), normalised into the URL the channel dials, so that a typo
//! is a usage error rather than a failed connect.

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
