//! Function-name normalization for signatures: the parts of a name that change between builds
//! or compilers without the code changing are removed, so one bug keeps one signature.
//!
//! - parameters and trailing qualifiers (`(int) const`, `[clone .cold]`, `noexcept`),
//! - return types and calling conventions (`void __cdecl`),
//! - template and generic arguments, collapsed to `<T>` (`std::vector<int>` → `std::vector<T>`),
//! - Rust symbol hashes (`::h0123456789abcdef`),
//! - lambdas and closures (`{lambda(int)#1}`, `<lambda_3f2a…>`, `{closure#0}` → one spelling),
//! - anonymous namespaces (`` `anonymous namespace' ``, `{anonymous}`).

use std::borrow::Cow;

/// Normalizes one demangled function name.
///
/// Each step copies the name only when it changes it: most steps only cut a prefix or a
/// suffix, and most names have no template, lambda or odd spacing (this runs for every frame
/// of every signature).
pub fn normalize(name: &str) -> String {
    let name = name.trim();
    if name.starts_with("-[") || name.starts_with("+[") {
        // Objective-C selectors carry no parameters or templates to strip.
        return collapse_spaces(name).into_owned();
    }
    let name: Cow<str> = if name.contains(['`', '{']) {
        Cow::Owned(
            name.replace("`anonymous namespace'", "(anonymous namespace)")
                .replace("{anonymous}", "(anonymous namespace)"),
        )
    } else {
        Cow::Borrowed(name)
    };
    let name = strip_calling_convention(strip_trailing(strip_rust_hash(&name)));
    let name = replace_lambdas(name);
    let name = collapse_templates(&name);
    collapse_spaces(strip_return_type(&name)).into_owned()
}

/// Runs of whitespace become one space; none at either end.
fn collapse_spaces(s: &str) -> Cow<'_, str> {
    let single = !s.starts_with(char::is_whitespace)
        && !s.ends_with(char::is_whitespace)
        && !s
            .as_bytes()
            .windows(2)
            .any(|w| w[0].is_ascii_whitespace() && w[1].is_ascii_whitespace())
        && !s.chars().any(|c| c.is_whitespace() && c != ' ');
    if single {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(s.split_whitespace().collect::<Vec<_>>().join(" "))
    }
}

/// `core::panicking::panic_fmt::h1a2b3c4d5e6f7a8b` → `core::panicking::panic_fmt`.
fn strip_rust_hash(name: &str) -> &str {
    match name.rfind("::h") {
        Some(i) if name.len() - i == 19 && name[i + 3..].bytes().all(|b| b.is_ascii_hexdigit()) => {
            &name[..i]
        }
        _ => name,
    }
}

/// Index of the `open` bracket matching the `close` bracket at `end`, scanning backwards.
fn matching_open(bytes: &[u8], end: usize, open: u8, close: u8) -> Option<usize> {
    let mut depth = 0usize;
    for i in (0..=end).rev() {
        if bytes[i] == close {
            depth += 1;
        } else if bytes[i] == open {
            depth -= 1;
            if depth == 0 {
                return Some(i);
            }
        }
    }
    None
}

/// Removes the parameter list and what may follow it: ` const`, ` volatile`, `&`, `&&`,
/// ` noexcept`, ` [clone .cold]`, ` (.cold)`, and GCC's ` [clone .constprop.0]`.
fn strip_trailing(name: &str) -> &str {
    let mut s = name.trim_end();
    loop {
        let before = s.len();
        for suffix in [" const", " volatile", " noexcept", "&&", "&", " override"] {
            if let Some(rest) = s.strip_suffix(suffix) {
                s = rest.trim_end();
            }
        }
        if s.ends_with(']') {
            if let Some(open) = matching_open(s.as_bytes(), s.len() - 1, b'[', b']') {
                if s[open..].starts_with("[clone") {
                    s = s[..open].trim_end();
                }
            }
        }
        // GCC's clones: only a name with a dot can have one.
        if s.contains('.') {
            if let Some(i) = s
                .find(".constprop.")
                .or_else(|| s.find(".isra."))
                .or_else(|| s.find(".part."))
            {
                if !s[..i].ends_with("operator") {
                    s = &s[..i];
                }
            }
        }
        if s.len() == before {
            break;
        }
    }
    if s.ends_with(')') {
        if let Some(open) = matching_open(s.as_bytes(), s.len() - 1, b'(', b')') {
            let head = &s[..open];
            // `(anonymous namespace)` alone is a name, not parameters; so is the `()` of
            // `operator()` when no parameter list follows it.
            let is_name =
                head.is_empty() || (head.ends_with("operator") && !head.ends_with("operator()"));
            if !is_name {
                s = head;
            }
        }
    }
    s.trim_end()
}

/// `void __cdecl ns::f` → `ns::f`.
fn strip_calling_convention(name: &str) -> &str {
    // Every convention starts with `__`.
    if !name.as_bytes().windows(2).any(|w| w == b"__") {
        return name;
    }
    for convention in [
        "__cdecl ",
        "__stdcall ",
        "__thiscall ",
        "__fastcall ",
        "__vectorcall ",
        "__clrcall ",
    ] {
        if let Some(i) = name.find(convention) {
            return &name[i + convention.len()..];
        }
    }
    name
}

/// One spelling for anonymous functions: `{lambda}`, `<lambda>`, `{closure}`.
fn replace_lambdas(name: &str) -> Cow<'_, str> {
    if !name.contains(['{', '<']) {
        return Cow::Borrowed(name);
    }
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while !rest.is_empty() {
        if let Some(tail) = rest.strip_prefix("{lambda(") {
            // GCC: {lambda(int, char)#2}
            let end = tail
                .find(")#")
                .and_then(|i| tail[i..].find('}').map(|j| i + j));
            if let Some(end) = end {
                out.push_str("{lambda}");
                rest = &tail[end + 1..];
                continue;
            }
        }
        if let Some(tail) = rest.strip_prefix("<lambda_") {
            // MSVC: <lambda_1a2b3c4d5e6f>
            if let Some(end) = tail.find('>') {
                out.push_str("<lambda>");
                rest = &tail[end + 1..];
                continue;
            }
        }
        if let Some(tail) = rest.strip_prefix("{{closure}}") {
            out.push_str("{closure}");
            rest = tail;
            continue;
        }
        if let Some(tail) = rest.strip_prefix("{closure#") {
            if let Some(end) = tail.find('}') {
                out.push_str("{closure}");
                rest = &tail[end + 1..];
                continue;
            }
        }
        let c = rest.chars().next().expect("non-empty");
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    Cow::Owned(out)
}

/// `std::vector<int, std::allocator<int>>::push_back` → `std::vector<T>::push_back`.
/// A name that *starts* with `<…>` (a Rust qualified path such as `<Foo as Bar>::baz`) keeps the
/// path, with the generics inside it collapsed. `operator<`, `operator<<`, `operator<=>`,
/// `operator->` and the `<lambda>` marker are left alone.
fn collapse_templates(name: &str) -> Cow<'_, str> {
    if !name.contains('<') {
        return Cow::Borrowed(name);
    }
    let bytes = name.as_bytes();
    let mut out = String::with_capacity(name.len());
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'<' {
            if out.ends_with("operator") || out.ends_with("operator<") || out.ends_with("operator-")
            {
                out.push('<');
                i += 1;
                continue;
            }
            if name[i..].starts_with("<lambda>") {
                out.push_str("<lambda>");
                i += "<lambda>".len();
                continue;
            }
            // Find the matching '>' (skipping `->`).
            let mut depth = 0usize;
            let mut j = i;
            let mut end = None;
            while j < bytes.len() {
                match bytes[j] {
                    b'<' => depth += 1,
                    b'>' if j > 0 && bytes[j - 1] == b'-' => {}
                    b'>' => {
                        depth -= 1;
                        if depth == 0 {
                            end = Some(j);
                            break;
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            let Some(end) = end else {
                out.push_str(&name[i..]);
                break;
            };
            let qualified_path =
                out.is_empty() || out.ends_with("::") && out[..out.len() - 2].is_empty();
            if qualified_path {
                out.push('<');
                out.push_str(&collapse_templates(&name[i + 1..end]));
                out.push('>');
            } else {
                out.push_str("<T>");
            }
            i = end + 1;
            continue;
        }
        // Up to the next `<` as it is (a run of text, non-ASCII names whole).
        let next = name[i..].find('<').map_or(bytes.len(), |n| i + n);
        out.push_str(&name[i..next]);
        i = next;
    }
    Cow::Owned(out)
}

/// `int ns::f` → `ns::f`: a top-level space before the name separates a return type, except in
/// `operator new`, `operator delete`, conversion operators and `(anonymous namespace)`.
fn strip_return_type(name: &str) -> &str {
    let bytes = name.as_bytes();
    let mut depth = 0i32;
    let mut last_space = None;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'<' | b'(' | b'[' | b'{' => depth += 1,
            b'>' | b')' | b']' | b'}' => depth -= 1,
            b' ' if depth == 0 => last_space = Some(i),
            _ => {}
        }
    }
    match last_space {
        Some(i) if !name[..i].ends_with("operator") && !name[..i].contains(" operator") => {
            let head = &name[..i];
            // `ns::operator new` → keep; `unsigned int f` → `f`.
            if head.rsplit("::").next().is_some_and(|w| w == "operator") {
                name
            } else {
                &name[i + 1..]
            }
        }
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn cpp_names() {
        let table = [
            ("ns::Foo::bar(int, char const*) const", "ns::Foo::bar"),
            ("void __cdecl ns::Foo::bar(int)", "ns::Foo::bar"),
            ("std::vector<int, std::allocator<int> >::push_back(int const&)", "std::vector<T>::push_back"),
            ("std::map<std::string, std::vector<int>>::operator[](std::string const&)", "std::map<T>::operator[]"),
            ("int ns::compute<float>(float)", "ns::compute<T>"),
            ("(anonymous namespace)::crash()", "(anonymous namespace)::crash"),
            ("`anonymous namespace'::CrashFunction", "(anonymous namespace)::CrashFunction"),
            ("{anonymous}::helper(int)", "(anonymous namespace)::helper"),
            ("Foo::operator()(int) const", "Foo::operator()"),
            ("Foo::operator<(Foo const&) const", "Foo::operator<"),
            ("Foo::operator<<(std::ostream&)", "Foo::operator<<"),
            ("Foo::operator->()", "Foo::operator->"),
            ("operator new(unsigned long)", "operator new"),
            ("Widget::Paint()::{lambda(int)#1}::operator()(int) const", "Widget::Paint()::{lambda}::operator()"),
            ("Widget::Paint::<lambda_9f3c2a1b>::operator()", "Widget::Paint::<lambda>::operator()"),
            ("__gnu_cxx::__verbose_terminate_handler() [clone .cold]", "__gnu_cxx::__verbose_terminate_handler"),
            ("__pthread_kill_implementation.constprop.0", "__pthread_kill_implementation"),
            ("google_breakpad::CrashGenerationClient::RequestDump(_EXCEPTION_POINTERS*, MDRawAssertionInfo*)", "google_breakpad::CrashGenerationClient::RequestDump"),
            ("main", "main"),
        ];
        for (input, expected) in table {
            assert_eq!(normalize(input), expected, "{input}");
        }
    }

    #[test]
    fn rust_names() {
        let table = [
            (
                "core::panicking::panic_fmt::h0123456789abcdef",
                "core::panicking::panic_fmt",
            ),
            (
                "core::ptr::write_volatile::<u8>",
                "core::ptr::write_volatile::<T>",
            ),
            (
                "crash_client::real_main::{closure#1}",
                "crash_client::real_main::{closure}",
            ),
            (
                "std::rt::lang_start::{{closure}}",
                "std::rt::lang_start::{closure}",
            ),
            (
                "<alloc::vec::Vec<T,A> as core::ops::drop::Drop>::drop",
                "<alloc::vec::Vec<T> as core::ops::drop::Drop>::drop",
            ),
            (
                "<fn() as core::ops::function::FnOnce<()>>::call_once",
                "<fn() as core::ops::function::FnOnce<T>>::call_once",
            ),
            (
                "alloc::raw_vec::RawVec<T,A>::with_capacity_in",
                "alloc::raw_vec::RawVec<T>::with_capacity_in",
            ),
            (
                "std::panicking::try::do_call::<fn(), ()>",
                "std::panicking::try::do_call::<T>",
            ),
        ];
        for (input, expected) in table {
            assert_eq!(normalize(input), expected, "{input}");
        }
    }

    #[test]
    fn non_ascii_names_are_kept_whole() {
        assert_eq!(normalize("jeu::défaite<é>(i32)"), "jeu::défaite<T>");
        assert_eq!(
            normalize("<Größe as Maß<ü>>::wert"),
            "<Größe as Maß<T>>::wert"
        );
        assert_eq!(normalize("spiel::größe"), "spiel::größe");
    }

    #[test]
    fn objective_c_names_are_kept() {
        assert_eq!(
            normalize("-[NSObject(NSObject) doesNotRecognizeSelector:]"),
            "-[NSObject(NSObject) doesNotRecognizeSelector:]"
        );
        assert_eq!(
            normalize("+[MyClass  sharedInstance]"),
            "+[MyClass sharedInstance]"
        );
        assert_eq!(normalize("__CFRaiseException"), "__CFRaiseException");
    }
}
