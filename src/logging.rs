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
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// lapin modules kept quiet (see the module comment).
const QUIET: &[&str] =
    &["lapin::returned_messages=error", "lapin::io_loop=off", "lapin::channels=off", "lapin::channel=off", "lapin::heartbeat=off"];

pub fn init(settings: &Settings) {
    let default = if settings.default.debug { "debug,lapin=info,hyper=info,sqlx=warn" } else { "info,lapin=warn,sqlx=warn" };
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    for d in QUIET {
        if let Ok(d) = d.parse() {
            filter = filter.add_directive(d);
        }
    }
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(Escaping(io::stderr)).with_ansi(false);
    let res = if settings.default.log_format.eq_ignore_ascii_case("json") {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
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

    #[test]
    fn one_event_stays_one_line() {
        assert_eq!(escape_line(b"a=1 b=x\nFAKE line\n"), "a=1 b=x\\nFAKE line\n");
        assert_eq!(escape_line(b"nul\0 esc\x1b[31m cr\r tab\t\n"), "nul\\x00 esc\\x1b[31m cr\\r tab\t\n");
        assert_eq!(escape_line("nel\u{85} ls\u{2028}".as_bytes()), "nel\\u{85} ls\\u{2028}");
        assert_eq!(escape_line("héllo ✓\n".as_bytes()), "héllo ✓\n");
    }
}
