//! `user_tokens` rows: connections owned by the row's org (a row without one: its user's org, else the
//! user's personal org), created by the row's user. A reference is adopted as it is; a secret found only in
//! Aurora's SQL (`token_data`, or Azure's `client_secret` and its columns) is moved to the secret store
//! under the name Tokenkeeper gives the connection.

use std::collections::HashSet;

use secrecy::ExposeSecret as _;
use serde_json::{Map, Value};

use super::aurora::{Snapshot, TokenRow};
use super::plan::{Orgs, Users};
use super::report::{Fate, Moved, Table, Unreadable};
use super::{ImportError, Importer, Move, Options, Plan, Progress};
use crate::clock::Timestamp;
use crate::credentials::{Adopted, ConnectionKey, ConnectionName, OrgId};
use crate::providers::TokenData;
use crate::secrets::SecretError;

/// Where a row's secret is.
enum Source {
    /// A reference into the configured store.
    Referenced(String),
    /// Only in Aurora's SQL: the data, and the columns it came from.
    InSql(TokenData, Vec<&'static str>),
}

impl Importer {
    pub(super) async fn plan_connections(
        &self,
        snapshot: &Snapshot,
        users: &Users,
        orgs: &Orgs,
        options: Options,
        plan: &mut Plan,
        progress: Progress<'_>,
    ) -> Result<(), ImportError> {
        let mut seen = HashSet::new();
        let total = snapshot.tokens.len();
        for (done, t) in snapshot.tokens.iter().enumerate() {
            progress("user_tokens", done, total);
            let row = t.id.to_string();
            let skip = |plan: &mut Plan, reason: String| {
                plan.report.skip(Table::UserTokens, &row, reason);
                plan.report.count_provider(&t.provider, Fate::Skipped);
            };
            let Some((user_org, _)) = users.get(&t.user_id) else {
                skip(plan, "its user is not imported".into());
                continue;
            };
            let Some(spec) = crate::providers::find(&t.provider) else {
                skip(plan, format!("unknown provider {:?}", t.provider));
                continue;
            };
            let org = t
                .org_id
                .clone()
                .or_else(|| user_org.clone())
                .unwrap_or_else(|| t.user_id.clone());
            if org != t.user_id && !orgs.contains_key(&org) {
                skip(plan, format!("its org {org} is not imported"));
                continue;
            }
            if !seen.insert((org.clone(), spec.id)) {
                skip(
                    plan,
                    format!("another row already gives org {org} its {} connection", spec.id),
                );
                continue;
            }
            let key = ConnectionKey::new(
                OrgId::from_stored(org.clone()),
                spec,
                ConnectionName::from_stored(ConnectionName::DEFAULT),
            );
            let source = match (&t.secret_ref, in_sql(t)) {
                _ if !t.is_active => None,
                (Some(r), _) => Some(Ok(r)),
                (None, Some(found)) => Some(Err(found)),
                (None, None) => None,
            };
            let Some(source) = source else {
                skip(plan, "disconnected (is_active false, or no reference)".into());
                continue;
            };
            let source = match source {
                Ok(r) if r.starts_with("awssm:") => {
                    skip(
                        plan,
                        "an AWS Secrets Manager reference: not supported, connect it again".into(),
                    );
                    continue;
                }
                Ok(r) => match self.secrets.name_of(r) {
                    Some(name) => Source::Referenced(name),
                    None => {
                        skip(
                            plan,
                            format!("malformed reference, or not in the configured secret store: {r}"),
                        );
                        continue;
                    }
                },
                Err((data, columns)) => Source::InSql(data, columns),
            };
            let name = match &source {
                Source::Referenced(name) => name.clone(),
                Source::InSql(..) => self.credentials.secret_name(&key),
            };
            let reference = self.secrets.reference(&name);
            if let Some(existing) = self
                .store
                .get_connection(&org, spec.id, ConnectionName::DEFAULT)
                .await?
            {
                if existing.secret_ref == reference {
                    if options.verify {
                        self.verify(t, &name, &reference, plan).await?;
                    }
                    plan.report.count(Table::UserTokens, Fate::Unchanged);
                    plan.report.count_provider(spec.id, Fate::Unchanged);
                } else {
                    skip(
                        plan,
                        format!("Tokenkeeper has org {org}'s {} connection with another secret", spec.id),
                    );
                }
                continue;
            }
            let found = match self.secrets.read(&name, None).await {
                Ok(found) => found,
                Err(SecretError::Unavailable(e)) => return Err(SecretError::Unavailable(e).into()),
                Err(e) => {
                    self.unreadable(t, &reference, e.to_string(), plan);
                    skip(plan, format!("secret {name} is unreadable"));
                    continue;
                }
            };
            let (data, version) = match (source, found) {
                (Source::Referenced(_), Some(v)) => match TokenData::decode(&v.value) {
                    Ok(data) => (data, v.version),
                    Err(e) => {
                        self.unreadable(t, &reference, e.to_string(), plan);
                        skip(plan, format!("secret {name} is unreadable"));
                        continue;
                    }
                },
                (Source::Referenced(_), None) => {
                    self.unreadable(t, &reference, "missing".into(), plan);
                    skip(plan, format!("secret {name} is missing"));
                    continue;
                }
                (Source::InSql(data, _), Some(v)) if v.value.expose_secret() == data.encode().expose_secret() => {
                    (data, v.version)
                }
                (Source::InSql(..), Some(_)) => {
                    skip(plan, format!("secret {name} exists with other data"));
                    continue;
                }
                (Source::InSql(data, columns), None) => {
                    plan.report.moved.push(Moved {
                        row: t.id,
                        columns,
                        secret_name: name.clone(),
                    });
                    plan.moves.push(Move {
                        name: name.clone(),
                        data: data.clone(),
                    });
                    (data, 1)
                }
            };
            if options.verify {
                plan.report.verified += 1;
            }
            let adopted = Adopted {
                key: &key,
                user_id: &t.user_id,
                secret_name: &name,
                secret_version: version,
                created_at: Timestamp::from_millis(t.created_at),
            };
            match self.credentials.adopt(&adopted, &data) {
                Ok(connection) => {
                    plan.write.connections.push(connection);
                    plan.report.count(Table::UserTokens, Fate::Added);
                    plan.report.count_provider(spec.id, Fate::Added);
                }
                Err(e) => {
                    plan.moves.retain(|m| m.name != name);
                    plan.report.moved.retain(|m| m.row != t.id);
                    skip(plan, format!("its token data does not fit the catalog: {e}"));
                }
            }
        }
        Ok(())
    }

    /// `--verify` of a connection already in Tokenkeeper: its secret reads and decodes.
    async fn verify(&self, t: &TokenRow, name: &str, reference: &str, plan: &mut Plan) -> Result<(), ImportError> {
        plan.report.verified += 1;
        let problem = match self.secrets.read(name, None).await {
            Ok(Some(v)) => TokenData::decode(&v.value).err().map(|e| e.to_string()),
            Ok(None) => Some("missing".into()),
            Err(SecretError::Unavailable(e)) => return Err(SecretError::Unavailable(e).into()),
            Err(e) => Some(e.to_string()),
        };
        if let Some(problem) = problem {
            self.unreadable(t, reference, problem, plan);
        }
        Ok(())
    }

    fn unreadable(&self, t: &TokenRow, reference: &str, problem: String, plan: &mut Plan) {
        plan.report.unreadable.push(Unreadable {
            row: t.id,
            reference: reference.to_string(),
            problem,
        });
    }
}

/// The secret a row keeps in SQL: a non-empty `token_data` object, with Azure's `client_secret` and the
/// columns that go with it; `None` when there is none.
fn in_sql(t: &TokenRow) -> Option<(TokenData, Vec<&'static str>)> {
    let mut fields = Map::new();
    let mut columns = Vec::new();
    if let Some(text) = &t.token_data
        && let Ok(data) = TokenData::decode(text)
        && !data.is_empty()
    {
        fields = data.fields().clone();
        columns.push("token_data");
    }
    if let Some(secret) = &t.client_secret {
        columns.push("client_secret");
        fields.insert(
            "client_secret".into(),
            Value::String(secret.expose_secret().to_string()),
        );
        let beside = [
            ("tenant_id", &t.tenant_id),
            ("client_id", &t.client_id),
            ("subscription_id", &t.subscription_id),
            ("subscription_name", &t.subscription_name),
        ];
        for (name, value) in beside {
            if let Some(v) = value
                && !fields.contains_key(name)
            {
                fields.insert(name.into(), Value::String(v.clone()));
            }
        }
    }
    (!columns.is_empty()).then(|| (TokenData::new(fields), columns))
}
