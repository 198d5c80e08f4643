//! The map's one rule, checked on the source: data flows one way, so no folder of `src/`
//! imports a folder that imports it back (directly or around a longer loop), and no file of a
//! folder imports a sibling file that imports it back. A folder's `mod.rs` is its face: its
//! files may use it and it may re-export them, so edges to and from it are not counted among
//! siblings. Also: the two front ends never import each other (`api/` and `ui/` share only
//! `http/` and the application's services), and no function runs past a hundred lines without
//! saying why it cannot be split. docs/ARCHITECTURE.md describes these checks.
//!
//! Imports are read from the text: every `crate::…` and `super::…` path outside comments,
//! with `use` groups (`crate::{a, b::c}`) expanded, resolved to the longest module it names.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Module = Vec<String>;

/// Every module of `src/` (by path: `["group", "index", "record"]`) and its source.
fn modules() -> BTreeMap<Module, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = BTreeMap::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path: PathBuf = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(&root).unwrap().with_extension("");
            let mut module: Module = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if module.last().is_some_and(|m| m == "mod") {
                module.pop();
            }
            if module == ["lib"] || module == ["main"] {
                continue;
            }
            out.insert(module, std::fs::read_to_string(&path).unwrap());
        }
    }
    out
}

/// The source without `//` comments (doc comments name modules they do not import).
fn without_comments(source: &str) -> String {
    source
        .lines()
        .map(|line| match line.find("//") {
            Some(at) if !line[..at].contains('"') => &line[..at],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Splits a `use` group's inside at its top-level commas.
fn split_group(inside: &str) -> Vec<&str> {
    let (mut depth, mut start, mut parts) = (0, 0, Vec::new());
    for (i, c) in inside.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inside[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inside[start..]);
    parts
}

/// Every path a `use` tree starting at `prefix` names.
fn expand(prefix: &[String], tree: &str, out: &mut Vec<Module>) {
    let tree = tree.trim();
    if tree.is_empty() {
        return;
    }
    if let Some(open) = tree.find('{') {
        let head: Vec<String> = tree[..open]
            .split("::")
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.trim().to_owned())
            .collect();
        let close = tree.rfind('}').unwrap_or(tree.len());
        let base: Vec<String> = prefix.iter().cloned().chain(head).collect();
        for part in split_group(&tree[open + 1..close]) {
            expand(&base, part, out);
        }
        return;
    }
    let path = prefix
        .iter()
        .cloned()
        .chain(
            tree.split("::")
                .map(|s| s.split_whitespace().next().unwrap_or("").to_owned()),
        )
        .filter(|s| !s.is_empty())
        .collect();
    out.push(path);
}

/// The paths `source` names starting with `crate` or `super`, as written.
fn paths_in(source: &str) -> Vec<Module> {
    let text = without_comments(source);
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    for start in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(found) = text[from..].find(start) {
            let at = from + found;
            from = at + start.len();
            if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
                continue;
            }
            // The path runs over identifiers and `::`, and into one `{…}` group if it has one.
            let mut end = at;
            while end < bytes.len()
                && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_' || bytes[end] == b':')
            {
                end += 1;
            }
            if end < bytes.len() && bytes[end] == b'{' && text[at..end].ends_with("::") {
                let mut depth = 0;
                while end < bytes.len() {
                    match bytes[end] {
                        b'{' => depth += 1,
                        b'}' => {
                            depth -= 1;
                            if depth == 0 {
                                end += 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                    end += 1;
                }
            }
            expand(&[], &text[at..end], &mut out);
        }
    }
    out
}

/// The modules `module` imports.
fn imports(module: &Module, source: &str, all: &BTreeSet<Module>) -> BTreeSet<Module> {
    let mut out = BTreeSet::new();
    for path in paths_in(source) {
        let absolute: Module = match path.first().map(String::as_str) {
            Some("crate") => path[1..].to_vec(),
            Some("super") => {
                let mut base = module.clone();
                let mut rest = &path[..];
                while rest.first().is_some_and(|s| s == "super") {
                    base.pop();
                    rest = &rest[1..];
                }
                base.extend(rest.iter().cloned());
                base
            }
            _ => continue,
        };
        let named = (1..=absolute.len())
            .rev()
            .map(|n| absolute[..n].to_vec())
            .find(|m| all.contains(m));
        if let Some(named) = named.filter(|m| m != module) {
            out.insert(named);
        }
    }
    out
}

/// The loops of a directed graph: its strongly connected components of more than one node.
fn loops(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<BTreeSet<String>> {
    let nodes: BTreeSet<&String> = edges
        .keys()
        .chain(edges.values().flat_map(|v| v.iter()))
        .collect();
    let reaches = |from: &String| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.clone()];
        while let Some(node) = stack.pop() {
            for next in edges.get(&node).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    stack.push(next.clone());
                }
            }
        }
        seen
    };
    let reach: BTreeMap<&String, BTreeSet<String>> =
        nodes.iter().map(|n| (*n, reaches(n))).collect();
    let mut out: Vec<BTreeSet<String>> = Vec::new();
    for node in &nodes {
        if !reach[node].contains(*node) || out.iter().any(|c| c.contains(*node)) {
            continue;
        }
        let component = nodes
            .iter()
            .filter(|other| reach[node].contains(**other) && reach[**other].contains(*node))
            .map(|n| (*n).clone())
            .collect();
        out.push(component);
    }
    out
}

/// Names each edge of a loop with the files that make it, for the failure message.
fn explain(
    component: &BTreeSet<String>,
    why: &BTreeMap<(String, String), BTreeSet<String>>,
) -> String {
    why.iter()
        .filter(|((a, b), _)| component.contains(a) && component.contains(b))
        .map(|((a, b), files)| {
            format!(
                "  {a} -> {b} (in {})",
                files.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every import of `src/` that `node` maps to an edge (from, to), and the files behind each.
type Graph = (
    BTreeMap<String, BTreeSet<String>>,
    BTreeMap<(String, String), BTreeSet<String>>,
);

fn import_graph(node: impl Fn(&Module, &Module) -> Option<(String, String)>) -> Graph {
    let modules = modules();
    let all: BTreeSet<Module> = modules.keys().cloned().collect();
    let (mut edges, mut why) = Graph::default();
    for (module, source) in &modules {
        for target in imports(module, source, &all) {
            if let Some((from, to)) = node(module, &target) {
                edges.entry(from.clone()).or_default().insert(to.clone());
                why.entry((from, to)).or_default().insert(module.join("/"));
            }
        }
    }
    (edges, why)
}

/// Fails naming the files behind every loop of `edges`.
fn assert_no_loops(
    what: &str,
    edges: &BTreeMap<String, BTreeSet<String>>,
    why: &BTreeMap<(String, String), BTreeSet<String>>,
) {
    let found = loops(edges);
    assert!(
        found.is_empty(),
        "{what} that import each other:\n{}",
        found
            .iter()
            .map(|c| explain(c, why))
            .collect::<Vec<_>>()
            .join("\n\n")
    );
}

#[test]
fn no_folder_imports_a_folder_that_imports_it_back() {
    let (edges, why) = import_graph(|module, target| {
        (target[0] != module[0]).then(|| (module[0].clone(), target[0].clone()))
    });
    // The check itself must see the map: the server composes the front ends.
    assert!(edges["server"].contains("api") && edges["server"].contains("ui"));
    assert_no_loops("folders", &edges, &why);
    // src/lib.rs lists the modules in the order data flows: each imports only those above it.
    let lib =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    let order: Vec<String> = lib
        .lines()
        .filter_map(|l| {
            l.strip_prefix("pub mod ")?
                .split(';')
                .next()
                .map(str::to_owned)
        })
        .collect();
    assert!(order.len() > 20, "src/lib.rs lists {order:?}");
    for (position, module) in order.iter().enumerate() {
        for target in edges.get(module).into_iter().flatten() {
            let above = order[..position].contains(target);
            assert!(
                above,
                "{module}/ imports {target}/, listed after it in src/lib.rs (in {:?}): list \
                 modules in the order data flows",
                why.get(&(module.clone(), target.clone()))
            );
        }
    }
    for (front, other) in [("api", "ui"), ("ui", "api")] {
        assert!(
            !edges.get(front).is_some_and(|e| e.contains(other)),
            "{front}/ imports {other}/: {:?}",
            why.get(&(front.to_owned(), other.to_owned()))
        );
    }
}

#[test]
fn no_file_imports_a_sibling_that_imports_it_back() {
    // Siblings: two files directly inside the same folder (not the folder's mod.rs).
    let (edges, why) = import_graph(|module, target| {
        let siblings = module.len() >= 2
            && target.len() == module.len()
            && target[..module.len() - 1] == module[..module.len() - 1];
        siblings.then(|| (module.join("/"), target.join("/")))
    });
    assert!(
        !edges.is_empty(),
        "the check found no imports between files at all"
    );
    assert_no_loops("files", &edges, &why);
}

#[test]
fn the_check_sees_imports_and_loops() {
    let all: BTreeSet<Module> = [
        vec!["a".to_owned()],
        vec!["b".to_owned(), "c".to_owned()],
        vec!["b".to_owned()],
    ]
    .into_iter()
    .collect();
    let a = vec!["a".to_owned()];
    let source = "use crate::{b::c::Thing, a};\n// crate::nothing\nfn f() { super::b::other(); }";
    assert_eq!(
        imports(&a, source, &all),
        [vec!["b".to_owned(), "c".to_owned()], vec!["b".to_owned()]]
            .into_iter()
            .collect()
    );
    let edges: BTreeMap<String, BTreeSet<String>> = [
        ("a".to_owned(), ["b".to_owned()].into()),
        ("b".to_owned(), ["c".to_owned()].into()),
        ("c".to_owned(), ["a".to_owned()].into()),
        ("d".to_owned(), ["a".to_owned()].into()),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        loops(&edges),
        vec![["a".to_owned(), "b".to_owned(), "c".to_owned()].into()]
    );
}

/// Functions of `source` longer than `limit` lines (from `fn` to the closing brace at the same
/// indentation) whose comments do not say why they cannot be split: `(name, lines)`.
fn long_functions(source: &str, limit: usize) -> Vec<(String, usize)> {
    let lines: Vec<&str> = source.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        let signature = trimmed
            .trim_start_matches("pub ")
            .trim_start_matches("pub(crate) ")
            .trim_start_matches("pub(super) ")
            .trim_start_matches("async ");
        let Some(rest) = signature.strip_prefix("fn ") else {
            i += 1;
            continue;
        };
        if line.trim_end().ends_with(';') {
            i += 1;
            continue;
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let end = (i + 1..lines.len())
            .find(|&j| {
                let l = lines[j];
                l.len() > indent && l[indent..].starts_with('}') && l[..indent].trim().is_empty()
            })
            .unwrap_or(lines.len() - 1);
        let length = end - i + 1;
        let justified = lines[..i]
            .iter()
            .rev()
            .take_while(|l| {
                let l = l.trim_start();
                l.starts_with("///") || l.starts_with("//") || l.starts_with("#[")
            })
            .any(|l| l.contains("cannot be split"));
        if length > limit && !justified {
            out.push((name, length));
        }
        i = end.max(i + 1);
    }
    out
}

#[test]
fn no_function_is_longer_than_a_hundred_lines_without_saying_why() {
    let mut found = Vec::new();
    for (module, source) in modules() {
        for (name, length) in long_functions(&source, 100) {
            found.push(format!("{}::{name} ({length} lines)", module.join("/")));
        }
    }
    assert!(
        found.is_empty(),
        "split these into named steps, or say in their comment why they cannot be split:\n{}",
        found.join("\n")
    );
    let long = format!("fn long() {{\n{}}}\n", "    step();\n".repeat(101));
    assert_eq!(long_functions(&long, 100), [("long".to_owned(), 103)]);
    let said = format!("// One match over every case: it cannot be split.\n{long}");
    assert!(long_functions(&said, 100).is_empty());
}
