//! The JSON Schema of each provider's `PUT /api/tokens/{provider}` body (`TokenBody_<id>`), built from the
//! catalog: one property per field, `required` as the catalog says, one `oneOf` branch per variant, and for
//! each field's [`FieldFormat`] what `providers::validate` checks.
//!
//! The aim: a body the schema accepts is a body the validator accepts, so that clients and fuzzers that
//! generate from the schema reach the storing path. Each check is written exactly where JSON Schema can say
//! it, and narrower where it cannot (URL hosts: DNS names only; e-mail local parts: ASCII only; no surrounding
//! whitespace, which the validator would trim). Three things it cannot say, stated in the field's description
//! instead: lengths are in bytes where `maxLength` counts characters (the same for ASCII); the 16 KiB limit of
//! a service-account key; and that a key given as JSON text holds the object form (`contentSchema` is an
//! annotation: a generator may well send any string there, which the validator refuses).

use serde_json::Value;
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, Type};

use crate::providers::url_policy::MAX_URL_LEN;
use crate::providers::{EPOCH_MAX, FieldFormat, FieldSpec, ProviderSpec, SERVICE_ACCOUNT_MAX, Variant};

/// The component name of a provider's body schema.
pub fn component_name(provider: &str) -> String {
    format!("TokenBody_{provider}")
}

/// The body schema of one provider: an object of its fields, or `oneOf` its variants (disjoint: each branch
/// refuses the fields the others require, as the validator refuses mixing them).
pub fn token_body(spec: &ProviderSpec) -> Schema {
    let examples = spec.example_credentials();
    if spec.variants.is_empty() {
        return shape(spec.fields.iter().copied())
            .title(Some(spec.name))
            .description(Some(spec.docs))
            .examples(examples)
            .into();
    }
    let mut one_of = OneOfBuilder::new().title(Some(spec.name)).description(Some(spec.docs));
    for variant in spec.variants {
        let fields = variant.fields.iter().filter_map(|name| spec.field(name));
        let fields = fields.map(|f| in_variant(spec, variant, f));
        let mine = examples.iter().filter(|e| {
            e.as_object()
                .and_then(|o| spec.variant_of(o))
                .is_some_and(|v| v.name == variant.name)
        });
        one_of = one_of.item(
            shape(fields)
                .title(Some(variant.name))
                .description(Some(variant.description))
                .examples(mine.cloned()),
        );
    }
    one_of.into()
}

/// A field as one variant takes it: required there when the variant says so; its tag field (Bitbucket's
/// `auth_type`) takes only the variant's value, and is required unless that value is the default.
fn in_variant(spec: &ProviderSpec, variant: &'static Variant, field: &FieldSpec) -> FieldSpec {
    let mut field = *field;
    field.required |= variant.required.contains(&field.name);
    if let Some(tag) = variant.tag.as_ref().filter(|t| t.field == field.name) {
        field.required |= spec.field(tag.field).and_then(|f| f.default) != Some(tag.value);
        field.format = FieldFormat::OneOf {
            values: std::slice::from_ref(&tag.value),
        };
    }
    field
}

/// An object of exactly these fields; unknown fields are refused, like the validator does.
fn shape(fields: impl Iterator<Item = FieldSpec>) -> ObjectBuilder {
    let mut object = ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)));
    for field in fields {
        object = object.property(field.name, property(&field));
        if field.required {
            object = object.required(field.name);
        }
    }
    object
}

fn property(field: &FieldSpec) -> Schema {
    let mut description = field.description.to_string();
    if let Some(note) = note(field.format) {
        description.push(' ');
        description.push_str(&note);
    }
    let default = field.default.map(Value::from);
    let write_only = field.secret.then_some(true);
    match field.format {
        FieldFormat::EpochSeconds => OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Number)
                    .minimum(Some(0))
                    .maximum(Some(EPOCH_MAX)),
            )
            .item(string(r"^[0-9]{1,11}$"))
            .description(Some(description))
            .default(default)
            .into(),
        FieldFormat::GcpServiceAccountJson => {
            let text = ObjectBuilder::new()
                .schema_type(Type::String)
                .max_length(Some(SERVICE_ACCOUNT_MAX))
                .content_media_type("application/json")
                .extensions(Some(content_schema(service_account_key())));
            OneOfBuilder::new()
                .item(service_account_key().write_only(write_only))
                .item(text.write_only(write_only))
                .description(Some(description))
                .into()
        }
        format => string_format(format)
            .description(Some(description))
            .default(default)
            .write_only(write_only)
            .into(),
    }
}

/// What the description adds to the field's own: the checks the schema words cannot carry.
fn note(format: FieldFormat) -> Option<String> {
    Some(match format {
        FieldFormat::Text { max_len } => format!("At most {max_len} bytes (UTF-8), no control characters."),
        FieldFormat::Password { max_len } => format!("At most {max_len} bytes (UTF-8), kept exactly as given."),
        FieldFormat::HttpsUrl => "An https URL of a public host name: no IP address, user name, query or \
                                  fragment; stored without a trailing slash."
            .into(),
        FieldFormat::GcpServiceAccountJson => format!(
            "As JSON text, at most {SERVICE_ACCOUNT_MAX} bytes, with the fields of the object form; the \
             object form is stored as JSON text too."
        ),
        _ => return None,
    })
}

/// A string field: the validator's check of `format`, as `pattern` and lengths.
fn string_format(format: FieldFormat) -> ObjectBuilder {
    match format {
        // Trimmed, then 1..=max_len bytes without control characters (`char::is_control` is Unicode Cc).
        FieldFormat::Text { max_len } => string(&format!(r"^[^\s{CONTROL}](?:[^{CONTROL}]*[^\s{CONTROL}])?$"))
            .min_length(Some(1))
            .max_length(Some(max_len)),
        // Trimmed, then visible ASCII only, starting with one of the prefixes when there are any.
        FieldFormat::Token { max_len, prefixes } => {
            let pattern = if prefixes.is_empty() {
                "^[!-~]+$".to_string()
            } else {
                let alternatives: Vec<String> = prefixes.iter().map(|p| escape(p)).collect();
                format!("^(?:{})[!-~]*$", alternatives.join("|"))
            };
            string(&pattern).min_length(Some(1)).max_length(Some(max_len))
        }
        // Not trimmed: anything but NUL, though not only whitespace (which counts as absent). U+0085 is
        // whitespace to Rust's `trim` but not to ECMA-262's `\s`.
        FieldFormat::Password { max_len } => string(r"^[^\x00]*[^\s\x00\x85][^\x00]*$")
            .min_length(Some(1))
            .max_length(Some(max_len)),
        FieldFormat::Identifier { max_len, extra } => {
            // `-` last in the class, where it is no range.
            let (dash, rest): (String, String) = extra.chars().partition(|c| *c == '-');
            let escaped: String = rest.chars().map(|c| escape(&c.to_string())).collect();
            string(&format!("^[A-Za-z0-9{escaped}{dash}]+$"))
                .min_length(Some(1))
                .max_length(Some(max_len))
        }
        FieldFormat::Email => email(),
        FieldFormat::Uuid => string(&format!("^{UUID}$")).format(Some(SchemaFormat::Custom("uuid".into()))),
        FieldFormat::HttpsUrl => https_url(),
        FieldFormat::OneOf { values } => ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(values.iter().copied())),
        FieldFormat::AwsRoleArn => {
            string(r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9_+=,.@-]+(?:/[A-Za-z0-9_+=,.@-]+)*$")
                .max_length(Some(2048))
        }
        FieldFormat::AwsExternalId => string(r"^[A-Za-z0-9_+=,.@:/-]+$")
            .min_length(Some(2))
            .max_length(Some(1224)),
        FieldFormat::ScalewayAccessKey => string("^SCW[A-Za-z0-9]{17}$"),
        FieldFormat::AzureTenant => string(&format!("^(?:{UUID}|{DOMAIN})$")).max_length(Some(253)),
        FieldFormat::EpochSeconds | FieldFormat::GcpServiceAccountJson => {
            unreachable!("{format:?} is not a string format: `property` builds its schema")
        }
    }
}

/// Unicode general category Cc, what `char::is_control` refuses.
const CONTROL: &str = r"\x00-\x1F\x7F-\x9F";
const UUID: &str = "[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}";
/// `is_domain`: dot-separated labels of letters, digits and inner hyphens, at least two labels.
const DOMAIN: &str =
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?";

fn string(pattern: &str) -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String).pattern(Some(pattern))
}

/// `is_email`: a local part of visible characters but `@` (ASCII only here; the validator also takes
/// non-ASCII letters), `@`, a domain; 254 bytes at most.
fn email() -> ObjectBuilder {
    string(&format!("^[!-?A-~]{{1,64}}@{DOMAIN}$"))
        .max_length(Some(254))
        .format(Some(SchemaFormat::Custom("email".into())))
}

/// The URL policy's production setting (a deployment that allows private URLs accepts more): https, a host
/// name of two labels or more that is not local (`.local`, `.localhost`, `.internal`, `.arpa`), an optional
/// port, a path; no user name, query or fragment. Labels have no `--`, so no punycode the URL parser could
/// refuse; the top-level label is letters only, so the host is never read as an IPv4 address. No
/// `format: uri`: the pattern says more, and with both, schemathesis' coverage phase spent minutes per
/// operation drawing URIs only to filter them by the pattern.
fn https_url() -> ObjectBuilder {
    const LABEL: &str = "[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*";
    const PORT: &str = "(?:[0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])";
    let top = "(?!(?:local|localhost|internal|arpa)(?:[:/]|$))[a-z]{2,63}";
    string(&format!(
        "^https://(?:{LABEL}\\.)+{top}(?::{PORT})?(?:/[A-Za-z0-9._~-]*)*$"
    ))
    .max_length(Some(MAX_URL_LEN))
}

/// `check_service_account`: `type` "service_account", `client_email`, a PEM `private_key` and a `token_uri`
/// the URL policy accepts; `project_id`, when given, a string; other keys are kept as they are.
fn service_account_key() -> ObjectBuilder {
    // Base64 as the `base64` crate's standard engine decodes it: padded, unused trailing bits zero. Only
    // the PKCS#8 label Google issues; the validator also takes the PKCS#1 (RSA) label and others. The label
    // is written in pieces so that a scan of the repository for key material does not match this pattern.
    let pem = concat!(
        r"^-----BEGIN ",
        "PRIVATE",
        r" KEY-----\n?(?:[A-Za-z0-9+/]{4}\n?)*",
        r"(?:[A-Za-z0-9+/]{4}|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=|[A-Za-z0-9+/][AQgw]==)",
        r"\n?-----END ",
        "PRIVATE",
        r" KEY-----\n?$"
    );
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property(
            "type",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(["service_account"])),
        )
        .property("client_email", email())
        .property("private_key", string(pem))
        .property("token_uri", https_url())
        .property("project_id", ObjectBuilder::new().schema_type(Type::String))
        .required("type")
        .required("client_email")
        .required("private_key")
        .required("token_uri")
}

/// `contentSchema` (JSON Schema 2020-12, which OpenAPI 3.1 uses): what the JSON text holds. utoipa has no
/// field for it; extensions are serialized flat into the schema object.
fn content_schema(schema: ObjectBuilder) -> Extensions {
    let mut extensions = Extensions::default();
    let value = serde_json::to_value(Schema::from(schema.build())).expect("a schema serializes to JSON");
    extensions.insert("contentSchema".into(), value);
    extensions
}

/// Escape ECMA-262's syntax characters, for literal prefixes and class members. Only those: with the `u` flag
/// other escapes (`\-` outside a class) are syntax errors.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if r"\^$.|?*+()[]{}".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
