//! oslo `transport_url` parsing: `rabbit://user:pass@host1:5672,user:pass@host2:5672/vhost?ssl=1`
//! becomes one AMQP URI per host, tried in turn on connect and failover.
use percent_encoding::{percent_decode_str, utf8_percent_encode, NON_ALPHANUMERIC};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum UrlError {
    #[error("transport_url must start with rabbit://, amqp:// or amqps:// (got scheme {0:?})")]
    Scheme(String),
    #[error("transport_url has no host")]
    NoHost,
    #[error("transport_url host entry {0:?} has a bad port")]
    Port(String),
}

/// The AMQP frame size the publisher's connection proposes (the broker may lower it).
/// 32 KiB holds an ordinary zun message in one frame (a `container_create` is ~3.5 KB);
/// larger bodies are split into more body frames.
pub const FRAME_MAX: u32 = 32 * 1024;

/// The frame size the listener's connection proposes: RabbitMQ's default `frame_max`
/// (and py-amqp's own proposal). The broker's tune answer wins when it is lower (lapin
/// takes the minimum), so the listener still takes any header table its broker accepts.
/// Proposed up front only so that lapin allocates its two 32-frame buffers at their final
/// size: left at 0, lapin starts at 32 × 4 KiB and then grows each buffer with
/// `Vec::resize`, which writes zeros over all 4 MiB and makes every page resident; a
/// `vec![0; 4 MiB]` from the start is a fresh zeroed mapping whose pages become resident
/// only as traffic cycles through them.
pub const LISTEN_FRAME_MAX: u32 = 128 * 1024;

/// One broker to connect to.
#[derive(Clone, PartialEq)]
pub struct BrokerAddr {
    pub host: String,
    pub port: u16,
    pub user: String,
    password: String,
    pub vhost: String,
    pub tls: bool,
}

impl std::fmt::Debug for BrokerAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.display())
    }
}

impl BrokerAddr {
    /// The AMQP URI for lapin (with the password: never log it; use [`Self::display`]).
    /// The lapin URI; with `frame_max`, it proposes that frame size. lapin sizes each
    /// connection's send and receive buffers at 32 frames, so RabbitMQ's 128 KiB default
    /// costs up to 2 × 4 MiB per connection. Only the publisher's connection asks for less
    /// ([`FRAME_MAX`]): what it receives (confirms, returns of its own messages) is small,
    /// while the listener must take any header table the broker accepts, and a content
    /// header cannot be split across frames: it proposes [`LISTEN_FRAME_MAX`].
    pub fn uri(&self, heartbeat_secs: u16, frame_max: Option<u32>) -> String {
        let scheme = if self.tls { "amqps" } else { "amqp" };
        let enc = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
        format!(
            "{scheme}://{}:{}@{}:{}/{}?heartbeat={heartbeat_secs}{}",
            enc(&self.user),
            enc(&self.password),
            self.host,
            self.port,
            enc(&self.vhost),
            frame_max.map(|f| format!("&frame_max={f}")).unwrap_or_default()
        )
    }

    /// For logs: no password.
    pub fn display(&self) -> String {
        let scheme = if self.tls { "amqps" } else { "amqp" };
        format!("{scheme}://{}@{}:{}/{}", self.user, self.host, self.port, self.vhost)
    }
}

/// Parses oslo's transport URL. `ssl_default` is `[oslo_messaging_rabbit] ssl`.
pub fn parse_transport_url(url: &str, ssl_default: bool) -> Result<Vec<BrokerAddr>, UrlError> {
    let (scheme, rest) = url.split_once("://").ok_or_else(|| UrlError::Scheme(url.chars().take(16).collect()))?;
    let mut tls = match scheme {
        "rabbit" | "amqp" | "kombu+rabbit" => ssl_default,
        "amqps" | "rabbits" => true,
        other => return Err(UrlError::Scheme(other.into())),
    };
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    if let Some(q) = query {
        for pair in q.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if k == "ssl" {
                tls = matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on");
            }
        }
    }
    let (hosts, vhost) = match rest.split_once('/') {
        Some((h, v)) => (h, v),
        None => (rest, ""),
    };
    // oslo: an empty virtual host path means the default vhost "/".
    let vhost = if vhost.is_empty() { "/".to_string() } else { decode(vhost) };
    let mut out = Vec::new();
    for entry in hosts.split(',').filter(|e| !e.is_empty()) {
        let (cred, hostport) = match entry.rfind('@') {
            Some(at) => (Some(&entry[..at]), &entry[at + 1..]),
            None => (None, entry),
        };
        let (user, password) = match cred {
            Some(c) => match c.split_once(':') {
                Some((u, p)) => (decode(u), decode(p)),
                None => (decode(c), String::new()),
            },
            None => ("guest".to_string(), "guest".to_string()),
        };
        let (host, port) = split_host_port(hostport).ok_or_else(|| UrlError::Port(hostport.to_string()))?;
        if host.is_empty() {
            return Err(UrlError::NoHost);
        }
        let port = port.unwrap_or(if tls { 5671 } else { 5672 });
        out.push(BrokerAddr { host, port, user, password, vhost: vhost.clone(), tls });
    }
    if out.is_empty() {
        return Err(UrlError::NoHost);
    }
    Ok(out)
}

fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`.
fn split_host_port(s: &str) -> Option<(String, Option<u16>)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        return Some((format!("[{h}]"), port));
    }
    match s.rsplit_once(':') {
        Some((h, p)) => Some((h.to_string(), Some(p.parse().ok()?))),
        None => Some((s.to_string(), None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_multi_host_urls() {
        let a = parse_transport_url("rabbit://u:p%40ss@h1:5672,v:q@h2:5673/zun%2Fvh", false).unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!((a[0].host.as_str(), a[0].port, a[0].user.as_str()), ("h1", 5672, "u"));
        assert_eq!(a[0].password, "p@ss");
        assert_eq!(a[1].port, 5673);
        assert_eq!(a[1].vhost, "zun/vh");
        assert!(!a[0].display().contains("p@ss"));
        assert!(a[0].uri(60, None).starts_with("amqp://u:p%40ss@h1:5672/zun%2Fvh"));
        // lapin reads both from the query: the heartbeat, and the frame size it proposes.
        assert!(a[0].uri(60, None).ends_with("?heartbeat=60"));
        assert!(a[0].uri(60, Some(FRAME_MAX)).ends_with("?heartbeat=60&frame_max=32768"));
        let parsed: lapin::uri::AMQPUri = a[0].uri(60, Some(FRAME_MAX)).parse().unwrap();
        assert_eq!(parsed.query.frame_max, Some(FRAME_MAX));
        let parsed: lapin::uri::AMQPUri = a[0].uri(60, Some(LISTEN_FRAME_MAX)).parse().unwrap();
        assert_eq!(parsed.query.frame_max, Some(131_072));
    }

    #[test]
    fn default_vhost_and_tls() {
        let a = parse_transport_url("rabbit://guest:guest@127.0.0.1:5672/", false).unwrap();
        assert_eq!(a[0].vhost, "/");
        assert!(a[0].uri(60, None).contains("/%2F"));
        let a = parse_transport_url("rabbit://g:g@h/?ssl=1", false).unwrap();
        assert!(a[0].tls);
        assert_eq!(a[0].port, 5671);
        assert!(parse_transport_url("amqps://g:g@h:1/v", false).unwrap()[0].tls);
        assert_eq!(parse_transport_url("kafka://h", false), Err(UrlError::Scheme("kafka".into())));
        assert_eq!(parse_transport_url("rabbit:///v", false), Err(UrlError::NoHost));
    }
}
