//! Users, orgs and memberships: what Tokenkeeper lacks, what it has already (unchanged), and what it has
//! with other data (skipped).

use std::collections::{HashMap, HashSet};

use secrecy::{ExposeSecret as _, SecretString};

use super::aurora::Snapshot;
use super::report::{Fate, Table};
use super::{ImportError, Importer, Plan, Progress};
use crate::db::{ImportedMember, OrgRow, User};
use crate::orgs::Role;

/// The Aurora users present in Tokenkeeper after the import (added or unchanged), with their Aurora row's
/// org and role.
pub(super) type Users = HashMap<String, (Option<String>, Option<String>)>;
/// The Aurora orgs present after the import, with their creator.
pub(super) type Orgs = HashMap<String, Option<String>>;

impl Importer {
    pub(super) async fn plan_users(
        &self,
        snapshot: &Snapshot,
        plan: &mut Plan,
        progress: Progress<'_>,
    ) -> Result<Users, ImportError> {
        let mut users = Users::new();
        let total = snapshot.users.len();
        for (done, u) in snapshot.users.iter().enumerate() {
            progress("users", done, total);
            let known = || (u.org_id.clone(), u.role.clone());
            let fate = if let Some(existing) = self.store.user_by_id(&u.id).await? {
                let same_hash =
                    existing.password_hash.as_ref().map(|h| h.expose_secret()) == u.password_hash.as_deref();
                let same_flag = existing.must_change_password == u.must_change_password;
                if existing.email == u.email && existing.name == u.name && same_hash && same_flag {
                    Ok(())
                } else {
                    Err("Tokenkeeper has a user of this id with another email, name, password or password flag")
                }
            } else if self.store.user_by_email(&u.email).await?.is_some() {
                Err("the email belongs to another Tokenkeeper user (another id)")
            } else if self.store.org_by_id(&u.id).await?.is_some() {
                Err("Tokenkeeper has an org of this id (it would be the user's personal org)")
            } else {
                plan.write.users.push(User {
                    id: u.id.clone(),
                    email: u.email.clone(),
                    name: u.name.clone(),
                    password_hash: u.password_hash.clone().map(SecretString::from),
                    password_changed_at: None,
                    password_generation: 0,
                    created_at: u.created_at,
                    must_change_password: u.must_change_password,
                });
                users.insert(u.id.clone(), known());
                plan.report.count(Table::Users, Fate::Added);
                continue;
            };
            match fate {
                Ok(()) => {
                    users.insert(u.id.clone(), known());
                    plan.report.count(Table::Users, Fate::Unchanged);
                }
                Err(reason) => plan.report.skip(Table::Users, &u.id, reason),
            }
        }
        Ok(users)
    }

    pub(super) async fn plan_orgs(
        &self,
        snapshot: &Snapshot,
        users: &Users,
        plan: &mut Plan,
    ) -> Result<Orgs, ImportError> {
        let mut orgs = Orgs::new();
        for o in &snapshot.orgs {
            match self.store.org_by_id(&o.id).await? {
                Some(existing) if !existing.personal && existing.name == o.name => {
                    plan.report.count(Table::Organizations, Fate::Unchanged);
                }
                Some(_) => {
                    plan.report.skip(
                        Table::Organizations,
                        &o.id,
                        "Tokenkeeper has an org of this id with other data",
                    );
                    continue;
                }
                None if users.contains_key(&o.id) => {
                    plan.report
                        .skip(Table::Organizations, &o.id, "the id is a user's (their personal org)");
                    continue;
                }
                None => {
                    plan.write.orgs.push(OrgRow {
                        id: o.id.clone(),
                        name: o.name.clone(),
                        personal: false,
                        created_by: o.created_by.clone().unwrap_or_default(),
                        created_at: o.created_at,
                    });
                    plan.report.count(Table::Organizations, Fate::Added);
                }
            }
            orgs.insert(o.id.clone(), o.created_by.clone());
        }
        Ok(orgs)
    }

    /// Aurora's rule, as it repairs grants at start-up: an org's creator is its admin; otherwise the `g`
    /// grant; otherwise the user's `role` column (for their own org); otherwise `viewer`.
    pub(super) async fn plan_members(
        &self,
        snapshot: &Snapshot,
        users: &Users,
        orgs: &Orgs,
        plan: &mut Plan,
    ) -> Result<(), ImportError> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        let mut seen = HashSet::new();
        let own = snapshot
            .users
            .iter()
            .filter_map(|u| Some((u.id.clone(), u.org_id.clone()?)));
        let granted = snapshot.grants.iter().map(|g| (g.user_id.clone(), g.org_id.clone()));
        for pair in own.chain(granted) {
            if seen.insert(pair.clone()) {
                pairs.push(pair);
            }
        }
        for (user_id, org_id) in pairs {
            let row = format!("{user_id} in {org_id}");
            let (Some((user_org, user_role)), Some(creator)) = (users.get(&user_id), orgs.get(&org_id)) else {
                plan.report
                    .skip(Table::Memberships, row, "its user or org is not imported");
                continue;
            };
            let grant = snapshot
                .grants
                .iter()
                .rev()
                .find(|g| g.user_id == user_id && g.org_id == org_id)
                .map(|g| g.role.clone());
            let own_role = (user_org.as_deref() == Some(&org_id))
                .then(|| user_role.clone())
                .flatten();
            let role = if creator.as_deref() == Some(&user_id) {
                Some(Role::Admin)
            } else {
                grant
                    .or(own_role)
                    .map_or(Some(Role::Viewer), |r| r.parse::<Role>().ok())
            };
            let Some(role) = role else {
                plan.report.skip(Table::Memberships, row, "unknown role");
                continue;
            };
            match self.store.membership(&org_id, &user_id).await? {
                Some((_, existing)) if existing == role.as_str() => {
                    plan.report.count(Table::Memberships, Fate::Unchanged);
                }
                Some(_) => plan
                    .report
                    .skip(Table::Memberships, row, "Tokenkeeper gives this member another role"),
                None => {
                    plan.write.members.push(ImportedMember {
                        org_id,
                        user_id,
                        role: role.as_str().to_string(),
                        created_at: self.clock.now_ms(),
                    });
                    plan.report.count(Table::Memberships, Fate::Added);
                }
            }
        }
        Ok(())
    }
}
