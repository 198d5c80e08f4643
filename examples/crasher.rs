//! The crash generator: crashes in the fault class named on the command line and writes a real
//! minidump of itself, for `fixtures/minidumps/` (see `fixtures/minidumps/regenerate.sh`).
//!
//! `crasher --dump-pid PID OUT.dmp` dumps another running process (for benchmarks).
//! `crasher --list` names the classes; `crasher CLASS OUT.dmp` starts a dump server (this same program with `--server`), installs
//! crash-handler's signal handler, and crashes. The handler sends the crash context to the
//! server, which ptraces this process and writes the minidump with minidump-writer.
//!
//! Linux x86-64 only. Built statically (glibc included) so the dumps' libc frames — `abort`,
//! `__assert_fail`, `malloc_printerr`, `__chk_fail` — are symbolicated from this program's own
//! debug file. Every crash below takes the real code path (a real double free, a real fortify
//! check, a real uncaught C++ throw), never a call to the reporting function alone.

// No Rust `main`: std wraps it in `catch_unwind`, which would catch the C++ exception of the
// cxx-exception class instead of letting it reach std::terminate as in a C++ program.
#![no_main]

#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
#[no_mangle]
extern "C" fn main() -> i32 {
    eprintln!("the crash generator runs on Linux x86-64 only");
    2
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
#[no_mangle]
extern "C" fn main() -> i32 {
    linux::main();
    0
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod linux {
    use std::hint::black_box;
    use std::path::PathBuf;
    use std::ptr;

    /// Every class the generator can produce, as `faultline` names them, then variants whose
    /// exploitability rating differs from their class's.
    pub const CLASSES: &[&str] = &[
        "null-read",
        "null-write",
        "null-exec",
        "wild-read",
        "wild-write",
        "wild-exec",
        "exec-on-stack",
        "exec-on-heap",
        "write-to-readonly",
        "non-canonical-address",
        "stack-overflow",
        "stack-buffer-overrun",
        "abort",
        "assertion",
        "cxx-exception",
        "rust-panic",
        "out-of-memory",
        "heap-corruption",
        "divide-by-zero",
        "illegal-instruction",
        "bus-error",
        "breakpoint",
        "dump-requested",
        // Not classes of their own: crashes whose rating depends on more than the class.
        "ascii-read",
        "null-read-wx-heap",
        "wild-read-call",
    ];

    /// Crashes in C code with known variables, one per optimization level
    /// (fixtures/minidumps/variables/variables.c, compiled by build.rs), run under gdb by
    /// regenerate.sh: `crasher --list-variables` names them.
    pub const VARIABLE_CLASSES: &[&str] = &[
        "variables-c-O0",
        "variables-c-O2",
        "variables-cpp-O0",
        "variables-cpp-O2",
        "variables-rs-O0",
        "variables-rs-O2",
    ];

    extern "C" {
        fn crash_variables_c_O0();
        fn crash_variables_cpp_O0();
        fn crash_variables_rs_O0();
        fn crash_variables_c_O2();
        fn crash_variables_cpp_O2();
        fn crash_variables_rs_O2();
    }

    /// An address in the canonical lower half that nothing maps.
    const WILD: usize = 0x0000_1234_5678_0000;

    #[link(name = "stdc++")]
    extern "C-unwind" {
        fn __assert_fail(
            assertion: *const u8,
            file: *const u8,
            line: u32,
            function: *const u8,
        ) -> !;
        fn __memcpy_chk(dest: *mut u8, src: *const u8, len: usize, dest_len: usize) -> *mut u8;
        fn __cxa_allocate_exception(size: usize) -> *mut u8;
        fn __cxa_throw(object: *mut u8, type_info: *const u8, destructor: *const u8) -> !;
        #[link_name = "_ZTIi"]
        static TYPEINFO_INT: u8;
    }

    #[inline(never)]
    fn null_read() -> u64 {
        unsafe { ptr::read_volatile(black_box(0x10usize) as *const u64) }
    }

    #[inline(never)]
    fn null_write() {
        unsafe { ptr::write_volatile(black_box(0x20usize) as *mut u32, 1) }
    }

    #[inline(never)]
    fn null_exec() {
        let function: extern "C" fn() = unsafe { std::mem::transmute(black_box(0x8usize)) };
        function()
    }

    #[inline(never)]
    fn wild_read() -> u64 {
        unsafe { ptr::read_volatile(black_box(WILD) as *const u64) }
    }

    /// A call through a function pointer read from a wild address (a corrupted object's
    /// vtable slot): the read faults, and the value it was loading was about to be called.
    #[inline(never)]
    fn wild_read_call() {
        unsafe {
            std::arch::asm!(
                "mov rax, qword ptr [{slot}]",
                "call rax",
                slot = in(reg) black_box(WILD),
                out("rax") _,
                clobber_abi("C"),
            )
        }
    }

    /// A read through a pointer overwritten by text ("AAAA"): the address spells ASCII.
    #[inline(never)]
    fn ascii_read() -> u64 {
        unsafe { ptr::read_volatile(black_box(0x4141_4141usize) as *const u64) }
    }

    /// Makes a page of the heap (`[heap]`, the brk area) writable and executable, as a
    /// process with an executable heap has, then dereferences null.
    #[inline(never)]
    fn null_read_wx_heap() -> u64 {
        unsafe {
            let block = libc::malloc(64) as usize;
            let page = block & !4095;
            let protection = libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC;
            assert_eq!(
                libc::mprotect(page as *mut libc::c_void, 4096, protection),
                0
            );
        }
        null_read()
    }

    #[inline(never)]
    fn wild_write() {
        unsafe { ptr::write_volatile(black_box(WILD) as *mut u64, 0x4141_4141) }
    }

    #[inline(never)]
    fn wild_exec() {
        let function: extern "C" fn() = unsafe { std::mem::transmute(black_box(WILD)) };
        function()
    }

    #[inline(never)]
    fn exec_on_stack() {
        // `ret`, on the (non-executable) stack.
        let code = black_box([0xc3u8; 16]);
        let function: extern "C" fn() = unsafe { std::mem::transmute(code.as_ptr()) };
        function()
    }

    #[inline(never)]
    fn exec_on_heap() {
        let code = black_box(vec![0xc3u8; 64]);
        let function: extern "C" fn() = unsafe { std::mem::transmute(code.as_ptr()) };
        function()
    }

    static GREETING: &str = "read-only string literal";

    #[inline(never)]
    fn write_to_readonly() {
        unsafe { ptr::write_volatile(black_box(GREETING.as_ptr()) as *mut u8, b'R') }
    }

    #[inline(never)]
    fn non_canonical_address() -> u64 {
        unsafe { ptr::read_volatile(black_box(0x8000_0000_0000_0010usize) as *const u64) }
    }

    #[inline(never)]
    #[allow(unconditional_recursion)]
    fn stack_overflow(depth: u64) -> u64 {
        let frame = black_box([depth; 512]);
        stack_overflow(depth + 1) + frame[(depth % 512) as usize]
    }

    #[inline(never)]
    fn stack_buffer_overrun() {
        // glibc's fortified memcpy: copying 64 bytes into a 16-byte buffer fails its check.
        let mut small = [0u8; 16];
        let big = [0x41u8; 64];
        unsafe {
            __memcpy_chk(small.as_mut_ptr(), big.as_ptr(), black_box(64), small.len());
        }
        black_box(small);
    }

    #[inline(never)]
    fn abort() {
        unsafe { libc::abort() }
    }

    #[inline(never)]
    fn assertion() {
        let ready = black_box(false);
        if !ready {
            unsafe {
                __assert_fail(
                    c"ready".as_ptr().cast(),
                    c"examples/crasher.rs".as_ptr().cast(),
                    line!(),
                    c"assertion".as_ptr().cast(),
                )
            }
        }
    }

    #[inline(never)]
    fn cxx_throw() {
        // `throw 42;`
        unsafe {
            let object = __cxa_allocate_exception(4);
            *(object as *mut i32) = 42;
            __cxa_throw(object, &raw const TYPEINFO_INT, ptr::null())
        }
    }

    #[inline(never)]
    fn cxx_exception() {
        // Nothing on the stack catches it, so libstdc++ calls std::terminate, as for any
        // uncaught C++ exception.
        cxx_throw()
    }

    #[inline(never)]
    fn rust_panic() {
        let items: Vec<u32> = black_box(Vec::new());
        let first = items.first().copied();
        panic!("no items to process: {first:?}");
    }

    #[inline(never)]
    fn out_of_memory() {
        // 64 TiB: malloc fails, and Rust's allocation-error handler aborts.
        let huge: Vec<u8> = Vec::with_capacity(black_box(1usize << 46));
        black_box(huge);
    }

    #[inline(never)]
    fn heap_corruption() {
        unsafe {
            let block = libc::malloc(black_box(48));
            libc::free(block);
            libc::free(black_box(block));
        }
    }

    #[inline(never)]
    fn divide_by_zero() -> u64 {
        let divisor = black_box(0u64);
        let quotient: u64;
        unsafe {
            std::arch::asm!("div {d}", d = in(reg) divisor, inout("rax") 1u64 => quotient, inout("rdx") 0u64 => _);
        }
        quotient
    }

    #[inline(never)]
    fn illegal_instruction() {
        unsafe { std::arch::asm!("ud2") }
    }

    #[inline(never)]
    fn bus_error(scratch: &std::path::Path) -> u8 {
        // Map two pages of a one-byte file: the second page has no file behind it.
        use std::os::fd::AsRawFd;
        let path = scratch.with_extension("bus");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .expect("scratch file");
        file.set_len(1).expect("scratch file size");
        unsafe {
            let map = libc::mmap(
                ptr::null_mut(),
                8192,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            );
            assert_ne!(map, libc::MAP_FAILED);
            ptr::read_volatile((map as *const u8).add(4096 + 16))
        }
    }

    #[inline(never)]
    fn breakpoint() {
        unsafe { std::arch::asm!("int3") }
    }

    /// Crashes as `class` says (returns only for unknown names).
    #[inline(never)]
    fn crash(class: &str, handler: &crash_handler::CrashHandler, out: &std::path::Path) {
        match class {
            "null-read" => drop(null_read()),
            "null-write" => null_write(),
            "null-exec" => null_exec(),
            "wild-read" => drop(wild_read()),
            "wild-read-call" => wild_read_call(),
            "wild-write" => wild_write(),
            "wild-exec" => wild_exec(),
            "exec-on-stack" => exec_on_stack(),
            "exec-on-heap" => exec_on_heap(),
            "write-to-readonly" => write_to_readonly(),
            "non-canonical-address" => drop(non_canonical_address()),
            // regenerate.sh runs this class with a 256 KiB stack limit, so the dump stays small.
            "stack-overflow" => drop(stack_overflow(0)),
            "stack-buffer-overrun" => stack_buffer_overrun(),
            "abort" => abort(),
            "assertion" => assertion(),
            "cxx-exception" => cxx_exception(),
            "rust-panic" => rust_panic(),
            "out-of-memory" => out_of_memory(),
            "heap-corruption" => heap_corruption(),
            "divide-by-zero" => drop(divide_by_zero()),
            "illegal-instruction" => illegal_instruction(),
            "bus-error" => drop(bus_error(out)),
            "breakpoint" => breakpoint(),
            // No signal: a dump of the running process, as for a hang report.
            "dump-requested" => drop(handler.simulate_signal(0)),
            "ascii-read" => drop(ascii_read()),
            "null-read-wx-heap" => drop(null_read_wx_heap()),
            "variables-c-O0" => unsafe { crash_variables_c_O0() },
            "variables-c-O2" => unsafe { crash_variables_c_O2() },
            "variables-cpp-O0" => unsafe { crash_variables_cpp_O0() },
            "variables-cpp-O2" => unsafe { crash_variables_cpp_O2() },
            "variables-rs-O0" => unsafe { crash_variables_rs_O0() },
            "variables-rs-O2" => unsafe { crash_variables_rs_O2() },
            _ => {}
        }
    }

    /// crash-handler 0.8 copies the kernel's `siginfo_t` as if it were a `signalfd_siginfo`,
    /// which loses the fault address (the fields sit at different offsets). Restore it the
    /// way the kernel fills `si_addr`: the page-fault address (CR2) for SIGSEGV and SIGBUS,
    /// the instruction pointer for SIGILL, SIGFPE and SIGTRAP; 0 for general-protection faults
    /// (si_code SI_KERNEL) and signals sent by a process.
    fn with_fault_address(context: &crash_handler::CrashContext) -> crash_handler::CrashContext {
        const REG_RIP: usize = 16;
        const REG_CR2: usize = 22;
        const SI_KERNEL: i32 = 0x80;
        let mut fixed = context.clone();
        let gregs = &context.context.uc_mcontext.gregs;
        fixed.siginfo.ssi_addr = match (context.siginfo.ssi_signo as i32, context.siginfo.ssi_code)
        {
            (_, SI_KERNEL) => 0,
            (libc::SIGSEGV | libc::SIGBUS, code) if code > 0 => gregs[REG_CR2] as u64,
            (libc::SIGILL | libc::SIGFPE | libc::SIGTRAP, code) if code > 0 => {
                gregs[REG_RIP] as u64
            }
            _ => 0,
        };
        fixed
    }

    struct WriteTo(PathBuf);

    impl minidumper::ServerHandler for WriteTo {
        fn create_minidump_file(&self) -> std::io::Result<(std::fs::File, PathBuf)> {
            let partial = self.0.with_extension("partial");
            Ok((std::fs::File::create(&partial)?, partial))
        }

        fn on_minidump_created(
            &self,
            result: Result<minidumper::MinidumpBinary, minidumper::Error>,
        ) -> minidumper::LoopAction {
            match result {
                Ok(binary) => {
                    drop(binary.file);
                    if let Err(e) = std::fs::rename(&binary.path, &self.0) {
                        eprintln!("crasher: cannot move the dump into place: {e}");
                    }
                }
                Err(e) => eprintln!("crasher: the dump could not be written: {e}"),
            }
            minidumper::LoopAction::Exit
        }

        fn on_message(&self, _kind: u32, _buffer: Vec<u8>) {}
    }

    fn serve(socket: &str, out: PathBuf) {
        let mut server = minidumper::Server::with_name(minidumper::SocketName::path(socket))
            .expect("cannot open the dump server's socket");
        let shutdown = std::sync::atomic::AtomicBool::new(false);
        server
            .run(
                Box::new(WriteTo(out)),
                &shutdown,
                Some(std::time::Duration::from_secs(30)),
            )
            .expect("the dump server failed");
    }

    /// Writes a minidump of another running process (no crash: a dump of it as it runs), for
    /// benchmarks that need a real dump of a large, multi-threaded program.
    fn dump_pid(pid: &str, out: PathBuf) {
        let pid: i32 = pid.parse().expect("a process ID");
        let mut file = std::fs::File::create(&out).expect("cannot create the dump file");
        minidump_writer::minidump_writer::MinidumpWriterConfig::new(pid, pid)
            .write(&mut file)
            .expect("cannot write the minidump (is the process ptrace-able?)");
    }

    pub fn main() {
        let args: Vec<String> = std::env::args().collect();
        if args.get(1).map(String::as_str) == Some("--list") {
            return println!("{}", CLASSES.join("\n"));
        }
        if args.get(1).map(String::as_str) == Some("--list-variables") {
            return println!("{}", VARIABLE_CLASSES.join("\n"));
        }
        if args.len() == 4 && args[1] == "--server" {
            return serve(&args[2], PathBuf::from(&args[3]));
        }
        if args.len() == 4 && args[1] == "--dump-pid" {
            return dump_pid(&args[2], PathBuf::from(&args[3]));
        }
        let known = |class: &str| CLASSES.contains(&class) || VARIABLE_CLASSES.contains(&class);
        if args.len() != 3 || !known(&args[1]) {
            eprintln!(
                "usage: crasher CLASS OUT.dmp\nclasses: {}",
                CLASSES.join(" ")
            );
            std::process::exit(2);
        }
        let (class, out) = (args[1].as_str(), PathBuf::from(&args[2]));
        let socket = std::env::temp_dir().join(format!("crasher-{}.sock", std::process::id()));
        let socket = socket.to_str().expect("utf-8 temp dir").to_owned();
        let mut server = std::process::Command::new(std::env::current_exe().expect("own path"))
            .args(["--server", &socket, &args[2]])
            .spawn()
            .expect("cannot start the dump server");
        let client = loop {
            if let Ok(client) = minidumper::Client::with_name(minidumper::SocketName::path(&socket))
            {
                break client;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let handler = crash_handler::CrashHandler::attach(unsafe {
            crash_handler::make_crash_event(move |context: &crash_handler::CrashContext| {
                let context = with_fault_address(context);
                crash_handler::CrashEventResult::Handled(client.request_dump(&context).is_ok())
            })
        })
        .expect("cannot install the crash handler");
        handler.set_ptracer(Some(server.id()));
        crash(class, &handler, &out);
        // Only a dump without a crash gets here: wait for the server to finish writing.
        let _ = server.wait();
    }
}
