//! Reading Aurora's database: one read-only, repeatable-read transaction over the tables the import needs
//! (a snapshot: Aurora's writers should be stopped, but a straggler cannot tear the picture). Nothing here
//! writes; the transaction is rolled back.

use sqlx::Row as _;
use sqlx::postgres::PgPoolOptions;

use super::ImportError;

/// The tables an Aurora database has; one missing means the URL names something else.
pub const TABLES: [&str; 5] = [
    "users",
    "organizations",
    "casbin_rule",
    "user_tokens",
    "user_connections",
];

pub struct AuroraUser {
    pub id: String,
    pub email: String,
    pub name: Option<String>,
    pub password_hash: Option<String>,
    pub org_id: Option<String>,
    pub role: Option<String>,
    pub must_change_password: bool,
    pub created_at: i64,
}

pub struct AuroraOrg {
    pub id: String,
    pub name: String,
    pub created_by: Option<String>,
    pub created_at: i64,
}

/// A `g` row of `casbin_rule`: a user's role in an org.
pub struct Grant {
    pub user_id: String,
    pub role: String,
    pub org_id: String,
}

/// A row of `user_tokens`. `token_data` and `client_secret` may hold secrets (Aurora's older rows).
pub struct TokenRow {
    pub id: i64,
    pub user_id: String,
    pub org_id: Option<String>,
    pub provider: String,
    pub secret_ref: Option<String>,
    pub token_data: Option<secrecy::SecretString>,
    pub client_secret: Option<secrecy::SecretString>,
    pub tenant_id: Option<String>,
    pub client_id: Option<String>,
    pub subscription_id: Option<String>,
    pub subscription_name: Option<String>,
    pub is_active: bool,
    pub created_at: i64,
}

/// A row of `user_connections` (an AWS account: a role Aurora assumes; no secret).
pub struct AwsAccount {
    pub id: i64,
    pub user_id: String,
    pub org_id: Option<String>,
    pub account_id: String,
    pub role_arn: Option<String>,
    pub read_only_role_arn: Option<String>,
    pub region: Option<String>,
    /// `active`, or something else for an account that is not connected.
    pub status: String,
}

/// A workspace's AWS external id (`workspaces`), the one its accounts' roles are assumed with.
pub struct Workspace {
    pub user_id: Option<String>,
    pub org_id: Option<String>,
    pub aws_external_id: String,
}

pub struct Snapshot {
    pub users: Vec<AuroraUser>,
    pub orgs: Vec<AuroraOrg>,
    pub grants: Vec<Grant>,
    pub tokens: Vec<TokenRow>,
    pub aws: Vec<AwsAccount>,
    pub workspaces: Vec<Workspace>,
}

impl Snapshot {
    /// The external id an account of `user_id` in `org` is assumed with: a workspace of the org's, else of
    /// the user's (the first by id when there are several).
    pub fn external_id(&self, org: &str, user_id: &str) -> Option<&str> {
        let of = |pick: &dyn Fn(&Workspace) -> bool| {
            self.workspaces
                .iter()
                .find(|w| pick(w))
                .map(|w| w.aws_external_id.as_str())
        };
        of(&|w| w.org_id.as_deref() == Some(org)).or_else(|| of(&|w| w.user_id.as_deref() == Some(user_id)))
    }
}

/// Seconds since the epoch of a timestamp column, in milliseconds (0 when null).
macro_rules! millis {
    ($col:literal) => {
        concat!("COALESCE((EXTRACT(EPOCH FROM ", $col, ") * 1000)::BIGINT, 0) AS ", $col)
    };
}

/// Every row of `sql`, each made into a `T`.
async fn rows<T>(
    tx: &mut sqlx::PgConnection,
    sql: &'static str,
    each: impl Fn(&sqlx::postgres::PgRow) -> Result<T, sqlx::Error>,
) -> Result<Vec<T>, sqlx::Error> {
    sqlx::query(sql).fetch_all(tx).await?.iter().map(each).collect()
}

pub async fn read(url: &str) -> Result<Snapshot, ImportError> {
    let unreachable = |e: sqlx::Error| ImportError::Unreachable(e.to_string());
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(std::time::Duration::from_secs(10))
        .connect(url)
        .await
        .map_err(unreachable)?;
    let mut tx = pool.begin().await.map_err(unreachable)?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let present: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::TEXT FROM information_schema.tables WHERE table_schema = current_schema() \
         AND table_name = ANY($1)",
    )
    .bind(TABLES.as_slice())
    .fetch_all(&mut *tx)
    .await?;
    let missing: Vec<&str> = TABLES.into_iter().filter(|t| !present.iter().any(|p| p == t)).collect();
    if !missing.is_empty() {
        return Err(ImportError::NotAurora(missing.join(", ")));
    }

    let users = rows(
        &mut tx,
        concat!(
            "SELECT id::TEXT, email, name, password_hash, org_id::TEXT, role, \
         COALESCE(must_change_password, FALSE) AS must_change_password, ",
            millis!("created_at"),
            " FROM users ORDER BY created_at, id"
        ),
        |r| {
            Ok(AuroraUser {
                id: r.try_get("id")?,
                email: r.try_get("email")?,
                name: r.try_get("name")?,
                password_hash: r.try_get("password_hash")?,
                org_id: r.try_get("org_id")?,
                role: r.try_get("role")?,
                must_change_password: r.try_get("must_change_password")?,
                created_at: r.try_get("created_at")?,
            })
        },
    )
    .await?;

    let orgs = rows(
        &mut tx,
        concat!(
            "SELECT id::TEXT, name, created_by::TEXT, ",
            millis!("created_at"),
            " FROM organizations ORDER BY created_at, id"
        ),
        |r| {
            Ok(AuroraOrg {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
                created_by: r.try_get("created_by")?,
                created_at: r.try_get("created_at")?,
            })
        },
    )
    .await?;

    // Grants name an org; the role hierarchy rows (`g, admin, editor, *`) name none.
    let grants = rows(
        &mut tx,
        "SELECT v0, v1, v2 FROM casbin_rule WHERE ptype = 'g' AND v0 IS NOT NULL AND v1 IS NOT NULL \
         AND v2 IS NOT NULL AND v2 <> '*' ORDER BY id",
        |r| {
            Ok(Grant {
                user_id: r.try_get("v0")?,
                role: r.try_get("v1")?,
                org_id: r.try_get("v2")?,
            })
        },
    )
    .await?;

    let tokens = rows(&mut tx, concat!(
        "SELECT id::BIGINT AS id, user_id::TEXT, org_id::TEXT, provider, secret_ref, token_data::TEXT AS token_data, \
         client_secret, tenant_id, client_id, subscription_id, subscription_name, \
         COALESCE(is_active, TRUE) AS is_active, ",
        millis!("timestamp"),
        " FROM user_tokens ORDER BY id"
    ), |r| {
        let secret = |col: &str| -> Result<Option<secrecy::SecretString>, sqlx::Error> {
            Ok(r.try_get::<Option<String>, _>(col)?.map(secrecy::SecretString::from))
        };
        Ok(TokenRow {
            id: r.try_get("id")?,
            user_id: r.try_get("user_id")?,
            org_id: r.try_get("org_id")?,
            provider: r.try_get("provider")?,
            secret_ref: r.try_get("secret_ref")?,
            token_data: secret("token_data")?,
            client_secret: secret("client_secret")?,
            tenant_id: r.try_get("tenant_id")?,
            client_id: r.try_get("client_id")?,
            subscription_id: r.try_get("subscription_id")?,
            subscription_name: r.try_get("subscription_name")?,
            is_active: r.try_get("is_active")?,
            created_at: r.try_get("timestamp")?,
        })
    })
    .await?;

    let aws = rows(
        &mut tx,
        "SELECT id::BIGINT AS id, user_id::TEXT, org_id::TEXT, account_id::TEXT, role_arn, read_only_role_arn, \
         region, COALESCE(status, 'active') AS status FROM user_connections WHERE provider = 'aws' ORDER BY id",
        |r| {
            Ok(AwsAccount {
                id: r.try_get("id")?,
                user_id: r.try_get("user_id")?,
                org_id: r.try_get("org_id")?,
                account_id: r.try_get::<Option<String>, _>("account_id")?.unwrap_or_default(),
                role_arn: r.try_get("role_arn")?,
                read_only_role_arn: r.try_get("read_only_role_arn")?,
                region: r.try_get("region")?,
                status: r.try_get("status")?,
            })
        },
    )
    .await?;

    // Older deployments have no workspaces: their accounts are reported without an external id.
    let workspaces = if present_table(&mut tx, "workspaces").await? {
        rows(
            &mut tx,
            "SELECT user_id::TEXT, org_id::TEXT, aws_external_id::TEXT FROM workspaces \
             WHERE aws_external_id IS NOT NULL AND aws_external_id <> '' ORDER BY id",
            |r| {
                Ok(Workspace {
                    user_id: r.try_get("user_id")?,
                    org_id: r.try_get("org_id")?,
                    aws_external_id: r.try_get("aws_external_id")?,
                })
            },
        )
        .await?
    } else {
        Vec::new()
    };

    tx.rollback().await?;
    pool.close().await;
    Ok(Snapshot {
        users,
        orgs,
        grants,
        tokens,
        aws,
        workspaces,
    })
}

async fn present_table(tx: &mut sqlx::PgConnection, table: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() \
         AND table_name = $1)",
    )
    .bind(table)
    .fetch_one(tx)
    .await
}
