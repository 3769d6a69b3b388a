//! The rules the request validators apply that the derived schemas cannot
//! carry on their own: lengths, patterns, ranges and "exactly one of". They
//! are written here once, from the validators' own constants, and the
//! contract run (`scripts/api-contract.sh`, Schemathesis with every check)
//! fails if a rule and its validator ever disagree in either direction.
//!
//! Text fields follow one rule (see `check_text` in `routes/mail.rs` and
//! `ReservationFields::validate`): at most `max` characters as sent, not
//! blank, and no control characters except the surrounding whitespace the
//! server trims. "Whitespace" is Rust's `char::is_whitespace`, spelled out
//! below because a pattern's `\s` means something else in every language.
//!
//! Some rules depend on more than the request (`run_at` against the clock,
//! `ends_at` against a stored `starts_at`, `shard` against `shards`) and no
//! JSON Schema can state them; those operations also answer 422 to a
//! well-formed request, as their descriptions say, and `scripts/schemathesis.toml`
//! lists them.

use serde_json::json;
use utoipa::{
    openapi::{
        schema::{AnyOf, ArrayItems, KnownFormat, OneOf, SchemaFormat, SchemaType, Type},
        Object, ObjectBuilder, OpenApi, Ref, RefOr, Schema,
    },
    Modify,
};

use crate::routes::{
    mail::{
        CLIENT_ID_MAX_CHARS, HOST_MAX_CHARS, MAX_SENDERS, PASSWORD_MAX_CHARS, REFRESH_TOKEN_MAX_CHARS,
        USERNAME_MAX_CHARS,
    },
    me::{LOCALE_MAX_CHARS, PROFILE_LOCALE_PATTERN},
    media::CAPTION_MAX_CHARS,
    uploads::CONTENT_TYPE_MAX_CHARS,
};
use longhaul_jobs::{
    events::{catalogue::NAME_PATTERN, MAX_BATCH, MAX_DEVICE_FIELD_CHARS, MAX_SESSION_ID_CHARS},
    imports::{MAX_UPLOAD_BYTES, UPLOAD_TYPES},
    inbox::APP_VERSION_MAX_CHARS,
    kind::{
        ReservationRefreshPayload, FUNNEL_STEPS, FUNNEL_WINDOW_HOURS, LOCALE_PATTERN, MONTH_PATTERN, PAYLOAD_YEARS,
        VIDEO_MEDIA_MAX, VIDEO_NAME_MAX,
    },
    media::MEDIA_TYPES,
    travel::{ReservationFields, Zone},
    JobKind,
};

/// Rust's whitespace (`char::is_whitespace`, Unicode `White_Space`).
const WS: &str = r"[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]";

/// Text: not blank, no control characters but surrounding whitespace.
fn text_pattern() -> String {
    // Control characters are Unicode `Cc`: U+0000–U+001F and U+007F–U+009F.
    let plain = r"[^\x00-\x1f\x7f-\x9f]";
    let visible = r"[^\x00-\x1f\x7f-\x9f \xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]";
    format!("^{WS}*(?:{visible}|{visible}{plain}*{visible}){WS}*$")
}

/// `len` ASCII letters, any case, with surrounding whitespace.
fn letters_pattern(len: usize) -> String {
    format!("^{WS}*[A-Za-z]{{{len}}}{WS}*$")
}

/// A host name (labels of letters, digits and inner hyphens; trailing dots
/// allowed) or an IPv4 address (which is also such a name), or an IPv6
/// address without an embedded IPv4 part.
fn host_pattern() -> String {
    let label = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?";
    let h = "[0-9A-Fa-f]{1,4}";
    let ipv6 = [
        format!("(?:{h}:){{7}}{h}"),
        format!("(?:{h}:){{1,7}}:"),
        format!("(?:{h}:){{1,6}}:{h}"),
        format!("(?:{h}:){{1,5}}(?::{h}){{1,2}}"),
        format!("(?:{h}:){{1,4}}(?::{h}){{1,3}}"),
        format!("(?:{h}:){{1,3}}(?::{h}){{1,4}}"),
        format!("(?:{h}:){{1,2}}(?::{h}){{1,5}}"),
        format!("{h}:(?::{h}){{1,6}}"),
        format!(":(?:(?::{h}){{1,7}}|:)"),
    ]
    .join("|");
    format!(r"^{WS}*(?:{label}(?:\.{label})*\.*|{ipv6}){WS}*$")
}

/// A sender domain: two labels at least (letters, digits, hyphens).
fn domain_pattern() -> String {
    let label = "[A-Za-z0-9-]{1,63}";
    format!(r"^{WS}*{label}(?:\.{label})+\.*{WS}*$")
}

/// A token endpoint: `https`, or `http` on a loopback host. The server takes
/// any URL of those; the document promises a plain form of them.
fn token_url_pattern() -> String {
    let host = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*";
    let rest = r"(?::[1-9][0-9]{0,3})?(?:/[A-Za-z0-9._~/-]*)?";
    format!(r"^(?:https://{host}|http://(?:localhost|127\.0\.0\.1|\[::1\])){rest}$")
}

/// An import's content type (see `check_content_type` in
/// `routes/uploads.rs`): one of [`UPLOAD_TYPES`] in any case, then perhaps
/// parameters, all printable ASCII or tabs, within surrounding whitespace.
fn upload_type_pattern() -> String {
    let any_case = |name: &str| -> String {
        name.chars()
            .map(|c| if c.is_ascii_alphabetic() { format!("[{}{}]", c.to_ascii_uppercase(), c) } else { c.to_string() })
            .collect()
    };
    let types: Vec<String> = UPLOAD_TYPES.iter().map(|name| any_case(name)).collect();
    format!(r"^{WS}*(?:{})[\t ]*(?:;[\t\x20-\x7e]*)?{WS}*$", types.join("|"))
}

pub(crate) struct Rules;

impl Modify for Rules {
    fn modify(&self, openapi: &mut OpenApi) {
        for rule in apply(openapi) {
            // A renamed schema or field; `every_rule_applies` fails on it.
            tracing::error!(%rule, "an OpenAPI rule found nothing to apply to");
        }
    }
}

/// Applies the rules; returns those that found nothing to apply to.
fn apply(openapi: &mut OpenApi) -> Vec<String> {
    let text = text_pattern();
    let mut rules = Edits { openapi, missing: Vec::new() };

    rules.string("NewMailAccountBody", "imap_host", |s| {
        s.pattern = Some(host_pattern());
        s.max_length = Some(HOST_MAX_CHARS);
    });
    rules.string("NewMailAccountBody", "imap_port", |s| {
        s.minimum = Some(1.into());
        s.maximum = Some(65_535.into());
        s.format = None;
    });
    rules.string("NewMailAccountBody", "username", |s| {
        s.pattern = Some(text.clone());
        s.max_length = Some(USERNAME_MAX_CHARS);
    });
    for body in ["NewMailAccountBody", "MailAccountChanges"] {
        rules.string(body, "password", |s| {
            s.pattern = Some(r"^[^\x00-\x1f\x7f-\x9f]*$".to_owned());
            s.min_length = Some(1);
            s.max_length = Some(PASSWORD_MAX_CHARS);
        });
        rules.array(body, "allowed_senders", Some(1), Some(MAX_SENDERS), |s| {
            s.pattern = Some(domain_pattern());
            s.max_length = Some(HOST_MAX_CHARS);
        });
    }
    rules.string("OAuth2Body", "token_url", |s| s.pattern = Some(token_url_pattern()));
    rules.string("OAuth2Body", "client_id", |s| {
        s.pattern = Some(text.clone());
        s.max_length = Some(CLIENT_ID_MAX_CHARS);
    });
    rules.string("OAuth2Body", "refresh_token", |s| {
        s.pattern = Some(text.clone());
        s.max_length = Some(REFRESH_TOKEN_MAX_CHARS);
    });
    // A new account takes exactly one credential; a change at most one.
    let password: Variant = Box::new(|v| {
        present(v, "password");
        absent(v, "oauth2");
    });
    let oauth2: Variant = Box::new(|v| {
        present(v, "oauth2");
        absent(v, "password");
    });
    rules.one_of("NewMailAccountBody", vec![password, oauth2]);
    rules.one_of(
        "MailAccountChanges",
        vec![
            Box::new(|v| {
                present(v, "password");
                absent(v, "oauth2");
            }),
            Box::new(|v| {
                present(v, "oauth2");
                absent(v, "password");
            }),
            Box::new(|v| {
                absent(v, "password");
                absent(v, "oauth2");
            }),
        ],
    );

    let zone = Zone::pattern();
    for body in ["NewReservation", "ReservationChanges"] {
        for (field, max) in [
            ("reservation_number", ReservationFields::RESERVATION_NUMBER_MAX_CHARS),
            ("provider", ReservationFields::PROVIDER_MAX_CHARS),
            ("city", ReservationFields::CITY_MAX_CHARS),
        ] {
            rules.string(body, field, |s| {
                s.pattern = Some(text.clone());
                s.max_length = Some(max);
            });
        }
        rules.string(body, "country", |s| s.pattern = Some(letters_pattern(2)));
        for field in ["origin", "destination"] {
            rules.string(body, field, |s| s.pattern = Some(letters_pattern(3)));
        }
        for field in ["start_zone", "end_zone"] {
            rules.string(body, field, |s| s.pattern = Some(zone.clone()));
        }
    }

    rules.string("NewMediaBody", "content_type", |s| {
        s.enum_values = Some(MEDIA_TYPES.iter().map(|t| json!(t)).collect());
    });
    rules.string("NewMediaBody", "caption", |s| s.max_length = Some(CAPTION_MAX_CHARS));
    rules.string("NewUploadBody", "content_type", |s| {
        s.pattern = Some(upload_type_pattern());
        s.max_length = Some(CONTENT_TYPE_MAX_CHARS);
    });
    rules.string("NewUploadBody", "size_bytes", |s| {
        s.minimum = Some(1.into());
        s.maximum = Some(MAX_UPLOAD_BYTES.into());
    });

    rules.array_bounds("EventsBody", "events", 1, MAX_BATCH);
    rules.string("EventIn", "name", |s| s.pattern = Some(NAME_PATTERN.to_owned()));
    rules.string("EventIn", "session_id", |s| {
        s.pattern = Some(r"^[^\x00-\x1f\x7f-\x9f]*$".to_owned());
        s.min_length = Some(1);
        s.max_length = Some(MAX_SESSION_ID_CHARS);
    });
    for field in ["platform", "app_version", "os_version", "model"] {
        rules.string("Device", field, |s| {
            s.pattern = Some(r"^[^\x00-\x1f\x7f-\x9f]*$".to_owned());
            s.max_length = Some(MAX_DEVICE_FIELD_CHARS);
        });
    }

    rules.string("ProfileChanges", "time_zone", |s| {
        s.enum_values = Some(chrono_tz::TZ_VARIANTS.iter().map(|zone| json!(zone.name())).collect());
        s.pattern = None;
    });
    rules.string("ProfileChanges", "locale", |s| {
        s.pattern = Some(PROFILE_LOCALE_PATTERN.to_owned());
        s.max_length = Some(LOCALE_MAX_CHARS);
    });
    rules.string("NewDeviceBody", "app_version", |s| {
        s.pattern = Some(r"^[^\x00-\x1f\x7f-\x9f]*$".to_owned());
        s.max_length = Some(APP_VERSION_MAX_CHARS);
    });

    // A tenant's part of a sweep has a subset of the platform report's
    // fields, so a platform report matches both shapes: either, not
    // exactly one.
    rules.any_of("SweepItem");
    payloads(&mut rules);
    rules.event_stream("/v1/jobs/{id}/events", &["status", "progress"], "JobView");
    rules.event_stream("/v1/me/notifications", &["notification"], "Notification");
    rules.binary_body("/v1/media/{id}/upload");
    rules.binary_body("/v1/uploads/{id}/upload");
    rules.missing
}

/// Each registered kind's payload, as components (with the enums they
/// refer to), the rules their types cannot carry, and `POST /v1/jobs` tied
/// to them: a body whose `kind` is `report_build` has a
/// `ReportBuildPayload`, and so on.
fn payloads(rules: &mut Edits) {
    let components = rules.openapi.components.get_or_insert_with(Default::default);
    for kind in JobKind::all() {
        let mut schemas = Vec::new();
        (kind.spec().schemas)(&mut schemas);
        components.schemas.extend(schemas);
    }

    let years = |s: &mut Object| {
        s.minimum = Some((*PAYLOAD_YEARS.start()).into());
        s.maximum = Some((*PAYLOAD_YEARS.end()).into());
    };
    rules.string("ReportBuildPayload", "year", years);
    rules.string("ReportBuildPayload", "month", |s| s.pattern = Some(MONTH_PATTERN.to_owned()));
    rules.string("ReportBuildPayload", "locale", |s| s.pattern = Some(LOCALE_PATTERN.to_owned()));
    rules.string("VideoCompilePayload", "locale", |s| s.pattern = Some(LOCALE_PATTERN.to_owned()));
    // What each report needs besides its name.
    let report = |name: &'static str, needs: &'static [&'static str]| -> Variant {
        Box::new(move |v| {
            only(v, "report", name);
            for field in needs {
                present(v, field);
            }
        })
    };
    rules.one_of(
        "ReportBuildPayload",
        vec![
            report("year_summary", &["year"]),
            report("vendor_analytics", &["month"]),
            report("funnel", &["steps", "from", "to"]),
        ],
    );
    rules.array("ReportBuildPayload", "steps", Some(*FUNNEL_STEPS.start()), Some(*FUNNEL_STEPS.end()), |s| {
        s.pattern = Some(NAME_PATTERN.to_owned());
    });
    rules.string("ReportBuildPayload", "window_hours", |s| {
        s.minimum = Some((*FUNNEL_WINDOW_HOURS.start()).into());
        s.maximum = Some((*FUNNEL_WINDOW_HOURS.end()).into());
    });

    rules.string("VideoCompilePayload", "year", years);
    rules.string("VideoCompilePayload", "name", |s| s.max_length = Some(VIDEO_NAME_MAX));
    rules.array("VideoCompilePayload", "media", None, Some(VIDEO_MEDIA_MAX), |_| {});

    let max_shards = ReservationRefreshPayload::MAX_SHARDS;
    rules.string("ReservationRefreshPayload", "shard", |s| s.maximum = Some((max_shards - 1).into()));
    rules.string("ReservationRefreshPayload", "shards", |s| {
        s.minimum = Some(1.into());
        s.maximum = Some(max_shards.into());
    });

    let variants = JobKind::all()
        .iter()
        .map(|kind| -> Variant {
            let (name, payload) = (kind.as_str(), (kind.spec().schema_name)());
            Box::new(move |v| {
                only(v, "kind", name);
                v.properties.insert("payload".to_owned(), RefOr::Ref(Ref::from_schema_name(payload)));
            })
        })
        .collect();
    rules.one_of("SubmitJob", variants);
}

/// An edit that makes one variant of a union.
type Variant = Box<dyn FnOnce(&mut Object)>;

/// `field` is required and not null.
fn present(variant: &mut Object, field: &str) {
    if !variant.required.iter().any(|f| f == field) {
        variant.required.push(field.to_owned());
    }
    let Some(property) = variant.properties.get_mut(field) else { return };
    match property {
        RefOr::T(Schema::Object(object)) => {
            if let SchemaType::Array(types) = &object.schema_type {
                let types: Vec<Type> = types.iter().filter(|t| **t != Type::Null).cloned().collect();
                object.schema_type = match types.as_slice() {
                    [one] => SchemaType::Type(one.clone()),
                    _ => SchemaType::Array(types),
                };
            }
        }
        // `Option<T>` of a component: `oneOf: [null, T]`.
        RefOr::T(Schema::OneOf(one_of)) => {
            let not_null = one_of.items.iter().find(|item| {
                !matches!(item, RefOr::T(Schema::Object(object)) if object.schema_type == SchemaType::Type(Type::Null))
            });
            if let Some(not_null) = not_null.cloned() {
                *property = not_null;
            }
        }
        _ => {}
    }
}

/// `field` is absent or null.
fn absent(variant: &mut Object, field: &str) {
    variant.required.retain(|f| f != field);
    variant.properties.insert(field.to_owned(), ObjectBuilder::new().schema_type(Type::Null).into());
}

/// `field` is required and is `value`.
fn only(variant: &mut Object, field: &str, value: &str) {
    if !variant.required.iter().any(|f| f == field) {
        variant.required.push(field.to_owned());
    }
    variant
        .properties
        .insert(field.to_owned(), ObjectBuilder::new().schema_type(Type::String).enum_values(Some([value])).into());
}

struct Edits<'a> {
    openapi: &'a mut OpenApi,
    missing: Vec<String>,
}

impl Edits<'_> {
    fn schema(&mut self, name: &str) -> Option<&mut RefOr<Schema>> {
        self.openapi.components.as_mut()?.schemas.get_mut(name)
    }

    /// The object a component is.
    fn object(&mut self, name: &str) -> Option<&mut Object> {
        match self.schema(name)? {
            RefOr::T(Schema::Object(object)) => Some(object),
            // A union the rules made: its first variant (for a second run,
            // in a test, which only asks whether the fields are there).
            RefOr::T(Schema::OneOf(one_of)) => one_of.items.iter_mut().find_map(|item| match item {
                RefOr::T(Schema::Object(object)) => Some(object),
                _ => None,
            }),
            _ => None,
        }
    }

    fn property(&mut self, name: &str, field: &str) -> Option<&mut RefOr<Schema>> {
        self.object(name)?.properties.get_mut(field)
    }

    /// Edits a scalar property (string or number, nullable or not).
    fn string(&mut self, name: &str, field: &str, edit: impl FnOnce(&mut Object)) {
        match self.property(name, field) {
            Some(RefOr::T(Schema::Object(object))) => edit(object),
            _ => self.missing.push(format!("{name}.{field}")),
        }
    }

    /// Sets an array property's bounds, whatever its items are.
    fn array_bounds(&mut self, name: &str, field: &str, min: usize, max: usize) {
        match self.property(name, field) {
            Some(RefOr::T(Schema::Array(array))) => {
                array.min_items = Some(min);
                array.max_items = Some(max);
            }
            _ => self.missing.push(format!("{name}.{field}")),
        }
    }

    /// Edits an array property's bounds and its items.
    fn array(
        &mut self,
        name: &str,
        field: &str,
        min: Option<usize>,
        max: Option<usize>,
        edit: impl FnOnce(&mut Object),
    ) {
        match self.property(name, field) {
            Some(RefOr::T(Schema::Array(array))) => {
                array.min_items = min;
                array.max_items = max;
                if let ArrayItems::RefOrSchema(items) = &mut array.items {
                    if let RefOr::T(Schema::Object(object)) = items.as_mut() {
                        edit(object);
                        return;
                    }
                }
                self.missing.push(format!("{name}.{field}[]"));
            }
            _ => self.missing.push(format!("{name}.{field}")),
        }
    }

    /// An event stream: each event is one of `names` whose data is the
    /// component `data` (the job's `status` or `progress`; a
    /// `notification`), or one `expired` event whose data is a problem
    /// document (see `crate::sse`).
    fn event_stream(&mut self, path: &str, names: &[&str], data: &str) {
        let (status, media) = ("200", "text/event-stream");
        let content = self
            .openapi
            .paths
            .paths
            .get_mut(path)
            .and_then(|item| item.get.as_mut())
            .and_then(|get| get.responses.responses.get_mut(status))
            .and_then(|response| match response {
                RefOr::T(response) => response.content.get_mut(media),
                RefOr::Ref(_) => None,
            });
        let Some(content) = content else {
            self.missing.push(format!("GET {path} {status} {media}"));
            return;
        };
        let mut one_of = OneOf::new();
        one_of.items = vec![event(names, data), event(&["expired"], "Problem")];
        content.schema = Some(RefOr::T(Schema::OneOf(one_of)));
    }

    /// The `application/octet-stream` body of a PUT at `path` is bytes.
    fn binary_body(&mut self, path: &str) {
        let media = "application/octet-stream";
        let content = self
            .openapi
            .paths
            .paths
            .get_mut(path)
            .and_then(|item| item.put.as_mut())
            .and_then(|put| put.request_body.as_mut())
            .and_then(|body| body.content.get_mut(media));
        match content {
            Some(content) => {
                content.schema = Some(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
                        .into(),
                );
            }
            None => self.missing.push(format!("PUT {path} {media}")),
        }
    }

    /// A `oneOf` component becomes an `anyOf` of the same choices.
    fn any_of(&mut self, name: &str) {
        match self.schema(name) {
            Some(schema @ RefOr::T(Schema::OneOf(_))) => {
                let RefOr::T(Schema::OneOf(one_of)) = std::mem::replace(schema, RefOr::T(Schema::AnyOf(AnyOf::new())))
                else {
                    return;
                };
                let mut any_of = AnyOf::new();
                any_of.items = one_of.items;
                any_of.description = one_of.description;
                *schema = RefOr::T(Schema::AnyOf(any_of));
            }
            Some(RefOr::T(Schema::AnyOf(_))) => {}
            _ => self.missing.push(name.to_owned()),
        }
    }

    /// The component becomes a union: exactly one of its variants, each a
    /// copy of it that `variants` edits in turn.
    fn one_of(&mut self, name: &str, variants: Vec<Variant>) {
        let schema = match self.schema(name) {
            Some(schema @ RefOr::T(Schema::Object(_))) => schema,
            // A union already (the rules ran before, in a test).
            Some(RefOr::T(Schema::OneOf(_))) => return,
            _ => {
                self.missing.push(name.to_owned());
                return;
            }
        };
        let RefOr::T(Schema::Object(original)) = schema else { return };
        let mut one_of = OneOf::new();
        one_of.description = original.description.take();
        one_of.items = variants
            .into_iter()
            .map(|edit| {
                let mut variant = original.clone();
                edit(&mut variant);
                RefOr::T(Schema::Object(variant))
            })
            .collect();
        *schema = RefOr::T(Schema::OneOf(one_of));
    }
}

/// A server-sent event named one of `names`, whose data is JSON of the
/// component `data` (JSON Schema's `contentMediaType` and `contentSchema`).
fn event(names: &[&str], data: &str) -> RefOr<Schema> {
    let mut data_schema = ObjectBuilder::new().schema_type(Type::String).content_media_type("application/json").build();
    data_schema
        .extensions
        .get_or_insert_with(Default::default)
        .insert("contentSchema".to_owned(), json!({ "$ref": format!("#/components/schemas/{data}") }));
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("event", ObjectBuilder::new().schema_type(Type::String).enum_values(Some(names.iter().copied())))
        .property("data", data_schema)
        .property("id", ObjectBuilder::new().schema_type(Type::String))
        .property("retry", ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0)))
        .required("event")
        .required("data")
        .into()
}

#[cfg(test)]
mod tests {
    use regex::Regex;
    use utoipa::OpenApi as _;

    use longhaul_jobs::kind::{ReportLocale, YearMonth};

    use super::*;
    use crate::routes::{
        mail::{check_host, check_senders, check_text},
        uploads::check_content_type,
    };

    #[test]
    fn every_rule_applies() {
        let mut doc = crate::openapi::ApiDoc::openapi();
        assert_eq!(apply(&mut doc), Vec::<String>::new());
    }

    fn compiled(pattern: &str) -> Regex {
        Regex::new(pattern).unwrap_or_else(|err| panic!("{pattern}: {err}"))
    }

    /// Each pattern accepts what its validator accepts, and nothing else.
    #[test]
    fn the_patterns_agree_with_the_validators() {
        let locale = compiled(PROFILE_LOCALE_PATTERN);
        for value in ["en", "pt-BR", "pt_br", "zh-Hant-TW", "e", "english", "pt-", "pt-BR!", " en", "en-abcdefghi", "é"]
        {
            let taken = longhaul_jobs::imports::normalise_locale(value).is_some();
            assert_eq!(locale.is_match(value), taken, "locale {value:?}");
        }
        let text = compiled(&text_pattern());
        for value in [
            "alice",
            " alice ",
            "a b",
            "\talice\n",
            "ação",
            "\u{a0}x\u{3000}",
            "",
            " ",
            "\t",
            "a\tb",
            "a\u{0}b",
            "\u{85}",
            "x\u{9f}",
            "\u{1c}",
            "a\u{2028}b",
        ] {
            assert_eq!(text.is_match(value), check_text("f", value, 100).is_ok(), "text {value:?}");
        }
        let host = compiled(&host_pattern());
        for value in [
            "imap.example.com",
            "IMAP.Example.COM.",
            " mail ",
            "127.0.0.1",
            "999.1.1.1",
            "::1",
            "fe80::1",
            "2001:db8::8a2e:370:7334",
            "1:2:3:4:5:6:7:8",
            "-bad.example",
            "bad-.example",
            "a..b",
            "a_b",
            "",
            "...",
            "[::1]",
            ":::",
            "1:2:3:4:5:6:7:8:9",
            "x y",
        ] {
            assert_eq!(host.is_match(value), check_host(value).is_ok(), "host {value:?}");
        }
        let upload_type = compiled(&upload_type_pattern());
        for value in [
            "text/csv",
            "Text/CSV; charset=utf-8",
            " application/x-ndjson\n",
            "application/jsonl ;x=y",
            "application/json-lines\t",
            "text/csv;",
            "\u{3000}text/csv\u{85}",
            "text/csv\u{3000};x",
            "text/csv;a\u{3000}b",
            "text/csv;\u{1}",
            "text/csv;\u{e9}",
            "text/csvx",
            "text/plain",
            "application/json",
            "",
            " ",
            ";text/csv",
        ] {
            assert_eq!(upload_type.is_match(value), check_content_type(value).is_ok(), "content type {value:?}");
        }
        let domain = compiled(&domain_pattern());
        for value in ["airline.example", " Airline.Example. ", "a-.b", "localhost", "a..b", "x@y.example", ""] {
            assert_eq!(domain.is_match(value), check_senders(&[value.to_owned()]).is_ok(), "domain {value:?}");
        }
    }

    #[test]
    fn the_payload_patterns_agree_with_the_payload_parsers() {
        let locale = compiled(LOCALE_PATTERN);
        for value in
            ["en", "en-GB", "EN_us", "pt", "pt-BR", "pt-PT", "pt_br", "fr", "", "en-", " en", "english", "pt-abcdefghi"]
        {
            assert_eq!(locale.is_match(value), ReportLocale::from_tag(value).is_some(), "locale {value:?}");
        }
        let month = compiled(MONTH_PATTERN);
        for value in ["2026-10", "1999-01", "2026-13", "2026-00", "2026-1", "202610", "2026-10-01", ""] {
            assert_eq!(month.is_match(value), YearMonth::parse(value).is_some(), "month {value:?}");
        }
    }

    #[test]
    fn token_urls_the_document_promises_are_taken() {
        let url = compiled(&token_url_pattern());
        for taken in ["https://auth.example/token", "http://localhost:8080/t", "http://127.0.0.1/token", "https://a"] {
            assert!(url.is_match(taken), "{taken}");
        }
        for refused in ["http://auth.example/token", "ftp://x", "https://", "https://-x"] {
            assert!(!url.is_match(refused), "{refused}");
        }
    }
}
