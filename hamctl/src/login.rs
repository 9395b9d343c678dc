//! `hamctl login` and `hamctl logout`: signing in to a server through its
//! identity provider, and forgetting that sign-in.
//!
//! The server says which issuer and client to sign in with (GetSignIn), so
//! a user needs nothing but the server's address. The new token is shown to
//! the server (WhoAmI) before it is kept, so a sign-in the server would not
//! accept is reported at once, not at the next release.

use clap::Args;
use release_manager::pb::{GetSignInRequest, WhoAmIRequest};

use crate::credentials::{self, Stored};
use crate::error::CliError;
use crate::global::GlobalArgs;
use crate::output::Printer;
use crate::sign_in;

/// Sign in to the server through its identity provider
///
/// Opens the provider's sign-in page in a browser (authorization code flow
/// with PKCE; the browser comes back to a port on 127.0.0.1), or with
/// --device shows a code to confirm on any other device. The sign-in is
/// kept for this server under the user's config directory, readable by the
/// user only, and renewed with its refresh token; calls then need no
/// --auth-token.
#[derive(Debug, Clone, Args)]
pub(crate) struct LoginArgs {
    /// Print the URL to open instead of opening a browser.
    #[arg(long)]
    pub(crate) no_browser: bool,
    /// Use the device flow: a URL and a code to confirm on another device
    /// (for machines with no browser).
    #[arg(long, conflicts_with = "no_browser")]
    pub(crate) device: bool,
}

/// Forget the sign-in to the server
///
/// Removes the tokens `hamctl login` kept for this server.
#[derive(Debug, Clone, Args)]
pub(crate) struct LogoutArgs {}

pub(crate) async fn login(
    args: LoginArgs,
    global: &GlobalArgs,
    printer: &mut Printer<'_>,
) -> Result<(), CliError> {
    let timeout = cli_support::time_limit(global.request_timeout);
    let mut access = cli_support::access_client(&global.server, "", timeout).await?;
    let how = access.get_sign_in(GetSignInRequest {}).await?.into_inner();
    if how.issuer.is_empty() || how.client_id.is_empty() {
        return Err(CliError::SignIn(format!(
            "{} has no single sign-on: it takes a token (--auth-token or HAMCTL_AUTH_TOKEN)",
            global.server
        )));
    }
    let provider = sign_in::discover(&how.issuer, &how.client_id, &how.scopes).await?;
    let tokens = if args.device {
        sign_in::device_flow(&provider, printer).await?
    } else {
        sign_in::browser_flow(&provider, args.no_browser, printer).await?
    };
    let mut checked = cli_support::access_client(&global.server, &tokens.id_token, timeout).await?;
    let who = checked.who_am_i(WhoAmIRequest {}).await?.into_inner();
    let path = credentials::save(&Stored {
        server: global.server.clone(),
        issuer: provider.issuer.clone(),
        client_id: provider.client_id.clone(),
        token_endpoint: provider.token_endpoint.clone(),
        id_token: tokens.id_token,
        refresh_token: tokens.refresh_token,
    })?;
    printer.line(&format!(
        "Signed in to {} as {} <{}>",
        global.server, who.name, who.email
    ))?;
    printer.note(&format!("The sign-in is kept in {}", path.display()))?;
    if credentials::given_token(global).is_some() {
        printer.note(
            "Note: --auth-token / HAMCTL_AUTH_TOKEN is set and is sent instead of this sign-in",
        )?;
    }
    Ok(())
}

pub(crate) async fn logout(
    _args: LogoutArgs,
    global: &GlobalArgs,
    printer: &mut Printer<'_>,
) -> Result<(), CliError> {
    if credentials::forget(&global.server)? {
        printer.line(&format!("Signed out of {}", global.server))?;
    } else {
        printer.line(&format!("Not signed in to {}", global.server))?;
    }
    Ok(())
}
