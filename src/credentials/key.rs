//! Which credential: the one key that the lock, the read cache, the secret's name and the background
//! refresher all use: an org, a provider and the connection's name (several connections per provider).

pub use crate::ids::{ConnectionName, OrgId, UserId};
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

/// Which of the caller's connections a request names: a provider id and the connection's name. A bare
/// provider id (`"gcp"`) names its `default` connection, as every call did before names existed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub provider: String,
    pub name: ConnectionName,
}

impl Target {
    pub fn new(provider: impl Into<String>, name: ConnectionName) -> Self {
        Self {
            provider: provider.into(),
            name,
        }
    }
}

impl From<&str> for Target {
    fn from(provider: &str) -> Self {
        Self::new(provider, ConnectionName::default())
    }
}

impl From<&String> for Target {
    fn from(provider: &String) -> Self {
        Self::from(provider.as_str())
    }
}

impl From<&Target> for Target {
    fn from(target: &Target) -> Self {
        target.clone()
    }
}

/// One stored credential: an org's connection, under a name, to a provider of the catalog.
#[derive(Clone)]
pub struct ConnectionKey {
    org: OrgId,
    spec: &'static ProviderSpec,
    name: ConnectionName,
}

impl ConnectionKey {
    pub fn new(org: OrgId, spec: &'static ProviderSpec, name: ConnectionName) -> Self {
        Self { org, spec, name }
    }

    /// The key of a stored row (`None` for a provider the catalog no longer has).
    pub fn of_row(org_id: &str, provider: &str, name: &str) -> Option<Self> {
        Some(Self::new(
            OrgId::from_stored(org_id),
            crate::providers::find(provider)?,
            ConnectionName::from_stored(name),
        ))
    }

    pub fn name(&self) -> &ConnectionName {
        &self.name
    }

    /// How messages name the connection: `aws` for the default one, `aws "prod"` for the others.
    pub fn describe(&self) -> String {
        if self.name.is_default() {
            self.provider().to_string()
        } else {
            format!("{} {:?}", self.provider(), self.name.as_str())
        }
    }

    /// The provider and name this key stands for (what audit events record).
    pub fn target(&self) -> Target {
        Target::new(self.provider(), self.name.clone())
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

    /// The name of the cross-process lock ([`crate::db::Store::refresh_lock`]): `{org}\0{provider}` for the
    /// default connection, as every earlier version named it (instances of two versions side by side must
    /// take the same lock); `{org}\0{provider}\0{name}` for the others.
    pub(super) fn lock_name(&self) -> String {
        if self.name.is_default() {
            format!("{}\u{0}{}", self.org, self.provider())
        } else {
            format!("{}\u{0}{}\u{0}{}", self.org, self.provider(), self.name)
        }
    }

    /// How a change is announced to other processes, the text PostgreSQL's trigger on `connections` sends:
    /// `{provider}:{org}` for the default connection (as before names existed), `{provider}/{name}:{org}`
    /// for the others. Neither provider ids nor names hold a `:` or a `/`; org ids may, so they come last.
    pub(super) fn announcement(&self) -> String {
        if self.name.is_default() {
            format!("{}:{}", self.provider(), self.org)
        } else {
            format!("{}/{}:{}", self.provider(), self.name, self.org)
        }
    }

    /// The key an announcement names; `None` for text no key announces (another provider set, by hand).
    pub(super) fn from_announcement(text: &str) -> Option<Self> {
        let (head, org) = text.split_once(':')?;
        let (provider, name) = head.split_once('/').unwrap_or((head, ConnectionName::DEFAULT));
        Self::of_row(org, provider, name)
    }
}

impl PartialEq for ConnectionKey {
    fn eq(&self, other: &Self) -> bool {
        self.org == other.org && self.provider() == other.provider() && self.name == other.name
    }
}

impl Eq for ConnectionKey {}

impl std::hash::Hash for ConnectionKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.org.hash(state);
        self.provider().hash(state);
        self.name.hash(state);
    }
}

impl std::fmt::Debug for ConnectionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ConnectionKey({}, {}, {})", self.org, self.provider(), self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_round_trip_and_match_the_trigger() {
        let key = ConnectionKey::of_row("user:1", "gcp", "default").unwrap();
        // The trigger sends provider || ':' || user_id.
        assert_eq!(key.announcement(), "gcp:user:1");
        assert_eq!(ConnectionKey::from_announcement("gcp:user:1"), Some(key.clone()));
        assert_eq!(key.lock_name(), "user:1\u{0}gcp");
        assert_eq!(ConnectionKey::from_announcement("nosuchprovider:u"), None);
        assert_eq!(ConnectionKey::from_announcement("*"), None);
        // A named connection: its own announcement and lock, apart from the default one's.
        let named = ConnectionKey::of_row("user:1", "gcp", "prod").unwrap();
        assert_eq!(named.announcement(), "gcp/prod:user:1");
        assert_eq!(ConnectionKey::from_announcement("gcp/prod:user:1"), Some(named.clone()));
        assert_eq!(named.lock_name(), "user:1\u{0}gcp\u{0}prod");
        assert_ne!(named, key);
    }
}
