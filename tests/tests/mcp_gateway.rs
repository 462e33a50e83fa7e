//! The MCP gateway (SPEC §8) with real peers: upstream `@modelcontextprotocol/server-everything`
//! and `@modelcontextprotocol/server-filesystem` (npm, over stdio) and a Python-SDK server over
//! streamable HTTP; the client is the official Python SDK over streamable HTTP.

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tollgate_e2e::{get, npm_bin_script, post_json, python_script_json, python_with, Gateway};

const EVERYTHING: &str = "@modelcontextprotocol/server-everything";
const FILESYSTEM: &str = "@modelcontextprotocol/server-filesystem";

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/mcp")
        .join(name)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// The Python-SDK weather server, requiring `Authorization: Bearer <token>`.
struct WeatherServer {
    child: Child,
    url: String,
}

impl WeatherServer {
    /// Over streamable HTTP, at `/mcp`.
    fn start(token: &str) -> WeatherServer {
        WeatherServer::start_as(token, "http")
    }

    /// `mode` is `http` (streamable HTTP, `/mcp`) or `sse` (HTTP+SSE, `/sse`).
    fn start_as(token: &str, mode: &str) -> WeatherServer {
        let python = python_with(&["mcp"]);
        let port = free_port();
        let child = Command::new(python)
            .arg(fixture("weather_server.py"))
            .arg(port.to_string())
            .arg(token)
            .arg(mode)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the weather server");
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "weather server did not listen");
            std::thread::sleep(Duration::from_millis(100));
        }
        let path = if mode == "sse" { "sse" } else { "mcp" };
        WeatherServer {
            child,
            url: format!("http://127.0.0.1:{port}/{path}"),
        }
    }
}

impl Drop for WeatherServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Config for the two npm servers over stdio (plus `extra` servers), with `rest` after it.
fn config(fs_root: &Path, extra_servers: &str, rest: &str) -> String {
    let everything = npm_bin_script(EVERYTHING);
    let filesystem = npm_bin_script(FILESYSTEM);
    format!(
        r#"logs: {{kind: sqlite, path: ./logs.db}}
mcp:
  servers:
    - {{name: everything, transport: stdio, command: node, args: ["{}", stdio], env: {{MCP_TEST_MARKER: from-config}}, prices: {{echo: 0.25}}}}
    - {{name: fs, transport: stdio, command: node, args: ["{}", "{}"]}}
{extra_servers}
  tool_groups:
    readonly: [fs__read_*, fs__list_*]
{rest}"#,
        everything.display(),
        filesystem.display(),
        fs_root.display()
    )
}

/// Runs the Python SDK client against the gateway with `key`.
fn client(gw: &Gateway, key: &str, steps: Value) -> Value {
    let url = format!("{}/mcp", gw.url);
    python_script_json(
        &["mcp"],
        &fixture("client.py"),
        &[&url, key, &steps.to_string()],
    )
}

fn list(names: &Value) -> Vec<String> {
    names["tools"]
        .as_array()
        .expect("a tools list")
        .iter()
        .map(|t| t.as_str().unwrap_or_default().to_string())
        .collect()
}

/// Every request-log record of `key`, waiting until there are at least `n`.
fn audit(gw: &Gateway, key: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let page = get(
            &format!("{}/admin/logs?key={key}&limit=100", gw.admin_url),
            &[],
        )
        .json();
        let records = page["records"].as_array().cloned().unwrap_or_default();
        if records.len() >= n || Instant::now() > deadline {
            return records;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn python_sdk_sees_merged_catalogue_filtered_per_key_with_guardrails_and_audit() {
    let weather = WeatherServer::start("upstream-secret");
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("hello.txt"), "hello from disk").unwrap();
    let root_path = root.path().canonicalize().unwrap();
    let weather_server = format!(
        "    - {{name: weather, transport: http, url: \"{}\", headers: {{Authorization: Bearer upstream-secret}}}}",
        weather.url
    );
    let gw = Gateway::start(&config(
        &root_path,
        &weather_server,
        r#"guardrails:
  - name: no-rm-rf
    when: 'endpoint == "mcp" && tool.server == "everything"'
    detect: {regex: ['rm\s+-rf']}
    action: block
  - name: no-emails
    stage: output
    detect: {pii: [email]}
    action: redact
virtual_keys:
  - {id: vk-all, key: sk-all}
  - id: vk-reader
    key: sk-reader
    mcp: {allow: ["group:readonly", "weather__*"], deny: [weather__station_contact]}
"#,
    ));
    let hello = root_path.join("hello.txt").display().to_string();

    let all = client(
        &gw,
        "sk-all",
        json!([
            {"op": "list"},
            {"op": "call", "tool": "everything__echo", "arguments": {"message": "hi"}},
            {"op": "call", "tool": "fs__read_text_file", "arguments": {"path": hello}},
            {"op": "call", "tool": "weather__forecast", "arguments": {"city": "Paris"}},
            {"op": "call", "tool": "everything__echo", "arguments": {"message": "now rm -rf /"}},
            {"op": "call", "tool": "weather__station_contact", "arguments": {"city": "Oslo"}},
        ]),
    );
    assert_eq!(all["server"], "tollgate");
    let r = all["results"].as_array().unwrap();
    let tools = list(&r[0]);
    for t in [
        "everything__echo",
        "everything__get-sum",
        "fs__read_text_file",
        "fs__write_file",
        "weather__forecast",
        "weather__station_contact",
    ] {
        assert!(tools.contains(&t.to_string()), "{t} missing from {tools:?}");
    }
    assert!(tools.iter().all(|t| t.contains("__")), "{tools:?}");
    assert_eq!(r[1]["text"], "Echo: hi", "{}", r[1]);
    assert_eq!(r[2]["text"], "hello from disk", "{}", r[2]);
    assert_eq!(r[3]["text"], "Sunny and 21 degrees in Paris", "{}", r[3]);
    // The guardrail stops the call by its arguments, before the server sees it.
    assert_eq!(r[4]["ok"], false, "{}", r[4]);
    assert_eq!(r[4]["data"]["type"], "guardrail_blocked");
    assert_eq!(r[4]["data"]["guardrail"], "no-rm-rf");
    // PII in a result is redacted before the client sees it.
    let contact = r[5]["text"].as_str().unwrap();
    assert!(contact.contains("[REDACTED:EMAIL]"), "{contact}");
    assert!(!contact.contains("jane.doe"), "{contact}");

    let reader = client(
        &gw,
        "sk-reader",
        json!([
            {"op": "list"},
            {"op": "call", "tool": "fs__list_directory", "arguments": {"path": root_path.display().to_string()}},
            {"op": "call", "tool": "fs__write_file", "arguments": {"path": hello, "content": "x"}},
            {"op": "call", "tool": "weather__station_contact", "arguments": {"city": "Oslo"}},
        ]),
    );
    let r = reader["results"].as_array().unwrap();
    let mut tools = list(&r[0]);
    tools.sort();
    assert_eq!(
        tools,
        [
            "fs__list_allowed_directories",
            "fs__list_directory",
            "fs__list_directory_with_sizes",
            "fs__read_file",
            "fs__read_media_file",
            "fs__read_multiple_files",
            "fs__read_text_file",
            "weather__forecast",
            "weather__open_station",
        ]
    );
    assert!(
        r[1]["text"].as_str().unwrap().contains("hello.txt"),
        "{}",
        r[1]
    );
    for refused in &r[2..] {
        assert_eq!(refused["ok"], false, "{refused}");
        assert_eq!(refused["data"]["type"], "tool_not_allowed");
        assert_eq!(refused["data"]["status"], 403);
    }
    assert_eq!(
        std::fs::read_to_string(root_path.join("hello.txt")).unwrap(),
        "hello from disk",
        "a refused write never reaches the server"
    );

    // One audit record per tool call, refused ones included.
    let records = audit(&gw, "vk-all", 5);
    assert_eq!(records.len(), 5, "{records:#?}");
    let find = |tool: &str, status: u64| {
        records
            .iter()
            .find(|r| r["requested_model"] == tool && r["status"] == status)
            .unwrap_or_else(|| panic!("no {status} record for {tool}: {records:#?}"))
    };
    let echo = find("everything__echo", 200);
    assert_eq!(echo["endpoint"], "mcp");
    assert_eq!(echo["provider"], "everything");
    assert_eq!(echo["tool"]["server"], "everything");
    assert_eq!(echo["tool"]["name"], "echo");
    assert_eq!(echo["tool"]["arguments"], json!({"message": "hi"}));
    assert!(echo["tool"]["result_bytes"].as_u64().unwrap() > 0);
    assert!(echo["total_us"].as_u64().unwrap() > 0);
    let blocked = find("everything__echo", 403);
    assert_eq!(blocked["error_type"], "guardrail_blocked");
    assert_eq!(blocked["guardrails"][0]["name"], "no-rm-rf");
    assert_eq!(blocked["tool"]["result_bytes"], Value::Null);
    let redacted = find("weather__station_contact", 200);
    assert_eq!(redacted["guardrails"][0]["action"], "redact");
    find("fs__read_text_file", 200);
    find("weather__forecast", 200);
    let refused = audit(&gw, "vk-reader", 3);
    assert_eq!(
        refused
            .iter()
            .filter(|r| r["error_type"] == "tool_not_allowed")
            .count(),
        2
    );

    // Upstream credentials stay inside the gateway.
    let effective = get(&format!("{}/admin/config", gw.admin_url), &[]).body;
    assert!(!effective.contains("upstream-secret"), "{effective}");
    assert!(effective.contains("weather"), "{effective}");

    let health = get(&format!("{}/admin/health", gw.admin_url), &[]).json();
    let servers = health["mcp_servers"].as_array().unwrap();
    assert_eq!(servers.len(), 3);
    assert!(servers.iter().all(|s| s["status"] == "up"), "{servers:?}");
}

/// A raw JSON-RPC call on `/mcp` (no SDK): what HTTP clients and proxies see.
fn rpc(gw: &Gateway, key: &str, method: &str, params: Value) -> tollgate_e2e::Reply {
    post_json(
        &format!("{}/mcp", gw.url),
        &[
            ("authorization", &format!("Bearer {key}")),
            ("accept", "application/json, text/event-stream"),
        ],
        &json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}),
    )
}

fn echo(gw: &Gateway, key: &str, message: &str) -> tollgate_e2e::Reply {
    rpc(
        gw,
        key,
        "tools/call",
        json!({"name": "everything__echo", "arguments": {"message": message}}),
    )
}

#[test]
fn tool_call_limits_answer_429_and_a_killed_stdio_server_is_restarted() {
    let root = tempfile::tempdir().unwrap();
    let gw = Gateway::start(&config(
        root.path(),
        "",
        r#"virtual_keys:
  - {id: vk-a, key: sk-a}
  - id: vk-limited
    key: sk-limited
    mcp: {allow: [everything__echo], rate_limit: {requests: {limit: 2, window: 1m}}}
"#,
    ));

    // A tool-call limit: the third call in the window is refused with 429 and retry-after,
    // in JSON-RPC shape, and the Python SDK sees the same refusal.
    for _ in 0..2 {
        let ok = echo(&gw, "sk-limited", "x");
        assert_eq!(ok.status, 200, "{}", ok.body);
    }
    let limited = echo(&gw, "sk-limited", "x");
    assert_eq!(limited.status, 429, "{}", limited.body);
    assert!(limited.header("retry-after").is_some());
    let body = limited.json();
    assert_eq!(body["id"], 1);
    assert_eq!(body["error"]["data"]["type"], "rate_limited");
    assert_eq!(body["error"]["data"]["scope"], "virtual_key:vk-limited/mcp");
    let sdk = client(
        &gw,
        "sk-limited",
        json!([{"op": "call", "tool": "everything__echo", "arguments": {"message": "x"}}]),
    );
    assert_eq!(sdk["results"][0]["data"]["type"], "rate_limited", "{sdk}");
    assert_eq!(gw.used("virtual_key:vk-limited/mcp", "requests"), 2);

    // Kill the stdio server mid-run: the next call still works, on a restarted process.
    let server_pid = || {
        let health = get(&format!("{}/admin/health", gw.admin_url), &[]).json();
        let s = health["mcp_servers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "everything")
            .cloned()
            .unwrap();
        (s["pid"].as_u64(), s["restarts"].as_u64().unwrap())
    };
    let (pid, restarts) = server_pid();
    let pid = pid.expect("a running stdio server has a pid");
    assert_eq!(restarts, 0);
    assert!(Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    let after = echo(&gw, "sk-a", "still there?");
    assert_eq!(after.status, 200, "{}", after.body);
    assert_eq!(
        after.json()["result"]["content"][0]["text"],
        "Echo: still there?"
    );
    let (new_pid, restarts) = server_pid();
    assert_ne!(new_pid, Some(pid));
    assert_eq!(restarts, 1);
    // The tool's price is attributed to the call.
    let records = audit(&gw, "vk-a", 1);
    assert_eq!(records[0]["cost_usd"], 0.25, "{records:#?}");
    // A stdio server gets the `env` of its config (credentials, say).
    let env = rpc(
        &gw,
        "sk-a",
        "tools/call",
        json!({"name": "everything__get-env"}),
    );
    assert!(env.body.contains("from-config"), "{}", env.body);
    let metrics = get(&format!("{}/metrics", gw.admin_url), &[]).body;
    assert!(metrics.contains("endpoint=\"mcp\""), "{metrics}");
    assert!(
        metrics.contains("tollgate_mcp_server_restarts_total{server=\"everything\"} 1"),
        "{metrics}"
    );
}

#[test]
fn an_http_sse_server_is_served_with_its_credentials() {
    let weather = WeatherServer::start_as("sse-secret", "sse");
    let root = tempfile::tempdir().unwrap();
    let server = format!(
        "    - {{name: weather, transport: sse, url: \"{}\", headers: {{Authorization: Bearer sse-secret}}}}",
        weather.url
    );
    let gw = Gateway::start(&config(
        root.path(),
        &server,
        "virtual_keys:\n  - {id: vk-a, key: sk-a}\n",
    ));
    let listed = rpc(&gw, "sk-a", "tools/list", json!({})).json();
    let names: Vec<&str> = listed["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(names.contains(&"weather__forecast"), "{names:?}");
    let call = rpc(
        &gw,
        "sk-a",
        "tools/call",
        json!({"name": "weather__forecast", "arguments": {"city": "Lima"}}),
    );
    assert_eq!(call.status, 200, "{}", call.body);
    assert_eq!(
        call.json()["result"]["content"][0]["text"],
        "Sunny and 21 degrees in Lima"
    );
    // Prompts and resources of the stdio servers pass through too.
    let prompts = rpc(&gw, "sk-a", "prompts/list", json!({})).json();
    assert!(
        prompts["result"]["prompts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("everything__"))),
        "{prompts}"
    );
    let resources = rpc(&gw, "sk-a", "resources/list", json!({})).json();
    let uri = resources["result"]["resources"][0]["uri"]
        .as_str()
        .unwrap_or_else(|| panic!("no resources: {resources}"))
        .to_string();
    let read = rpc(&gw, "sk-a", "resources/read", json!({"uri": uri})).json();
    assert_eq!(read["result"]["contents"][0]["uri"], uri, "{read}");
}

#[test]
fn a_tool_list_change_upstream_reaches_the_catalogue() {
    let weather = WeatherServer::start("secret");
    let root = tempfile::tempdir().unwrap();
    let server = format!(
        "    - {{name: weather, transport: http, url: \"{}\", headers: {{Authorization: Bearer secret}}}}",
        weather.url
    );
    let gw = Gateway::start(&config(
        root.path(),
        &server,
        "virtual_keys:\n  - {id: vk-a, key: sk-a}\n",
    ));
    let names = |gw: &Gateway| -> Vec<String> {
        rpc(gw, "sk-a", "tools/list", json!({})).json()["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|t| t["name"].as_str().map(str::to_string))
            .collect()
    };
    assert!(!names(&gw).contains(&"weather__air_quality_oslo".to_string()));
    // A client listening on GET /mcp hears about the change too.
    let mut events = TcpStream::connect(gw.url.trim_start_matches("http://")).unwrap();
    write!(
        events,
        "GET /mcp HTTP/1.1\r\nhost: x\r\nauthorization: Bearer sk-a\r\naccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    events
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    // The server adds a tool and sends notifications/tools/list_changed; the gateway lists
    // the server's tools again and serves the new one.
    let opened = rpc(
        &gw,
        "sk-a",
        "tools/call",
        json!({"name": "weather__open_station", "arguments": {"city": "Oslo"}}),
    );
    assert_eq!(opened.status, 200, "{}", opened.body);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !names(&gw).contains(&"weather__air_quality_oslo".to_string()) {
        assert!(Instant::now() < deadline, "the new tool never appeared");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut heard = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !heard.contains("notifications/tools/list_changed") {
        assert!(Instant::now() < deadline, "no list_changed event: {heard}");
        let mut buf = [0u8; 4096];
        if let Ok(n) = events.read(&mut buf) {
            heard.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }
    assert!(heard.starts_with("HTTP/1.1 200"), "{heard}");
    assert!(heard.contains("text/event-stream"), "{heard}");
    let air = rpc(
        &gw,
        "sk-a",
        "tools/call",
        json!({"name": "weather__air_quality_oslo"}),
    );
    assert_eq!(
        air.json()["result"]["content"][0]["text"],
        "The air in Oslo is clean",
        "{}",
        air.body
    );
}

#[test]
fn sessions_versions_and_auth_on_the_wire() {
    let root = tempfile::tempdir().unwrap();
    let gw = Gateway::start(&config(
        root.path(),
        "    - {name: ghost, transport: stdio, command: /nonexistent/mcp-server}",
        "virtual_keys:\n  - {id: vk-a, key: sk-a}\n  - {id: vk-b, key: sk-b}\n",
    ));
    // A server that cannot start is down with its reason, and its calls are 502s.
    let health = get(&format!("{}/admin/health", gw.admin_url), &[]).json();
    let ghost = health["mcp_servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "ghost")
        .cloned()
        .unwrap();
    assert_eq!(ghost["status"], "down", "{ghost}");
    assert!(
        ghost["last_error"]
            .as_str()
            .unwrap()
            .contains("cannot start"),
        "{ghost}"
    );
    let call = rpc(
        &gw,
        "sk-a",
        "tools/call",
        json!({"name": "ghost__anything"}),
    );
    assert_eq!(call.status, 502, "{}", call.body);
    assert_eq!(call.json()["error"]["data"]["type"], "upstream_error");
    let init = rpc(
        &gw,
        "sk-a",
        "initialize",
        json!({"protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": {"name": "curl", "version": "1"}}),
    );
    assert_eq!(init.status, 200, "{}", init.body);
    assert_eq!(init.json()["result"]["protocolVersion"], "2025-03-26");
    assert_eq!(
        init.json()["result"]["capabilities"]["tools"]["listChanged"],
        true
    );
    let session = init
        .header("mcp-session-id")
        .expect("a session id")
        .to_string();
    // A version the gateway does not speak gets its newest one.
    let newer = rpc(
        &gw,
        "sk-a",
        "initialize",
        json!({"protocolVersion": "2099-01-01", "capabilities": {}, "clientInfo": {"name": "x", "version": "1"}}),
    );
    assert_eq!(newer.json()["result"]["protocolVersion"], "2025-11-25");

    let with_session = |key: &str, id: &str| {
        post_json(
            &format!("{}/mcp", gw.url),
            &[
                ("authorization", &format!("Bearer {key}")),
                ("mcp-session-id", id),
            ],
            &json!({"jsonrpc": "2.0", "id": 2, "method": "ping"}),
        )
    };
    assert_eq!(with_session("sk-a", &session).status, 200);
    // The session is bound to its key; a forged or foreign one is unknown (404).
    assert_eq!(with_session("sk-b", &session).status, 404);
    assert_eq!(with_session("sk-a", "00.00").status, 404);

    let anonymous = post_json(
        &format!("{}/mcp", gw.url),
        &[],
        &json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"}),
    );
    assert_eq!(anonymous.status, 401);
    assert_eq!(anonymous.json()["error"]["data"]["type"], "missing_key");
    assert_eq!(anonymous.json()["id"], 3);

    let unknown = rpc(&gw, "sk-a", "no/such/method", json!({}));
    assert_eq!(unknown.json()["error"]["code"], -32601);
    let bad = tollgate_e2e::post_raw(
        &format!("{}/mcp", gw.url),
        &[("authorization", "Bearer sk-a")],
        b"{not json",
    );
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["error"]["code"], -32700);
    let notification = post_json(
        &format!("{}/mcp", gw.url),
        &[("authorization", "Bearer sk-a")],
        &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    );
    assert_eq!(notification.status, 202);
    // GET opens the event stream only for a key and an `Accept: text/event-stream`.
    let url = format!("{}/mcp", gw.url);
    assert_eq!(get(&url, &[]).status, 401);
    assert_eq!(get(&url, &[("authorization", "Bearer sk-a")]).status, 406);
}

#[test]
fn check_reports_mcp_config_errors_with_their_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tollgate.yaml");
    std::fs::write(
        &path,
        r#"mcp:
  servers:
    - {name: fs, transport: stdio, command: node}
    - {name: web, transport: http}
    - {name: bad, transport: carrier-pigeon, url: "http://x"}
virtual_keys:
  - id: vk-a
    key: sk-a
    mcp: {allow: ["nosuch__read", "fs__[abc]", "group:missing"]}
"#,
    )
    .unwrap();
    let out = tollgate_e2e::run_tollgate(&["check", "-c", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    // An unknown transport is a parse error, reported alone.
    assert!(stderr.contains("carrier-pigeon"), "{stderr}");
    assert!(stderr.contains(":5:"), "{stderr}");

    std::fs::write(
        &path,
        r#"mcp:
  servers:
    - {name: fs, transport: stdio, command: node}
    - {name: web, transport: http}
virtual_keys:
  - id: vk-a
    key: sk-a
    mcp: {allow: ["nosuch__read", "fs__[abc]", "group:missing"]}
"#,
    )
    .unwrap();
    let out = tollgate_e2e::run_tollgate(&["check", "-c", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    for expected in [
        "MCP server `web` uses transport http and needs `url`",
        "names unknown MCP server `nosuch`",
        "`[` is not allowed",
        "unknown tool group `missing`",
    ] {
        assert!(stderr.contains(expected), "{expected} not in {stderr}");
    }
    assert!(stderr.contains(":8:"), "errors carry their line: {stderr}");
}

#[test]
fn a_session_from_one_replica_is_served_by_another_with_the_same_secret() {
    let replica = |secret: &str| {
        Gateway::start(&format!(
            "mcp: {{session_secret: {secret}}}\nvirtual_keys:\n  - {{id: vk-a, key: sk-a}}\n"
        ))
    };
    let (a, b) = (
        replica("shared-secret-0123456789"),
        replica("shared-secret-0123456789"),
    );
    let other = replica("another-secret-0123456789");
    let init = rpc(
        &a,
        "sk-a",
        "initialize",
        json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "x", "version": "1"}}),
    );
    let session = init.header("mcp-session-id").unwrap().to_string();
    let ping = |gw: &Gateway| {
        post_json(
            &format!("{}/mcp", gw.url),
            &[
                ("authorization", "Bearer sk-a"),
                ("mcp-session-id", &session),
            ],
            &json!({"jsonrpc": "2.0", "id": 2, "method": "ping"}),
        )
        .status
    };
    assert_eq!(ping(&a), 200);
    assert_eq!(ping(&b), 200);
    assert_eq!(ping(&other), 404);
}

#[test]
fn a_reload_starts_added_servers_and_stops_removed_ones() {
    let root = tempfile::tempdir().unwrap();
    let everything = npm_bin_script(EVERYTHING);
    let filesystem = npm_bin_script(FILESYSTEM);
    let fs = format!(
        "    - {{name: fs, transport: stdio, command: node, args: [\"{}\", \"{}\"]}}\n",
        filesystem.display(),
        root.path().display()
    );
    let ev = format!(
        "    - {{name: everything, transport: stdio, command: node, args: [\"{}\", stdio]}}\n",
        everything.display()
    );
    let with = |servers: &str| {
        format!("mcp:\n  servers:\n{servers}virtual_keys:\n  - {{id: vk-a, key: sk-a}}\n")
    };
    let gw = Gateway::start(&with(&fs));
    let tools = |gw: &Gateway| -> Vec<String> {
        rpc(gw, "sk-a", "tools/list", json!({})).json()["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|t| t["name"].as_str().map(str::to_string))
            .collect()
    };
    let wait_for = |what: &str, ok: &dyn Fn(&[String]) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let now = tools(&gw);
            if ok(&now) {
                return;
            }
            assert!(Instant::now() < deadline, "{what}: {now:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    assert!(tools(&gw).iter().all(|t| t.starts_with("fs__")));
    let reload = |text: String| {
        std::fs::write(
            gw.config_path(),
            format!(
                "server: {{listen: {}, admin_listen: {}}}\n{text}",
                gw.url.trim_start_matches("http://"),
                gw.admin_url.trim_start_matches("http://")
            ),
        )
        .unwrap();
        let r = tollgate_e2e::post_json(&format!("{}/admin/reload", gw.admin_url), &[], &json!({}));
        assert_eq!(r.status, 200, "{}", r.body);
    };
    reload(with(&format!("{fs}{ev}")));
    wait_for("everything added", &|t| {
        t.iter().any(|n| n == "everything__echo")
    });
    reload(with(&ev));
    wait_for("fs removed", &|t| !t.iter().any(|n| n.starts_with("fs__")));
    let health = get(&format!("{}/admin/health", gw.admin_url), &[]).json();
    let names: Vec<&str> = health["mcp_servers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, ["everything"]);
}
