//! The `faultline` binary: see `faultline --help`.

/// Processing a crash allocates many small strings and frames; mimalloc spends about half the
/// time glibc's allocator does on them (docs/PERFORMANCE.md), as symbolicator does with its
/// own choice of allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    faultline::cli::main()
}
