//! The agent CLIs themselves — Claude Code, Codex CLI and Gemini CLI, installed from npm at
//! pinned versions — run non-interactively through the gateway to a mock provider, set up
//! exactly as docs/CLIENTS.md says (its `<!-- example: NAME -->` blocks are read here, and the
//! README's copies must match them). Each run checks both ends: the CLI prints the provider's
//! answer, and the provider got the request in its own format with the gateway's provider key,
//! while the virtual key was checked, charged and logged.
//!
//! Every CLI runs with a throwaway HOME, no standard input and only the environment given
//! here, in its own process group, which is killed if it outlives [`CLI_DEADLINE`]. Each is
//! also told not to call its vendor's services (telemetry, updates, plugin catalogs), so a run
//! needs nothing but the loopback interface.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tollgate_e2e::log_traffic::all_records;
use tollgate_e2e::{node_modules_with, npm_bin_script, recorded_body, Gateway, Mock};

/// Pinned so that a new release cannot change what is tested behind the suite's back; bump
/// them deliberately, with the docs.
const CLAUDE_CODE: &str = "@anthropic-ai/claude-code@2.1.197";
const CODEX: &str = "@openai/codex@0.171.0";
const GEMINI_CLI: &str = "@google/gemini-cli@0.61.0";

/// The `node_modules` holding all three CLIs: installed together, by whichever test comes
/// first, so that no test installs packages while another runs one.
fn node_modules() -> PathBuf {
    node_modules_with(&[CLAUDE_CODE, CODEX, GEMINI_CLI])
}

/// Guards against a hung CLI only: a run normally takes a few seconds.
const CLI_DEADLINE: Duration = Duration::from_secs(240);

const VK: &str = "vk-agent-cli-secret";
const KEY_ID: &str = "vk-cli";
const PROVIDER_KEY: &str = "sk-upstream-secret";
const REPLY: &str = "Hello from the mock provider, through Tollgate.";
/// Where the docs' examples point; replaced by the test gateway's address.
const DOC_HOST: &str = "http://127.0.0.1:8080";

/// One provider named `up` of `kind` in front of `mock`, and one virtual key with a token
/// limit, so that every call is counted against it.
fn config(mock: &Mock, kind: &str, extra: &str) -> String {
    let base = match kind {
        "openai_compatible" => mock.base_url(),
        _ => mock.url.clone(),
    };
    format!(
        "providers:
  - {{name: up, kind: {kind}, base_url: '{base}', keys: [{{name: main, key: {PROVIDER_KEY}}}], retries: {{max: 0}}}}
virtual_keys:
  - {{id: {KEY_ID}, key: {VK}, rate_limit: {{tokens: {{limit: 10000000, window: 1h}}}}}}
{extra}"
    )
}

fn mock_for(kind: &str) -> Mock {
    let format = match kind {
        "openai_compatible" => "openai",
        other => other,
    };
    Mock::start(&["--format", format, "--reply", REPLY])
}

fn repo_file(rel: &str) -> String {
    let path = format!("{}/../{rel}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The code block that follows `<!-- example: NAME -->` in the repository file `rel`.
fn doc_example(rel: &str, name: &str) -> String {
    let text = repo_file(rel);
    let marker = format!("<!-- example: {name} -->");
    let after = &text[text
        .find(&marker)
        .unwrap_or_else(|| panic!("no {marker} in {rel}"))
        + marker.len()..];
    let start = after.find("```").expect("a code block after the marker");
    let body = &after[start..];
    let body = &body[body.find('\n').unwrap() + 1..];
    body[..body.find("```").unwrap()].to_string()
}

/// A CLIENTS.md example, pointed at `gw` with the test's virtual key.
fn clients_example(name: &str, gw: &Gateway) -> String {
    doc_example("docs/CLIENTS.md", name)
        .replace(DOC_HOST, &gw.url)
        .replace("vk-...", VK)
}

/// The `export NAME=VALUE` lines of a shell example (comments after the value left out), and
/// the command it ends with.
fn exports_and_command(block: &str) -> (Vec<(String, String)>, String) {
    let mut vars = Vec::new();
    let mut command = String::new();
    for line in block.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match line.strip_prefix("export ") {
            Some(assignment) => {
                let (name, value) = assignment.split_once('=').expect("NAME=VALUE");
                let value = value.split_whitespace().next().unwrap_or("");
                vars.push((name.to_string(), value.to_string()));
            }
            None => command = line.to_string(),
        }
    }
    (vars, command)
}

struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs `node SCRIPT ARGS` with HOME at `home` (working directory `home/work`), nothing on
/// stdin, and only `PATH` from this process's environment besides `env`.
fn run_cli(script: &Path, args: &[&str], home: &Path, env: &[(String, String)]) -> Run {
    let work = home.join("work");
    std::fs::create_dir_all(&work).expect("work dir");
    let out_path = home.join("cli.stdout");
    let err_path = home.join("cli.stderr");
    let mut child = Command::new("node")
        .arg(script)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(&work)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        // Its own group, so that the native binaries and relaunched processes it starts can
        // be stopped with it.
        .process_group(0)
        .spawn()
        .expect("run node (node and npm must be installed)");
    let deadline = Instant::now() + CLI_DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the CLI") {
            break Some(status);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let read = |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into();
    let Some(status) = status else {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", child.id())])
            .status();
        let _ = child.wait();
        panic!(
            "{} {args:?} still ran after {CLI_DEADLINE:?}; stopped it.\nstdout:\n{}\nstderr:\n{}",
            script.display(),
            read(&out_path),
            read(&err_path)
        );
    };
    Run {
        status,
        stdout: read(&out_path),
        stderr: read(&err_path),
    }
}

impl Run {
    fn assert_success(&self) {
        assert!(
            self.status.success(),
            "the CLI exited with {}\nstdout:\n{}\nstderr:\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
    }

    /// Exited 0 with the mock's answer somewhere in what it printed.
    fn assert_printed_the_reply(&self) {
        self.assert_success();
        assert!(
            self.stdout.contains(REPLY),
            "stdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
    }
}

/// The requests the mock answered (POSTs: the model calls), after checking that each carried
/// the gateway's provider key in `auth_header` and nothing of the virtual key.
fn provider_calls(mock: &Mock, auth_header: &str, auth_value: &str) -> Vec<Value> {
    let calls: Vec<Value> = mock
        .requests()
        .into_iter()
        .filter(|r| r["method"] == "POST")
        .collect();
    assert!(!calls.is_empty(), "the provider got no call");
    for call in &calls {
        assert_eq!(call["headers"][auth_header], auth_value, "{call}");
        assert!(
            !call.to_string().contains(VK),
            "the virtual key reached the provider: {call}"
        );
    }
    calls
}

/// Checks the gateway's side: one log record per provider call, each for the test key on
/// `endpoint`, answered by `up`; and the key's token counter charged with exactly the tokens
/// those records hold. Returns the tokens charged.
fn assert_governed(gw: &Gateway, calls: usize, endpoint: &str) -> u64 {
    let records = all_records(gw, "", calls);
    assert_eq!(records.len(), calls, "one record per call: {records:?}");
    let mut logged = 0;
    for r in &records {
        assert_eq!(r["key_id"], KEY_ID, "{r}");
        assert_eq!(r["endpoint"], endpoint, "{r}");
        assert_eq!(r["status"], 200, "{r}");
        assert_eq!(r["provider"], "up", "{r}");
        logged += r["prompt_tokens"].as_u64().unwrap() + r["completion_tokens"].as_u64().unwrap();
    }
    let used = gw.used(&format!("virtual_key:{KEY_ID}"), "tokens");
    assert!(logged > 0, "{records:?}");
    assert_eq!(used, json!(logged), "charged what the log says");
    logged
}

/// The text of the last user turn of an OpenAI Chat request.
fn last_user_text(chat: &Value) -> String {
    let user = chat["messages"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .unwrap_or_else(|| panic!("no user message: {chat}"));
    match &user["content"] {
        Value::String(s) => s.clone(),
        parts => parts
            .as_array()
            .unwrap()
            .iter()
            .fold(String::new(), |s, p| {
                s + p["text"].as_str().unwrap_or_default()
            }),
    }
}

/// The README shows the same Claude Code and Codex CLI setup as CLIENTS.md.
#[test]
fn readme_and_clients_doc_show_the_same_cli_settings() {
    for name in ["claude-code", "codex"] {
        assert_eq!(
            doc_example("README.md", name),
            doc_example("docs/CLIENTS.md", name),
            "README and docs/CLIENTS.md differ on example `{name}`"
        );
    }
}

// ----- Claude Code -----

/// Claude Code's printed result (`--output-format json`).
fn claude(gw: &Gateway, env_change: Option<(&str, &str)>, prompt: &str) -> Value {
    // The package's launcher for its native binary, which works whether or not npm ran the
    // install script that puts the binary in place of `bin/claude.exe`.
    let script = node_modules().join("@anthropic-ai/claude-code/cli-wrapper.cjs");
    let (mut env, command) = exports_and_command(&clients_example("claude-code", gw));
    assert_eq!(command, "claude");
    if let Some((from, to)) = env_change {
        env.iter_mut()
            .filter(|(name, _)| name == from)
            .for_each(|(name, _)| *name = to.to_string());
    }
    // Its telemetry, error reports and update checks stay off.
    env.push((
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC".into(),
        "1".into(),
    ));
    let home = tempfile::tempdir().expect("temp HOME");
    let run = run_cli(
        &script,
        &["-p", prompt, "--output-format", "json"],
        home.path(),
        &env,
    );
    run.assert_success();
    let result: Value = serde_json::from_str(run.stdout.trim())
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", run.stdout, run.stderr));
    assert_eq!(result["is_error"], false, "{result}");
    assert_eq!(result["result"], REPLY, "{result}");
    result
}

/// The tokens Claude Code says it used: what the provider reported, through the gateway.
fn claude_tokens(result: &Value) -> u64 {
    let usage = &result["usage"];
    [
        "input_tokens",
        "output_tokens",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
    ]
    .iter()
    .map(|k| usage[k].as_u64().unwrap_or(0))
    .sum()
}

/// Claude Code (its default model) to an Anthropic provider: the provider gets Claude Code's
/// own request — its beta header, and the `system` messages it puts between turns — with the
/// provider key in place of the virtual key.
#[test]
fn claude_code_reaches_an_anthropic_provider() {
    let mock = mock_for("anthropic");
    let gw = Gateway::start(&config(&mock, "anthropic", ""));
    let prompt = "Say hello to the gateway";
    let result = claude(&gw, None, prompt);

    let calls = provider_calls(&mock, "x-api-key", PROVIDER_KEY);
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["path"], "/v1/messages");
    let beta = calls[0]["headers"]["anthropic-beta"].as_str().unwrap_or("");
    assert!(beta.contains("claude-code-"), "{beta}");
    let body = recorded_body(&calls[0]);
    assert!(
        body["model"].as_str().unwrap().starts_with("claude-"),
        "{body}"
    );
    assert_eq!(body["stream"], true);
    let messages = body["messages"].as_array().unwrap();
    assert!(messages[0].to_string().contains(prompt), "{}", messages[0]);
    assert!(
        messages.iter().any(|m| m["role"] == "system"),
        "this Claude Code version sends system messages between turns to its default model, \
         and the gateway passes them: {messages:?}"
    );

    let charged = assert_governed(&gw, 1, "messages");
    assert_eq!(charged, claude_tokens(&result), "{result}");
}

/// Claude Code with `ANTHROPIC_API_KEY` (sent as `x-api-key`), to an OpenAI-format provider:
/// the request arrives translated to Chat Completions, Claude Code's system prompt and its
/// between-turn system messages first, the user's prompt last.
#[test]
fn claude_code_reaches_an_openai_provider() {
    let mock = mock_for("openai_compatible");
    let gw = Gateway::start(&config(&mock, "openai_compatible", ""));
    let prompt = "Say hello to the other format";
    let result = claude(
        &gw,
        Some(("ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_API_KEY")),
        prompt,
    );

    let calls = provider_calls(&mock, "authorization", &format!("Bearer {PROVIDER_KEY}"));
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["path"], "/v1/chat/completions");
    let body = recorded_body(&calls[0]);
    assert!(
        body["model"].as_str().unwrap().starts_with("claude-"),
        "{body}"
    );
    assert_eq!(body["stream"], true);
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(messages[0]["role"], "system", "{}", messages[0]);
    assert_eq!(
        messages.iter().filter(|m| m["role"] == "system").count(),
        1,
        "one system prompt: {messages:?}"
    );
    assert!(last_user_text(&body).contains(prompt), "{body}");
    assert!(
        body["tools"].as_array().is_some_and(|t| !t.is_empty()),
        "Claude Code's tools arrive as functions: {body}"
    );

    let charged = assert_governed(&gw, 1, "messages");
    assert_eq!(charged, claude_tokens(&result), "{result}");
}

// ----- Codex CLI -----

/// Runs `codex exec PROMPT` with the CLIENTS.md config and environment.
fn codex(gw: &Gateway, prompt: &str) -> Run {
    codex_with(gw, prompt, &[])
}

/// `codex exec` with `extra` options before the prompt.
fn codex_with(gw: &Gateway, prompt: &str, extra: &[&str]) -> Run {
    node_modules();
    let script = npm_bin_script(CODEX);
    let home = tempfile::tempdir().expect("temp HOME");
    let codex_home = home.path().join(".codex");
    std::fs::create_dir_all(&codex_home).unwrap();
    std::fs::write(
        codex_home.join("config.toml"),
        clients_example("codex-config", gw),
    )
    .unwrap();
    let (env, command) = exports_and_command(&clients_example("codex", gw));
    assert_eq!(command, "codex");
    let run = run_cli(
        &script,
        &[
            "exec",
            "--skip-git-repo-check",
            // Its analytics, update check and plugin and app catalogs stay off.
            "-c",
            "analytics.enabled=false",
            "-c",
            "check_for_update_on_startup=false",
            "--disable",
            "plugins",
            "--disable",
            "remote_plugin",
            "--disable",
            "apps",
        ]
        .into_iter()
        .chain(extra.iter().copied())
        .chain([prompt])
        .collect::<Vec<_>>(),
        home.path(),
        &env,
    );
    run.assert_printed_the_reply();
    run
}

/// CLIENTS.md's gateway alias for the model name in its Codex config, to the test's provider.
fn codex_alias() -> String {
    doc_example("docs/CLIENTS.md", "codex-alias").replace("openai/", "up/")
}

/// Codex CLI to an OpenAI-format provider: its streamed Responses request arrives as a Chat
/// Completions request for the aliased model, with its developer messages as the system
/// prompt, its tools as functions, and none of the Responses-only fields.
#[test]
fn codex_cli_reaches_an_openai_provider() {
    let mock = mock_for("openai_compatible");
    let gw = Gateway::start(&config(&mock, "openai_compatible", &codex_alias()));
    let prompt = "Say hello to the gateway from Codex";
    codex(&gw, prompt);

    let calls = provider_calls(&mock, "authorization", &format!("Bearer {PROVIDER_KEY}"));
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["path"], "/v1/chat/completions");
    let body = recorded_body(&calls[0]);
    assert_eq!(body["model"], "gpt-5.5", "the alias resolved: {body}");
    assert_eq!(body["stream"], true);
    assert_eq!(body["messages"][0]["role"], "system", "{body}");
    assert!(last_user_text(&body).contains(prompt), "{body}");
    let tools = body["tools"].as_array().expect("tools");
    assert!(tools.iter().all(|t| t["type"] == "function"), "{tools:?}");
    for field in [
        "client_metadata",
        "store",
        "include",
        "prompt_cache_key",
        "input",
    ] {
        assert!(body.get(field).is_none(), "`{field}` was forwarded: {body}");
    }

    assert_governed(&gw, 1, "responses");
}

/// Codex CLI on a model it knows sends `apply_patch` as a freeform custom tool: the provider
/// gets it as a function taking the patch text as `input`, and the run succeeds.
#[test]
fn codex_cli_on_a_model_it_knows_sends_its_custom_tool_through() {
    let mock = mock_for("openai_compatible");
    let gw = Gateway::start(&config(&mock, "openai_compatible", ""));
    codex_with(&gw, "Say hello from Codex", &["-c", "model=\"gpt-5.5\""]);

    let calls = provider_calls(&mock, "authorization", &format!("Bearer {PROVIDER_KEY}"));
    assert_eq!(calls.len(), 1, "{calls:?}");
    let body = recorded_body(&calls[0]);
    assert_eq!(body["model"], "gpt-5.5");
    let tools = body["tools"].as_array().expect("tools");
    let patch = tools
        .iter()
        .find(|t| t["function"]["name"] == "apply_patch")
        .unwrap_or_else(|| panic!("apply_patch among the tools: {tools:?}"));
    assert_eq!(patch["type"], "function");
    let params = &patch["function"]["parameters"];
    assert_eq!(params["properties"]["input"]["type"], "string", "{patch}");
    // Its grammar, which a function cannot enforce, is in the description for the model.
    let description = patch["function"]["description"].as_str().unwrap_or("");
    assert!(description.contains("grammar"), "{patch}");
    assert_governed(&gw, 1, "responses");
}

/// Codex CLI to an Anthropic provider: the same request arrives as Anthropic Messages.
#[test]
fn codex_cli_reaches_an_anthropic_provider() {
    let mock = mock_for("anthropic");
    let gw = Gateway::start(&config(&mock, "anthropic", &codex_alias()));
    let prompt = "Say hello to Claude from Codex";
    codex(&gw, prompt);

    let calls = provider_calls(&mock, "x-api-key", PROVIDER_KEY);
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["path"], "/v1/messages");
    let body = recorded_body(&calls[0]);
    assert_eq!(body["model"], "gpt-5.5");
    assert_eq!(body["stream"], true);
    assert!(
        body["system"].is_array() || body["system"].is_string(),
        "{body}"
    );
    assert!(body.to_string().contains(prompt), "{body}");

    assert_governed(&gw, 1, "responses");
}

// ----- Gemini CLI -----

/// Runs `gemini -p PROMPT` with the CLIENTS.md settings and environment.
fn gemini(gw: &Gateway, prompt: &str) -> Run {
    node_modules();
    let script = npm_bin_script(GEMINI_CLI);
    let home = tempfile::tempdir().expect("temp HOME");
    let mut settings: Value = serde_json::from_str(&clients_example("gemini-cli-settings", gw))
        .expect("the settings example is JSON");
    // Its usage statistics stay off.
    settings["privacy"] = json!({"usageStatisticsEnabled": false});
    let dir = home.path().join(".gemini");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("settings.json"), settings.to_string()).unwrap();
    let (mut env, command) = exports_and_command(&clients_example("gemini-cli", gw));
    assert_eq!(command, "gemini");
    // A headless run in a folder never trusted interactively (CLIENTS.md says so).
    env.push(("GEMINI_CLI_TRUST_WORKSPACE".into(), "true".into()));
    let run = run_cli(&script, &["-p", prompt], home.path(), &env);
    run.assert_printed_the_reply();
    run
}

/// The model CLIENTS.md's Gemini CLI example names.
fn gemini_model() -> String {
    let (env, _) = exports_and_command(&doc_example("docs/CLIENTS.md", "gemini-cli"));
    env.into_iter()
        .find(|(name, _)| name == "GEMINI_MODEL")
        .expect("the example sets GEMINI_MODEL")
        .1
}

/// Gemini CLI to a Gemini provider: its own streamed request, on the model in the path, with
/// the provider key in `x-goog-api-key`.
#[test]
fn gemini_cli_reaches_a_gemini_provider() {
    let mock = mock_for("gemini");
    let gw = Gateway::start(&config(&mock, "gemini", ""));
    let prompt = "Say hello to the gateway from Gemini CLI";
    gemini(&gw, prompt);

    let calls = provider_calls(&mock, "x-goog-api-key", PROVIDER_KEY);
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(
        calls[0]["path"],
        format!("/v1beta/models/{}:streamGenerateContent", gemini_model())
    );
    assert_eq!(calls[0]["query"], "alt=sse");
    let body = recorded_body(&calls[0]);
    let contents = body["contents"].as_array().expect("contents");
    assert!(
        contents.last().unwrap().to_string().contains(prompt),
        "{contents:?}"
    );
    assert!(body["systemInstruction"].is_object(), "{body}");

    assert_governed(&gw, 1, "generate");
}

/// Gemini CLI to an OpenAI-format provider: the request arrives as Chat Completions.
#[test]
fn gemini_cli_reaches_an_openai_provider() {
    let mock = mock_for("openai_compatible");
    let gw = Gateway::start(&config(&mock, "openai_compatible", ""));
    let prompt = "Say hello to the other format from Gemini CLI";
    gemini(&gw, prompt);

    let calls = provider_calls(&mock, "authorization", &format!("Bearer {PROVIDER_KEY}"));
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["path"], "/v1/chat/completions");
    let body = recorded_body(&calls[0]);
    assert_eq!(body["model"], gemini_model().as_str());
    assert_eq!(body["stream"], true);
    assert_eq!(body["messages"][0]["role"], "system", "{body}");
    assert!(last_user_text(&body).contains(prompt), "{body}");

    assert_governed(&gw, 1, "generate");
}
