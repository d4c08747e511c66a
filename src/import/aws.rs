//! `user_connections`: Aurora's AWS accounts, several per org, each a role assumed with the external id of
//! the account's workspace (none there: the one Aurora keeps in the secret `aws-external-id-<user id>`, read
//! from OpenBao/Vault only). Each becomes a named connection of the `aws` provider (the name: the 12-digit
//! account id), owned like a `user_tokens` row (the row's org, else its user's, else their personal org).
//! There is no secret to adopt: the token data is what `PUT /api/tokens/aws?name=<account>` would store
//! (`role_arn`, `external_id`, plus the account's `region` and `read_only_role_arn` for display), written
//! to the secret store under the connection's own name when the import applies.
use std::collections::HashSet;

use secrecy::ExposeSecret as _;
use serde_json::{Map, Value};

use super::aurora::{AwsAccount, Snapshot};
use super::plan::{Orgs, Users};
use super::report::{Fate, Table};
use super::{ImportError, Importer, Move, Plan};
use crate::credentials::{Adopted, ConnectionKey, ConnectionName, OrgId};
use crate::providers::TokenData;
use crate::secrets::{SecretError, StoreKind};

const AWS: &str = "aws";

impl Importer {
    pub(super) async fn plan_aws(
        &self,
        snapshot: &Snapshot,
        users: &Users,
        orgs: &Orgs,
        plan: &mut Plan,
    ) -> Result<(), ImportError> {
        let spec = crate::providers::find(AWS).expect("aws is in the catalog");
        let mut seen = HashSet::new();
        for a in &snapshot.aws {
            let row = a.id.to_string();
            let skip = |plan: &mut Plan, reason: String| {
                plan.report.skip(Table::UserConnections, &row, reason);
                plan.report.count_provider(AWS, Fate::Skipped);
            };
            let Some((user_org, _)) = users.get(&a.user_id) else {
                skip(plan, "its user is not imported".into());
                continue;
            };
            if a.status != "active" {
                skip(plan, format!("disconnected (status {:?})", a.status));
                continue;
            }
            let org = (a.org_id.clone())
                .or_else(|| user_org.clone())
                .unwrap_or_else(|| a.user_id.clone());
            if org != a.user_id && !orgs.contains_key(&org) {
                skip(plan, format!("its org {org} is not imported"));
                continue;
            }
            let Some(name) = account_name(&a.account_id) else {
                skip(plan, format!("account id {:?} is not 12 digits", a.account_id));
                continue;
            };
            if !seen.insert((org.clone(), a.account_id.clone())) {
                skip(
                    plan,
                    format!("another row already gives org {org} AWS account {}", a.account_id),
                );
                continue;
            }
            let external_id = match snapshot.external_id(&org, &a.user_id) {
                Some(id) => id.to_string(),
                None => match self.stored_external_id(&a.user_id).await? {
                    Some(id) => id,
                    None => {
                        skip(
                            plan,
                            format!(
                                "no workspace of its org or user has an aws_external_id, and there is no \
                                 readable secret {}",
                                external_id_secret(&a.user_id)
                            ),
                        );
                        continue;
                    }
                },
            };
            let key = ConnectionKey::new(OrgId::from_stored(org.clone()), spec, name);
            let secret_name = self.credentials.secret_name(&key);
            let reference = self.secrets.reference(&secret_name);
            if let Some(existing) = self.store.get_connection(&org, AWS, &a.account_id).await? {
                if existing.secret_ref == reference {
                    plan.report.count(Table::UserConnections, Fate::Unchanged);
                    plan.report.count_provider(AWS, Fate::Unchanged);
                } else {
                    skip(
                        plan,
                        format!(
                            "Tokenkeeper has org {org}'s connection {} with another secret",
                            a.account_id
                        ),
                    );
                }
                continue;
            }
            if self.store.connection_by_secret_ref(&reference).await?.is_some() {
                skip(plan, format!("secret {secret_name} belongs to another connection"));
                continue;
            }
            let data = token_data(a, &external_id);
            // (the version the row will name, whether the import writes it)
            let (version, write) = match self.secrets.read(&secret_name, None).await {
                // Written by an import that failed after its secrets (then deleted again): the same data.
                Ok(Some(v)) if v.value.expose_secret() == data.encode().expose_secret() => (v.version, false),
                Ok(Some(_)) => {
                    skip(plan, format!("secret {secret_name} exists with other data"));
                    continue;
                }
                Ok(None) => (1, true),
                Err(SecretError::Unavailable(e)) => return Err(SecretError::Unavailable(e).into()),
                Err(e) => {
                    skip(plan, format!("secret {secret_name} is unreadable: {e}"));
                    continue;
                }
            };
            let adopted = Adopted {
                key: &key,
                user_id: &a.user_id,
                secret_name: &secret_name,
                secret_version: version,
                created_at: self.clock.now(),
            };
            match self.credentials.adopt(&adopted, &data) {
                Ok(connection) => {
                    if write {
                        plan.moves.push(Move {
                            name: secret_name,
                            data,
                        });
                    }
                    plan.write.connections.push(connection);
                    plan.report.count(Table::UserConnections, Fate::Added);
                    plan.report.count_provider(AWS, Fate::Added);
                }
                Err(e) => skip(plan, format!("its role does not fit the catalog: {e}")),
            }
        }
        Ok(())
    }
}

impl Importer {
    /// Aurora's second place for an external id: the secret `aws-external-id-<user id>` it writes beside
    /// its other secrets (same mount and base path), so read only from OpenBao/Vault, and only read. Its
    /// value is the id as text (a JSON string is taken too). `None` when there is none, or it is empty or
    /// unreadable; the value is never logged or reported.
    async fn stored_external_id(&self, user_id: &str) -> Result<Option<String>, ImportError> {
        let plain = user_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
        if self.secrets.kind() != StoreKind::Vault || user_id.is_empty() || !plain {
            return Ok(None);
        }
        let found = match self.secrets.read(&external_id_secret(user_id), None).await {
            Ok(found) => found,
            Err(SecretError::Unavailable(e)) => return Err(SecretError::Unavailable(e).into()),
            Err(_) => None,
        };
        Ok(found.and_then(|v| {
            let text = v.value.expose_secret().trim();
            let id = serde_json::from_str::<String>(text).unwrap_or_else(|_| text.to_string());
            (!id.trim().is_empty()).then(|| id.trim().to_string())
        }))
    }
}

/// The name of the secret Aurora keeps a user's AWS external id in.
fn external_id_secret(user_id: &str) -> String {
    format!("aws-external-id-{user_id}")
}

/// The connection's name: the account id, which AWS makes 12 digits (a valid connection name).
fn account_name(account_id: &str) -> Option<ConnectionName> {
    let digits = account_id.len() == 12 && account_id.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| ConnectionName::parse(account_id)).flatten()
}

/// What `PUT /api/tokens/aws` would store for the account: the role and the external id, and Aurora's
/// `region` and `read_only_role_arn` when it has them. Aurora's `role_arn` may be empty on accounts
/// connected read-only: then the read-only role is the one assumed.
fn token_data(a: &AwsAccount, external_id: &str) -> TokenData {
    let present = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
    let mut fields = Map::new();
    if let Some(role) = present(&a.role_arn).or_else(|| present(&a.read_only_role_arn)) {
        fields.insert("role_arn".into(), Value::String(role));
    }
    fields.insert("external_id".into(), Value::String(external_id.to_string()));
    for (name, value) in [("region", &a.region), ("read_only_role_arn", &a.read_only_role_arn)] {
        if let Some(v) = present(value) {
            fields.insert(name.into(), Value::String(v));
        }
    }
    TokenData::new(fields)
}
