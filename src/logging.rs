//! Log set-up: `tracing` with key/value fields, as text or JSON (`[DEFAULT] log_format`),
//! level from `RUST_LOG` or `[DEFAULT] debug`.
//!
//! Two rules hold whatever `RUST_LOG` says:
//! - Every control character in a log line (a newline or NUL in a `request_id`, a
//!   method name, a queue name from the wire, ANSI escapes) is written escaped (`\n`,
//!   `\x00`, `\u{1b}`), so one event is always exactly one line and nobody can forge
//!   another. Colours are therefore off.
//! - lapin's "Server returned us a message" warning is silenced: it prints the whole
//!   returned message (a reply body, with the container's environment) as decimal
//!   bytes, at every retry. The publisher logs one line per abandoned reply instead.
//! - lapin's own ERROR lines for a lost connection (`lapin::io_loop` "error doing IO",
//!   `lapin::channels` "Connection error", `lapin::channel` "Channel closed", e.g. a 404
//!   on a fanout exchange the lost node auto-deleted, `lapin::heartbeat` "We haven't received
//!   anything from the server for too long", a node partitioned away) are silenced: a broker node lost is a failover
//!   the AMQP layer handles, and it logs it once, at WARN, with the error and where it
//!   goes next (a failover that cannot be handled still ends in an ERROR of ours).
use crate::config::Settings;
use std::io::{self, Write};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// lapin modules kept quiet (see the module comment).
const QUIET: &[(&str, tracing::level_filters::LevelFilter)] = {
    use tracing::level_filters::LevelFilter;
    &[
        ("lapin::returned_messages", LevelFilter::ERROR),
        ("lapin::io_loop", LevelFilter::OFF),
        ("lapin::channels", LevelFilter::OFF),
        ("lapin::channel", LevelFilter::OFF),
        ("lapin::heartbeat", LevelFilter::OFF),
    ]
};

/// The filter: `RUST_LOG` when it parses, else the default for `debug`; the quiet lapin
/// modules on top. `RUST_LOG` is a comma-separated list of `level` and `target=level`
/// (the most specific target wins), e.g. `info,zun_compute_rs::compute=debug`; span and
/// field filters are not supported (a value using them falls back to the default).
pub fn filter(rust_log: Option<&str>, debug: bool) -> Targets {
    let default = if debug { "debug,lapin=info,hyper=info,sqlx=warn" } else { "info,lapin=warn,sqlx=warn" };
    let parsed = rust_log.and_then(|v| v.parse::<Targets>().ok());
    let base = parsed.unwrap_or_else(|| default.parse().unwrap_or_default());
    QUIET.iter().fold(base, |t, (target, level)| t.with_target(*target, *level))
}

pub fn init(settings: &Settings) {
    let rust_log = std::env::var("RUST_LOG").ok();
    let filter = filter(rust_log.as_deref(), settings.default.debug);
    let layer = tracing_subscriber::fmt::layer().with_writer(Escaping(io::stderr)).with_ansi(false);
    let registry = tracing_subscriber::registry().with(filter);
    let res = if settings.default.log_format.eq_ignore_ascii_case("json") {
        registry.with(layer.json().flatten_event(true)).try_init()
    } else {
        registry.with(layer).try_init()
    };
    if let Err(e) = res {
        eprintln!("logging was already set up: {e}");
    }
}

/// A [`MakeWriter`] whose writers escape control characters (see the module doc).
pub struct Escaping<M>(pub M);

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for Escaping<M> {
    type Writer = EscapingWriter<M::Writer>;
    fn make_writer(&'a self) -> Self::Writer {
        EscapingWriter(self.0.make_writer())
    }
}

/// Writes each buffer (tracing writes one whole event per call) with its control
/// characters escaped, except the newline that ends it.
pub struct EscapingWriter<W>(W);

impl<W: Write> Write for EscapingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write_all(escape_line(buf).as_bytes())?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// `buf` with every control character but a final `\n` (and tabs) escaped.
pub fn escape_line(buf: &[u8]) -> String {
    let (body, nl) = match buf.strip_suffix(b"\n") {
        Some(b) => (b, true),
        None => (buf, false),
    };
    let text = String::from_utf8_lossy(body);
    let mut out = String::with_capacity(text.len() + 1);
    for c in text.chars() {
        match c {
            '\t' => out.push(c),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => {
                if (c as u32) < 0x80 {
                    out.push_str(&format!("\\x{:02x}", c as u32));
                } else {
                    out.push_str(&format!("\\u{{{:x}}}", c as u32));
                }
            }
            c => out.push(c),
        }
    }
    if nl {
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn filter_reads_rust_log_and_keeps_lapin_quiet() {
        let f = filter(Some("warn,zun_compute_rs::compute=debug,lapin=trace"), false);
        assert!(f.would_enable("zun_compute_rs::compute::create", &Level::DEBUG));
        assert!(!f.would_enable("zun_compute_rs::rpc", &Level::INFO));
        assert!(f.would_enable("zun_compute_rs::rpc", &Level::WARN));
        assert!(f.would_enable("lapin::connection", &Level::TRACE));
        // whatever RUST_LOG says
        assert!(!f.would_enable("lapin::returned_messages", &Level::WARN));
        assert!(f.would_enable("lapin::returned_messages", &Level::ERROR));
        assert!(!f.would_enable("lapin::io_loop", &Level::ERROR));
        assert!(!f.would_enable("lapin::heartbeat", &Level::ERROR));
    }

    #[test]
    fn filter_defaults_when_rust_log_is_absent_or_bad() {
        for v in [None, Some("zun_compute_rs=loud"), Some("x[span{f=1}]=debug")] {
            let f = filter(v, false);
            assert!(f.would_enable("zun_compute_rs::rpc", &Level::INFO), "{v:?}");
            assert!(!f.would_enable("zun_compute_rs::rpc", &Level::DEBUG), "{v:?}");
            assert!(!f.would_enable("sqlx::query", &Level::INFO), "{v:?}");
            assert!(!f.would_enable("lapin::channels", &Level::ERROR), "{v:?}");
        }
        let d = filter(None, true);
        assert!(d.would_enable("zun_compute_rs::rpc", &Level::DEBUG));
        assert!(!d.would_enable("hyper::client", &Level::DEBUG));
    }

    #[test]
    fn one_event_stays_one_line() {
        assert_eq!(escape_line(b"a=1 b=x\nFAKE line\n"), "a=1 b=x\\nFAKE line\n");
        assert_eq!(escape_line(b"nul\0 esc\x1b[31m cr\r tab\t\n"), "nul\\x00 esc\\x1b[31m cr\\r tab\t\n");
        assert_eq!(escape_line("nel\u{85} ls\u{2028}".as_bytes()), "nel\\u{85} ls\\u{2028}");
        assert_eq!(escape_line("héllo ✓\n".as_bytes()), "héllo ✓\n");
    }
}
