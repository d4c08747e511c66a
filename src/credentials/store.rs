//! Storing a credential: validate against the catalog, write the secret (check-and-set), then the reference
//! (check-and-set as well, on the row read under the credential's lock).

use serde_json::Value;

use super::{
    Caller, ConnectionKey, ConnectionStatus, CredentialError, CredentialService, OrgId, Stored, Target, TokenData,
};
use crate::audit::EventKind;
use crate::check::CheckOutcome;
use crate::clock::Timestamp;
use crate::db::Connection;
use crate::secrets::SecretError;

impl CredentialService {
    /// The seed's `store_tokens_in_db(user, token_data, provider)`: validates `body` against the provider's
    /// catalog entry, stores the secret and its reference in the caller's org under the connection's name
    /// (a bare provider id: `default`), and returns the connection.
    pub async fn store_tokens_in_db(
        &self,
        caller: &Caller,
        body: &Value,
        target: impl Into<Target>,
        client_addr: &str,
    ) -> Result<Stored, CredentialError> {
        self.store_checked(caller, body, target, client_addr, None).await
    }

    /// [`CredentialService::store_tokens_in_db`] with the check decided by the caller (`?check=`):
    /// `Some(false)` stores as `unchecked`; `None`: the deployment's default (`TOKENKEEPER_CHECK_ON_STORE`).
    /// A credential the provider rejects, or that cannot be checked because the provider is unreachable,
    /// is not stored.
    pub async fn store_checked(
        &self,
        caller: &Caller,
        body: &Value,
        target: impl Into<Target>,
        client_addr: &str,
        check: Option<bool>,
    ) -> Result<Stored, CredentialError> {
        self.store_as(EventKind::CredentialStore, caller, body, target, client_addr, check)
            .await
    }

    /// The store path with the audit event `kind` (a connect flow's credential: `credential_connect`) and
    /// the check decided as in [`CredentialService::store_checked`].
    #[tracing::instrument(skip_all, fields(user = %caller.user, org = %caller.org))]
    pub async fn store_as(
        &self,
        kind: EventKind,
        caller: &Caller,
        body: &Value,
        target: impl Into<Target>,
        client_addr: &str,
        check: Option<bool>,
    ) -> Result<Stored, CredentialError> {
        let target = target.into();
        let res = async {
            let key = Self::key(&caller.org, &target)?;
            self.store_inner(caller, &key, body, self.checks_on_store(check)).await
        }
        .await;
        self.audited(caller, kind, &target, client_addr, res).await
    }

    async fn store_inner(
        &self,
        caller: &Caller,
        key: &ConnectionKey,
        body: &Value,
        check: bool,
    ) -> Result<Stored, CredentialError> {
        let spec = key.spec();
        super::naming::check_user_id(key.org().as_str())?;
        let mut valid = spec.validate(body, &self.config.url_policy)?;
        let generated = self.generated_fields(key, &mut valid.token_data).await?;
        let metadata = spec.metadata_of(&valid.token_data);
        let token_data = TokenData::new(valid.token_data);
        // Before the lock and before anything is written: a check takes up to the outbound timeout.
        let checked = match check {
            false => None,
            true => Some(self.run_check(key, &token_data, caller.user.as_str()).await),
        };
        let provider_id = key.provider().to_string();
        match &checked {
            Some(CheckOutcome::Rejected { detail }) => {
                let detail = detail.clone();
                return Err(CredentialError::CheckRejected {
                    provider: provider_id,
                    detail,
                });
            }
            Some(CheckOutcome::Unreachable { detail }) => {
                let detail = detail.clone();
                return Err(CredentialError::CheckUnreachable {
                    provider: provider_id,
                    detail,
                });
            }
            _ => {}
        }
        // A role an onboarding issued the external id for is assumed before it is stored, even when checks
        // are off (a check of an AWS role assumes it already).
        if generated.onboarded.is_some() && checked.is_none() {
            self.assume_first(key, &token_data, caller.user.as_str()).await?;
        }
        let (org_id, provider, conn_name) = (key.org().as_str(), key.provider(), key.name().as_str());
        let _lock = self.lock(key).await?;
        let previous = self.store.get_connection(org_id, provider, conn_name).await?;
        // A replacement goes where the standing row points: an adopted connection's secret keeps the name
        // Aurora gave it (`secret_of`). A reference foreign to this store (moved mount) is replaced by one
        // under the key's own name, as before.
        let name = match previous.as_ref().map(|p| self.secret_of(p)) {
            Some(Ok(adopted)) => adopted,
            _ => self.secret_name(key),
        };
        if previous.is_none() {
            self.check_secret_unclaimed(key, &name).await?;
        }
        if previous.is_none() && caller.org == OrgId::personal(&caller.user) {
            // A library caller's user may be new (the HTTP layer made the org when it resolved it).
            let now = self.clock.now().as_millis();
            self.store.ensure_personal_org(org_id, org_id, now).await?;
        }

        // Check-and-set against the secret store's current version: a concurrent writer loses cleanly. The
        // version comes from the metadata, not the data: a soft-deleted current version still counts.
        let current = self.secrets.current_version(&name).await?;
        let version = match self.secrets.write(&name, &token_data.encode(), Some(current)).await {
            Ok(v) => v,
            Err(SecretError::CasMismatch) => return Err(CredentialError::Conflict(provider.to_string())),
            Err(e) => return Err(e.into()),
        };

        let now = self.clock.now();
        let expires_at = valid.expires_at.map(Timestamp::from_secs);
        let refreshes = valid.refresh.refreshes();
        let accepted = matches!(checked, Some(CheckOutcome::Accepted { .. }));
        let row = Connection {
            org_id: org_id.to_string(),
            user_id: previous
                .as_ref()
                .map_or_else(|| caller.user.to_string(), |p| p.user_id.clone()),
            provider: provider.to_string(),
            name: conn_name.to_string(),
            id: previous
                .as_ref()
                .map_or_else(|| uuid::Uuid::new_v4().simple().to_string(), |p| p.id.clone()),
            secret_ref: self.secrets.reference(&name),
            secret_version: version,
            metadata,
            status: if checked.is_some() {
                ConnectionStatus::Active
            } else {
                ConnectionStatus::Unchecked
            },
            status_reason: None,
            expires_at,
            next_refresh_at: refreshes.then(|| self.next_refresh_at(expires_at)),
            refresh_failures: 0,
            created_at: previous.as_ref().map_or(now, |p| p.created_at),
            updated_at: now,
            last_checked_at: accepted.then_some(now),
            last_check_error: None,
            next_check_at: self.next_check_at(valid.refresh, checked.as_ref(), now),
        };
        // Only over the row read above: the reference follows the secret even when its version went down
        // (the secret was destroyed outside Tokenkeeper and started over), and a row changed meanwhile by a
        // writer outside this lock is not overwritten.
        let events = (self.config.events).of_change(previous.as_ref(), Some(&row), caller.user.as_str(), now);
        match self
            .store
            .put_connection_emitting(&row, previous.as_ref().map(|p| p.secret_version), &events)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                // Theirs stands: the secret store is put back as their reference describes it.
                match self.store.get_connection(org_id, provider, conn_name).await {
                    Ok(theirs) => self.undo_secret_write(&name, version, theirs.as_ref()).await,
                    Err(e) => {
                        tracing::error!(secret = name, error = %e, "could not undo a secret write after a conflict")
                    }
                }
                return Err(CredentialError::Conflict(provider.to_string()));
            }
            Err(e) => {
                // The error may have come after the commit (its answer lost): look at the row that stands
                // before undoing anything. It names our version only if our write landed (the secret store
                // hands each version out once), and then there is nothing to undo.
                match self.store.get_connection(org_id, provider, conn_name).await {
                    Ok(Some(s)) if s.secret_version == row.secret_version && s.secret_ref == row.secret_ref => {}
                    Ok(standing) => {
                        self.undo_secret_write(&name, version, standing.as_ref()).await;
                        return Err(e.into());
                    }
                    Err(_) => {
                        self.undo_secret_write(&name, version, previous.as_ref()).await;
                        return Err(e.into());
                    }
                }
            }
        }
        self.changed(key).await;
        if let Some(id) = &generated.onboarded {
            self.onboarding_used(key, id).await;
        }
        let connection = super::ConnectionView::from_row(&row, now);
        Ok(Stored {
            connection,
            generated_external_id: generated.shown_once,
        })
    }

    /// A new connection's secret name must not be another connection's: Aurora's names join their parts
    /// with `-`, which ids and names may hold too (user `a` and connection `gcp` of `aws` give the name of
    /// user `a-aws`'s `gcp`). Refused (409) before anything is written, so nobody's secret is touched.
    async fn check_secret_unclaimed(&self, key: &ConnectionKey, name: &str) -> Result<(), CredentialError> {
        match self
            .store
            .connection_by_secret_ref(&self.secrets.reference(name))
            .await?
        {
            Some(owner) => {
                tracing::warn!(
                    secret = name,
                    owner_org = owner.org_id,
                    "a new connection's secret name is taken"
                );
                Err(CredentialError::NameTaken(key.name().to_string()))
            }
            None => Ok(()),
        }
    }

    /// The reference could not be written: leave the secret store as the reference that stands (`standing`)
    /// describes it. Without one the secret is destroyed; otherwise the version it names gets back on top
    /// as the current version (reads never saw the new one, and Aurora reads the current version).
    /// Nothing is undone once someone wrote after us: the current version is then theirs.
    async fn undo_secret_write(&self, name: &str, written: u64, standing: Option<&Connection>) {
        let res: Result<(), SecretError> = async {
            if self.secrets.current_version(name).await? != written {
                return Ok(());
            }
            match standing {
                None => self.secrets.delete(name).await,
                Some(s) => match self.secrets.read(name, Some(s.secret_version)).await? {
                    Some(old) => self.secrets.write(name, &old.value, Some(written)).await.map(|_| ()),
                    // Gone (destroyed elsewhere): nothing to put back.
                    None => Ok(()),
                },
            }
        }
        .await;
        if let Err(e) = res {
            tracing::error!(secret = name, error = %e, "could not undo a secret write whose reference was not written");
        }
    }
}
