//! URLs, paths and names of JavaScript frames, cleaned up as symbolicator does: the URLs a
//! release file may be stored under, map references resolved against the minified file,
//! webpack paths, module names, in-app guesses, folded function names, display lines.

/// Longest context line kept (longer ones are cut around the column, as minified code is).
pub(super) const MAX_LINE_CHARS: usize = 150;

/// The URLs a release file may be stored under: as given, without query, and as `~/path`
/// (any host), with and without query (fragments never count).
pub(super) fn candidate_urls(abs_path: &str) -> Vec<String> {
    let url = abs_path.split('#').next().unwrap_or(abs_path);
    let relative = match url.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => url.strip_prefix('~').unwrap_or(url),
    };
    let mut out = vec![url.to_owned()];
    if let Some((bare, _)) = url.split_once('?') {
        out.push(bare.to_owned());
    }
    out.push(format!("~{relative}"));
    if let Some((bare, _)) = relative.split_once('?') {
        out.push(format!("~{bare}"));
    }
    out.dedup();
    out
}

/// `reference` (a `sourceMappingURL`, or a map's source path) relative to the file at `base`;
/// `..` never climbs above the host (or above `~/`).
pub(super) fn join_reference(base: &str, reference: &str) -> String {
    if reference.contains("://") || reference.starts_with('~') || reference.starts_with("webpack:")
    {
        return reference.to_owned();
    }
    // The origin (`https://host`, `app://`, `~`) and the path under it.
    let (origin, path) = match base.split_once("://") {
        Some((scheme, rest)) => {
            let slash = rest.find('/').unwrap_or(rest.len());
            (format!("{scheme}://{}", &rest[..slash]), &rest[slash..])
        }
        None => match base.strip_prefix('~') {
            Some(path) => ("~".to_owned(), path),
            None => (String::new(), base),
        },
    };
    let mut parts: Vec<&str> = if reference.starts_with('/') {
        Vec::new()
    } else {
        let dir = path.rsplit_once('/').map_or("", |(dir, _)| dir);
        dir.split('/').filter(|s| !s.is_empty()).collect()
    };
    for segment in reference.split('/') {
        match segment {
            "." | "" => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    format!("{origin}/{}", parts.join("/"))
}

/// Folds repeated property names: `a.a.a.b` → `{a#3}.b` (the last part always stays).
pub(super) fn fold_function_name(name: &str) -> String {
    let mut parts: Vec<&str> = name.split('.').collect();
    let Some(tail) = parts.pop() else {
        return name.to_owned();
    };
    if parts.is_empty() {
        return name.to_owned();
    }
    let mut groups: Vec<(&str, usize)> = Vec::new();
    for part in parts {
        match groups.last_mut() {
            Some((last, count)) if *last == part => *count += 1,
            _ => groups.push((part, 1)),
        }
    }
    let mut out: Vec<String> = groups
        .into_iter()
        .map(|(part, count)| {
            if count == 1 {
                part.to_owned()
            } else {
                format!("{{{part}#{count}}}")
            }
        })
        .collect();
    out.push(tail.to_owned());
    out.join(".")
}

/// `webpack:///./src/app.js` → `./src/app.js`; `webpack://ns/./x` → `./x`;
/// `webpack:///~/lib/x.js` → `~/lib/x.js`.
pub(super) fn clean_webpack_path(path: &str) -> String {
    if let Some((_, rest)) = path.split_once("/~/") {
        return format!("~/{rest}");
    }
    if let Some(rest) = path.strip_prefix("webpack://") {
        // A namespace, then `/./`.
        if let Some((namespace, tail)) = rest.split_once("/./") {
            if !namespace.contains('/') {
                return format!("./{tail}");
            }
        }
        if let Some(rest) = rest.strip_prefix('/') {
            return rest.to_owned();
        }
    }
    path.to_owned()
}

/// A module name from a path: no host, query, extension or `.min`; leading folders such as
/// `static/`, `js/`, `node_modules/` and version or hash segments dropped.
pub(super) fn module_name(path: &str) -> String {
    let path = match path.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("", |i| &rest[i..]),
        None => path.strip_prefix('~').unwrap_or(path),
    };
    let path = path.split(['?', '#']).next().unwrap_or(path);
    let path = match path.rfind('.') {
        Some(dot) if !path[dot..].contains('/') => &path[..dot],
        _ => path,
    };
    let path = path.strip_suffix(".min").unwrap_or(path);
    let noise = |s: &str| {
        let lower = s.to_ascii_lowercase();
        s.is_empty()
            || s == "."
            || [
                "js",
                "javascript",
                "javascripts",
                "script",
                "scripts",
                "build",
                "static",
                "node_modules",
                "bower_components",
            ]
            .contains(&lower.as_str())
            || s.starts_with(['_', '.', '~'])
            || s.trim_start_matches('v')
                .split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            || ((s.len() == 7 || s.len() == 8 || s.len() == 32 || s.len() == 40)
                && s.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    let segments: Vec<&str> = path.split('/').collect();
    let (last, folders) = segments.split_last().expect("split yields one part");
    let mut kept: Vec<&str> = folders.iter().copied().skip_while(|s| noise(s)).collect();
    kept.push(last);
    kept.join("/")
}

/// Whether an original file is the application's own code.
pub(super) fn in_app(abs_path: &str, filename: &str) -> Option<bool> {
    if abs_path.starts_with("webpack:") {
        Some(filename.starts_with("./") && !filename.contains("/node_modules/"))
    } else if abs_path.contains("node_modules/") || filename.contains("node_modules/") {
        Some(false)
    } else if abs_path.starts_with("app:") {
        Some(true)
    } else {
        None
    }
}

/// A line for display: whole, or cut to [`MAX_LINE_CHARS`] around `column` (1-based).
pub(super) fn display_line(line: &str, column: usize) -> String {
    let chars: Vec<char> = line.trim_end_matches(['\r', '\n']).chars().collect();
    if chars.len() <= MAX_LINE_CHARS {
        return chars.into_iter().collect();
    }
    let center = column.saturating_sub(1).min(chars.len());
    let start = center.saturating_sub(MAX_LINE_CHARS / 2);
    let end = (start + MAX_LINE_CHARS).min(chars.len());
    let start = end.saturating_sub(MAX_LINE_CHARS);
    let mut out = String::new();
    if start > 0 {
        out.push('…');
    }
    out.extend(&chars[start..end]);
    if end < chars.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_file_urls_are_tried_with_and_without_host_and_query() {
        assert_eq!(
            candidate_urls("https://example.com/assets/app.min.js?v=1#x"),
            [
                "https://example.com/assets/app.min.js?v=1",
                "https://example.com/assets/app.min.js",
                "~/assets/app.min.js?v=1",
                "~/assets/app.min.js"
            ]
        );
        assert_eq!(
            candidate_urls("app:///main.js"),
            ["app:///main.js", "~/main.js"]
        );
    }

    #[test]
    fn map_references_resolve_against_the_minified_file() {
        let base = "https://example.com/static/js/app.js";
        assert_eq!(
            join_reference(base, "app.js.map"),
            "https://example.com/static/js/app.js.map"
        );
        assert_eq!(
            join_reference(base, "../maps/app.map"),
            "https://example.com/static/maps/app.map"
        );
        assert_eq!(
            join_reference(base, "/maps/app.map"),
            "https://example.com/maps/app.map"
        );
        assert_eq!(
            join_reference("~/js/app.js", "app.js.map"),
            "~/js/app.js.map"
        );
        assert_eq!(
            join_reference(base, "https://cdn.example.com/a.map"),
            "https://cdn.example.com/a.map"
        );
    }

    #[test]
    fn names_and_paths_are_cleaned_as_symbolicator_does() {
        assert_eq!(fold_function_name("foo"), "foo");
        assert_eq!(fold_function_name("foo.foo.foo"), "{foo#2}.foo");
        assert_eq!(
            fold_function_name("bar.bar.bar.foo.foo.onError"),
            "{bar#3}.{foo#2}.onError"
        );
        assert_eq!(
            clean_webpack_path("webpack:///./src/app.js"),
            "./src/app.js"
        );
        assert_eq!(
            clean_webpack_path("webpack://my-app/./src/app.js"),
            "./src/app.js"
        );
        assert_eq!(
            clean_webpack_path("webpack:///~/lodash/index.js"),
            "~/lodash/index.js"
        );
        assert_eq!(
            module_name("http://google.com/js/v1.0/foo/bar/baz.js"),
            "foo/bar/baz"
        );
        assert_eq!(
            module_name("./src/components/App.jsx"),
            "src/components/App"
        );
        assert_eq!(in_app("webpack:///./src/a.js", "./src/a.js"), Some(true));
        assert_eq!(
            in_app("webpack:///./node_modules/x/a.js", "./node_modules/x/a.js"),
            Some(false)
        );
    }

    #[test]
    fn long_minified_lines_are_cut_around_the_column() {
        let line = "x".repeat(1000);
        let shown = display_line(&line, 500);
        assert!(shown.starts_with('…') && shown.ends_with('…'));
        assert_eq!(shown.chars().count(), MAX_LINE_CHARS + 2);
        assert_eq!(display_line("short", 3), "short");
    }
}
