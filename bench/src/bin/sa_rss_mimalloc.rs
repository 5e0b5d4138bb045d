//! Resident memory per SA with mimalloc as the global allocator
//! (`espresso_bench::sa_rss`).

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    espresso_bench::sa_rss::run();
}
