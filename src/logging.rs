//! Log set-up: `tracing` with key/value fields, as text or JSON (`[DEFAULT] log_format`),
//! level from `RUST_LOG` or `[DEFAULT] debug`.
use crate::config::Settings;
use tracing_subscriber::EnvFilter;

pub fn init(settings: &Settings) {
    let default = if settings.default.debug { "debug,lapin=info,hyper=info,sqlx=warn" } else { "info,lapin=warn,sqlx=warn" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let res = if settings.default.log_format.eq_ignore_ascii_case("json") {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
    if let Err(e) = res {
        eprintln!("logging was already set up: {e}");
    }
}
