//! The `faultline` binary: see `faultline --help`.

/// Processing a crash allocates many small strings and frames; mimalloc spends about half the
/// time glibc's allocator does on them (docs/PERFORMANCE.md), as symbolicator does with its
/// own choice of allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    faultline::cli::main()
}

/// Turns transparent huge pages off for every command but `serve`, before the allocator's own
/// start-up (this runs ahead of constructors without a priority, mimalloc's included). mimalloc
/// asks for huge pages on its heap, which suits a long-running server; a one-dump CLI run would
/// have the kernel clear two 2 MiB pages before `main`, about 3 ms of a 15 ms run.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod huge_pages {
    use std::ffi::{c_char, c_int, CStr};

    extern "C" fn choose(argc: c_int, argv: *const *const c_char, _envp: *const *const c_char) {
        // SAFETY: glibc calls `.init_array` functions with the program's argc and argv, whose
        // `argc` entries are NUL-terminated strings; `prctl` takes plain integers.
        unsafe {
            for i in 1..argc.max(0) as usize {
                if CStr::from_ptr(*argv.add(i)).to_bytes() == b"serve" {
                    return;
                }
            }
            libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
        }
    }

    #[used]
    #[link_section = ".init_array.00101"]
    static CHOOSE: extern "C" fn(c_int, *const *const c_char, *const *const c_char) = choose;
}
