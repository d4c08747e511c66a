//! `ConsoleSettings`: whether `serve` serves the web console, and whether its cookies are `Secure`.

use super::{ConfigError, Env, err, flag_or, raw};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsoleSettings {
    /// `TOKENKEEPER_CONSOLE` (default true): the console at `/`.
    pub enabled: bool,
    /// The console's cookies carry `Secure`: the public URL (`TOKENKEEPER_PUBLIC_URL`) is https, so a
    /// browser never sends the session over plain HTTP.
    pub secure_cookies: bool,
}

impl ConsoleSettings {
    pub fn from_lookup(env: Env) -> Result<Self, ConfigError> {
        let secure_cookies = match raw(env, "TOKENKEEPER_PUBLIC_URL") {
            None => false,
            Some(v) => match url::Url::parse(v.trim()) {
                Ok(u) if u.scheme() == "https" => true,
                Ok(u) if u.scheme() == "http" => false,
                _ => return Err(err("TOKENKEEPER_PUBLIC_URL", "must be an http or https URL")),
            },
        };
        Ok(Self {
            enabled: flag_or(env, "TOKENKEEPER_CONSOLE", true)?,
            secure_cookies,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(vars: &[(&str, &str)]) -> Result<ConsoleSettings, ConfigError> {
        let lookup = |k: &str| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_string());
        ConsoleSettings::from_lookup(&lookup)
    }

    #[test]
    fn secure_cookies_follow_the_public_url_scheme() {
        assert_eq!(
            of(&[]).unwrap(),
            ConsoleSettings {
                enabled: true,
                secure_cookies: false
            }
        );
        assert!(
            of(&[("TOKENKEEPER_PUBLIC_URL", "https://keys.example.com")])
                .unwrap()
                .secure_cookies
        );
        assert!(
            !of(&[("TOKENKEEPER_PUBLIC_URL", "http://localhost:8080")])
                .unwrap()
                .secure_cookies
        );
        assert_eq!(
            of(&[("TOKENKEEPER_PUBLIC_URL", "ftp://x")]).unwrap_err().var,
            "TOKENKEEPER_PUBLIC_URL"
        );
        assert!(!of(&[("TOKENKEEPER_CONSOLE", "false")]).unwrap().enabled);
        assert_eq!(
            of(&[("TOKENKEEPER_CONSOLE", "maybe")]).unwrap_err().var,
            "TOKENKEEPER_CONSOLE"
        );
    }
}
