//! Aurora's secret naming, kept exactly so that both systems can share a Vault:
//! `{prefix}-{env}-{user}-{provider}-token`, the user id reduced to letters, digits, `-` and `_`.

pub fn sanitize_user_id(user_id: &str) -> String {
    user_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
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
}
