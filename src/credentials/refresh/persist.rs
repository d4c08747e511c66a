//! Writing a refresh's result: the secret (retried, since it may hold the only copy of a rotated
//! refresh token) and the connection row (never re-creating a connection deleted meanwhile).

use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};

use crate::credentials::{ConnectionKey, CredentialError, CredentialService};
use crate::db::Connection;
use crate::secrets::{SecretError, SecretStore};

/// Attempts at writing a refreshed secret, and the pause before the first retry (doubled each time):
/// about 0.7 s in all, short enough for a waiting reader, long enough to ride out a secret-store
/// leader change or a dropped connection.
const WRITE_ATTEMPTS: u32 = 4;
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(100);

/// Writes the refreshed secret with check-and-set against `cas` (the version the refresh started from).
///
/// A check-and-set conflict is final (the user stored a new credential meanwhile: theirs wins). Any other
/// failure is retried: after a successful provider call the new token data may hold a rotated
/// refresh token that exists nowhere else, and the old one is already spent.
pub(super) async fn write_secret(
    secrets: &dyn SecretStore,
    name: &str,
    payload: &SecretString,
    cas: u64,
) -> Result<u64, SecretError> {
    let mut delay = FIRST_RETRY_DELAY;
    let mut attempt = 1;
    loop {
        match secrets.write(name, payload, Some(cas)).await {
            Ok(version) => return Ok(version),
            // After a failed attempt a conflict may be that attempt itself: written, but the answer lost.
            Err(SecretError::CasMismatch) if attempt > 1 => return landed_earlier(secrets, name, payload).await,
            Err(e @ SecretError::CasMismatch) => return Err(e),
            Err(e) if attempt >= WRITE_ATTEMPTS => return Err(e),
            Err(e) => {
                tracing::warn!(error = %e, attempt, "storing a refreshed credential failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
                attempt += 1;
            }
        }
    }
}

/// The version holding exactly `payload`, if an earlier attempt wrote it; else the conflict stands.
async fn landed_earlier(secrets: &dyn SecretStore, name: &str, payload: &SecretString) -> Result<u64, SecretError> {
    match secrets.read(name, None).await? {
        Some(current) if current.value.expose_secret() == payload.expose_secret() => Ok(current.version),
        _ => Err(SecretError::CasMismatch),
    }
}

/// What became of a refresh's row update.
pub(super) enum Landing {
    /// Written.
    Recorded,
    /// The connection was deleted while the refresh ran: nothing was written.
    Gone,
    /// The user stored a newer credential while the refresh ran: left as it is (here it is).
    Superseded(Box<Connection>),
}

impl CredentialService {
    /// Updates the row of a connection after a refresh (success or failure), only if it still exists.
    ///
    /// A refresh takes up to the outbound timeout, and the user may delete the connection meanwhile
    /// (delete removes the row, then destroys the secret). An upsert would then insert the row again,
    /// pointing at a destroyed secret: reads would fail with "inconsistent" instead of "not connected",
    /// and the user could not even delete it cleanly. So the row is written with an update-only statement
    /// ([`crate::db::Store::update_connection`]), and a vanished row means nothing to record.
    ///
    /// Its change events (a new secret version, a new status) are written with it, in its transaction.
    pub(super) async fn land_row(
        &self,
        key: &ConnectionKey,
        before: &Connection,
        updated: &Connection,
    ) -> Result<Landing, CredentialError> {
        let events = (self.config.events).of_change(Some(before), Some(updated), &before.user_id, self.clock.now());
        if self.store.update_connection_emitting(updated, &events).await? {
            self.changed(key).await;
            self.status_changed(key, before.status, updated);
            return Ok(Landing::Recorded);
        }
        match self.row(key).await {
            Ok(current) => Ok(Landing::Superseded(Box::new(current))),
            Err(CredentialError::NotConnected(_)) => Ok(Landing::Gone),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::secrets::SecretVersion;

    /// A secret store whose next writes fail: `refuse` of them before writing, `lose` of them after
    /// writing (the answer is lost on the way back).
    #[derive(Default)]
    struct Flaky {
        versions: Mutex<Vec<String>>,
        refuse: Mutex<u32>,
        lose: Mutex<u32>,
        calls: Mutex<u32>,
    }

    fn take(n: &Mutex<u32>) -> bool {
        let mut n = n.lock().unwrap();
        let hit = *n > 0;
        *n = n.saturating_sub(1);
        hit
    }

    #[async_trait::async_trait]
    impl SecretStore for Flaky {
        fn kind(&self) -> crate::secrets::StoreKind {
            crate::secrets::StoreKind::Embedded
        }
        fn reference(&self, name: &str) -> String {
            format!("test:{name}")
        }
        async fn read(&self, _: &str, version: Option<u64>) -> Result<Option<SecretVersion>, SecretError> {
            let v = self.versions.lock().unwrap();
            let n = version.unwrap_or(v.len().try_into().unwrap());
            Ok(usize::try_from(n)
                .ok()
                .and_then(|n| n.checked_sub(1))
                .and_then(|i| v.get(i))
                .map(|s| SecretVersion {
                    value: SecretString::from(s.clone()),
                    version: n,
                }))
        }
        async fn current_version(&self, _: &str) -> Result<u64, SecretError> {
            Ok(self.versions.lock().unwrap().len() as u64)
        }
        async fn write(&self, _: &str, value: &SecretString, cas: Option<u64>) -> Result<u64, SecretError> {
            *self.calls.lock().unwrap() += 1;
            if take(&self.refuse) {
                return Err(SecretError::Unavailable("sealed".into()));
            }
            let mut v = self.versions.lock().unwrap();
            if cas.is_some_and(|c| c != v.len() as u64) {
                return Err(SecretError::CasMismatch);
            }
            v.push(value.expose_secret().to_string());
            let n = v.len() as u64;
            drop(v);
            if take(&self.lose) {
                return Err(SecretError::Unavailable("connection reset".into()));
            }
            Ok(n)
        }
        async fn delete(&self, _: &str) -> Result<(), SecretError> {
            Ok(())
        }
        async fn check(&self) -> Result<(), SecretError> {
            Ok(())
        }
    }

    fn store_with_v1() -> Flaky {
        let s = Flaky::default();
        s.versions.lock().unwrap().push("v1".into());
        s
    }

    #[tokio::test]
    async fn failures_other_than_a_conflict_are_retried() {
        let s = store_with_v1();
        *s.refuse.lock().unwrap() = WRITE_ATTEMPTS - 1;
        let payload = SecretString::from("rotated".to_string());
        assert_eq!(write_secret(&s, "n", &payload, 1).await.unwrap(), 2);
        assert_eq!(*s.calls.lock().unwrap(), WRITE_ATTEMPTS);
    }

    #[tokio::test]
    async fn gives_up_after_the_last_attempt() {
        let s = store_with_v1();
        *s.refuse.lock().unwrap() = WRITE_ATTEMPTS;
        let payload = SecretString::from("rotated".to_string());
        let err = write_secret(&s, "n", &payload, 1).await.unwrap_err();
        assert!(matches!(err, SecretError::Unavailable(_)), "{err}");
        assert_eq!(*s.calls.lock().unwrap(), WRITE_ATTEMPTS);
    }

    #[tokio::test]
    async fn a_conflict_is_final() {
        let s = store_with_v1();
        s.versions.lock().unwrap().push("the user's new credential".into());
        let payload = SecretString::from("rotated".to_string());
        assert!(matches!(
            write_secret(&s, "n", &payload, 1).await,
            Err(SecretError::CasMismatch)
        ));
        assert_eq!(*s.calls.lock().unwrap(), 1);
    }

    /// Written, but the answer was lost: the retry's conflict is this write itself, not someone else's.
    #[tokio::test]
    async fn a_write_whose_answer_was_lost_is_recognized() {
        let s = store_with_v1();
        *s.lose.lock().unwrap() = 1;
        let payload = SecretString::from("rotated".to_string());
        assert_eq!(write_secret(&s, "n", &payload, 1).await.unwrap(), 2);
        assert_eq!(s.versions.lock().unwrap().len(), 2, "written once");
        // Someone else's write after a failed attempt stays a conflict.
        let s = store_with_v1();
        *s.refuse.lock().unwrap() = 1;
        s.versions.lock().unwrap().push("theirs".into());
        assert!(matches!(
            write_secret(&s, "n", &payload, 1).await,
            Err(SecretError::CasMismatch)
        ));
    }
}
