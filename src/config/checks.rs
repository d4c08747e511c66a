//! `CheckSettings`: whether a credential is checked before it is stored, how often the background pass
//! checks static keys, and the hosted API base URLs of the providers' checks (`TOKENKEEPER_<P>_API_URL`).

use std::collections::HashMap;
use std::time::Duration;

use super::grants::endpoint;
use super::{ConfigError, Env, flag_or, secs};
use crate::providers::{self, ProviderSpec};

pub const CHECK_ON_STORE_VAR: &str = "TOKENKEEPER_CHECK_ON_STORE";
pub const CHECK_INTERVAL_VAR: &str = "TOKENKEEPER_CHECK_INTERVAL_SECS";

#[derive(Debug, Clone)]
pub struct CheckSettings {
    /// `PUT` checks first unless `?check=false` (default true).
    pub on_store: bool,
    /// How long after its last check a static key is checked again, give or take a tenth (default a day).
    pub interval: Duration,
    /// By provider id: `TOKENKEEPER_<P>_API_URL`.
    api_urls: HashMap<&'static str, String>,
}

impl Default for CheckSettings {
    fn default() -> Self {
        Self {
            on_store: true,
            interval: Duration::from_secs(86_400),
            api_urls: HashMap::new(),
        }
    }
}

impl CheckSettings {
    pub(super) fn from_lookup(env: Env) -> Result<Self, ConfigError> {
        let mut api_urls = HashMap::new();
        for spec in providers::catalog() {
            if let Some(url) = endpoint(env, &spec.api_url_env_var())? {
                api_urls.insert(spec.id, url.trim_end_matches('/').to_string());
            }
        }
        Ok(Self {
            on_store: flag_or(env, CHECK_ON_STORE_VAR, true)?,
            interval: secs(env, CHECK_INTERVAL_VAR, 86_400, 60, super::MAX_SECS)?,
            api_urls,
        })
    }

    /// The same with `on_store` set.
    pub fn with_on_store(mut self, on_store: bool) -> Self {
        self.on_store = on_store;
        self
    }

    /// The configured API base URL of `spec`'s check, if any.
    pub fn api_url(&self, spec: &ProviderSpec) -> Option<&str> {
        self.api_urls.get(spec.id).map(String::as_str)
    }

    /// Replaces one provider's API base URL (tests, library callers).
    pub fn set_api_url(&mut self, spec: &'static ProviderSpec, url: &str) {
        self.api_urls.insert(spec.id, url.trim_end_matches('/').to_string());
    }
}
