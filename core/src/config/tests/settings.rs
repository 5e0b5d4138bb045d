//! The [daemon] and [dataplane] tables.

use super::*;

#[test]
fn daemon_settings_are_checked() {
    let d = tempfile::tempdir().unwrap();
    let p = write(
        d.path(),
        "c.toml",
        "[daemon]\nmetrics = \"localhost\"\nlog_lines = 1\n",
        0o600,
    );
    let errs = errors(&p);
    expect(
        &errs,
        &p,
        2,
        "daemon.metrics",
        Some("localhost"),
        "ADDRESS:PORT",
    );
    expect(&errs, &p, 3, "daemon.log_lines", Some("1"), "between 10");
    let p = write(d.path(), "c.toml", "[daemon]\nmetrics = false\n", 0o600);
    assert_eq!(Config::load(&p).unwrap().daemon.metrics, None);
}

#[test]
fn dataplane_table_is_typed_and_checked() {
    use super::dataplane::{ExceptionPath, IdleMode, IoBackendKind, RxRing, ShmSetting, TxMethod};
    let d = tempfile::tempdir().unwrap();
    let main = write(
        d.path(),
        "c.toml",
        "[daemon]\nshm = \"/dev/shm/gw1\"\n\n[dataplane]\nbackend = \"dpdk\"\n\
         eal = \"-l 2 --no-huge\"\ninside = \"0000:03:00.0\"\noutside = \"net_null1\"\n\
         exception = \"kernel,tap\"\ncores = [4, 5]\nrx-ring = \"v3\"\ntx = \"ring\"\n\
         idle = \"backoff\"\nidle_sleep_us = 100\nshm = true\nconfigure_kernel = true\n\
         crypto = \"aws-lc\"\nsched_fifo = 10\nkey_cache_entries = 4096\n",
        0o644,
    );
    let c = Config::load(&main).unwrap();
    let p = &c.dataplane;
    assert_eq!(p.backend, Some(IoBackendKind::Dpdk));
    assert_eq!(p.eal.as_deref(), Some("-l 2 --no-huge"));
    assert_eq!(
        p.exception,
        Some(vec![ExceptionPath::Kernel, ExceptionPath::Tap])
    );
    assert_eq!(p.cores, Some(vec![4, 5]));
    assert_eq!(p.rx_ring, Some(RxRing::V3));
    assert_eq!(p.tx, Some(TxMethod::Ring));
    assert_eq!(p.idle, Some(IdleMode::Backoff));
    assert_eq!(p.idle_sleep_us, Some(100));
    assert_eq!(p.shm, Some(ShmSetting::Daemon));
    assert_eq!(c.dataplane_shm(), Some(PathBuf::from("/dev/shm/gw1")));
    assert_eq!(p.configure_kernel, Some(true));
    assert_eq!(p.crypto.as_deref(), Some("aws-lc"));
    assert_eq!(p.sched_fifo, Some(10));
    assert_eq!(p.key_cache_entries, Some(4096));
    assert_eq!(p.burst, None);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);

    // A region other than the daemon's is allowed but warned about.
    let main = write(
        d.path(),
        "c.toml",
        "[dataplane]\nshm = \"/dev/shm/other\"\n",
        0o644,
    );
    let c = Config::load(&main).unwrap();
    assert!(c.warnings[0].contains("do not meet"), "{:?}", c.warnings);

    // Every value is checked, naming the field (espresso check refuses
    // what the dataplane would refuse).
    let main = write(
        d.path(),
        "c.toml",
        "[dataplane]\nbackend = \"xdp\"\ncores = [\"zero\"]\nrx_ring = \"v4\"\n\
         idle = 3\nexception = \"tap,tap,tap\"\ncrypto = \"openssl\"\nburst = 0\n\
         sched_fifo = 100\nshm = 5\nfanout = 2\nkey_cache_entries = 1000\n",
        0o644,
    );
    let errs = errors(&main);
    expect(
        &errs,
        &main,
        2,
        "dataplane.backend",
        Some("xdp"),
        "afpacket, dpdk",
    );
    expect(&errs, &main, 3, "dataplane.cores", None, "not a number");
    expect(&errs, &main, 4, "dataplane.rx_ring", Some("v4"), "v2, v3");
    expect(&errs, &main, 5, "dataplane.idle", None, "expected a string");
    expect(
        &errs,
        &main,
        6,
        "dataplane.exception",
        None,
        "two (inside, outside)",
    );
    expect(
        &errs,
        &main,
        7,
        "dataplane.crypto",
        Some("openssl"),
        "rustcrypto",
    );
    expect(&errs, &main, 8, "dataplane.burst", None, "at least 1");
    expect(&errs, &main, 9, "dataplane.sched_fifo", None, "at most 99");
    expect(&errs, &main, 10, "dataplane.shm", None, "a path, true");
    expect(&errs, &main, 11, "dataplane.fanout", None, "unknown field");
    expect(
        &errs,
        &main,
        12,
        "dataplane.key_cache_entries",
        None,
        "a power of two",
    );

    // Only in the main file.
    let main = write(d.path(), "c.toml", "include = \"b.toml\"\n", 0o644);
    let b = write(d.path(), "b.toml", "[dataplane]\ncores = [0]\n", 0o644);
    expect(
        &errors(&main),
        &b,
        1,
        "dataplane",
        None,
        "main configuration file",
    );
}
