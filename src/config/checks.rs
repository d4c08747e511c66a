//! `CheckSettings`: whether a credential is checked before it is stored, how often the background pass
//! checks static keys, and the hosted API base URLs of the providers' checks (`TOKENKEEPER_<P>_API_URL`).

use std::collections::HashMap;
use std::time::Duration;

use super::grants::endpoint;
use super::{ConfigError, Env, err, flag_or, parsed, secs};
use crate::providers::{self, ProviderSpec};

pub const CHECK_ON_STORE_VAR: &str = "TOKENKEEPER_CHECK_ON_STORE";
pub const CHECK_INTERVAL_VAR: &str = "TOKENKEEPER_CHECK_INTERVAL_SECS";
pub const CHECK_RATE_VAR: &str = "TOKENKEEPER_CHECKS_PER_SECOND";

/// The most background checks per second one instance may run.
const MAX_RATE: u32 = 1_000;

#[derive(Debug, Clone)]
pub struct CheckSettings {
    /// `PUT` checks first unless `?check=false` (default true).
    pub on_store: bool,
    /// How long after its last check a static key is checked again, give or take a tenth (default a day).
    pub interval: Duration,
    /// The background checks one instance runs per second, at most (default 5): a backlog of due keys
    /// (the first day after an import, the end of an outage) is worked off at this pace instead of taking
    /// CPU from credential reads (benches/README.md, "Background work and reads").
    pub per_second: u32,
    /// By provider id: `TOKENKEEPER_<P>_API_URL`.
    api_urls: HashMap<&'static str, String>,
}

impl Default for CheckSettings {
    fn default() -> Self {
        Self {
            on_store: true,
            interval: Duration::from_secs(86_400),
            per_second: 5,
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
        let per_second = parsed(env, CHECK_RATE_VAR, 5u32)?;
        if !(1..=MAX_RATE).contains(&per_second) {
            return Err(err(CHECK_RATE_VAR, format!("{per_second} is outside 1..={MAX_RATE}")));
        }
        Ok(Self {
            on_store: flag_or(env, CHECK_ON_STORE_VAR, true)?,
            interval: secs(env, CHECK_INTERVAL_VAR, 86_400, 60, super::MAX_SECS)?,
            per_second,
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn lookup(vars: &[(&str, &str)]) -> Result<CheckSettings, ConfigError> {
        let env: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        CheckSettings::from_lookup(&|k| env.get(k).cloned())
    }

    #[test]
    fn the_background_rate_defaults_to_five_and_is_refused_by_name_outside_its_range() {
        assert_eq!(lookup(&[]).unwrap().per_second, 5);
        assert_eq!(lookup(&[(CHECK_RATE_VAR, "40")]).unwrap().per_second, 40);
        for bad in ["0", "1001", "-1", "fast"] {
            assert_eq!(
                lookup(&[(CHECK_RATE_VAR, bad)]).unwrap_err().var,
                CHECK_RATE_VAR,
                "{bad}"
            );
        }
    }
}
