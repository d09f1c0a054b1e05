//! The one error answer of every route: a status and a one-line JSON body, `{"detail": ...}` (the
//! key SuperCompress's client reads) with the same message as `"error"` (the Open Inference
//! Protocol's key, which Triton's and KServe's clients read), and `"field"` naming the part of the
//! request at fault, or `"line"` and `"column"` where malformed JSON broke.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    message: String,
    field: Option<String>,
    /// Line and column (from 1) of malformed JSON.
    at: Option<(usize, usize)>,
    retry_after: Option<u64>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), field: None, at: None, retry_after: None }
    }

    /// The same error, naming the field it is in.
    pub(crate) fn in_field(self, field: impl Into<String>) -> Self {
        Self { field: Some(field.into()), ..self }
    }

    /// A 400 about malformed JSON at `line` and `column`.
    pub(crate) fn at(line: usize, column: usize, message: impl Into<String>) -> Self {
        Self { at: Some((line, column)), ..Self::new(StatusCode::BAD_REQUEST, message) }
    }

    /// A 400 about one field of the request.
    pub(crate) fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: Some(field.into()), ..Self::new(StatusCode::BAD_REQUEST, message) }
    }

    /// A 503 that tells the client when to come back.
    pub(crate) fn busy(message: impl Into<String>, retry_after_s: u64) -> Self {
        Self { retry_after: Some(retry_after_s), ..Self::new(StatusCode::SERVICE_UNAVAILABLE, message) }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "detail": self.message, "error": self.message });
        if let Some(field) = self.field {
            body["field"] = json!(field);
        }
        if let Some((line, column)) = self.at {
            body["line"] = json!(line);
            body["column"] = json!(column);
        }
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(s) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        response
    }
}
