//! `--profile`: samples keygate with `perf record` during a scenario and
//! sums the samples into named costs, so the report can say what bounds a
//! ratio (the kernel's TCP stack, the signature, the allocator, …).

use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::Context;
use serde::Serialize;

/// A share of keygate's CPU samples.
#[derive(Debug, Clone, Serialize)]
pub struct Cost {
    pub what: String,
    pub percent: f64,
}

/// Starts `perf record` on `pid` for `secs` seconds, writing `out`.
pub fn start(pid: u32, secs: f64, out: &Path) -> anyhow::Result<Child> {
    Command::new("perf")
        .args([
            "record",
            "-e",
            "cpu-clock",
            "-F",
            "999",
            "-p",
            &pid.to_string(),
            "-o",
        ])
        .arg(out)
        .args(["--", "sleep", &format!("{secs:.1}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting perf (install linux-perf, or run without --profile)")
}

/// Reads a `perf record` file into costs, largest first.
pub fn summarize(data: &Path) -> anyhow::Result<Vec<Cost>> {
    let out = Command::new("perf")
        .args([
            "report",
            "--stdio",
            "--no-children",
            "--sort",
            "dso,symbol",
            "-i",
        ])
        .arg(data)
        .stderr(Stdio::null())
        .output()
        .context("running perf report")?;
    let mut costs: Vec<Cost> = vec![];
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some((percent, dso, symbol)) = parse_line(line) else {
            continue;
        };
        let what = category(dso, symbol);
        match costs.iter_mut().find(|c| c.what == what) {
            Some(c) => c.percent += percent,
            None => costs.push(Cost {
                what: what.to_string(),
                percent,
            }),
        }
    }
    costs.sort_by(|a, b| b.percent.total_cmp(&a.percent));
    Ok(costs)
}

/// `  12.34%  keygate  [.] symbol` → (12.34, "keygate", "symbol").
fn parse_line(line: &str) -> Option<(f64, &str, &str)> {
    let line = line.trim_start();
    let (pct, rest) = line.split_once('%')?;
    let percent: f64 = pct.parse().ok()?;
    let rest = rest.trim_start();
    let (dso, rest) = rest.split_once(char::is_whitespace)?;
    let symbol = rest.trim_start().split_once("] ")?.1.trim();
    Some((percent, dso, symbol))
}

/// The named cost a sample belongs to.
fn category(dso: &str, symbol: &str) -> &'static str {
    let has = |s: &str| symbol.contains(s);
    if dso.starts_with("[kernel") {
        "kernel (TCP over loopback, syscalls, scheduling)"
    } else if has("ecp_nistz256")
        || has("p256")
        || has("ecdsa")
        || has("25519")
        || has("fe_")
        || has("fe4_")
        || has("ge_")
        || has("sc_mul")
        || has("sc_reduce")
        || has("bn_")
        || has("mulx4x")
        || has("rsa")
        || has("bigint")
        || has("limbs")
    {
        "signature"
    } else if has("sha256") || has("sha512") || has("ring::") || has("aws_lc") {
        "hashing and other crypto"
    } else if has("malloc")
        || has("free")
        || has("alloc")
        || has("unlink_chunk")
        || has("consolidate")
    {
        "memory allocator"
    } else if has("memmove") || has("memcpy") || has("memset") || has("memcmp") {
        "memory copies"
    } else if has("serde") {
        "JSON (serde)"
    } else if has("tracing") {
        "logging (tracing)"
    } else if has("hyper") || has("httparse") || has("http::") {
        "HTTP/1 (hyper)"
    } else if has("poem") {
        "web framework (poem)"
    } else if has("tokio") || has("mio::") {
        "async runtime (tokio)"
    } else if has("keygate::") {
        "keygate's own code"
    } else {
        "other"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perf_report_lines_are_categorised() {
        let (p, dso, sym) =
            parse_line("    11.63%  [kernel.kallsyms]  [k] _raw_spin_unlock_irqrestore").unwrap();
        assert_eq!(
            (p, dso, sym),
            (11.63, "[kernel.kallsyms]", "_raw_spin_unlock_irqrestore")
        );
        assert_eq!(
            category(dso, sym),
            "kernel (TCP over loopback, syscalls, scheduling)"
        );
        let (_, dso, sym) = parse_line(
            "     4.94%  keygate            [.] ring_core_0_17_14__ecp_nistz256_ord_sqr_mont_adx",
        )
        .unwrap();
        assert_eq!(category(dso, sym), "signature");
        let (_, dso, sym) =
            parse_line("  8.18%  keygate  [.] ring_core_0_17_14__fiat_curve25519_adx_mul").unwrap();
        assert_eq!(category(dso, sym), "signature");
        let (_, dso, sym) = parse_line("     1.25%  libc.so.6          [.] malloc").unwrap();
        assert_eq!(category(dso, sym), "memory allocator");
        assert!(parse_line("# Samples: 12K of event 'cpu-clock'").is_none());
        assert!(parse_line("").is_none());
    }
}
