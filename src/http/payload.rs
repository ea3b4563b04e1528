//! Request and response payload types with custom parsing.

use poem::{IntoResponse, Request, RequestBody, Response};
use poem_openapi::impl_apirequest_for_payload;
use poem_openapi::payload::{ParsePayload, Payload};
use poem_openapi::registry::{MetaSchemaRef, Registry};
use poem_openapi::types::Type;
use std::marker::PhantomData;

use crate::state::AppState;

/// An `application/x-www-form-urlencoded` body kept as ordered pairs, so the
/// OAuth core can detect duplicated parameters (RFC 6749 §3.2). `T` only
/// provides the schema shown in the OpenAPI document. The body is read with
/// the `server.max_body_bytes` limit.
pub struct FormPairs<T> {
    /// Decoded `(name, value)` pairs in order.
    pub pairs: Vec<(String, String)>,
    _schema: PhantomData<T>,
}

impl<T: Type> Payload for FormPairs<T> {
    const CONTENT_TYPE: &'static str = "application/x-www-form-urlencoded";

    fn check_content_type(content_type: &str) -> bool {
        matches!(content_type.parse::<mime::Mime>(),
            Ok(m) if m.type_() == "application" && m.subtype() == "x-www-form-urlencoded")
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: Type> ParsePayload for FormPairs<T> {
    const IS_REQUIRED: bool = true;

    async fn from_request(req: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        let limit = req
            .data::<AppState>()
            .map_or(64 * 1024, |s| s.cfg.server.max_body_bytes as usize);
        let bytes = body.take()?.into_bytes_limit(limit).await?;
        let pairs = bounded_pairs(&bytes)?;
        Ok(Self {
            pairs,
            _schema: PhantomData,
        })
    }
}

impl_apirequest_for_payload!(FormPairs<T>, T: Type);

/// Most `name=value` pairs a token, revocation or introspection form may have.
/// The largest legitimate form (authorization_code with client_secret_post) has 7.
pub const MAX_FORM_PAIRS: usize = 64;
/// Longest decoded name or value in such a form, in bytes. Codes, tokens,
/// redirect URIs and secrets are all far shorter.
pub const MAX_FORM_VALUE_BYTES: usize = 4096;

/// Decodes a form, refusing (400, `invalid_request` through the endpoints'
/// bad-request handler) too many pairs or an over-long name or value, before
/// any handler or store call sees it.
fn bounded_pairs(bytes: &[u8]) -> poem::Result<Vec<(String, String)>> {
    let refuse = |msg: String| poem::Error::from_string(msg, poem::http::StatusCode::BAD_REQUEST);
    let mut pairs = Vec::new();
    for (name, value) in form_urlencoded::parse(bytes) {
        if pairs.len() == MAX_FORM_PAIRS {
            return Err(refuse(format!(
                "the form has more than {MAX_FORM_PAIRS} parameters"
            )));
        }
        if name.len() > MAX_FORM_VALUE_BYTES || value.len() > MAX_FORM_VALUE_BYTES {
            return Err(refuse(format!(
                "a form parameter is longer than {MAX_FORM_VALUE_BYTES} bytes"
            )));
        }
        pairs.push((name.into_owned(), value.into_owned()));
    }
    Ok(pairs)
}

/// A JSON document serialised once and served as is (JWKS, metadata); `T`
/// provides the schema.
pub struct RawJson<T> {
    body: bytes::Bytes,
    _schema: PhantomData<T>,
}

impl<T> RawJson<T> {
    /// Wraps a pre-serialised JSON document.
    pub fn new(body: bytes::Bytes) -> Self {
        Self {
            body,
            _schema: PhantomData,
        }
    }
}

impl<T: serde::Serialize> RawJson<T> {
    /// Serialises `value` once, straight to bytes.
    pub fn serialize(value: &T) -> Result<Self, serde_json::Error> {
        serde_json::to_vec(value).map(|v| Self::new(v.into()))
    }
}

impl<T: Type> Payload for RawJson<T> {
    const CONTENT_TYPE: &'static str = "application/json; charset=utf-8";

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: Send> IntoResponse for RawJson<T> {
    fn into_response(self) -> Response {
        Response::builder()
            .content_type("application/json; charset=utf-8")
            .body(self.body)
    }
}
