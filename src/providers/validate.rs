//! The one generic validation routine, driven by the catalog's data.

use serde_json::{Map, Value};

use super::rsa_key::{self, RsaKeyError};
use super::url_policy::{self, UrlPolicy};
use super::{FieldError, FieldFormat, FieldSpec, ProviderSpec, ValidatedCredential, Variant};

/// How a PEM private key's label ends (PKCS#8 `BEGIN ...`, PKCS#1 with `RSA` before it), written in two pieces
/// so that a scan of the repository for key material does not match the code that recognises one.
pub(crate) const PRIVATE_KEY_LABEL: &str = concat!("PRIVATE", " KEY");

/// Largest accepted service-account key (JSON text).
pub const SERVICE_ACCOUNT_MAX: usize = 16 * 1024;
/// Latest accepted epoch second (9999-12-31T23:59:59Z); larger values are most likely milliseconds.
pub const EPOCH_MAX: i64 = 253_402_300_799;

/// A value that counts as "not given": `null`, or a string that is empty or only whitespace.
fn is_absent(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        _ => false,
    }
}

pub(super) fn validate(
    spec: &ProviderSpec,
    body: &Value,
    policy: &UrlPolicy,
) -> Result<ValidatedCredential, FieldError> {
    let Some(obj) = body.as_object() else {
        return Err(FieldError {
            field: "body".into(),
            message: format!("request body must be a JSON object with the {} fields", spec.id),
        });
    };

    for key in obj.keys() {
        if spec.field(key).is_none() {
            let names: Vec<&str> = spec.fields.iter().map(|f| f.name).collect();
            let shown: String = key.chars().take(64).collect();
            return Err(FieldError {
                field: shown.clone(),
                message: format!("{shown} is not a field of {} (expected: {})", spec.id, names.join(", ")),
            });
        }
    }

    let present: Vec<&str> = obj
        .iter()
        .filter(|(_, v)| !is_absent(v))
        .map(|(k, _)| k.as_str())
        .collect();
    let variant = match tagged_variant(spec, obj)? {
        Some(v) => {
            if let Some(odd) = present.iter().find(|p| !v.fields.contains(*p)) {
                let tag = v.tag.expect("a tagged variant");
                return Err(FieldError::new(
                    odd,
                    format!(
                        "is not a field of the {} {} form (its fields: {})",
                        tag.field,
                        tag.value,
                        v.fields.join(", ")
                    ),
                ));
            }
            Some(v)
        }
        None => select_variant(spec, &present)?,
    };

    let mut token_data = Map::new();
    for field in spec.fields {
        if let Some(v) = variant
            && !v.fields.contains(&field.name)
        {
            continue;
        }
        match obj.get(field.name).filter(|v| !is_absent(v)) {
            Some(value) => {
                let normalized = check_format(field, value, policy)?;
                token_data.insert(field.name.to_string(), normalized);
            }
            None if field.required || variant.is_some_and(|v| v.required.contains(&field.name)) => {
                let mut message = format!("{} is required", field.name);
                let others: Vec<String> = spec
                    .variants
                    .iter()
                    .filter(|o| variant.is_some_and(|v| v.name != o.name))
                    .map(|o| {
                        let tag = o.tag.map(|t| format!("{} \"{}\", ", t.field, t.value));
                        format!(
                            "{} ({}{})",
                            o.name,
                            tag.unwrap_or_default(),
                            required_fields(spec, o).join(", ")
                        )
                    })
                    .collect();
                if !others.is_empty() {
                    message.push_str(&format!(" (or give the fields of {})", others.join(" or ")));
                }
                return Err(FieldError {
                    field: field.name.to_string(),
                    message,
                });
            }
            None => {
                if let Some(default) = field.default {
                    token_data.insert(field.name.to_string(), Value::String(default.to_string()));
                }
            }
        }
    }

    let metadata = metadata_of(spec, &token_data);
    let expires_at = spec
        .expires_at_field
        .and_then(|f| token_data.get(f))
        .and_then(Value::as_i64);
    Ok(ValidatedCredential {
        token_data,
        metadata,
        expires_at,
        variant: variant.map(|v| v.name),
        refresh: variant.map_or(spec.refresh, |v| v.refresh),
    })
}

fn required_fields(spec: &ProviderSpec, variant: &Variant) -> Vec<&'static str> {
    variant
        .fields
        .iter()
        .filter_map(|n| spec.field(n))
        .filter(|f| f.required || variant.required.contains(&f.name))
        .map(|f| f.name)
        .collect()
}

/// The variant a tag names (Bitbucket's `auth_type`): the one whose tag value the object gives, else the
/// one the tag field's default names. `None` where the provider's variants carry no tag (they are told by
/// the fields present); a value no variant has is refused.
fn tagged_variant(spec: &ProviderSpec, obj: &Map<String, Value>) -> Result<Option<&'static Variant>, FieldError> {
    let variants: &'static [Variant] = spec.variants;
    let Some(field) = variants.iter().find_map(|v| v.tag).map(|t| t.field) else {
        return Ok(None);
    };
    let value = match obj.get(field).filter(|v| !is_absent(v)) {
        Some(Value::String(s)) => s.trim().to_ascii_lowercase(),
        Some(_) => String::new(),
        None => match spec.field(field).and_then(|f| f.default) {
            Some(default) => default.to_string(),
            None => return Ok(None),
        },
    };
    let named = variants.iter().find(|v| v.tag.is_some_and(|t| t.value == value));
    match named {
        Some(v) => Ok(Some(v)),
        None => {
            let values: Vec<&str> = variants.iter().filter_map(|v| v.tag.map(|t| t.value)).collect();
            Err(FieldError::new(field, format!("must be one of: {}", values.join(", "))))
        }
    }
}

/// The variant a body's (known, present) fields select: the first variant that accepts all of them and whose
/// required fields are all present, else the accepting variant missing the fewest required fields (whose
/// missing field is then reported), else an error naming a field that does not fit.
fn select_variant(spec: &ProviderSpec, present: &[&str]) -> Result<Option<&'static Variant>, FieldError> {
    if spec.variants.is_empty() {
        return Ok(None);
    }
    let variants: &'static [Variant] = spec.variants;
    let accepts = |v: &Variant| present.iter().all(|p| v.fields.contains(p));
    let complete = |v: &Variant| required_fields(spec, v).iter().all(|r| present.contains(r));
    if let Some(v) = variants.iter().find(|v| accepts(v) && complete(v)) {
        return Ok(Some(v));
    }
    // Incomplete: the accepting variant missing the fewest required fields (the first one for an empty
    // body), so that the error names what the user most likely forgot.
    let missing = |v: &Variant| required_fields(spec, v).iter().filter(|r| !present.contains(r)).count();
    let mut accepting = variants.iter().filter(|v| accepts(v));
    if let Some(first) = accepting.next() {
        if present.is_empty() {
            return Ok(Some(first));
        }
        let best = accepting.fold(first, |b, v| if missing(v) < missing(b) { v } else { b });
        return Ok(Some(best));
    }
    // The fields mix variants: name one that does not fit the variant covering most of them.
    let best = variants
        .iter()
        .max_by_key(|v| {
            (
                present.iter().filter(|p| v.fields.contains(p)).count(),
                std::cmp::Reverse(v.name),
            )
        })
        .expect("variants is not empty");
    let anchor = present.iter().find(|p| best.fields.contains(p));
    let odd = present
        .iter()
        .find(|p| !best.fields.contains(p))
        .expect("some field does not fit");
    let choices: Vec<String> = variants
        .iter()
        .map(|v| format!("{} ({})", v.name, v.fields.join(", ")))
        .collect();
    let with = anchor.map(|a| format!(" with {a}")).unwrap_or_default();
    Err(FieldError {
        field: odd.to_string(),
        message: format!(
            "{odd} cannot be combined{with}: {} takes the fields of one of {}",
            spec.id,
            choices.join(" or ")
        ),
    })
}

pub(super) fn variant_of(spec: &ProviderSpec, token_data: &Map<String, Value>) -> Option<&'static Variant> {
    if let Ok(Some(v)) = tagged_variant(spec, token_data) {
        return Some(v);
    }
    let present: Vec<&str> = token_data
        .iter()
        .filter(|(k, v)| !is_absent(v) && spec.field(k).is_some())
        .map(|(k, _)| k.as_str())
        .collect();
    select_variant(spec, &present).ok().flatten()
}

pub(super) fn metadata_of(spec: &ProviderSpec, token_data: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for field in spec.fields {
        let Some(value) = token_data.get(field.name).filter(|v| !v.is_null()) else {
            continue;
        };
        if field.metadata && !field.secret {
            out.insert(field.name.to_string(), value.clone());
        }
        if !field.metadata_keys.is_empty() {
            let inner = match value {
                Value::String(s) => serde_json::from_str::<Value>(s).ok(),
                Value::Object(_) => Some(value.clone()),
                _ => None,
            };
            if let Some(Value::Object(inner)) = inner {
                for key in field.metadata_keys {
                    if let Some(v @ (Value::String(_) | Value::Number(_) | Value::Bool(_))) = inner.get(*key) {
                        out.insert((*key).to_string(), v.clone());
                    }
                }
            }
        }
    }
    out
}

pub(super) fn token_url(
    spec: &ProviderSpec,
    token_data: &Map<String, Value>,
    token_url_override: Option<&str>,
    authority_host_override: Option<&str>,
) -> Option<String> {
    let ep = &spec.endpoints;
    let template = match (token_url_override.filter(|s| !s.trim().is_empty()), ep.token_path) {
        (Some(url), _) => url.trim().to_string(),
        (None, Some(path)) => {
            let host = authority_host_override
                .filter(|s| !s.trim().is_empty())
                .or(ep.authority_host)?;
            format!("{}{}", host.trim().trim_end_matches('/'), path)
        }
        (None, None) => ep.token_url?.to_string(),
    };
    substitute(&template, token_data)
}

/// Replace `{field}` placeholders with the percent-encoded token-data value; `None` if one is missing.
pub fn substitute(template: &str, token_data: &Map<String, Value>) -> Option<String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some((before, after)) = rest.split_once('{') {
        let (name, after) = after.split_once('}')?;
        out.push_str(before);
        let value = match token_data.get(name)? {
            Value::String(s) if !s.is_empty() => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return None,
        };
        out.push_str(&percent_encode(&value));
        rest = after;
    }
    out.push_str(rest);
    Some(out)
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Epoch seconds from a JSON number (integral or not; fractions are dropped) or a numeric string.
pub(super) fn epoch_seconds(v: &Value) -> Result<i64, &'static str> {
    const MSG: &str = "must be a time in epoch seconds (an integer from 0 to 253402300799)";
    let secs = match v {
        Value::Number(n) => match n.as_i64() {
            Some(i) => i,
            None => {
                let f = n.as_f64().ok_or(MSG)?;
                crate::clock::whole_secs(f)
                    .filter(|s| (0..=EPOCH_MAX).contains(s))
                    .ok_or(MSG)?
            }
        },
        Value::String(s) => {
            let s = s.trim();
            match s.parse::<i64>() {
                Ok(i) => i,
                Err(_) => {
                    let f: f64 = s.parse().map_err(|_| MSG)?;
                    if s.contains(['e', 'E']) {
                        return Err(MSG);
                    }
                    crate::clock::whole_secs(f)
                        .filter(|s| (0..=EPOCH_MAX).contains(s))
                        .ok_or(MSG)?
                }
            }
        }
        _ => return Err(MSG),
    };
    if (0..=EPOCH_MAX).contains(&secs) {
        Ok(secs)
    } else {
        Err(MSG)
    }
}

fn check_len(name: &str, s: &str, max: usize) -> Result<(), FieldError> {
    if s.len() > max {
        Err(FieldError::new(name, format_args!("must be at most {max} bytes")))
    } else {
        Ok(())
    }
}

fn as_str<'a>(field: &FieldSpec, v: &'a Value) -> Result<&'a str, FieldError> {
    v.as_str()
        .ok_or_else(|| FieldError::new(field.name, "must be a string"))
}

/// Check one (present) value against its field's format and return it normalized.
/// The PUT body schemas of the OpenAPI document (`src/http/openapi/provider_schemas.rs`) state these checks:
/// change them together.
fn check_format(field: &FieldSpec, value: &Value, policy: &UrlPolicy) -> Result<Value, FieldError> {
    let name = field.name;
    let err = |what: &str| FieldError::new(name, what);
    let normalized = match field.format {
        FieldFormat::Text { max_len } => {
            let s = as_str(field, value)?.trim();
            check_len(name, s, max_len)?;
            if s.chars().any(char::is_control) {
                return Err(err("must not contain control characters"));
            }
            s.to_string()
        }
        FieldFormat::Token { max_len, prefixes } => {
            let s = as_str(field, value)?.trim();
            check_len(name, s, max_len)?;
            if !s.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(err("must not contain spaces, control or non-ASCII characters"));
            }
            if !prefixes.is_empty() && !prefixes.iter().any(|p| s.starts_with(p)) {
                return Err(FieldError::new(
                    name,
                    format_args!("must start with {}", prefixes.join(" or ")),
                ));
            }
            s.to_string()
        }
        FieldFormat::Password { max_len } => {
            let s = as_str(field, value)?;
            check_len(name, s, max_len)?;
            if s.contains('\0') {
                return Err(err("must not contain NUL characters"));
            }
            s.to_string()
        }
        FieldFormat::Identifier { max_len, extra } => {
            let s = as_str(field, value)?.trim();
            check_len(name, s, max_len)?;
            if !s.chars().all(|c| c.is_ascii_alphanumeric() || extra.contains(c)) {
                let also = if extra.is_empty() {
                    String::new()
                } else {
                    format!(" and {}", extra.chars().map(String::from).collect::<Vec<_>>().join(" "))
                };
                return Err(FieldError::new(
                    name,
                    format_args!("may only contain letters, digits{also}"),
                ));
            }
            s.to_string()
        }
        FieldFormat::EpochSeconds => return epoch_seconds(value).map(Value::from).map_err(err),
        FieldFormat::Email => {
            let s = as_str(field, value)?.trim();
            if !is_email(s) {
                return Err(err("must be an e-mail address"));
            }
            s.to_string()
        }
        FieldFormat::Uuid => {
            let s = as_str(field, value)?.trim();
            if !is_uuid(s) {
                return Err(err("must be a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)"));
            }
            s.to_ascii_lowercase()
        }
        FieldFormat::HttpsUrl => {
            let s = as_str(field, value)?;
            url_policy::normalize_base_url(s, policy).map_err(|e| FieldError::new(name, e))?
        }
        FieldFormat::OneOf { values } => {
            let s = as_str(field, value)?.trim().to_ascii_lowercase();
            if !values.contains(&s.as_str()) {
                return Err(FieldError::new(
                    name,
                    format_args!("must be one of: {}", values.join(", ")),
                ));
            }
            s
        }
        FieldFormat::AwsRoleArn => {
            let s = as_str(field, value)?.trim();
            if !is_role_arn(s) {
                return Err(err(
                    "must be an IAM role ARN (arn:aws:iam::<12-digit account id>:role/<name>)",
                ));
            }
            s.to_string()
        }
        FieldFormat::AwsExternalId => {
            let s = as_str(field, value)?.trim();
            let ok_char = |c: char| c.is_ascii_alphanumeric() || "_+=,.@:/-".contains(c);
            if !(2..=1224).contains(&s.len()) || !s.chars().all(ok_char) {
                return Err(err(
                    "must be 2 to 1224 characters of letters, digits and _ + = , . @ : / -",
                ));
            }
            s.to_string()
        }
        FieldFormat::ScalewayAccessKey => {
            let s = as_str(field, value)?.trim();
            let ok = s.len() == 20
                && s.strip_prefix("SCW")
                    .is_some_and(|id| id.bytes().all(|b| b.is_ascii_alphanumeric()));
            if !ok {
                return Err(err("must be SCW followed by 17 letters or digits"));
            }
            s.to_string()
        }
        FieldFormat::AzureTenant => {
            let s = as_str(field, value)?.trim();
            if !is_uuid(s) && !is_domain(s) {
                return Err(err(
                    "must be a tenant id (UUID) or domain such as contoso.onmicrosoft.com",
                ));
            }
            s.to_ascii_lowercase()
        }
        FieldFormat::GcpServiceAccountJson => return check_service_account(name, value, policy),
    };
    Ok(Value::String(normalized))
}

fn check_service_account(name: &str, value: &Value, policy: &UrlPolicy) -> Result<Value, FieldError> {
    let (text, obj) = match value {
        Value::String(s) => {
            let s = s.trim();
            check_len(name, s, SERVICE_ACCOUNT_MAX)?;
            match serde_json::from_str::<Value>(s) {
                Ok(Value::Object(o)) => (s.to_string(), o),
                _ => {
                    return Err(FieldError::new(name, "must be a service-account key in JSON"));
                }
            }
        }
        Value::Object(o) => {
            let s = serde_json::to_string(o).map_err(|_| FieldError::new(name, "is not valid JSON"))?;
            check_len(name, &s, SERVICE_ACCOUNT_MAX)?;
            (s, o.clone())
        }
        _ => {
            return Err(FieldError::new(
                name,
                "must be a service-account key (JSON text or object)",
            ));
        }
    };
    let get = |key: &str| -> Result<&str, FieldError> {
        obj.get(key)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| FieldError::new(name, format_args!("must contain {key}")))
    };
    if get("type")? != "service_account" {
        return Err(FieldError::new(name, "must have type \"service_account\""));
    }
    if !is_email(get("client_email")?) {
        return Err(FieldError::new(name, "client_email must be an e-mail address"));
    }
    let private_key = get("private_key")?;
    if !is_pem_private_key(private_key) {
        return Err(FieldError::new(name, "private_key must be a PEM private key"));
    }
    // Over the size limit, refused now rather than at every refresh. A key that is no RSA key at all is
    // left to the refresh, which says so (`needs_reauth`), as before the limit existed.
    if let Err(e @ RsaKeyError::TooLarge { .. }) = rsa_key::signing_key(private_key) {
        return Err(FieldError::new(name, format_args!("private_key {e}")));
    }
    url_policy::check_url(get("token_uri")?, policy)
        .map_err(|e| FieldError::new(name, format_args!("token_uri {e}")))?;
    if let Some(project) = obj.get("project_id")
        && !project.is_string()
    {
        return Err(FieldError::new(name, "project_id must be a string"));
    }
    Ok(Value::String(text))
}

fn is_pem_private_key(pem: &str) -> bool {
    use base64::Engine;
    let pem = pem.trim();
    let Some(rest) = pem.strip_prefix("-----BEGIN ") else {
        return false;
    };
    let Some((label, rest)) = rest.split_once("-----") else {
        return false;
    };
    if !label.ends_with(PRIVATE_KEY_LABEL) {
        return false;
    }
    let Some((body, end)) = rest.rsplit_once("-----END ") else {
        return false;
    };
    if end.trim_end() != format!("{label}-----") {
        return false;
    }
    let b64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    !b64.is_empty() && base64::engine::general_purpose::STANDARD.decode(b64).is_ok()
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

fn is_domain(s: &str) -> bool {
    s.len() <= 253
        && s.contains('.')
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    s.len() <= 254
        && !local.is_empty()
        && local.len() <= 64
        && !local.contains('@')
        && local
            .chars()
            .all(|c| c.is_ascii_graphic() || (!c.is_ascii() && !c.is_control()))
        && is_domain(domain)
}

fn is_role_arn(s: &str) -> bool {
    if s.len() > 2048 {
        return false;
    }
    let parts: Vec<&str> = s.splitn(6, ':').collect();
    let [arn, partition, service, region, account, resource] = parts[..] else {
        return false;
    };
    let Some(path) = resource.strip_prefix("role/") else {
        return false;
    };
    arn == "arn"
        && partition.starts_with("aws")
        && partition.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
        && service == "iam"
        && region.is_empty()
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && !path.is_empty()
        && !path.ends_with('/')
        && !path.starts_with('/')
        && !path.contains("//")
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-/".contains(c))
}
