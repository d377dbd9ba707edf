//! `[database] connection` URLs in oslo.db / SQLAlchemy form, turned into sqlx options.
//!
//! Accepted: `mysql+pymysql://user:pass@host[:port]/db?charset=utf8` (any `+driver`),
//! `mysql://...`, `mariadb://...`, and `sqlite://<path>` (`sqlite:///abs/path`, `sqlite://rel/path`).
//! Query parameters: `charset` (utf8 → MySQL `utf8`, i.e. utf8mb3, as zun asks),
//! `unix_socket`, and TLS as PyMySQL reads it: `ssl_ca` (verify the server against this CA
//! and its name; `ssl_check_hostname=false` skips the name, `ssl_verify_cert=false` the
//! CA), `ssl_cert` + `ssl_key` (client certificate), `ssl=true` (encrypt without a CA), or
//! MySQL's `ssl_mode` (`DISABLED` … `VERIFY_IDENTITY`). Files named there must be readable,
//! or the URL is refused. Without any of them the connection is plaintext, as zun's.
//! The others (e.g. `plugin`, `read_default_file`) are ignored with a debug log.
//! The password is never logged nor put in an error message.
use super::StoreError;
use percent_encoding::percent_decode_str;
use sqlx::mysql::{MySqlConnectOptions, MySqlSslMode};
use std::path::PathBuf;

/// A parsed connection target. (No `Debug` derive: the options hold the password.)
pub enum DbTarget {
    MySql {
        options: Box<MySqlConnectOptions>,
        /// `user@host:port/db`, safe to log.
        display: String,
        /// The URL asks for TLS: a connection that cannot set it up is refused, never
        /// retried in plaintext.
        tls: bool,
    },
    Sqlite(PathBuf),
}

impl std::fmt::Debug for DbTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DbTarget::MySql { display, tls, .. } => {
                write!(f, "MySql({display}{})", if *tls { ", TLS" } else { "" })
            }
            DbTarget::Sqlite(p) => write!(f, "Sqlite({})", p.display()),
        }
    }
}

fn bad(reason: impl Into<String>) -> StoreError {
    StoreError::BadUrl(reason.into())
}

fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// Parses an oslo.db connection URL.
pub fn parse(url_str: &str) -> Result<DbTarget, StoreError> {
    let (scheme, rest) = url_str.split_once("://").ok_or_else(|| bad("missing '<scheme>://'"))?;
    let base = scheme.split('+').next().unwrap_or(scheme).to_ascii_lowercase();
    match base.as_str() {
        "sqlite" => {
            // `sqlite://<path>`, the path taken verbatim as sqlx does (`sqlite:///var/x.db` is
            // absolute, `sqlite://x.db` relative; SQLAlchemy's `sqlite:////abs` still works).
            // Any query string is dropped.
            let path = rest.split('?').next().unwrap_or("");
            if path.is_empty() {
                return Err(bad("sqlite URL without a file path (in-memory databases are not supported)"));
            }
            Ok(DbTarget::Sqlite(PathBuf::from(decode(path))))
        }
        "mysql" | "mariadb" => {
            // Re-parse with a scheme the url crate treats as authority-based.
            let u = url::Url::parse(&format!("mysql://{rest}")).map_err(|e| bad(format!("invalid MySQL URL: {e}")))?;
            let mut o = MySqlConnectOptions::new()
                // Like oslo.db: sql_mode is set after connect (TRADITIONAL); keep sqlx from
                // appending its own modes.
                .pipes_as_concat(false)
                .no_engine_substitution(false)
                .timezone(Some("+00:00".to_string()));
            let host = u.host_str().unwrap_or("localhost").to_string();
            o = o.host(&host);
            let port = u.port().unwrap_or(3306);
            o = o.port(port);
            let user = decode(u.username());
            if !user.is_empty() {
                o = o.username(&user);
            }
            if let Some(p) = u.password() {
                o = o.password(&decode(p));
            }
            let db = decode(u.path().trim_start_matches('/'));
            if db.is_empty() {
                return Err(bad("MySQL URL without a database name"));
            }
            o = o.database(&db);
            let mut charset = "utf8".to_string();
            let mut tls = TlsParams::default();
            for (k, v) in u.query_pairs() {
                match k.as_ref() {
                    "charset" => charset = v.into_owned(),
                    "unix_socket" => o = o.socket(v.as_ref()),
                    "ssl_ca" => tls.ca = Some(readable("ssl_ca", &v)?),
                    "ssl_cert" => tls.cert = Some(readable("ssl_cert", &v)?),
                    "ssl_key" => tls.key = Some(readable("ssl_key", &v)?),
                    "ssl" => tls.ssl = truthy(&v),
                    "ssl_verify_cert" => tls.verify_cert = Some(truthy(&v)),
                    "ssl_check_hostname" => tls.check_hostname = Some(truthy(&v)),
                    "ssl_mode" => tls.mode = Some(ssl_mode(&v)?),
                    other => tracing::debug!(param = other, "ignoring database URL parameter"),
                }
            }
            let (mode, asked) = tls.mode()?;
            o = o.ssl_mode(mode);
            if let Some(ca) = &tls.ca {
                o = o.ssl_ca(ca);
            }
            if let (Some(cert), Some(key)) = (&tls.cert, &tls.key) {
                o = o.ssl_client_cert(cert).ssl_client_key(key);
            }
            // zun asks for `utf8` (utf8mb3); SET NAMES utf8 COLLATE utf8_general_ci.
            let (cs, coll) = match charset.to_ascii_lowercase().as_str() {
                "utf8" | "utf8mb3" => ("utf8", "utf8_general_ci"),
                "utf8mb4" => ("utf8mb4", "utf8mb4_general_ci"),
                other => return Err(bad(format!("unsupported charset {other}"))),
            };
            o = o.charset(cs).collation(coll);
            let display = format!("{}@{}:{}/{}", if user.is_empty() { "?" } else { &user }, host, port, db);
            Ok(DbTarget::MySql { options: Box::new(o), display, tls: asked })
        }
        other => Err(bad(format!("unsupported database scheme {other:?} (expected mysql, mariadb or sqlite)"))),
    }
}

/// The TLS parameters of a MySQL URL.
#[derive(Default)]
struct TlsParams {
    ca: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    ssl: bool,
    verify_cert: Option<bool>,
    check_hostname: Option<bool>,
    mode: Option<MySqlSslMode>,
}

impl TlsParams {
    /// The sqlx mode and whether TLS was asked for at all.
    fn mode(&self) -> Result<(MySqlSslMode, bool), StoreError> {
        if self.cert.is_some() != self.key.is_some() {
            return Err(bad("ssl_cert and ssl_key go together"));
        }
        let derived = if self.ca.is_some() {
            match (self.verify_cert, self.check_hostname) {
                (Some(false), _) => MySqlSslMode::Required,
                (_, Some(false)) => MySqlSslMode::VerifyCa,
                _ => MySqlSslMode::VerifyIdentity,
            }
        } else if self.ssl || self.cert.is_some() {
            MySqlSslMode::Required
        } else {
            MySqlSslMode::Disabled
        };
        let mode = self.mode.unwrap_or(derived);
        if matches!(mode, MySqlSslMode::VerifyCa | MySqlSslMode::VerifyIdentity) && self.ca.is_none() {
            return Err(bad("ssl_mode VERIFY_CA and VERIFY_IDENTITY need ssl_ca"));
        }
        let asked = !matches!(mode, MySqlSslMode::Disabled | MySqlSslMode::Preferred);
        Ok((mode, asked))
    }
}

fn truthy(v: &str) -> bool {
    matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on")
}

fn ssl_mode(v: &str) -> Result<MySqlSslMode, StoreError> {
    Ok(match v.to_ascii_uppercase().as_str() {
        "DISABLED" => MySqlSslMode::Disabled,
        "PREFERRED" => MySqlSslMode::Preferred,
        "REQUIRED" => MySqlSslMode::Required,
        "VERIFY_CA" => MySqlSslMode::VerifyCa,
        "VERIFY_IDENTITY" => MySqlSslMode::VerifyIdentity,
        _ => return Err(bad("ssl_mode must be DISABLED, PREFERRED, REQUIRED, VERIFY_CA or VERIFY_IDENTITY")),
    })
}

/// A file named by a TLS parameter, which must be readable now (not at the first connect).
fn readable(param: &str, path: &str) -> Result<PathBuf, StoreError> {
    std::fs::File::open(path).map_err(|e| bad(format!("{param} file {path:?} cannot be read: {e}")))?;
    Ok(PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oslo_pymysql_url() {
        let t = parse("mysql+pymysql://zun:s3cr%40t@db.example:3307/zun?charset=utf8").unwrap();
        match t {
            DbTarget::MySql { options, display, tls } => {
                assert!(!tls);
                assert_eq!(options.get_host(), "db.example");
                assert_eq!(options.get_port(), 3307);
                assert_eq!(options.get_username(), "zun");
                assert_eq!(options.get_database(), Some("zun"));
                assert_eq!(options.get_charset(), "utf8");
                assert_eq!(display, "zun@db.example:3307/zun");
                assert!(!format!("{display}").contains("s3cr"));
            }
            _ => panic!("expected MySQL"),
        }
    }

    #[test]
    fn other_forms() {
        assert!(matches!(parse("mysql://root@127.0.0.1/zun").unwrap(), DbTarget::MySql { .. }));
        assert!(matches!(parse("mariadb://root@127.0.0.1/zun").unwrap(), DbTarget::MySql { .. }));
        match parse("sqlite:///var/lib/zun/zun.db").unwrap() {
            DbTarget::Sqlite(p) => assert_eq!(p, PathBuf::from("/var/lib/zun/zun.db")),
            _ => panic!(),
        }
        match parse("sqlite://zun.db").unwrap() {
            DbTarget::Sqlite(p) => assert_eq!(p, PathBuf::from("zun.db")),
            _ => panic!(),
        }
        assert!(parse("postgresql://x/y").is_err());
        assert!(parse("mysql://root@127.0.0.1/").is_err());
        let e = parse("mysql+pymysql://u:hunter2@h/db?charset=latin9").unwrap_err();
        assert!(!e.to_string().contains("hunter2"));
    }

    #[test]
    fn tls_parameters() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\n").unwrap();
        let ca = ca.display().to_string();
        let asked = |url: &str| match parse(url).unwrap() {
            DbTarget::MySql { tls, .. } => tls,
            _ => panic!(),
        };
        assert!(!asked("mysql://u@h/db"));
        assert!(asked(&format!("mysql+pymysql://u@h/db?ssl_ca={ca}")));
        assert!(asked("mysql://u@h/db?ssl=true"));
        assert!(asked("mysql://u@h/db?ssl_mode=REQUIRED"));
        assert!(!asked("mysql://u@h/db?ssl_mode=PREFERRED"));
        let e = parse("mysql://u:pw@h/db?ssl_ca=/nonexistent/ca.pem").unwrap_err().to_string();
        assert!(e.contains("ssl_ca") && e.contains("/nonexistent/ca.pem") && !e.contains("pw"), "{e}");
        assert!(parse("mysql://u@h/db?ssl_mode=VERIFY_CA").is_err());
        assert!(parse(&format!("mysql://u@h/db?ssl_cert={ca}")).is_err());
        assert!(parse("mysql://u@h/db?ssl_mode=sometimes").is_err());
    }
}
