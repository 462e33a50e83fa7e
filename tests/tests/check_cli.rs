//! `tollgate check`: the example configs pass; broken ones fail with file:line and the name.

use tollgate_e2e::run_tollgate;

fn repo_file(rel: &str) -> String {
    format!("{}/../{rel}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn example_configs_pass() {
    for file in [
        "policies/tollgate.yaml",
        "policies/quickstart.yaml",
        "policies/mcp.yaml",
    ] {
        let out = run_tollgate(&["check", "-c", &repo_file(file)]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{file}: {}{}",
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains(": ok"), "{stdout}");
    }
}

#[test]
fn broken_config_fails_with_location_and_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.yaml");
    std::fs::write(
        &path,
        "providers:\n  - {name: openai, kind: openai, keys: [{key: x}]}\nvirtual_keys:\n  - id: vk-ml\n    key: s\n    providers:\n      - {provider: opnai, weight: 1}\n",
    )
    .unwrap();
    let out = run_tollgate(&["check", "-c", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = format!(
        "{}:7:20: virtual key `vk-ml` names unknown provider `opnai`",
        path.display()
    );
    assert!(stderr.contains(&expected), "{stderr}");
}

#[test]
fn unknown_field_fails_with_location() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("typo.json");
    std::fs::write(
        &path,
        "{\"server\": {\"listen\": \"127.0.0.1:1\",\n \"max_body\": 5}}",
    )
    .unwrap();
    let out = run_tollgate(&["check", "-c", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("typo.json:2:") && stderr.contains("unknown field `max_body`"),
        "{stderr}"
    );
}

#[test]
fn missing_environment_variable_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("env.yaml");
    std::fs::write(
        &path,
        "providers:\n  - {name: o, kind: openai, keys: [{key: ${TG_E2E_UNSET_SECRET}}]}\n",
    )
    .unwrap();
    let out = run_tollgate(&["check", "-c", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("env.yaml:2:42: environment variable `TG_E2E_UNSET_SECRET` is not set"));
}
