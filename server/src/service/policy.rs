//! PolicyService handler. Policies are stored by the writer in
//! `policies/<service>.json`; until that flow exists every call is answered
//! UNIMPLEMENTED after authentication.

use std::sync::Arc;

use release_manager::pb;
use release_manager::pb::policy_service_server::PolicyService;
use tonic::{Request, Response, Status};

use crate::auth::{Auth, Role};

/// Serves `releasemanager.v1.PolicyService`.
pub struct PolicyServiceHandler {
    auth: Arc<Auth>,
}

impl PolicyServiceHandler {
    /// A handler checking tokens with `auth`.
    pub fn new(auth: Arc<Auth>) -> Self {
        PolicyServiceHandler { auth }
    }

    fn unimplemented<T>(&self, request: &Request<T>) -> Status {
        match self.auth.check(request, Role::Operator) {
            Err(status) => status,
            Ok(()) => {
                Status::unimplemented("policies are not available on this server version yet")
            }
        }
    }
}

#[tonic::async_trait]
impl PolicyService for PolicyServiceHandler {
    async fn list_policies(
        &self,
        request: Request<pb::ListPoliciesRequest>,
    ) -> Result<Response<pb::ListPoliciesResponse>, Status> {
        Err(self.unimplemented(&request))
    }

    async fn apply_auto_release(
        &self,
        request: Request<pb::ApplyAutoReleaseRequest>,
    ) -> Result<Response<pb::ApplyAutoReleaseResponse>, Status> {
        Err(self.unimplemented(&request))
    }

    async fn apply_branch_restriction(
        &self,
        request: Request<pb::ApplyBranchRestrictionRequest>,
    ) -> Result<Response<pb::ApplyBranchRestrictionResponse>, Status> {
        Err(self.unimplemented(&request))
    }

    async fn delete_policies(
        &self,
        request: Request<pb::DeletePoliciesRequest>,
    ) -> Result<Response<pb::DeletePoliciesResponse>, Status> {
        Err(self.unimplemented(&request))
    }
}
