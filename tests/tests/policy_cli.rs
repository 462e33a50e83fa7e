//! `tollgate test`, `tollgate explain` and `tollgate check` on policies, through the real
//! binary: passing and failing cases, located errors, the decision trace.

use std::path::Path;
use tollgate_e2e::run_tollgate;

fn repo_file(rel: &str) -> String {
    format!("{}/../{rel}", env!("CARGO_MANIFEST_DIR"))
}

const CONFIG: &str = "\
auth: {required: true}
providers:
  - {name: a, kind: openai_compatible, base_url: 'http://127.0.0.1:9/v1', models: ['*']}
  - {name: b, kind: openai, keys: [{name: main, key: sk-secret-never-printed}], models: [premium-model, gpt-4o]}
teams: [{id: ml, budget: {limit_usd: 100, window: 1M}}]
virtual_keys:
  - {id: vk-ml, key: k-ml, team: ml, providers: [{provider: a}]}
routing:
  rules:
    - name: premium-header
      when: 'headers[?\"x-tier\"].orValue(\"\") == \"premium\"'
      targets: [{model: b/premium-model}]
      fallbacks: [a/gpt-4o]
    - name: ml-saver
      scope: team:ml
      when: 'usage.budget_pct >= 80.0'
      targets: [{model: a/small}]
guardrails:
  - {name: secrets, detect: {regex: ['AKIA[0-9A-Z]{16}']}, action: block}
  - {name: vendor-check, detect: {webhook: {url: 'http://127.0.0.1:9/check'}}, action: block}
";

/// A temporary policy repo: `tollgate.yaml` plus `tests/cases.yaml`.
fn repo(cases: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tollgate.yaml"), CONFIG).unwrap();
    std::fs::create_dir(dir.path().join("tests")).unwrap();
    let path = dir.path().join("tests/cases.yaml");
    std::fs::write(&path, format!("config: ../tollgate.yaml\ncases:\n{cases}")).unwrap();
    let path = path.to_str().unwrap().to_string();
    (dir, path)
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn the_example_policy_cases_pass() {
    let out = run_tollgate(&["test", &repo_file("policies/tests")]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    let last = text.lines().last().unwrap_or("");
    let (passed, failed) = last.split_once(" passed, ").expect(last);
    assert_eq!(failed, "0 failed");
    assert!(passed.parse::<usize>().unwrap() >= 30, "{last}");
    assert!(!text.contains("FAIL"), "{text}");
}

#[test]
fn passing_and_failing_cases_report_expected_and_actual() {
    let (_dir, path) = repo(
        "  - name: premium routes by header
    key: vk-ml
    headers: {X-Tier: premium}
    body: {model: gpt-4o, messages: [{role: user, content: hi}]}
    expect: {status: 200, route: b/premium-model, fallbacks: [a/gpt-4o], rule: premium-header}
  - name: budget use switches the model
    key: vk-ml
    body: {model: gpt-4o, messages: [{role: user, content: hi}]}
    usage: {\"team:ml\": {budget_usd: 85}}
    expect: {route: a/small, rule: ml-saver}
  - name: wrong expectation
    key: vk-ml
    body: {model: gpt-4o, messages: [{role: user, content: hi}]}
    expect: {route: b/gpt-4o, rule: premium-header, status: 200}
  - name: blocked is not routed
    key: vk-ml
    body: {model: gpt-4o, messages: [{role: user, content: AKIAABCDEFGHIJKLMNOP}]}
    expect: {route: a/gpt-4o}
",
    );
    let out = run_tollgate(&["test", &path]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    assert!(text.contains("ok   premium routes by header\n"), "{text}");
    assert!(
        text.contains("ok   budget use switches the model\n"),
        "{text}"
    );
    // The webhook guardrail is not called, and the output says so.
    assert!(
        text.contains("webhook guardrail `vendor-check` was not called"),
        "{text}"
    );
    assert!(text.contains("FAIL wrong expectation"), "{text}");
    assert!(
        text.contains("route: expected b/gpt-4o, got a/gpt-4o"),
        "{text}"
    );
    assert!(
        text.contains("rule: expected premium-header, got none"),
        "{text}"
    );
    assert!(
        !text.contains("status: expected"),
        "only differing fields: {text}"
    );
    assert!(text.contains("FAIL blocked is not routed"), "{text}");
    assert!(
        text.contains("route: expected a/gpt-4o, got none")
            && text.contains("403 guardrail_blocked"),
        "{text}"
    );
    assert_eq!(text.lines().last(), Some("2 passed, 2 failed"), "{text}");
}

#[test]
fn a_broken_case_file_is_located() {
    let (_dir, path) = repo(
        "  - name: typo
    key: vk-ml
    body: {model: gpt-4o, messages: []}
    expect: {route: a/gpt-4o, stauts: 200}
",
    );
    let out = run_tollgate(&["test", &path]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{path}:6:")) && err.contains("unknown field `stauts`"),
        "{err}"
    );
    assert_eq!(stdout(&out).lines().last(), Some("0 passed, 0 failed"));

    // A case naming a key the config lacks points at that key.
    let (_dir, path) = repo(
        "  - name: unknown key
    key: vk-nope
    body: {model: gpt-4o, messages: []}
    expect: {status: 200}
",
    );
    let out = run_tollgate(&["test", &path]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains(&format!("{path}:4:10: unknown virtual key `vk-nope`")),
        "{text}"
    );
    assert_eq!(text.lines().last(), Some("0 passed, 1 failed"));
}

fn explain(dir: &Path, extra: &[&str]) -> std::process::Output {
    let request = dir.join("req.json");
    std::fs::write(
        &request,
        r#"{"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]}"#,
    )
    .unwrap();
    let config = dir.join("tollgate.yaml");
    let mut args = vec![
        "explain",
        "-c",
        config.to_str().unwrap(),
        "--request",
        request.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run_tollgate(&args)
}

#[test]
fn explain_names_the_matched_rule_and_the_route() {
    let (dir, _) = repo("");
    let out = explain(dir.path(), &["--key", "vk-ml", "-H", "x-tier: premium"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(text.contains("key        vk-ml (team ml)"), "{text}");
    let rule_line = text
        .lines()
        .find(|l| l.contains("premium-header"))
        .expect(&text);
    assert!(
        rule_line.contains("MATCHED") && rule_line.contains("line 10"),
        "{text}"
    );
    assert!(
        text.contains("route      b/premium-model by rule `premium-header`"),
        "{text}"
    );
    assert!(text.contains("provider key main"), "{text}");
    assert!(
        !text.contains("sk-secret"),
        "the secret never prints: {text}"
    );
    assert!(text.contains("fallbacks  a/gpt-4o"), "{text}");
    assert!(text.contains("team:ml"), "limits are listed: {text}");

    let out = explain(dir.path(), &["--key", "vk-ml", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON trace");
    assert_eq!(json["rule"], serde_json::Value::Null);
    assert_eq!(json["route"]["route"], "a/gpt-4o");
    assert_eq!(json["rules"][0]["name"], "ml-saver");
    assert_eq!(json["rules"][0]["result"], "not_matched");
    assert_eq!(json["rules"][1]["result"], "not_matched");
    assert_eq!(json["outcome"]["status"], 200);

    // auth.required with no --key is an error, not a guess.
    let out = explain(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--key"), "{}", stderr(&out));
}

#[test]
fn check_rejects_broken_cel_naming_the_rule_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("badcel.yaml");
    std::fs::write(
        &path,
        "providers:
  - {name: openai, kind: openai, keys: [{key: x}]}
virtual_keys:
  - {id: vk, key: s}
routing:
  rules:
    - name: fine
      when: '\"x\" in headers'
      targets: [{model: openai/gpt-4o}]
    - name: broken-rule
      scope: global
      when: 'headers[\"x-tier\"] == '
      targets: [{model: openai/gpt-4o}]
",
    )
    .unwrap();
    let out = run_tollgate(&["check", "-c", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{}:12:", path.display()))
            && err.contains("rule `broken-rule`: invalid CEL at 1:"),
        "{err}"
    );
    assert!(!err.contains("`fine`"), "{err}");
}

#[test]
fn tool_cases_accept_the_anonymous_key_where_the_config_lets_callers_in() {
    let dir = tempfile::tempdir().unwrap();
    let config = "auth: {required: false}
providers:
  - {name: a, kind: openai_compatible, base_url: 'http://127.0.0.1:9/v1', models: ['*']}
mcp:
  session_secret: a-session-secret-of-32-characters!
  servers:
    - {name: tickets, transport: http, url: 'http://127.0.0.1:9/mcp'}
";
    std::fs::write(dir.path().join("tollgate.yaml"), config).unwrap();
    let cases = "config: tollgate.yaml
cases:
  - name: anonymous callers may search tickets
    key: anonymous
    mcp: {tool: tickets__search, arguments: {query: refund}}
    expect: {status: 200}
  - name: an unknown key is a mistake in the case
    key: vk-nobody
    mcp: {tool: tickets__search, arguments: {query: refund}}
    expect: {status: 200}
";
    let path = dir.path().join("cases.yaml");
    std::fs::write(&path, cases).unwrap();
    let out = run_tollgate(&["test", path.to_str().unwrap()]);
    let text = stdout(&out);
    assert!(
        text.contains("ok   anonymous callers may search tickets\n"),
        "{text}{}",
        stderr(&out)
    );
    assert!(
        format!("{text}{}", stderr(&out)).contains("unknown virtual key `vk-nobody`"),
        "{text}{}",
        stderr(&out)
    );
    assert_eq!(out.status.code(), Some(1));
}
