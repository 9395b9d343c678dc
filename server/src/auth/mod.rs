//! Who is calling, and whether they may: both edges ask here with the
//! `authorization` value they received; neither knows the rules.
//!
//! - **Static tokens**, one list per role (hamctl users, artifact pushers),
//!   each a comma-separated list so a token can be rotated without a gap;
//!   compared in constant time and never logged. A static token allows
//!   everything of its role, as it always has.
//! - **Identity tokens** (OpenID Connect): verified against the trusted
//!   issuers' published keys (`oidc`, `jwt`); what the identity may do comes
//!   from the access rules (`rules`, `--access FILE`, reloaded on SIGHUP).
//!   Reads need any valid identity; a write needs a rule that allows its
//!   action in its environment.
//!
//! Refusals are logged with the identity (never the token) and counted for
//! `/metrics`. Health and reflection stay open so that probes and `grpcurl
//! list` work without credentials.

pub(crate) mod jwt;
pub(crate) mod oidc;
pub(crate) mod rules;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use subtle::ConstantTimeEq;

use crate::domain::{FlowError, Reason};
pub(crate) use oidc::Person;
pub use oidc::{OidcSettings, TrustedIssuer};
pub(crate) use rules::Action;

/// Which kind of caller a call is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// hamctl users: releases, status, policies.
    Operator,
    /// CI pipelines uploading builds and controllers reporting deployments.
    ArtifactPusher,
}

/// How the server authenticates: the configured tokens, issuers and rules.
#[derive(Clone, Default)]
pub struct Auth {
    /// Tokens of hamctl users: one, or a comma-separated list.
    pub hamctl_token: Option<String>,
    /// Tokens of artifact pushers: one, or a comma-separated list.
    pub artifact_token: Option<String>,
    /// Accept calls without a token for a role that has no credential
    /// configured (no static token, no identity provider).
    pub unauthenticated: bool,
    /// The identity providers whose tokens are accepted.
    pub oidc: OidcSettings,
    /// The access rules for identity tokens (`--access`), if any.
    pub access_file: Option<PathBuf>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |token: &Option<String>| token.as_ref().map(|_| "<redacted>");
        f.debug_struct("Auth")
            .field("hamctl_token", &redacted(&self.hamctl_token))
            .field("artifact_token", &redacted(&self.artifact_token))
            .field("unauthenticated", &self.unauthenticated)
            .field("oidc", &self.oidc)
            .field("access_file", &self.access_file)
            .finish()
    }
}

impl Role {
    /// The static token of this role, as messages name it.
    fn token_name(self) -> &'static str {
        match self {
            Role::Operator => "the hamctl token",
            Role::ArtifactPusher => "the artifact token",
        }
    }

    /// The server flag (and variable) that sets this role's token.
    fn flag(self) -> &'static str {
        match self {
            Role::Operator => "--hamctl-auth-token (HAMCTL_AUTH_TOKEN)",
            Role::ArtifactPusher => "--artifact-auth-token (ARTIFACT_AUTH_TOKEN)",
        }
    }

    /// The actions a static token of this role allows, everywhere.
    fn actions(self) -> &'static [Action] {
        match self {
            Role::Operator => &[
                Action::Release,
                Action::Promote,
                Action::Rollback,
                Action::Policy,
            ],
            Role::ArtifactPusher => &[Action::PushArtifact, Action::ReportDeployment],
        }
    }
}

impl Auth {
    /// The static tokens of `role` (a comma-separated list; empty entries
    /// are none).
    pub(crate) fn tokens(&self, role: Role) -> impl Iterator<Item = &str> {
        let list = match role {
            Role::Operator => self.hamctl_token.as_deref(),
            Role::ArtifactPusher => self.artifact_token.as_deref(),
        };
        list.unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
    }

    /// Whether identity tokens are accepted.
    pub fn has_oidc(&self) -> bool {
        !self.oidc.issuers.is_empty()
    }

    /// Whether calls of `role` need no credential at all.
    pub(crate) fn role_open(&self, role: Role) -> bool {
        self.unauthenticated && self.tokens(role).next().is_none() && !self.has_oidc()
    }

    /// Whether `presented` is one of `role`'s static tokens; every token is
    /// compared, in constant time.
    pub(crate) fn static_token_matches(&self, presented: &str, role: Role) -> bool {
        self.tokens(role).fold(false, |found, token| {
            found | bool::from(presented.as_bytes().ct_eq(token.as_bytes()))
        })
    }
}

/// Who a call comes from, once authenticated.
#[derive(Debug, Clone)]
pub(crate) enum Identity {
    /// Nobody in particular: the role needs no credential on this server.
    Open,
    /// A holder of a static token of the role.
    Token(Role),
    /// A person or pipeline whose identity token verified.
    Person(Person),
}

impl Identity {
    /// The verified person, if any.
    pub(crate) fn person(&self) -> Option<&Person> {
        match self {
            Identity::Person(person) => Some(person),
            Identity::Open | Identity::Token(_) => None,
        }
    }
}

/// Refusals so far, for `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct Refusals {
    /// Calls refused for want of a valid credential, by reason.
    pub(crate) unauthenticated: BTreeMap<&'static str, u64>,
    /// Identities refused an action, by action and environment.
    pub(crate) denied: BTreeMap<(&'static str, String), u64>,
}

/// What kind of credential a call carried.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum CredentialKind {
    /// None: the role needs none.
    #[default]
    None,
    /// A static token.
    Token,
    /// A verified identity token.
    Identity,
}

/// What `whoami` answers.
#[derive(Debug, Clone, Default)]
pub(crate) struct WhoAmI {
    /// The credential.
    pub(crate) kind: CredentialKind,
    /// The verified person's issuer, subject, name and email.
    pub(crate) issuer: String,
    pub(crate) subject: String,
    pub(crate) name: String,
    pub(crate) email: String,
    /// The groups their token lists.
    pub(crate) groups: Vec<String>,
    /// The access rules that match them.
    pub(crate) rules: Vec<String>,
    /// Per environment, what they may do there.
    pub(crate) environments: Vec<(String, Vec<Action>)>,
    /// What they may do that is not in an environment (push builds).
    pub(crate) actions: Vec<Action>,
    /// When their token expires (unix seconds; 0 when it does not).
    pub(crate) expires: i64,
}

/// The checks, with what they need at run time: the issuers' cached keys,
/// the rules in force and the refusal counts.
pub(crate) struct Gatekeeper {
    auth: Auth,
    issuers: Option<oidc::Issuers>,
    rules: rules::RulesInForce,
    refusals: Mutex<Refusals>,
}

impl Gatekeeper {
    /// The gatekeeper of `auth`; a bad access file is refused.
    pub(crate) fn new(auth: &Auth) -> Result<Gatekeeper, String> {
        Ok(Gatekeeper {
            issuers: oidc::Issuers::new(&auth.oidc),
            rules: rules::RulesInForce::load(auth.access_file.as_deref())?,
            auth: auth.clone(),
            refusals: Mutex::new(Refusals::default()),
        })
    }

    /// The static configuration.
    pub(crate) fn auth(&self) -> &Auth {
        &self.auth
    }

    /// The trusted issuers, when identity tokens are accepted.
    pub(crate) fn issuers(&self) -> Option<&oidc::Issuers> {
        self.issuers.as_ref()
    }

    /// Reads the access file again (SIGHUP); the rules in force stay when
    /// it does not read.
    pub(crate) fn reload_rules(&self) -> Result<usize, String> {
        self.rules.reload()
    }

    /// The refusal counts.
    pub(crate) fn refusals(&self) -> std::sync::MutexGuard<'_, Refusals> {
        self.refusals.lock().expect("refusals lock not poisoned")
    }

    fn unauthenticated(&self, reason: Reason, message: String) -> FlowError {
        *self
            .refusals()
            .unauthenticated
            .entry(reason.as_str())
            .or_default() += 1;
        tracing::warn!(reason = reason.as_str(), %message, "call refused: not authenticated");
        FlowError::unauthenticated(reason, message)
    }

    /// Who sent `authorization` (`Bearer <token>`), for a call of `role`.
    ///
    /// A static token of the role, or an identity token of a trusted
    /// issuer. No token is accepted only where the role needs no
    /// credential; a role with no credential configured on a server that is
    /// not `--unauthenticated` is refused with `PERMISSION_DENIED` naming
    /// the flag that would allow it.
    pub(crate) async fn authenticate(
        &self,
        authorization: Option<&str>,
        role: Role,
    ) -> Result<Identity, FlowError> {
        if self.auth.role_open(role) {
            return Ok(Identity::Open);
        }
        let has_static = self.auth.tokens(role).next().is_some();
        if !has_static && self.issuers.is_none() {
            return Err(FlowError::denied(
                Reason::RoleNotEnabled,
                format!(
                    "this server accepts no such calls: it was started without {}",
                    role.flag()
                ),
            ));
        }
        let wanted = match (has_static, self.issuers.is_some(), role) {
            (true, true, Role::Operator) => {
                format!("{} or a sign-in (`hamctl login`)", role.token_name())
            }
            (true, true, Role::ArtifactPusher) => {
                format!("{} or an identity token", role.token_name())
            }
            (true, false, _) => role.token_name().to_string(),
            (false, _, Role::Operator) => "a sign-in (`hamctl login`)".to_string(),
            (false, _, Role::ArtifactPusher) => "an identity token".to_string(),
        };
        let Some(token) = authorization.and_then(bearer_token) else {
            return Err(self.unauthenticated(
                Reason::TokenMissing,
                format!(
                    "missing token: this call needs {wanted}, sent as \"authorization: Bearer <token>\""
                ),
            ));
        };
        if self.auth.static_token_matches(token, role) {
            return Ok(Identity::Token(role));
        }
        match &self.issuers {
            Some(issuers) if jwt::looks_like_jwt(token) => match issuers.verify(token).await {
                Ok(person) => Ok(Identity::Person(person)),
                Err(e) => {
                    let reason = match &e {
                        e if e.is_expiry() => Reason::TokenExpired,
                        jwt::TokenError::IssuerUnavailable(_) => Reason::IssuerUnavailable,
                        _ => Reason::TokenInvalid,
                    };
                    Err(self.unauthenticated(reason, format!("identity token refused: {e}")))
                }
            },
            _ => Err(self.unauthenticated(
                Reason::TokenWrong,
                format!("wrong token: this call needs {wanted}"),
            )),
        }
    }

    /// Like [`Gatekeeper::authenticate`], for a call any caller may make:
    /// a token of either role, or an identity token.
    pub(crate) async fn authenticate_any(
        &self,
        authorization: Option<&str>,
    ) -> Result<Identity, FlowError> {
        let token = authorization.and_then(bearer_token);
        if token.is_some_and(|t| self.auth.static_token_matches(t, Role::ArtifactPusher)) {
            return Ok(Identity::Token(Role::ArtifactPusher));
        }
        self.authenticate(authorization, Role::Operator).await
    }

    /// Whether `identity` may do `action` (in `environment`). Static tokens
    /// and open roles may do what their role does (checked when they were
    /// authenticated); an identity needs an access rule that allows it.
    pub(crate) fn permit(
        &self,
        identity: &Identity,
        action: Action,
        environment: Option<&str>,
    ) -> Result<(), FlowError> {
        let Identity::Person(person) = identity else {
            return Ok(());
        };
        let rules = self.rules.get();
        if let Some(rule) = rules
            .as_deref()
            .and_then(|rules| rules.allowing(&person.claims, action, environment))
        {
            tracing::debug!(who = %person.describe(), action = action.as_str(), rule = %rule.name, "allowed");
            return Ok(());
        }
        let place = match environment {
            Some(environment) if action.has_environment() => format!(" in {environment}"),
            _ => String::new(),
        };
        let message = if rules.is_none() {
            format!(
                "permission denied: {} may not {}{place}: this server has no access rules (--access), so identities may only read",
                person.email(),
                action.as_str()
            )
        } else {
            format!(
                "permission denied: no access rule allows {} to {}{place}",
                person.email(),
                action.as_str()
            )
        };
        *self
            .refusals()
            .denied
            .entry((action.as_str(), environment.unwrap_or_default().to_string()))
            .or_default() += 1;
        tracing::warn!(who = %person.describe(), action = action.as_str(), environment = environment.unwrap_or_default(), "call denied");
        Err(FlowError::denied(Reason::AccessDenied, message))
    }

    /// What `identity` is and may do in each of `environments`.
    pub(crate) fn whoami(&self, identity: &Identity, environments: &[String]) -> WhoAmI {
        let may = |action: Action, environment: Option<&str>| match identity {
            Identity::Open | Identity::Token(_) => {
                let open =
                    |role: Role| self.auth.role_open(role) && role.actions().contains(&action);
                matches!(identity, Identity::Token(role) if role.actions().contains(&action))
                    || open(Role::Operator)
                    || open(Role::ArtifactPusher)
            }
            Identity::Person(person) => self.rules.get().is_some_and(|rules| {
                rules
                    .allowing(&person.claims, action, environment)
                    .is_some()
            }),
        };
        let mut answer = WhoAmI {
            kind: match identity {
                Identity::Open => CredentialKind::None,
                Identity::Token(_) => CredentialKind::Token,
                Identity::Person(_) => CredentialKind::Identity,
            },
            environments: environments
                .iter()
                .map(|environment| {
                    let allowed = Action::ALL
                        .into_iter()
                        .filter(|a| a.has_environment() && may(*a, Some(environment)))
                        .collect();
                    (environment.clone(), allowed)
                })
                .collect(),
            actions: Action::ALL
                .into_iter()
                .filter(|a| !a.has_environment() && may(*a, None))
                .collect(),
            ..WhoAmI::default()
        };
        if let Identity::Person(person) = identity {
            answer.issuer = person.issuer.clone();
            answer.subject = person.subject.clone();
            answer.name = person.name().to_string();
            answer.email = person.email();
            answer.expires = person
                .claims
                .get("exp")
                .and_then(serde_json::Value::as_i64)
                .unwrap_or_default();
            if let Some(rules) = self.rules.get() {
                answer.groups = rules.groups(&person.claims);
                answer.rules = rules
                    .matching(&person.claims)
                    .iter()
                    .map(|r| r.name.clone())
                    .collect();
            } else if let Some(groups) = person.claims.get("groups").and_then(|g| g.as_array()) {
                answer.groups = groups
                    .iter()
                    .filter_map(|g| g.as_str().map(str::to_string))
                    .collect();
            }
        }
        answer
    }
}

/// Whether a presented secret is the expected one, in constant time.
pub(crate) fn same_secret(presented: &str, expected: &str) -> bool {
    bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
}

/// The token of a `Bearer <token>` header; the scheme is case-insensitive
/// (RFC 7235).
pub(crate) fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|token| !token.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(token: Option<&str>) -> Option<String> {
        token.map(|token| format!("Bearer {token}"))
    }

    /// The check's answer as the gRPC edge sends it.
    fn check(auth: &Auth, header: &Option<String>, role: Role) -> Result<(), tonic::Status> {
        let gate = Gatekeeper::new(auth).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime
            .block_on(gate.authenticate(header.as_deref(), role))
            .map(|_| ())
            .map_err(crate::api::errors::to_status)
    }

    #[test]
    fn roles_have_their_own_tokens() {
        let auth = Auth {
            hamctl_token: Some("h".into()),
            artifact_token: Some("a".into()),
            ..Auth::default()
        };
        check(&auth, &request(Some("h")), Role::Operator).unwrap();
        check(&auth, &request(Some("a")), Role::ArtifactPusher).unwrap();
        assert!(check(&auth, &request(Some("a")), Role::Operator).is_err());
        assert!(check(&auth, &request(Some("h")), Role::ArtifactPusher).is_err());
        let missing = check(&auth, &request(None), Role::Operator).unwrap_err();
        assert_eq!(missing.code(), tonic::Code::Unauthenticated);
        assert!(missing.message().contains("missing token"));
        assert!(missing.message().contains("the hamctl token"));
        let wrong = check(&auth, &request(Some("h")), Role::ArtifactPusher).unwrap_err();
        assert!(wrong.message().contains("the artifact token"), "{wrong:?}");
    }

    #[test]
    fn a_token_list_accepts_each_of_its_tokens() {
        let auth = Auth {
            hamctl_token: Some("old, new,,third".into()),
            artifact_token: Some("a".into()),
            ..Auth::default()
        };
        for token in ["old", "new", "third"] {
            check(&auth, &request(Some(token)), Role::Operator).unwrap();
        }
        for token in ["old, new", "", ",", "ne"] {
            assert!(
                check(&auth, &request(Some(token)), Role::Operator).is_err(),
                "{token:?}"
            );
        }
    }

    #[test]
    fn the_scheme_is_case_insensitive() {
        assert_eq!(bearer_token("BEARER x"), Some("x"));
        assert_eq!(bearer_token("bearer  x "), Some("x"));
        assert_eq!(bearer_token("Basic x"), None);
        assert_eq!(bearer_token("Bearer "), None);
    }

    #[test]
    fn unauthenticated_only_where_no_token_is_set() {
        let auth = Auth {
            hamctl_token: Some("h".into()),
            unauthenticated: true,
            ..Auth::default()
        };
        check(&auth, &request(None), Role::ArtifactPusher).unwrap();
        assert!(check(&auth, &request(None), Role::Operator).is_err());
        let closed = Auth::default();
        let refused = check(&closed, &request(Some("x")), Role::Operator).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::PermissionDenied);
        assert!(
            refused.message().contains("--hamctl-auth-token"),
            "{refused:?}"
        );
    }

    #[test]
    fn with_an_identity_provider_no_role_is_open() {
        let auth = Auth {
            unauthenticated: true,
            oidc: OidcSettings {
                issuers: vec![TrustedIssuer {
                    url: "http://127.0.0.1:1".into(),
                    audience: "hamctl".into(),
                }],
                ..OidcSettings::default()
            },
            ..Auth::default()
        };
        let missing = check(&auth, &request(None), Role::Operator).unwrap_err();
        assert_eq!(missing.code(), tonic::Code::Unauthenticated);
        assert!(missing.message().contains("hamctl login"), "{missing:?}");
        let static_token = check(&auth, &request(Some("guess")), Role::Operator).unwrap_err();
        assert!(static_token.message().contains("wrong token"));
    }
}
