//! Links to a line of a file at a commit in a repository's web view, for the URL shapes of
//! GitHub, GitLab, Gitea/Forgejo and Bitbucket (or a template the repository was given:
//! `{commit}`, `{path}`, `{line}`).

/// The link template for a remote URL whose host is a known forge; `None` for a local folder
/// or an unknown host.
pub fn template_for(remote: &str) -> Option<String> {
    let (host, path) = host_and_path(remote)?;
    let path = path.trim_end_matches('/').trim_end_matches(".git");
    let base = format!("https://{host}/{path}");
    let host = host.to_ascii_lowercase();
    Some(if host == "github.com" || host.starts_with("github.") {
        format!("{base}/blob/{{commit}}/{{path}}#L{{line}}")
    } else if host.contains("gitlab") {
        format!("{base}/-/blob/{{commit}}/{{path}}#L{{line}}")
    } else if host.contains("bitbucket") {
        format!("{base}/src/{{commit}}/{{path}}#lines-{{line}}")
    } else if host.contains("gitea") || host.contains("forgejo") || host == "codeberg.org" {
        format!("{base}/src/commit/{{commit}}/{{path}}#L{{line}}")
    } else {
        return None;
    })
}

/// The link to `path` at `commit`, line `line`, from a template.
pub fn line_link(template: &str, commit: &str, path: &str, line: u32) -> String {
    let path: String = path
        .split('/')
        .map(encode_segment)
        .collect::<Vec<_>>()
        .join("/");
    template
        .replace("{commit}", commit)
        .replace("{path}", &path)
        .replace("{line}", &line.to_string())
}

/// A path segment with every byte but unreserved ones percent-encoded.
pub fn encode_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The link to a commit, from a line template (its path part dropped).
pub fn commit_link(template: &str, commit: &str) -> Option<String> {
    let base = template.split("{commit}").next()?;
    let base = base
        .trim_end_matches("blob/")
        .trim_end_matches("-/")
        .trim_end_matches("src/commit/")
        .trim_end_matches("src/")
        .trim_end_matches('/');
    let host_is_bitbucket = base.contains("bitbucket");
    Some(if host_is_bitbucket {
        format!("{base}/commits/{commit}")
    } else if template.contains("/-/blob/") {
        format!("{base}/-/commit/{commit}")
    } else {
        format!("{base}/commit/{commit}")
    })
}

/// The host and the repository path of `https://host/o/r(.git)`, `ssh://git@host/o/r` or the
/// scp-like `git@host:o/r.git`.
fn host_and_path(remote: &str) -> Option<(String, String)> {
    if let Ok(url) = reqwest::Url::parse(remote) {
        if matches!(url.scheme(), "https" | "http" | "ssh" | "git") {
            let host = url.host_str()?.to_owned();
            return Some((host, url.path().trim_start_matches('/').to_owned()));
        }
        return None;
    }
    let (user_host, path) = remote.split_once(':')?;
    let host = user_host.rsplit('@').next()?;
    (!host.is_empty() && !path.starts_with('/') && !host.contains('/'))
        .then(|| (host.to_owned(), path.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_forge_links_a_line_at_a_commit() {
        let t = template_for("git@github.com:acme/game.git").unwrap();
        assert_eq!(
            line_link(&t, "abc", "src/net/conn.c", 42),
            "https://github.com/acme/game/blob/abc/src/net/conn.c#L42"
        );
        assert_eq!(
            commit_link(&t, "abc").unwrap(),
            "https://github.com/acme/game/commit/abc"
        );
        let t = template_for("https://gitlab.example.com/acme/game.git").unwrap();
        assert_eq!(
            line_link(&t, "abc", "a b.c", 1),
            "https://gitlab.example.com/acme/game/-/blob/abc/a%20b.c#L1"
        );
        assert_eq!(
            commit_link(&t, "abc").unwrap(),
            "https://gitlab.example.com/acme/game/-/commit/abc"
        );
        let t = template_for("https://bitbucket.org/acme/game").unwrap();
        assert_eq!(
            line_link(&t, "abc", "x.c", 3),
            "https://bitbucket.org/acme/game/src/abc/x.c#lines-3"
        );
        assert_eq!(
            commit_link(&t, "abc").unwrap(),
            "https://bitbucket.org/acme/game/commits/abc"
        );
        let t = template_for("ssh://git@codeberg.org/acme/game.git").unwrap();
        assert_eq!(
            line_link(&t, "abc", "x.c", 3),
            "https://codeberg.org/acme/game/src/commit/abc/x.c#L3"
        );
        assert_eq!(template_for("/srv/git/game"), None);
        assert_eq!(template_for("https://example.com/game.git"), None);
    }
}
