//! net_null bursts, RSS queue set-up over several rx queues, queues polled
//! from a worker lcore and from a registered std thread.
mod common;

use ffi::{rss, Eal, MbufBurst, Mempool, Port, PortConfig, DEFAULT_DATA_ROOM};

#[test]
fn null_bursts_rss_queues_and_lcores() {
    let eal = Eal::init(common::eal_args(&[
        "-l",
        "0-1",
        "--vdev",
        "net_null0,size=128",
        "--vdev",
        "net_null1",
    ]))
    .unwrap();
    assert_eq!(eal.lcore_count(), 2);
    let workers = eal.worker_lcores();
    assert_eq!(workers.len(), 1);
    assert_eq!(ffi::port_ids(&eal).len(), 2);
    let pool = Mempool::create(&eal, "null_pool", 8191, 256, DEFAULT_DATA_ROOM, None).unwrap();

    // --- single queue: net_null fills every burst, tx takes everything.
    let mut p0 = Port::configure_by_name(&eal, "net_null0", &PortConfig::default(), pool).unwrap();
    p0.start().unwrap();
    let mac = p0.mac().unwrap();
    assert_ne!(mac.0, [0; 6]);
    assert_eq!(mac.0[0] & 1, 0, "unicast MAC {mac}");
    assert_eq!(mac.to_string().len(), 17);
    let (mut rx, mut tx) = (p0.rx_queue(0).unwrap(), p0.tx_queue(0).unwrap());
    let mut burst: MbufBurst = MbufBurst::new();
    for _ in 0..100 {
        assert_eq!(rx.rx_burst(&mut burst), 32);
        assert!(burst.iter().all(|m| m.len() == 128 && m.port() == p0.id()));
        assert_eq!(tx.tx_burst(&mut burst), 32);
    }
    let mut big: MbufBurst<64> = MbufBurst::new();
    assert_eq!(rx.rx_burst(&mut big), 64);
    assert_eq!(tx.tx_burst_or_free(&mut big), 64);
    let st = p0.stats().unwrap();
    assert_eq!((st.ipackets, st.opackets), (3264, 3264));
    // (net_null counts packets only, not bytes)
    assert_eq!(pool.in_use(), 0);
    p0.reset_stats().unwrap();
    assert_eq!(p0.stats().unwrap().ipackets, 0);
    drop((rx, tx));

    // --- RSS over 4 rx queues (net_null supports several queues and RSS).
    let cfg = PortConfig {
        rx_queues: 4,
        tx_queues: 4,
        rss_hash: rss::IP | rss::UDP,
        ..PortConfig::default()
    };
    let mut p1 = Port::configure_by_name(&eal, "net_null1", &cfg, pool).unwrap();
    assert_eq!(p1.rss_hash(), rss::IP | rss::UDP);
    assert_eq!(p1.rss_hash_configured().unwrap(), rss::IP | rss::UDP);
    assert_eq!((p1.rx_queue_count(), p1.tx_queue_count()), (4, 4));
    assert!(p1.info().max_rx_queues >= 4);
    assert_ne!(p1.info().rss_hash_types & rss::IP, 0);
    p1.start().unwrap();

    // queue 0 on this (main) lcore
    let mut q0 = p1.rx_queue(0).unwrap();
    let mut b0: MbufBurst = MbufBurst::new();
    assert_eq!(q0.rx_burst(&mut b0), 32);
    b0.clear();

    // queue 1 on the worker lcore, via rte_eal_remote_launch
    let mut q1 = p1.rx_queue(1).unwrap();
    let mut t1 = p1.tx_queue(1).unwrap();
    let job = eal
        .launch(workers[0], move || {
            let eal = Eal::get().expect("EAL running");
            let me = eal.current_lcore().unwrap() as i32;
            let mut b: MbufBurst = MbufBurst::new();
            let mut n = 0;
            for _ in 0..10 {
                n += q1.rx_burst(&mut b);
                t1.tx_burst_or_free(&mut b);
            }
            if n == 320 {
                me
            } else {
                -2
            }
        })
        .unwrap();
    assert_eq!(job.lcore(), workers[0]);
    // the lcore is busy until waited on
    assert!(eal.launch(workers[0], || 0).is_err());
    assert_eq!(job.wait(), workers[0] as i32);
    // a panicking closure reports -1 instead of unwinding into C
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {})); // the panic below is expected
    let job = eal
        .launch(workers[0], || panic!("expected test panic"))
        .unwrap();
    assert_eq!(job.wait(), -1);
    std::panic::set_hook(default_hook);

    // queue 2 on a std thread registered with DPDK (gets an lcore id)
    let mut q2 = p1.rx_queue(2).unwrap();
    let t = std::thread::spawn(move || {
        let eal = Eal::get().unwrap();
        assert!(eal.current_lcore().is_none());
        let reg = eal.register_thread().unwrap();
        let lcore = reg.lcore();
        assert_eq!(eal.current_lcore(), Some(lcore));
        let mut b: MbufBurst = MbufBurst::new();
        let n = q2.rx_burst(&mut b) + q2.rx_burst(&mut b);
        b.clear();
        drop(reg);
        assert!(eal.current_lcore().is_none());
        (lcore, n)
    });
    let (lcore, n) = t.join().unwrap();
    assert_eq!(n, 32, "second burst into a full burst takes nothing");
    assert!(lcore != eal.main_lcore() && lcore != workers[0]);

    let st = p1.stats().unwrap();
    assert_eq!(&st.q_ipackets[..4], &[32, 320, 32, 0]);
    assert_eq!(st.ipackets, 384);
    assert_eq!(st.q_opackets[1], 320);
    assert_eq!(pool.in_use(), 0);
}
