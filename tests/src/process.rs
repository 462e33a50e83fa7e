//! Child processes under test. Each prints the address it bound on stdout; we wait for it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A binary of this workspace, built by `cargo build --workspace --bins` beside the tests.
pub fn bin_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace binaries first (cargo build --workspace --bins)",
        path.display()
    );
    path
}

/// Starts `cmd`, waits until it has printed one stdout line per `prefixes` entry (each starting
/// with that prefix), and returns the child with the remainder of each line (the URL).
fn spawn_and_wait(mut cmd: Command, prefixes: &[&str]) -> (Child, Vec<String>) {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null());
    let mut child = cmd.spawn().expect("spawn child process");
    let stdout: ChildStdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut found = Vec::new();
    for prefix in prefixes {
        let line = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                let out = child.wait_with_output().expect("collect output");
                panic!(
                    "process did not print `{prefix}`; stderr:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        };
        let rest = line
            .strip_prefix(prefix)
            .unwrap_or_else(|| panic!("expected a line starting with `{prefix}`, got `{line}`"));
        found.push(rest.trim().to_string());
    }
    (child, found)
}

/// A `loadgen mock` provider.
pub struct Mock {
    child: Child,
    /// e.g. `http://127.0.0.1:40123`
    pub url: String,
}

impl Mock {
    pub fn start(args: &[&str]) -> Mock {
        let mut cmd = Command::new(bin_path("loadgen"));
        cmd.arg("mock")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .args(args);
        let (child, urls) = spawn_and_wait(cmd, &["loadgen mock listening on "]);
        Mock {
            child,
            url: urls[0].clone(),
        }
    }

    /// The base URL a provider config points at.
    pub fn base_url(&self) -> String {
        format!("{}/v1", self.url)
    }

    /// Requests the mock received, oldest first.
    pub fn requests(&self) -> Vec<serde_json::Value> {
        let reply = crate::get(&format!("{}/_mock/requests", self.url), &[]);
        reply.json().as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `tollgate serve` with its config file in a temporary directory.
pub struct Gateway {
    child: Child,
    pub url: String,
    pub admin_url: String,
    pub dir: tempfile::TempDir,
}

impl Gateway {
    /// Starts the gateway on `config` (YAML). Listen addresses default to free ports unless
    /// the config sets `server:` itself.
    pub fn start(config: &str) -> Gateway {
        Gateway::start_with_env(config, &[])
    }

    pub fn start_with_env(config: &str, env: &[(&str, &str)]) -> Gateway {
        let dir = tempfile::tempdir().expect("temp dir");
        let text = if config.contains("server:") {
            config.to_string()
        } else {
            format!("server: {{listen: 127.0.0.1:0, admin_listen: 127.0.0.1:0}}\n{config}")
        };
        let path = dir.path().join("tollgate.yaml");
        std::fs::write(&path, text).expect("write config");
        let mut cmd = Command::new(bin_path("tollgate"));
        cmd.arg("serve")
            .arg("-c")
            .arg(&path)
            .envs(env.iter().copied());
        let (child, urls) = spawn_and_wait(
            cmd,
            &[
                "tollgate data plane listening on ",
                "tollgate admin listening on ",
            ],
        );
        Gateway {
            child,
            url: urls[0].clone(),
            admin_url: urls[1].clone(),
            dir,
        }
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("tollgate.yaml")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal to the gateway process (e.g. `HUP` to reload).
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success());
    }
}

impl Gateway {
    /// Stops the gateway with SIGTERM and waits for it to exit (it saves state on the way).
    pub fn stop(mut self) {
        self.signal("TERM");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "gateway exited with {status}");
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("gateway did not stop within 10 s of SIGTERM");
    }

    /// Stops the gateway like [`Gateway::stop`] and returns everything it wrote to stderr
    /// (its structured log).
    pub fn stop_and_output(mut self) -> String {
        use std::io::Read;
        let mut stderr = self.child.stderr.take().expect("piped stderr");
        let reader = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        self.signal("TERM");
        let _ = self.child.wait();
        reader.join().unwrap_or_default()
    }

    /// The admin `/admin/usage` counters.
    pub fn usage(&self) -> Vec<serde_json::Value> {
        let reply = crate::get(&format!("{}/admin/usage", self.admin_url), &[]);
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.json()["counters"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The `used` value of one counter.
    pub fn used(&self, scope: &str, kind: &str) -> serde_json::Value {
        self.usage()
            .into_iter()
            .find(|c| c["scope"] == scope && c["kind"] == kind)
            .unwrap_or_else(|| panic!("no counter {scope} {kind}"))["used"]
            .clone()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `tollgate ARGS...` to completion (for `check`, `test`, `explain`).
pub fn run_tollgate(args: &[&str]) -> Output {
    Command::new(bin_path("tollgate"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run tollgate")
}
