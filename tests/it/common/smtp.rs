//! A real SMTP server for the alert tests: Python's aiosmtpd (installed by tests/run.sh) with
//! STARTTLS and AUTH required, a throwaway certificate for `localhost` from `openssl`, and each
//! accepted message written as JSON into a folder the test reads.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncBufReadExt;

/// A running SMTP server.
pub struct SmtpServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The authority that signed its certificate (PEM), for the channel's `tls_ca_pem`.
    pub ca_pem: String,
    out: PathBuf,
    _child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

/// The login the server accepts.
pub const USER: &str = "alerts@faultline.test";
/// Its password.
pub const PASSWORD: &str = "s3cret-smtp-password";

impl SmtpServer {
    /// Starts one, or `None` (after saying so) when aiosmtpd is missing outside tests/run.sh.
    pub async fn start() -> Option<SmtpServer> {
        let have = std::process::Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !have {
            assert!(
                !super::services_required(),
                "aiosmtpd is missing: tests/run.sh installs it (pip install aiosmtpd)"
            );
            eprintln!("skipped: no aiosmtpd (bash tests/run.sh installs it)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        // A throwaway certificate authority, and a server certificate for `localhost` it signs.
        let (ca, ca_key) = (dir.path().join("ca.pem"), dir.path().join("ca-key.pem"));
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        let (csr, ext) = (dir.path().join("cert.csr"), dir.path().join("ext.cnf"));
        std::fs::write(
            &ext,
            "subjectAltName=DNS:localhost\nbasicConstraints=critical,CA:FALSE\n",
        )
        .unwrap();
        let openssl = |args: Vec<&std::ffi::OsStr>| {
            let status = std::process::Command::new("openssl")
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("openssl runs");
            assert!(status.success(), "openssl failed");
        };
        let os = |s: &'static str| std::ffi::OsStr::new(s);
        openssl(vec![
            os("req"),
            os("-x509"),
            os("-newkey"),
            os("rsa:2048"),
            os("-nodes"),
            os("-days"),
            os("1"),
            os("-subj"),
            os("/CN=faultline test CA"),
            os("-keyout"),
            ca_key.as_os_str(),
            os("-out"),
            ca.as_os_str(),
        ]);
        openssl(vec![
            os("req"),
            os("-newkey"),
            os("rsa:2048"),
            os("-nodes"),
            os("-subj"),
            os("/CN=localhost"),
            os("-keyout"),
            key.as_os_str(),
            os("-out"),
            csr.as_os_str(),
        ]);
        openssl(vec![
            os("x509"),
            os("-req"),
            os("-in"),
            csr.as_os_str(),
            os("-CA"),
            ca.as_os_str(),
            os("-CAkey"),
            ca_key.as_os_str(),
            os("-CAcreateserial"),
            os("-days"),
            os("1"),
            os("-extfile"),
            ext.as_os_str(),
            os("-out"),
            cert.as_os_str(),
        ]);
        let out = dir.path().join("mail");
        std::fs::create_dir(&out).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = tokio::process::Command::new("python3")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/smtp_server.py"))
            .arg(port.to_string())
            .arg(&out)
            .arg(&cert)
            .arg(&key)
            .args([USER, PASSWORD])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 runs");
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("the SMTP server starts in time")
            .unwrap();
        assert_eq!(ready.as_deref(), Some("ready"));
        Some(SmtpServer {
            port,
            ca_pem: std::fs::read_to_string(&ca).unwrap(),
            out,
            _child: child,
            _dir: dir,
        })
    }

    /// Messages received so far, oldest first.
    pub fn messages(&self) -> Vec<serde_json::Value> {
        let mut names: Vec<_> = std::fs::read_dir(&self.out)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
            .collect()
    }

    /// Waits until at least `n` messages arrived.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<serde_json::Value> {
        let deadline = std::time::Instant::now() + within;
        loop {
            let messages = self.messages();
            if messages.len() >= n || std::time::Instant::now() > deadline {
                return messages;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
