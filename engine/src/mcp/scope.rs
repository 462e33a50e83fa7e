//! Which tools a key may see and call: `allow`/`deny` glob patterns over public tool names
//! (`server__tool`), with `group:NAME` expanded from `mcp.tool_groups`, compiled once into
//! regex sets. Pure data and functions; the compiler reports pattern errors with their place.

use regex::RegexSet;
use std::collections::{BTreeMap, HashSet};

/// Separates the server from the tool in a public tool name.
pub const SEPARATOR: &str = "__";

/// `server__tool` → (`server`, `tool`). Server names never contain the separator, so the
/// first one splits.
pub fn split_tool_name(public: &str) -> Option<(&str, &str)> {
    public
        .split_once(SEPARATOR)
        .filter(|(s, t)| !s.is_empty() && !t.is_empty())
}

/// One level of access (a key's `mcp:` or its team's). A tool passes when some `allow`
/// pattern matches (or there is no `allow` list) and no `deny` pattern does.
#[derive(Debug, Clone)]
pub struct ToolFilter {
    allow: Option<RegexSet>,
    deny: Option<RegexSet>,
}

impl ToolFilter {
    pub fn permits(&self, tool: &str) -> bool {
        self.allow.as_ref().is_none_or(|a| a.is_match(tool))
            && !self.deny.as_ref().is_some_and(|d| d.is_match(tool))
    }
}

/// Everything a key's tool access is checked against: its own filter and its team's; a tool
/// must pass both. No filters means every tool.
#[derive(Debug, Clone, Default)]
pub struct ToolScope {
    pub filters: Vec<ToolFilter>,
}

impl ToolScope {
    pub fn permits(&self, tool: &str) -> bool {
        self.filters.iter().all(|f| f.permits(tool))
    }
}

/// Compiles one `allow`/`deny` pair. `servers` are the configured server names; a pattern
/// whose server part has no wildcard must name one of them. Errors are (field, index,
/// message) so the caller can locate them.
pub fn compile_filter(
    allow: Option<&[String]>,
    deny: &[String],
    groups: &BTreeMap<String, Vec<String>>,
    servers: &HashSet<&str>,
) -> Result<ToolFilter, Vec<(&'static str, usize, String)>> {
    let mut errors = Vec::new();
    let mut set = |field: &'static str, patterns: &[String]| -> Option<RegexSet> {
        let mut regexes = Vec::new();
        for (i, p) in patterns.iter().enumerate() {
            match expand(p, groups) {
                Ok(list) => {
                    for pattern in list {
                        match glob_regex(pattern, servers) {
                            Ok(r) => regexes.push(r),
                            Err(m) => errors.push((field, i, m)),
                        }
                    }
                }
                Err(m) => errors.push((field, i, m)),
            }
        }
        // An empty set matches nothing, which is what an empty list means.
        RegexSet::new(&regexes).ok()
    };
    let allow = allow.map(|a| set("allow", a));
    let deny = if deny.is_empty() {
        None
    } else {
        set("deny", deny)
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(ToolFilter {
        allow: allow.map(|a| a.unwrap_or_else(RegexSet::empty)),
        deny,
    })
}

/// `group:NAME` → that group's patterns; anything else → itself.
fn expand<'a>(
    pattern: &'a str,
    groups: &'a BTreeMap<String, Vec<String>>,
) -> Result<Vec<&'a str>, String> {
    match pattern.strip_prefix("group:") {
        Some(name) => groups
            .get(name)
            .map(|g| g.iter().map(String::as_str).collect())
            .ok_or_else(|| {
                let known: Vec<&str> = groups.keys().map(String::as_str).collect();
                format!(
                    "unknown tool group `{name}` (mcp.tool_groups has: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                )
            }),
        None => Ok(vec![pattern]),
    }
}

/// Checks a glob (`*` any run of characters, `?` one character, the rest literal tool-name
/// characters) and turns it into an anchored regex.
pub fn glob_regex(pattern: &str, servers: &HashSet<&str>) -> Result<String, String> {
    if pattern.is_empty() {
        return Err("empty tool pattern".into());
    }
    if let Some(bad) = pattern
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '*' | '?' | '/')))
    {
        return Err(format!(
            "bad tool pattern `{pattern}`: `{bad}` is not allowed (patterns use letters, digits, \
             `_`, `-`, `.`, `/` and the wildcards `*` and `?`)"
        ));
    }
    let wild = |s: &str| s.contains(['*', '?']);
    match pattern.split_once(SEPARATOR) {
        Some((server, _)) if !wild(server) && !servers.contains(server) => {
            return Err(format!(
                "tool pattern `{pattern}` names unknown MCP server `{server}`"
            ));
        }
        None if !wild(pattern) => {
            return Err(format!(
                "tool pattern `{pattern}` names no server: write `server{SEPARATOR}tool` \
                 (e.g. `{pattern}{SEPARATOR}*`)"
            ));
        }
        _ => {}
    }
    let mut re = String::with_capacity(pattern.len() + 8);
    re.push('^');
    for c in pattern.chars() {
        match c {
            '*' => re.push_str(".*"),
            '?' => re.push('.'),
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    Ok(re)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers() -> HashSet<&'static str> {
        ["fs", "db", "everything"].into_iter().collect()
    }

    fn filter(allow: Option<&[&str]>, deny: &[&str]) -> ToolFilter {
        let own = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let groups = BTreeMap::from([(
            "readonly".to_string(),
            vec!["fs__read_*".to_string(), "fs__list_*".to_string()],
        )]);
        compile_filter(allow.map(own).as_deref(), &own(deny), &groups, &servers()).unwrap()
    }

    #[test]
    fn allow_globs_and_deny_wins() {
        let f = filter(Some(&["fs__*", "db__query"]), &["fs__write_*"]);
        assert!(f.permits("fs__read_file"));
        assert!(f.permits("db__query"));
        assert!(!f.permits("db__drop"));
        assert!(!f.permits("fs__write_file"));
        assert!(!f.permits("everything__echo"));
    }

    #[test]
    fn no_allow_list_means_every_tool_and_an_empty_one_none() {
        assert!(filter(None, &[]).permits("everything__echo"));
        assert!(!filter(None, &["everything__*"]).permits("everything__echo"));
        assert!(!filter(Some(&[]), &[]).permits("fs__read_file"));
    }

    #[test]
    fn groups_expand_to_their_patterns() {
        let f = filter(Some(&["group:readonly"]), &[]);
        assert!(f.permits("fs__read_text_file"));
        assert!(f.permits("fs__list_directory"));
        assert!(!f.permits("fs__write_file"));
    }

    #[test]
    fn wildcards_do_not_leak_regex_syntax() {
        let f = filter(Some(&["fs__read.file", "db__q?ery"]), &[]);
        assert!(f.permits("fs__read.file"));
        assert!(!f.permits("fs__readXfile"));
        assert!(f.permits("db__query"));
    }

    #[test]
    fn scope_needs_every_level() {
        let scope = ToolScope {
            filters: vec![
                filter(Some(&["fs__*"]), &[]),
                filter(None, &["fs__write_*"]),
            ],
        };
        assert!(scope.permits("fs__read_file"));
        assert!(!scope.permits("fs__write_file"));
        assert!(ToolScope::default().permits("anything__goes"));
    }

    #[test]
    fn bad_patterns_say_what_is_wrong() {
        let errs = |allow: &[&str]| {
            let list: Vec<String> = allow.iter().map(|s| s.to_string()).collect();
            compile_filter(Some(&list), &[], &BTreeMap::new(), &servers())
                .unwrap_err()
                .into_iter()
                .map(|e| e.2)
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert!(errs(&["nosuch__tool"]).contains("unknown MCP server `nosuch`"));
        assert!(errs(&["fs__[a-z]"]).contains("`[` is not allowed"));
        assert!(errs(&["read_file"]).contains("names no server"));
        assert!(errs(&["group:nope"]).contains("unknown tool group `nope`"));
        assert!(errs(&[""]).contains("empty tool pattern"));
    }

    #[test]
    fn public_names_split_at_the_first_separator() {
        assert_eq!(
            split_tool_name("fs__read__file"),
            Some(("fs", "read__file"))
        );
        assert_eq!(split_tool_name("fs"), None);
        assert_eq!(split_tool_name("__x"), None);
    }
}
