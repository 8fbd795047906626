//! What every process does the same way: errors as problem+json, limits, health, readiness, metrics.

use reqwest::{Method, StatusCode};

use crate::helpers::TestApp;
use crate::in_every_topology;

in_every_topology!(
    malformed_json_is_a_400_problem,
    a_missing_field_is_a_422_naming_it,
    a_wrong_field_type_is_a_422,
    a_body_that_is_not_json_by_content_type_is_a_415,
    an_oversize_body_is_a_413,
    an_unknown_route_is_a_404_problem,
    a_known_path_with_the_wrong_method_is_a_405_problem,
    a_malformed_id_in_the_path_is_a_400,
    health_and_readiness_answer,
    metrics_are_prometheus_text,
    internal_endpoints_are_not_public,
    every_response_carries_a_request_id,
    the_openapi_document_describes_every_route_and_swagger_ui_browses_it,
);

async fn malformed_json_is_a_400_problem(app: TestApp) {
    let reply = app.post_bytes("/api/users/register", "application/json", b"{\"email\": ".to_vec()).await;
    reply.assert_problem(StatusCode::BAD_REQUEST, "malformed_json");
}

async fn a_missing_field_is_a_422_naming_it(app: TestApp) {
    let reply = app.post_bytes("/api/users/login", "application/json", br#"{"email":"a@b.jp"}"#.to_vec()).await;
    reply.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(reply.body["errors"][0]["field"], "password");
    assert_eq!(reply.body["errors"][0]["reason"], "missing");
}

async fn a_wrong_field_type_is_a_422(app: TestApp) {
    let body = br#"{"email":"a@b.jp","password":12345678}"#.to_vec();
    let reply = app.post_bytes("/api/users/login", "application/json", body).await;
    reply.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
}

async fn a_body_that_is_not_json_by_content_type_is_a_415(app: TestApp) {
    let reply = app.post_bytes("/api/users/login", "text/plain", br#"{"email":"a@b.jp"}"#.to_vec()).await;
    reply.assert_problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
}

async fn an_oversize_body_is_a_413(app: TestApp) {
    let mut body = br#"{"email":"a@b.jp","password":""#.to_vec();
    body.extend(std::iter::repeat_n(b'x', 2 * 1024 * 1024));
    body.extend(br#""}"#);
    let reply = app.post_bytes("/api/users/login", "application/json", body).await;
    reply.assert_problem(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
}

async fn an_unknown_route_is_a_404_problem(app: TestApp) {
    for path in ["/nowhere", "/api/users/a/b/c", "/api/plan/unknown", "/api/conversations/a/b/c/d"] {
        let reply = app.request(Method::GET, path, None, None).await;
        reply.assert_problem(StatusCode::NOT_FOUND, "not_found");
    }
}

async fn a_known_path_with_the_wrong_method_is_a_405_problem(app: TestApp) {
    let reply = app.request(Method::DELETE, "/api/users/register", None, None).await;
    reply.assert_problem(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
}

async fn a_malformed_id_in_the_path_is_a_400(app: TestApp) {
    let (_, session) = app.signed_in().await;
    let reply = app.get("/api/users/not-a-uuid", &session.access_token).await;
    reply.assert_problem(StatusCode::BAD_REQUEST, "invalid_path_parameter");
}

async fn health_and_readiness_answer(app: TestApp) {
    let health = app.request(Method::GET, "/healthz", None, None).await;
    let ready = app.request(Method::GET, "/readyz", None, None).await;
    assert_eq!(health.status, StatusCode::OK, "{health:?}");
    assert_eq!(ready.status, StatusCode::OK, "{ready:?}");
}

async fn metrics_are_prometheus_text(app: TestApp) {
    app.register().await;
    let anonymous = app.request(Method::GET, "/metrics", None, None).await;
    let response = app
        .http
        .get(format!("{}/metrics", app.base_url))
        .bearer_auth(crate::helpers::METRICS_TOKEN)
        .send()
        .await
        .expect("sent");
    anonymous.assert_problem(StatusCode::UNAUTHORIZED, "metrics_credential_required");
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.expect("text");
    assert!(text.contains("# TYPE http_requests_total counter"), "{text}");
    assert!(text.contains(r#"service="user""#), "{text}");
}

#[tokio::test]
async fn without_a_scrape_credential_metrics_are_only_on_the_internal_listener() {
    let data = tempfile::tempdir().expect("tempdir");
    let mut config = crate::helpers::monolith_config(data.path());
    config.http.metrics_token = None;
    let internal = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let metrics_listen = internal.local_addr().expect("address");
    drop(internal);
    config.http.metrics_listen = Some(metrics_listen);
    let app = TestApp::monolith_with(config, data).await;

    let public = app.request(Method::GET, "/metrics", None, None).await;
    let scraped = eventually_served(&format!("http://{metrics_listen}/metrics")).await;

    public.assert_problem(StatusCode::NOT_FOUND, "not_found");
    assert!(scraped.contains("# TYPE events_outbox_backlog gauge"), "{scraped}");
}

/// The body of `GET url` once something answers there (a listener started in the background).
async fn eventually_served(url: &str) -> String {
    for _ in 0..200 {
        if let Ok(response) = reqwest::get(url).await {
            return response.text().await.expect("text");
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("nothing answers at {url}");
}

async fn internal_endpoints_are_not_public(app: TestApp) {
    let body = serde_json::json!([uuid::Uuid::new_v4()]);
    let reply = app.request(Method::POST, "/internal/plan/plan_of", None, Some(body)).await;
    // The monolith mounts no internal endpoints; the gateway never forwards them.
    reply.assert_problem(StatusCode::NOT_FOUND, "not_found");
}

async fn every_response_carries_a_request_id(app: TestApp) {
    let response = app
        .http
        .get(format!("{}/healthz", app.base_url))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .expect("sent");
    assert_eq!(response.headers()["x-request-id"], "trace-me-42");
    let generated = app.http.get(format!("{}/nowhere", app.base_url)).send().await.expect("sent");
    assert!(generated.headers().contains_key("x-request-id"));
}

/// The completeness test, on what is served: every route of the route table is an operation of the
/// document at `/api/openapi.json` (in microservices, the gateway's merged one), and each `$ref` in it
/// names a schema it holds.
async fn the_openapi_document_describes_every_route_and_swagger_ui_browses_it(app: TestApp) {
    let reply = app.request(Method::GET, "/api/openapi.json", None, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let document = reply.body;
    assert_eq!(document["openapi"], "3.1.0");
    let table = kernel::routes::RouteTable::build(omnidesk::CATALOGUE).expect("route table");
    let missing: Vec<String> = table
        .routes()
        .iter()
        .filter(|owned| document["paths"][&owned.route.path][owned.route.method.as_str().to_lowercase()].is_null())
        .map(|owned| format!("{} {}", owned.route.method, owned.route.path))
        .collect();
    assert!(missing.is_empty(), "routes missing from /api/openapi.json: {missing:?}");
    let mut refs = Vec::new();
    collect_refs(&document, &mut refs);
    for reference in refs {
        let name = reference.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("a $ref {reference}"));
        assert!(document["components"]["schemas"][name].is_object(), "{reference} names no schema");
    }

    let docs = app.http.get(format!("{}/api/docs/", app.base_url)).send().await.expect("GET /api/docs/");
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(docs.text().await.expect("page").contains("swagger-ui"), "/api/docs/ is Swagger UI");
}

fn collect_refs(value: &serde_json::Value, refs: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::String(reference)) = map.get("$ref") {
                refs.push(reference.clone());
            }
            map.values().for_each(|value| collect_refs(value, refs));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|value| collect_refs(value, refs)),
        _ => {}
    }
}
