//! Aurora's secret naming, kept exactly so that both systems can share a Vault:
//! `{prefix}-{env}-{user}-{provider}-token`, the user id reduced to letters, digits, `-` and `_`. An org's
//! id stands where the user's stood: a personal org's id is its user's, so the default connection of a
//! personal org keeps Part 1's name exactly; a shared org's connections carry the org's id (`org-...`).
//! A connection with a name other than `default` adds it before `-token`
//! (`aurora-dev-user123-aws-prod-token`): every connection has a secret of its own.

use super::ConnectionKey;

/// The parts of a secret's name that come from the deployment.
#[derive(Debug, Clone)]
pub struct NamingSettings {
    /// `TOKENKEEPER_SECRET_PREFIX` (default `aurora`).
    pub prefix: String,
    /// `TOKENKEEPER_ENV` (default `dev`).
    pub env: String,
}

impl NamingSettings {
    /// The name of `key`'s secret.
    pub fn secret_name(&self, key: &ConnectionKey) -> String {
        if key.name().is_default() {
            secret_name(&self.prefix, &self.env, key.org().as_str(), key.provider())
        } else {
            let provider = format!("{}-{}", key.provider(), key.name());
            secret_name(&self.prefix, &self.env, key.org().as_str(), &provider)
        }
    }
}

pub fn sanitize_user_id(user_id: &str) -> String {
    user_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

/// Only ids that the reduction leaves unchanged may own secrets: otherwise `a.b` and `ab` (or any two ids
/// of other characters only) would share one secret name, and one user could read, refresh over or
/// destroy the other's secret. Every id this service issues (UUIDs) qualifies.
pub fn check_user_id(user_id: &str) -> Result<(), crate::providers::FieldError> {
    if user_id.is_empty() || sanitize_user_id(user_id) != user_id {
        return Err(crate::providers::FieldError::new(
            "userId",
            "must consist only of letters, digits, '-' and '_' to own credentials (it names the user's secrets)",
        ));
    }
    Ok(())
}

pub fn secret_name(prefix: &str, env: &str, user_id: &str, provider: &str) -> String {
    format!("{prefix}-{env}-{}-{provider}-token", sanitize_user_id(user_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_seed_example() {
        assert_eq!(
            secret_name("aurora", "dev", "user123", "gcp"),
            "aurora-dev-user123-gcp-token"
        );
        assert_eq!(
            secret_name("acme", "prod", "a.b@c/d e", "aws"),
            "acme-prod-abcde-aws-token"
        );
        assert_eq!(sanitize_user_id("0b7e-4a_Z"), "0b7e-4a_Z");
    }

    #[test]
    fn named_connections_add_their_name_before_token() {
        let naming = NamingSettings {
            prefix: "aurora".into(),
            env: "dev".into(),
        };
        let key = |org, name| ConnectionKey::of_row(org, "aws", name).unwrap();
        assert_eq!(
            naming.secret_name(&key("user123", "default")),
            "aurora-dev-user123-aws-token"
        );
        assert_eq!(
            naming.secret_name(&key("user123", "prod")),
            "aurora-dev-user123-aws-prod-token"
        );
        let shared = "org-0123456789abcdef0123456789abcdef";
        assert_eq!(
            naming.secret_name(&key(shared, "prod")),
            format!("aurora-dev-{shared}-aws-prod-token")
        );
    }

    #[test]
    fn only_ids_the_reduction_keeps_may_own_secrets() {
        assert!(check_user_id("0b7e-4a_Z").is_ok());
        for bad in ["a.b", "a b", "", "é", "auth0|123", "a/../b"] {
            assert!(check_user_id(bad).is_err(), "{bad:?}");
        }
    }
}
