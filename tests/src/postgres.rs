//! A real PostgreSQL (Debian's `postgresql` package) on a free loopback port, in a temporary
//! directory, for the test's lifetime.
//!
//! PostgreSQL refuses to run as root; when the tests do, the server and `initdb` run as the
//! `postgres` user the package creates, and the directory is handed to that user. The
//! cluster is made for tests: no fsync, password (SCRAM) logins over TCP, so URLs carry a
//! real password.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The superuser the cluster is made with, and its password.
pub const PG_USER: &str = "tollgate";
pub const PG_PASSWORD: &str = "pg-secret-never-shown";

pub struct PostgresServer {
    child: Option<Child>,
    pub port: u16,
    bin: PathBuf,
    /// `(uid, gid)` the server runs as when the tests run as root.
    run_as: Option<(u32, u32)>,
    dir: tempfile::TempDir,
}

impl PostgresServer {
    /// Makes a cluster and starts it.
    pub fn start() -> PostgresServer {
        let bin = bin_dir();
        let dir = tempfile::tempdir().expect("temp dir");
        let run_as = if is_root() {
            let ids = postgres_user();
            std::os::unix::fs::chown(dir.path(), Some(ids.0), Some(ids.1))
                .expect("hand the temp dir to the postgres user");
            Some(ids)
        } else {
            None
        };
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, PG_PASSWORD).expect("write password file");
        std::fs::set_permissions(&pwfile, std::fs::Permissions::from_mode(0o644)).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut server = PostgresServer {
            child: None,
            port,
            bin,
            run_as,
            dir,
        };
        let out = server
            .command("initdb")
            .arg("-D")
            .arg(server.data_dir())
            .args(["-U", PG_USER, "--pwfile"])
            .arg(&pwfile)
            .args([
                "--auth-host=scram-sha-256",
                "--auth-local=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ])
            .output()
            .expect("run initdb");
        assert_ok("initdb", &out);
        server.restart();
        server
    }

    /// Starts the server again on the same data and port (after [`PostgresServer::stop`]).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "the server is already running");
        let child = self
            .command("postgres")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(self.dir.path())
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run postgres");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = self
                .command("pg_isready")
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q"])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("postgres exited with {status} before accepting connections");
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not accept connections on port {} within 30 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server (fast shutdown: open sessions are ended), by its PID, and waits.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .arg("-INT")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Creates a database and returns its URL (with the password).
    pub fn create_db(&self, name: &str) -> String {
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""));
        self.url(name)
    }

    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://{PG_USER}:{PG_PASSWORD}@127.0.0.1:{}/{db}",
            self.port
        )
    }

    /// Runs SQL with `psql` and returns what it printed (unaligned, tuples only).
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = self
            .command("psql")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args([
                "-U",
                PG_USER,
                "-d",
                db,
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
            ])
            .args(["-c", sql])
            .env("PGPASSWORD", PG_PASSWORD)
            .output()
            .expect("run psql");
        assert_ok(&format!("psql {sql}"), &out);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// One of the cluster's programs, as the user the cluster belongs to.
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(program));
        // The programs may change into the working directory; make it one they can enter.
        cmd.current_dir(self.dir.path()).env_remove("PGDATA");
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        cmd
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn assert_ok(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The newest `/usr/lib/postgresql/<version>/bin` (Debian keeps the server programs there,
/// off the PATH).
fn bin_dir() -> PathBuf {
    let versions = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| {
                    let version: u32 = e.file_name().to_str()?.parse().ok()?;
                    let bin = e.path().join("bin");
                    bin.join("postgres").exists().then_some((version, bin))
                })
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    versions
        .into_iter()
        .max_by_key(|(v, _)| *v)
        .map(|(_, bin)| bin)
        .unwrap_or_else(|| {
            panic!("no PostgreSQL server under /usr/lib/postgresql: apt-get install postgresql")
        })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The uid and gid of the `postgres` user Debian's package creates.
fn postgres_user() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .expect("run id");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("no `postgres` user: apt-get install postgresql"))
    };
    (id("-u"), id("-g"))
}
