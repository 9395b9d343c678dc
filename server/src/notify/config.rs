//! The notifications file (`--notifications FILE`, YAML or JSON): where
//! events go, which ones, and how long delivery keeps trying.
//!
//! ```yaml
//! slack:
//!   - name: prod-releases                 # names the delivery cursor; default slack-1, slack-2, ...
//!     webhook_url_env: SLACK_PROD_WEBHOOK  # or webhook_url: https://hooks.slack.com/services/...
//!     environments: [prod]                 # default: every environment
//!     services: ["shop-*"]                 # default: every service
//!     events: [release, rollback, auto_release, deployment_failed]   # the default; also build, deployed
//! webhooks:
//!   - url: https://hooks.example.com/release-manager
//!     secret_env: RELEASE_WEBHOOK_SECRET   # HMAC-SHA256 of the body in X-Signature
//! delivery:
//!   give_up_after: 24h
//!   first_retry: 1s
//!   longest_retry: 5m
//! ```

use std::time::Duration;

use serde::Deserialize;

/// What can be notified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Kind {
    /// A release or promotion someone asked for.
    Release,
    /// A rollback.
    Rollback,
    /// A release made by an auto-release policy.
    AutoRelease,
    /// A build was added.
    Build,
    /// The cluster reported a release deployed.
    Deployed,
    /// The cluster reported a release failed.
    DeploymentFailed,
}

impl Kind {
    /// The word used in files, ids and CloudEvents types.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Release => "release",
            Kind::Rollback => "rollback",
            Kind::AutoRelease => "auto_release",
            Kind::Build => "build",
            Kind::Deployed => "deployed",
            Kind::DeploymentFailed => "deployment_failed",
        }
    }

    /// Every kind.
    pub(crate) const ALL: [Kind; 6] = [
        Kind::Release,
        Kind::Rollback,
        Kind::AutoRelease,
        Kind::Build,
        Kind::Deployed,
        Kind::DeploymentFailed,
    ];
}

/// Which events a destination gets.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Route {
    /// Environments; empty means all. Builds belong to none and pass.
    #[serde(default)]
    pub(crate) environments: Vec<String>,
    /// Service name patterns (`*` matches any run of characters); empty
    /// means all.
    #[serde(default)]
    pub(crate) services: Vec<String>,
    /// Kinds; absent means the destination's default.
    #[serde(default)]
    pub(crate) events: Option<Vec<Kind>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SlackFile {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    webhook_url: Option<String>,
    #[serde(default)]
    webhook_url_env: Option<String>,
    #[serde(flatten)]
    route: Route,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookFile {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    url_env: Option<String>,
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    secret_env: Option<String>,
    #[serde(flatten)]
    route: Route,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliveryFile {
    #[serde(default)]
    give_up_after: Option<String>,
    #[serde(default)]
    first_retry: Option<String>,
    #[serde(default)]
    longest_retry: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    slack: Vec<SlackFile>,
    #[serde(default)]
    webhooks: Vec<WebhookFile>,
    #[serde(default)]
    delivery: DeliveryFile,
}

/// How a destination is spoken to.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Format {
    /// A Slack incoming webhook.
    Slack,
    /// CloudEvents 1.0, structured mode, signed when a secret is set.
    CloudEvents {
        /// HMAC-SHA256 key of the `X-Signature` header.
        secret: Option<String>,
    },
}

/// One destination.
#[derive(Debug, Clone)]
pub(crate) struct Destination {
    /// Its name (the delivery cursor's file name).
    pub(crate) name: String,
    /// Where to POST.
    pub(crate) url: String,
    /// How.
    pub(crate) format: Format,
    /// Which events.
    pub(crate) route: Route,
    /// The kinds it gets.
    pub(crate) kinds: Vec<Kind>,
}

impl Destination {
    /// Whether `kind` of `service` in `environment` (none for builds) goes
    /// here.
    pub(crate) fn wants(&self, kind: Kind, service: &str, environment: Option<&str>) -> bool {
        self.kinds.contains(&kind)
            && (self.route.services.is_empty()
                || self.route.services.iter().any(|p| glob(p, service)))
            && match environment {
                Some(environment) => {
                    self.route.environments.is_empty()
                        || self.route.environments.iter().any(|e| e == environment)
                }
                None => true,
            }
    }
}

/// Retry and give-up bounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Delivery {
    /// An event older than this is given up (logged, counted).
    pub(crate) give_up_after: Duration,
    /// The first wait after a failed attempt.
    pub(crate) first_retry: Duration,
    /// The longest wait between attempts.
    pub(crate) longest_retry: Duration,
}

impl Default for Delivery {
    fn default() -> Self {
        Delivery {
            give_up_after: Duration::from_secs(24 * 3600),
            first_retry: Duration::from_secs(1),
            longest_retry: Duration::from_secs(300),
        }
    }
}

/// The whole file.
#[derive(Debug, Clone)]
pub struct Notifications {
    /// Destinations, in file order.
    pub(crate) destinations: Vec<Destination>,
    /// Retry bounds.
    pub(crate) delivery: Delivery,
}

/// Slack's default kinds: what people act on.
const SLACK_DEFAULT: [Kind; 4] = [
    Kind::Release,
    Kind::Rollback,
    Kind::AutoRelease,
    Kind::DeploymentFailed,
];

/// The largest notifications file read.
const MAX_FILE_BYTES: usize = 1 << 20;
/// The deepest nesting of `[` and `{` a notifications file may have; the
/// file's own shape needs a handful.
const MAX_NESTING: usize = 32;

/// Refuses, before the YAML parser sees it, a file too large or nested too
/// deep: the parser takes time that grows faster than the nesting (a file
/// of 100,000 `[` took 36 s), and a mistake should be said at once.
fn check_shape(text: &str) -> Result<(), String> {
    if text.len() > MAX_FILE_BYTES {
        return Err(format!(
            "the file is {} bytes; at most {MAX_FILE_BYTES} allowed",
            text.len()
        ));
    }
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut quote: Option<char> = None;
    let mut comment = false;
    let mut escaped = false;
    let mut previous = '\n';
    for c in text.chars() {
        match (quote, c) {
            _ if comment => comment = c != '\n',
            _ if escaped => escaped = false,
            (Some('"'), '\\') => escaped = true,
            (Some(open), _) if c == open => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '#') if previous.is_whitespace() => comment = true,
            (None, '[' | '{') => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            (None, ']' | '}') => depth = depth.saturating_sub(1),
            _ => {}
        }
        if deepest > MAX_NESTING {
            return Err(format!(
                "nested deeper than {MAX_NESTING} levels of [ and {{; the file needs a handful"
            ));
        }
        previous = c;
    }
    Ok(())
}

impl Notifications {
    /// Reads the file at `path`; an error names the file and the problem.
    pub fn load(path: &std::path::Path) -> Result<Notifications, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::parse(&text, |name| std::env::var(name).ok())
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses the file's text, looking `*_env` names up with `env`.
    pub fn parse(
        text: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Notifications, String> {
        check_shape(text)?;
        let file: File = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
        let from = |direct: &Option<String>,
                    variable: &Option<String>,
                    what: &str,
                    entry: &str|
         -> Result<Option<String>, String> {
            match (direct, variable) {
                (Some(_), Some(_)) => Err(format!("{entry}: give {what} or {what}_env, not both")),
                (Some(value), None) => Ok(Some(value.clone())),
                (None, Some(name)) => {
                    env(name)
                        .filter(|v| !v.is_empty())
                        .map(Some)
                        .ok_or_else(|| {
                            format!(
                                "{entry}: the environment variable {name} ({what}_env) is not set"
                            )
                        })
                }
                (None, None) => Ok(None),
            }
        };
        let mut destinations = Vec::new();
        for (i, slack) in file.slack.iter().enumerate() {
            let name = slack
                .name
                .clone()
                .unwrap_or_else(|| format!("slack-{}", i + 1));
            let url = from(
                &slack.webhook_url,
                &slack.webhook_url_env,
                "webhook_url",
                &name,
            )?
            .ok_or_else(|| format!("{name}: webhook_url (or webhook_url_env) is required"))?;
            destinations.push(Destination {
                kinds: slack
                    .route
                    .events
                    .clone()
                    .unwrap_or_else(|| SLACK_DEFAULT.to_vec()),
                name,
                url,
                format: Format::Slack,
                route: slack.route.clone(),
            });
        }
        for (i, hook) in file.webhooks.iter().enumerate() {
            let name = hook
                .name
                .clone()
                .unwrap_or_else(|| format!("webhook-{}", i + 1));
            let url = from(&hook.url, &hook.url_env, "url", &name)?
                .ok_or_else(|| format!("{name}: url (or url_env) is required"))?;
            let secret = from(&hook.secret, &hook.secret_env, "secret", &name)?;
            destinations.push(Destination {
                kinds: hook
                    .route
                    .events
                    .clone()
                    .unwrap_or_else(|| Kind::ALL.to_vec()),
                name,
                url,
                format: Format::CloudEvents { secret },
                route: hook.route.clone(),
            });
        }
        let mut names = std::collections::HashSet::new();
        for destination in &destinations {
            if !names.insert(destination.name.clone()) {
                return Err(format!("two destinations are named {:?}", destination.name));
            }
            if destination.name.is_empty()
                || !destination
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(format!(
                    "destination name {:?}: letters, digits, - and _ only",
                    destination.name
                ));
            }
            if !(destination.url.starts_with("https://") || destination.url.starts_with("http://"))
            {
                return Err(format!(
                    "{}: {:?} is not an http(s) URL",
                    destination.name, destination.url
                ));
            }
        }
        let duration =
            |text: &Option<String>, default: Duration, what: &str| -> Result<Duration, String> {
                match text {
                    None => Ok(default),
                    Some(text) => crate::domain::duration::parse(text)
                        .map_err(|e| format!("delivery.{what}: {e}")),
                }
            };
        let defaults = Delivery::default();
        let delivery = Delivery {
            give_up_after: duration(
                &file.delivery.give_up_after,
                defaults.give_up_after,
                "give_up_after",
            )?,
            first_retry: duration(
                &file.delivery.first_retry,
                defaults.first_retry,
                "first_retry",
            )?,
            longest_retry: duration(
                &file.delivery.longest_retry,
                defaults.longest_retry,
                "longest_retry",
            )?,
        };
        if delivery.first_retry.is_zero() || delivery.longest_retry < delivery.first_retry {
            return Err(
                "delivery: first_retry must be above zero and at most longest_retry".into(),
            );
        }
        if delivery.longest_retry > Duration::from_secs(3600) {
            return Err("delivery.longest_retry: at most 1h".into());
        }
        Ok(Notifications {
            destinations,
            delivery,
        })
    }
}

/// Whether `name` matches `pattern`, where `*` matches any run of
/// characters.
fn glob(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(glob("shop-*", "shop-api"));
        assert!(glob("*", "anything"));
        assert!(glob("*-api", "shop-api"));
        assert!(glob("a*b*c", "axxbyyc"));
        assert!(!glob("a*b*c", "axxcyyb"));
        assert!(!glob("shop-*", "cart"));
        assert!(glob("cart", "cart") && !glob("cart", "carts"));
    }

    #[test]
    fn a_file_with_defaults_and_routes() {
        let text = r#"
slack:
  - webhook_url_env: SLACK_URL
    environments: [prod]
    services: ["shop-*"]
webhooks:
  - name: audit
    url: http://127.0.0.1:9/hook
    secret: s3cret
    events: [release, build]
delivery:
  first_retry: 100ms
  longest_retry: 2s
"#;
        let parsed = Notifications::parse(text, |name| {
            (name == "SLACK_URL").then(|| "https://hooks.slack.com/x".into())
        })
        .unwrap();
        let [slack, audit] = &parsed.destinations[..] else {
            panic!("two destinations")
        };
        assert_eq!(slack.name, "slack-1");
        assert_eq!(slack.url, "https://hooks.slack.com/x");
        assert!(slack.wants(Kind::Release, "shop-api", Some("prod")));
        assert!(!slack.wants(Kind::Release, "shop-api", Some("dev")));
        assert!(!slack.wants(Kind::Release, "cart", Some("prod")));
        assert!(
            !slack.wants(Kind::Build, "shop-api", None),
            "builds are opt-in on Slack"
        );
        assert!(slack.wants(Kind::DeploymentFailed, "shop-api", Some("prod")));
        assert_eq!(
            audit.format,
            Format::CloudEvents {
                secret: Some("s3cret".into())
            }
        );
        assert!(audit.wants(Kind::Build, "cart", None));
        assert!(!audit.wants(Kind::Rollback, "cart", Some("dev")));
        assert_eq!(parsed.delivery.first_retry, Duration::from_millis(100));
        assert_eq!(parsed.delivery.give_up_after, Duration::from_secs(86400));
    }

    #[test]
    fn the_readme_example_reads() {
        let readme = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docs/controllers.md"
        ))
        .unwrap();
        let section = &readme[readme.find("## Notifications").expect("the section")..];
        let start = section.find("```yaml\n").expect("an example") + "```yaml\n".len();
        let example = &section[start..start + section[start..].find("```").unwrap()];
        let parsed =
            Notifications::parse(example, |name| Some(format!("https://example.com/{name}")))
                .unwrap();
        assert_eq!(parsed.destinations.len(), 2);
        assert_eq!(parsed.delivery, Delivery::default());
        assert!(parsed.destinations[0].wants(Kind::Release, "shop-api", Some("prod")));
    }

    #[test]
    fn a_file_nested_too_deep_is_refused_at_once() {
        let began = std::time::Instant::now();
        let error = Notifications::parse(&"[".repeat(100_000), |_| None).unwrap_err();
        assert!(error.contains("nested deeper than 32"), "{error}");
        // The parser alone took 36 s on this file.
        assert!(began.elapsed() < std::time::Duration::from_secs(5));
        let error = Notifications::parse(&"#".repeat(2 << 20), |_| None).unwrap_err();
        assert!(error.contains("at most 1048576"), "{error}");
        // Brackets in quotes and comments do not count.
        let fine = format!(
            "webhooks: [{{url: 'https://example.com/{}'}}, {{url: \"https://example.com/{}\\\"\", name: b}}] # {}\n",
            "[".repeat(40),
            "{".repeat(40),
            "[".repeat(40)
        );
        Notifications::parse(&fine, |_| None).unwrap();
    }

    #[test]
    fn json_works_and_mistakes_are_named() {
        let json = r#"{"webhooks": [{"url": "https://example.com/h"}]}"#;
        assert_eq!(
            Notifications::parse(json, |_| None)
                .unwrap()
                .destinations
                .len(),
            1
        );
        for (text, needle) in [
            ("slack: [{}]", "webhook_url"),
            ("slack: [{webhook_url_env: NOPE}]", "NOPE"),
            ("webhooks: [{url: ftp://x}]", "not an http(s) URL"),
            ("webhooks: [{url: 'http://x', colour: red}]", "colour"),
            ("webhooks: [{url: 'http://x', events: [party]}]", "party"),
            (
                "webhooks: [{url: 'http://x', name: a}, {url: 'http://y', name: a}]",
                "two destinations",
            ),
            ("delivery: {first_retry: soon}", "first_retry"),
            ("delivery: {longest_retry: 2h}", "at most 1h"),
        ] {
            let error = Notifications::parse(text, |_| None).unwrap_err();
            assert!(error.contains(needle), "{text}: {error}");
        }
    }
}
