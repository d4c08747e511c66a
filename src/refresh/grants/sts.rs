//! AWS STS `AssumeRole` (query API, SigV4-signed with the service's own AWS credentials).

use std::time::SystemTime;

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use secrecy::ExposeSecret as _;
use serde_json::Value;

use super::classify::classify;
use super::{GrantContext, GrantError, Refreshed, check_endpoint, send, updated};
use crate::config::AwsSettings;
use crate::providers::{ProviderSpec, TokenData};

pub(crate) const FORM: &str = "application/x-www-form-urlencoded; charset=utf-8";

/// `tokenkeeper-<user id>`: characters outside STS's `[\w+=,.@-]` become `-`, at most 63 characters.
pub fn session_name(user_id: &str) -> String {
    let mut name = String::from("tokenkeeper-");
    let clean = user_id.chars().map(|c| {
        if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
            c
        } else {
            '-'
        }
    });
    name.extend(clean.take(63 - name.len()));
    if name.len() == "tokenkeeper-".len() {
        name.push_str("user");
    }
    name
}

/// The STS endpoint and signing region: the configured endpoint, else `https://sts.{region}.amazonaws.com`
/// (both checked at start-up).
pub(crate) fn endpoint(aws: &AwsSettings) -> Result<String, GrantError> {
    let url = aws
        .sts_endpoint
        .clone()
        .unwrap_or_else(|| format!("https://sts.{}.amazonaws.com/", aws.region));
    Ok(check_endpoint(&url)?.to_string())
}

pub(super) async fn assume_role(
    _spec: &ProviderSpec,
    token_data: &TokenData,
    ctx: &GrantContext<'_>,
) -> Result<Refreshed, GrantError> {
    let role_arn = token_data
        .str_field("role_arn")
        .ok_or_else(|| GrantError::reauth("no role_arn stored"))?;
    let external_id = token_data.str_field("external_id");
    let aws = &ctx.settings.aws;
    let (Some(access_key), Some(secret_key)) = (&aws.access_key_id, &aws.secret_access_key) else {
        return Err(GrantError::misconfigured(
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY are not set",
        ));
    };
    let url = endpoint(aws)?;
    let region = aws.region.as_str();

    let duration = aws.session_duration_secs.to_string();
    let session = session_name(ctx.user_id);
    // In its own block: the serializer is not `Send` and must not live across an await.
    let body = {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("Action", "AssumeRole")
            .append_pair("Version", "2011-06-15")
            .append_pair("RoleArn", role_arn)
            .append_pair("RoleSessionName", &session)
            .append_pair("DurationSeconds", &duration);
        if let Some(ext) = external_id {
            form.append_pair("ExternalId", ext);
        }
        form.finish()
    };

    let identity = aws_credential_types::Credentials::new(
        access_key,
        secret_key.expose_secret(),
        aws.session_token.as_ref().map(|t| t.expose_secret().to_string()),
        None,
        "tokenkeeper-settings",
    );
    let mut req = ctx.http.post(&url).header(reqwest::header::CONTENT_TYPE, FORM);
    for (name, value) in signed_headers(&url, region, identity, &body)? {
        req = req.header(name, value);
    }
    let (status, body) = send(req.body(body)).await?;
    let text = String::from_utf8_lossy(&body);
    if !(200..300).contains(&status) {
        return Err(classify(status, xml_text(&text, "Code").as_deref()));
    }
    let (Some(key_id), Some(secret), Some(token), Some(expiration)) = (
        xml_text(&text, "AccessKeyId"),
        xml_text(&text, "SecretAccessKey"),
        xml_text(&text, "SessionToken"),
        xml_text(&text, "Expiration"),
    ) else {
        return Err(GrantError::transient("invalid_response"));
    };
    let expires_at = parse_iso8601_utc(&expiration).ok_or_else(|| GrantError::transient("invalid_response"))?;
    Ok(updated(
        token_data,
        [
            ("access_key_id", Value::from(key_id)),
            ("secret_access_key", Value::from(secret)),
            ("session_token", Value::from(token)),
            ("expiration", Value::from(expiration)),
        ],
        expires_at,
    ))
}

/// The SigV4 headers of an STS query-API `POST` of `body` (a form) to `url`, signed with `identity`.
/// SigV4 is dated with the wall clock: AWS compares it with its own.
pub(crate) fn signed_headers(
    url: &str,
    region: &str,
    identity: aws_credential_types::Credentials,
    body: &str,
) -> Result<Vec<(String, String)>, GrantError> {
    let identity = identity.into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(|_| GrantError::misconfigured("cannot build the SigV4 signing parameters"))?
        .into();
    let headers = [("content-type", FORM)];
    let signable = SignableRequest::new(
        "POST",
        url,
        headers.iter().copied(),
        SignableBody::Bytes(body.as_bytes()),
    )
    .map_err(|_| GrantError::misconfigured("STS endpoint cannot be signed"))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|_| GrantError::misconfigured("SigV4 signing failed"))?
        .into_parts();
    Ok(instructions
        .headers()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect())
}

/// The unescaped text of the first `<tag>...</tag>` element (STS answers are small, flat and namespaced
/// only by a default `xmlns`).
fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let (_, after) = xml.split_once(&open)?;
    let (raw, _) = after.split_once(&format!("</{tag}>"))?;
    let raw = raw.trim();
    let text = raw
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&");
    (!text.is_empty()).then_some(text)
}

/// `YYYY-MM-DDTHH:MM:SS[.fff](Z|+HH:MM|-HH:MM)` to epoch seconds (fractions dropped).
pub fn parse_iso8601_utc(s: &str) -> Option<i64> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        part.bytes().all(|c| c.is_ascii_digit()).then(|| part.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = s.get(19..)?;
    if let Some(frac) = rest.strip_prefix('.') {
        rest = frac.trim_start_matches(|c: char| c.is_ascii_digit());
        if rest.len() == frac.len() {
            return None;
        }
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && rest.as_bytes()[3] == b':' => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let part = |r: std::ops::Range<usize>| -> Option<i64> {
                let p = rest.get(r)?;
                p.bytes().all(|c| c.is_ascii_digit()).then(|| p.parse().ok())?
            };
            sign * (part(1..3)? * 3600 + part(4..6)? * 60)
        }
        _ => return None,
    };
    // Days from civil (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + sec - offset)
}

/// The ARN of the identity Tokenkeeper's own AWS credentials belong to (STS `GetCallerIdentity`, signed
/// like `AssumeRole`): what users' roles trust when no principal is configured. AWS's error code on refusal.
pub async fn caller_identity(aws: &AwsSettings, http: &reqwest::Client) -> Result<String, GrantError> {
    let (Some(access_key), Some(secret_key)) = (&aws.access_key_id, &aws.secret_access_key) else {
        return Err(GrantError::misconfigured(
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY are not set",
        ));
    };
    let url = endpoint(aws)?;
    let body = "Action=GetCallerIdentity&Version=2011-06-15".to_string();
    let identity = aws_credential_types::Credentials::new(
        access_key,
        secret_key.expose_secret(),
        aws.session_token.as_ref().map(|t| t.expose_secret().to_string()),
        None,
        "tokenkeeper-settings",
    );
    let mut req = http.post(&url).header(reqwest::header::CONTENT_TYPE, FORM);
    for (name, value) in signed_headers(&url, &aws.region, identity, &body)? {
        req = req.header(name, value);
    }
    let (status, answer) = send(req.body(body)).await?;
    let text = String::from_utf8_lossy(&answer);
    if !(200..300).contains(&status) {
        return Err(classify(status, xml_text(&text, "Code").as_deref()));
    }
    xml_text(&text, "Arn").ok_or_else(|| GrantError::transient("invalid_response"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601() {
        assert_eq!(parse_iso8601_utc("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_iso8601_utc("2011-07-15T23:28:33.359Z"), Some(1_310_772_513));
        assert_eq!(parse_iso8601_utc("2030-01-01T00:00:00Z"), Some(1_893_456_000));
        assert_eq!(parse_iso8601_utc("2030-01-01T01:00:00+01:00"), Some(1_893_456_000));
        assert_eq!(parse_iso8601_utc("2029-12-31T23:00:00.5-01:00"), Some(1_893_456_000));
        assert_eq!(parse_iso8601_utc("2024-02-29T12:00:00Z"), Some(1_709_208_000));
        for bad in [
            "",
            "2030-01-01",
            "2030-01-01T00:00:00",
            "2030-13-01T00:00:00Z",
            "x030-01-01T00:00:00Z",
        ] {
            assert_eq!(parse_iso8601_utc(bad), None, "{bad}");
        }
    }

    #[test]
    fn session_names() {
        assert_eq!(session_name("user123"), "tokenkeeper-user123");
        assert_eq!(session_name("a b/c:d@e.f"), "tokenkeeper-a-b-c-d@e.f");
        assert_eq!(session_name(""), "tokenkeeper-user");
        let long = session_name(&"x".repeat(200));
        assert_eq!(long.len(), 63);
        assert_eq!(session_name("ü"), "tokenkeeper--");
    }

    #[test]
    fn xml_extraction() {
        let xml = "<ErrorResponse xmlns=\"x\"><Error><Type>Sender</Type><Code>SignatureDoesNotMatch</Code>\
                   <Message>a &amp; b</Message></Error></ErrorResponse>";
        assert_eq!(xml_text(xml, "Code").as_deref(), Some("SignatureDoesNotMatch"));
        assert_eq!(xml_text(xml, "Message").as_deref(), Some("a & b"));
        assert_eq!(xml_text(xml, "Nope"), None);
    }
}
