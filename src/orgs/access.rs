//! Who may do what in an org: roles, permissions, and the one table between them ([`Acting::require`]).

use serde::Serialize;

use super::OrgError;
use crate::ids::{OrgId, UserId};

/// A member's role, Aurora's names; ordered `viewer < editor < admin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Editor,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Editor => "editor",
            Self::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = OrgError;

    fn from_str(s: &str) -> Result<Self, OrgError> {
        match s {
            "viewer" => Ok(Self::Viewer),
            "editor" => Ok(Self::Editor),
            "admin" => Ok(Self::Admin),
            _ => Err(OrgError::BadRole),
        }
    }
}

/// What a request asks to do in its org.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// List connections, read their metadata and status.
    ReadConnections,
    /// Store, replace, refresh and delete connections.
    WriteConnections,
    /// Read a connection's secret token data.
    ReadValues,
    /// List, add, change and remove members.
    ManageMembers,
    /// Read the org's audit trail.
    ReadOrgAudit,
}

/// How the caller authenticated, as far as permissions care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// A Tokenkeeper session or an Auth.js token sent as Bearer.
    Bearer,
    /// The Auth.js session cookie of a browser: never given secret values.
    BrowserCookie,
    /// The platform's backend (`X-User-ID` with the internal secret): reads values for any member.
    Internal,
}

/// A request's caller in the org it acts in, with their role there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acting {
    pub user: UserId,
    pub org: OrgId,
    pub role: Role,
    pub channel: Channel,
}

impl Acting {
    /// The permission table: viewers read metadata; editors also write and read values; admins also
    /// manage members and read the org's audit trail. A browser cookie never reads values; an internal
    /// caller reads them for any member (the platform's backend using a credential on the user's behalf).
    pub fn require(&self, permission: Permission) -> Result<(), OrgError> {
        let needed = match permission {
            Permission::ReadConnections => Role::Viewer,
            Permission::WriteConnections => Role::Editor,
            Permission::ReadValues => match self.channel {
                Channel::BrowserCookie => return Err(OrgError::CookieReadsNoValues),
                Channel::Internal => Role::Viewer,
                Channel::Bearer => Role::Editor,
            },
            Permission::ManageMembers | Permission::ReadOrgAudit => Role::Admin,
        };
        if self.role >= needed {
            Ok(())
        } else {
            Err(OrgError::Forbidden(needed))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_and_parsed_by_their_names() {
        assert!(Role::Viewer < Role::Editor && Role::Editor < Role::Admin);
        for role in [Role::Viewer, Role::Editor, Role::Admin] {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
        }
        assert!("owner".parse::<Role>().is_err());
    }
}
