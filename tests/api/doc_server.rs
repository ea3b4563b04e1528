//! A local **https** server for client ID metadata documents, shared by
//! tests/api/client_documents.rs and tests/api/mcp_clients.rs: a test CA and
//! a certificate for 127.0.0.1 and localhost signed by it are made at start
//! ([`crate::test_ca`]; keygate trusts the CA through
//! `registration.metadata_documents_ca_file` = [`DocServer::ca_file`]); the
//! server is hyper behind tokio-rustls on 127.0.0.1, answers each path with
//! the [`Reply`] set for it (404 otherwise) and counts the requests per path.
//! Runs on the current tokio runtime; stopped when dropped.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio_rustls::rustls;

/// What the server answers on one path.
#[derive(Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    /// Wait this long before answering (longer than keygate's timeout).
    pub delay: Option<Duration>,
}

impl Reply {
    /// A 200 JSON document with `Cache-Control: cache`.
    pub fn doc(doc: &Value, cache: &str) -> Self {
        Self {
            status: 200,
            headers: vec![
                ("content-type", "application/json".into()),
                ("cache-control", cache.into()),
            ],
            body: doc.to_string(),
            delay: None,
        }
    }
}

type Routes = Arc<Mutex<HashMap<String, Reply>>>;

/// An https server on 127.0.0.1 with a certificate from a test CA.
pub struct DocServer {
    pub addr: SocketAddr,
    routes: Routes,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    /// The test CA's certificate (PEM), for `metadata_documents_ca_file`.
    pub ca_file: tempfile::NamedTempFile,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DocServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl DocServer {
    pub async fn start() -> Self {
        // The test CA, and a leaf for 127.0.0.1 and localhost signed by it.
        let ca = crate::test_ca::TestCa::new();
        let ca_file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(ca_file.path(), &ca.ca_pem).unwrap();

        let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![ca.cert_der.into()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(ca.key_der.into()),
        )
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let routes: Routes = Arc::default();
        let hits: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let task = tokio::spawn({
            let (routes, hits) = (routes.clone(), hits.clone());
            async move {
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        continue;
                    };
                    let (acceptor, routes, hits) = (acceptor.clone(), routes.clone(), hits.clone());
                    tokio::spawn(async move {
                        let Ok(tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let service = hyper::service::service_fn(move |req| {
                            serve(req, routes.clone(), hits.clone())
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(tls), service)
                            .await;
                    });
                }
            }
        });
        Self {
            addr,
            routes,
            hits,
            ca_file,
            task,
        }
    }

    /// The https URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    pub fn set(&self, path: &str, reply: Reply) {
        self.routes.lock().unwrap().insert(path.into(), reply);
    }

    /// How many requests `path` got.
    pub fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

async fn serve(
    req: hyper::Request<hyper::body::Incoming>,
    routes: Routes,
    hits: Arc<Mutex<HashMap<String, usize>>>,
) -> Result<hyper::Response<String>, std::convert::Infallible> {
    let path = req.uri().path().to_string();
    *hits.lock().unwrap().entry(path.clone()).or_default() += 1;
    let reply = routes.lock().unwrap().get(&path).cloned();
    let Some(reply) = reply else {
        return Ok(hyper::Response::builder()
            .status(404)
            .body(String::new())
            .unwrap());
    };
    if let Some(d) = reply.delay {
        tokio::time::sleep(d).await;
    }
    let mut resp = hyper::Response::builder().status(reply.status);
    for (k, v) in &reply.headers {
        resp = resp.header(*k, v);
    }
    Ok(resp.body(reply.body).unwrap())
}
