#![forbid(unsafe_code)]

// mimalloc: the edge allocates and frees small buffers per request on every worker thread;
// glibc's malloc spent ~6% of kedge's CPU there under the HTTP benchmark (scripts/bench-http).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    kedge::cli::main()
}
