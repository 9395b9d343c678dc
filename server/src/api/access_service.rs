//! AccessService handler: how to sign in (open to anyone, so that hamctl
//! needs nothing but the server's address) and who the caller is, with what
//! the access rules allow them per environment.

use std::sync::Arc;

use release_manager::pb;
use release_manager::pb::access_service_server::AccessService;
use tonic::{Request, Response, Status};

use crate::api::errors::to_status;
use crate::auth::{CredentialKind, Gatekeeper};
use crate::domain::Settings;

/// The scopes a sign-in asks for: the identity, the name and email that
/// releases record, the groups the rules match, and a refresh token.
pub(crate) const SIGN_IN_SCOPES: [&str; 5] =
    ["openid", "profile", "email", "groups", "offline_access"];

/// Serves `releasemanager.v1.AccessService`.
pub(crate) struct AccessServiceHandler {
    gate: Arc<Gatekeeper>,
    settings: Arc<Settings>,
}

impl AccessServiceHandler {
    /// A handler over the server's gatekeeper.
    pub(crate) fn new(gate: Arc<Gatekeeper>, settings: Arc<Settings>) -> Self {
        AccessServiceHandler { gate, settings }
    }
}

#[tonic::async_trait]
impl AccessService for AccessServiceHandler {
    async fn get_sign_in(
        &self,
        _request: Request<pb::GetSignInRequest>,
    ) -> Result<Response<pb::GetSignInResponse>, Status> {
        let auth = self.gate.auth();
        let issuer = self
            .gate
            .issuers()
            .map(|issuers| issuers.sign_in_issuer().url.clone())
            .unwrap_or_default();
        Ok(Response::new(pb::GetSignInResponse {
            scopes: if issuer.is_empty() {
                Vec::new()
            } else {
                SIGN_IN_SCOPES.iter().map(|s| s.to_string()).collect()
            },
            issuer,
            client_id: auth.oidc.client_id.clone().unwrap_or_default(),
        }))
    }

    async fn who_am_i(
        &self,
        request: Request<pb::WhoAmIRequest>,
    ) -> Result<Response<pb::WhoAmIResponse>, Status> {
        let who = self
            .gate
            .authenticate_any(super::authorization(&request).as_deref())
            .await
            .map_err(to_status)?;
        let answer = self.gate.whoami(&who, &self.settings.environments);
        let names = |actions: &[crate::auth::Action]| {
            actions.iter().map(|a| a.as_str().to_string()).collect()
        };
        Ok(Response::new(pb::WhoAmIResponse {
            kind: match answer.kind {
                CredentialKind::Identity => pb::CredentialKind::IdentityToken,
                CredentialKind::Token => pb::CredentialKind::StaticToken,
                CredentialKind::None => pb::CredentialKind::None,
            } as i32,
            issuer: answer.issuer,
            subject: answer.subject,
            name: answer.name,
            email: answer.email,
            groups: answer.groups,
            rules: answer.rules,
            environments: answer
                .environments
                .iter()
                .map(|(environment, actions)| pb::EnvironmentAccess {
                    environment: environment.clone(),
                    actions: names(actions),
                })
                .collect(),
            actions: names(&answer.actions),
            expires_at: answer.expires,
        }))
    }
}
