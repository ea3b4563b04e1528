//! OpenID Connect (issue 15): the ID token of the code and refresh grants,
//! verified as a relying party does (JWKS, `typ`, `iss`, `aud`, `nonce`,
//! `at_hash` recomputed), the discovery document, UserInfo, and the
//! authorization request parameters keygate refuses.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use keygate::clock::{Clock, SystemClock};
use keygate::config::{ConfigResource, Settings};
use keygate::tokens::Alg;

use crate::helpers::{
    config_client, params_of, per_backend, pkce_pair, spawn_app_with, urlencode, Backend, TestApp,
    ISSUER, REDIRECT, SECRET,
};
use crate::steps::{self, STATE};

const RP: &str = "rp";
const API: &str = "https://api.example/";

/// `openid` known (the default list) and a relying party registered for it.
fn oidc(s: &mut Settings) {
    s.oauth.scopes.insert(0, "openid".into());
    s.clients.push(config_client(
        RP,
        "client_secret_basic",
        &["authorization_code", "refresh_token"],
        "openid profile email",
    ));
    s.resources = vec![ConfigResource {
        uri: API.into(),
        scopes: vec!["openid".into(), "profile".into()],
        name: None,
        client_id: None,
    }];
}

/// Signs alice in through `rp` with `scope` and `extra` query parameters;
/// returns the token response.
async fn code_flow(app: &TestApp, scope: &str, extra: &str) -> serde_json::Value {
    let (verifier, challenge) = pkce_pair();
    let query = format!("{}{extra}", steps::code_query(RP, scope, &challenge));
    let to = steps::authorize(&app.addr, &query, "allow").await;
    let code = steps::code_of(&to);
    steps::ok_json(
        steps::redeem(
            &app.http,
            &app.addr,
            Some((RP, SECRET)),
            &[],
            &code,
            &verifier,
        )
        .await,
    )
    .await
}

/// Verifies an ID token as a relying party does (OpenID Connect Core
/// §3.1.3.7): key by `kid` from the published JWKS, `alg` pinned to that
/// key's, header `typ: JWT`, signature, `iss`, `aud` = client id, `exp`;
/// then `azp`, `nonce` and `at_hash` (§3.1.3.6, recomputed from the
/// access token with the hash of the header's `alg`).
async fn verify_like_an_rp(
    app: &TestApp,
    id_token: &str,
    access_token: &str,
    nonce: Option<&str>,
) -> serde_json::Value {
    let jwks: jsonwebtoken::jwk::JwkSet =
        serde_json::from_value(app.get_json("/.well-known/jwks.json").await).unwrap();
    let header = jsonwebtoken::decode_header(id_token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("JWT"), "ID token typ");
    let kid = header.kid.clone().expect("kid");
    let jwk = jwks.find(&kid).expect("the ID token's kid is published");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let access_header = jsonwebtoken::decode_header(access_token).unwrap();
    assert_eq!(
        access_header.kid.as_deref(),
        Some(kid.as_str()),
        "same key as the access token"
    );
    assert_eq!(access_header.alg, header.alg);
    let mut v = jsonwebtoken::Validation::new(header.alg);
    v.set_issuer(&[ISSUER]);
    v.set_audience(&[RP]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub", "iat"]);
    let claims = jsonwebtoken::decode::<serde_json::Value>(id_token, &key, &v)
        .expect("the ID token verifies against the published JWKS")
        .claims;
    assert_eq!(claims["azp"], RP);
    assert_eq!(claims.get("nonce").and_then(|n| n.as_str()), nonce);
    let digest = match header.alg {
        jsonwebtoken::Algorithm::RS256 | jsonwebtoken::Algorithm::ES256 => {
            ring::digest::digest(&ring::digest::SHA256, access_token.as_bytes())
        }
        jsonwebtoken::Algorithm::EdDSA => {
            ring::digest::digest(&ring::digest::SHA512, access_token.as_bytes())
        }
        other => panic!("unexpected alg {other:?}"),
    };
    let d = digest.as_ref();
    assert_eq!(claims["at_hash"], B64.encode(&d[..d.len() / 2]), "at_hash");
    claims
}

fn access_claims(token: &str) -> serde_json::Value {
    let body = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&B64.decode(body).unwrap()).unwrap()
}

per_backend!(code_and_refresh_grants_issue_id_tokens);
/// The code grant with `openid` answers with an ID token an RP accepts:
/// `sub` the access token's, `aud`/`azp` the client, `nonce` echoed,
/// `auth_time` the sign-in's, `exp` = `iat` + `tokens.access_ttl`, and
/// `at_hash` of the access token. The refresh answers with a new one (Core
/// §12.2): same `sub` and `auth_time`, no `nonce`, `at_hash` of the new
/// access token. Without `openid` there is none.
async fn code_and_refresh_grants_issue_id_tokens(backend: Backend) {
    let app = spawn_app_with(backend, Alg::RS256, oidc).await;
    let before = SystemClock.now();
    let t = code_flow(&app, "openid profile", "&nonce=n-0S6_WzA2Mj").await;
    let at = t["access_token"].as_str().unwrap();
    let id = t["id_token"]
        .as_str()
        .expect("an id_token with scope openid");
    let c = verify_like_an_rp(&app, id, at, Some("n-0S6_WzA2Mj")).await;
    let access = access_claims(at);
    assert_eq!(c["sub"], access["sub"]);
    assert_eq!(c["iss"], ISSUER);
    assert_eq!(c["aud"], RP);
    let auth_time = c["auth_time"].as_i64().expect("auth_time");
    let iat = c["iat"].as_i64().unwrap();
    assert!(
        before <= auth_time && auth_time <= iat,
        "signed in during the flow"
    );
    let ttl = app.state.cfg.tokens.access_ttl.as_secs() as i64;
    assert_eq!(c["exp"].as_i64().unwrap(), iat + ttl);
    assert_eq!(
        c["amr"],
        serde_json::json!(["pwd"]),
        "RFC 8176: a password sign-in"
    );

    let r = steps::ok_json(
        steps::refresh(
            &app.http,
            &app.addr,
            (RP, SECRET),
            t["refresh_token"].as_str().unwrap(),
        )
        .await,
    )
    .await;
    let at2 = r["access_token"].as_str().unwrap();
    let id2 = r["id_token"].as_str().expect("an id_token on refresh");
    let c2 = verify_like_an_rp(&app, id2, at2, None).await;
    assert_eq!(c2["sub"], c["sub"]);
    assert_eq!(c2["auth_time"], c["auth_time"]);
    assert_eq!(c2["amr"], c["amr"]);
    assert_ne!(c2["at_hash"], c["at_hash"]);

    // No nonce asked: none in the token. Without `openid`: no ID token.
    let t = code_flow(&app, "openid", "").await;
    verify_like_an_rp(
        &app,
        t["id_token"].as_str().unwrap(),
        t["access_token"].as_str().unwrap(),
        None,
    )
    .await;
    let t = code_flow(&app, "profile email", "").await;
    assert!(t.get("id_token").is_none(), "{t}");
    let r = steps::ok_json(
        steps::refresh(
            &app.http,
            &app.addr,
            (RP, SECRET),
            t["refresh_token"].as_str().unwrap(),
        )
        .await,
    )
    .await;
    assert!(r.get("id_token").is_none(), "{r}");
}

/// ES256 and EdDSA keys sign ID tokens with their own `alg`, and `at_hash`
/// follows it (SHA-512 for EdDSA).
#[tokio::test]
async fn id_tokens_with_es256_and_eddsa_keys() {
    for alg in [Alg::ES256, Alg::EdDSA] {
        let app = spawn_app_with(Backend::Memory, alg, oidc).await;
        let t = code_flow(&app, "openid", "&nonce=abc").await;
        let id = t["id_token"].as_str().unwrap();
        assert_eq!(jsonwebtoken::decode_header(id).unwrap().alg, alg.jwt_alg());
        verify_like_an_rp(&app, id, t["access_token"].as_str().unwrap(), Some("abc")).await;
    }
}

per_backend!(userinfo_returns_claims_by_scope);
/// UserInfo (Core §5.3) by GET and POST: `sub` the ID token's,
/// `preferred_username` with `profile`, `email` and `email_verified: false`
/// with `email`; nothing else.
async fn userinfo_returns_claims_by_scope(backend: Backend) {
    let app = spawn_app_with(backend, Alg::RS256, oidc).await;
    let t = code_flow(&app, "openid profile email", "").await;
    let at = t["access_token"].as_str().unwrap();
    let sub = access_claims(t["id_token"].as_str().unwrap())["sub"].clone();
    for post in [false, true] {
        let req = if post {
            app.http.post(app.url("/oauth/userinfo"))
        } else {
            app.http.get(app.url("/oauth/userinfo"))
        };
        let resp = req.bearer_auth(at).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["cache-control"], "no-store");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "sub": sub,
                "preferred_username": "alice",
                "email": "alice@example.com",
                "email_verified": false,
            })
        );
    }
    let t = code_flow(&app, "openid", "").await;
    let body: serde_json::Value = app
        .http
        .get(app.url("/oauth/userinfo"))
        .bearer_auth(t["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body, serde_json::json!({ "sub": sub }));
}

per_backend!(userinfo_refusals_follow_rfc_6750);
/// UserInfo errors (RFC 6750 §3): no token → 401 with a bare challenge; a
/// token without `openid` → 403 `insufficient_scope`; a token for another
/// audience (an RFC 8707 resource) or a revoked one → 401 `invalid_token`.
async fn userinfo_refusals_follow_rfc_6750(backend: Backend) {
    let app = spawn_app_with(backend, Alg::RS256, oidc).await;
    let get = |token: Option<String>| {
        let mut req = app.http.get(app.url("/oauth/userinfo"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        async move {
            let resp = req.send().await.unwrap();
            let challenge = resp
                .headers()
                .get("www-authenticate")
                .map(|h| h.to_str().unwrap().to_string())
                .unwrap_or_default();
            (resp.status().as_u16(), challenge)
        }
    };
    let (status, challenge) = get(None).await;
    assert_eq!(status, 401);
    assert!(
        challenge.starts_with("Bearer ") && !challenge.contains("error="),
        "{challenge}"
    );

    let t = code_flow(&app, "profile", "").await;
    let (status, challenge) = get(Some(t["access_token"].as_str().unwrap().into())).await;
    assert_eq!(status, 403);
    assert!(
        challenge.contains("error=\"insufficient_scope\", scope=\"openid\""),
        "{challenge}"
    );

    let t = code_flow(
        &app,
        "openid profile",
        &format!("&resource={}", urlencode(API)),
    )
    .await;
    assert_eq!(
        access_claims(t["access_token"].as_str().unwrap())["aud"],
        API
    );
    let (status, challenge) = get(Some(t["access_token"].as_str().unwrap().into())).await;
    assert_eq!(status, 401);
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");

    let t = code_flow(&app, "openid", "").await;
    let at = t["access_token"].as_str().unwrap().to_string();
    assert_eq!(get(Some(at.clone())).await.0, 200);
    let resp = app
        .post_token_to("/oauth/revoke", Some((RP, SECRET)), &[("token", &at)])
        .await;
    assert_eq!(resp.status(), 200);
    let (status, challenge) = get(Some(at)).await;
    assert_eq!(status, 401);
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
}

/// OpenID Connect Discovery 1.0 §3: every field of the document, the
/// REQUIRED ones among them, with `openid` among the default scopes; the
/// RFC 8414 document's fields all appear with the same values.
#[tokio::test]
async fn discovery_lists_every_openid_field() {
    let app = spawn_app_with(Backend::Memory, Alg::ES256, |s| {
        s.oauth.scopes = Settings::default().oauth.scopes;
        s.oauth
            .scopes
            .extend(["api:read".into(), "api:write".into()]);
    })
    .await;
    let oidc = app.get_json("/.well-known/openid-configuration").await;
    let oauth = app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    let mut keys: Vec<&str> = oidc
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "authorization_endpoint",
            "authorization_response_iss_parameter_supported",
            "backchannel_logout_session_supported",
            "backchannel_logout_supported",
            "claims_parameter_supported",
            "claims_supported",
            "code_challenge_methods_supported",
            "end_session_endpoint",
            "grant_types_supported",
            "id_token_signing_alg_values_supported",
            "introspection_endpoint",
            "introspection_endpoint_auth_methods_supported",
            "issuer",
            "jwks_uri",
            "request_parameter_supported",
            "request_uri_parameter_supported",
            "response_modes_supported",
            "response_types_supported",
            "revocation_endpoint",
            "revocation_endpoint_auth_methods_supported",
            "scopes_supported",
            "service_documentation",
            "subject_types_supported",
            "token_endpoint",
            "token_endpoint_auth_methods_supported",
            "userinfo_endpoint",
        ]
    );
    for (k, v) in oauth.as_object().unwrap() {
        assert_eq!(&oidc[k], v, "{k} differs from the RFC 8414 document");
    }
    assert_eq!(
        oidc["userinfo_endpoint"],
        format!("{ISSUER}/oauth/userinfo")
    );
    assert_eq!(
        oidc["subject_types_supported"],
        serde_json::json!(["public"])
    );
    assert_eq!(
        oidc["id_token_signing_alg_values_supported"],
        serde_json::json!(["ES256"])
    );
    assert_eq!(
        oidc["response_types_supported"],
        serde_json::json!(["code"])
    );
    assert_eq!(
        oidc["scopes_supported"],
        serde_json::json!(["api:read", "api:write", "email", "openid", "profile"])
    );
    assert_eq!(
        oidc["claims_supported"],
        serde_json::json!([
            "sub",
            "iss",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "amr",
            "nonce",
            "at_hash",
            "azp",
            "name",
            "sid",
            "preferred_username",
            "updated_at",
            "email",
            "email_verified"
        ])
    );
    for k in [
        "request_parameter_supported",
        "request_uri_parameter_supported",
        "claims_parameter_supported",
    ] {
        assert_eq!(oidc[k], false, "{k}");
    }
    assert_eq!(
        oidc["end_session_endpoint"],
        format!("{ISSUER}/oauth/logout")
    );
    assert_eq!(oidc["backchannel_logout_supported"], true);
    assert_eq!(oidc["backchannel_logout_session_supported"], true);
}

per_backend!(request_objects_are_refused_with_their_codes);
/// Core §3.1.2.6: `request` and `request_uri` are answered with
/// `request_not_supported` / `request_uri_not_supported` at the client's
/// redirect URI (with `state` and `iss`), before any sign-in; a `nonce`
/// over 512 characters is `invalid_request`.
async fn request_objects_are_refused_with_their_codes(backend: Backend) {
    let app = spawn_app_with(backend, Alg::RS256, oidc).await;
    let (_, challenge) = pkce_pair();
    let base = steps::code_query(RP, "openid", &challenge);
    for (extra, code) in [
        (
            "&request=eyJhbGciOiJub25lIn0.e30.".to_string(),
            "request_not_supported",
        ),
        (
            format!("&request_uri={}", urlencode("https://rp.example/req.jwt")),
            "request_uri_not_supported",
        ),
        (format!("&nonce={}", "n".repeat(513)), "invalid_request"),
    ] {
        let resp = app
            .http
            .get(app.url(&format!("/oauth/authorize?{base}{extra}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 303, "{code}");
        let to = crate::helpers::location(&resp);
        assert!(to.starts_with(REDIRECT), "{to}");
        let p = params_of(&to, false);
        assert_eq!(p["error"], code);
        assert_eq!(p["state"], STATE);
        assert_eq!(p["iss"], ISSUER);
    }
}

/// A refresh retried within the grace window gets the same answer, ID token
/// included (RS256 signs the same claims to the same bytes): a client whose
/// first answer was lost still gets its ID token. The clock stands still,
/// so the retry is inside the window however slow the machine.
#[tokio::test]
async fn a_grace_retry_repeats_the_id_token() {
    let clock = std::sync::Arc::new(keygate::clock::TestClock::new(SystemClock.now()));
    let app = crate::helpers::spawn_app_clocked(Backend::Memory, Alg::RS256, oidc, clock).await;
    let t = code_flow(&app, "openid", "").await;
    let rt = t["refresh_token"].as_str().unwrap();
    let first = steps::ok_json(steps::refresh(&app.http, &app.addr, (RP, SECRET), rt).await).await;
    let again = steps::ok_json(steps::refresh(&app.http, &app.addr, (RP, SECRET), rt).await).await;
    assert_eq!(again["refresh_token"], first["refresh_token"]);
    let id = again["id_token"]
        .as_str()
        .expect("an id_token on the retry");
    assert_eq!(again["id_token"], first["id_token"]);
    verify_like_an_rp(&app, id, again["access_token"].as_str().unwrap(), None).await;
}
