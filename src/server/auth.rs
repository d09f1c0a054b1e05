//! Token check: `Authorization: Bearer <token>` (Headroom) or `X-API-Key: <token>` (SuperCompress),
//! compared in constant time; the health routes (`/healthz`, `/readyz`, SageMaker's `/ping`, KServe's
//! `/v2/health/live` and `/v2/health/ready`) stay open for probes, and the playground's page (`GET /`,
//! static) for browsers.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::Shared;

/// Routes a load balancer probes without credentials.
pub(crate) const OPEN_ROUTES: [&str; 5] =
    ["/healthz", "/readyz", "/ping", "/v2/health/live", "/v2/health/ready"];

pub(crate) async fn require_token(State(s): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let Some(token) = &s.config.token else { return next.run(request).await };
    // The playground's page is static, with no data: a browser opens it, and it sends the token.
    if OPEN_ROUTES.contains(&request.uri().path()) || request.uri().path() == super::playground::PATH {
        return next.run(request).await;
    }
    let given = presented(request.headers());
    match given.is_empty() {
        // Every header is compared (no early exit), so the time does not tell which one matched.
        false if given.iter().fold(false, |ok, g| constant_time_eq(g.as_bytes(), token.as_bytes()) | ok) => {
            next.run(request).await
        }
        false => ApiError::new(StatusCode::UNAUTHORIZED, "wrong token").into_response(),
        true => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "this server needs a token: `Authorization: Bearer <token>` or `X-API-Key: <token>`",
        )
        .into_response(),
    }
}

/// The tokens a request carries: its `X-API-Key`, then its Bearer token, where present.
fn presented(headers: &HeaderMap) -> Vec<&str> {
    let key = headers.get("x-api-key").and_then(|v| v.to_str().ok()).map(str::trim);
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|auth| auth.split_once(' '))
        .and_then(|(scheme, token)| scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()));
    key.into_iter().chain(bearer).collect()
}

/// Equality whose time depends only on the lengths, not on where the bytes first differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0xff);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(!constant_time_eq(b"x\xff", b"x"));
    }

    #[test]
    fn both_header_styles_are_read() {
        let mut h = HeaderMap::new();
        assert!(presented(&h).is_empty());
        h.insert("authorization", "Bearer abc".parse().unwrap());
        assert_eq!(presented(&h), ["abc"]);
        h.insert("x-api-key", "k1".parse().unwrap());
        assert_eq!(presented(&h), ["k1", "abc"], "a wrong key does not hide a right Bearer token");
        h.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(presented(&h), ["k1"]);
    }
}
