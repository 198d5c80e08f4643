//! A real git repository with fixed dates for the suspect-commit tests, and a real program
//! built from it that crashes on a known line.
//!
//! History (`src/net/conn.c`, `src/main.c`):
//! - `initial` (2024-01-10, release 1.0.0): the files; `conn_read` adds `n`.
//! - `bug` (2026-11-01, Ana): the crashing line `total += p->length;` (p may be NULL).
//! - `reformat` (2026-11-02): tabs to spaces everywhere, listed in `.git-blame-ignore-revs` by
//!   `ignore` (2026-11-03).
//! - `retry` (2026-11-04) and `revert` (2026-11-05): a line below the bug, added and reverted.
//! - `bot` (2026-11-06, dependabot[bot]): the comment above the bug.
//! - `late` (2026-11-20, after release 1.1.0's date 2026-11-10): the line below the bug.
//!   Tagged `v1.1.0`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Release 1.1.0's date (2026-11-10T00:00:00Z).
pub const RELEASED_1_1_0: i64 = 1_794_268_800;

/// The repository and the SHAs of its commits.
pub struct Scenario {
    /// Its working tree.
    pub dir: tempfile::TempDir,
    /// `initial`.
    pub initial: String,
    /// The commit that introduced the crashing line.
    pub bug: String,
    /// The reformatting commit.
    pub reformat: String,
    /// The commit that adds `.git-blame-ignore-revs`.
    pub ignore: String,
    /// The commit a revert undoes.
    pub retry: String,
    /// The revert.
    pub revert: String,
    /// The bot's commit.
    pub bot: String,
    /// The commit dated after the release.
    pub late: String,
    /// The crashing line's number in `src/net/conn.c` at `late`.
    pub bug_line: u32,
}

const CONN_C: &str = "#include <stddef.h>\n\
#include \"conn.h\"\n\
\n\
/* The protocol version. */\n\
#define PROTOCOL 1\n\
\n\
struct packet {\n\
\tint length;\n\
\tchar *data;\n\
};\n\
\n\
static struct packet *next_packet(int n)\n\
{\n\
\tif (n > 1)\n\
\t\treturn NULL;\n\
\treturn NULL;\n\
}\n\
\n\
int conn_read(int n)\n\
{\n\
\tstruct packet *p = next_packet(n);\n\
\tint total = 0;\n\
\t/* read the header */\n\
\ttotal += n;\n\
\treturn total + (p != NULL);\n\
}\n";

const CONN_H: &str = "int conn_read(int n);\n";

/// The program: a SIGSEGV handler prints the load base, the faulting address and the return
/// addresses up the frame-pointer chain, then exits; `main` calls `conn_read(2)`.
const MAIN_C: &str = "#define _GNU_SOURCE\n\
#include <dlfcn.h>\n\
#include <signal.h>\n\
#include <stdio.h>\n\
#include <ucontext.h>\n\
#include <unistd.h>\n\
#include \"net/conn.h\"\n\
\n\
static void on_crash(int sig, siginfo_t *info, void *context)\n\
{\n\
\tucontext_t *uc = context;\n\
\tDl_info self;\n\
\tdladdr((void *)on_crash, &self);\n\
\tprintf(\"base %p\\n\", self.dli_fbase);\n\
\tprintf(\"pc %p\\n\", (void *)uc->uc_mcontext.gregs[REG_RIP]);\n\
\tvoid **fp = (void **)uc->uc_mcontext.gregs[REG_RBP];\n\
\tfor (int i = 0; i < 2 && fp; i++) {\n\
\t\tprintf(\"ret %p\\n\", fp[1]);\n\
\t\tfp = (void **)fp[0];\n\
\t}\n\
\tfflush(stdout);\n\
\t_exit(0);\n\
}\n\
\n\
int main(void)\n\
{\n\
\tstruct sigaction action = {0};\n\
\taction.sa_sigaction = on_crash;\n\
\taction.sa_flags = SA_SIGINFO;\n\
\tsigaction(SIGSEGV, &action, NULL);\n\
\treturn conn_read(2);\n\
}\n";

fn git(dir: &Path, args: &[&str], date: &str, author: (&str, &str)) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_DATE", date)
        .env("GIT_COMMITTER_DATE", date)
        .env("GIT_AUTHOR_NAME", author.0)
        .env("GIT_AUTHOR_EMAIL", author.1)
        .env("GIT_COMMITTER_NAME", author.0)
        .env("GIT_COMMITTER_EMAIL", author.1)
        .output()
        .expect("git runs");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

const ANA: (&str, &str) = ("Ana Dev", "ana@acme.test");
const BO: (&str, &str) = ("Bo Format", "bo@acme.test");
const CY: (&str, &str) = ("Cy Retry", "cy@acme.test");
const BOT: (&str, &str) = (
    "dependabot[bot]",
    "49699333+dependabot[bot]@users.noreply.github.com",
);

/// Commits everything in the tree.
pub fn commit(dir: &Path, message: &str, date: &str, author: (&str, &str)) -> String {
    git(dir, &["add", "-A"], date, author);
    git(dir, &["commit", "-q", "-m", message], date, author);
    git(dir, &["rev-parse", "HEAD"], date, author)
}

fn edit(dir: &Path, path: &str, from: &str, to: &str) {
    let file = dir.join(path);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains(from), "{from:?} in {path}");
    std::fs::write(&file, text.replacen(from, to, 1)).unwrap();
}

impl Scenario {
    /// Builds the repository.
    pub fn build() -> Scenario {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        git(
            root,
            &["init", "-q", "-b", "main"],
            "2024-01-10T00:00:00Z",
            ANA,
        );
        git(
            root,
            &[
                "remote",
                "add",
                "origin",
                "https://github.com/acme/game.git",
            ],
            "2024-01-10T00:00:00Z",
            ANA,
        );
        std::fs::create_dir_all(root.join("src/net")).unwrap();
        std::fs::write(root.join("src/net/conn.c"), CONN_C).unwrap();
        std::fs::write(root.join("src/net/conn.h"), CONN_H).unwrap();
        std::fs::write(root.join("src/main.c"), MAIN_C).unwrap();
        let initial = commit(root, "Add the connection code", "2024-01-10T00:00:00Z", ANA);
        git(root, &["tag", "v1.0.0"], "2024-01-10T00:00:00Z", ANA);
        edit(
            root,
            "src/net/conn.c",
            "\ttotal += n;\n",
            "\ttotal += p->length;\n",
        );
        let bug = commit(
            root,
            "Read the header length from the packet",
            "2026-11-01T09:00:00Z",
            ANA,
        );
        let text = std::fs::read_to_string(root.join("src/net/conn.c")).unwrap();
        std::fs::write(root.join("src/net/conn.c"), text.replace('\t', "    ")).unwrap();
        let reformat = commit(
            root,
            "Reformat conn.c with spaces",
            "2026-11-02T09:00:00Z",
            BO,
        );
        std::fs::write(
            root.join(".git-blame-ignore-revs"),
            format!("# Reformatting\n{reformat}\n"),
        )
        .unwrap();
        let ignore = commit(
            root,
            "Ignore the reformat in blame",
            "2026-11-03T09:00:00Z",
            BO,
        );
        edit(
            root,
            "src/net/conn.c",
            "    return total + (p != NULL);\n",
            "    if (total < 0)\n        total = 0;\n    return total + (p != NULL);\n",
        );
        let retry = commit(root, "Clamp short reads", "2026-11-04T09:00:00Z", CY);
        git(
            root,
            &["revert", "--no-edit", &retry],
            "2026-11-05T09:00:00Z",
            CY,
        );
        let revert = git(root, &["rev-parse", "HEAD"], "2026-11-05T09:00:00Z", CY);
        edit(
            root,
            "src/net/conn.c",
            "/* read the header */",
            "/* read the header (protocol 2) */",
        );
        let bot = commit(
            root,
            "Bump the protocol comment",
            "2026-11-06T09:00:00Z",
            BOT,
        );
        edit(
            root,
            "src/net/conn.c",
            "    return total + (p != NULL);\n",
            "    return total + (p != NULL); /* logged */\n",
        );
        let late = commit(root, "Log the packet total", "2026-11-20T09:00:00Z", CY);
        git(root, &["tag", "v1.1.0"], "2026-11-20T09:00:00Z", CY);
        let text = std::fs::read_to_string(root.join("src/net/conn.c")).unwrap();
        let bug_line = text
            .lines()
            .position(|l| l.contains("p->length"))
            .expect("the bug line") as u32
            + 1;
        Scenario {
            dir,
            initial,
            bug,
            reformat,
            ignore,
            retry,
            revert,
            bot,
            late,
            bug_line,
        }
    }

    /// The working tree.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A file's text at a revision.
    pub fn show(&self, rev: &str, path: &str) -> String {
        git(
            self.path(),
            &["show", &format!("{rev}:{path}")],
            "2026-12-01T00:00:00Z",
            ANA,
        )
    }

    /// Builds the program at HEAD with debug information, paths as a Windows build machine
    /// would write them (`C:\b\src\net\conn.c`), into `out`.
    pub fn build_program(&self, out: &Path) -> PathBuf {
        let prefix = format!("-fdebug-prefix-map={}=C:\\b", self.path().display());
        self.compile(out, &prefix)
    }

    /// Builds the program at HEAD with this checkout's real paths (where `sentry-cli
    /// debug-files bundle-sources` reads the sources from).
    pub fn build_program_here(&self, out: &Path) -> PathBuf {
        self.compile(out, "-DBUILT_HERE")
    }

    fn compile(&self, out: &Path, flag: &str) -> PathBuf {
        let binary = out.join("game");
        let prefix = flag;
        let status = Command::new("gcc")
            .args([
                "-g",
                "-O0",
                "-fno-omit-frame-pointer",
                "-Wl,--build-id",
                prefix,
                "-Isrc",
                "-o",
            ])
            .arg(&binary)
            .args(["src/main.c", "src/net/conn.c"])
            .current_dir(self.path())
            .status()
            .expect("gcc runs");
        assert!(status.success(), "gcc built the program");
        binary
    }
}

/// What the crashing program printed: its load base, the faulting address, return addresses.
pub struct CrashAddresses {
    /// Where the program was loaded.
    pub base: u64,
    /// The faulting instruction.
    pub pc: u64,
    /// Return addresses, innermost first.
    pub returns: Vec<u64>,
}

/// Runs the program and reads the addresses its handler printed.
pub fn crash(binary: &Path) -> CrashAddresses {
    let output = Command::new(binary).output().expect("the program runs");
    let text = String::from_utf8_lossy(&output.stdout);
    let hex = |word: &str| u64::from_str_radix(word.trim_start_matches("0x"), 16).unwrap();
    let mut addresses = CrashAddresses {
        base: 0,
        pc: 0,
        returns: Vec::new(),
    };
    for line in text.lines() {
        match line.split_once(' ') {
            Some(("base", v)) => addresses.base = hex(v),
            Some(("pc", v)) => addresses.pc = hex(v),
            Some(("ret", v)) => addresses.returns.push(hex(v)),
            _ => {}
        }
    }
    assert!(
        addresses.pc > addresses.base && addresses.base > 0,
        "{text}"
    );
    addresses
}
