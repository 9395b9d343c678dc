//! Reading an S3 bucket: `ListObjectsV2` and `GetObject`, signed with AWS
//! Signature Version 4, over the HTTPS client the server already has.
//! Small on purpose (two read-only requests), where an AWS SDK would add
//! minutes of compile time for nothing else used.
//!
//! It owns the signing, the two requests and reading the listing's XML.
//! It must not write to a bucket.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Where the bucket is and how to sign for it.
#[derive(Clone)]
pub(crate) struct Bucket {
    /// The bucket's name.
    pub(crate) name: String,
    /// Its region (it is part of every signature).
    pub(crate) region: String,
    /// An S3-compatible endpoint (MinIO, a test server), addressed
    /// path-style (`<endpoint>/<bucket>/<key>`); `None`: AWS itself,
    /// addressed virtual-host style (`https://<bucket>.s3.<region>.amazonaws.com/<key>`).
    pub(crate) endpoint: Option<String>,
    /// Access key id, secret and (temporary credentials) session token.
    pub(crate) credentials: Credentials,
}

/// AWS credentials.
#[derive(Clone)]
pub(crate) struct Credentials {
    /// `AWS_ACCESS_KEY_ID`.
    pub(crate) access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub(crate) secret_access_key: String,
    /// `AWS_SESSION_TOKEN`, for temporary credentials.
    pub(crate) session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials(<redacted>)")
    }
}

/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Object {
    /// Its key.
    pub(crate) key: String,
    /// When it was written (RFC 3339, as S3 says it).
    pub(crate) last_modified: DateTime<Utc>,
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum S3Error {
    /// The request did not get an answer.
    #[error("cannot reach S3 at {url}: {source}")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// S3 answered with an error.
    #[error("S3 answered {status} to {what}: {body}")]
    Refused {
        what: String,
        status: u16,
        body: String,
    },
    /// The listing could not be read.
    #[error("cannot read the listing of bucket {bucket}: {why}")]
    BadListing { bucket: String, why: String },
}

/// SHA-256 of nothing: the payload of every request here.
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

impl Bucket {
    /// The scheme-and-host part and the path of `key` (empty: the bucket).
    fn location(&self, key: &str) -> (String, String) {
        let key = uri_encode(key, false);
        match &self.endpoint {
            Some(endpoint) => (
                endpoint.trim_end_matches('/').to_string(),
                format!("/{}/{key}", uri_encode(&self.name, true)),
            ),
            None => (
                format!("https://{}.s3.{}.amazonaws.com", self.name, self.region),
                format!("/{key}"),
            ),
        }
    }

    /// A signed GET of `key` with `query` (already sorted or not).
    async fn get(
        &self,
        client: &reqwest::Client,
        key: &str,
        query: &[(&str, &str)],
        what: &str,
    ) -> Result<Vec<u8>, S3Error> {
        let (base, path) = self.location(key);
        let host = base
            .split_once("://")
            .map_or(base.as_str(), |(_, rest)| rest)
            .trim_end_matches('/')
            .to_string();
        let mut query: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| (uri_encode(k, true), uri_encode(v, true)))
            .collect();
        query.sort();
        let query_string = query
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let now = Utc::now();
        let mut headers = vec![
            ("host".to_string(), host),
            ("x-amz-content-sha256".to_string(), EMPTY_SHA256.to_string()),
            (
                "x-amz-date".to_string(),
                now.format("%Y%m%dT%H%M%SZ").to_string(),
            ),
        ];
        if let Some(token) = &self.credentials.session_token {
            headers.push(("x-amz-security-token".to_string(), token.clone()));
        }
        let authorization = authorization(
            "GET",
            &path,
            &query_string,
            &headers,
            EMPTY_SHA256,
            &self.credentials,
            &self.region,
            now,
        );
        let url = if query_string.is_empty() {
            format!("{base}{path}")
        } else {
            format!("{base}{path}?{query_string}")
        };
        let mut request = client.get(&url).header("authorization", authorization);
        for (name, value) in headers.iter().filter(|(n, _)| n != "host") {
            request = request.header(name.as_str(), value.as_str());
        }
        let response = request
            .send()
            .await
            .map_err(|source| S3Error::Unreachable {
                url: url.clone(),
                source,
            })?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|source| S3Error::Unreachable { url, source })?;
        if !status.is_success() {
            return Err(S3Error::Refused {
                what: what.to_string(),
                status: status.as_u16(),
                body: String::from_utf8_lossy(&body).chars().take(500).collect(),
            });
        }
        Ok(body.to_vec())
    }

    /// Every object whose key starts with `prefix`, all pages.
    pub(crate) async fn list(
        &self,
        client: &reqwest::Client,
        prefix: &str,
    ) -> Result<Vec<Object>, S3Error> {
        let mut objects = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut query = vec![("list-type", "2"), ("prefix", prefix)];
            if let Some(token) = &token {
                query.push(("continuation-token", token.as_str()));
            }
            let body = self
                .get(
                    client,
                    "",
                    &query,
                    &format!("a listing of bucket {}", self.name),
                )
                .await?;
            let text = String::from_utf8_lossy(&body);
            let page = read_listing(&text).map_err(|why| S3Error::BadListing {
                bucket: self.name.clone(),
                why,
            })?;
            objects.extend(page.objects);
            match page.next {
                Some(next) => token = Some(next),
                None => return Ok(objects),
            }
        }
    }

    /// The object at `key`.
    pub(crate) async fn object(
        &self,
        client: &reqwest::Client,
        key: &str,
    ) -> Result<Vec<u8>, S3Error> {
        self.get(client, key, &[], &format!("s3://{}/{key}", self.name))
            .await
    }
}

/// The `Authorization` header of a request (AWS Signature Version 4 for
/// S3): `headers` are the signed ones, lower-case names.
#[allow(clippy::too_many_arguments)]
pub(crate) fn authorization(
    method: &str,
    path: &str,
    query: &str,
    headers: &[(String, String)],
    payload_sha256: &str,
    credentials: &Credentials,
    region: &str,
    now: DateTime<Utc>,
) -> String {
    let mut headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    headers.sort();
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed_headers = headers
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical_request = format!(
        "{method}\n{path}\n{query}\n{canonical_headers}\n{signed_headers}\n{payload_sha256}"
    );
    let date = now.format("%Y%m%d").to_string();
    let scope = format!("{date}/{region}/s3/aws4_request");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{}\n{scope}\n{}",
        now.format("%Y%m%dT%H%M%SZ"),
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let key = [date.as_str(), region, "s3", "aws4_request"].iter().fold(
        format!("AWS4{}", credentials.secret_access_key).into_bytes(),
        |key, part| hmac(&key, part.as_bytes()),
    );
    let signature = hex::encode(hmac(&key, string_to_sign.as_bytes()));
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
        credentials.access_key_id
    )
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// URI-encodes as SigV4 wants: unreserved characters as they are, `/` too
/// unless `slash` (query values and the bucket's name encode it).
fn uri_encode(text: &str, slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            b'/' if !slash => out.push('/'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// One page of a `ListObjectsV2` answer.
struct Listing {
    objects: Vec<Object>,
    /// The continuation token of the next page, when truncated.
    next: Option<String>,
}

/// Reads a `ListBucketResult`: each `<Contents>`' `Key` and `LastModified`,
/// and `NextContinuationToken` when `IsTruncated`. The answer's shape is
/// fixed and flat, so reading its elements by name is enough.
fn read_listing(xml: &str) -> Result<Listing, String> {
    if !xml.contains("<ListBucketResult") {
        return Err("not a ListBucketResult".to_string());
    }
    let mut objects = Vec::new();
    for contents in elements(xml, "Contents") {
        let key = element(contents, "Key").ok_or("an object without a Key")?;
        let modified = element(contents, "LastModified").ok_or("an object without LastModified")?;
        let last_modified = DateTime::parse_from_rfc3339(&unescape(modified))
            .map_err(|e| format!("LastModified {modified:?}: {e}"))?
            .with_timezone(&Utc);
        objects.push(Object {
            key: unescape(key),
            last_modified,
        });
    }
    let truncated = element(xml, "IsTruncated").is_some_and(|t| t.trim() == "true");
    let next = if truncated {
        Some(unescape(
            element(xml, "NextContinuationToken")
                .ok_or("truncated without a continuation token")?,
        ))
    } else {
        None
    };
    Ok(Listing { objects, next })
}

/// The text of each `<name>...</name>` in `xml`, in order.
fn elements<'x>(xml: &'x str, name: &str) -> Vec<&'x str> {
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    let mut found = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else { break };
        found.push(&after[..end]);
        rest = &after[end + close.len()..];
    }
    found
}

/// The text of the first `<name>...</name>` in `xml`.
fn element<'x>(xml: &'x str, name: &str) -> Option<&'x str> {
    elements(xml, name).into_iter().next()
}

/// XML's five escapes.
fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example_credentials() -> Credentials {
        // AWS's documented example credentials.
        Credentials {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        }
    }

    fn may_24_2013() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2013-05-24T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn headers(extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut headers = vec![
            (
                "host".to_string(),
                "examplebucket.s3.amazonaws.com".to_string(),
            ),
            ("x-amz-content-sha256".to_string(), EMPTY_SHA256.to_string()),
            ("x-amz-date".to_string(), "20130524T000000Z".to_string()),
        ];
        headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        headers
    }

    /// AWS's worked examples of Signature Version 4 for S3 ("Examples:
    /// Signature Calculations in AWS Signature Version 4").
    #[test]
    fn signatures_match_the_aws_examples() {
        let get_object = authorization(
            "GET",
            "/test.txt",
            "",
            &headers(&[("range", "bytes=0-9")]),
            EMPTY_SHA256,
            &example_credentials(),
            "us-east-1",
            may_24_2013(),
        );
        assert_eq!(
            get_object,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
        let list = authorization(
            "GET",
            "/",
            "max-keys=2&prefix=J",
            &headers(&[]),
            EMPTY_SHA256,
            &example_credentials(),
            "us-east-1",
            may_24_2013(),
        );
        assert!(
            list.ends_with(
                "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
            ),
            "{list}"
        );
    }

    #[test]
    fn keys_and_query_values_are_encoded_as_sigv4_wants() {
        assert_eq!(
            uri_encode("svc/master-1 a+b", false),
            "svc/master-1%20a%2Bb"
        );
        assert_eq!(uri_encode("a/b", true), "a%2Fb");
    }

    #[test]
    fn a_listing_page_and_its_continuation() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix></Prefix><KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>true</IsTruncated><Contents><Key>shop/master-1</Key><LastModified>2020-07-01T10:00:00.000Z</LastModified><ETag>&quot;x&quot;</ETag><Size>10</Size></Contents><Contents><Key>a&amp;b/c</Key><LastModified>2021-01-02T03:04:05Z</LastModified></Contents><NextContinuationToken>tok/en=</NextContinuationToken></ListBucketResult>"#;
        let page = read_listing(xml).unwrap();
        assert_eq!(page.objects.len(), 2);
        assert_eq!(page.objects[0].key, "shop/master-1");
        assert_eq!(page.objects[1].key, "a&b/c");
        assert_eq!(page.next.as_deref(), Some("tok/en="));
        assert!(read_listing("<Error><Code>AccessDenied</Code></Error>").is_err());
    }
}
