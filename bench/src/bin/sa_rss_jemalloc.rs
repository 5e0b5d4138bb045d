//! Resident memory per SA with jemalloc as the global allocator
//! (`espresso_bench::sa_rss`).

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    espresso_bench::sa_rss::run();
}
