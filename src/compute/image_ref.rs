//! Image references and pull policy, as zun parses them (pure).
//!
//! - [`parse_reference`]: Docker reference grammar as in `zun/common/docker_image`
//!   (`name[:tag][@digest]`, name components lower-case, optional registry host with port).
//! - [`parse_image_name`]: zun's `utils.parse_image_name`: `(repo, tag)` with tag `latest`
//!   by default (the digest is dropped, as zun does), `''` for glance, and a registry prefix
//!   when the name has no registry domain (a first component with `.` or `:`, or
//!   `localhost`). No `docker.io/library` normalization.
//! - [`pull_policy`] / [`pull_policy_queens`] and [`should_pull`]: `get_image_pull_policy`
//!   and `should_pull_image`.

/// zun's `NAME_TOTAL_LENGTH_MAX`.
pub const NAME_TOTAL_LENGTH_MAX: usize = 255;

/// zun's reference errors (`InvalidReference` subclasses and the digest errors).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageRefError {
    #[error("repository name must have at least one component")]
    NameEmpty,
    #[error("invalid reference format")]
    InvalidFormat,
    #[error("repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters")]
    NameTooLong,
    #[error("invalid digest")]
    InvalidDigest,
    #[error("unsupported digest algorithm")]
    DigestUnsupported,
    #[error("invalid checksum digest length")]
    DigestInvalidLength,
}

/// A parsed `name[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageReference {
    pub name: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl ImageReference {
    /// `(domain, remainder)`: the registry domain when the first path component is a
    /// hostname containing `.` or `:` or equal to `localhost` (zun's `split_hostname`).
    pub fn split_hostname(&self) -> (Option<&str>, &str) {
        if let Some((first, rest)) = self.name.split_once('/') {
            if is_hostname(first) && (first.contains('.') || first.contains(':') || first == "localhost") {
                return (Some(first), rest);
            }
        }
        (None, &self.name)
    }
}

/// Parses a Docker image reference with zun's grammar.
pub fn parse_reference(s: &str) -> Result<ImageReference, ImageRefError> {
    if s.is_empty() {
        return Err(ImageRefError::NameEmpty);
    }
    let (rest, digest) = match s.split_once('@') {
        Some((r, d)) => {
            if !is_digest_format(d) {
                return Err(ImageRefError::InvalidFormat);
            }
            (r, Some(d))
        }
        None => (s, None),
    };
    // The tag follows the last ':' when no '/' comes after it (a registry port is followed by '/').
    let (name, tag) = match rest.rfind(':') {
        Some(i) if !rest[i + 1..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
        _ => (rest, None),
    };
    if !is_name(name) || tag.is_some_and(|t| !is_tag(t)) {
        return Err(ImageRefError::InvalidFormat);
    }
    if name.len() > NAME_TOTAL_LENGTH_MAX {
        return Err(ImageRefError::NameTooLong);
    }
    if let Some(d) = digest {
        validate_digest(d)?;
    }
    Ok(ImageReference {
        name: name.to_string(),
        tag: tag.filter(|t| !t.is_empty()).map(str::to_string),
        digest: digest.map(str::to_string),
    })
}

/// zun's `parse_image_name(image, driver, registry)`: `(repo, tag)`.
///
/// `driver` is the image driver (`docker` or `glance`; the caller applies
/// `[DEFAULT] default_image_driver` when the container has none). `registry_domain` is the
/// domain of the container's Registry row; `default_registry` is `[docker] default_registry`.
pub fn parse_image_name(
    image: &str,
    driver: &str,
    registry_domain: Option<&str>,
    default_registry: Option<&str>,
) -> Result<(String, String), ImageRefError> {
    let r = parse_reference(image)?;
    if driver == "glance" {
        return Ok((r.name, String::new()));
    }
    let tag = r.tag.clone().unwrap_or_else(|| "latest".to_string());
    let mut repo = r.name.clone();
    if r.split_hostname().0.is_none() {
        if let Some(d) = registry_domain {
            repo = format!("{d}/{repo}");
        } else if let Some(d) = default_registry.filter(|d| !d.is_empty()) {
            repo = format!("{d}/{repo}");
        }
    }
    Ok((repo, tag))
}

/// An image pull policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
    /// A value zun does not know; `should_pull_image` answers no for it.
    Other(String),
}

impl PullPolicy {
    pub fn parse(s: &str) -> PullPolicy {
        match s {
            "always" => PullPolicy::Always,
            "ifnotpresent" => PullPolicy::IfNotPresent,
            "never" => PullPolicy::Never,
            other => PullPolicy::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            PullPolicy::Always => "always",
            PullPolicy::IfNotPresent => "ifnotpresent",
            PullPolicy::Never => "never",
            PullPolicy::Other(s) => s,
        }
    }
}

/// Master's `get_image_pull_policy`: the container's policy, or `always` when empty.
pub fn pull_policy(policy: Option<&str>, _tag: &str) -> PullPolicy {
    match policy {
        Some(p) if !p.is_empty() => PullPolicy::parse(p),
        _ => PullPolicy::Always,
    }
}

/// Queens' `get_image_pull_policy`: when empty, `always` for tag `latest`, else `ifnotpresent`.
pub fn pull_policy_queens(policy: Option<&str>, tag: &str) -> PullPolicy {
    match policy {
        Some(p) if !p.is_empty() => PullPolicy::parse(p),
        _ if tag == "latest" => PullPolicy::Always,
        _ => PullPolicy::IfNotPresent,
    }
}

/// zun's `should_pull_image`.
pub fn should_pull(policy: &PullPolicy, image_present: bool) -> bool {
    match policy {
        PullPolicy::Never | PullPolicy::Other(_) => false,
        PullPolicy::Always => true,
        PullPolicy::IfNotPresent => !image_present,
    }
}

// ---------------------------------------------------------------- grammar pieces

/// `[a-z0-9]+` runs joined by `.`, `_`, `__` or any number of `-`.
fn is_name_component(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &s[start..i];
        let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|c| c == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// Hostname components (`[a-zA-Z0-9]` or `[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]`) joined by
/// dots, with an optional `:port`.
fn is_hostname(s: &str) -> bool {
    let (host, port) = match s.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|c| c.is_ascii_digit()) {
            return false;
        }
    }
    !host.is_empty()
        && host.split('.').all(|c| {
            let b = c.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|&x| x.is_ascii_alphanumeric() || x == b'-')
        })
}

/// `[hostname/]component(/component)*`.
fn is_name(s: &str) -> bool {
    let comps: Vec<&str> = s.split('/').collect();
    if comps.iter().all(|c| is_name_component(c)) {
        return true;
    }
    comps.len() >= 2 && is_hostname(comps[0]) && comps[1..].iter().all(|c| is_name_component(c))
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// `[\w][\w.-]{0,127}`.
fn is_tag(s: &str) -> bool {
    let mut it = s.chars();
    match it.next() {
        Some(c) if is_word_char(c) => {}
        _ => return false,
    }
    s.chars().count() <= 128 && it.all(|c| is_word_char(c) || c == '.' || c == '-')
}

/// `[a-zA-Z0-9-_+.]+:[a-fA-F0-9]+`.
fn is_digest_format(s: &str) -> bool {
    match s.split_once(':') {
        Some((alg, hex)) => {
            !alg.is_empty()
                && alg.bytes().all(|c| c.is_ascii_alphanumeric() || b"-_+.".contains(&c))
                && !hex.is_empty()
                && hex.bytes().all(|c| c.is_ascii_hexdigit())
        }
        None => false,
    }
}

fn validate_digest(d: &str) -> Result<(), ImageRefError> {
    if !is_digest_format(d) {
        return Err(ImageRefError::InvalidDigest);
    }
    let (alg, hex) = d.split_once(':').ok_or(ImageRefError::InvalidDigest)?;
    let size = match alg {
        "sha256" => 32,
        "sha384" => 48,
        "sha512" => 64,
        _ => return Err(ImageRefError::DigestUnsupported),
    };
    if hex.len() != size * 2 {
        return Err(ImageRefError::DigestInvalidLength);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "sha256:9f8c5a424131b6580b3f3fe88655dae8b5535a56e17fce01047c221937386ddd";

    fn p(image: &str) -> (String, String) {
        parse_image_name(image, "docker", None, None).unwrap()
    }

    #[test]
    fn tag_defaults_to_latest() {
        assert_eq!(p("busybox"), ("busybox".into(), "latest".into()));
        assert_eq!(p("busybox:1.36"), ("busybox".into(), "1.36".into()));
        assert_eq!(p("library/busybox"), ("library/busybox".into(), "latest".into()));
        assert_eq!(p(&format!("busybox@{SHA}")), ("busybox".into(), "latest".into()));
        assert_eq!(p(&format!("busybox:v1@{SHA}")), ("busybox".into(), "v1".into()));
    }

    #[test]
    fn registry_hosts_and_ports() {
        assert_eq!(p("127.0.0.1:5000/busybox:latest"), ("127.0.0.1:5000/busybox".into(), "latest".into()));
        assert_eq!(p("127.0.0.1:5000/busybox"), ("127.0.0.1:5000/busybox".into(), "latest".into()));
        assert_eq!(p("localhost/a/b:x"), ("localhost/a/b".into(), "x".into()));
        // A bare host:port is a name with a tag.
        assert_eq!(p("localhost:5000"), ("localhost".into(), "5000".into()));
        let r = parse_reference("registry.example.com:443/team/app:v2").unwrap();
        assert_eq!(r.split_hostname(), (Some("registry.example.com:443"), "team/app"));
        let r = parse_reference("team/app").unwrap();
        assert_eq!(r.split_hostname(), (None, "team/app"));
        // Upper case is only allowed in the host part.
        assert!(parse_reference("Registry.Example.com/app").is_ok());
        assert_eq!(parse_reference("Busybox"), Err(ImageRefError::InvalidFormat));
    }

    #[test]
    fn registry_prefix_rules() {
        let f = |img, reg, def| parse_image_name(img, "docker", reg, def).unwrap();
        assert_eq!(f("busybox", Some("reg.io"), Some("def.io")), ("reg.io/busybox".into(), "latest".into()));
        assert_eq!(f("busybox", None, Some("def.io:5000")), ("def.io:5000/busybox".into(), "latest".into()));
        assert_eq!(f("team/app:1", None, Some("def.io")), ("def.io/team/app".into(), "1".into()));
        // Already has a domain: untouched.
        assert_eq!(f("other.io/app", Some("reg.io"), Some("def.io")), ("other.io/app".into(), "latest".into()));
        // Glance: no tag, no prefix.
        assert_eq!(parse_image_name("cirros:1", "glance", Some("reg.io"), None).unwrap(), ("cirros".into(), "".into()));
    }

    #[test]
    fn grammar() {
        for ok in ["a", "a.b", "a_b", "a__b", "a---b", "a/b/c", "a-b.c_d", "x:Tag_1.0-rc"] {
            assert!(parse_reference(ok).is_ok(), "{ok}");
        }
        for bad in ["a..b", "a._b", "a___b", "-a", "a-", "a//b", "/a", "a/", "a:", "a:-x", "a:b/c", "a@", "a b", "UP"] {
            assert_eq!(parse_reference(bad), Err(ImageRefError::InvalidFormat), "{bad}");
        }
        assert_eq!(parse_reference(""), Err(ImageRefError::NameEmpty));
        let long = "a".repeat(256);
        assert_eq!(parse_reference(&long), Err(ImageRefError::NameTooLong));
        assert!(parse_reference(&"a".repeat(255)).is_ok());
        let long_tag = format!("a:{}", "t".repeat(129));
        assert_eq!(parse_reference(&long_tag), Err(ImageRefError::InvalidFormat));
        assert_eq!(parse_reference("a@md5:abcd"), Err(ImageRefError::DigestUnsupported));
        assert_eq!(parse_reference("a@sha256:abcd"), Err(ImageRefError::DigestInvalidLength));
        assert_eq!(parse_reference("a@sha256:xyz"), Err(ImageRefError::InvalidFormat));
    }

    #[test]
    fn pull_policies() {
        assert_eq!(pull_policy(None, "latest"), PullPolicy::Always);
        assert_eq!(pull_policy(Some(""), "1.0"), PullPolicy::Always);
        assert_eq!(pull_policy(Some("ifnotpresent"), "latest"), PullPolicy::IfNotPresent);
        assert_eq!(pull_policy(Some("never"), "latest"), PullPolicy::Never);
        assert_eq!(pull_policy_queens(None, "latest"), PullPolicy::Always);
        assert_eq!(pull_policy_queens(None, "1.0"), PullPolicy::IfNotPresent);
        assert_eq!(pull_policy_queens(Some("never"), "1.0"), PullPolicy::Never);

        assert!(should_pull(&PullPolicy::Always, true));
        assert!(should_pull(&PullPolicy::IfNotPresent, false));
        assert!(!should_pull(&PullPolicy::IfNotPresent, true));
        assert!(!should_pull(&PullPolicy::Never, false));
        assert!(!should_pull(&PullPolicy::parse("bogus"), false));
        assert_eq!(PullPolicy::parse("ifnotpresent").as_str(), "ifnotpresent");
    }
}
