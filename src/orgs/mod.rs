//! Organizations (`docs/ORGS.md`): an org owns connections; its members have a [`Role`]. Every user has a
//! personal org (its id is theirs), made at registration, or when a user Tokenkeeper did not register
//! (Auth.js, internal callers) is first seen. [`OrgService::acting`] resolves the org a request acts in
//! (`X-Org-ID`, else the caller's personal org) and the caller's role there; [`Acting::require`] is the
//! permission table.

mod access;

use serde::Serialize;
use utoipa::ToSchema;

use crate::clock::SharedClock;
use std::sync::Arc;

use crate::db::identity_cache::Changed;
use crate::db::{DbError, IdentityCache, MemberChange, OrgRow, SharedStore};
use crate::ids::{OrgId, UserId};
pub use access::{Acting, Channel, Permission, Role};

/// The longest org name, in characters.
pub const MAX_NAME: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum OrgError {
    #[error("X-Org-ID is not a valid organization id")]
    BadOrgId,
    /// Not a member, or no such org: the two are not told apart.
    #[error("Organization not found")]
    OrgNotFound,
    #[error("This needs the {} role in the organization", .0.as_str())]
    Forbidden(Role),
    #[error("Credentials are only given to Bearer and internal callers")]
    CookieReadsNoValues,
    #[error("role must be one of viewer, editor, admin")]
    BadRole,
    #[error("name must be 1 to 100 characters, without control characters")]
    BadName,
    #[error("User not found")]
    UserNotFound,
    #[error("The user is already a member of the organization")]
    AlreadyMember,
    #[error("The user is not a member of the organization")]
    NotMember,
    #[error("The organization's last admin cannot be removed or demoted")]
    LastAdmin,
    #[error(transparent)]
    Store(#[from] DbError),
}

/// An org as its member sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrgView {
    /// The org's id: `X-Org-ID` takes it.
    pub id: String,
    pub name: String,
    /// The caller's personal org (its id is the caller's user id).
    pub personal: bool,
    /// The caller's role in it.
    pub role: Role,
}

/// A member of an org.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberView {
    pub user_id: String,
    /// For users registered with Tokenkeeper.
    pub email: Option<String>,
    pub name: Option<String>,
    pub role: Role,
}

fn role_of(text: &str) -> Result<Role, OrgError> {
    // Stored roles are checked by the schema; anything else is a corrupt row.
    text.parse().map_err(|_| {
        OrgError::Store(DbError::Sql(sqlx::Error::Decode(
            format!("unknown role {text:?}").into(),
        )))
    })
}

#[derive(Clone)]
pub struct OrgService {
    store: SharedStore,
    /// Roles are read through it (every request needs one); every membership change drops them.
    identity: Arc<IdentityCache>,
    clock: SharedClock,
}

impl OrgService {
    pub fn new(store: SharedStore, identity: Arc<IdentityCache>, clock: SharedClock) -> Self {
        Self { store, identity, clock }
    }

    /// The org a request acts in and the caller's role there: `org` as sent (`X-Org-ID`, a path), else
    /// the caller's personal org, made now for a user first seen. Not a member: [`OrgError::OrgNotFound`].
    pub async fn acting(&self, user: UserId, org: Option<&str>, channel: Channel) -> Result<Acting, OrgError> {
        let org = match org {
            Some(text) => OrgId::parse(text).ok_or(OrgError::BadOrgId)?,
            None => OrgId::personal(&user),
        };
        let mut found = self.identity.role(org.as_str(), user.as_str()).await?;
        if found.is_none() && org == OrgId::personal(&user) {
            // Nothing cached can be wrong about a membership that did not exist (absences are not cached).
            let now = self.clock.now_ms();
            self.store
                .ensure_personal_org(user.as_str(), user.as_str(), now)
                .await?;
            found = self.identity.role(org.as_str(), user.as_str()).await?;
        }
        let role = found.ok_or(OrgError::OrgNotFound)?;
        Ok(Acting {
            role: role_of(&role)?,
            user,
            org,
            channel,
        })
    }

    /// The caller's orgs with their role, personal first.
    pub async fn list(&self, user: &UserId) -> Result<Vec<OrgView>, OrgError> {
        let rows = self.store.orgs_of(user.as_str()).await?;
        rows.into_iter()
            .map(|(org, role)| {
                Ok(OrgView {
                    personal: org.personal && org.id == user.as_str(),
                    id: org.id,
                    name: org.name,
                    role: role_of(&role)?,
                })
            })
            .collect()
    }

    /// The operator's `org create`: a new org whose admin is the registered user with `email`.
    pub async fn create_for(&self, email: &str, name: &str) -> Result<OrgView, OrgError> {
        let user = self.store.user_by_email(email).await?.ok_or(OrgError::UserNotFound)?;
        self.create(&UserId::from(user.id), name).await
    }

    /// A new shared org, with `user` its admin.
    pub async fn create(&self, user: &UserId, name: &str) -> Result<OrgView, OrgError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
            return Err(OrgError::BadName);
        }
        let row = OrgRow {
            id: OrgId::generate().as_str().to_string(),
            name: name.to_string(),
            personal: false,
            created_by: user.as_str().to_string(),
            created_at: self.clock.now_ms(),
        };
        self.store.create_org(&row).await?;
        Ok(OrgView {
            id: row.id,
            name: row.name,
            personal: false,
            role: Role::Admin,
        })
    }

    pub async fn members(&self, acting: &Acting) -> Result<Vec<MemberView>, OrgError> {
        acting.require(Permission::ManageMembers)?;
        let rows = self.store.members(acting.org.as_str()).await?;
        rows.into_iter()
            .map(|m| {
                Ok(MemberView {
                    role: role_of(&m.role)?,
                    user_id: m.user_id,
                    email: m.email,
                    name: m.name,
                })
            })
            .collect()
    }

    /// Adds a registered user, by email.
    pub async fn add_member(&self, acting: &Acting, email: &str, role: &str) -> Result<MemberView, OrgError> {
        acting.require(Permission::ManageMembers)?;
        self.admit(acting.org.as_str(), email, role).await
    }

    /// Adds a registered user to `org`, by email, without asking who acts: the operator's `org add-member`
    /// (who has the database anyway), and [`OrgService::add_member`] once it checked the caller.
    pub async fn admit(&self, org: &str, email: &str, role: &str) -> Result<MemberView, OrgError> {
        let role: Role = role.parse()?;
        let user = self.store.user_by_email(email).await?.ok_or(OrgError::UserNotFound)?;
        let now = self.clock.now_ms();
        match self.store.add_member(org, &user.id, role.as_str(), now).await {
            Ok(true) => self.identity.changed(Changed::User(&user.id)).await,
            Ok(false) => return Err(OrgError::OrgNotFound),
            Err(DbError::Conflict) => return Err(OrgError::AlreadyMember),
            Err(e) => return Err(e.into()),
        }
        Ok(MemberView {
            user_id: user.id,
            email: Some(user.email),
            name: user.name,
            role,
        })
    }

    /// A member's new role; the last admin keeps theirs.
    pub async fn set_role(&self, acting: &Acting, member: &UserId, role: &str) -> Result<MemberView, OrgError> {
        acting.require(Permission::ManageMembers)?;
        let role: Role = role.parse()?;
        self.change(acting, member, Some(role)).await?;
        let members = self.members(acting).await?;
        // Removed meanwhile by another admin: as if it had not been a member.
        members
            .into_iter()
            .find(|m| m.user_id == member.as_str())
            .ok_or(OrgError::NotMember)
    }

    /// Removes a member (themselves included); never the last admin.
    pub async fn remove(&self, acting: &Acting, member: &UserId) -> Result<(), OrgError> {
        acting.require(Permission::ManageMembers)?;
        self.change(acting, member, None).await
    }

    async fn change(&self, acting: &Acting, member: &UserId, role: Option<Role>) -> Result<(), OrgError> {
        let org = acting.org.as_str();
        let by = acting.user.as_str();
        match self
            .store
            .change_member(org, by, member.as_str(), role.map(Role::as_str))
            .await?
        {
            MemberChange::Done => {
                self.identity.changed(Changed::User(member.as_str())).await;
                Ok(())
            }
            MemberChange::NotAdmin => Err(OrgError::Forbidden(Role::Admin)),
            MemberChange::NotMember => Err(OrgError::NotMember),
            MemberChange::LastAdmin => Err(OrgError::LastAdmin),
        }
    }
}
