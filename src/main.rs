//! The `keygate` binary: parses the command line, starts the async runtime
//! and hands over to [`cli::run`]. Any error ends the process with exit code 2
//! and one `keygate: …` line on standard error (`check-config` exits 1 when
//! it found problems).

mod cli;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc rather than the system allocator: a token request makes a few
/// dozen small allocations, and mimalloc's thread-local free lists serve them
/// in fewer instructions than glibc malloc (README "Request path").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("keygate: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("keygate: {e:#}");
            ExitCode::from(2)
        }
    }
}
