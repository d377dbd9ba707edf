//! Splitting a command string the way docker-py does (`shlex.split`, POSIX mode).
//!
//! zun passes exec commands as strings (`"echo hi"`); docker-py's `exec_create` splits them
//! with `shlex.split` before sending `Cmd`. This reproduces those rules: whitespace separates
//! words, single quotes are literal, double quotes allow `\"` and `\\`, a backslash outside
//! quotes escapes any character, adjacent quoted/unquoted parts join, `''` is an empty word.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitCommandError {
    #[error("No closing quotation")]
    NoClosingQuotation,
    #[error("No escaped character")]
    NoEscapedCharacter,
}

/// `shlex.split(s)` (POSIX mode, no comments).
pub fn split_command(s: &str) -> Result<Vec<String>, SplitCommandError> {
    let mut words = Vec::new();
    let mut cur = String::new();
    // A word is pending even when empty once a quote was seen (`''` is a word).
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\\' => {
                let n = chars.next().ok_or(SplitCommandError::NoEscapedCharacter)?;
                cur.push(n);
                in_word = true;
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        None => return Err(SplitCommandError::NoClosingQuotation),
                        Some('\'') => break,
                        Some(x) => cur.push(x),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        None => return Err(SplitCommandError::NoClosingQuotation),
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            None => return Err(SplitCommandError::NoClosingQuotation),
                            Some(x @ ('"' | '\\')) => cur.push(x),
                            Some(x) => {
                                cur.push('\\');
                                cur.push(x);
                            }
                        },
                        Some(x) => cur.push(x),
                    }
                }
            }
            other => {
                cur.push(other);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn like_python_shlex() {
        assert_eq!(split_command("echo hi").unwrap(), s(&["echo", "hi"]));
        assert_eq!(split_command("  sh  -c 'echo a b'  ").unwrap(), s(&["sh", "-c", "echo a b"]));
        assert_eq!(split_command(r#"a"b c"d"#).unwrap(), s(&["ab cd"]));
        assert_eq!(split_command(r#"x "a\"b\\c\d""#).unwrap(), s(&["x", r#"a"b\c\d"#]));
        assert_eq!(split_command(r"a\ b c").unwrap(), s(&["a b", "c"]));
        assert_eq!(split_command("a '' b").unwrap(), s(&["a", "", "b"]));
        assert_eq!(split_command("# not a comment").unwrap(), s(&["#", "not", "a", "comment"]));
        assert_eq!(split_command("").unwrap(), Vec::<String>::new());
        assert_eq!(split_command("'open"), Err(SplitCommandError::NoClosingQuotation));
        assert_eq!(split_command("trail\\"), Err(SplitCommandError::NoEscapedCharacter));
    }
}
