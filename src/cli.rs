//! The `tokenkeeper` command line: `serve` plus the operator's tools. Every command reads the same
//! environment settings as the service.

use std::io::{BufRead as _, IsTerminal as _};
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use secrecy::SecretString;

use crate::app::{Services, database_url, describe_secret_store};
use crate::clock::SystemClock;
use crate::config::Settings;
use crate::credentials::{Caller as CredentialCaller, ConnectionName, Target, UserId};
use crate::orgs::{Acting, Channel, Permission};
use crate::passwords::Caller;

mod aws_template;
mod connect;
mod import;
mod webhooks;

#[derive(Parser, Debug)]
#[command(
    name = "tokenkeeper",
    version,
    about = "Keeps user passwords and provider credentials"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the HTTP service (TOKENKEEPER_LISTEN, default 127.0.0.1:8080).
    Serve,
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Manage user accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// A user's provider connections (the same library calls as the HTTP API).
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Start a connect flow for a user: prints the provider's authorization URL to open in a browser.
    Connect(connect::ConnectArgs),
    /// Organizations and their members.
    #[command(subcommand)]
    Org(OrgCommand),
    /// Adopt another system's deployment (users, orgs, roles, connections).
    #[command(subcommand)]
    Import(import::ImportCommand),
    /// Print the least-privilege Vault policy for VAULT_KV_MOUNT / VAULT_KV_BASE_PATH.
    VaultPolicy,
    /// Print the CloudFormation template of AWS onboarding's role (for the operator to upload to S3, at
    /// TOKENKEEPER_AWS_TEMPLATE_URL): trusting TOKENKEEPER_AWS_PRINCIPAL_ARN, else Tokenkeeper's AWS identity.
    AwsTemplate,
    /// Change events' webhooks: check a received request's signature.
    #[command(subcommand)]
    Webhooks(webhooks::WebhooksCommand),
}

#[derive(Subcommand, Debug)]
pub enum TokensCommand {
    /// List the connections of a user's org (metadata and status, never secrets).
    List {
        #[arg(long)]
        user: String,
        /// The org (an id from `org list`) the user acts in; default: their personal org.
        #[arg(long)]
        org: Option<String>,
        /// Only the connections of this name (default: every connection).
        #[arg(long, value_parser = connection_name)]
        name: Option<ConnectionName>,
    },
    /// Print a credential for one provider as JSON (refreshed first if due), as the platform's backend
    /// reads it: for any member of the org.
    Get {
        #[arg(long)]
        user: String,
        #[arg(long)]
        provider: String,
        /// The org the user acts in; default: their personal org.
        #[arg(long)]
        org: Option<String>,
        /// Which of the org's connections to the provider.
        #[arg(long, value_parser = connection_name, default_value = ConnectionName::DEFAULT)]
        name: ConnectionName,
    },
    /// Delete a credential: the reference, then the secret (the user must be an editor of the org).
    Delete {
        #[arg(long)]
        user: String,
        #[arg(long)]
        provider: String,
        /// The org the user acts in; default: their personal org.
        #[arg(long)]
        org: Option<String>,
        /// Which of the org's connections to the provider.
        #[arg(long, value_parser = connection_name, default_value = ConnectionName::DEFAULT)]
        name: ConnectionName,
    },
}

/// `--name`, checked as `?name=` is.
fn connection_name(text: &str) -> Result<ConnectionName, String> {
    ConnectionName::parse(text)
        .ok_or_else(|| "use 1 to 40 lowercase letters, digits and '-', starting with a letter or digit".to_string())
}

#[derive(Subcommand, Debug)]
pub enum OrgCommand {
    /// Create an org whose admin is the registered user with this email; prints its id.
    Create {
        #[arg(long)]
        name: String,
        /// The email of its first admin.
        #[arg(long)]
        admin_email: String,
    },
    /// Add a registered user to an org with a role (viewer, editor or admin).
    AddMember {
        #[arg(long)]
        org: String,
        #[arg(long)]
        email: String,
        #[arg(long)]
        role: String,
    },
    /// A user's orgs with their role, as JSON.
    List {
        #[arg(long)]
        user: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user; the password is read from stdin (or prompted for on a terminal).
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: Option<String>,
    },
    /// Reset a user's password (revokes their sessions); the password is read from stdin or a prompt.
    SetPassword {
        #[arg(long)]
        email: String,
    },
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    // Needs no settings: a receiver's operator runs it where Tokenkeeper is not configured.
    let command = match cli.command {
        Command::Webhooks(cmd) => {
            if !webhooks::run(cmd)? {
                std::process::exit(1);
            }
            return Ok(());
        }
        other => other,
    };
    let settings = Settings::from_env()?;
    match command {
        Command::Serve => serve(settings).await,
        Command::Migrate => {
            let url = database_url(&settings);
            crate::files::private_dir(&settings.data_dir)?;
            crate::db::connect(&url).await.context("migration failed")?;
            println!("database schema is up to date");
            Ok(())
        }
        Command::User(cmd) => user(settings, cmd).await,
        Command::Tokens(cmd) => tokens(settings, cmd).await,
        Command::Connect(args) => connect::run(settings, args).await,
        Command::Org(cmd) => org(settings, cmd).await,
        Command::Import(cmd) => import::run(settings, cmd).await,
        Command::Webhooks(_) => Ok(()),
        Command::AwsTemplate => aws_template::run(&settings).await,
        Command::VaultPolicy => {
            print!(
                "{}",
                crate::secrets::vault::VaultStore::policy_hcl(&settings.kv_mount, &settings.kv_base_path)
            );
            Ok(())
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let listen = settings.listen;
    let services = Services::build(settings, Arc::new(SystemClock)).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let s = &services.settings;
    tracing::info!(
        listen = %listener.local_addr()?,
        data_dir = %s.data_dir.display(),
        database = ?services.store.backend(),
        secrets = %describe_secret_store(s),
        "tokenkeeper is serving"
    );
    // With the audit log on stdout, stdout holds its JSON lines only.
    if !services.audit.logs_to_stdout() {
        println!("tokenkeeper listening on http://{}", listener.local_addr()?);
        println!("data: {}; secrets: {}", s.data_dir.display(), describe_secret_store(s));
    }
    reopen_audit_log_on_hangup(&services.audit)?;
    services.serve(listener, shutdown_signal()).await
}

/// SIGHUP: the audit log's file is opened again at the next event (after logrotate moved it).
fn reopen_audit_log_on_hangup(audit: &crate::audit::Auditor) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
    let audit = audit.clone();
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP: reopening the audit log");
            audit.reopen_log();
        }
    });
    Ok(())
}

async fn user(settings: Settings, cmd: UserCommand) -> anyhow::Result<()> {
    let services = Services::build(settings, Arc::new(SystemClock)).await?;
    match cmd {
        UserCommand::Create { email, name } => {
            let password = read_password()?;
            let caller = Caller { client_addr: "cli" };
            let user = services.passwords.register(&email, password, name, &caller).await?;
            println!("created user {} <{}>", user.id, user.email);
        }
        UserCommand::SetPassword { email } => {
            let password = read_password()?;
            services.passwords.reset_password(&email, password).await?;
            println!("password changed for {email}; their sessions are revoked");
        }
    }
    services.audit.flush().await;
    Ok(())
}

async fn tokens(settings: Settings, cmd: TokensCommand) -> anyhow::Result<()> {
    let services = Services::build(settings, Arc::new(SystemClock)).await?;
    let creds = &services.credentials;
    // The operator acts as the platform's backend does (an internal caller): the user's role decides.
    let acting = |user: String, org: Option<String>| async move {
        let acting = services
            .orgs
            .acting(UserId::from(user), org.as_deref(), Channel::Internal)
            .await?;
        anyhow::Ok(acting)
    };
    let caller = |a: &Acting| CredentialCaller::new(a.user.clone(), a.org.clone());
    match cmd {
        TokensCommand::List { user, org, name } => {
            let a = acting(user, org).await?;
            a.require(Permission::ReadConnections)?;
            let mut listed = creds.list(&a.org).await?;
            if let Some(name) = name {
                listed.retain(|c| c.name == name.as_str());
            }
            println!("{}", serde_json::to_string_pretty(&listed)?);
        }
        TokensCommand::Get {
            user,
            provider,
            org,
            name,
        } => {
            let a = acting(user, org).await?;
            a.require(Permission::ReadValues)?;
            let data = creds
                .get_token_data(&caller(&a), Target::new(provider, name), "cli")
                .await?;
            println!("{}", serde_json::to_string(&data)?);
        }
        TokensCommand::Delete {
            user,
            provider,
            org,
            name,
        } => {
            let a = acting(user, org).await?;
            a.require(Permission::WriteConnections)?;
            let deleted = creds
                .delete(&caller(&a), Target::new(provider.clone(), name.clone()), "cli")
                .await?;
            let revoked = match deleted.revoked {
                None => "",
                Some(true) => " (revoked at the provider)",
                Some(false) => " (the provider did not confirm the revocation)",
            };
            println!("deleted {provider} connection {name} of org {}{revoked}", a.org);
        }
    }
    services.audit.flush().await;
    Ok(())
}

async fn org(settings: Settings, cmd: OrgCommand) -> anyhow::Result<()> {
    let services = Services::build(settings, Arc::new(SystemClock)).await?;
    let orgs = &services.orgs;
    match cmd {
        OrgCommand::Create { name, admin_email } => {
            let org = orgs.create_for(&admin_email, &name).await?;
            println!("{}", org.id);
        }
        OrgCommand::AddMember { org, email, role } => {
            let member = orgs.admit(&org, &email, &role).await?;
            println!("added {} to {org} as {}", member.user_id, member.role.as_str());
        }
        OrgCommand::List { user } => {
            let list = orgs.list(&UserId::from(user)).await?;
            println!("{}", serde_json::to_string_pretty(&list)?);
        }
    }
    Ok(())
}

/// From a prompt on a terminal, else the first line of stdin. Never from argv (it would show in `ps`).
fn read_password() -> anyhow::Result<SecretString> {
    if std::io::stdin().is_terminal() {
        return Ok(SecretString::from(rpassword::prompt_password("Password: ")?));
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let pw = line.trim_end_matches(['\r', '\n']).to_string();
    anyhow::ensure!(!pw.is_empty(), "no password on stdin");
    Ok(SecretString::from(pw))
}

pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down: finishing in-flight requests");
}
