//! `deploy/`, checked without a container daemon: the Compose file with `docker-compose config`,
//! the Kubernetes manifests with `kubectl kustomize | kubernetes-validate --strict`, the systemd
//! unit with `systemd-analyze verify`, and the Dockerfile against the repository (every file it
//! copies exists, it runs as a non-root user with a health check). `faultline migrate`, the
//! deployments' migration step, on both databases.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs a validator; `None` (after saying so) when it is not installed and the suite is not
/// run by `tests/run.sh`, which installs it.
fn run_tool(program: &str, args: &[&str], stdin: Option<&[u8]>) -> Option<Output> {
    let mut command = Command::new(program);
    command
        .args(args)
        .current_dir(root())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            assert!(
                !common::services_required(),
                "{program} is not installed: tests/run.sh installs it"
            );
            eprintln!("skipped: {program} is not installed (bash tests/run.sh installs it)");
            return None;
        }
        Err(e) => panic!("cannot run {program}: {e}"),
    };
    if let Some(input) = stdin {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    Some(child.wait_with_output().unwrap())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn the_compose_file_is_valid_and_runs_two_nodes_behind_a_load_balancer() {
    let file = "deploy/compose/docker-compose.yml";
    let Some(check) = run_tool("docker-compose", &["-f", file, "config", "-q"], None) else {
        return;
    };
    assert!(check.status.success(), "{}", text(&check.stderr));
    let services = run_tool(
        "docker-compose",
        &["-f", file, "config", "--services"],
        None,
    )
    .unwrap();
    assert!(services.status.success());
    let services = text(&services.stdout);
    for service in [
        "postgres",
        "minio",
        "migrate",
        "faultline-1",
        "faultline-2",
        "lb",
    ] {
        assert!(
            services.lines().any(|s| s == service),
            "{service} missing: {services}"
        );
    }
    let config = run_tool("docker-compose", &["-f", file, "config"], None).unwrap();
    let config = text(&config.stdout);
    // Both nodes share the index and the bucket, under their own names.
    assert_eq!(
        config.matches("FAULTLINE_INDEX_URL: postgres://").count(),
        3
    );
    assert_eq!(config.matches("FAULTLINE_STORAGE_BACKEND: s3").count(), 3);
    assert!(config.contains("FAULTLINE_CLUSTER_NODE_ID: faultline-1"));
    assert!(config.contains("FAULTLINE_CLUSTER_NODE_ID: faultline-2"));
    let nginx = std::fs::read_to_string(root().join("deploy/compose/nginx.conf")).unwrap();
    assert!(nginx.contains("server faultline-1:8080") && nginx.contains("server faultline-2:8080"));
}

#[test]
fn the_kubernetes_manifests_validate_strictly() {
    let Some(rendered) = run_tool("kubectl", &["kustomize", "deploy/k8s"], None) else {
        return;
    };
    assert!(rendered.status.success(), "{}", text(&rendered.stderr));
    let Some(validated) = run_tool(
        "kubernetes-validate",
        &["--strict", "-"],
        Some(&rendered.stdout),
    ) else {
        return;
    };
    let report = text(&validated.stdout) + text(&validated.stderr).as_str();
    assert!(validated.status.success(), "{report}");
    assert!(!report.contains("ERROR"), "{report}");
    let manifests = text(&rendered.stdout);
    for kind in ["Deployment", "Service", "ConfigMap", "Secret"] {
        assert!(
            manifests.contains(&format!("kind: {kind}\n")),
            "{kind} missing"
        );
    }
    for needed in [
        "replicas: 2",
        "readinessProbe:",
        "livenessProbe:",
        "path: /health",
        "- migrate",
        "runAsNonRoot: true",
        "fieldPath: metadata.name",
    ] {
        assert!(manifests.contains(needed), "{needed} missing:\n{manifests}");
    }
}

#[test]
fn the_systemd_unit_verifies() {
    let unit = std::fs::read_to_string(root().join("deploy/systemd/faultline.service")).unwrap();
    // systemd-analyze checks that the binary exists: point it at the one just built.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("faultline.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/faultline", env!("CARGO_BIN_EXE_faultline")),
    )
    .unwrap();
    let Some(verified) = run_tool("systemd-analyze", &["verify", path.to_str().unwrap()], None)
    else {
        return;
    };
    let stderr = text(&verified.stderr);
    assert!(verified.status.success(), "{stderr}");
    // Unknown keys and bad values are only warnings: there must be none.
    let complaints: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("faultline.service"))
        .collect();
    assert!(complaints.is_empty(), "{stderr}");
    assert!(unit.contains("User=faultline") && unit.contains(" migrate\n"));
}

#[test]
fn the_dockerfile_copies_what_exists_and_runs_unprivileged_with_a_health_check() {
    let dockerfile = std::fs::read_to_string(root().join("deploy/Dockerfile")).unwrap();
    let mut copies = 0;
    for line in dockerfile.lines() {
        let Some(rest) = line.strip_prefix("COPY ") else {
            continue;
        };
        if rest.starts_with("--from=") {
            continue;
        }
        let parts: Vec<&str> = rest.split_whitespace().collect();
        for source in &parts[..parts.len() - 1] {
            assert!(
                Path::new(&root().join(source)).exists(),
                "the Dockerfile copies {source}, which is not in the repository"
            );
            copies += 1;
        }
    }
    assert!(copies >= 4);
    // The build script and cargo's settings (how the C++ runtime is linked) are copied in.
    for needed in ["build.rs", ".cargo"] {
        if root().join(needed).exists() {
            assert!(
                dockerfile.contains(&format!(" {needed} "))
                    || dockerfile.contains(&format!(" {needed}\n")),
                "the Dockerfile does not copy {needed}"
            );
        }
    }
    // Every Cargo target the build needs is copied in.
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    for folder in ["benches/", "examples/", "src/"] {
        if manifest.contains(folder) {
            assert!(
                dockerfile.contains(&format!("COPY {}", folder.trim_end_matches('/'))),
                "{folder}"
            );
        }
    }
    let rust_version = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .unwrap()
        .trim_matches('"');
    assert!(dockerfile.contains(&format!("FROM rust:{rust_version}-")));
    assert!(dockerfile.contains("USER 10001"));
    assert!(dockerfile.contains("VOLUME [\"/data\"]"));
    assert!(dockerfile.contains("HEALTHCHECK") && dockerfile.contains("/health"));
    let ignored = std::fs::read_to_string(root().join(".dockerignore")).unwrap();
    assert!(ignored.lines().any(|l| l == "target"));
}

on_both_databases! {
/// `faultline migrate` brings an empty database up to date and says so; run again, it has
/// nothing to do; an unreachable or unknown database is a clear error.
async fn migrate_prepares_the_index(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let Some(url) = common::database_url(db, dir.path()).await else {
        return;
    };
    let migrate = |url: &str| {
        Command::new(env!("CARGO_BIN_EXE_faultline"))
            .arg("migrate")
            .env("FAULTLINE_INDEX_URL", url)
            .env("FAULTLINE_STORAGE_DATA_DIR", dir.path().join("data"))
            .env_remove("FAULTLINE_CONFIG")
            .output()
            .unwrap()
    };
    for _ in 0..2 {
        let out = migrate(&url);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(text(&out.stderr).contains("up to date"));
    }
    let index = faultline::group::index::CrashIndex::open(
        &url,
        faultline::group::index::PayloadBudget {
            per_new_group: 1,
            per_group_hour: 1,
        },
    )
    .await
    .unwrap();
    let queue = faultline::ingest::queue::IngestQueue::new(
        &index,
        "test",
        std::time::Duration::from_secs(30),
    );
    assert_eq!(queue.depth().await.unwrap().queued, 0);
    let out = migrate("mysql://nobody@127.0.0.1/x");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("use sqlite://PATH?mode=rwc or postgres://"),
        "{}",
        text(&out.stderr)
    );
}
}
