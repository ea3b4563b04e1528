//! `make bench`: keygate's throughput and latency against the limit of its
//! signing key, measured in one run on this machine.
//!
//! The server runs pinned to one core (`taskset -c 0`), this load generator
//! and redis-server to the other. In the same run, a child process pinned to
//! the server's core measures the bare signature rate of AWS-LC (keygate's
//! signer) and of ring over a signing input of the real token's length, with
//! the key parsed once; the faster of the two is the reference. Every figure
//! that is compared is a ratio of two measurements made minutes apart on the
//! same core, because these machines are shared and noisy.
//!
//! ```text
//! bench run [--quick] [--out target/bench] [--keygate target/release/keygate]
//! bench sign <pkcs8.pem> <signing-input-bytes> <seconds> [--backend aws-lc-rs|ring]
//!                                                           (child: raw sign rate)
//! bench memory-child <kind> <n>                             (child: memory store)
//! ```

#[path = "../../tests/api/cluster_nodes.rs"]
mod cluster_nodes;
mod load;
mod memory;
mod peer;
mod procs;
mod profile;
mod redis_cost;
mod report;
mod scenarios;
mod topology;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use serde::{Deserialize, Serialize};

#[derive(Parser)]
#[command(about = "keygate benchmark: throughput and latency against the raw signing rate")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run every scenario and write the report.
    Run(RunArgs),
    /// (child) The bare signature rate of one key on this thread.
    Sign {
        key: PathBuf,
        input_len: usize,
        secs: f64,
        /// `aws-lc-rs` or `ring`.
        #[arg(long, default_value = "aws-lc-rs")]
        backend: String,
        /// Measure verification with the key's public half instead (the
        /// public key parsed on every call, as jsonwebtoken does).
        #[arg(long)]
        verify: bool,
    },
    /// (child) Memory per entry of the in-memory store.
    MemoryChild { args: Vec<String> },
}

/// Options of `bench run`.
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// Shorter windows and fewer entries (a smoke run, not for the README).
    #[arg(long)]
    pub quick: bool,
    /// Where report.md and report.json go.
    #[arg(long, default_value = "target/bench")]
    pub out: PathBuf,
    /// The keygate binary (release build).
    #[arg(long, default_value = "target/release/keygate")]
    pub keygate: PathBuf,
    /// Sample keygate with `perf record` during an extra client_credentials
    /// run at full concurrency and add where its CPU goes to the report
    /// (on by default when `perf` is installed).
    #[arg(long, default_value_t = crate::procs::which("perf").is_some(), action = clap::ArgAction::Set)]
    pub profile: bool,
    /// Criterion's output directory, read into the report when present.
    #[arg(long, default_value = "target/criterion")]
    pub criterion: PathBuf,
    /// Workers (= keep-alive connections) of the throughput scenarios.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Algorithms to run, comma-separated.
    #[arg(long, default_value = "RS256,ES256,EdDSA", value_delimiter = ',')]
    pub algs: Vec<String>,
    /// Scenarios to run, comma-separated (default: all): jwks,
    /// client_credentials, authorization_code, refresh_token, introspection, me.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Stores to run, comma-separated: memory, redis (one redis-server),
    /// replica (a master with one replica), cluster (3 masters with a
    /// replica each, `redis+cluster://`).
    #[arg(long, default_value = "memory,redis", value_delimiter = ',')]
    pub stores: Vec<String>,
    /// On `replica` and `cluster`: measure authorization_code and
    /// refresh_token again with `store.wait_replicas = 1`, right after the
    /// same scenarios with 0 (`--durable false` leaves that out).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub durable: bool,
    /// Also measure node-oidc-provider (RS256 JWT access tokens,
    /// client_credentials) on keygate's core, next to keygate's RS256
    /// memory client_credentials (`--peers false` leaves it out).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub peers: bool,
    /// The peer's folder (package.json, package-lock.json, server.mjs); the
    /// bench runs `npm ci --omit=dev` there when node_modules is stale.
    #[arg(long, default_value = "bench/peers/oidc-provider")]
    pub peer_dir: PathBuf,
}

/// What the signing child prints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignRate {
    /// The library measured (one of [`BACKENDS`]).
    pub backend: String,
    /// Signatures per second on one thread.
    pub per_sec: f64,
    /// Microseconds per signature.
    pub us: f64,
    /// Signatures made.
    pub n: u64,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Sign {
            key,
            input_len,
            secs,
            backend,
            verify,
        } => {
            let window = Duration::from_secs_f64(secs);
            let rate = raw_sign_rate(&key, input_len, window, &backend, verify)?;
            println!("{}", serde_json::to_string(&rate)?);
            Ok(())
        }
        Cmd::MemoryChild { args } => current_thread()?.block_on(memory::child_main(&args)),
        Cmd::Run(args) => current_thread()?.block_on(scenarios::run(args)),
    }
}

/// The load generator runs on one thread (it is pinned to one core anyway).
fn current_thread() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// The signing libraries measured: keygate signs and verifies with AWS-LC;
/// ring is what it signed with before. The reference of every
/// ratio is the faster of the two on this core in this run.
pub const BACKENDS: [&str; 2] = ["aws-lc-rs", "ring"];

/// The limit: one library's own sign call, key parsed once, over
/// `input_len` bytes, for `window` (and at most 1 M signatures). With
/// `verify`, the library's verification of such a signature instead.
fn raw_sign_rate(
    key: &std::path::Path,
    input_len: usize,
    window: Duration,
    backend: &str,
    verify: bool,
) -> anyhow::Result<SignRate> {
    let pem = std::fs::read(key).with_context(|| format!("reading {}", key.display()))?;
    let der = pem::parse(pem).context("parsing the PEM key")?;
    let der = der.contents();
    let message = vec![b'e'; input_len];
    let mut sign = match (backend, verify) {
        ("ring", false) => ring_signer(der, message)?,
        ("aws-lc-rs", false) => aws_lc_signer(der, message)?,
        (b @ ("ring" | "aws-lc-rs"), true) => verifier(der, message, b)?,
        (other, _) => bail!("unknown signing backend {other} ({BACKENDS:?})"),
    };
    // Warm up (caches, CPU frequency), then measure.
    let warm = Instant::now();
    while warm.elapsed() < Duration::from_millis(300) {
        sign()?;
    }
    let start = Instant::now();
    let mut n = 0u64;
    while n < 1_000_000 && (!n.is_multiple_of(16) || start.elapsed() < window) {
        sign()?;
        n += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(SignRate {
        backend: backend.to_string(),
        per_sec: n as f64 / secs,
        us: secs * 1e6 / n as f64,
        n,
    })
}

type SignFn = Box<dyn FnMut() -> anyhow::Result<()>>;

fn ring_signer(der: &[u8], message: Vec<u8>) -> anyhow::Result<SignFn> {
    use ring::rand::SystemRandom;
    use ring::signature::{
        EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
    };
    let rng = SystemRandom::new();
    Ok(if let Ok(k) = RsaKeyPair::from_pkcs8(der) {
        let mut sig = vec![0u8; k.public().modulus_len()];
        Box::new(move || {
            k.sign(&ring::signature::RSA_PKCS1_SHA256, &rng, &message, &mut sig)
                .map_err(|_| anyhow::anyhow!("RSA sign failed"))?;
            std::hint::black_box(&sig);
            Ok(())
        })
    } else if let Ok(k) = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng) {
        Box::new(move || {
            let sig = k
                .sign(&rng, &message)
                .map_err(|_| anyhow::anyhow!("ECDSA sign failed"))?;
            std::hint::black_box(sig);
            Ok(())
        })
    } else if let Ok(k) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
        Box::new(move || {
            std::hint::black_box(k.sign(&message));
            Ok(())
        })
    } else {
        bail!("not an RSA, P-256 or Ed25519 PKCS#8 key");
    })
}

/// Verifies one AWS-LC signature of `message` with `backend`, parsing the
/// public key on every call like jsonwebtoken (the JWT verifier keygate uses).
fn verifier(der: &[u8], message: Vec<u8>, backend: &str) -> anyhow::Result<SignFn> {
    use aws_lc_rs::signature::{self as lc, KeyPair};
    let rng = aws_lc_rs::rand::SystemRandom::new();
    // (public key bytes, signature, which algorithm: 0 RSA, 1 P-256, 2 Ed25519)
    let (public, sig, which) = if let Ok(k) = lc::RsaKeyPair::from_pkcs8(der) {
        let mut sig = vec![0u8; k.public_modulus_len()];
        k.sign(&lc::RSA_PKCS1_SHA256, &rng, &message, &mut sig)
            .map_err(|_| anyhow::anyhow!("RSA sign failed"))?;
        (k.public_key().as_ref().to_vec(), sig, 0)
    } else if let Ok(k) = lc::EcdsaKeyPair::from_pkcs8(&lc::ECDSA_P256_SHA256_FIXED_SIGNING, der) {
        let sig = k
            .sign(&rng, &message)
            .map_err(|_| anyhow::anyhow!("ECDSA sign failed"))?;
        (k.public_key().as_ref().to_vec(), sig.as_ref().to_vec(), 1)
    } else if let Ok(k) = lc::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
        let sig = k.sign(&message).as_ref().to_vec();
        (k.public_key().as_ref().to_vec(), sig, 2)
    } else {
        bail!("not an RSA, P-256 or Ed25519 PKCS#8 key");
    };
    let failed = || anyhow::anyhow!("verification failed");
    Ok(if backend == "ring" {
        use ring::signature as r;
        let alg: &'static dyn r::VerificationAlgorithm = match which {
            0 => &r::RSA_PKCS1_2048_8192_SHA256,
            1 => &r::ECDSA_P256_SHA256_FIXED,
            _ => &r::ED25519,
        };
        Box::new(move || {
            r::UnparsedPublicKey::new(alg, &public)
                .verify(&message, &sig)
                .map_err(|_| failed())
        })
    } else {
        let alg: &'static dyn lc::VerificationAlgorithm = match which {
            0 => &lc::RSA_PKCS1_2048_8192_SHA256,
            1 => &lc::ECDSA_P256_SHA256_FIXED,
            _ => &lc::ED25519,
        };
        Box::new(move || {
            lc::UnparsedPublicKey::new(alg, &public)
                .verify(&message, &sig)
                .map_err(|_| failed())
        })
    })
}

fn aws_lc_signer(der: &[u8], message: Vec<u8>) -> anyhow::Result<SignFn> {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{
        EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
    };
    let rng = SystemRandom::new();
    Ok(if let Ok(k) = RsaKeyPair::from_pkcs8(der) {
        let mut sig = vec![0u8; k.public_modulus_len()];
        Box::new(move || {
            k.sign(
                &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                &rng,
                &message,
                &mut sig,
            )
            .map_err(|_| anyhow::anyhow!("RSA sign failed"))?;
            std::hint::black_box(&sig);
            Ok(())
        })
    } else if let Ok(k) = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der) {
        Box::new(move || {
            let sig = k
                .sign(&rng, &message)
                .map_err(|_| anyhow::anyhow!("ECDSA sign failed"))?;
            std::hint::black_box(sig);
            Ok(())
        })
    } else if let Ok(k) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
        Box::new(move || {
            std::hint::black_box(k.sign(&message));
            Ok(())
        })
    } else {
        bail!("not an RSA, P-256 or Ed25519 PKCS#8 key");
    })
}
