//! Which credential: the one key that the lock, the read cache, the secret's name and the background
//! refresher all use, so that naming a credential by more than a user and a provider is one change here.

use crate::providers::ProviderSpec;

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

/// One stored credential: a user's connection to a provider of the catalog.
#[derive(Clone)]
pub struct ConnectionKey {
    user: UserId,
    spec: &'static ProviderSpec,
}

impl ConnectionKey {
    pub fn new(user: UserId, spec: &'static ProviderSpec) -> Self {
        Self { user, spec }
    }

    /// The key of a stored row (`None` for a provider the catalog no longer has).
    pub fn of_row(user_id: &str, provider: &str) -> Option<Self> {
        Some(Self::new(UserId::from(user_id), crate::providers::find(provider)?))
    }

    pub fn user(&self) -> &UserId {
        &self.user
    }

    pub fn spec(&self) -> &'static ProviderSpec {
        self.spec
    }

    /// The catalog id of the provider (`gcp`, `aws`, ...).
    pub fn provider(&self) -> &'static str {
        self.spec.id
    }

    /// The name of the cross-process lock ([`crate::db::Store::refresh_lock`]): `{user}\0{provider}`, as
    /// every earlier version named it (instances of two versions side by side must take the same lock).
    pub(super) fn lock_name(&self) -> String {
        format!("{}\u{0}{}", self.user, self.provider())
    }

    /// How a change is announced to other processes: `{provider}:{user}`, the text PostgreSQL's trigger on
    /// `connections` sends (migration 0002). Provider ids never hold a `:`.
    pub(super) fn announcement(&self) -> String {
        format!("{}:{}", self.provider(), self.user)
    }

    /// The key an announcement names; `None` for text no key announces (another provider set, by hand).
    pub(super) fn from_announcement(text: &str) -> Option<Self> {
        let (provider, user) = text.split_once(':')?;
        Self::of_row(user, provider)
    }
}

impl PartialEq for ConnectionKey {
    fn eq(&self, other: &Self) -> bool {
        self.user == other.user && self.provider() == other.provider()
    }
}

impl Eq for ConnectionKey {}

impl std::hash::Hash for ConnectionKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.user.hash(state);
        self.provider().hash(state);
    }
}

impl std::fmt::Debug for ConnectionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ConnectionKey({}, {})", self.user, self.provider())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_round_trip_and_match_the_trigger() {
        let key = ConnectionKey::of_row("user:1", "gcp").unwrap();
        // The trigger sends provider || ':' || user_id.
        assert_eq!(key.announcement(), "gcp:user:1");
        assert_eq!(ConnectionKey::from_announcement("gcp:user:1"), Some(key.clone()));
        assert_eq!(key.lock_name(), "user:1\u{0}gcp");
        assert_eq!(ConnectionKey::from_announcement("nosuchprovider:u"), None);
        assert_eq!(ConnectionKey::from_announcement("*"), None);
    }
}
