//! EAL start-up and API error paths give typed errors.
mod common;

use ffi::{rss, DpdkError, Eal, Mempool, Port, PortConfig, Ring, DEFAULT_DATA_ROOM};

#[test]
fn eal_and_api_error_paths_are_typed() {
    assert!(Eal::get().is_none());

    // An unknown EAL option: rte_eal_init fails, reported with DPDK's errno.
    let err = Eal::init(common::eal_args(&["--no-such-eal-option"])).unwrap_err();
    match &err {
        DpdkError::EalInit { args, errno } => {
            assert!(args.iter().any(|a| a == "--no-such-eal-option"), "{args:?}");
            assert_eq!(errno.code, libc::EINVAL, "{errno}");
        }
        other => panic!("expected EalInit, got {other:?}"),
    }
    // An argument that cannot become a C string.
    let err = Eal::init(["--no-huge", "bad\0arg"]).unwrap_err();
    assert!(
        matches!(err, DpdkError::InvalidArgument { what: "EAL argument", ref value, .. } if value == "bad\0arg"),
        "{err:?}"
    );
    assert!(Eal::get().is_none());

    // After a failed argument parse the EAL can still start, once.
    let eal = Eal::init(common::eal_args(&["--vdev", "net_ring0"])).expect("EAL start");
    assert!(Eal::get().is_some());
    assert_eq!(
        Eal::init(common::eal_args(&[])).unwrap_err(),
        DpdkError::AlreadyInitialized
    );
    assert_eq!(eal.current_lcore(), Some(eal.main_lcore()));

    // Ports.
    assert_eq!(
        ffi::port_by_name(&eal, "net_nonexistent9").unwrap_err(),
        DpdkError::NoSuchPort("net_nonexistent9".into())
    );
    let pool = Mempool::create(&eal, "err_pool", 1023, 32, DEFAULT_DATA_ROOM, None).unwrap();
    let err = Port::configure(&eal, 31, &PortConfig::default(), pool).unwrap_err();
    assert_eq!(err, DpdkError::InvalidPort(31));
    let ring_port = ffi::port_by_name(&eal, "net_ring0").unwrap();
    let many = PortConfig {
        rx_queues: 17,
        ..PortConfig::default()
    };
    match Port::configure(&eal, ring_port, &many, pool).unwrap_err() {
        DpdkError::TooManyQueues {
            kind: "rx",
            requested: 17,
            max,
            ref driver,
            ..
        } => {
            assert!(max < 17);
            assert_eq!(driver, "net_ring");
        }
        other => panic!("expected TooManyQueues, got {other:?}"),
    }
    // net_ring has no RSS: asking for it over 2 queues is refused by name.
    let rss_cfg = PortConfig {
        rx_queues: 2,
        tx_queues: 2,
        rss_hash: rss::IP,
        ..PortConfig::default()
    };
    match Port::configure(&eal, ring_port, &rss_cfg, pool).unwrap_err() {
        DpdkError::RssUnsupported {
            queues: 2,
            requested,
            supported: 0,
            ..
        } => assert_eq!(requested, rss::IP),
        other => panic!("expected RssUnsupported, got {other:?}"),
    }
    let zero = PortConfig {
        rx_queues: 0,
        ..PortConfig::default()
    };
    assert!(matches!(
        Port::configure(&eal, ring_port, &zero, pool).unwrap_err(),
        DpdkError::InvalidArgument {
            what: "rx queue count",
            ..
        }
    ));

    // Queue handles: not before start, once each, and they block stop.
    let mut port = Port::configure(&eal, ring_port, &PortConfig::default(), pool).unwrap();
    // A second Port for the same port id is refused while the first exists.
    assert!(matches!(
        Port::configure(&eal, ring_port, &PortConfig::default(), pool).unwrap_err(),
        DpdkError::Port { errno, .. } if errno.code == libc::EBUSY
    ));
    assert!(port.rx_queue(0).is_err());
    port.start().unwrap();
    let rxq = port.rx_queue(0).unwrap();
    assert_eq!(
        port.rx_queue(0).unwrap_err(),
        DpdkError::QueueUnavailable {
            port: ring_port,
            kind: "rx",
            queue: 0
        }
    );
    assert!(matches!(
        port.tx_queue(1).unwrap_err(),
        DpdkError::QueueUnavailable { queue: 1, .. }
    ));
    assert_eq!(
        port.stop().unwrap_err(),
        DpdkError::QueuesHeld {
            port: ring_port,
            op: "stop",
            held: 1
        }
    );
    drop(rxq);
    let rxq = port.rx_queue(0).unwrap(); // free again after the handle dropped
    drop(rxq);
    port.stop().unwrap();
    port.close().unwrap();

    // Mempools, rings, vdevs.
    assert!(matches!(
        Mempool::create(&eal, "tiny", 63, 0, 64, None).unwrap_err(),
        DpdkError::InvalidArgument {
            what: "mempool data room",
            ..
        }
    ));
    match Mempool::create(&eal, "err_pool", 1023, 32, DEFAULT_DATA_ROOM, None).unwrap_err() {
        DpdkError::Mempool { name, errno, .. } => {
            assert_eq!(name, "err_pool");
            assert_eq!(errno.code, libc::EEXIST, "{errno}");
        }
        other => panic!("expected Mempool error, got {other:?}"),
    }
    assert!(matches!(
        Ring::create(&eal, "r", 1000, None).unwrap_err(),
        DpdkError::InvalidArgument {
            what: "ring size",
            ..
        }
    ));
    match eal.create_vdev("net_nosuchdriver0", "").unwrap_err() {
        DpdkError::Vdev {
            name,
            op: "rte_vdev_init",
            ..
        } => assert_eq!(name, "net_nosuchdriver0"),
        other => panic!("expected Vdev error, got {other:?}"),
    }
    // A vdev created at run time is found by name.
    eal.create_vdev("net_null7", "size=64").unwrap();
    let id = ffi::port_by_name(&eal, "net_null7").unwrap();
    assert_eq!(ffi::dev_info(&eal, id).unwrap().driver, "net_null");
}
