//! `keygate openapi`: prints the OpenAPI document generated from the handlers.

use clap::ValueEnum;

/// Output format of the document.
#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

/// Prints the document.
pub fn run(format: Format) -> anyhow::Result<()> {
    let api = keygate::http::api_service();
    let doc = match format {
        Format::Json => api.spec(),
        Format::Yaml => api.spec_yaml(),
    };
    println!("{}", doc.trim_end());
    Ok(())
}
