//! Bad input on every route of the route table, as a hostile client sends it: malformed JSON, wrong types,
//! deeply nested and oversize bodies, invalid UTF-8, bad and unknown ids, with and without a token. Each
//! answer must come within five seconds, be no 5xx, and be a problem+json when it is an error. The only
//! answers that are not problem+json are those hyper makes while parsing the request head (listed in
//! ARCHITECTURE.md), which well-formed requests like these never get.

use std::time::Duration;

use reqwest::{Method, StatusCode};

use crate::helpers::TestApp;
use crate::in_every_topology;

in_every_topology!(no_route_answers_bad_input_with_a_5xx_a_slow_answer_or_an_error_that_is_not_a_problem);

/// What a path parameter is replaced with: an unknown id, ids that do not parse, invalid UTF-8, a long one.
fn path_values() -> Vec<String> {
    vec![uuid::Uuid::new_v4().to_string(), "not-an-id".to_owned(), "%FF%FE%00".to_owned(), "9".repeat(400)]
}

/// The bodies sent to every route.
fn bodies() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("malformed", b"{\"email\": ".to_vec()),
        ("wrong types", br#"{"email":1,"password":[],"name":{},"content":false,"user_ids":"x","labels":7}"#.to_vec()),
        ("not an object", b"[1,2,3]".to_vec()),
        ("deep", format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes()),
        ("invalid utf-8", b"{\"name\":\"\xff\xfe\xfd\"}".to_vec()),
        // PostgreSQL's text cannot hold U+0000: refused before any engine sees it.
        (
            "NUL in text",
            br#"{"email":"a\u0000@example.jp","password":"pass\u0000word","name":"\u0000","content":"\u0000","short_code":"a\u0000","colour":"\u0000","channel":"api","role":"\u0000"}"#
                .to_vec(),
        ),
        ("empty", Vec::new()),
    ]
}

/// Fills each `{param}` of `template` with `value`.
fn fill(template: &str, value: &str) -> String {
    template
        .split('/')
        .map(|segment| if segment.starts_with('{') && segment.ends_with('}') { value } else { segment })
        .collect::<Vec<_>>()
        .join("/")
}

async fn no_route_answers_bad_input_with_a_5xx_a_slow_answer_or_an_error_that_is_not_a_problem(app: TestApp) {
    let (_, session) = app.signed_in().await;
    let table = kernel::routes::RouteTable::build(omnidesk::CATALOGUE).expect("route table");
    let mut failures = Vec::new();
    let mut sent = 0;
    for owned in table.routes() {
        let method = Method::from_bytes(owned.route.method.as_str().as_bytes()).expect("method");
        let oversize = vec![b'x'; 2 * 1024 * 1024];
        for (index, value) in path_values().into_iter().enumerate() {
            let path = fill(&owned.route.path, &value);
            for token in [None, Some(session.access_token.as_str())] {
                let mut cases = bodies();
                // Once a route: an oversize body, with an unknown id and a token.
                if index == 0 && token.is_some() {
                    cases.push(("oversize", oversize.clone()));
                }
                for (what, body) in cases {
                    sent += 1;
                    if let Some(failure) = check(&app, &method, &path, token, what, body).await {
                        failures.push(failure);
                    }
                }
            }
        }
    }
    let routes = table.routes().len();
    assert_eq!(sent, routes * (path_values().len() * 2 * bodies().len() + 1), "every case of every route was sent");
    assert!(failures.is_empty(), "{} of {sent} answers were wrong:\n{}", failures.len(), failures.join("\n"));
}

/// Sends one request; what was wrong with its answer, if anything.
async fn check(
    app: &TestApp,
    method: &Method,
    path: &str,
    token: Option<&str>,
    what: &str,
    body: Vec<u8>,
) -> Option<String> {
    let mut request = app
        .http
        .request(method.clone(), format!("{}{path}", app.base_url))
        .header("content-type", "application/json")
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let label = format!("{method} {} ({what}, {})", truncate(path), if token.is_some() { "token" } else { "no token" });
    let response = match tokio::time::timeout(Duration::from_secs(5), request.send()).await {
        Err(_) => return Some(format!("{label}: no answer within 5 s")),
        Ok(Err(error)) => return Some(format!("{label}: {error}")),
        Ok(Ok(response)) => response,
    };
    let status = response.status();
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
        return Some(format!("{label}: {status}"));
    }
    if status == StatusCode::SERVICE_UNAVAILABLE {
        // Only the refusals that mean "retry later" (a busy pool, a dependency) are expected; never a crash.
        let text = response.text().await.unwrap_or_default();
        if !text.contains("\"code\"") || text.contains("internal_error") {
            return Some(format!("{label}: 503 {text}"));
        }
        return None;
    }
    if (status.is_client_error() || status.is_server_error()) && !content_type.starts_with("application/problem+json") {
        return Some(format!("{label}: {status} as {content_type:?}"));
    }
    None
}

fn truncate(path: &str) -> String {
    if path.len() > 80 { format!("{}…", &path[..80]) } else { path.to_owned() }
}
