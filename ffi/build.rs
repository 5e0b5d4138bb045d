//! Builds the DPDK bindings: finds the system DPDK (22.11) with pkg-config,
//! compiles the C shim (`shim/shim.c`, DPDK's `static inline` functions) and
//! runs bindgen over the headers we use, keeping the output in OUT_DIR.
//!
//! Linking uses the shared libraries from `pkg-config --libs libdpdk`. Poll mode
//! drivers are not linked: the EAL loads them from its driver directory
//! (`/usr/lib/<triple>/dpdk/pmds-23.0`) at start-up.

use std::env;
use std::path::PathBuf;

fn main() {
    if env::var_os("CARGO_FEATURE_IPSEC_MB").is_some() {
        build_ipsec_mb();
    }
    println!("cargo:rerun-if-changed=shim/shim.c");
    println!("cargo:rerun-if-changed=shim/shim.h");
    println!("cargo:rerun-if-changed=build.rs");

    // Library search paths and include paths from pkg-config; the link list is
    // ours (below): only the libraries whose symbols we call.
    let dpdk = pkg_config::Config::new()
        .atleast_version("22.11")
        .cargo_metadata(false)
        .probe("libdpdk")
        .unwrap_or_else(|e| {
            panic!(
                "espresso-ffi needs the system DPDK (Debian: apt-get install libdpdk-dev \
                 pkg-config): {e}"
            )
        });

    for p in &dpdk.link_paths {
        println!("cargo:rustc-link-search=native={}", p.display());
    }
    // rte_bus_vdev (rte_vdev_init) and rte_net_ring (rte_eth_from_rings) are
    // driver libraries that pkg-config does not list for shared linking; the
    // EAL's own dlopen of the driver directory finds the same files and does
    // not load them twice.
    for lib in [
        "rte_net_ring",
        "rte_bus_vdev",
        "rte_ethdev",
        "rte_mbuf",
        "rte_mempool",
        "rte_ring",
        "rte_eal",
    ] {
        println!("cargo:rustc-link-lib=dylib={lib}");
    }

    // `pkg-config --cflags libdpdk` also carries `-include rte_config.h` and
    // `-march=...`, which are not include paths: take the raw flags.
    let cflags = pkg_config_cflags();

    let mut build = cc::Build::new();
    build.file("shim/shim.c").opt_level(3).warnings(true);
    for p in &dpdk.include_paths {
        build.include(p);
    }
    for f in &cflags {
        if !f.starts_with("-I") {
            build.flag(f);
        }
    }
    build.compile("espresso_dpdk_shim");

    let mut clang_args: Vec<String> = cflags.clone();
    clang_args.push("-Ishim".into());

    let bindings = bindgen::Builder::default()
        .header("shim/shim.h")
        .clang_args(&clang_args)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        // EAL, lcores, logging, errno
        .allowlist_function("rte_eal_(init|cleanup|remote_launch|wait_lcore|mp_wait_lcore)")
        .allowlist_function("rte_(lcore_count|get_main_lcore|socket_id|lcore_to_socket_id)")
        .allowlist_function("rte_lcore_(is_enabled|has_role|index)")
        .allowlist_function("rte_thread_(register|unregister)")
        .allowlist_function("rte_strerror")
        .allowlist_function("rte_log_(set_global_level|get_global_level)")
        // virtual devices created at run time
        .allowlist_function("rte_vdev_(init|uninit)")
        .allowlist_function("rte_eth_from_rings")
        // ethdev
        .allowlist_function("rte_eth_dev_(count_avail|get_port_by_name|get_name_by_port|info_get|adjust_nb_rx_tx_desc|configure|start|stop|close|socket_id|is_valid_port|set_mtu|get_mtu|rss_hash_update|rss_hash_conf_get)")
        .allowlist_function("rte_eth_(rx|tx)_queue_setup")
        .allowlist_function("rte_eth_(stats_get|stats_reset|link_get_nowait|link_get|macaddr_get|promiscuous_enable|promiscuous_disable|promiscuous_get|find_next_owned_by|find_next)")
        // fast-path dispatch table and the rx/tx callback hooks, for the Rust
        // version of rte_eth_rx_burst / rte_eth_tx_burst (see port.rs)
        .allowlist_var("rte_eth_fp_ops")
        .allowlist_function("rte_eth_call_(rx|tx)_callbacks")
        // mempool / mbuf
        .allowlist_function("rte_pktmbuf_(pool_create|free_bulk)")
        .allowlist_function("rte_mempool_(lookup|free|avail_count|in_use_count)")
        // ring
        .allowlist_function("rte_ring_(create|free|lookup)")
        // the shim
        .allowlist_function("espresso_.*")
        .allowlist_type("rte_eth_(conf|dev_info|stats|link|rss_conf|rxconf|txconf)")
        .allowlist_var("RTE_ETH_.*")
        .allowlist_var("RTE_MBUF_DEFAULT_.*")
        .allowlist_var("RTE_PKTMBUF_HEADROOM")
        .allowlist_var("LCORE_ID_ANY")
        .allowlist_var("RTE_RING_F_.*|RING_F_.*")
        .allowlist_var("RTE_LOG_.*")
        .allowlist_var("E_RTE_.*|RTE_MAX_ERRNO")
        .allowlist_var("RTE_ETHER_ADDR_LEN")
        .allowlist_var("SOCKET_ID_ANY")
        .allowlist_var("ESPRESSO_.*")
        .blocklist_type("max_align_t")
        .derive_default(true)
        .derive_debug(true)
        .layout_tests(true)
        .generate_comments(false)
        .prepend_enum_name(false)
        .generate()
        .expect("bindgen over the DPDK headers failed");

    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("dpdk_bindings.rs");
    bindings
        .write_to_file(&out)
        .expect("cannot write the bindings to OUT_DIR");
}

/// Feature `ipsec-mb`: Intel's multi-buffer crypto library (intel-ipsec-mb
/// 1.3, Debian `libipsec-mb-dev`: header `intel-ipsec-mb.h`, library
/// `libIPSec_MB`), its C shim (`shim/imb_shim.c`: the macro API as functions)
/// and bindgen over the job structure and enums.
fn build_ipsec_mb() {
    println!("cargo:rerun-if-changed=shim/imb_shim.c");
    println!("cargo:rerun-if-changed=shim/imb_shim.h");
    println!("cargo:rustc-link-lib=dylib=IPSec_MB");

    cc::Build::new()
        .file("shim/imb_shim.c")
        // The library is built with LINUX defined (64-byte aligned key structures).
        .define("LINUX", None)
        .define("NO_COMPAT_IMB_API_053", None)
        .opt_level(3)
        .warnings(true)
        .compile("espresso_imb_shim");

    let bindings = bindgen::Builder::default()
        .header("shim/imb_shim.h")
        .clang_arg("-Ishim")
        .clang_arg("-DLINUX")
        // No pre-0.53 compatibility macros (they rename fields such as `u.GCM`).
        .clang_arg("-DNO_COMPAT_IMB_API_053")
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .allowlist_function("espresso_imb_.*")
        .allowlist_type("IMB_JOB|IMB_MGR|gcm_key_data")
        .allowlist_type("IMB_(ARCH|CIPHER_MODE|CIPHER_DIRECTION|HASH_ALG|CHAIN_ORDER|KEY_SIZE_BYTES|STATUS|SGL_STATE)")
        .opaque_type("IMB_MGR")
        .blocklist_type("max_align_t")
        .derive_default(true)
        .derive_debug(false)
        .layout_tests(true)
        .generate_comments(false)
        .prepend_enum_name(false)
        .generate()
        .unwrap_or_else(|e| {
            panic!(
                "bindgen over intel-ipsec-mb.h failed (feature ipsec-mb needs Debian \
                 libipsec-mb-dev): {e}"
            )
        });
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("imb_bindings.rs");
    bindings
        .write_to_file(&out)
        .expect("cannot write the bindings to OUT_DIR");
}

/// Raw `pkg-config --cflags libdpdk` output, split into flags.
fn pkg_config_cflags() -> Vec<String> {
    let pkg_config = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".into());
    let out = std::process::Command::new(pkg_config)
        .args(["--cflags", "libdpdk"])
        .output()
        .expect("cannot run pkg-config");
    assert!(out.status.success(), "pkg-config --cflags libdpdk failed");
    String::from_utf8(out.stdout)
        .expect("pkg-config output is not UTF-8")
        .split_whitespace()
        .scan(false, |take_next, f| {
            // keep "-include rte_config.h" together
            if *take_next {
                *take_next = false;
                return Some(Some(vec!["-include".to_string(), f.to_string()]));
            }
            if f == "-include" {
                *take_next = true;
                return Some(None);
            }
            Some(Some(vec![f.to_string()]))
        })
        .flatten()
        .flatten()
        .collect()
}
