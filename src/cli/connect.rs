//! `tokenkeeper connect`: starts a connect flow for a user, as `POST /api/connect/{provider}` does (the
//! same service call), and prints the authorization URL for the user to open in a browser.

use std::sync::Arc;

use clap::Args;

use crate::app::Services;
use crate::clock::SystemClock;
use crate::config::Settings;
use crate::connect::StartRequest;
use crate::credentials::{Caller, ConnectionName, UserId};
use crate::orgs::{Channel, Permission};

#[derive(Args, Debug)]
pub struct ConnectArgs {
    /// The user (an id from `user create`) the credential will belong to.
    #[arg(long)]
    user: String,
    /// An OAuth provider of the catalog (gcp, slack, bitbucket).
    #[arg(long)]
    provider: String,
    /// The org the user acts in (they must be an editor there); default: their personal org.
    #[arg(long)]
    org: Option<String>,
    /// The connection's name (default: `default`).
    #[arg(long, value_parser = super::connection_name)]
    name: Option<ConnectionName>,
    /// Where the browser goes once the provider sends it back; it must start with one of
    /// TOKENKEEPER_CONNECT_RETURN_URLS (default: the first of them).
    #[arg(long)]
    return_url: Option<String>,
    /// A scope to ask for instead of the catalog's defaults (repeatable).
    #[arg(long = "scope")]
    scopes: Vec<String>,
}

/// Prints the authorization URL on stdout (alone, for scripts) and when it expires on stderr.
pub async fn run(settings: Settings, args: ConnectArgs) -> anyhow::Result<()> {
    let services = Services::build(settings, Arc::new(SystemClock)).await?;
    // The operator acts as the platform's backend does (an internal caller): the user's role decides.
    let acting = services
        .orgs
        .acting(UserId::from(args.user), args.org.as_deref(), Channel::Internal)
        .await?;
    acting.require(Permission::WriteConnections)?;
    let caller = Caller::new(acting.user.clone(), acting.org.clone());
    let request = StartRequest {
        return_url: args.return_url,
        name: args.name.map(|n| n.to_string()),
        scopes: (!args.scopes.is_empty()).then_some(args.scopes),
    };
    let started = services.connect.start(&caller, &args.provider, request).await?;
    println!("{}", started.authorization_url);
    eprintln!(
        "open this URL in the user's browser before {}; the connection is stored when the provider sends \
         the browser back to {}",
        started.expires_at.rfc3339(),
        services.connect.settings().callback_url()
    );
    services.audit.flush().await;
    Ok(())
}
