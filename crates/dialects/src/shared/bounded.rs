//! Error messages of a bounded length: a message may quote what the client
//! sent (a model slug, a prompt in a schema error, a JSON value serde
//! could not use), and a 1 MB value must not come back as a 1 MB error.

/// The characters of a quoted value an error message keeps.
const QUOTED_CHARS: usize = 100;
/// The characters of a whole message, whatever it quotes.
const MESSAGE_CHARS: usize = 1000;

/// `text`'s first [`QUOTED_CHARS`] characters, and "…" when it was longer.
pub fn excerpt(text: &str) -> String {
    cut(text, QUOTED_CHARS)
}

/// `message` with each double-quoted run (backslash escapes skipped) cut to
/// its first [`QUOTED_CHARS`] characters and "…", and the whole to
/// [`MESSAGE_CHARS`]. Every dialect's error type passes its message
/// through this, so no call site has to remember.
pub fn bounded(message: String) -> String {
    if message.len() <= QUOTED_CHARS {
        return message;
    }
    let mut out = String::with_capacity(message.len().min(2 * MESSAGE_CHARS));
    // Characters seen inside the current quotes, if inside.
    let mut inside: Option<usize> = None;
    let mut escaped = false;
    for c in message.chars() {
        let Some(seen) = inside else {
            out.push(c);
            if c == '"' {
                inside = Some(0);
            }
            continue;
        };
        if c == '"' && !escaped {
            if seen > QUOTED_CHARS {
                out.push('…');
            }
            out.push('"');
            inside = None;
            continue;
        }
        escaped = c == '\\' && !escaped;
        if seen < QUOTED_CHARS {
            out.push(c);
        }
        inside = Some(seen + 1);
    }
    if inside.is_some_and(|seen| seen > QUOTED_CHARS) {
        out.push('…');
    }
    cut(&out, MESSAGE_CHARS)
}

fn cut(text: &str, chars: usize) -> String {
    match text.char_indices().nth(chars) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_quoted_values_are_cut_and_the_rest_kept() {
        let long = "x".repeat(5000);
        let message = format!("input.prompt: \"{long}\" is longer than 300 characters");
        let cut = bounded(message);
        assert_eq!(
            cut,
            format!(
                "input.prompt: \"{}…\" is longer than 300 characters",
                "x".repeat(100)
            )
        );
        let escaped = format!("Model \"a\\\"{long}\" does not exist.");
        assert!(bounded(escaped).ends_with("…\" does not exist."));
        let short = "input.voice: \"xx\" is not one of [\"en\"]".to_owned();
        assert_eq!(bounded(short.clone()), short);
        assert_eq!(bounded("y".repeat(5000)).chars().count(), MESSAGE_CHARS + 1);
        assert_eq!(excerpt("abc"), "abc");
        assert_eq!(excerpt(&"é".repeat(101)), format!("{}…", "é".repeat(100)));
    }
}
