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

/// Expands every `${NAME}` / `${NAME:-default}`; `$${` escapes a literal `${`. YAML comments
/// are copied as written: a commented-out line naming an unset variable is not an error.
/// Returns all missing variables at once so a user fixes them in one go.
pub fn expand_vars(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, Vec<MissingVar>> {
    let mut out = String::with_capacity(text.len());
    let mut missing = Vec::new();
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let code_end = comment_start(line).unwrap_or(line.len());
        expand_line(&line[..code_end], i + 1, &lookup, &mut out, &mut missing);
        out.push_str(&line[code_end..]);
    }
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(missing)
    }
}

/// Where a YAML comment begins on `line`: a `#` at the start or after a space or tab, outside
/// quotes. (Inside a block scalar a `#` is text; a variable after one there is left as written.)
fn comment_start(line: &str) -> Option<usize> {
    let (mut single, mut double, mut escaped) = (false, false, false);
    let mut prev = None;
    for (i, c) in line.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if double => escaped = true,
            '"' if !single => double = !double,
            '\'' if !double => single = !single,
            '#' if !single && !double && matches!(prev, None | Some(' ' | '\t')) => return Some(i),
            _ => {}
        }
        prev = Some(c);
    }
    None
}

/// Expands the variables of one line (comment removed), numbered `line` from 1.
fn expand_line(
    text: &str,
    line: usize,
    lookup: &impl Fn(&str) -> Option<String>,
    out: &mut String,
    missing: &mut Vec<MissingVar>,
) {
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        let (before, after) = rest.split_at(pos);
        out.push_str(before);
        let col = text.len() - after.len() + 1;
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
            continue;
        }
        let Some(body_start) = after.strip_prefix("${") else {
            out.push('$');
            rest = &after[1..];
            continue;
        };
        let Some(end) = body_start.find('}') else {
            // An unclosed `${` is left as written; YAML parsing reports what is wrong with it.
            rest = after;
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
                    col,
                }),
            },
        }
        rest = &body_start[end + 1..];
    }
    out.push_str(rest);
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

    #[test]
    fn comments_are_left_as_written() {
        let text = "# url: ${TG_NOPE_1}\nkey: ${TG_TEST_KEY} # or ${TG_NOPE_2}\n  #${TG_NOPE_3}\n";
        assert_eq!(
            expand_vars(text, vars).unwrap(),
            "# url: ${TG_NOPE_1}\nkey: sk-123 # or ${TG_NOPE_2}\n  #${TG_NOPE_3}\n"
        );
        // A `#` inside quotes or a word is not a comment.
        let text = "a: \"x # ${TG_TEST_KEY}\"\nb: 'y # ${TG_TEST_KEY}'\nc: u#${TG_TEST_KEY}\n";
        assert_eq!(
            expand_vars(text, vars).unwrap(),
            "a: \"x # sk-123\"\nb: 'y # sk-123'\nc: u#sk-123\n"
        );
        let err = expand_vars("a: \"\\\" # ${TG_NOPE_4}\"", vars).unwrap_err();
        assert_eq!(
            err[0].name, "TG_NOPE_4",
            "an escaped quote does not end the string"
        );
    }
}
