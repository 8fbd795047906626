//! Architecture invariants (see ARCHITECTURE.md), checked over the whole workspace.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use kernel::routes::RouteTable;
use omnidesk::{CATALOGUE, service_names};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Architecture Invariant: a service crate depends on the kernel and the contracts, never on another
/// service. Services meet only through ports and events.
#[test]
fn no_service_crate_depends_on_another_service() {
    let services: HashSet<&str> = service_names().into_iter().collect();
    for service in &services {
        let manifest = workspace_root().join("crates").join(service).join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest).expect("manifest");
        let manifest: toml::Table = text.parse().expect("valid TOML");
        for section in ["dependencies", "dev-dependencies", "build-dependencies"] {
            let Some(deps) = manifest.get(section).and_then(|d| d.as_table()) else {
                continue;
            };
            for dependency in deps.keys() {
                assert!(
                    !services.contains(dependency.as_str()),
                    "service `{service}` depends on service `{dependency}` in [{section}]"
                );
            }
        }
    }
}

/// Architecture Invariant: a service's SQL names only tables its own migrations create, on every engine.
/// Statements are written in SQLite's dialect (the kernel rewrites them for the other engines); one written
/// for some engines only (inbox's search) names tables only those engines' migrations create, so each must
/// name only tables that some engine's migrations create.
#[test]
fn every_sql_statement_in_a_service_names_only_its_own_tables() {
    use kernel::store::{Engine, audit};
    let mut checked = 0;
    for spec in CATALOGUE {
        let owned: Vec<HashSet<String>> = [Engine::Sqlite, Engine::Postgres, Engine::MySql]
            .into_iter()
            .map(|engine| match spec.migrations {
                Some(m) => audit::tables_created(m.for_engine(engine), engine).expect("migrations parse"),
                None => HashSet::new(),
            })
            .collect();
        for file in rust_files(&workspace_root().join("crates").join(spec.name).join("src")) {
            let source = std::fs::read_to_string(&file).expect("source");
            let (code, fragments) = split_fragments(&source);
            for sql in sql_literals(&code) {
                let errors: Vec<_> = owned
                    .iter()
                    .filter_map(|tables| audit::check_owned(spec.name, tables, &sql, Engine::Sqlite).err())
                    .collect();
                if errors.len() == owned.len() {
                    panic!("{}: {}\n  in: {sql}", file.display(), errors[0]);
                }
                checked += 1;
            }
            // Pieces of statements (in a macro or `concat!`) do not parse: the tables they name, read word
            // by word, must be the service's on some engine. (Whole statements are also checked as they
            // run, by `Namespace` in debug builds.)
            for fragment in string_literals(&fragments) {
                for table in tables_named_in_fragment(&fragment) {
                    assert!(
                        owned.iter().any(|tables| tables.contains(&table)),
                        "{}: `{}` names table `{table}`, which it does not own\n  in: {fragment}",
                        file.display(),
                        spec.name
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked >= 10, "the scan found only {checked} statements; is it still finding SQL?");
}

#[test]
fn the_ownership_scan_catches_a_statement_on_another_services_table() {
    let source = r#"
        async fn sneaky(db: &Namespace) {
            db.fetch_all("select code from subscriptions where account_id = ?", args![]).await;
        }
    "#;
    let owned: HashSet<String> = ["users".to_owned()].into();
    let statements = sql_literals(source);
    assert_eq!(statements.len(), 1);
    assert!(kernel::store::audit::check_owned("user", &owned, &statements[0], kernel::store::Engine::Sqlite).is_err());
}

#[test]
fn the_ownership_scan_reads_the_tables_a_statement_fragment_names() {
    let source = r#"
        const CARD: &str = concat!("select id from conversations c ", "join subscriptions s on s.account_id = c.account_id ",
            "where c.id in (select value ->> 0 from jsonb_each(?))");
    "#;
    let (_, fragments) = split_fragments(source);
    let named: Vec<String> = string_literals(&fragments).iter().flat_map(|f| tables_named_in_fragment(f)).collect();
    assert_eq!(named, ["conversations", "subscriptions"]);
}

/// Architecture Invariant: the OpenAPI document describes exactly the route table — every route is an
/// operation, every operation a route — with one `operationId` per operation (the web client's function
/// names), and no two services name different schemas alike (merging would keep only one of them).
#[test]
fn every_route_is_in_the_openapi_document() {
    let table = RouteTable::build(CATALOGUE).expect("route table");
    let document = kernel::openapi::document(CATALOGUE);
    let mut routes: Vec<(String, String)> =
        table.routes().iter().map(|owned| (owned.route.method.to_string(), owned.route.path.clone())).collect();
    let mut operations: Vec<(String, String)> = document
        .paths
        .paths
        .iter()
        .flat_map(|(path, item)| {
            kernel::openapi::methods(item).into_iter().map(move |method| (method.to_string(), path.clone()))
        })
        .collect();
    routes.sort();
    operations.sort();
    assert_eq!(routes, operations, "the route table and the OpenAPI document differ");

    let json = serde_json::to_value(&document).expect("document");
    let mut ids = HashSet::new();
    for (path, item) in json["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            let id = operation["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            assert!(ids.insert(id.to_owned()), "operationId `{id}` is used twice");
        }
    }

    let mut seen: std::collections::HashMap<String, (&str, serde_json::Value)> = std::collections::HashMap::new();
    for spec in CATALOGUE {
        let part = serde_json::to_value((spec.openapi)()).expect("part");
        let Some(schemas) = part["components"]["schemas"].as_object() else { continue };
        for (name, schema) in schemas {
            if let Some((other, theirs)) = seen.get(name) {
                assert_eq!(theirs, schema, "services `{other}` and `{}` both name a schema `{name}`", spec.name);
            }
            seen.insert(name.clone(), (spec.name, schema.clone()));
        }
    }
}

/// The console's typed client is generated from `web/openapi.json` (`npm run gen`), which must be the
/// document the binary serves.
#[test]
fn the_consoles_copy_of_the_openapi_document_is_current() {
    let path = workspace_root().join("web/openapi.json");
    let committed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("web/openapi.json")).expect("JSON");
    let current = serde_json::to_value(kernel::openapi::document(CATALOGUE)).expect("document");
    assert!(
        committed == current,
        "web/openapi.json is not the current document: run `cargo run --bin omnidesk -- openapi > web/openapi.json`"
    );
}

#[test]
fn the_real_services_claim_disjoint_prefixes_and_the_seed_routes_belong_to_user() {
    let table = RouteTable::build(CATALOGUE).expect("the catalogue's route table is consistent");
    let user_routes: Vec<(String, &str)> = table
        .routes()
        .iter()
        .filter(|r| r.service == "user")
        .map(|r| (r.route.method.to_string(), r.route.path.as_str()))
        .collect();
    for (method, path) in [
        ("GET", "/api/users/{id}"),
        ("PUT", "/api/users/{id}"),
        ("POST", "/api/users/register"),
        ("POST", "/api/users/login"),
        ("PUT", "/api/users/update-language"),
    ] {
        assert!(user_routes.contains(&(method.to_owned(), path)), "{method} {path} missing from {user_routes:?}");
    }
    assert_eq!(table.owner_of("/api/plan/register/abc"), Some("plan"));
    assert_eq!(table.owner_of("/api/billing"), Some("payment"));
}

#[test]
fn omnidesk_routes_prints_the_seed_routes_with_their_owner() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_omnidesk"))
        .args(["routes", "--topology", "microservices"])
        .env_remove("OMNIDESK_CONFIG")
        .current_dir(std::env::temp_dir())
        .output()
        .expect("runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout).expect("utf-8");
    let line = text.lines().find(|l| l.contains("/api/users/register")).expect("register is listed");
    let columns: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(columns, ["POST", "/api/users/register", "user", "user"]);
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("readable").flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// `source` without its `macro_rules!` bodies and `concat!` arguments, and those (where SQL literals
/// may be fragments of a statement).
fn split_fragments(source: &str) -> (String, String) {
    let (mut code, mut fragments) = (String::new(), String::new());
    let mut rest = source;
    loop {
        let next = [("macro_rules!", '{', '}'), ("concat!(", '(', ')')]
            .into_iter()
            .filter_map(|(marker, open, close)| rest.find(marker).map(|at| (at, open, close)))
            .min_by_key(|(at, _, _)| *at);
        let Some((start, open, close)) = next else { break };
        code.push_str(&rest[..start]);
        let after = &rest[start..];
        let opened = after.find(open).unwrap_or(after.len());
        let (mut depth, mut end) = (0, after.len());
        for (i, c) in after[opened..].char_indices() {
            depth += i32::from(c == open) - i32::from(c == close);
            if depth == 0 {
                end = opened + i + 1;
                break;
            }
        }
        fragments.push_str(&after[..end]);
        fragments.push('\n');
        rest = &after[end..];
    }
    code.push_str(rest);
    (code, fragments)
}

/// The string literals in Rust source that are SQL statements (they start with a DML keyword; house style
/// writes SQL lowercase).
fn sql_literals(source: &str) -> Vec<String> {
    string_literals(source)
        .into_iter()
        .filter(|text| {
            let lower = text.trim_start().to_lowercase();
            ["select ", "insert ", "update ", "delete ", "with ", "replace "].iter().any(|k| lower.starts_with(k))
        })
        .collect()
}

/// The tables a piece of SQL names after `from`, `join`, `into` or `update`; a name followed by `(` is a
/// function (`jsonb_each(?)`) or a subquery, not a table.
fn tables_named_in_fragment(fragment: &str) -> Vec<String> {
    let lower = fragment.to_lowercase();
    let words: Vec<&str> = lower.split(|c: char| c.is_whitespace() || c == ',').filter(|w| !w.is_empty()).collect();
    words
        .windows(2)
        .filter(|pair| matches!(pair[0], "from" | "join" | "into" | "update"))
        .map(|pair| pair[1])
        .filter(|name| !name.contains('('))
        .map(|name| name.trim_end_matches([')', ';']).to_owned())
        .filter(|name| !name.is_empty())
        .collect()
}

/// The string literals in Rust source. Handles escapes, line continuations, raw strings, comments and
/// char literals.
fn string_literals(source: &str) -> Vec<String> {
    let chars: Vec<char> = source.chars().collect();
    let mut literals = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '/' if chars.get(i + 1) == Some(&'/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '\'' => {
                // A char literal ('x', '\n', '"'); a lifetime ('a) has no closing quote two chars on.
                if chars.get(i + 1) == Some(&'\\') {
                    i += 2;
                    while i < chars.len() && chars[i] != '\'' {
                        i += 1;
                    }
                } else if chars.get(i + 2) == Some(&'\'') {
                    i += 2;
                }
                i += 1;
            }
            'r' if matches!(chars.get(i + 1), Some('"') | Some('#')) && (i == 0 || !chars[i - 1].is_alphanumeric()) => {
                let hashes = chars[i + 1..].iter().take_while(|c| **c == '#').count();
                let start = i + 1 + hashes + 1;
                let closing: String = std::iter::once('"').chain(std::iter::repeat_n('#', hashes)).collect();
                let rest: String = chars[start..].iter().collect();
                let end = rest.find(&closing).unwrap_or(rest.len());
                literals.push(rest[..end].to_owned());
                i = start + rest[..end].chars().count() + closing.len();
            }
            '"' => {
                let mut text = String::new();
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\\' {
                        match chars.get(i + 1) {
                            Some('\n') => {
                                i += 2;
                                while i < chars.len() && chars[i].is_whitespace() {
                                    i += 1;
                                }
                                continue;
                            }
                            Some(escaped) => text.push(*escaped),
                            None => {}
                        }
                        i += 2;
                    } else {
                        text.push(chars[i]);
                        i += 1;
                    }
                }
                literals.push(text);
                i += 1;
            }
            _ => i += 1,
        }
    }
    literals
}

#[test]
fn the_default_groups_place_every_service_exactly_once() {
    let mut placed: Vec<&str> = omnidesk::DEFAULT_GROUPS.iter().flat_map(|group| group.iter().copied()).collect();
    placed.sort_unstable();
    let mut services = service_names();
    services.sort_unstable();
    assert_eq!(placed, services);
}

/// Architecture Invariant: within a crate, no two top-level modules import each other. Each pair that
/// did (the desk and the realtime feed, posts and their recorder, the store and the event bus) was one
/// module split in two along the wrong line. The crate root is left out: it declares the modules, and
/// what it defines (the service's error enum, `SERVICE`) is there for all of them.
#[test]
fn no_two_modules_of_a_crate_import_each_other() {
    let mut checked = 0;
    let mut cycles = Vec::new();
    for entry in std::fs::read_dir(workspace_root().join("crates")).expect("crates").flatten() {
        let src = entry.path().join("src");
        if !src.is_dir() {
            continue;
        }
        let imports = module_imports(&src);
        checked += imports.len();
        for (module, uses) in &imports {
            for used in uses {
                if module < used && imports.get(used).is_some_and(|theirs| theirs.contains(module)) {
                    cycles.push(format!("crates/{}: `{module}` ↔ `{used}`", entry.file_name().to_string_lossy()));
                }
            }
        }
    }
    assert!(checked > 20, "the scan found the modules ({checked})");
    cycles.sort();
    assert!(cycles.is_empty(), "modules that import each other:\n{}", cycles.join("\n"));
}

#[test]
fn the_cycle_scan_sees_grouped_and_nested_imports() {
    let source = "use crate::{feed::Feed, lists};\nfn f() { crate::store::Store::new(); }\nuse crate::Error;";
    let mut found: Vec<String> = crate_paths(source).into_iter().collect();
    found.sort();
    assert_eq!(found, ["Error", "feed", "lists", "store"]);
    let in_tests = "use crate::a;\n#[cfg(test)]\nmod tests {\n    use crate::b;\n}\n";
    assert_eq!(crate_paths(without_tests(in_tests)), HashSet::from(["a".to_owned()]));
}

/// For each top-level module of the crate at `src` (by file: `x.rs` or `x/`), the other top-level modules
/// its non-test code (comments left out) names through `crate::`.
fn module_imports(src: &Path) -> std::collections::HashMap<String, HashSet<String>> {
    let mut modules: std::collections::HashMap<String, HashSet<String>> = std::collections::HashMap::new();
    for file in rust_files(src) {
        let relative = file.strip_prefix(src).expect("under src");
        let top = relative.components().next().expect("a component").as_os_str().to_string_lossy();
        let top = top.trim_end_matches(".rs").to_owned();
        let is_test = relative.file_name().is_some_and(|name| name == "tests.rs") || relative.starts_with("tests");
        if top == "lib" || top == "main" || is_test {
            continue;
        }
        let source = std::fs::read_to_string(&file).expect("readable");
        // Comments (a doc link to another module) name a module without depending on it.
        let code: String = without_tests(&source)
            .lines()
            .filter(|line| !line.trim_start().starts_with("//"))
            .map(|line| format!("{line}\n"))
            .collect();
        modules.entry(top).or_default().extend(crate_paths(&code));
    }
    let names: HashSet<String> = modules.keys().cloned().collect();
    for (name, uses) in &mut modules {
        uses.retain(|used| used != name && names.contains(used));
    }
    modules
}

/// `source` up to its test module (house style puts `#[cfg(test)] mod tests` last).
fn without_tests(source: &str) -> &str {
    source.find("#[cfg(test)]\nmod tests").map_or(source, |at| &source[..at])
}

/// The first segment of every `crate::` path in `source`, including each one of a `crate::{a, b::c}` group.
fn crate_paths(source: &str) -> HashSet<String> {
    let identifier =
        |text: &str| -> String { text.trim_start().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect() };
    let mut found = HashSet::new();
    for (at, _) in source.match_indices("crate::") {
        if source[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        let rest = &source[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        item_start = true;
                        continue;
                    }
                    _ => {}
                }
                if item_start && depth == 0 && !c.is_whitespace() {
                    found.insert(identifier(&group[i..]));
                    item_start = false;
                }
            }
        } else {
            found.insert(identifier(rest));
        }
    }
    found.retain(|name| !name.is_empty());
    found
}

/// Architecture Invariant: every service has the same shape (ARCHITECTURE.md, "The shape of a service"):
/// `lib.rs` with `SERVICE`, `start` and the service's error enum answered as a problem; `http.rs` or
/// `http/` (routes and handlers, returning that error); `store.rs` or `store/` (all of its SQL);
/// `events.rs` exactly when it consumes events; events published by the domain, never from the store or a
/// handler; the kernel's `Json` everywhere.
#[test]
fn every_service_has_the_same_shape() {
    let mut wrong = Vec::new();
    let mut checked = Vec::new();
    for spec in CATALOGUE.iter().filter(|spec| !(spec.routes)().is_empty()) {
        let name = spec.name;
        checked.push(name);
        let src = workspace_root().join("crates").join(name).join("src");
        let lib = std::fs::read_to_string(src.join("lib.rs")).expect("lib.rs");
        let error = format!("{}{}Error", name[..1].to_uppercase(), &name[1..]);
        for (what, present) in [
            ("`pub const SERVICE: ServiceSpec` in lib.rs", lib.contains("pub const SERVICE: ServiceSpec")),
            ("`async fn start` in lib.rs", lib.contains("async fn start(")),
            ("its error enum in lib.rs", lib.contains(&format!("enum {error} {{"))),
            ("the error answered as a problem", lib.contains(&format!("kernel::answered_as_problem!({error});"))),
            ("http.rs or http/", src.join("http.rs").exists() || src.join("http").is_dir()),
            ("store.rs or store/", src.join("store.rs").exists() || src.join("store").is_dir()),
            (
                "events.rs exactly when it consumes events",
                src.join("events.rs").exists() == lib.contains("subscribe::<"),
            ),
        ] {
            if !present {
                wrong.push(format!("{name}: {what}"));
            }
        }
        for file in rust_files(&src) {
            let relative = file.strip_prefix(&src).expect("under src").to_string_lossy().into_owned();
            let source = std::fs::read_to_string(&file).expect("readable");
            let code = without_tests(&source);
            let in_store = relative == "store.rs" || relative.starts_with("store/");
            let in_http = relative == "http.rs" || relative.starts_with("http/");
            if code.contains("axum::Json") || code.contains("use axum::Json") {
                wrong.push(format!("{name}/{relative}: axum::Json instead of kernel::http::Json"));
            }
            if (in_store || in_http) && code.contains(".publish") {
                wrong.push(format!(
                    "{name}/{relative}: publishes events (the domain does, in the change's transaction)"
                ));
            }
            let is_test = relative.ends_with("tests.rs") || relative.contains("tests/");
            if !in_store && !is_test && !sql_literals(code).is_empty() {
                wrong.push(format!("{name}/{relative}: SQL outside the store: {:?}", sql_literals(code)[0]));
            }
            if code.contains(&format!("enum {error}")) && code.contains("(Problem)") {
                wrong.push(format!("{name}/{relative}: an HTTP problem inside the error enum"));
            }
        }
    }
    checked.sort_unstable();
    assert_eq!(checked, ["inbox", "input", "payment", "plan", "user"], "every service with routes is checked");
    assert!(wrong.is_empty(), "services out of shape:\n{}", wrong.join("\n"));
}
