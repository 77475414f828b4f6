//! Extractor configuration: actix's JSON, query and path failures become problem+json.

use crate::error::{ApiError, FieldError};
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::{web, HttpRequest};

/// JSON bodies: size-limited; any content type is parsed as JSON so `curl -d` works.
pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .content_type_required(false)
        .content_type(|_| true)
        .error_handler(|err, _req| json_error(err).into())
}

pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _req| query_error(err).into())
}

pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err, _req| path_error(err).into())
}

fn json_error(err: JsonPayloadError) -> ApiError {
    match err {
        JsonPayloadError::Overflow { limit }
        | JsonPayloadError::OverflowKnownLength { limit, .. } => {
            ApiError::PayloadTooLarge(format!("the request body is larger than {limit} bytes"))
        }
        JsonPayloadError::ContentType => {
            ApiError::UnsupportedMediaType("send the body as application/json".into())
        }
        JsonPayloadError::Deserialize(e) => serde_error(&e),
        JsonPayloadError::Serialize(e) => ApiError::internal(e),
        other => ApiError::BadRequest(format!("cannot read the request body: {other}")),
    }
}

/// Syntax errors are malformed JSON (400); well-formed JSON of the wrong shape is a
/// validation problem (422). Without the path to the value (actix's own `web::Json`), the
/// field is the one a missing or unknown field's message names, if any.
pub fn serde_error(e: &serde_json::Error) -> ApiError {
    shape_error(e, "")
}

/// A shape error at `path` (`lines[0]`, empty at the top): the field is the path, or for a
/// missing or unknown field the path to it.
fn shape_error(e: &serde_json::Error, path: &str) -> ApiError {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            ApiError::BadRequest(format!("malformed JSON: {e}"))
        }
        Category::Data => {
            let message = e.to_string();
            let (code, named) = if message.starts_with("missing field") {
                ("required", backticked(&message))
            } else if message.starts_with("unknown field") {
                ("unknown_field", backticked(&message))
            } else {
                // The message quotes the value (`integer `5``), never the field.
                ("invalid_type", None)
            };
            // The path ends at the map holding a missing field, but may already name an
            // unknown one (it is read before it is refused).
            let field = match named {
                Some(name) if path.is_empty() => name,
                Some(name) if path == name || path.ends_with(&format!(".{name}")) => {
                    path.to_string()
                }
                Some(name) => format!("{path}.{name}"),
                None => path.to_string(),
            };
            ApiError::validation(vec![FieldError::new(&field, code, message)])
        }
    }
}

/// A path to a value as the problem's `field` writes it: `lines[0].quantity`.
fn json_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => {}
        }
    }
    out
}

fn backticked(message: &str) -> Option<String> {
    let (_, rest) = message.split_once('`')?;
    let (inside, _) = rest.split_once('`')?;
    Some(inside.to_string())
}

fn query_error(err: QueryPayloadError) -> ApiError {
    ApiError::BadRequest(format!("invalid query string: {err}"))
}

fn path_error(err: PathError) -> ApiError {
    ApiError::BadRequest(format!("invalid path parameter: {err}"))
}

/// A path id that must be a UUID; a malformed one is a 400 that says so.
pub fn path_id(raw: &str) -> Result<String, ApiError> {
    crate::ids::parse_id(raw)
        .ok_or_else(|| ApiError::BadRequest(format!("{raw:?} is not a valid id (a UUID)")))
}

/// The version named by `If-Match`, if the client sent one. `*` matches any version.
pub fn if_match(req: &HttpRequest) -> Result<Option<i32>, ApiError> {
    let Some(raw) = req.headers().get(actix_web::http::header::IF_MATCH) else {
        return Ok(None);
    };
    let raw = raw.to_str().unwrap_or("").trim();
    if raw == "*" {
        return Ok(None);
    }
    // A value that is no ETag of ours matches no version: the precondition fails (412).
    Ok(Some(crate::etag::parse(raw).unwrap_or(0)))
}

/// `?include_archived=true` on a read of one record: archived (and merged) records are
/// hidden like deleted ones unless the caller asks for them.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ShowArchived {
    /// Return the record even when it is archived.
    #[param(nullable = false)]
    pub include_archived: Option<bool>,
}

impl ShowArchived {
    /// 404 for an archived record unless it was asked for.
    pub fn check(&self, archived_at: &Option<String>, what: &str) -> Result<(), ApiError> {
        if archived_at.is_some() && self.include_archived != Some(true) {
            return Err(ApiError::NotFound(format!(
                "{what} not found (it is archived; add include_archived=true to see it)"
            )));
        }
        Ok(())
    }
}

/// A handler answering 405 for the methods a literal route (`/users/me`,
/// `/contacts/merge`) does not take, so they do not fall through to `/{id}` routes.
pub fn only(allow: &'static str) -> actix_web::Route {
    web::to(move || async move {
        Err::<actix_web::HttpResponse, _>(ApiError::MethodNotAllowed {
            allow: allow.into(),
        })
    })
}

/// A JSON body. Unlike `web::Json`, it checks the syntax of the whole body before its
/// shape, so malformed JSON is always a 400 (even when an unknown field comes first) and
/// well-formed JSON of the wrong shape a 422 naming the field.
pub struct Json<T>(pub T);

impl<T> Json<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for Json<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: serde::de::DeserializeOwned + 'static> actix_web::FromRequest for Json<T> {
    type Error = ApiError;
    type Future = futures_util::future::LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        // Bytes honours the app's PayloadConfig limit.
        let body = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let bytes = body.await.map_err(|e| {
                if e.as_response_error().status_code()
                    == actix_web::http::StatusCode::PAYLOAD_TOO_LARGE
                {
                    ApiError::PayloadTooLarge("the request body is larger than the limit".into())
                } else {
                    ApiError::BadRequest(format!("cannot read the request body: {e}"))
                }
            })?;
            let value: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|e| ApiError::BadRequest(format!("malformed JSON: {e}")))?;
            refuse_control_characters(&value, "")?;
            from_body(value).map(Json)
        })
    }
}

/// A request body read into its type. Unlike `serde_json::from_value`, an object's type
/// never takes a JSON array (serde's derive accepts `["token"]` as `{"refresh_token":
/// "token"}` and `[]` as an object of optional fields): a wrong shape is a 422.
pub fn from_body<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(strict::Strict(value))
        .map_err(|e| shape_error(e.inner(), &json_path(e.path())))
}

mod strict {
    use serde::de::value::{MapDeserializer, SeqDeserializer};
    use serde::de::{Deserializer, Error as _, IntoDeserializer, Unexpected, Visitor};
    use serde_json::{Error, Value};

    /// `serde_json::Value` as a deserializer, but structs refuse arrays, at every depth.
    pub struct Strict(pub Value);

    impl<'de> IntoDeserializer<'de, Error> for Strict {
        type Deserializer = Self;
        fn into_deserializer(self) -> Self {
            self
        }
    }

    impl<'de> Deserializer<'de> for Strict {
        type Error = Error;

        fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            match self.0 {
                Value::Array(items) => {
                    SeqDeserializer::new(items.into_iter().map(Strict)).deserialize_any(visitor)
                }
                Value::Object(map) => {
                    MapDeserializer::new(map.into_iter().map(|(k, v)| (k, Strict(v))))
                        .deserialize_any(visitor)
                }
                // `644.0` is the number 644 in JSON: integer fields take it. Below 2^53,
                // where every integer is exact in a double.
                Value::Number(n) if n.is_f64() => match n.as_f64() {
                    Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => visitor.visit_i64(f as i64),
                    _ => Value::Number(n).deserialize_any(visitor),
                },
                other => other.deserialize_any(visitor),
            }
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            _fields: &'static [&'static str],
            visitor: V,
        ) -> Result<V::Value, Error> {
            match self.0 {
                Value::Array(_) => Err(Error::invalid_type(Unexpected::Seq, &visitor)),
                other => Strict(other).deserialize_any(visitor),
            }
        }

        fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            match self.0 {
                Value::Null => visitor.visit_none(),
                other => visitor.visit_some(Strict(other)),
            }
        }

        fn deserialize_newtype_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            visitor: V,
        ) -> Result<V::Value, Error> {
            visitor.visit_newtype_struct(self)
        }

        fn deserialize_enum<V: Visitor<'de>>(
            self,
            name: &'static str,
            variants: &'static [&'static str],
            visitor: V,
        ) -> Result<V::Value, Error> {
            self.0.deserialize_enum(name, variants, visitor)
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf unit unit_struct seq tuple tuple_struct map identifier ignored_any
        }
    }
}

/// Control characters (C0 but tab, line feed and carriage return; DEL; C1) have no place in
/// any text a client stores: they corrupt exports, terminals and logs. A 422 names the
/// first field that carries one.
pub fn refuse_control_characters(value: &serde_json::Value, at: &str) -> Result<(), ApiError> {
    use serde_json::Value;
    let join = |key: &str| {
        if at.is_empty() {
            key.to_string()
        } else {
            format!("{at}.{key}")
        }
    };
    match value {
        Value::String(s) => match s
            .chars()
            .find(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
        {
            Some(c) => Err(ApiError::field(
                if at.is_empty() { "body" } else { at },
                "control_character",
                format!("contains the control character U+{:04X}", c as u32),
            )),
            None => Ok(()),
        },
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| refuse_control_characters(v, &format!("{at}[{i}]"))),
        Value::Object(map) => map
            .iter()
            .try_for_each(|(k, v)| refuse_control_characters(v, &join(k))),
        _ => Ok(()),
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_refused_with_the_field_but_newlines_pass() {
        let ok = serde_json::json!({"notes": "line one\nline two\ttabbed", "name": "Zoë"});
        assert!(refuse_control_characters(&ok, "").is_ok());
        let bad = serde_json::json!({"emails": [{"email": "a@b.c"}, {"label": "x\u{0089}y"}]});
        let err = refuse_control_characters(&bad, "")
            .err()
            .map(|e| e.problem());
        assert_eq!(
            err.map(|p| p.errors[0].field.clone()),
            Some("emails[1].label".into())
        );
        assert!(refuse_control_characters(&serde_json::json!("a\u{0000}"), "").is_err());
    }

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Address {
        city: Option<String>,
    }

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Body {
        token: String,
        address: Option<Address>,
        tags: Option<Vec<String>>,
    }

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Amounts {
        quantity: i64,
        rate: f64,
        count: Option<i32>,
    }

    #[test]
    fn integral_numbers_written_with_a_fraction_fill_integer_fields() {
        let v = serde_json::json!({"quantity": 644.0, "rate": 12.5, "count": 3.0});
        let got: Option<Amounts> = from_body(v).ok();
        assert_eq!(
            got,
            Some(Amounts {
                quantity: 644,
                rate: 12.5,
                count: Some(3)
            })
        );
        let half = serde_json::json!({"quantity": 1.5, "rate": 1, "count": null});
        assert!(from_body::<Amounts>(half).is_err());
    }

    #[test]
    fn an_object_type_refuses_an_array_at_any_depth() {
        use serde_json::json;
        let ok: Result<Body, _> = from_body(json!({"token": "t", "address": {"city": "Oslo"},
            "tags": ["a"]}));
        assert_eq!(
            ok.ok().map(|b| b.address),
            Some(Some(Address {
                city: Some("Oslo".into())
            }))
        );
        assert!(from_body::<Body>(json!(["t"])).is_err());
        assert!(from_body::<Body>(json!({"token": "t", "address": []})).is_err());
        assert!(from_body::<Body>(json!({"token": "t", "address": null})).is_ok());
        // serde_json alone takes both: this is what `from_body` exists for.
        assert!(serde_json::from_value::<Body>(json!(["t", null, null])).is_ok());
    }

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Line {
        quantity: i64,
    }

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Order {
        first_name: Option<String>,
        lines: Vec<Line>,
        address: Option<Address>,
    }

    fn field_of(v: serde_json::Value) -> (String, String) {
        match from_body::<Order>(v) {
            Err(ApiError::Validation { errors, .. }) => {
                (errors[0].field.clone(), errors[0].code.clone())
            }
            other => panic!("expected a validation problem, got {other:?}"),
        }
    }

    #[test]
    fn shape_errors_name_the_path_to_the_field_not_the_value() {
        use serde_json::json;
        let pair = |f: &str, c: &str| (f.to_string(), c.to_string());
        assert_eq!(
            field_of(json!({"first_name": 5, "lines": []})),
            pair("first_name", "invalid_type")
        );
        assert_eq!(
            field_of(json!({"lines": [{"quantity": 1}, {"quantity": "many"}]})),
            pair("lines[1].quantity", "invalid_type")
        );
        assert_eq!(
            field_of(json!({"lines": [{}]})),
            pair("lines[0].quantity", "required")
        );
        assert_eq!(
            field_of(json!({"lines": [{"quantity": 1, "qty": 2}]})),
            pair("lines[0].qty", "unknown_field")
        );
        assert_eq!(
            field_of(json!({"lines": [], "address": {"city": ["Oslo"]}})),
            pair("address.city", "invalid_type")
        );
        assert_eq!(field_of(json!({})), pair("lines", "required"));
    }

    #[test]
    fn wrong_types_are_422_with_field_and_syntax_is_400() {
        let e = serde_json::from_str::<std::collections::HashMap<String, i32>>("{\"a\": ")
            .err()
            .map(|e| serde_error(&e));
        assert!(matches!(e, Some(ApiError::BadRequest(_))));
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct T {
            email: String,
        }
        let e = serde_json::from_str::<T>("{}")
            .err()
            .map(|e| serde_error(&e));
        match e {
            Some(ApiError::Validation { errors, .. }) => {
                assert_eq!(errors[0].field, "email");
                assert_eq!(errors[0].code, "required");
            }
            other => panic!("expected validation, got {other:?}"),
        }
    }
}
