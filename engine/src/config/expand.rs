//! `${VAR}` and `${VAR:-default}` expansion over the config text, before parsing.
//!
//! Expanding the text (rather than parsed strings) lets a variable supply a number or a list,
//! and keeps every line number of the file intact for error messages.

/// An unresolved variable, with the 1-based line and column of its `${`.
#[derive(Debug, PartialEq, Eq)]
pub struct MissingVar {
    pub name: String,
    pub line: usize,
    pub col: usize,
}

/// Expands every `${NAME}` / `${NAME:-default}`; `$${` escapes a literal `${`.
/// Returns all missing variables at once so a user fixes them in one go.
pub fn expand_vars(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, Vec<MissingVar>> {
    let mut out = String::with_capacity(text.len());
    let mut missing = Vec::new();
    let mut rest = text;
    let (mut line, mut line_start) = (1usize, 0usize);
    let mut consumed = 0usize;
    while let Some(pos) = rest.find('$') {
        let (before, after) = rest.split_at(pos);
        out.push_str(before);
        for (i, c) in before.char_indices() {
            if c == '\n' {
                line += 1;
                line_start = consumed + i + 1;
            }
        }
        let abs = consumed + pos;
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
            consumed = abs + 3;
            continue;
        }
        let Some(body_start) = after.strip_prefix("${") else {
            out.push('$');
            rest = &after[1..];
            consumed = abs + 1;
            continue;
        };
        let Some(end) = body_start.find('}') else {
            // An unclosed `${` is left as written; YAML parsing reports what is wrong with it.
            out.push_str(after);
            rest = "";
            break;
        };
        let body = &body_start[..end];
        let (name, default) = match body.split_once(":-") {
            Some((n, d)) => (n.trim(), Some(d)),
            None => (body.trim(), None),
        };
        match lookup(name) {
            Some(v) if !(v.is_empty() && default.is_some()) => out.push_str(&v),
            _ => match default {
                Some(d) => out.push_str(d),
                None => missing.push(MissingVar {
                    name: name.to_string(),
                    line,
                    col: abs - line_start + 1,
                }),
            },
        }
        rest = &body_start[end + 1..];
        consumed = abs + 2 + end + 1;
    }
    out.push_str(rest);
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(missing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(name: &str) -> Option<String> {
        match name {
            "TG_TEST_KEY" => Some("sk-123".into()),
            "TG_TEST_EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_set_variables_and_defaults() {
        let out = expand_vars("a: ${TG_TEST_KEY}\nb: ${TG_TEST_UNSET_X:-8080}\n", vars).unwrap();
        assert_eq!(out, "a: sk-123\nb: 8080\n");
    }

    #[test]
    fn empty_variable_takes_the_default() {
        assert_eq!(expand_vars("${TG_TEST_EMPTY:-x}", vars).unwrap(), "x");
    }

    #[test]
    fn escaped_dollar_stays_literal() {
        assert_eq!(
            expand_vars("p: $${HOME} $5", vars).unwrap(),
            "p: ${HOME} $5"
        );
    }

    #[test]
    fn reports_every_missing_variable_with_position() {
        let err = expand_vars("a: 1\nkey: ${TG_NOPE_1}\nx: ${TG_NOPE_2}", vars).unwrap_err();
        assert_eq!(
            err,
            vec![
                MissingVar {
                    name: "TG_NOPE_1".into(),
                    line: 2,
                    col: 6
                },
                MissingVar {
                    name: "TG_NOPE_2".into(),
                    line: 3,
                    col: 4
                },
            ]
        );
    }
}
