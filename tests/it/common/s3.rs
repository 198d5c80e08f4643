//! A real S3 server for tests: the one `tests/run.sh` started (`FAULTLINE_TEST_S3_ENDPOINT`,
//! `_BUCKET`, `_ACCESS_KEY`, `_SECRET_KEY`), or an `s3s-fs` started for the test (found on PATH,
//! in `~/.cargo/bin`, or at `$S3S_FS`; install it with
//! `cargo install --locked s3s-fs@0.14.1 --features binary`). Each test gets its own key prefix.

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

use faultline::config::S3Config;

pub const ACCESS_KEY: &str = "faultline-test-access";
pub const SECRET_KEY: &str = "faultline-test-secret-key";

/// A running S3 server and the settings to reach it; stops it when dropped (if we started it).
pub struct S3Server {
    pub config: S3Config,
    child: Option<Child>,
    _root: Option<tempfile::TempDir>,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn s3s_binary() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("S3S_FS") {
        return Some(PathBuf::from(path));
    }
    let home = PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo/bin/s3s-fs");
    if home.exists() {
        return Some(home);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("s3s-fs"))
            .find(|p| p.exists())
    })
}

impl S3Server {
    /// The S3 server for one test; `None` (after saying so) when there is none and the suite
    /// is not run by `tests/run.sh`.
    pub async fn start() -> Option<S3Server> {
        // A unique prefix per test keeps tests apart on a shared server.
        // Short: s3s-fs keeps per-object metadata in a file named after the whole key.
        let prefix = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        if let Ok(endpoint) = std::env::var("FAULTLINE_TEST_S3_ENDPOINT") {
            let config = S3Config {
                bucket: std::env::var("FAULTLINE_TEST_S3_BUCKET")
                    .unwrap_or_else(|_| "faultline".into()),
                prefix,
                endpoint,
                access_key: std::env::var("FAULTLINE_TEST_S3_ACCESS_KEY")
                    .unwrap_or_else(|_| ACCESS_KEY.into()),
                secret_key: std::env::var("FAULTLINE_TEST_S3_SECRET_KEY")
                    .unwrap_or_else(|_| SECRET_KEY.into()),
                multipart_part_bytes: 5 << 20,
                ..S3Config::default()
            };
            return Some(S3Server {
                config,
                child: None,
                _root: None,
            });
        }
        let Some(binary) = s3s_binary() else {
            assert!(
                !super::services_required(),
                "s3s-fs not found: tests/run.sh installs it"
            );
            eprintln!("skipped on S3: s3s-fs is not installed (`cargo install --locked s3s-fs@0.14.1 --features binary`, or bash tests/run.sh)");
            return None;
        };
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("faultline")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new(binary)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--access-key",
                ACCESS_KEY,
                "--secret-key",
                SECRET_KEY,
            ])
            .arg(root.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start s3s-fs");
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let config = S3Config {
            bucket: "faultline".into(),
            prefix,
            endpoint: format!("http://127.0.0.1:{port}"),
            access_key: ACCESS_KEY.into(),
            secret_key: SECRET_KEY.into(),
            multipart_part_bytes: 5 << 20,
            ..S3Config::default()
        };
        Some(S3Server {
            config,
            child: Some(child),
            _root: Some(root),
        })
    }
}
