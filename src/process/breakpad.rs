//! Looking up an address in a Breakpad text file parsed whole (`faultline process --symbols`
//! with a `.sym`), giving the same [`SourceLocation`] a SymCache built from that file gives:
//! the outer function with the line of its first inlined call, then each inlined function with
//! the line inside it, innermost last.

use minidump_unwind::symbols::SymbolFile;
use symbolic::common::Name;

use super::location::{demangled, InlineLocation, SourceLocation};

/// A name as the SymCache path gives it: demangled when a `.sym` kept it mangled.
fn name(text: &str) -> String {
    demangled(Name::from(text))
}

/// The location of `offset` (an address minus the module's load address): the `FUNC` that
/// covers it with its line and `INLINE` records, or else the nearest `PUBLIC` before it.
pub fn resolve(file: &SymbolFile, offset: u64) -> Option<SourceLocation> {
    let Some(function) = file.functions.get(offset) else {
        let public = file.find_nearest_public(offset)?;
        // As in a SymCache, a public symbol reaches only as far as the next FUNC: in the gap
        // after a FUNC that starts at or past the public, no function covers the address.
        let functions = file.functions.ranges_values().as_slice();
        let before = functions.partition_point(|(range, _)| range.start <= offset);
        if before > 0 && functions[before - 1].0.start >= public.address {
            return None;
        }
        return Some(SourceLocation {
            function: name(&public.name),
            function_offset: public.address,
            file: None,
            line: 0,
            inlines: Vec::new(),
            generated: None,
        });
    };
    let path = |id: u32| file.files.get(&id).cloned();
    let origin = |id: u32| {
        file.inline_origins
            .get(&id)
            .map_or_else(String::new, |n| name(n))
    };
    // Inlined calls by depth: each names the function called and where it was called from.
    let mut calls = Vec::new();
    while let Some((call_file, call_line, _, origin_id)) =
        function.get_inlinee_at_depth(calls.len() as u32, offset)
    {
        calls.push((call_file, call_line, origin_id));
    }
    let innermost = function.get_innermost_sourceloc(offset);
    // The outer function sits at the first call's site; each inlined function at the next
    // call's site, the innermost one at the line record's location.
    let (file_id, line) = match calls.first() {
        Some(&(call_file, call_line, _)) => (Some(call_file), call_line),
        None => innermost.map_or((None, 0), |(file, line, _)| (Some(file), line)),
    };
    let inlines = calls
        .iter()
        .enumerate()
        .map(|(depth, &(_, _, origin_id))| {
            let (file_id, line) = match calls.get(depth + 1) {
                Some(&(call_file, call_line, _)) => (Some(call_file), call_line),
                None => innermost.map_or((None, 0), |(file, line, _)| (Some(file), line)),
            };
            InlineLocation {
                function: origin(origin_id),
                file: file_id.and_then(path),
                line: Some(line).filter(|l| *l != 0),
            }
        })
        .collect();
    Some(SourceLocation {
        function: name(&function.name),
        function_offset: function.address,
        file: file_id.and_then(path),
        line,
        inlines,
        generated: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYM: &str = "MODULE Linux x86_64 0123456789ABCDEF0123456789ABCDEF0 app
FILE 0 /src/outer.c
FILE 1 /src/inner.h
INLINE_ORIGIN 0 helper
INLINE_ORIGIN 1 _ZN4deep4leafEv
FUNC 1000 40 0 outer
INLINE 0 12 0 0 1010 10
INLINE 1 7 1 1 1010 8
1000 10 10 0
1010 8 3 1
1018 8 8 1
1020 20 14 0
PUBLIC 2000 0 lonely_public
FUNC 3000 10 0 after_public
3000 10 1 0
";

    #[test]
    fn functions_inlines_and_publics_resolve_as_a_symcache_would() {
        let file = SymbolFile::from_bytes(SYM.as_bytes()).unwrap();
        // Two inlined calls deep: outer at the first call's line, each inlined function at
        // the next call's line, the innermost one at the line record, names demangled.
        let deep = resolve(&file, 0x1012).unwrap();
        assert_eq!(
            (deep.function.as_str(), deep.file.as_deref(), deep.line),
            ("outer", Some("/src/outer.c"), 12)
        );
        let inlines: Vec<_> = deep
            .inlines
            .iter()
            .map(|i| (i.function.as_str(), i.file.as_deref(), i.line))
            .collect();
        assert_eq!(
            inlines,
            [
                ("helper", Some("/src/inner.h"), Some(7)),
                ("deep::leaf()", Some("/src/inner.h"), Some(3)),
            ]
        );
        assert_eq!(deep.function_offset, 0x1000);
        // One level deep, then none.
        assert_eq!(resolve(&file, 0x1019).unwrap().inlines.len(), 1);
        let plain = resolve(&file, 0x1030).unwrap();
        assert_eq!((plain.line, plain.inlines.len()), (14, 0));
        // A public reaches the next FUNC, never past a FUNC that starts after it.
        let public = resolve(&file, 0x2100).unwrap();
        assert_eq!(
            (public.function.as_str(), public.file),
            ("lonely_public", None)
        );
        assert!(resolve(&file, 0x3020).is_none());
        assert!(resolve(&file, 0x1050).is_none());
    }
}
