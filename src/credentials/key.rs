//! Which credential: the one key that the lock, the read cache, the secret's name and the background
//! refresher all use, so that naming a credential by more than an org and a provider is one change here.

pub use crate::ids::{OrgId, UserId};
use crate::providers::ProviderSpec;

/// Who acts on credentials, and in which org: the org owns the connections, the user is recorded in the
/// audit trail (and as the creator of a connection they store first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user: UserId,
    pub org: OrgId,
}

impl Caller {
    /// `user` acting in their personal org (the library's and the CLI's default, as in Part 1).
    pub fn personal(user: UserId) -> Self {
        Self {
            org: OrgId::personal(&user),
            user,
        }
    }

    pub fn new(user: UserId, org: OrgId) -> Self {
        Self { user, org }
    }
}

/// A user id acting in its personal org: the seed's `store_tokens_in_db(user, ...)` and
/// `get_token_data(user, ...)` keep their meaning.
impl From<&str> for Caller {
    fn from(user: &str) -> Self {
        Self::personal(UserId::from(user))
    }
}

impl From<String> for Caller {
    fn from(user: String) -> Self {
        Self::personal(UserId::from(user))
    }
}

/// One stored credential: an org's connection to a provider of the catalog.
#[derive(Clone)]
pub struct ConnectionKey {
    org: OrgId,
    spec: &'static ProviderSpec,
}

impl ConnectionKey {
    pub fn new(org: OrgId, spec: &'static ProviderSpec) -> Self {
        Self { org, spec }
    }

    /// The key of a stored row (`None` for a provider the catalog no longer has).
    pub fn of_row(org_id: &str, provider: &str) -> Option<Self> {
        Some(Self::new(OrgId::from_stored(org_id), crate::providers::find(provider)?))
    }

    pub fn org(&self) -> &OrgId {
        &self.org
    }

    pub fn spec(&self) -> &'static ProviderSpec {
        self.spec
    }

    /// The catalog id of the provider (`gcp`, `aws`, ...).
    pub fn provider(&self) -> &'static str {
        self.spec.id
    }

    /// The name of the cross-process lock ([`crate::db::Store::refresh_lock`]): `{org}\0{provider}`; for a
    /// personal org, `{user}\0{provider}` as every earlier version named it (instances of two versions side
    /// by side must take the same lock).
    pub(super) fn lock_name(&self) -> String {
        format!("{}\u{0}{}", self.org, self.provider())
    }

    /// How a change is announced to other processes: `{provider}:{org}`, the text PostgreSQL's trigger on
    /// `connections` sends (migration 0005; for a personal org the same text as 0002's `{provider}:{user}`).
    /// Provider ids never hold a `:`.
    pub(super) fn announcement(&self) -> String {
        format!("{}:{}", self.provider(), self.org)
    }

    /// The key an announcement names; `None` for text no key announces (another provider set, by hand).
    pub(super) fn from_announcement(text: &str) -> Option<Self> {
        let (provider, org) = text.split_once(':')?;
        Self::of_row(org, provider)
    }
}

impl PartialEq for ConnectionKey {
    fn eq(&self, other: &Self) -> bool {
        self.org == other.org && self.provider() == other.provider()
    }
}

impl Eq for ConnectionKey {}

impl std::hash::Hash for ConnectionKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.org.hash(state);
        self.provider().hash(state);
    }
}

impl std::fmt::Debug for ConnectionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ConnectionKey({}, {})", self.org, self.provider())
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
