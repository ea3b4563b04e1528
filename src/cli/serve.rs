//! `keygate serve`: logging, the application, and a graceful stop on SIGTERM / Ctrl-C
//! (drain, close, grace: `keygate::lifecycle`).

use std::path::Path;

use anyhow::Context;
use keygate::startup::Application;

/// Builds the application from the settings and serves until a shutdown signal.
pub async fn run(config: Option<&Path>) -> anyhow::Result<()> {
    let settings = super::load_settings(config)?;
    keygate::telemetry::init(&settings.validate()?.log);
    let app = Application::build(settings.clone()).await?;
    app.log_banner(&settings, config);
    app.run(keygate::lifecycle::shutdown_signals())
        .await
        .context("server error")
}
