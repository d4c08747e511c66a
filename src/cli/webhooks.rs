//! `tokenkeeper webhooks verify`: checks a received webhook's signature the way a receiver must, for
//! operators testing their receiver (and as a reference: `docs/EVENTS.md` has the same in JS and Python).

use std::io::Read as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;
use secrecy::{ExposeSecret as _, SecretString};

use crate::events::signing::WebhookSecret;

#[derive(Subcommand, Debug)]
pub enum WebhooksCommand {
    /// Check a webhook request's `webhook-signature`; exits 0 when it is valid, 1 when it is not.
    Verify {
        /// The signing secret (`whsec_<base64>` or plain text); by default TOKENKEEPER_WEBHOOK_SECRET.
        #[arg(long, env = "TOKENKEEPER_WEBHOOK_SECRET", hide_env_values = true)]
        secret: SecretString,
        /// The `webhook-id` header.
        #[arg(long)]
        id: String,
        /// The `webhook-timestamp` header (seconds since the epoch).
        #[arg(long)]
        timestamp: i64,
        /// The raw request body, byte for byte (`-`: standard input).
        #[arg(long)]
        body_file: PathBuf,
        /// The `webhook-signature` header (one or more space-separated `v1,<base64>`).
        #[arg(long)]
        signature: String,
    },
}

/// Whether the signature is valid (printed as well).
pub fn run(cmd: WebhooksCommand) -> anyhow::Result<bool> {
    match cmd {
        WebhooksCommand::Verify {
            secret,
            id,
            timestamp,
            body_file,
            signature,
        } => {
            let secret =
                WebhookSecret::parse(secret.expose_secret()).context("TOKENKEEPER_WEBHOOK_SECRET / --secret")?;
            let body = if body_file.as_os_str() == "-" {
                let mut b = Vec::new();
                std::io::stdin()
                    .read_to_end(&mut b)
                    .context("cannot read the body from stdin")?;
                b
            } else {
                std::fs::read(&body_file).with_context(|| format!("cannot read {}", body_file.display()))?
            };
            let valid = secret.verify(&id, timestamp, &body, &signature);
            println!("{}", if valid { "signature valid" } else { "signature INVALID" });
            Ok(valid)
        }
    }
}
