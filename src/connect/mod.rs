//! Connect flows (`docs/CONNECT.md`): a user clicks "Connect", the provider asks for consent, and the
//! credential it grants lands through the credential store path like one given with `PUT`.
//!
//! - [`ConnectService::start`]: a state (256 random bits, kept in SQL as its hash, for ten minutes, bound to
//!   the user, org, provider, connection name, PKCE verifier and return URL) and the provider's authorize
//!   URL, built from the catalog's data.
//! - [`ConnectService::claim`]: the callback's state, claimed once by one SQL statement (two callbacks at
//!   once: one exchange), then [`ConnectService::finish`]: the code exchanged with the verifier and the
//!   answer stored for the flow's user and org (the state decides, not the browser).

mod aws;
mod flow;

pub use aws::{
    AwsOnboarding, DEFAULT_POLICY_ARN, ONBOARDING_LIFETIME_MS, cloudformation_template, principal, trust_policy,
};

use std::sync::Arc;

use serde_json::Value;

use crate::audit::{Auditor, Event, EventKind, Outcome};
use crate::clock::{SharedClock, Timestamp};
use crate::config::{ConnectSettings, GrantSettings};
use crate::credentials::{Caller, ConnectionName, CredentialError, CredentialService, OrgId, Target, UserId};
use crate::db::{DbError, FlowRow, SharedStore};
use crate::providers::{self, Connect, OAuthConnect, ProviderSpec};
use crate::refresh::{GrantContext, GrantError};

/// How long a flow may take, from the authorize URL to the callback.
pub const FLOW_LIFETIME_MS: i64 = 10 * 60 * 1000;
/// Claimed and expired flows are kept this long after they expire (then pruned), for nothing but a look by
/// an operator.
const KEEP_AFTER_EXPIRY_MS: i64 = 24 * 3600 * 1000;

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("Unknown provider: {0}")]
    UnknownProvider(String),
    #[error("{0} has no connect flow; store its credential with PUT /api/tokens/{0}")]
    NoFlow(String),
    /// A setting the flow needs is missing (400: the request cannot work until an operator sets it).
    #[error("{0} is not set")]
    NotConfigured(String),
    #[error("Invalid setting: {0}")]
    Misconfigured(&'static str),
    #[error("{0}")]
    Invalid(String),
    #[error("Unknown, expired or already used state")]
    UnknownState,
    /// STS would not say who Tokenkeeper's AWS credentials are (AWS's error code, or why it was not reached).
    #[error(
        "Could not find Tokenkeeper's AWS identity (STS GetCallerIdentity: {0}); set TOKENKEEPER_AWS_PRINCIPAL_ARN"
    )]
    PrincipalUnavailable(String),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    AuditUnavailable(#[from] crate::audit::AuditError),
}

/// What `POST /api/connect/{provider}` is given (every part optional).
#[derive(Debug, Default)]
pub struct StartRequest {
    pub return_url: Option<String>,
    pub name: Option<String>,
    pub scopes: Option<Vec<String>>,
}

/// Where the browser goes when the flow ends.
enum ReturnTo {
    /// The request's `returnUrl` (within `TOKENKEEPER_CONNECT_RETURN_URLS`), else the first allowed one.
    Requested,
    /// The web console's connections page.
    Console,
}

/// A started flow: where to send the browser, until when.
#[derive(Debug)]
pub struct Started {
    pub authorization_url: String,
    pub expires_at: Timestamp,
}

/// A flow claimed by its callback: who it stores for.
#[derive(Debug)]
pub struct Claimed {
    row: FlowRow,
    spec: &'static ProviderSpec,
    oauth: &'static OAuthConnect,
}

impl Claimed {
    pub fn caller(&self) -> Caller {
        Caller::new(
            UserId::from(self.row.user_id.as_str()),
            OrgId::from_stored(&self.row.org_id),
        )
    }

    pub fn org(&self) -> &str {
        &self.row.org_id
    }
}

/// Where the callback sends the browser: the flow's return URL with `connected` and `name`, or with
/// `error` and `provider`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub redirect_to: String,
    pub connected: bool,
}

/// Starts and finishes connect flows. Cheap to clone.
#[derive(Clone)]
pub struct ConnectService {
    store: SharedStore,
    clock: SharedClock,
    audit: Auditor,
    credentials: CredentialService,
    settings: Arc<ConnectSettings>,
    grants: Arc<GrantSettings>,
    /// The outbound client (its timeout bounds the code exchange).
    http: reqwest::Client,
    /// Tokenkeeper's own AWS identity, once STS told it (AWS onboarding without a configured principal).
    aws_principal: Arc<tokio::sync::OnceCell<String>>,
}

impl ConnectService {
    pub fn new(
        store: SharedStore,
        clock: SharedClock,
        audit: Auditor,
        credentials: CredentialService,
        settings: Arc<ConnectSettings>,
        grants: Arc<GrantSettings>,
        outbound_timeout: std::time::Duration,
    ) -> Self {
        Self {
            store,
            clock,
            audit,
            credentials,
            settings,
            grants,
            http: crate::refresh::http_client(outbound_timeout),
            aws_principal: Arc::default(),
        }
    }

    /// The connect settings (public URL, return URLs, AWS onboarding).
    pub fn settings(&self) -> &ConnectSettings {
        &self.settings
    }

    /// Starts an OAuth flow for `caller` (who may write connections in their org): the authorize URL.
    pub async fn start(&self, caller: &Caller, provider: &str, req: StartRequest) -> Result<Started, ConnectError> {
        self.begin(caller, provider, req, ReturnTo::Requested).await
    }

    /// Starts a flow from the web console: the browser comes back to the console's own connections page
    /// (`{public_url}/`). That page is Tokenkeeper itself, not a platform's, so it needs no entry in
    /// `TOKENKEEPER_CONNECT_RETURN_URLS` (an operator who lists only the platform's pages still gets a
    /// working console).
    pub async fn start_from_console(
        &self,
        caller: &Caller,
        provider: &str,
        name: Option<String>,
    ) -> Result<Started, ConnectError> {
        let req = StartRequest {
            name,
            ..StartRequest::default()
        };
        self.begin(caller, provider, req, ReturnTo::Console).await
    }

    /// The origin of `spec`'s authorize endpoint when a flow can start for it (an OAuth provider whose
    /// client id is set): the console offers a "Connect" button then, and lets its form go there.
    pub fn authorize_origin(&self, spec: &ProviderSpec) -> Option<String> {
        let Connect::OAuth(oauth) = spec.connect else {
            return None;
        };
        let platform = self.grants.provider(spec);
        platform.client_id.as_ref()?;
        let endpoint = platform.authorize_url.as_deref().unwrap_or(oauth.authorize_url);
        let origin = url::Url::parse(endpoint).ok()?.origin();
        origin.is_tuple().then(|| origin.ascii_serialization())
    }

    #[tracing::instrument(skip_all, fields(user = %caller.user, org = %caller.org, provider = %provider))]
    async fn begin(
        &self,
        caller: &Caller,
        provider: &str,
        req: StartRequest,
        to: ReturnTo,
    ) -> Result<Started, ConnectError> {
        let spec = providers::find(provider).ok_or_else(|| ConnectError::UnknownProvider(provider.to_string()))?;
        let Connect::OAuth(oauth) = spec.connect else {
            return Err(ConnectError::NoFlow(provider.to_string()));
        };
        let platform = self.grants.provider(spec);
        let client_id = platform
            .client_id
            .as_deref()
            .ok_or_else(|| ConnectError::NotConfigured(spec.client_id_env_var()))?;
        let name = flow::connection_name(req.name)?;
        let scopes = flow::scopes(req.scopes, oauth)?;
        let return_url = match to {
            ReturnTo::Requested => flow::return_url(req.return_url, &self.settings.return_urls)?,
            ReturnTo::Console => format!("{}/", self.settings.public_url),
        };
        let (state, verifier) = (flow::random_token(), flow::random_token());
        let redirect_uri = self.settings.callback_url();
        let endpoint = platform.authorize_url.as_deref().unwrap_or(oauth.authorize_url);
        let authorization_url = flow::authorize_url(
            endpoint,
            oauth,
            &flow::AuthorizeParams {
                client_id,
                redirect_uri: &redirect_uri,
                scopes: &scopes,
                state: &state,
                challenge: &flow::challenge(&verifier),
            },
        )?;
        let now = self.clock.now_ms();
        let row = FlowRow {
            state_hash: flow::state_hash(&state),
            user_id: caller.user.to_string(),
            org_id: caller.org.to_string(),
            provider: spec.id.to_string(),
            name: name.to_string(),
            verifier,
            return_url,
            created_at: now,
            expires_at: now + FLOW_LIFETIME_MS,
        };
        self.store.insert_flow(&row, now - KEEP_AFTER_EXPIRY_MS).await?;
        Ok(Started {
            authorization_url,
            expires_at: Timestamp::from_millis(row.expires_at),
        })
    }

    /// Claims the flow `state` names, once. Unknown, expired or claimed before: [`ConnectError::UnknownState`].
    pub async fn claim(&self, state: Option<&str>) -> Result<Claimed, ConnectError> {
        let state = state
            .filter(|s| !s.is_empty() && s.len() <= 256)
            .ok_or(ConnectError::UnknownState)?;
        let now = self.clock.now_ms();
        let row = self
            .store
            .claim_flow(&flow::state_hash(state), now)
            .await?
            .ok_or(ConnectError::UnknownState)?;
        let spec = providers::find(&row.provider).ok_or(ConnectError::UnknownState)?;
        let Connect::OAuth(oauth) = spec.connect else {
            return Err(ConnectError::UnknownState);
        };
        Ok(Claimed { row, spec, oauth })
    }

    /// Finishes a claimed flow: the provider's `error`, else the exchange of `code` and the store. Failures
    /// are answered as a redirect with `error` (and audited); only the audit log failing closed is an `Err`.
    #[tracing::instrument(skip_all, fields(user = %flow.row.user_id, org = %flow.row.org_id, provider = %flow.spec.id))]
    pub async fn finish(
        &self,
        flow: Claimed,
        code: Option<&str>,
        provider_error: Option<&str>,
        client_addr: &str,
    ) -> Result<Finished, ConnectError> {
        let caller = flow.caller();
        let result = match (provider_error, code.filter(|c| !c.is_empty())) {
            (None, Some(code)) => self.exchange_and_store(&flow, &caller, code, client_addr).await,
            (error, _) => {
                let code = error.map_or_else(|| "invalid_request".to_string(), sanitized);
                self.audit_failure(&flow, client_addr, &code).await?;
                Err(Failure::Code(code))
            }
        };
        let (params, connected) = match result {
            Ok(()) => (
                [("connected", flow.spec.id.to_string()), ("name", flow.row.name.clone())],
                true,
            ),
            Err(Failure::Code(code)) => ([("error", code), ("provider", flow.spec.id.to_string())], false),
            Err(Failure::Audit(e)) => return Err(e.into()),
        };
        Ok(Finished {
            redirect_to: flow::with_query(&flow.row.return_url, &params),
            connected,
        })
    }

    /// A flow whose user may no longer write connections in its org: nothing is exchanged.
    pub async fn refuse(&self, flow: Claimed, client_addr: &str) -> Result<Finished, ConnectError> {
        self.audit_failure(&flow, client_addr, "access_denied").await?;
        let params = [
            ("error", "access_denied".to_string()),
            ("provider", flow.spec.id.to_string()),
        ];
        Ok(Finished {
            redirect_to: flow::with_query(&flow.row.return_url, &params),
            connected: false,
        })
    }

    async fn exchange_and_store(
        &self,
        flow: &Claimed,
        caller: &Caller,
        code: &str,
        client_addr: &str,
    ) -> Result<(), Failure> {
        let ctx = GrantContext {
            http: &self.http,
            settings: &self.grants,
            now: self.clock.now_secs(),
            user_id: &flow.row.user_id,
        };
        let redirect_uri = self.settings.callback_url();
        let fields = match crate::refresh::grants::exchange_code(
            flow.spec,
            flow.oauth,
            code,
            &flow.row.verifier,
            &redirect_uri,
            &ctx,
        )
        .await
        {
            Ok(f) => f,
            Err(e) => {
                let code = grant_error_code(&e);
                tracing::info!(error = %e, "code exchange failed");
                self.audit_failure(flow, client_addr, &code).await?;
                return Err(Failure::Code(code));
            }
        };
        match self
            .credentials
            .store_as(
                EventKind::CredentialConnect,
                caller,
                &Value::Object(fields),
                Target::new(flow.spec.id, ConnectionName::from_stored(flow.row.name.as_str())),
                client_addr,
                // The deployment's default: a token the provider just issued is checked like a stored one.
                None,
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(CredentialError::AuditUnavailable(e)) => Err(Failure::Audit(e)),
            Err(e) => {
                tracing::warn!(error = %e, "a connected credential could not be stored");
                Err(Failure::Code(store_error_code(&e).to_string()))
            }
        }
    }

    async fn audit_failure(&self, flow: &Claimed, addr: &str, reason: &str) -> Result<(), crate::audit::AuditError> {
        let caller = flow.caller();
        let event = Event {
            user_id: Some(caller.user.as_str()),
            org_id: Some(caller.org.as_str()),
            kind: EventKind::CredentialConnect,
            provider: Some(flow.spec.id),
            connection: Some(flow.row.name.as_str()),
            outcome: Outcome::Failed,
            client_addr: Some(addr),
            detail: Some(reason),
        };
        self.audit.record(event).await
    }
}

enum Failure {
    /// The error code the return URL gets.
    Code(String),
    Audit(crate::audit::AuditError),
}

impl From<crate::audit::AuditError> for Failure {
    fn from(e: crate::audit::AuditError) -> Self {
        Self::Audit(e)
    }
}

/// The code a failed exchange leaves in the return URL: the provider's OAuth error code (`invalid_grant`),
/// `temporarily_unavailable` for timeouts and outages, `server_error` for Tokenkeeper's own configuration.
fn grant_error_code(e: &GrantError) -> String {
    let reason = e.reason();
    if reason.starts_with("not_configured") {
        "server_error".into()
    } else if e.is_transient() && !reason.starts_with("invalid") {
        "temporarily_unavailable".into()
    } else {
        sanitized(reason)
    }
}

fn store_error_code(e: &CredentialError) -> &'static str {
    match e {
        CredentialError::Invalid(_) => "invalid_response",
        // The check on store (docs/CHECKS.md): the provider refused the token it just issued, or its API
        // could not be reached to ask.
        CredentialError::CheckRejected { .. } => "credential_rejected",
        CredentialError::SecretStoreUnavailable(_)
        | CredentialError::Db(_)
        | CredentialError::CheckUnreachable { .. } => "temporarily_unavailable",
        _ => "server_error",
    }
}

/// A provider's error code as it may travel on: `[A-Za-z0-9_.-]`, at most 64 characters.
fn sanitized(code: &str) -> String {
    let s: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        .take(64)
        .collect();
    if s.is_empty() { "unknown_error".into() } else { s }
}
