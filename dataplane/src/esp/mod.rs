//! ESP burst processing (RFC 4303): encapsulation and decapsulation of whole
//! bursts in place, each packet with a [`crate::drop::Verdict`]. No I/O here.
//!
//! How a worker calls it (packets start at the IP header; the worker strips
//! and re-adds Ethernet):
//!
//! ```no_run
//! use dataplane::drop::Verdict;
//! use dataplane::esp::{decap_burst, encap_burst, DecapResult, PacketKind, MAX_BURST};
//! use dataplane::pkt::HeapBuf;
//! use dataplane::sa::{DropCounters, FlowKey, PolicyAction, Sad, Spd};
//!
//! fn outbound(spd: &Spd, out_sad: &Sad, burst: &mut Vec<HeapBuf>, drops: &DropCounters) {
//!     // 1. classify: one SPD snapshot per burst, one policy per packet.
//!     let spd = spd.load();
//!     let sad = out_sad.load();
//!     // 2. group by SA (here: the packets of the first protected SPI;
//!     //    a real worker keeps one small pre-allocated vector per SA).
//!     let mut group: Vec<HeapBuf> = Vec::new();
//!     let mut spi_of_group = None;
//!     for p in burst.drain(..) {
//!         let Ok(k) = FlowKey::from_ip(dataplane::pkt::PacketBuf::data(&p)) else { continue };
//!         match spd.lookup(&k).map(|pol| pol.action) {
//!             Some(PolicyAction::Protect { spi }) if spi_of_group.is_none_or(|s| s == spi) => {
//!                 spi_of_group = Some(spi);
//!                 group.push(p);
//!             }
//!             _ => { /* bypass, discard, trap, other SAs ... */ }
//!         }
//!     }
//!     // 3. encap the group with its SA: one seq reservation, one batched seal.
//!     if let Some(sa) = spi_of_group.and_then(|s| sad.get(s)) {
//!         let mut verdicts = [Verdict::Pass; MAX_BURST];
//!         encap_burst(sa, &mut group, &mut verdicts, drops);
//!         // verdicts[i] == Pass: route group[i] to the peer; Drop(r): counted, free it.
//!     }
//! }
//!
//! fn inbound(in_sad: &Sad, burst: &mut [HeapBuf], drops: &DropCounters) {
//!     let sad = in_sad.load(); // one lock-free snapshot per burst
//!     let mut res = [DecapResult::default(); MAX_BURST];
//!     decap_burst(&sad, burst, &mut res, drops);
//!     for (p, r) in burst.iter().zip(res.iter()) {
//!         match (r.verdict, r.kind) {
//!             (Verdict::Pass, PacketKind::Inner4 | PacketKind::Inner6) => { /* route the inner packet */ }
//!             (Verdict::Pass, PacketKind::Ike) => { /* to the IKE daemon (exception path) */ }
//!             (Verdict::Pass, PacketKind::NotEsp) => { /* ordinary forwarding / exception path */ }
//!             (Verdict::Pass, _) => { /* keepalive: consume */ }
//!             (Verdict::Drop(_reason), _) => { /* already counted: free the buffer */ }
//!         }
//!         let _ = p;
//!     }
//! }
//! ```
//!
//! Both functions work on any [`crate::pkt::PacketBuf`] (AF_PACKET frames,
//! DPDK mbufs, heap buffers), up to [`MAX_BURST`] packets per internal chunk,
//! and never allocate, lock or log. The cipher was chosen when the SA was
//! built, so nothing here branches on the algorithm.

#![forbid(unsafe_code)]

mod decap;
pub mod ecn;
mod encap;

pub use decap::{decap_burst, DecapResult, PacketKind};
pub use encap::encap_burst;

/// Packets processed per internal chunk (one sequence reservation, one
/// `seal`/`open` call per SA): the dataplane's one burst size.
pub use crate::pkt::MAX_BURST;
