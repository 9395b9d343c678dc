//! Bearer-token authentication, tokens per role (each setting a
//! comma-separated list, as the original release manager took them, so
//! that a token can be rotated without a moment when neither works),
//! compared in constant time. Tokens are never logged. Health and reflection stay open so that
//! probes and `grpcurl list` work without credentials. Both edges ask here
//! with the `authorization` value they received; neither knows the rule.

use crate::domain::{FlowError, Reason};

/// Who a call must come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// hamctl users: releases, status, policies.
    Operator,
    /// CI pipelines uploading builds.
    ArtifactPusher,
}

/// The configured tokens.
#[derive(Clone, Default)]
pub struct Auth {
    /// Tokens of hamctl users, comma-separated.
    pub hamctl_token: Option<String>,
    /// Tokens of artifact pushers, comma-separated.
    pub artifact_token: Option<String>,
    /// Accept calls without a token where no token is configured.
    pub unauthenticated: bool,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field(
                "hamctl_token",
                &self.hamctl_token.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "artifact_token",
                &self.artifact_token.as_ref().map(|_| "<redacted>"),
            )
            .field("unauthenticated", &self.unauthenticated)
            .finish()
    }
}

impl Role {
    /// The token of this role, as messages name it.
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
}

/// The tokens of a comma-separated setting (spaces around each ignored,
/// empty entries dropped).
pub(crate) fn token_list(setting: Option<&str>) -> Vec<&str> {
    setting
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect()
}

/// Whether `presented` is one of `tokens`; every token is compared, in
/// constant time, whichever matches.
pub(crate) fn one_of(presented: &str, tokens: &[&str]) -> bool {
    tokens
        .iter()
        .fold(false, |found, token| found | same_secret(presented, token))
}

impl Auth {
    /// The tokens of `role`.
    pub(crate) fn tokens(&self, role: Role) -> Vec<&str> {
        token_list(match role {
            Role::Operator => self.hamctl_token.as_deref(),
            Role::ArtifactPusher => self.artifact_token.as_deref(),
        })
    }

    /// Checks the `authorization` value of a call (`Bearer <token>`).
    ///
    /// A role with a token needs it. A role without one is open only on an
    /// unauthenticated server; otherwise its calls are refused with
    /// `PERMISSION_DENIED` naming the flag that would allow them.
    pub(crate) fn check(&self, authorization: Option<&str>, role: Role) -> Result<(), FlowError> {
        let expected = self.tokens(role);
        if expected.is_empty() {
            return if self.unauthenticated {
                Ok(())
            } else {
                Err(FlowError::denied(
                    Reason::RoleNotEnabled,
                    format!(
                        "this server accepts no such calls: it was started without {}",
                        role.flag()
                    ),
                ))
            };
        }
        let presented = authorization.and_then(bearer_token);
        match presented {
            None => Err(FlowError::unauthenticated(
                Reason::TokenMissing,
                format!(
                    "missing token: this call needs {}, sent as \"authorization: Bearer <token>\"",
                    role.token_name()
                ),
            )),
            Some(token) if one_of(token, &expected) => Ok(()),
            Some(_) => Err(FlowError::unauthenticated(
                Reason::TokenWrong,
                format!("wrong token: this call needs {}", role.token_name()),
            )),
        }
    }
}

/// Whether a presented secret is the expected one, in constant time.
pub(crate) fn same_secret(presented: &str, expected: &str) -> bool {
    use subtle::ConstantTimeEq;
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

    /// The check's answer as the gRPC edge sends it.
    trait Checked {
        fn check(&self, header: &Option<String>, role: Role) -> Result<(), tonic::Status>;
    }

    impl Checked for Auth {
        fn check(&self, header: &Option<String>, role: Role) -> Result<(), tonic::Status> {
            Auth::check(self, header.as_deref(), role).map_err(crate::api::errors::to_status)
        }
    }

    fn request(token: Option<&str>) -> Option<String> {
        token.map(|token| format!("Bearer {token}"))
    }

    #[test]
    fn roles_have_their_own_tokens() {
        let auth = Auth {
            hamctl_token: Some("h".into()),
            artifact_token: Some("a".into()),
            unauthenticated: false,
        };
        Checked::check(&auth, &request(Some("h")), Role::Operator).unwrap();
        Checked::check(&auth, &request(Some("a")), Role::ArtifactPusher).unwrap();
        assert!(Checked::check(&auth, &request(Some("a")), Role::Operator).is_err());
        assert!(Checked::check(&auth, &request(Some("h")), Role::ArtifactPusher).is_err());
        let missing = Checked::check(&auth, &request(None), Role::Operator).unwrap_err();
        assert_eq!(missing.code(), tonic::Code::Unauthenticated);
        assert!(missing.message().contains("missing token"));
        assert!(missing.message().contains("the hamctl token"));
        let wrong = Checked::check(&auth, &request(Some("h")), Role::ArtifactPusher).unwrap_err();
        assert!(wrong.message().contains("the artifact token"), "{wrong:?}");
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
            artifact_token: None,
            unauthenticated: true,
        };
        Checked::check(&auth, &request(None), Role::ArtifactPusher).unwrap();
        assert!(Checked::check(&auth, &request(None), Role::Operator).is_err());
        let closed = Auth::default();
        let refused = Checked::check(&closed, &request(Some("x")), Role::Operator).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::PermissionDenied);
        assert!(
            refused.message().contains("--hamctl-auth-token"),
            "{refused:?}"
        );
    }
}
