//! Change events to a webhook receiver: where, signed with what, how many at once, how often.

use std::time::Duration;

use secrecy::ExposeSecret as _;

use super::{ConfigError, Env, err, flag, parsed, raw, secret, secs};
use crate::events::signing::WebhookSecret;

pub const URL_VAR: &str = "TOKENKEEPER_WEBHOOK_URL";
pub const SECRET_VAR: &str = "TOKENKEEPER_WEBHOOK_SECRET";
pub const BATCH_VAR: &str = "TOKENKEEPER_WEBHOOK_BATCH";
pub const INTERVAL_VAR: &str = "TOKENKEEPER_WEBHOOK_INTERVAL_SECS";
pub const DISABLED_VAR: &str = "TOKENKEEPER_WEBHOOK_DELIVERER_DISABLED";

/// The most events one batch may hold (each is in memory while it is sent).
const MAX_BATCH: usize = 1_000;

#[derive(Debug, Clone)]
pub struct WebhookSettings {
    pub url: url::Url,
    pub secret: WebhookSecret,
    /// Events sent at once (default 32).
    pub batch: usize,
    /// How often the deliverer looks at the outbox (default 5 s), give or take a fifth.
    pub interval: Duration,
    /// This instance writes events but leaves delivering them to others (default false).
    pub deliverer_disabled: bool,
}

impl WebhookSettings {
    /// `None` when neither the URL nor the secret is set; one without the other is an error.
    pub(super) fn from_lookup(env: Env) -> Result<Option<Self>, ConfigError> {
        let (url, secret) = match (raw(env, URL_VAR), secret(env, SECRET_VAR)?) {
            (None, None) => return Ok(None),
            (Some(_), None) => {
                return Err(err(
                    SECRET_VAR,
                    format!("{URL_VAR} is set: the secret that signs is needed"),
                ));
            }
            (None, Some(_)) => return Err(err(URL_VAR, format!("{SECRET_VAR} is set: where to send events?"))),
            (Some(u), Some(s)) => (u, s),
        };
        let url = url::Url::parse(url.trim()).map_err(|e| err(URL_VAR, e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(err(URL_VAR, "must be an http:// or https:// URL"));
        }
        let secret = WebhookSecret::parse(secret.expose_secret()).map_err(|e| err(SECRET_VAR, e.to_string()))?;
        let batch = parsed(env, BATCH_VAR, 32usize)?;
        if !(1..=MAX_BATCH).contains(&batch) {
            return Err(err(BATCH_VAR, format!("{batch} is outside 1..={MAX_BATCH}")));
        }
        Ok(Some(Self {
            url,
            secret,
            batch,
            interval: secs(env, INTERVAL_VAR, 5, 1, 3600)?,
            deliverer_disabled: flag(env, DISABLED_VAR)?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn lookup(vars: &[(&str, &str)]) -> Result<Option<WebhookSettings>, ConfigError> {
        let env: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        WebhookSettings::from_lookup(&|k| env.get(k).cloned())
    }

    const URL: (&str, &str) = (URL_VAR, "https://hooks.example.com/tk");

    #[test]
    fn off_unless_both_are_set_and_each_alone_is_refused_by_name() {
        assert!(lookup(&[]).unwrap().is_none());
        assert_eq!(lookup(&[URL]).unwrap_err().var, SECRET_VAR);
        assert_eq!(lookup(&[(SECRET_VAR, "k")]).unwrap_err().var, URL_VAR);
        let on = lookup(&[URL, (SECRET_VAR, "whsec_a2V5")]).unwrap().unwrap();
        assert_eq!((on.batch, on.interval.as_secs(), on.deliverer_disabled), (32, 5, false));
    }

    #[test]
    fn a_secret_not_base64_after_whsec_stops_start_up_naming_the_variable() {
        let e = lookup(&[URL, (SECRET_VAR, "whsec_!!not-base64!!")]).unwrap_err();
        assert_eq!(e.var, SECRET_VAR);
        assert!(!e.to_string().contains("not-base64"), "the secret is not quoted: {e}");
    }

    #[test]
    fn bad_urls_and_batches_are_refused_by_name() {
        let secret = (SECRET_VAR, "plain");
        assert_eq!(lookup(&[(URL_VAR, "ftp://x"), secret]).unwrap_err().var, URL_VAR);
        assert_eq!(lookup(&[(URL_VAR, "not a url"), secret]).unwrap_err().var, URL_VAR);
        assert_eq!(lookup(&[URL, secret, (BATCH_VAR, "0")]).unwrap_err().var, BATCH_VAR);
        assert_eq!(lookup(&[URL, secret, (BATCH_VAR, "1001")]).unwrap_err().var, BATCH_VAR);
    }
}
