//! The committed OpenAPI copies in `openapi/` match the document generated from
//! the handlers, and the document is a valid OpenAPI 3 description.

use std::path::PathBuf;

fn committed(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("openapi")
        .join(name)
}

fn check(name: &str, generated: String) {
    let path = committed(name);
    if std::env::var("KEYGATE_BLESS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == generated,
        "openapi/{name} is stale: run `make openapi` (or KEYGATE_BLESS=1 cargo test openapi) and commit it"
    );
}

#[test]
fn committed_copies_are_current() {
    let api = keygate::http::api_service();
    check("openapi.json", api.spec() + "\n");
    check("openapi.yaml", api.spec_yaml());
}

#[test]
fn document_is_valid_openapi_3() {
    let text = keygate::http::api_service().spec();
    let raw: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(raw["openapi"].as_str().unwrap().starts_with("3."));
    let doc: openapiv3::OpenAPI = serde_json::from_value(raw.clone()).expect("parses as OpenAPI 3");
    // every $ref resolves inside the document
    fn refs(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                if let Some(serde_json::Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|v| refs(v, out));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = vec![];
    refs(&raw, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let pointer = r.strip_prefix('#').expect("local reference");
        assert!(raw.pointer(pointer).is_some(), "dangling $ref {r}");
    }
    // every operation has responses, an operationId-free summary, and a tag
    for (path, item) in doc.paths.iter() {
        let item = item.as_item().unwrap();
        for (method, op) in item.iter() {
            assert!(
                !op.responses.responses.is_empty(),
                "{method} {path} has no responses"
            );
            assert!(!op.tags.is_empty(), "{method} {path} has no tag");
        }
    }
    for path in [
        "/oauth/token",
        "/.well-known/jwks.json",
        "/.well-known/oauth-authorization-server",
        "/healthz",
        "/readyz",
        "/metrics",
        "/oauth/revoke",
        "/oauth/introspect",
        "/api/me",
        "/oauth/register",
        "/oauth/register/{client_id}",
    ] {
        assert!(
            doc.paths.paths.contains_key(path),
            "{path} missing from the document"
        );
    }
}
