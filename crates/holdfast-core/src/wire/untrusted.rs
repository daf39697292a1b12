//! Peer-supplied strings in logs and error messages.

use std::fmt;

/// How many characters of a peer's string [`untrusted`] shows.
pub const SHOWN_CHARS: usize = 64;

/// `s` made safe to log or echo: control characters (newlines, ANSI
/// escapes) escaped as `\n`, `\u{1b}`; at most [`SHOWN_CHARS`] characters,
/// then how many bytes were left out. A peer can neither forge log lines
/// nor make the server write (or send back) megabytes it sent.
pub fn untrusted(s: &str) -> Untrusted<'_> {
    Untrusted(s)
}

pub struct Untrusted<'a>(&'a str);

impl fmt::Display for Untrusted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for (shown, (i, c)) in self.0.char_indices().enumerate() {
            if shown == SHOWN_CHARS {
                return write!(f, "\"… ({} more bytes)", self.0.len() - i);
            }
            if c.is_control() || c == '"' || c == '\\' {
                write!(f, "{}", c.escape_default())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        f.write_str("\"")
    }
}

impl fmt::Debug for Untrusted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::untrusted;

    #[test]
    fn escapes_control_characters_and_caps_length() {
        let s = untrusted("a\nb\u{1b}[2J\"").to_string();
        assert_eq!(s, r#""a\nb\u{1b}[2J\"""#);
        assert!(!s.contains('\n') && !s.contains('\u{1b}'));
        let long = "x".repeat(10 << 20);
        let shown = untrusted(&long).to_string();
        assert!(shown.len() < 120, "{shown}");
        assert!(shown.ends_with(&format!("({} more bytes)", (10 << 20) - 64)));
        assert_eq!(untrusted("é").to_string(), "\"é\"");
    }
}
