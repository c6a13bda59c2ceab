//! Request extractors: JSON bodies checked field by field (so a form can show every
//! problem at once), query strings, path ids and pages, and the contract's errors for
//! what actix's own extractors refuse.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::{web, FromRequest, HttpRequest};
use serde_json::{Map, Value};

use crate::error::{ApiError, ValidationErrors};

const MISSING: &str = "Missing data for required field.";

/// A body type read from a JSON object by [`Fields`].
pub trait FromJsonBody: Sized {
    /// Reads every field, recording problems in `fields`; `None` when any field failed.
    fn from_fields(fields: &mut Fields) -> Option<Self>;
}

/// A JSON object being read, with every problem found so far.
pub struct Fields {
    object: Map<String, Value>,
    known: Vec<&'static str>,
    errors: ValidationErrors,
}

impl Fields {
    /// Reads a required field with `parse`.
    pub fn required<T>(
        &mut self,
        name: &'static str,
        parse: impl FnOnce(&Value) -> Result<T, String>,
    ) -> Option<T> {
        self.known.push(name);
        match self.object.get(name) {
            None | Some(Value::Null) => {
                self.errors.json(name, MISSING);
                None
            }
            Some(value) => parse(value).map_err(|e| self.errors.json(name, e)).ok(),
        }
    }

    /// Reads an optional field; `Some(None)` when absent, `None` when invalid.
    pub fn optional<T>(
        &mut self,
        name: &'static str,
        parse: impl FnOnce(&Value) -> Result<T, String>,
    ) -> Option<Option<T>> {
        if self.object.contains_key(name) {
            self.required(name, parse).map(Some)
        } else {
            self.known.push(name);
            Some(None)
        }
    }

    fn finish<T>(mut self, parsed: Option<T>) -> Result<T, ApiError> {
        for key in self.object.keys() {
            if !self.known.contains(&key.as_str()) {
                self.errors.json(key.clone(), "Unknown field.");
            }
        }
        match parsed {
            Some(value) if self.errors.is_empty() => Ok(value),
            Some(_) | None if !self.errors.is_empty() => Err(ApiError::Validation(self.errors)),
            _ => Err(ApiError::Internal(
                "body parser returned nothing without an error".into(),
            )),
        }
    }
}

/// A JSON body that is an object. Wrong content type or broken JSON is a 400; a JSON
/// value that is not an object a 422.
pub struct JsonObject(pub Map<String, Value>);

impl FromRequest for JsonObject {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let json = web::Json::<Value>::from_request(req, payload);
        Box::pin(async move {
            // The app's JsonConfig already turned actix's errors into ours.
            let value = json
                .await
                .map_err(|e| match e.as_error::<ApiError>() {
                    Some(api) => api.clone(),
                    None => ApiError::BadRequest("The request body could not be read.".into()),
                })?
                .into_inner();
            match value {
                Value::Object(object) => Ok(JsonObject(object)),
                _ => {
                    let mut errors = ValidationErrors::default();
                    errors.json("_schema", "Invalid input type: expected a JSON object.");
                    Err(ApiError::Validation(errors))
                }
            }
        })
    }
}

/// Reads `object` with `read`; every problem, unknown fields included, in one 422.
pub fn parse_object<T>(
    object: Map<String, Value>,
    read: impl FnOnce(&mut Fields) -> Option<T>,
) -> Result<T, ApiError> {
    let mut fields = Fields {
        object,
        known: Vec::new(),
        errors: ValidationErrors::default(),
    };
    let parsed = read(&mut fields);
    fields.finish(parsed)
}

/// A JSON body of type `T`, validated field by field.
pub struct ValidJson<T>(pub T);

impl<T: FromJsonBody + 'static> FromRequest for ValidJson<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let object = JsonObject::from_request(req, payload);
        Box::pin(async move {
            let JsonObject(object) = object.await?;
            parse_object(object, T::from_fields).map(ValidJson)
        })
    }
}

/// The app's JsonConfig error handler: actix's JSON body errors in the contract's shape.
pub fn json_error(e: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let api = match e {
        JsonPayloadError::OverflowKnownLength { limit, .. }
        | JsonPayloadError::Overflow { limit } => ApiError::PayloadTooLarge(limit),
        JsonPayloadError::ContentType => ApiError::BadRequest(
            "The request body must be JSON, sent with Content-Type: application/json.".into(),
        ),
        JsonPayloadError::Deserialize(err) => {
            ApiError::BadRequest(format!("The request body is not valid JSON: {err}."))
        }
        _ => ApiError::BadRequest("The request body could not be read.".into()),
    };
    api.into()
}

/// actix's path errors, should a handler use `web::Path`: an unparsable id names nothing.
pub fn path_error(_e: PathError, req: &HttpRequest) -> actix_web::Error {
    ApiError::NotFound(format!("Nothing found at {}.", req.path())).into()
}

/// actix's query errors (only reached through `web::Query`).
pub fn query_error(e: QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let mut errors = ValidationErrors::default();
    errors.query("_schema", e.to_string());
    ApiError::Validation(errors).into()
}

/// The query string as a map; duplicated keys keep the last value.
pub fn query_map(req: &HttpRequest) -> HashMap<String, String> {
    url::form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect()
}

/// The integer id in path segment `name`; one that cannot be an id names nothing (404).
/// Read in the handler, after the guard and the body, as API.md orders the checks.
pub fn path_id(
    req: &HttpRequest,
    name: &str,
    not_found: impl FnOnce(i64) -> ApiError,
) -> Result<i64, ApiError> {
    let raw = req.match_info().get(name).unwrap_or_default();
    match raw.parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        Ok(id) => Err(not_found(id)),
        Err(_) => Err(ApiError::NotFound(format!(
            "Nothing found at {}.",
            req.path()
        ))),
    }
}

/// `?limit=&offset=` of the list routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// Page size: a whole number of at least 1; larger than 1000 is read as 1000.
    #[param(value_type = Option<i64>, minimum = 1, default = 100, nullable = false)]
    pub limit: i64,
    /// Rows to skip (ordered by id): a whole number of at least 0.
    #[param(value_type = Option<i64>, minimum = 0, default = 0, nullable = false)]
    pub offset: i64,
}

impl Page {
    /// Largest page a client can ask for.
    pub const MAX_LIMIT: i64 = 1000;
    /// Page size when none is asked for.
    pub const DEFAULT_LIMIT: i64 = 100;
}

impl FromRequest for Page {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let query = query_map(req);
        let mut errors = ValidationErrors::default();
        let mut number = |name: &str, default: i64, min: i64| match query.get(name) {
            None => default,
            Some(raw) => match raw.trim().parse::<i64>() {
                Ok(n) if n >= min => n,
                _ => {
                    errors.query(name, format!("Must be a whole number of at least {min}."));
                    default
                }
            },
        };
        let limit = number("limit", Page::DEFAULT_LIMIT, 1).min(Page::MAX_LIMIT);
        let offset = number("offset", 0, 0);
        std::future::ready(errors.into_result(|| Page { limit, offset }))
    }
}
