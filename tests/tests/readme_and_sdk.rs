//! The README's examples, run as written against the quickstart config, and the official
//! OpenAI Python SDK against the gateway.

use std::process::Command;
use tollgate_e2e::{embedder_dir, python_with, Gateway, Mock};

fn repo_file(rel: &str) -> String {
    let path = format!("{}/../{rel}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The quickstart config, pointed at `mock` and at free ports.
fn quickstart(mock: &Mock) -> Gateway {
    let text = repo_file("policies/quickstart.yaml")
        .replace("http://127.0.0.1:9000", &mock.url)
        .replace("listen: 127.0.0.1:8080", "listen: 127.0.0.1:0")
        .replace("admin_listen: 127.0.0.1:8081", "admin_listen: 127.0.0.1:0")
        .replace(
            "model_dir: models/all-minilm-l6-v2",
            &format!("model_dir: '{}'", embedder_dir().display()),
        );
    Gateway::start(&text)
}

/// The code block that follows `<!-- example: NAME -->` in the README.
fn readme_example(name: &str) -> String {
    let readme = repo_file("README.md");
    let marker = format!("<!-- example: {name} -->");
    let after = &readme[readme
        .find(&marker)
        .unwrap_or_else(|| panic!("no {marker}"))
        + marker.len()..];
    let start = after.find("```").unwrap();
    let body = &after[start..];
    let body = &body[body.find('\n').unwrap() + 1..];
    body[..body.find("```").unwrap()].to_string()
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run example");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "example failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn readme_curl_example_works() {
    let mock = Mock::start(&[]);
    let gw = quickstart(&mock);
    let script = readme_example("curl").replace("http://127.0.0.1:8080", &gw.url);
    let out = run(Command::new("bash")
        .arg("-c")
        .arg(format!("set -e\n{script}")));
    let reply: serde_json::Value = serde_json::from_str(&out).expect("curl printed JSON");
    assert!(reply["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .starts_with("mock reply"));
}

#[test]
fn readme_python_example_works() {
    let python = python_with(&["openai"]);
    let mock = Mock::start(&[]);
    let gw = quickstart(&mock);
    let script = readme_example("python").replace("http://127.0.0.1:8080", &gw.url);
    let out = run(Command::new(python).arg("-c").arg(script));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].starts_with("mock reply"), "{out}");
    assert_eq!(
        lines[0], lines[1],
        "streamed text equals the non-streamed answer"
    );
}

#[test]
fn openai_sdk_sees_errors_with_their_types() {
    let python = python_with(&["openai"]);
    let mock = Mock::start(&[]);
    let gw = quickstart(&mock);
    let script = format!(
        r#"
import openai
ok = openai.OpenAI(base_url="{url}/v1", api_key="tg-demo-key", max_retries=0)
bad = openai.OpenAI(base_url="{url}/v1", api_key="wrong", max_retries=0)
try:
    bad.chat.completions.create(model="gpt-4o-mini", messages=[{{"role": "user", "content": "x"}}])
    raise SystemExit("expected 401")
except openai.AuthenticationError as e:
    assert e.status_code == 401 and e.body["type"] == "invalid_key", e.body
try:
    ok.chat.completions.create(model="gpt-4o", messages=[{{"role": "user", "content": "x"}}])
    raise SystemExit("expected 403")
except openai.PermissionDeniedError as e:
    assert e.body["type"] == "model_not_allowed", e.body
emb = ok.embeddings.create(model="text-embedding-3-small", input=["one", "two"])
assert len(emb.data) == 2
models = [m.id for m in ok.models.list()]
assert models == ["gpt-4o-mini", "text-embedding-3-small"], models
raw = ok.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=[{{"role": "user", "content": "x"}}])
assert raw.headers["x-tollgate-provider"] == "mock"
print("sdk ok")
"#,
        url = gw.url
    );
    let out = run(Command::new(python).arg("-c").arg(script));
    assert_eq!(out.trim(), "sdk ok");
}

fn check_readme_config(name: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{name}.yaml"));
    std::fs::write(&path, readme_example(name)).unwrap();
    let out = Command::new(tollgate_e2e::bin_path("tollgate"))
        .args(["check", "-c", path.to_str().unwrap()])
        .env("OPENAI_API_KEY", "sk-test")
        .env("TG_KEY_ML", "tg-test")
        .env("OTEL_TOKEN", "otel-test")
        .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
        .env("AWS_SECRET_ACCESS_KEY", "secret-test")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.into_owned()
}

#[test]
fn readme_limits_example_compiles() {
    let stdout = check_readme_config("limits");
    assert!(stdout.contains("1 providers, 1 virtual keys"), "{stdout}");
}

#[test]
fn readme_policy_example_compiles() {
    let stdout = check_readme_config("policy");
    assert!(stdout.contains("2 providers, 1 virtual keys"), "{stdout}");
}

#[test]
fn readme_logs_cache_and_traces_examples_compile() {
    for name in ["logs", "cache", "traces"] {
        let stdout = check_readme_config(name);
        assert!(stdout.contains("0 providers"), "{name}: {stdout}");
    }
}

#[cfg(feature = "postgres")]
#[test]
fn readme_postgres_logs_example_logs_to_postgres() {
    let pg = tollgate_e2e::PostgresServer::start();
    pg.create_db("tollgate");
    let mock = Mock::start(&[]);
    let text = readme_example("logs-postgres")
        .replace("127.0.0.1:5432", &format!("127.0.0.1:{}", pg.port))
        + &format!(
            "providers:\n  - {{name: p, kind: openai_compatible, base_url: {}}}\n\
             virtual_keys:\n  - {{id: vk, key: k}}\n",
            mock.base_url()
        );
    let gw = Gateway::start_with_env(&text, &[("TG_PG_PASSWORD", tollgate_e2e::PG_PASSWORD)]);
    let r = tollgate_e2e::post_json(
        &format!("{}/v1/chat/completions", gw.url),
        &[("authorization", "Bearer k")],
        &serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while pg.psql("tollgate", "SELECT count(*) FROM tollgate_requests") != "1" {
        assert!(
            std::time::Instant::now() < deadline,
            "the record never reached PostgreSQL"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let logs = tollgate_e2e::get(&format!("{}/admin/logs", gw.admin_url), &[]).json();
    assert_eq!(logs["records"][0]["key_id"], "vk", "{logs}");
    let config = tollgate_e2e::get(&format!("{}/admin/config", gw.admin_url), &[]).body;
    assert!(
        config.contains("postgres://tollgate:[REDACTED]@127.0.0.1:"),
        "{config}"
    );
    assert!(!config.contains(tollgate_e2e::PG_PASSWORD), "{config}");
}

#[test]
fn readme_bedrock_example_compiles() {
    let stdout = check_readme_config("bedrock");
    assert!(stdout.contains("1 providers"), "{stdout}");
}

#[test]
fn readme_shared_semantic_cache_example_serves_a_paraphrase_from_redis() {
    let redis = tollgate_e2e::RedisServer::start_v8();
    let mock = Mock::start(&[]);
    let text = readme_example("semantic-redis")
        .replace(
            "model_dir: models/all-minilm-l6-v2",
            &format!("model_dir: '{}'", embedder_dir().display()),
        )
        .replace("redis://127.0.0.1:6379/0", &redis.url())
        + &format!(
            "providers:\n  - {{name: p, kind: openai_compatible, base_url: {}}}\n\
             virtual_keys:\n  - {{id: vk, key: k}}\n",
            mock.base_url()
        );
    let (one, two) = (Gateway::start(&text), Gateway::start(&text));
    let ask = |gw: &Gateway, text: &str| {
        let r = tollgate_e2e::post_json(
            &format!("{}/v1/chat/completions", gw.url),
            &[("authorization", "Bearer k")],
            &serde_json::json!({"model": "m", "messages": [{"role": "user", "content": text}]}),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        r.header("x-tollgate-cache").unwrap_or("none").to_string()
    };
    assert_eq!(ask(&one, "How do I reset my password?"), "miss");
    // The answer and its vector are written after the reply; give them a moment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let metrics = tollgate_e2e::get(&format!("{}/metrics", one.admin_url), &[]).body;
        if metrics.contains("tollgate_cache_stores_total 1") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{metrics}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(ask(&two, "How can I reset my password?"), "hit-semantic");
    assert_eq!(mock.requests().len(), 1);
}

#[test]
fn readme_qdrant_semantic_cache_example_is_valid_and_starts() {
    let redis = tollgate_e2e::RedisServer::start();
    let text = readme_example("semantic-qdrant")
        .replace(
            "model_dir: models/all-minilm-l6-v2",
            &format!("model_dir: '{}'", embedder_dir().display()),
        )
        .replace("redis://127.0.0.1:6379/0", &redis.url());
    // Qdrant is reached on first use, so the gateway starts whether or not one is running.
    let gw = Gateway::start(&text);
    let config = tollgate_e2e::get(&format!("{}/admin/config", gw.admin_url), &[]).body;
    assert!(config.contains("qdrant"), "{config}");
}

#[test]
fn readme_semantic_cache_example_starts() {
    // `check` validates the section; starting a gateway loads the model it names.
    let text = readme_example("semantic").replace(
        "model_dir: models/all-minilm-l6-v2",
        &format!("model_dir: '{}'", embedder_dir().display()),
    );
    let gw = Gateway::start(&text);
    let metrics = tollgate_e2e::get(&format!("{}/metrics", gw.admin_url), &[]).body;
    assert!(
        metrics.contains("tollgate_cache_index_entries 0"),
        "{metrics}"
    );
}

#[test]
fn readme_mcp_example_compiles() {
    let stdout = check_readme_config("mcp");
    assert!(stdout.contains("1 virtual keys, 2 MCP servers"), "{stdout}");
}
