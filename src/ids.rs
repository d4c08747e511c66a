//! The ids of who acts and where: a user, and the organization whose connections they act on. Ground
//! types: every layer names users and orgs with them, none of them depends on a service.

/// A user's id, as the identity layer established it (a UUID for users Tokenkeeper registered, any
/// text for an Auth.js `sub` or an internal caller's `X-User-ID`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(String);

impl UserId {
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for UserId {
    fn from(id: &str) -> Self {
        Self::new(id)
    }
}

impl From<String> for UserId {
    fn from(id: String) -> Self {
        Self(id)
    }
}

impl std::fmt::Display for UserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An organization's id. A user's personal org has the user's own id (so that its connections keep the
/// names Part 1 gave them: secrets, locks, change announcements); a shared org's id is `org-` and 32
/// lowercase hex digits, generated when it is created.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrgId(String);

/// The most an org id may hold (a user id from outside may have up to 255 characters).
const MAX_ORG_ID: usize = 255;

impl OrgId {
    /// The personal org of `user`.
    pub fn personal(user: &UserId) -> Self {
        Self(user.as_str().to_string())
    }

    /// A new shared org's id.
    pub fn generate() -> Self {
        Self(format!("org-{}", uuid::Uuid::new_v4().simple()))
    }

    /// An id as a client sent it (`X-Org-ID`, a path): `None` when it cannot be any org's id (empty, too
    /// long, control characters), which callers answer with 400.
    pub fn parse(text: &str) -> Option<Self> {
        let ok = !text.is_empty() && text.len() <= MAX_ORG_ID && !text.chars().any(char::is_control);
        ok.then(|| Self(text.to_string()))
    }

    /// An id read back from the database.
    pub fn from_stored(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for OrgId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The name of one of an org's connections to a provider (`?name=`): 1 to 40 of `[a-z0-9-]`, starting with a
/// letter or digit; `default` when none is given. It goes into secret names, lock names and change
/// announcements, so it holds neither `:` nor `/` (the announcement's separators) nor anything a secret name
/// would have to reduce.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionName(String);

impl ConnectionName {
    pub const DEFAULT: &'static str = "default";
    const MAX: usize = 40;

    /// A name as a client sent it; `None` outside the pattern (answered with 400).
    pub fn parse(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        let ok = matches!(bytes.first(), Some(b) if b.is_ascii_lowercase() || b.is_ascii_digit())
            && bytes.len() <= Self::MAX
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
        ok.then(|| Self(text.to_string()))
    }

    /// A name read back from the database (written through [`ConnectionName::parse`]).
    pub fn from_stored(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    pub fn is_default(&self) -> bool {
        self.0 == Self::DEFAULT
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for ConnectionName {
    fn default() -> Self {
        Self(Self::DEFAULT.to_string())
    }
}

impl std::fmt::Display for ConnectionName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personal_orgs_carry_the_user_id_and_shared_ones_a_generated_id() {
        assert_eq!(OrgId::personal(&UserId::from("user123")).as_str(), "user123");
        let shared = OrgId::generate();
        assert!(
            shared.as_str().starts_with("org-") && shared.as_str().len() == 36,
            "{shared}"
        );
        assert_ne!(OrgId::generate(), shared);
    }

    #[test]
    fn ids_from_clients_are_bounded_plain_text() {
        assert!(OrgId::parse("org-0123").is_some());
        for bad in ["", "a\nb", &"x".repeat(256)] {
            assert!(OrgId::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn connection_names_follow_the_pattern() {
        assert!(ConnectionName::default().is_default());
        for good in ["default", "prod", "0", "aws-prod-2", &"a".repeat(40)] {
            assert_eq!(
                ConnectionName::parse(good).map(|n| n.0),
                Some(good.to_string()),
                "{good:?}"
            );
        }
        for bad in [
            "",
            "-prod",
            "Prod",
            "a_b",
            "a.b",
            "a/b",
            "a:b",
            "a b",
            "é",
            &"a".repeat(41),
        ] {
            assert!(ConnectionName::parse(bad).is_none(), "{bad:?}");
        }
    }
}
