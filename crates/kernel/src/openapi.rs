//! The public API's contract: one OpenAPI 3.1 document generated from the services' handlers.
//!
//! Each handler carries its `#[utoipa::path]` (method, path, parameters, request and response bodies,
//! whether it takes an access token), and its service's [`Routes`](crate::routes::Routes) collects those
//! beside the router and the table, so the document cannot describe a route that is not served. This
//! module merges the parts of the services a process (or the gateway) fronts and adds what every route
//! shares: the `bearer` security scheme, the [`Problem`] every error is, as each operation's `default`
//! answer, the answers of the kernel's extractors (a body that is not JSON, too large or of the wrong
//! shape; a path parameter that does not parse; a missing or refused token) where a handler does not
//! describe them itself, and one tag per service. Every process serves its document at [`DOCUMENT_PATH`] and Swagger UI
//! over it at [`DOCS_PATH`]; the gateway serves the one of all the services it routes to.

use axum::Router;
use axum::http::Method;
use utoipa::openapi::path::{Operation, Parameter, ParameterIn, PathItem};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{
    Content, ContentBuilder, InfoBuilder, LicenseBuilder, OpenApi, OpenApiBuilder, Ref, RefOr, Response,
    ResponseBuilder,
};
use utoipa::{PartialSchema, ToSchema};
use utoipa_swagger_ui::SwaggerUi;

use crate::http::{FieldError, PROBLEM_JSON, Problem};
use crate::service::ServiceSpec;

/// Where every process serves the document of the services it fronts.
pub const DOCUMENT_PATH: &str = "/api/openapi.json";
/// Where Swagger UI browses it.
pub const DOCS_PATH: &str = "/api/docs";
/// The security scheme of the routes that take an access token (`authorization: Bearer …`).
pub const BEARER: &str = "bearer";

/// The document of `services`: their paths and schemas, merged, with what every route shares.
pub fn document(services: &[ServiceSpec]) -> OpenApi {
    let mut document = OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("OmniDesk")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "The public API of an OmniDesk deployment. Every error is `application/problem+json` \
                     (RFC 9457) with a stable `code`; routes marked with the `bearer` scheme take the access \
                     token `POST /api/users/login` answers.",
                ))
                .license(Some(LicenseBuilder::new().name("AGPL-3.0-only").identifier(Some("AGPL-3.0-only")).build()))
                .build(),
        )
        .build();
    let mut tags = Vec::new();
    for spec in services {
        let mut part = (spec.openapi)();
        if part.paths.paths.is_empty() {
            continue;
        }
        for item in part.paths.paths.values_mut() {
            for operation in operations_mut(item) {
                operation.tags.get_or_insert_with(Vec::new).push(spec.name.to_owned());
            }
        }
        tags.push(TagBuilder::new().name(spec.name).description(Some(spec.summary)).build());
        document.merge(part);
    }
    document.tags = Some(tags);

    let problem = problem_response("A problem (RFC 9457): `code` says which; `errors` lists invalid fields (422).");
    let refused =
        problem_response("`missing_token`, `invalid_token`, `token_expired`, `token_revoked`: no valid access token.");
    let unreadable = problem_response(
        "`malformed_json`, `unreadable_body`: the body is not JSON; `invalid_path_parameter`: a path \
         parameter does not parse.",
    );
    let bad_path = problem_response("`invalid_path_parameter`: a path parameter does not parse.");
    let too_large = problem_response("`payload_too_large`: the body is over `http.body_limit_bytes`.");
    let not_json = problem_response("`unsupported_media_type`: the body is not `application/json`.");
    let invalid = problem_response("`validation_failed`: a field is missing or of the wrong type; see `errors`.");
    for item in document.paths.paths.values_mut() {
        for operation in operations_mut(item) {
            for response in operation.responses.responses.values_mut() {
                if let RefOr::T(response) = response {
                    problem_as_problem_json(response);
                }
            }
            // What the kernel's extractors and edge answer before a handler runs, where they can.
            let has_path_parameters = operation
                .parameters
                .iter()
                .flatten()
                .any(|parameter| matches!(parameter, RefOr::T(Parameter { parameter_in: ParameterIn::Path, .. })));
            let mut shared = Vec::new();
            if operation.request_body.is_some() {
                shared.extend([("400", &unreadable), ("413", &too_large), ("415", &not_json), ("422", &invalid)]);
            } else if has_path_parameters {
                shared.push(("400", &bad_path));
            }
            if requires_token(operation) {
                shared.push(("401", &refused));
            }
            shared.push(("default", &problem));
            for (status, response) in shared {
                operation.responses.responses.entry(status.to_owned()).or_insert_with(|| response.clone().into());
            }
        }
    }
    let components = document.components.get_or_insert_with(Default::default);
    components.schemas.insert(Problem::name().into_owned(), Problem::schema());
    components.schemas.insert(FieldError::name().into_owned(), FieldError::schema());
    components.security_schemes.insert(
        BEARER.to_owned(),
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()).into(),
    );
    document
}

fn problem_response(description: &str) -> Response {
    let schema = Ref::from_schema_name(Problem::name());
    ResponseBuilder::new()
        .description(description)
        .content(PROBLEM_JSON, ContentBuilder::new().schema(Some(schema)).build())
        .build()
}

/// Whether an operation is refused without an access token: `bearer` is its only way in.
fn requires_token(operation: &Operation) -> bool {
    let bearer = SecurityRequirement::new(BEARER, Vec::<String>::new());
    operation.security.as_ref().is_some_and(|ways| !ways.is_empty() && ways.iter().all(|way| *way == bearer))
}

/// A handler's `(status = 404, body = Problem)` is answered as `application/problem+json`, as every
/// [`Problem`] is.
fn problem_as_problem_json(response: &mut Response) {
    let problem = Ref::from_schema_name(Problem::name());
    let is_problem = |content: &RefOr<Content>| matches!(content, RefOr::T(Content { schema: Some(RefOr::Ref(schema)), .. }) if *schema == problem);
    if response.content.get("application/json").is_some_and(is_problem) {
        let content = response.content.shift_remove("application/json").expect("just seen");
        response.content.insert(PROBLEM_JSON.to_owned(), content);
    }
}

/// Serves `document` at [`DOCUMENT_PATH`] and Swagger UI at [`DOCS_PATH`].
pub fn router(document: OpenApi) -> Router {
    SwaggerUi::new(DOCS_PATH).url(DOCUMENT_PATH, document).into()
}

/// The methods a path item has operations for.
pub fn methods(item: &PathItem) -> Vec<Method> {
    [
        (Method::GET, &item.get),
        (Method::PUT, &item.put),
        (Method::POST, &item.post),
        (Method::DELETE, &item.delete),
        (Method::OPTIONS, &item.options),
        (Method::HEAD, &item.head),
        (Method::PATCH, &item.patch),
        (Method::TRACE, &item.trace),
    ]
    .into_iter()
    .filter_map(|(method, operation)| operation.as_ref().map(|_| method))
    .collect()
}

fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// The schema of an id: a UUID as a string (what [`uuid_id!`](crate::uuid_id) declares).
#[doc(hidden)]
pub fn uuid_schema() -> RefOr<Schema> {
    ObjectBuilder::new().schema_type(Type::String).format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid))).into()
}
