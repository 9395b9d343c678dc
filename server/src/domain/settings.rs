//! The server-wide settings every layer reads: the environments in
//! promotion order, the default application branch, and the branch
//! restrictions set by configuration.

/// Server-wide settings the flows need.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Environments in promotion order.
    pub environments: Vec<String>,
    /// The application branch whose latest build the first environment is
    /// promoted from (the config repository's own branch is the mirror's).
    pub default_branch: String,
    /// Branch restrictions set by configuration for every service.
    pub global_restrictions: Vec<super::policy_file::GlobalRestriction>,
}
