//! Typed values of zun's Container fields: status and task-state enums, restart policy,
//! health check and the nested `Cpuset` object.
//!
//! The enums accept the union of master (zun 18.0.0) and queens values; `Display`
//! prints the wire string.
use serde_json::{Map, Value};
use std::fmt;

macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident { $($var:ident => $s:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($var),* }

        impl $name {
            /// Every wire value.
            pub const ALL: &'static [$name] = &[$($name::$var),*];

            pub const fn as_str(&self) -> &'static str {
                match self { $($name::$var => $s),* }
            }

            /// The variant for a wire string, `None` if it is not a valid value.
            pub fn from_wire(s: &str) -> Option<Self> {
                match s { $($s => Some($name::$var),)* _ => None }
            }

            pub fn is_valid(s: &str) -> bool {
                Self::from_wire(s).is_some()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_enum! {
    /// `consts.CONTAINER_STATUSES` (queens lacks Rebuilding, Dead, Restarting).
    Status {
        Error => "Error",
        Running => "Running",
        Stopped => "Stopped",
        Paused => "Paused",
        Unknown => "Unknown",
        Creating => "Creating",
        Created => "Created",
        Deleted => "Deleted",
        Deleting => "Deleting",
        Rebuilding => "Rebuilding",
        Dead => "Dead",
        Restarting => "Restarting",
    }
}

wire_enum! {
    /// `consts.TASK_STATES`, master values plus the historical sandbox and
    /// `container_*_sg` ones.
    TaskState {
        ImagePulling => "image_pulling",
        ContainerCreating => "container_creating",
        ContainerStarting => "container_starting",
        ContainerDeleting => "container_deleting",
        ContainerStopping => "container_stopping",
        ContainerRebooting => "container_rebooting",
        ContainerPausing => "container_pausing",
        ContainerUnpausing => "container_unpausing",
        ContainerKilling => "container_killing",
        SgAdding => "sg_adding",
        SgRemoving => "sg_removing",
        NetworkAttaching => "network_attaching",
        NetworkDetaching => "network_detaching",
        ContainerRebuilding => "container_rebuilding",
        SandboxCreating => "sandbox_creating",
        SandboxDeleting => "sandbox_deleting",
        ContainerAddingSg => "container_adding_sg",
        ContainerRemovingSg => "container_removing_sg",
    }
}

/// The old name of [`Status`].
pub type ContainerStatus = Status;

/// `restart_policy`: `{"Name": "on-failure", "MaximumRetryCount": "3"}` (a dict of
/// strings on the wire).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestartPolicy {
    pub name: String,
    pub max_retry: i64,
}

impl RestartPolicy {
    /// Reads the wire dict; a missing or unparsable count is 0.
    pub fn from_wire(m: &Map<String, Value>) -> Option<Self> {
        let name = match m.get("Name")? {
            Value::String(s) => s.clone(),
            other => crate::pyjson::py_str(other),
        };
        let max_retry = match m.get("MaximumRetryCount") {
            Some(Value::String(s)) => crate::version::py_int(s).unwrap_or(0),
            Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
            _ => 0,
        };
        Some(RestartPolicy { name, max_retry })
    }

    pub fn to_wire(&self) -> Value {
        let mut m = Map::new();
        m.insert("Name".into(), Value::String(self.name.clone()));
        m.insert("MaximumRetryCount".into(), Value::String(self.max_retry.to_string()));
        Value::Object(m)
    }
}

/// `healthcheck` (a JsonField): `{"test": ..., "interval": s, "timeout": s, "retries": n}`.
/// zun's docker driver defaults each to `''` / 0 when absent.
#[derive(Debug, Clone, PartialEq)]
pub struct Healthcheck {
    /// A command string or a list (`["CMD-SHELL", "..."]`), as the user gave it.
    pub test: Value,
    /// Seconds.
    pub interval: f64,
    /// Seconds.
    pub timeout: f64,
    pub retries: i64,
}

impl Healthcheck {
    pub fn from_json(v: &Value) -> Option<Self> {
        let m = v.as_object()?;
        let num = |k: &str| -> f64 {
            match m.get(k) {
                Some(Value::Number(n)) => n.as_f64().unwrap_or(0.0),
                Some(Value::String(s)) => crate::container_fields::py_float(s).unwrap_or(0.0),
                _ => 0.0,
            }
        };
        Some(Healthcheck {
            test: m.get("test").cloned().unwrap_or_else(|| Value::String(String::new())),
            interval: num("interval"),
            timeout: num("timeout"),
            retries: num("retries") as i64,
        })
    }

    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("test".into(), self.test.clone());
        m.insert("interval".into(), num_value(self.interval));
        m.insert("timeout".into(), num_value(self.timeout));
        m.insert("retries".into(), Value::from(self.retries));
        Value::Object(m)
    }
}

fn num_value(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() < 9e15 {
        Value::from(f as i64)
    } else {
        serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
    }
}

/// The nested `Cpuset` object (v1.0): `cpuset_cpus` / `cpuset_mems`, sets of ints.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cpuset {
    pub cpuset_cpus: Option<Vec<i64>>,
    pub cpuset_mems: Option<Vec<i64>>,
}

impl Cpuset {
    pub const NAME: &'static str = "Cpuset";
    pub const VERSION: &'static str = "1.0";

    /// From the `zun_object.data` of a Cpuset primitive.
    pub fn from_data(d: &Map<String, Value>) -> Self {
        let ints = |k: &str| -> Option<Vec<i64>> {
            d.get(k)?
                .as_array()
                .map(|a| a.iter().filter_map(|x| x.as_i64().or_else(|| x.as_str().and_then(|s| s.trim().parse().ok()))).collect())
        };
        Cpuset { cpuset_cpus: ints("cpuset_cpus"), cpuset_mems: ints("cpuset_mems") }
    }

    /// The primitive zun sends (both fields always set, null when empty).
    pub fn to_primitive(&self) -> crate::ObjectPrimitive {
        let list = |v: &Option<Vec<i64>>| v.as_ref().map_or(Value::Null, |v| Value::Array(v.iter().map(|i| Value::from(*i)).collect()));
        let mut data = Map::new();
        data.insert("cpuset_cpus".into(), list(&self.cpuset_cpus));
        data.insert("cpuset_mems".into(), list(&self.cpuset_mems));
        crate::ObjectPrimitive {
            name: Self::NAME.into(),
            namespace: crate::object::ZUN_NAMESPACE.into(),
            version: Self::VERSION.into(),
            data,
            changes: Vec::new(),
        }
    }
}

/// A command string that does not split into words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShlexError {
    #[error("No closing quotation")]
    NoClosingQuotation,
    #[error("No escaped character")]
    NoEscapedCharacter,
}

/// Splits a command string into words exactly as Python's `shlex.split` does (POSIX mode,
/// words split on whitespace, no comment characters), which is what docker-py's
/// `exec_create` and queens' string `command` use. Whitespace is space, tab, CR and LF;
/// single quotes are literal; inside double quotes a backslash escapes only `"` and `\`
/// (before anything else it stays); outside quotes a backslash escapes the next character;
/// a quoted empty string is an empty word. Unlike POSIX sh, `#` starts no comment and
/// `\$` inside double quotes keeps its backslash, so this is written here rather than taken
/// from the `shlex` crate, which follows sh.
pub fn shlex_split(s: &str) -> Result<Vec<String>, ShlexError> {
    #[derive(Clone, Copy, PartialEq)]
    enum St {
        Space,
        Word,
        Single,
        Double,
        Escape { in_double: bool },
    }
    let mut words = Vec::new();
    let mut word = String::new();
    // a word exists (even an empty one) once a quote or any other character is seen
    let mut in_word = false;
    let mut st = St::Space;
    for c in s.chars() {
        st = match st {
            St::Space | St::Word => match c {
                ' ' | '\t' | '\r' | '\n' => {
                    if in_word {
                        words.push(std::mem::take(&mut word));
                        in_word = false;
                    }
                    St::Space
                }
                '\'' => {
                    in_word = true;
                    St::Single
                }
                '"' => {
                    in_word = true;
                    St::Double
                }
                '\\' => {
                    in_word = true;
                    St::Escape { in_double: false }
                }
                _ => {
                    in_word = true;
                    word.push(c);
                    St::Word
                }
            },
            St::Single if c == '\'' => St::Word,
            St::Single => {
                word.push(c);
                St::Single
            }
            St::Double => match c {
                '"' => St::Word,
                '\\' => St::Escape { in_double: true },
                _ => {
                    word.push(c);
                    St::Double
                }
            },
            St::Escape { in_double } => {
                if in_double && c != '"' && c != '\\' {
                    word.push('\\');
                }
                word.push(c);
                if in_double {
                    St::Double
                } else {
                    St::Word
                }
            }
        };
    }
    match st {
        St::Single | St::Double => Err(ShlexError::NoClosingQuotation),
        St::Escape { .. } => Err(ShlexError::NoEscapedCharacter),
        St::Space | St::Word => {
            if in_word {
                words.push(word);
            }
            Ok(words)
        }
    }
}

/// Python `shlex.join`: the inverse of [`shlex_split`] for writing queens' string form.
pub fn shlex_join(words: &[String]) -> String {
    words
        .iter()
        .map(|w| {
            if !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric() || "@%+=:,./-_".contains(c)) {
                w.clone()
            } else {
                format!("'{}'", w.replace('\'', "'\"'\"'"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn enums() {
        assert_eq!(Status::from_wire("Running"), Some(Status::Running));
        assert_eq!(Status::Restarting.to_string(), "Restarting");
        assert!(TaskState::is_valid("sandbox_creating"));
        assert!(!TaskState::is_valid("flying"));
    }

    #[test]
    fn shlex() {
        let split = |s: &str| shlex_split(s).unwrap();
        assert_eq!(split("sh -c 'echo hello && sleep 3600'"), ["sh", "-c", "echo hello && sleep 3600"]);
        assert_eq!(split(r#"echo "a \"b\"" c\ d"#), ["echo", "a \"b\"", "c d"]);
        assert_eq!(split("echo hi"), ["echo", "hi"]);
        assert_eq!(split("  sh  -c 'echo a b'  "), ["sh", "-c", "echo a b"]);
        assert_eq!(split(r#"a"b c"d"#), ["ab cd"]);
        assert_eq!(split(r#"x "a\"b\\c\d""#), ["x", r#"a"b\c\d"#]);
        assert_eq!(split(r"a\ b c"), ["a b", "c"]);
        assert_eq!(split("a '' b"), ["a", "", "b"]);
        assert_eq!(split(""), Vec::<String>::new());
        assert_eq!(shlex_split("'open"), Err(ShlexError::NoClosingQuotation));
        assert_eq!(shlex_split("\"open"), Err(ShlexError::NoClosingQuotation));
        assert_eq!(shlex_split("trail\\"), Err(ShlexError::NoEscapedCharacter));
        assert_eq!(shlex_split("\"a\\"), Err(ShlexError::NoEscapedCharacter));
        // what Python 3.11's shlex.split returns for these: no comments, `\$` kept inside ".."
        let python: &[(&str, &[&str])] = &[
            ("echo a #b", &["echo", "a", "#b"]),
            ("#x y", &["#x", "y"]),
            ("a#b", &["a#b"]),
            (r#"echo "\$HOME" "\`x\`""#, &["echo", r"\$HOME", r"\`x\`"]),
            (r##"'#' "#""##, &["#", "#"]),
            (r"a\#b", &["a#b"]),
            (r#"echo "a\\b" 'c\d'"#, &["echo", r"a\b", r"c\d"]),
            ("x\t y\n z", &["x", "y", "z"]),
            (r#""""#, &[""]),
            (r#"a""b"#, &["ab"]),
            (r"\'", &["'"]),
            (r#""\"""#, &["\""]),
            ("\u{e9} '\u{fc} x'", &["\u{e9}", "\u{fc} x"]),
            ("a\\\nb", &["a\nb"]),
            ("''''", &[""]),
            (r#"a'b'"c"d"#, &["abcd"]),
        ];
        for (input, want) in python {
            assert_eq!(split(input), *want, "{input:?}");
        }
        let words = vec!["sh".to_string(), "-c".into(), "it's".into(), "".into(), "a b".into()];
        assert_eq!(split(&shlex_join(&words)), words);
    }

    #[test]
    fn restart_and_health() {
        let rp = RestartPolicy::from_wire(json!({"Name": "on-failure", "MaximumRetryCount": "3"}).as_object().unwrap()).unwrap();
        assert_eq!(rp, RestartPolicy { name: "on-failure".into(), max_retry: 3 });
        assert_eq!(rp.to_wire(), json!({"Name": "on-failure", "MaximumRetryCount": "3"}));
        let h = Healthcheck::from_json(&json!({"test": "true", "interval": 5, "retries": "2"})).unwrap();
        assert_eq!((h.interval, h.timeout, h.retries), (5.0, 0.0, 2));
    }
}
