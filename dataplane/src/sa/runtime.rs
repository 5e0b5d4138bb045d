//! The runtime SA: what the ESP engine needs to process one SA's packets,
//! built once from [`SaParams`] when the SA is installed.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use super::drops::{self, sa_drop_slot, DropSlots, FoldedTotals, SA_DROP_SLOTS};
use super::params::{DfMode, Direction, Mode, SaParams, UdpEncap};
use super::policy::{LifetimeKind, SaEvent};
use super::replay::{ReplayWindow, WindowSizeError};
use super::selector::{CompiledSelector, FlowKey};
use crate::crypto::{CryptoError, EspCipher, Suite};
use crate::drop::DropReason;
use crate::shm::RefuseReason;
use crate::wire::{
    checksum, proto, Ipv4Packet, Ipv4Repr, Ipv6Repr, UdpRepr, IPV4_HEADER_LEN, IPV6_HEADER_LEN,
    UDP_HEADER_LEN,
};

/// Why an SA could not be built from its parameters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaError {
    /// SPIs 0..=255 are reserved (RFC 4303 §2.1).
    #[error("spi {0:#x} is reserved (0..=255)")]
    ReservedSpi(u32),
    /// Cipher could not be built or does not fit the suite.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The cipher object's lengths do not match the suite.
    #[error("cipher {backend} has {field} = {got}, suite needs {expected}")]
    CipherMismatch {
        /// Backend name.
        backend: &'static str,
        /// Which length.
        field: &'static str,
        /// Cipher's value.
        got: usize,
        /// Suite's value.
        expected: usize,
    },
    /// Replay window size out of range.
    #[error(transparent)]
    Window(#[from] WindowSizeError),
    /// Local and remote gateway addresses of different families.
    #[error("local address {local} and remote address {remote} are of different families")]
    AddressFamily {
        /// Local address.
        local: IpAddr,
        /// Remote address.
        remote: IpAddr,
    },
    /// A UDP encapsulation port of 0.
    #[error("udp encapsulation port {0} is invalid")]
    EncapPort(u16),
    /// The first sequence number is past what the SA may use (2^32 - 1
    /// without ESN): it would have nothing to send, or wrap. A corrupt
    /// command, or a bound that grew past the key's numbers (rekey instead).
    #[error("initial sequence number {value} is past the SA's limit {limit}")]
    InitialSeq {
        /// The initial sequence number asked for.
        value: u64,
        /// The highest sequence number the SA may use.
        limit: u64,
    },
}

impl SaError {
    /// The reason code the dataplane publishes in the SA's shared-memory slot.
    pub fn refuse_reason(&self) -> RefuseReason {
        use CryptoError as C;
        use SaError as S;
        match self {
            S::ReservedSpi(_) => RefuseReason::ReservedSpi,
            S::Crypto(C::Unsupported { .. } | C::BackendNotCompiled { .. }) => {
                RefuseReason::Backend
            }
            S::Crypto(C::KeyLength { .. }) => RefuseReason::KeyLength,
            S::Crypto(C::Combination { .. }) => RefuseReason::Suite,
            S::Crypto(C::LegacyNotAllowed { .. }) => RefuseReason::Legacy,
            S::Crypto(_) => RefuseReason::Crypto,
            S::CipherMismatch { .. } => RefuseReason::Backend,
            S::Window(_) => RefuseReason::ReplayWindow,
            S::AddressFamily { .. } => RefuseReason::AddressFamily,
            S::EncapPort(_) => RefuseReason::EncapPort,
            S::InitialSeq { .. } => RefuseReason::InitialSeq,
        }
    }
}

/// Event bits raised by the data path and collected by management.
pub(crate) mod ev {
    pub const SOFT_BYTES: u8 = 1;
    pub const SOFT_PACKETS: u8 = 2;
    pub const HARD_BYTES: u8 = 4;
    pub const HARD_PACKETS: u8 = 8;
    pub const SEQ_EXHAUSTED: u8 = 16;

    use std::sync::atomic::{AtomicU64, Ordering};

    /// Event bits newly made pending, counted once each, process-wide (all
    /// SAs of both SADs: raising is the slow path, a few per SA lifetime).
    /// `Sad::collect_events` walks its table only when this moved since its
    /// last walk began.
    static RAISED: AtomicU64 = AtomicU64::new(0);

    /// The count so far. `Acquire`: pairs with [`note_raised`], so a walk
    /// that began after loading a count sees the pending bits behind it.
    pub(crate) fn raised() -> u64 {
        RAISED.load(Ordering::Acquire)
    }

    /// A pending bit was just set (after the set: `Release`).
    #[cold]
    #[inline(never)]
    pub(crate) fn note_raised() {
        RAISED.fetch_add(1, Ordering::Release);
    }
}

/// Live packet and byte counters of one SA (atomics: several workers may
/// share an SA). Drops are kept beside them by reason, for the reasons that
/// can concern an SA of its direction only ([`sa_drop_slot`], 32-bit slots
/// folded into 64-bit totals: `sa/drops.rs`). Read through
/// [`Sa::counters`], which knows the direction.
#[derive(Debug)]
pub struct SaCounters {
    /// Packets processed successfully.
    pub packets: AtomicU64,
    /// Inner (plaintext) bytes processed successfully.
    pub bytes: AtomicU64,
}

impl SaCounters {
    fn new() -> Self {
        SaCounters {
            packets: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        }
    }
}

/// An SA's counters with its direction (what [`Sa::counters`] returns):
/// the packet and byte counters through `Deref`, drops by reason.
#[derive(Clone, Copy, Debug)]
pub struct SaCountersRef<'a> {
    sa: &'a Sa,
}

impl std::ops::Deref for SaCountersRef<'_> {
    type Target = SaCounters;
    fn deref(&self) -> &SaCounters {
        &self.sa.counters
    }
}

impl SaCountersRef<'_> {
    /// Drops counted under `r` (0 for reasons that never concern an SA of
    /// this direction).
    pub fn drops(&self, r: DropReason) -> u64 {
        match sa_drop_slot(r, self.sa.direction) {
            Some(i) => drops::read(&self.sa.drops, &self.sa.folded, i),
            None => 0,
        }
    }
    /// All drops.
    pub fn total_drops(&self) -> u64 {
        (0..SA_DROP_SLOTS)
            .map(|i| drops::read(&self.sa.drops, &self.sa.folded, i))
            .sum()
    }
}

/// Drop counters by reason, in total (one per worker, as VPP).
#[derive(Debug)]
pub struct DropCounters(pub [AtomicU64; DropReason::COUNT]);

impl Default for DropCounters {
    fn default() -> Self {
        DropCounters(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

impl DropCounters {
    /// Counts one drop.
    #[inline]
    pub fn add(&self, r: DropReason) {
        self.0[r.index()].fetch_add(1, Ordering::Relaxed);
    }
    /// Counts `n` drops (the fragments of a datagram given up).
    #[inline]
    pub fn add_n(&self, r: DropReason, n: u64) {
        if n != 0 {
            self.0[r.index()].fetch_add(n, Ordering::Relaxed);
        }
    }
    /// Drops counted under `r`.
    pub fn get(&self, r: DropReason) -> u64 {
        self.0[r.index()].load(Ordering::Relaxed)
    }
    /// All drops.
    pub fn total(&self) -> u64 {
        self.0.iter().map(|d| d.load(Ordering::Relaxed)).sum()
    }
}

/// Precomputed outer headers of an outbound tunnel SA (IPv4 or IPv6, plus
/// UDP for NAT-T). Per packet only lengths, DSCP/ECN, DF, ident and the
/// checksums change.
#[derive(Clone, Debug)]
pub(crate) struct OuterTemplate {
    /// The outer IP header (source = the SA's local address, destination =
    /// its remote address: status reads them back from here) and the UDP
    /// header for NAT-T.
    pub bytes: [u8; IPV6_HEADER_LEN + UDP_HEADER_LEN],
    /// IP header plus UDP header if any (20, 28, 40 or 48; the IP header
    /// alone is [`OuterTemplate::ip_len`]).
    pub len: u8,
    pub v6: bool,
    pub udp: bool,
    /// IPv4: one's-complement sum of the header with length, ident, TOS,
    /// flags and checksum zero, folded to 16 bits (folding first and
    /// adding the per-packet fields after gives the same checksum: both
    /// are the sum modulo 0xffff, and neither is zero). Native byte order,
    /// as bytes: the template stays byte-aligned (53 B) and packs with the
    /// SA's one-byte fields.
    pub csum_base: [u8; 2],
}

impl OuterTemplate {
    fn new(local: IpAddr, remote: IpAddr, encap: Option<UdpEncap>) -> Self {
        let mut bytes = [0u8; IPV6_HEADER_LEN + UDP_HEADER_LEN];
        let udp = encap.is_some();
        let next = if udp { proto::UDP } else { proto::ESP };
        let (ip_len, v6, csum_base) = match (local, remote) {
            (IpAddr::V4(l), IpAddr::V4(r)) => {
                Ipv4Repr {
                    tos: 0,
                    total_len: 0,
                    ident: 0,
                    df: false,
                    ttl: 64,
                    protocol: next,
                    src: l,
                    dst: r,
                }
                .emit(&mut bytes[..IPV4_HEADER_LEN]);
                // Length, ident, TOS, flags and checksum are added per packet.
                Ipv4Packet::new_unchecked(&mut bytes[..IPV4_HEADER_LEN]).set_checksum(0);
                let sum = checksum::fold(checksum::sum(&bytes[..IPV4_HEADER_LEN]));
                (IPV4_HEADER_LEN as u8, false, sum)
            }
            (IpAddr::V6(l), IpAddr::V6(r)) => {
                Ipv6Repr {
                    traffic_class: 0,
                    flow_label: 0,
                    payload_len: 0,
                    next_header: next,
                    hop_limit: 64,
                    src: l,
                    dst: r,
                }
                .emit(&mut bytes[..IPV6_HEADER_LEN]);
                (IPV6_HEADER_LEN as u8, true, 0)
            }
            // Families are checked by Sa::with_cipher before this is built.
            _ => (0, false, 0),
        };
        if let Some(e) = encap {
            // Length and checksum are written per packet.
            UdpRepr {
                src_port: e.local_port,
                dst_port: e.remote_port,
                len: 0,
            }
            .emit(&mut bytes[usize::from(ip_len)..usize::from(ip_len) + UDP_HEADER_LEN]);
        }
        OuterTemplate {
            bytes,
            len: ip_len + if udp { UDP_HEADER_LEN as u8 } else { 0 },
            v6,
            udp,
            csum_base: csum_base.to_ne_bytes(),
        }
    }

    /// Length of the IP header (20 or 40): the UDP header, if any, starts here.
    #[inline(always)]
    pub fn ip_len(&self) -> usize {
        usize::from(self.len) - if self.udp { UDP_HEADER_LEN } else { 0 }
    }

    /// [`OuterTemplate::csum_base`] as a number.
    #[inline(always)]
    pub fn csum_base(&self) -> u16 {
        u16::from_ne_bytes(self.csum_base)
    }
}

/// Lifetime limits (`u64::MAX`: none), each pair ordered: the fast path
/// compares the packet and byte totals with the smaller (`first_*`, one
/// comparison each, as precomputed minima did beside the four limits);
/// which of the pair is the soft limit is in `Sa::soft_first`.
#[derive(Clone, Copy, Debug)]
struct Limits {
    first_bytes: u64,
    then_bytes: u64,
    first_packets: u64,
    then_packets: u64,
}

/// `Sa::soft_first` bits: the soft limit is the first of its pair.
const SOFT_FIRST_BYTES: u8 = 1;
const SOFT_FIRST_PACKETS: u8 = 2;

impl Limits {
    /// Orders soft and hard limits; returns the limits and the
    /// `SOFT_FIRST_*` bits.
    fn new(soft_bytes: u64, hard_bytes: u64, soft_packets: u64, hard_packets: u64) -> (Self, u8) {
        let mut bits = 0;
        let (first_bytes, then_bytes) = if soft_bytes <= hard_bytes {
            bits |= SOFT_FIRST_BYTES;
            (soft_bytes, hard_bytes)
        } else {
            (hard_bytes, soft_bytes)
        };
        let (first_packets, then_packets) = if soft_packets <= hard_packets {
            bits |= SOFT_FIRST_PACKETS;
            (soft_packets, hard_packets)
        } else {
            (hard_packets, soft_packets)
        };
        let l = Limits {
            first_bytes,
            then_bytes,
            first_packets,
            then_packets,
        };
        (l, bits)
    }
    /// (soft, hard) bytes and (soft, hard) packets.
    fn soft_hard(&self, bits: u8) -> ((u64, u64), (u64, u64)) {
        let order = |first, then, soft_first: bool| {
            if soft_first {
                (first, then)
            } else {
                (then, first)
            }
        };
        (
            order(
                self.first_bytes,
                self.then_bytes,
                bits & SOFT_FIRST_BYTES != 0,
            ),
            order(
                self.first_packets,
                self.then_packets,
                bits & SOFT_FIRST_PACKETS != 0,
            ),
        )
    }
}

/// The highest sequence number an SA may use: 2^64 - 1 with ESN, else 2^32 - 1.
#[inline]
fn seq_limit(esn: bool) -> u64 {
    if esn {
        u64::MAX
    } else {
        u64::from(u32::MAX)
    }
}

fn lim(v: u64) -> u64 {
    if v == 0 {
        u64::MAX
    } else {
        v
    }
}

/// A runtime SA. Shared by workers through `Arc` (via the SAD); every
/// mutable field is atomic. Aligned to a cache line: the fields written per
/// burst (sequence number, counters) of two SAs served by different workers
/// never share one.
///
/// Four lines, in this order (`repr(C)`, checked below):
/// 0. read per packet: outer template, lengths, flags, `dead` (first, so
///    that the packet loops reach them with one-byte displacements);
/// 1. written per burst: packet and byte counters, the replay window (its
///    `top`: inbound the highest accepted number, outbound the sequence
///    number), the pointer to the folded drop totals;
/// 2. read per burst: cipher, lifetime limits, selectors;
/// 3. the drop path and status: drop slots, ids, event bits.
///
/// So encap and decap touch lines 0-2 and write only line 1 (and line 3 on
/// a drop); lines 0 and 2 stay clean in every worker's cache.
#[repr(C, align(64))]
pub struct Sa {
    // Line 0.
    /// Outer headers; also where the local and remote addresses are kept
    /// (`local_addr()`, `remote_addr()`, the inbound destination check).
    pub(crate) outer: OuterTemplate,
    /// The cipher's lengths (checked against the suite at install; all
    /// below 256).
    pub(crate) iv_len: u8,
    pub(crate) icv_len: u8,
    pub(crate) pad_align: u8,
    pub(crate) direction: Direction,
    pub(crate) mode: Mode,
    pub(crate) esn: bool,
    pub(crate) df: DfMode,
    pub(crate) copy_dscp: bool,
    /// The local address is unspecified: inbound packets to any address.
    local_any: bool,
    /// 0: alive; else 1 + index of the DropReason its packets get.
    dead: AtomicU8,
    /// `SOFT_FIRST_*` bits: which limit of each pair is the soft one.
    soft_first: u8,
    // Line 1.
    counters: SaCounters,
    /// Inbound: the anti-replay window. Outbound: its `top` (the window
    /// is off) is the last sequence number handed out, at most
    /// `seq_limit()` (`Sa::last_seq`): one 8-byte counter serves both
    /// directions.
    pub(crate) replay: ReplayWindow,
    /// The 64-bit totals the management thread folds the drop slots into
    /// (`sa/drops.rs`).
    folded: FoldedTotals,
    // Line 2.
    pub(crate) cipher: Box<dyn EspCipher>,
    limits: Limits,
    pub(crate) selectors: Box<[CompiledSelector]>,
    // Line 3.
    /// Drops by [`sa_drop_slot`]: 32-bit slots (`sa/drops.rs`).
    drops: DropSlots,
    pub(crate) spi: u32,
    tunnel_id: u32,
    /// What status shows besides the counters and the addresses (the
    /// parameters themselves, keys and selectors included, are not kept:
    /// the cipher and the compiled selectors hold what the packet path
    /// needs).
    suite: Suite,
    /// Event bits ([`ev`]) raised so far, and those not yet collected.
    raised: AtomicU8,
    pending: AtomicU8,
}

const _: () = {
    use std::mem::{offset_of, size_of};
    assert!(size_of::<Sa>() == 256);
    assert!(offset_of!(Sa, outer) == 0);
    assert!(offset_of!(Sa, soft_first) < 64);
    assert!(offset_of!(Sa, counters) == 64);
    assert!(offset_of!(Sa, folded) + size_of::<FoldedTotals>() <= 128);
    assert!(offset_of!(Sa, cipher) == 128);
    assert!(offset_of!(Sa, selectors) + size_of::<Box<[CompiledSelector]>>() <= 192);
    assert!(offset_of!(Sa, drops) == 192);
};

/// The parts of the [`Sa`] struct and their sizes in bytes (what the memory
/// benchmark prints); the struct is padded to a multiple of 64 (its
/// alignment), the difference is listed as padding.
pub fn sa_struct_parts() -> Vec<(&'static str, usize)> {
    use std::mem::size_of;
    let mut v = vec![
        ("packet and byte counters", size_of::<SaCounters>()),
        ("drop counters (32-bit)", size_of::<DropSlots>()),
        ("folded drop totals pointer", size_of::<FoldedTotals>()),
        ("outer header template", size_of::<OuterTemplate>()),
        (
            "replay window (inline part; outbound: the sequence number)",
            size_of::<ReplayWindow>(),
        ),
        ("lifetime limits", size_of::<Limits>()),
        ("cipher pointer", size_of::<Box<dyn EspCipher>>()),
        ("selectors pointer", size_of::<Box<[CompiledSelector]>>()),
    ];
    let named: usize = v.iter().map(|(_, n)| n).sum();
    // spi, tunnel id, suite, lengths, flags, event bits.
    let small = 4 + 4 + size_of::<Suite>() + 3 + 7 + 3;
    v.push(("ids, lengths, flags", small));
    v.push(("padding", size_of::<Sa>().saturating_sub(named + small)));
    v
}

impl std::fmt::Debug for Sa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sa")
            .field("spi", &format_args!("{:#010x}", self.spi))
            .field("direction", &self.direction)
            .field("mode", &self.mode)
            .field("suite", &self.suite)
            .field("backend", &self.cipher.backend())
            .finish_non_exhaustive()
    }
}

impl Sa {
    /// Builds a runtime SA from its parameters: the cipher is chosen here,
    /// once (`crypto::build_with`), on `backend`.
    pub fn new(params: SaParams, backend: crate::crypto::Backend) -> Result<Sa, SaError> {
        let opts = crate::crypto::BuildOptions {
            esn: params.esn,
            backend,
            allow_legacy: params.allow_legacy,
            // One direction: the backend may keep only that side's keys.
            direction: Some(params.direction),
            ..Default::default()
        };
        let cipher =
            crate::crypto::build_with(params.suite, &params.enc_key, &params.auth_key, &opts)?;
        Sa::with_cipher(params, cipher)
    }

    /// Builds a runtime SA from its parameters and a cipher already built for
    /// them (e.g. by `crypto::build`). Keys are not kept in the SA beyond the
    /// cipher.
    pub fn with_cipher(params: SaParams, cipher: Box<dyn EspCipher>) -> Result<Sa, SaError> {
        if params.spi <= 255 {
            return Err(SaError::ReservedSpi(params.spi));
        }
        params.suite.validate(params.allow_legacy)?;
        let suite = params.suite;
        let check = |field, got: usize, expected: usize| {
            if got == expected {
                Ok(())
            } else {
                Err(SaError::CipherMismatch {
                    backend: cipher.backend(),
                    field,
                    got,
                    expected,
                })
            }
        };
        check("iv_len", cipher.iv_len(), suite.encr.iv_len())?;
        check("icv_len", cipher.icv_len(), suite.icv_len())?;
        check("pad_align", cipher.pad_align(), suite.encr.pad_align())?;
        // Stored as u8: every suite's lengths are below 256.
        let small = |field, got: usize| {
            u8::try_from(got).map_err(|_| SaError::CipherMismatch {
                backend: cipher.backend(),
                field,
                got,
                expected: usize::from(u8::MAX),
            })
        };
        let (iv_len, icv_len, pad_align) = (
            small("iv_len", cipher.iv_len())?,
            small("icv_len", cipher.icv_len())?,
            small("pad_align", cipher.pad_align())?,
        );
        if params.local_addr.is_ipv4() != params.remote_addr.is_ipv4() {
            return Err(SaError::AddressFamily {
                local: params.local_addr,
                remote: params.remote_addr,
            });
        }
        if let Some(e) = params.encap {
            if e.local_port == 0 || e.remote_port == 0 {
                return Err(SaError::EncapPort(0));
            }
        }
        let window = if params.direction == Direction::Inbound {
            params.replay_window
        } else {
            0
        };
        let limit = seq_limit(params.esn);
        if params.initial_seq > limit {
            return Err(SaError::InitialSeq {
                value: params.initial_seq,
                limit,
            });
        }
        let replay = ReplayWindow::new(window)?;
        let first = params.initial_seq.max(1);
        match params.direction {
            Direction::Inbound if params.initial_seq > 1 => {
                // Installed again under the same key: what was accepted before
                // (up to initial_seq - 1) must not be accepted again.
                replay.set_floor(params.initial_seq - 1);
            }
            Direction::Inbound => {}
            // The last sequence number handed out (`Sa::last_seq`).
            Direction::Outbound => replay.set_top(first - 1),
        }
        let l = params.lifetime;
        let (limits, soft_first) = Limits::new(
            lim(l.soft_bytes),
            lim(l.hard_bytes),
            lim(l.soft_packets),
            lim(l.hard_packets),
        );
        let sa = Sa {
            spi: params.spi,
            direction: params.direction,
            mode: params.mode,
            esn: params.esn,
            iv_len,
            icv_len,
            pad_align,
            cipher,
            outer: OuterTemplate::new(params.local_addr, params.remote_addr, params.encap),
            df: params.df,
            copy_dscp: params.copy_dscp,
            local_any: params.local_addr.is_unspecified(),
            replay,
            selectors: params.selectors.iter().map(CompiledSelector::new).collect(),
            counters: SaCounters::new(),
            drops: DropSlots::new(),
            folded: FoldedTotals::empty(),
            limits,
            soft_first,
            raised: AtomicU8::new(0),
            pending: AtomicU8::new(0),
            dead: AtomicU8::new(0),
            tunnel_id: params.tunnel_id,
            suite: params.suite,
        };
        Ok(sa)
    }

    /// SPI.
    pub fn spi(&self) -> u32 {
        self.spi
    }
    /// Direction.
    pub fn direction(&self) -> Direction {
        self.direction
    }
    /// Mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }
    /// Tunnel this SA belongs to.
    pub fn tunnel_id(&self) -> u32 {
        self.tunnel_id
    }
    /// Extended sequence numbers.
    pub fn esn(&self) -> bool {
        self.esn
    }
    /// The algorithms.
    pub fn suite(&self) -> Suite {
        self.suite
    }
    /// Local gateway address (unspecified: any): the outer template's source.
    pub fn local_addr(&self) -> IpAddr {
        self.outer_addr(false)
    }
    /// UDP encapsulation (NAT-T): the ports of the outer template's UDP header.
    pub fn encap(&self) -> Option<UdpEncap> {
        if !self.outer.udp {
            return None;
        }
        let u = &self.outer.bytes[self.outer.ip_len()..];
        Some(UdpEncap {
            local_port: u16::from_be_bytes([u[0], u[1]]),
            remote_port: u16::from_be_bytes([u[2], u[3]]),
        })
    }
    /// Remote gateway address: the outer template's destination.
    pub fn remote_addr(&self) -> IpAddr {
        self.outer_addr(true)
    }
    fn outer_addr(&self, dst: bool) -> IpAddr {
        let b = &self.outer.bytes;
        if self.outer.v6 {
            let o = if dst { 24 } else { 8 };
            let mut a = [0u8; 16];
            a.copy_from_slice(&b[o..o + 16]);
            IpAddr::from(a)
        } else {
            let o = if dst { 16 } else { 12 };
            IpAddr::from([b[o], b[o + 1], b[o + 2], b[o + 3]])
        }
    }
    /// The inbound destination check: is `d`'s outer destination (an IPv6
    /// packet if `v6`) the SA's local address, or does the SA accept any?
    #[inline(always)]
    pub(crate) fn to_local(&self, d: &[u8], v6: bool) -> bool {
        if self.local_any {
            return true;
        }
        let b = &self.outer.bytes;
        match (v6, self.outer.v6) {
            (false, false) => d.get(16..20) == Some(&b[12..16]),
            (true, true) => d.get(24..40) == Some(&b[8..24]),
            _ => false,
        }
    }
    /// Crypto backend name.
    pub fn backend(&self) -> &'static str {
        self.cipher.backend()
    }
    /// Live counters.
    pub fn counters(&self) -> SaCountersRef<'_> {
        SaCountersRef { sa: self }
    }
    /// The anti-replay window (inbound).
    pub fn replay(&self) -> &ReplayWindow {
        &self.replay
    }
    /// The cipher.
    pub fn cipher(&self) -> &dyn EspCipher {
        &*self.cipher
    }
    /// Header bytes added in front of the inner packet by encap, before the
    /// IV (outer IP + UDP for tunnel mode, UDP for transport NAT-T) plus ESP
    /// header and IV.
    pub fn encap_overhead_front(&self) -> usize {
        let outer = match self.mode {
            Mode::Tunnel => usize::from(self.outer.len),
            Mode::Transport => {
                if self.outer.udp {
                    UDP_HEADER_LEN
                } else {
                    0
                }
            }
        };
        outer + crate::wire::ESP_HEADER_LEN + usize::from(self.iv_len)
    }
    /// Largest number of bytes encap adds behind the packet (padding, trailer, ICV).
    pub fn encap_overhead_back(&self) -> usize {
        usize::from(self.pad_align) - 1 + 2 + usize::from(self.icv_len)
    }
    /// Next sequence number to be sent (outbound).
    pub fn next_seq(&self) -> u64 {
        self.last_seq().load(Ordering::Relaxed).saturating_add(1)
    }
    /// True once the SA stopped: hard lifetime reached or sequence numbers exhausted.
    pub fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Relaxed) != 0
    }
    /// Why the SA stopped (`SeqExhausted` or `HardLifetime`), if it did.
    #[inline]
    pub fn dead_reason(&self) -> Option<DropReason> {
        match self.dead.load(Ordering::Relaxed) {
            0 => None,
            i => DropReason::ALL.get(usize::from(i) - 1).copied(),
        }
    }

    /// Reserves up to `n` sequence numbers with one atomic operation; returns
    /// the first and how many were granted (fewer than `n` at exhaustion, which
    /// raises [`SaEvent::SeqExhausted`]; the counter never wraps).
    #[inline]
    pub fn reserve_seq(&self, n: u64) -> (u64, u64) {
        let limit = seq_limit(self.esn);
        let last_seq = self.last_seq();
        let mut last = last_seq.load(Ordering::Relaxed);
        loop {
            // `last <= limit` always holds (checked at install, and
            // never incremented past it); saturating all the same.
            let k = n.min(limit.saturating_sub(last));
            if k == 0 {
                if n > 0 {
                    self.raise(ev::SEQ_EXHAUSTED);
                }
                return (last.saturating_add(1), 0);
            }
            match last_seq.compare_exchange_weak(
                last,
                last + k,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    if k < n || last + k == limit {
                        self.raise(ev::SEQ_EXHAUSTED);
                    }
                    return (last + 1, k);
                }
                Err(cur) => last = cur,
            }
        }
    }

    /// Counts one dropped packet under `r`.
    #[inline]
    pub fn count_drop(&self, r: DropReason) {
        let slot = sa_drop_slot(r, self.direction);
        // A reason that never concerns an SA of this direction: the caller
        // counts it per worker as well; a test build says so.
        debug_assert!(
            slot.is_some(),
            "drop reason {r:?} counted on an {:?} SA",
            self.direction
        );
        if let Some(i) = slot {
            self.drops.add(i);
        }
    }

    /// Folds drop slots that reached 2^31 into their 64-bit totals
    /// (`sa/drops.rs`); true if it folded any. Only through
    /// [`super::Sad::fold_drops_step`] (one folder at a time, the
    /// management thread), never on the packet path.
    pub(crate) fn fold_drops(&self) -> bool {
        drops::fold(&self.drops, &self.folded)
    }

    /// Counts `n` drops under `r` at once (tests of the fold).
    #[cfg(test)]
    pub(crate) fn count_drops(&self, r: DropReason, n: u32) {
        if let Some(i) = sa_drop_slot(r, self.direction) {
            self.drops.add_n(i, n);
        }
    }

    /// The last sequence number handed out (outbound): the window's `top`,
    /// unused by an outbound SA's (off) window otherwise.
    #[inline(always)]
    fn last_seq(&self) -> &AtomicU64 {
        self.replay.top_cell()
    }

    /// Adds processed packets/bytes and raises lifetime events when a limit
    /// is crossed. Never allocates.
    #[inline]
    pub fn account(&self, packets: u64, bytes: u64) {
        if packets == 0 {
            return;
        }
        let p = self.counters.packets.fetch_add(packets, Ordering::Relaxed) + packets;
        let b = self.counters.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if p >= self.limits.first_packets || b >= self.limits.first_bytes {
            self.lifetime_slow(p, b);
        }
    }

    #[cold]
    fn lifetime_slow(&self, p: u64, b: u64) {
        let ((soft_bytes, hard_bytes), (soft_packets, hard_packets)) =
            self.limits.soft_hard(self.soft_first);
        if b >= soft_bytes {
            self.raise(ev::SOFT_BYTES);
        }
        if p >= soft_packets {
            self.raise(ev::SOFT_PACKETS);
        }
        if b >= hard_bytes {
            self.raise(ev::HARD_BYTES);
        }
        if p >= hard_packets {
            self.raise(ev::HARD_PACKETS);
        }
    }

    fn raise(&self, bit: u8) {
        if bit & ev::SEQ_EXHAUSTED != 0 {
            self.dead
                .store(DropReason::SeqExhausted as u8 + 1, Ordering::Relaxed);
        } else if bit & (ev::HARD_BYTES | ev::HARD_PACKETS) != 0 {
            let _ = self.dead.compare_exchange(
                0,
                DropReason::HardLifetime as u8 + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
        let old = self.raised.fetch_or(bit, Ordering::AcqRel);
        if old & bit == 0 {
            self.pending.fetch_or(bit, Ordering::AcqRel);
            ev::note_raised();
        }
    }

    /// True if events are waiting to be collected.
    pub fn has_events(&self) -> bool {
        self.pending.load(Ordering::Relaxed) != 0
    }

    /// Moves pending events (each raised once per SA) into `out`. Called by
    /// the management thread, never on the hot path.
    pub fn take_events(&self, out: &mut Vec<SaEvent>) {
        let p = self.pending.swap(0, Ordering::AcqRel);
        let (spi, direction) = (self.spi, self.direction);
        for (bit, kind) in [
            (ev::SOFT_BYTES, LifetimeKind::Bytes),
            (ev::SOFT_PACKETS, LifetimeKind::Packets),
        ] {
            if p & bit != 0 {
                out.push(SaEvent::SoftExpire {
                    spi,
                    direction,
                    kind,
                });
            }
        }
        for (bit, kind) in [
            (ev::HARD_BYTES, LifetimeKind::Bytes),
            (ev::HARD_PACKETS, LifetimeKind::Packets),
        ] {
            if p & bit != 0 {
                out.push(SaEvent::HardExpire {
                    spi,
                    direction,
                    kind,
                });
            }
        }
        if p & ev::SEQ_EXHAUSTED != 0 {
            out.push(SaEvent::SeqExhausted { spi });
        }
    }

    /// Inbound policy check (RFC 4301 §5.2): does the decapsulated packet match
    /// one of the SA's selectors? An SA without selectors accepts everything.
    #[inline]
    pub fn inbound_allows(&self, k: &FlowKey) -> bool {
        self.selectors.is_empty() || self.selectors.iter().any(|s| s.matches_inbound(k))
    }
}

#[cfg(test)]
mod tests;
