//! Function-name normalization for signatures: the parts of a name that change between builds
//! or compilers without the code changing are removed, so one bug keeps one signature.
//!
//! - parameters and trailing qualifiers (`(int) const`, `[clone .cold]`, `noexcept`),
//! - return types and calling conventions (`void __cdecl`),
//! - template and generic arguments, collapsed to `<T>` (`std::vector<int>` → `std::vector<T>`),
//! - Rust symbol hashes (`::h0123456789abcdef`),
//! - lambdas and closures (`{lambda(int)#1}`, `<lambda_3f2a…>`, `{closure#0}` → one spelling),
//! - anonymous namespaces (`` `anonymous namespace' ``, `{anonymous}`).

/// Normalizes one demangled function name.
pub fn normalize(name: &str) -> String {
    let mut name = name.trim().to_owned();
    if name.starts_with("-[") || name.starts_with("+[") {
        // Objective-C selectors carry no parameters or templates to strip.
        return collapse_spaces(&name);
    }
    // Most names have neither spelling: `replace` would copy them twice to find nothing.
    if name.contains(['`', '{']) {
        name = name
            .replace("`anonymous namespace'", "(anonymous namespace)")
            .replace("{anonymous}", "(anonymous namespace)");
    }
    name = strip_rust_hash(&name);
    name = strip_trailing(&name);
    name = strip_calling_convention(&name);
    name = replace_lambdas(&name);
    name = collapse_templates(&name);
    name = strip_return_type(&name);
    collapse_spaces(&name)
}

fn collapse_spaces(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `core::panicking::panic_fmt::h1a2b3c4d5e6f7a8b` → `core::panicking::panic_fmt`.
fn strip_rust_hash(name: &str) -> String {
    match name.rfind("::h") {
        Some(i) if name.len() - i == 19 && name[i + 3..].bytes().all(|b| b.is_ascii_hexdigit()) => {
            name[..i].to_owned()
        }
        _ => name.to_owned(),
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
fn strip_trailing(name: &str) -> String {
    let mut s = name.trim_end().to_owned();
    loop {
        let before = s.len();
        for suffix in [" const", " volatile", " noexcept", "&&", "&", " override"] {
            if let Some(rest) = s.strip_suffix(suffix) {
                s = rest.trim_end().to_owned();
            }
        }
        if s.ends_with(']') {
            if let Some(open) = matching_open(s.as_bytes(), s.len() - 1, b'[', b']') {
                if s[open..].starts_with("[clone") {
                    s = s[..open].trim_end().to_owned();
                }
            }
        }
        if let Some(i) = s
            .find(".constprop.")
            .or_else(|| s.find(".isra."))
            .or_else(|| s.find(".part."))
        {
            if !s[..i].ends_with("operator") {
                s.truncate(i);
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
                s.truncate(open);
            }
        }
    }
    s.trim_end().to_owned()
}

/// `void __cdecl ns::f` → `ns::f`.
fn strip_calling_convention(name: &str) -> String {
    for convention in [
        "__cdecl ",
        "__stdcall ",
        "__thiscall ",
        "__fastcall ",
        "__vectorcall ",
        "__clrcall ",
    ] {
        if let Some(i) = name.find(convention) {
            return name[i + convention.len()..].to_owned();
        }
    }
    name.to_owned()
}

/// One spelling for anonymous functions: `{lambda}`, `<lambda>`, `{closure}`.
fn replace_lambdas(name: &str) -> String {
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
    out
}

/// `std::vector<int, std::allocator<int>>::push_back` → `std::vector<T>::push_back`.
/// A name that *starts* with `<…>` (a Rust qualified path such as `<Foo as Bar>::baz`) keeps the
/// path, with the generics inside it collapsed. `operator<`, `operator<<`, `operator<=>`,
/// `operator->` and the `<lambda>` marker are left alone.
fn collapse_templates(name: &str) -> String {
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
        out.push(c as char);
        i += 1;
    }
    out
}

/// `int ns::f` → `ns::f`: a top-level space before the name separates a return type, except in
/// `operator new`, `operator delete`, conversion operators and `(anonymous namespace)`.
fn strip_return_type(name: &str) -> String {
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
                name.to_owned()
            } else {
                name[i + 1..].to_owned()
            }
        }
        _ => name.to_owned(),
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
