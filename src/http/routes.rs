//! The one route table. The pages and plain routes are listed once in
//! [`ROUTES`] with the handler of each method; the JSON API's paths and
//! methods come from its OpenAPI document. The router, the metrics route
//! labels and the `Allow` header of a 405 are all derived from these two
//! sources, so a new route cannot be served without being labelled and
//! listed, nor the other way round. The CORS policy of a path is here too
//! ([`API_CORS`]): pages are same-origin (SPEC.md "CORS"), so only API paths
//! have one.
//!
//! Must not depend on the handlers' internals, the store or the flows: it
//! names handlers and nothing else.

use std::sync::OnceLock;

use poem::endpoint::BoxEndpoint;
use poem::http::{header, HeaderValue};
use poem::{Endpoint, EndpointExt, Route, RouteMethod};

use super::{api_service, pages};

/// A method a route answers. `HEAD` is answered wherever `GET` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// `GET` (and `HEAD`).
    Get,
    /// `POST`.
    Post,
}

/// Builds the endpoint of one method of a route (called once per router).
pub type MakeEndpoint = fn() -> BoxEndpoint<'static>;

/// How a route of [`ROUTES`] is served.
pub enum Serve {
    /// An HTML page (or form post) behind the CSRF middleware.
    Page(&'static [(Verb, MakeEndpoint)]),
    /// Served as is: no CSRF cookie, no form.
    Plain(&'static [(Verb, MakeEndpoint)]),
    /// A tree mounted at the path (the docs UI), whatever the method; every
    /// path below is labelled with the mount path in metrics.
    Tree(MakeEndpoint),
}

/// Which cross-origin browser requests a route answers (SPEC.md "CORS").
/// Never with credentials: no route sends `Access-Control-Allow-Credentials`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cors {
    /// Public documents (metadata, JWKS): `Access-Control-Allow-Origin: *`
    /// on `GET`, so browser apps and JWT verifiers can read them.
    AnyOrigin,
    /// The token and revocation endpoints: only the origins of registered
    /// public clients' redirect URIs, looked up per request.
    PublicClients,
}

/// The API paths that answer cross-origin requests; every other path is
/// same-origin. A unit test checks that each is one of the API's paths.
/// `/api/me` stays same-origin: it is the demo client's resource, fetched
/// server-side with the session's token, not by browser apps.
pub const API_CORS: &[(&str, Cors)] = &[
    ("/.well-known/oauth-authorization-server", Cors::AnyOrigin),
    ("/.well-known/openid-configuration", Cors::AnyOrigin),
    ("/.well-known/jwks.json", Cors::AnyOrigin),
    ("/.well-known/oauth-protected-resource", Cors::AnyOrigin),
    ("/oauth/token", Cors::PublicClients),
    ("/oauth/revoke", Cors::PublicClients),
];

/// One route outside the OpenAPI service.
pub struct RouteDef {
    /// The path pattern (`:name` matches one segment).
    pub path: &'static str,
    /// How it is served.
    pub serve: Serve,
}

/// Boxes an endpoint for [`ROUTES`].
fn ep<E: Endpoint + 'static>(e: E) -> BoxEndpoint<'static> {
    e.map_to_response().boxed()
}

use Verb::{Get, Post};

/// The pages and plain routes of [`super::routes`], with their handlers. The
/// API paths are not listed here: they come from the OpenAPI document.
pub const ROUTES: &[RouteDef] = &[
    RouteDef {
        path: "/",
        serve: Serve::Page(&[(Get, || ep(pages::home))]),
    },
    RouteDef {
        path: "/login",
        serve: Serve::Page(&[(Get, || ep(pages::login_form)), (Post, || ep(pages::login))]),
    },
    RouteDef {
        path: "/signup",
        serve: Serve::Page(&[
            (Get, || ep(pages::signup_form)),
            (Post, || ep(pages::signup)),
        ]),
    },
    RouteDef {
        path: "/logout",
        serve: Serve::Page(&[(Post, || ep(pages::sign_out))]),
    },
    RouteDef {
        path: "/oauth/logout",
        serve: Serve::Page(&[
            (Get, || ep(pages::logout_get)),
            (Post, || ep(pages::logout_post)),
        ]),
    },
    RouteDef {
        path: "/oauth/authorize",
        serve: Serve::Page(&[
            (Get, || ep(pages::authorize_get)),
            (Post, || ep(pages::authorize_post)),
        ]),
    },
    RouteDef {
        path: "/account/apps",
        serve: Serve::Page(&[
            (Get, || ep(pages::apps::list)),
            (Post, || ep(pages::apps::revoke)),
        ]),
    },
    RouteDef {
        path: "/clients",
        serve: Serve::Page(&[
            (Get, || ep(pages::clients::list)),
            (Post, || ep(pages::clients::create)),
        ]),
    },
    RouteDef {
        path: "/clients/new",
        serve: Serve::Page(&[(Get, || ep(pages::clients::new_form))]),
    },
    RouteDef {
        path: "/clients/:id",
        serve: Serve::Page(&[
            (Get, || ep(pages::clients::edit_form)),
            (Post, || ep(pages::clients::update)),
        ]),
    },
    RouteDef {
        path: "/clients/:id/rotate",
        serve: Serve::Page(&[
            (Get, || ep(pages::clients::rotate_form)),
            (Post, || ep(pages::clients::rotate)),
        ]),
    },
    RouteDef {
        path: "/clients/:id/secret",
        serve: Serve::Page(&[(Get, || ep(pages::clients::show_secret))]),
    },
    RouteDef {
        path: "/clients/:id/delete",
        serve: Serve::Page(&[
            (Get, || ep(pages::clients::delete_form)),
            (Post, || ep(pages::clients::delete)),
        ]),
    },
    RouteDef {
        path: "/account",
        serve: Serve::Page(&[
            (Get, || ep(pages::account::show)),
            (Post, || ep(pages::account::update)),
        ]),
    },
    RouteDef {
        path: "/static/style.css",
        serve: Serve::Plain(&[(Get, || ep(pages::stylesheet))]),
    },
    RouteDef {
        path: "/openapi.json",
        serve: Serve::Plain(&[(Get, || ep(api_service().spec_endpoint()))]),
    },
    RouteDef {
        path: "/docs",
        // Swagger UI runs its own scripts and styles, so it keeps its page
        // as poem-openapi builds it, but may no more be framed than any
        // other page (RFC 9700 §4.16) nor leak its URL through `Referer`.
        serve: Serve::Tree(|| {
            ep(api_service().swagger_ui().with(
                poem::middleware::SetHeader::new()
                    .overriding(header::X_FRAME_OPTIONS, "DENY")
                    .overriding(header::CONTENT_SECURITY_POLICY, "frame-ancestors 'none'")
                    .overriding(header::REFERRER_POLICY, "no-referrer"),
            ))
        }),
    },
];

/// The router of [`ROUTES`] and the API, before middleware. `csrf` wraps
/// each page route.
pub fn router(csrf: impl Fn(BoxEndpoint<'static>) -> BoxEndpoint<'static>) -> Route {
    let mut route = Route::new();
    // The API is mounted per first path segment (not at "/") so that "/"
    // stays the home page; the OpenAPI service routes the rest itself.
    for (path, nested) in table().api_mounts() {
        route = if nested {
            route.nest_no_strip(path, api_service())
        } else {
            route.at(path, api_service())
        };
    }
    for def in ROUTES {
        route = match &def.serve {
            Serve::Page(handlers) => route.at(def.path, csrf(by_method(handlers).boxed())),
            Serve::Plain(handlers) => route.at(def.path, by_method(handlers)),
            Serve::Tree(make) => route.nest(def.path, make()),
        };
    }
    route
}

fn by_method(handlers: &[(Verb, MakeEndpoint)]) -> RouteMethod {
    handlers
        .iter()
        .fold(RouteMethod::new(), |m, (verb, make)| match verb {
            Get => m.get(make()),
            Post => m.post(make()),
        })
}

/// One entry of the [`RouteTable`].
#[derive(Debug)]
pub struct TableEntry {
    /// The path pattern, which is also the metrics route label.
    pattern: String,
    /// `{…}` or `:…` segments match any one non-empty segment.
    has_params: bool,
    /// A tree: every path below matches too.
    prefix: bool,
    /// The `Allow` value (`None` for a tree, which answers every method).
    allow: Option<HeaderValue>,
    /// One of the API's paths (served by the OpenAPI service).
    api: bool,
    /// Its CORS policy (`None`: same-origin).
    cors: Option<Cors>,
}

impl TableEntry {
    /// The path pattern, as routed and as labelled in metrics.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The methods the route answers, as sent in `Allow` (`None` for a tree).
    pub fn allow(&self) -> Option<&HeaderValue> {
        self.allow.as_ref()
    }

    /// Its CORS policy (`None`: same-origin, no CORS headers).
    pub fn cors(&self) -> Option<Cors> {
        self.cors
    }

    fn matches(&self, path: &str) -> bool {
        if self.prefix {
            return path
                .strip_prefix(self.pattern.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
        }
        let path = path.trim_end_matches('/');
        let pattern = self.pattern.trim_end_matches('/');
        if !self.has_params {
            return path == pattern;
        }
        let mut given = path.split('/');
        let mut wanted = pattern.split('/');
        loop {
            match (wanted.next(), given.next()) {
                (None, None) => return true,
                (Some(p), Some(g)) if p == g || (!g.is_empty() && is_param(p)) => {}
                _ => return false,
            }
        }
    }
}

fn is_param(segment: &str) -> bool {
    segment.starts_with(':') || segment.starts_with('{')
}

/// Every route of the server: [`ROUTES`] and the API's paths.
#[derive(Debug)]
pub struct RouteTable {
    entries: Vec<TableEntry>,
}

/// The route table, built once from [`ROUTES`] and the OpenAPI document
/// (both fixed at compile time).
pub fn table() -> &'static RouteTable {
    static TABLE: OnceLock<RouteTable> = OnceLock::new();
    TABLE.get_or_init(RouteTable::build)
}

/// Methods in the order they are listed in `Allow`.
const METHOD_ORDER: [&str; 6] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];

fn allow_value(mut methods: Vec<String>) -> Option<HeaderValue> {
    if methods.iter().any(|m| m == "GET") && !methods.iter().any(|m| m == "HEAD") {
        methods.push("HEAD".into());
    }
    methods.sort_by_key(|m| METHOD_ORDER.iter().position(|o| o == m));
    HeaderValue::from_str(&methods.join(", ")).ok()
}

impl RouteTable {
    fn build() -> Self {
        let mut entries: Vec<TableEntry> = ROUTES
            .iter()
            .map(|def| {
                let (prefix, allow) = match &def.serve {
                    Serve::Page(h) | Serve::Plain(h) => (
                        false,
                        allow_value(
                            h.iter()
                                .map(|(v, _)| match v {
                                    Get => "GET".to_string(),
                                    Post => "POST".to_string(),
                                })
                                .collect(),
                        ),
                    ),
                    Serve::Tree(_) => (true, None),
                };
                TableEntry {
                    pattern: def.path.to_string(),
                    has_params: def.path.split('/').any(is_param),
                    prefix,
                    allow,
                    api: false,
                    cors: None,
                }
            })
            .collect();
        let spec: serde_json::Value =
            serde_json::from_str(&api_service().spec()).unwrap_or_default();
        if let Some(paths) = spec["paths"].as_object() {
            for (path, ops) in paths {
                let methods = ops
                    .as_object()
                    .map(|o| o.keys().map(|m| m.to_uppercase()).collect())
                    .unwrap_or_default();
                entries.push(TableEntry {
                    pattern: path.clone(),
                    has_params: path.split('/').any(is_param),
                    prefix: false,
                    allow: allow_value(methods),
                    api: true,
                    cors: API_CORS.iter().find(|(p, _)| p == path).map(|(_, c)| *c),
                });
            }
        }
        // Literal paths win over patterns (`/clients/new` over `/clients/:id`).
        entries.sort_by_key(|e| e.has_params || e.prefix);
        Self { entries }
    }

    /// Every entry (literal paths first, in the order they are matched).
    pub fn entries(&self) -> &[TableEntry] {
        &self.entries
    }

    /// The entry `path` is routed to, if any.
    pub fn find(&self, path: &str) -> Option<&TableEntry> {
        self.entries.iter().find(|e| e.matches(path))
    }

    /// The metrics route label of `path`: its route's pattern, or `other`,
    /// so label cardinality stays bounded whatever clients send.
    pub fn label(&'static self, path: &str) -> &'static str {
        self.find(path).map_or("other", |e| e.pattern.as_str())
    }

    /// Where the OpenAPI service is mounted: the first segment of each API
    /// path (`true`: nested, the service routes what is below) or the whole
    /// path when it has one segment (`/healthz`).
    fn api_mounts(&self) -> Vec<(&str, bool)> {
        let mut mounts: Vec<(&str, bool)> = Vec::new();
        for e in self.entries.iter().filter(|e| e.api) {
            let first_end = e.pattern[1..].find('/').map(|i| i + 1);
            let mount = match first_end {
                Some(end) => (&e.pattern[..end], true),
                None => (e.pattern.as_str(), false),
            };
            if !mounts.contains(&mount) {
                mounts.push(mount);
            }
        }
        mounts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_is_labelled_by_its_route() {
        let t = table();
        assert_eq!(t.label("/clients/new"), "/clients/new");
        assert_eq!(t.label("/clients/abc"), "/clients/:id");
        assert_eq!(t.label("/clients/abc/rotate"), "/clients/:id/rotate");
        assert_eq!(t.label("/clients"), "/clients");
        assert_eq!(t.label("/oauth/register"), "/oauth/register");
        assert_eq!(
            t.label("/oauth/register/abc"),
            "/oauth/register/{client_id}"
        );
        assert_eq!(t.label("/oauth/token"), "/oauth/token");
        assert_eq!(t.label("/docs/oauth-receiver.html"), "/docs");
        assert_eq!(t.label("/"), "/");
        assert_eq!(t.label("/no/such/path"), "other");
        assert_eq!(t.label("/clients//rotate"), "other");
        assert_eq!(t.label("/docsx"), "other");
    }

    #[test]
    fn allow_lists_get_head_then_post() {
        let allow = |p: &str| table().find(p).and_then(|e| e.allow()).cloned();
        assert_eq!(allow("/login").unwrap(), "GET, HEAD, POST");
        assert_eq!(allow("/logout").unwrap(), "POST");
        assert_eq!(
            allow("/oauth/register/x").unwrap(),
            "GET, HEAD, PUT, DELETE"
        );
        assert_eq!(allow("/oauth/token").unwrap(), "POST");
        assert!(allow("/docs").is_none());
    }

    #[test]
    fn cors_paths_are_api_paths_and_pages_are_same_origin() {
        for (path, cors) in API_CORS {
            let entry = table().find(path).unwrap();
            assert_eq!(entry.pattern(), *path);
            assert_eq!(entry.cors(), Some(*cors));
        }
        let with_cors = table().entries().iter().filter(|e| e.cors().is_some());
        assert_eq!(with_cors.count(), API_CORS.len());
        for page in ["/", "/login", "/oauth/authorize", "/clients/x", "/api/me"] {
            assert_eq!(table().find(page).unwrap().cors(), None, "{page}");
        }
    }

    #[test]
    fn the_api_is_mounted_per_first_segment() {
        let mounts = table().api_mounts();
        for m in [
            ("/oauth", true),
            ("/.well-known", true),
            ("/api", true),
            ("/healthz", false),
            ("/readyz", false),
            ("/metrics", false),
        ] {
            assert!(mounts.contains(&m), "{m:?} in {mounts:?}");
        }
        assert_eq!(mounts.len(), 6, "{mounts:?}");
    }
}
