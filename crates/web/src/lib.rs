//! The agent console, as the monolith and the gateway serve it at `/`.
//!
//! `build.rs` builds `web/` (Vite) into `$OUT_DIR/dist`, and [`Dist`] embeds it, so the binary carries
//! the console it was built with. [`router`] serves it: the hashed files under `/assets/` cached for a
//! year (their names change with their content), other files of `dist/` as they are, and `index.html`
//! (never cached) for every other page a browser asks for — the console routes in the browser. A request
//! that is not a browser asking for a page (an API client's unknown path, a `POST`) is answered 404 as
//! problem+json, exactly as without the console. Answers are gzipped for clients that accept it.

use axum::Router;
use axum::http::{HeaderValue, Method, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower_http::compression::CompressionLayer;

/// The built console (`web/dist`).
#[derive(rust_embed::Embed)]
#[folder = "$OUT_DIR/dist"]
struct Dist;

/// Paths the console never routes: what is under them is the API's, found or not.
const NOT_PAGES: &[&str] = &["/api", "/public", "/hooks", "/internal", "/healthz", "/readyz", "/metrics"];

const IMMUTABLE: HeaderValue = HeaderValue::from_static("public, max-age=31536000, immutable");
const REVALIDATE: HeaderValue = HeaderValue::from_static("no-cache");

/// The console's router, to be the fallback of the public routes.
pub fn router() -> Router {
    Router::new().route("/assets/{*file}", get(asset)).fallback(page).layer(CompressionLayer::new().gzip(true))
}

async fn asset(uri: Uri) -> Response {
    match file(uri.path().trim_start_matches('/'), IMMUTABLE) {
        Some(found) => found,
        None => kernel::http::not_found().await.into_response(),
    }
}

async fn page(method: Method, uri: Uri, headers: axum::http::HeaderMap) -> Response {
    let path = uri.path();
    let is_page_request = (method == Method::GET || method == Method::HEAD)
        && !NOT_PAGES
            .iter()
            .any(|prefix| path.strip_prefix(prefix).is_some_and(|r| r.is_empty() || r.starts_with('/')));
    if !is_page_request {
        return kernel::http::not_found().await.into_response();
    }
    if let Some(found) =
        path.strip_prefix('/').filter(|p| !p.is_empty() && *p != "index.html").and_then(|p| file(p, REVALIDATE))
    {
        return found;
    }
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    if !wants_html {
        return kernel::http::not_found().await.into_response();
    }
    // Every build has one (vite writes it); the answer without it is a problem like any other error.
    file("index.html", REVALIDATE)
        .unwrap_or_else(|| kernel::http::Problem::internal(&"the console was built without index.html").into_response())
}

fn file(path: &str, cache: HeaderValue) -> Option<Response> {
    let found = Dist::get(path)?;
    let mime = HeaderValue::from_str(found.metadata.mimetype())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let headers = [(header::CONTENT_TYPE, mime), (header::CACHE_CONTROL, cache)];
    Some((headers, found.data).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn get(path: &str, accept: &str) -> (StatusCode, String, String) {
        let request = Request::get(path).header(header::ACCEPT, accept).body(Body::empty()).expect("request");
        let response = router().oneshot(request).await.expect("answer");
        let status = response.status();
        let kind = response.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap_or("").to_owned());
        let body = response.into_body().collect().await.expect("body").to_bytes();
        (status, kind.unwrap_or_default(), String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn a_browser_asking_for_any_page_gets_the_console() {
        for path in ["/", "/login", "/conversations/0190-abc", "/settings/inboxes"] {
            let (status, kind, body) = get(path, "text/html,application/xhtml+xml,*/*;q=0.8").await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert!(kind.starts_with("text/html"), "{path}: {kind}");
            assert!(body.contains("<div id=\"root\">"), "{path}: {body}");
        }
    }

    #[tokio::test]
    async fn the_pages_scripts_are_served_and_cached_for_good() {
        let (_, _, index) = get("/", "text/html").await;
        let script =
            index.split("src=\"").nth(1).and_then(|rest| rest.split('"').next()).expect("a script in index.html");
        assert!(script.starts_with("/assets/"), "{script}");
        let request = Request::get(script).body(Body::empty()).expect("request");
        let response = router().oneshot(request).await.expect("answer");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CACHE_CONTROL], "public, max-age=31536000, immutable");
        assert!(response.headers()[header::CONTENT_TYPE].to_str().unwrap_or("").contains("javascript"));
    }

    #[tokio::test]
    async fn what_is_not_a_page_request_stays_a_problem() {
        for (path, accept) in
            [("/api/nowhere", "text/html"), ("/nowhere", "application/json"), ("/assets/missing.js", "*/*")]
        {
            let (status, kind, _) = get(path, accept).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
            assert_eq!(kind, "application/problem+json", "{path}");
        }
    }
}
