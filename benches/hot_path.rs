//! Micro-benchmarks of the CPU work in one token request (issue 6): form
//! parsing, client authentication, PKCE, building the claims and signing them.
//! Store round trips and HTTP are left out; the load benchmark covers those.
//!
//! Each `jwt::sign` benchmark has a `sign_raw` twin that signs the same signing
//! input with the bare key (`SigningKey::sign_raw`, AWS-LC), so the difference
//! is keygate's own overhead (claims serialisation and base64url).
//!
//! Run: `cargo bench --bench hot_path` (about a minute on 2 cores), or add
//! `-- --quick` for a rougher, faster pass.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use keygate::clock::{Clock, SystemClock};
use keygate::ids;
use keygate::oauth::client_auth::{authenticate, hash_secret, secret_matches, select_credentials};
use keygate::oauth::pkce::{self, Challenge, Method};
use keygate::oauth::token::{AccessClaims, Grant, TokenParams};
use keygate::oauth::types::{AuthMethod, Client, GrantType, ScopeSet};
use keygate::tokens::jwt;
use keygate::tokens::keys::{generate_pkcs8, Alg, SigningKey};

const ISSUER: &str = "https://auth.example.com";
const AUDIENCE: &str = "https://api.example.com";
const SCOPE: &str = "openid profile email offline_access";
const REDIRECT_URI: &str = "http://127.0.0.1:3000/callback";
/// Access token lifetime, as the default `tokens.access_ttl`.
const ACCESS_TTL: i64 = 900;

/// A grant as the authorization code flow produces it: a user id as
/// `flows::users` mints it, a generated client id and a refresh family.
fn grant() -> Grant {
    Grant {
        subject: ids::random_token(16),
        client_id: ids::client_id(),
        scope: ScopeSet::parse(SCOPE).expect("SCOPE is a valid scope string"),
        family: Some(ids::random_token(16)),
    }
}

fn claims(grant: &Grant) -> AccessClaims {
    AccessClaims::new(
        ISSUER,
        AUDIENCE,
        grant,
        SystemClock.now(),
        ACCESS_TTL,
        ids::jti(),
    )
}

/// Claims building: `AccessClaims::new` with a fresh `jti` (one OS random
/// draw, as `flows::token` does per token) plus `serde_json::to_vec`, which
/// `jwt::sign` repeats. `ids::jti` alone is measured beside it.
fn bench_claims(c: &mut Criterion) {
    let grant = grant();
    let now = SystemClock.now();
    let mut g = c.benchmark_group("claims");
    g.bench_function("ids::jti", |b| b.iter(ids::jti));
    g.bench_function("AccessClaims::new+to_vec", |b| {
        b.iter(|| {
            let claims = AccessClaims::new(
                black_box(ISSUER),
                black_box(AUDIENCE),
                black_box(&grant),
                now,
                ACCESS_TTL,
                ids::jti(),
            );
            serde_json::to_vec(&claims).expect("claims always serialise")
        })
    });
    g.finish();
}

/// Signing: `jwt::sign` (serialise, base64url, sign, base64url) against the
/// bare `sign_raw` over the very signing input `jwt::sign` produced, per algorithm.
fn bench_sign(c: &mut Criterion) {
    let claims = claims(&grant());
    let mut g = c.benchmark_group("sign");
    for alg in [Alg::RS256, Alg::ES256, Alg::EdDSA] {
        // Keys are generated and parsed once; RSA generation takes a while.
        let der = generate_pkcs8(alg).expect("key generation");
        let key = SigningKey::from_pkcs8(&der, PathBuf::new(), 0).expect("a generated key parses");
        let token = jwt::sign(&key, &claims).expect("signing");
        let (signing_input, _signature) = token
            .rsplit_once('.')
            .expect("a compact JWS has three parts");
        let message = signing_input.as_bytes().to_vec();
        g.bench_with_input(BenchmarkId::new("jwt::sign", alg), &key, |b, key| {
            b.iter(|| jwt::sign(key, black_box(&claims)).expect("signing"))
        });
        g.bench_with_input(
            BenchmarkId::new(format!("sign_raw ({} B input)", message.len()), alg),
            &key,
            |b, key| b.iter(|| key.sign_raw(black_box(&message)).expect("signing")),
        );
    }
    g.finish();
}

/// Client secret check: `secret_matches` (SHA-256 + constant-time compare)
/// alone, `authenticate` for a confidential `client_secret_basic` client, and
/// `select_credentials` (form-decoding the Basic parts) followed by `authenticate`,
/// which is what the token endpoint runs per request.
fn bench_client_auth(c: &mut Criterion) {
    let secret = ids::client_secret();
    let client = Client {
        client_id: ids::client_id(),
        client_name: "Benchmark web app".into(),
        secret_sha256: Some(hash_secret(&secret)),
        auth_method: AuthMethod::ClientSecretBasic,
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        redirect_uris: vec![REDIRECT_URI.into()],
        scope: ScopeSet::parse(SCOPE).expect("SCOPE is a valid scope string"),
        created_at: SystemClock.now(),
        ..Default::default()
    };
    let stored = client.secret_sha256.expect("set just above");
    let creds = select_credentials(Some((&client.client_id, &secret)), None, None)
        .expect("one method was used");
    let mut g = c.benchmark_group("client_auth");
    g.bench_function("secret_matches", |b| {
        b.iter(|| secret_matches(black_box(&secret), black_box(&stored)))
    });
    g.bench_function("authenticate", |b| {
        b.iter(|| authenticate(black_box(&creds), Some(&client)).expect("the secret matches"))
    });
    g.bench_function("select_credentials+authenticate", |b| {
        b.iter(|| {
            let creds = select_credentials(
                Some((black_box(&client.client_id), black_box(&secret))),
                None,
                None,
            )
            .expect("one method was used");
            authenticate(&creds, Some(&client))
                .map(|_| ())
                .expect("the secret matches")
        })
    });
    g.finish();
}

/// PKCE check: `pkce::verify` with S256 for the shortest (43) and longest
/// (128) verifiers RFC 7636 §4.1 allows.
fn bench_pkce(c: &mut Criterion) {
    let mut g = c.benchmark_group("pkce_verify_s256");
    // 32 random bytes give the usual 43-character verifier; 96 give 128.
    for verifier in [ids::random_token(32), ids::random_token(96)] {
        assert!(pkce::well_formed(&verifier), "verifier length is 43..=128");
        let challenge = Challenge {
            challenge: pkce::s256(&verifier),
            method: Method::S256,
        };
        g.bench_with_input(
            BenchmarkId::from_parameter(format!("{} chars", verifier.len())),
            &verifier,
            |b, v| {
                b.iter(|| {
                    let ok = pkce::verify(black_box(&challenge), black_box(v));
                    assert!(ok, "the verifier matches its own challenge");
                })
            },
        );
    }
    g.finish();
}

/// Form parsing for a typical authorization_code request with PKCE and a
/// `client_secret_basic` client (so no credentials in the body):
/// `TokenParams::from_pairs` on decoded pairs, and the full path the HTTP
/// layer takes (url-decode the body into owned pairs, then `from_pairs`).
fn bench_form(c: &mut Criterion) {
    let code = ids::random_token(32);
    let verifier = ids::random_token(32);
    let body: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "authorization_code")
        .append_pair("code", &code)
        .append_pair("redirect_uri", REDIRECT_URI)
        .append_pair("code_verifier", &verifier)
        .finish();
    let pairs: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let mut g = c.benchmark_group("token_form");
    g.bench_function("TokenParams::from_pairs", |b| {
        b.iter(|| {
            TokenParams::from_pairs(
                black_box(&pairs)
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            )
            .expect("no duplicated parameter")
        })
    });
    g.bench_function(
        format!("urldecode+from_pairs ({} B body)", body.len()),
        |b| {
            b.iter(|| {
                let pairs: Vec<(String, String)> =
                    form_urlencoded::parse(black_box(body.as_bytes()))
                        .into_owned()
                        .collect();
                TokenParams::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                    .expect("no duplicated parameter")
            })
        },
    );
    g.finish();
}

/// Short warm-up and measurement so the whole run stays around a minute on
/// 2 cores; command-line options (`--quick`, `--measurement-time`) still override.
fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_millis(1500))
        .sample_size(30)
}

criterion_group! {
    name = hot_path;
    config = config();
    targets = bench_claims, bench_sign, bench_client_auth, bench_pkce, bench_form
}
criterion_main!(hot_path);
