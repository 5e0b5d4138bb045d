//! Resident memory per SA on glibc's malloc (`espresso_bench::sa_rss`).

fn main() {
    espresso_bench::sa_rss::run();
}
