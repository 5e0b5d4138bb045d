//! Fixed-size slots: counters the dataplane publishes (seqlock + CRC) and the
//! records the control process keeps about what it installed (CRC).

#![forbid(unsafe_code)]

use std::sync::atomic::{fence, AtomicU64, Ordering};

use super::layout::MAX_DROP_REASONS;
use crate::sa::Direction;

/// Why a slot could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlotError {
    /// The writer kept changing the slot (or died in the middle of a write).
    #[error("slot is being written (or its writer died mid-write)")]
    Busy,
    /// Stored checksum does not match the contents.
    #[error("slot checksum {stored:#010x} does not match contents ({computed:#010x})")]
    Checksum {
        /// Stored CRC.
        stored: u32,
        /// CRC of the contents.
        computed: u32,
    },
    /// A field holds a value no writer produces.
    #[error("slot field {field} holds invalid value {value}")]
    Field {
        /// Field name.
        field: &'static str,
        /// Value found.
        value: u64,
    },
}

pub(crate) fn crc_words(w: &[u64]) -> u32 {
    // The words' little-endian bytes, hashed 256 bytes per update: the same
    // CRC as one update per word, but crc32fast's folding (PCLMULQDQ) path
    // only runs on long inputs; 8 bytes at a time it goes byte by byte
    // through its tables, which made an SA slot's publication about 1 us
    // (bench/results/sad.md, pub14).
    let mut h = crc32fast::Hasher::new();
    let mut buf = [0u8; 256];
    for chunk in w.chunks(32) {
        for (b, x) in buf.chunks_exact_mut(8).zip(chunk) {
            b.copy_from_slice(&x.to_le_bytes());
        }
        h.update(buf.get(..chunk.len() * 8).unwrap_or(&buf));
    }
    h.finalize()
}

/// Seqlock write: `slot[0]` is the sequence word, `slot[1..=N]` the data,
/// `slot[N + 1]` its CRC. A writer that died mid-write leaves the sequence odd;
/// the next writer moves it on to the next even value.
pub(crate) fn seq_write<const N: usize>(slot: &[AtomicU64], data: &[u64; N]) {
    let s = slot[0].load(Ordering::Relaxed);
    let odd = if s.is_multiple_of(2) { s + 1 } else { s + 2 };
    slot[0].store(odd, Ordering::Relaxed);
    fence(Ordering::Release);
    for (i, v) in data.iter().enumerate() {
        slot[1 + i].store(*v, Ordering::Relaxed);
    }
    slot[1 + N].store(u64::from(crc_words(data)), Ordering::Relaxed);
    slot[0].store(odd + 1, Ordering::Release);
}

/// Seqlock read with bounded retries; the CRC catches anything the sequence
/// word cannot (a torn write by a writer that died, stray corruption).
pub(crate) fn seq_read<const N: usize>(slot: &[AtomicU64]) -> Result<[u64; N], SlotError> {
    let mut data = [0u64; N];
    for _ in 0..10_000 {
        let s1 = slot[0].load(Ordering::Acquire);
        if s1 % 2 == 1 {
            std::hint::spin_loop();
            continue;
        }
        for (i, v) in data.iter_mut().enumerate() {
            *v = slot[1 + i].load(Ordering::Relaxed);
        }
        let stored = slot[1 + N].load(Ordering::Relaxed) as u32;
        fence(Ordering::Acquire);
        if slot[0].load(Ordering::Relaxed) != s1 {
            continue;
        }
        let computed = crc_words(&data);
        if stored != computed {
            return Err(SlotError::Checksum { stored, computed });
        }
        return Ok(data);
    }
    Err(SlotError::Busy)
}

/// Plain record write (single writer, single reader: the control process):
/// data then CRC in the last word.
pub(crate) fn rec_write<const N: usize>(slot: &[AtomicU64], data: &[u64; N]) {
    for (i, v) in data.iter().enumerate() {
        slot[i].store(*v, Ordering::Relaxed);
    }
    slot[N].store(u64::from(crc_words(data)), Ordering::Release);
}

/// Plain record read; `Ok(None)` for an all-zero (never written) record.
pub(crate) fn rec_read<const N: usize>(slot: &[AtomicU64]) -> Result<Option<[u64; N]>, SlotError> {
    let mut data = [0u64; N];
    for (i, v) in data.iter_mut().enumerate() {
        *v = slot[i].load(Ordering::Acquire);
    }
    let stored = slot[N].load(Ordering::Acquire) as u32;
    if stored == 0 && data.iter().all(|&w| w == 0) {
        return Ok(None);
    }
    let computed = crc_words(&data);
    if stored != computed {
        return Err(SlotError::Checksum { stored, computed });
    }
    Ok(Some(data))
}

/// Counters the dataplane publishes for one SA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaStats {
    /// Packets processed successfully.
    pub packets: u64,
    /// Bytes processed successfully (inner packet bytes).
    pub bytes: u64,
    /// Drops by `DropReason::index()`.
    pub drops: [u64; MAX_DROP_REASONS],
    /// Outbound: the next sequence number the SA would send (`Sa::next_seq()`).
    /// Inbound: the highest authenticated sequence number.
    pub seq: u64,
    /// The dataplane stopped using the SA (hard lifetime, sequence numbers used up).
    pub dead: bool,
}

impl Default for SaStats {
    fn default() -> Self {
        SaStats {
            packets: 0,
            bytes: 0,
            drops: [0; MAX_DROP_REASONS],
            seq: 0,
            dead: false,
        }
    }
}

/// State of a dataplane SA slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotState {
    /// Never written.
    Empty,
    /// Installed and in use.
    Active,
    /// Removed; the counters are the final ones.
    Removed,
    /// Installed but no longer processing (hard lifetime or sequence exhausted).
    Dead,
    /// The dataplane could not build the SA from its parameters.
    Refused,
}

impl SlotState {
    fn code(self) -> u64 {
        match self {
            SlotState::Empty => 0,
            SlotState::Active => 1,
            SlotState::Removed => 2,
            SlotState::Dead => 3,
            SlotState::Refused => 4,
        }
    }
    fn from(v: u64) -> Result<Self, SlotError> {
        Ok(match v {
            0 => SlotState::Empty,
            1 => SlotState::Active,
            2 => SlotState::Removed,
            3 => SlotState::Dead,
            4 => SlotState::Refused,
            _ => {
                return Err(SlotError::Field {
                    field: "state",
                    value: v,
                })
            }
        })
    }
}

/// Why the dataplane refused an SA (published with [`SlotState::Refused`];
/// the dataplane's log has the full message).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefuseReason {
    /// The crypto backend in use cannot do this suite (e.g. `--crypto
    /// multibuffer` and an AES-CBC suite, or a CPU without the instructions).
    Backend,
    /// A key of the wrong length for the suite.
    KeyLength,
    /// Encryption and integrity algorithms that do not go together.
    Suite,
    /// A legacy algorithm (3DES, HMAC-MD5) without the explicit opt-in.
    Legacy,
    /// Another crypto error.
    Crypto,
    /// SPI 0..=255 (reserved).
    ReservedSpi,
    /// Replay window size out of range.
    ReplayWindow,
    /// Local and remote gateway addresses of different families.
    AddressFamily,
    /// A UDP encapsulation port of 0.
    EncapPort,
    /// An outbound SA of another tunnel holds the SPI (outbound SAs are found
    /// by SPI: one SA per SPI, never replaced across tunnels).
    SpiInUse,
    /// The initial sequence number is past the SA's limit (no wrap without ESN).
    InitialSeq,
    /// A code this build does not know (a newer dataplane).
    Other(u8),
}

impl RefuseReason {
    /// What to tell an operator.
    pub fn describe(self) -> String {
        match self {
            RefuseReason::Backend => {
                "its crypto backend cannot do this suite (see --crypto)".into()
            }
            RefuseReason::KeyLength => "a key has the wrong length for the suite".into(),
            RefuseReason::Suite => {
                "the encryption and integrity algorithms do not go together".into()
            }
            RefuseReason::Legacy => "legacy algorithm without allow_legacy".into(),
            RefuseReason::Crypto => "the cipher could not be built".into(),
            RefuseReason::ReservedSpi => "the SPI is reserved (0..=255)".into(),
            RefuseReason::ReplayWindow => "the replay window size is out of range".into(),
            RefuseReason::AddressFamily => {
                "local and remote addresses are of different families".into()
            }
            RefuseReason::EncapPort => "a UDP encapsulation port is 0".into(),
            RefuseReason::SpiInUse => "another tunnel's outbound SA has this SPI".into(),
            RefuseReason::InitialSeq => {
                "its initial sequence number is past its limit (rekey for fresh keys)".into()
            }
            RefuseReason::Other(c) => format!("reason code {c}"),
        }
    }

    fn code(self) -> u8 {
        match self {
            RefuseReason::Backend => 1,
            RefuseReason::KeyLength => 2,
            RefuseReason::Suite => 3,
            RefuseReason::Legacy => 4,
            RefuseReason::Crypto => 5,
            RefuseReason::ReservedSpi => 6,
            RefuseReason::ReplayWindow => 7,
            RefuseReason::AddressFamily => 8,
            RefuseReason::EncapPort => 9,
            RefuseReason::SpiInUse => 10,
            RefuseReason::InitialSeq => 11,
            RefuseReason::Other(c) => c,
        }
    }

    fn from_code(c: u8) -> Option<RefuseReason> {
        Some(match c {
            0 => return None,
            1 => RefuseReason::Backend,
            2 => RefuseReason::KeyLength,
            3 => RefuseReason::Suite,
            4 => RefuseReason::Legacy,
            5 => RefuseReason::Crypto,
            6 => RefuseReason::ReservedSpi,
            7 => RefuseReason::ReplayWindow,
            8 => RefuseReason::AddressFamily,
            9 => RefuseReason::EncapPort,
            10 => RefuseReason::SpiInUse,
            11 => RefuseReason::InitialSeq,
            c => RefuseReason::Other(c),
        })
    }
}

/// One SA slot as the control process reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaSlotView {
    /// Generation of the dataplane instance that wrote it.
    pub generation: u64,
    /// SPI.
    pub spi: u32,
    /// Direction.
    pub direction: Direction,
    /// State.
    pub state: SlotState,
    /// Tunnel.
    pub tunnel_id: u32,
    /// Key identifier the control process gave with the SA (echoed).
    pub key_id: u64,
    /// CLOCK_MONOTONIC time of this publication, in ns.
    pub published_ns: u64,
    /// CLOCK_MONOTONIC time the dataplane installed the SA, in ns.
    pub installed_ns: u64,
    /// CLOCK_MONOTONIC time the dataplane took the removal, in ns (0: not removed).
    /// Until a final publication (`published_ns > removed_ns`), the SA may have
    /// sent up to `SEQ_RATE_BOUND_PPS * (removed_ns - published_ns)` more packets.
    pub removed_ns: u64,
    /// The counters.
    pub stats: SaStats,
    /// With [`SlotState::Refused`]: why.
    pub refused: Option<RefuseReason>,
}

impl SaSlotView {
    /// For an outbound SA: an upper bound at `now_ns` on its next sequence
    /// number. A removed SA no longer sends, so its bound stops growing.
    pub fn seq_bound(&self, now_ns: u64) -> u64 {
        let until = if self.state == SlotState::Removed && self.removed_ns != 0 {
            self.removed_ns.max(self.published_ns)
        } else {
            now_ns
        };
        super::seq::seq_bound(self.stats.seq, self.published_ns, until)
    }
}

pub(crate) const SA_DP_DATA: usize = 10 + MAX_DROP_REASONS;
// Sequence word + data + CRC fit the slot.
const _: () = assert!(SA_DP_DATA + 2 <= super::layout::SA_DP_WORDS);

pub(crate) fn encode_sa_slot(v: &SaSlotView) -> [u64; SA_DP_DATA] {
    let mut d = [0u64; SA_DP_DATA];
    d[0] = v.generation;
    d[1] = u64::from(v.spi)
        | (super::codec::dir_code(v.direction) as u64) << 32
        | v.state.code() << 40
        | (v.stats.dead as u64) << 48
        | u64::from(v.refused.map_or(0, RefuseReason::code)) << 56;
    d[2] = u64::from(v.tunnel_id);
    d[3] = v.key_id;
    d[4] = v.published_ns;
    d[5] = v.installed_ns;
    d[6] = v.stats.seq;
    d[7] = v.stats.packets;
    d[8] = v.stats.bytes;
    d[9] = v.removed_ns;
    d[10..].copy_from_slice(&v.stats.drops);
    d
}

pub(crate) fn decode_sa_slot(d: &[u64; SA_DP_DATA]) -> Result<SaSlotView, SlotError> {
    let dir =
        super::codec::dir_from(((d[1] >> 32) & 0xff) as u8).map_err(|_| SlotError::Field {
            field: "direction",
            value: (d[1] >> 32) & 0xff,
        })?;
    let mut drops = [0u64; MAX_DROP_REASONS];
    drops.copy_from_slice(&d[10..]);
    Ok(SaSlotView {
        generation: d[0],
        spi: d[1] as u32,
        direction: dir,
        state: SlotState::from((d[1] >> 40) & 0xff)?,
        tunnel_id: d[2] as u32,
        key_id: d[3],
        published_ns: d[4],
        installed_ns: d[5],
        removed_ns: d[9],
        stats: SaStats {
            packets: d[7],
            bytes: d[8],
            drops,
            seq: d[6],
            dead: (d[1] >> 48) & 1 == 1,
        },
        refused: RefuseReason::from_code((d[1] >> 56) as u8),
    })
}

/// Per-worker totals the dataplane publishes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerStats {
    /// Packets received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets transmitted.
    pub tx_packets: u64,
    /// Bytes transmitted.
    pub tx_bytes: u64,
    /// Non-empty bursts processed.
    pub bursts: u64,
    /// Polls that found nothing.
    pub idle_polls: u64,
    /// ICMP errors sent.
    pub icmp_errors: u64,
    /// ICMP errors not sent: over the rate limit (RFC 4443 §2.4(f)).
    pub icmp_rate_limited: u64,
    /// Neighbour resolutions requested.
    pub resolve_requests: u64,
    /// Packets held while their next hop was being resolved.
    pub neighbour_held: u64,
    /// Packets sent through a stale neighbour entry being resolved again.
    pub neighbour_stale: u64,
    /// ESP packets held for an announced SPI whose SA was not installed yet.
    pub esp_held: u64,
    /// Of those, the ones decapsulated once the SA was installed (the rest
    /// are `unknown_spi_held_expired` drops).
    pub esp_held_released: u64,
    /// Drops by `DropReason::index()`.
    pub drops: [u64; MAX_DROP_REASONS],
}

impl Default for WorkerStats {
    fn default() -> Self {
        WorkerStats {
            rx_packets: 0,
            rx_bytes: 0,
            tx_packets: 0,
            tx_bytes: 0,
            bursts: 0,
            idle_polls: 0,
            icmp_errors: 0,
            icmp_rate_limited: 0,
            resolve_requests: 0,
            neighbour_held: 0,
            neighbour_stale: 0,
            esp_held: 0,
            esp_held_released: 0,
            drops: [0; MAX_DROP_REASONS],
        }
    }
}

/// One worker slot as the control process reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerView {
    /// Generation of the dataplane instance that wrote it.
    pub generation: u64,
    /// CLOCK_MONOTONIC time of the publication, in ns.
    pub published_ns: u64,
    /// The counters.
    pub stats: WorkerStats,
}

pub(crate) const WORKER_DATA: usize = 15 + MAX_DROP_REASONS;
// Sequence word + data + CRC fit the slot.
const _: () = assert!(WORKER_DATA + 2 <= super::layout::WORKER_WORDS);

pub(crate) fn encode_worker(v: &WorkerView) -> [u64; WORKER_DATA] {
    let mut d = [0u64; WORKER_DATA];
    d[0] = v.generation;
    d[1] = v.published_ns;
    d[2] = v.stats.rx_packets;
    d[3] = v.stats.rx_bytes;
    d[4] = v.stats.tx_packets;
    d[5] = v.stats.tx_bytes;
    d[6] = v.stats.bursts;
    d[7] = v.stats.idle_polls;
    d[8] = v.stats.icmp_errors;
    d[9] = v.stats.icmp_rate_limited;
    d[10] = v.stats.resolve_requests;
    d[11] = v.stats.neighbour_held;
    d[12] = v.stats.neighbour_stale;
    d[13] = v.stats.esp_held;
    d[14] = v.stats.esp_held_released;
    d[15..].copy_from_slice(&v.stats.drops);
    d
}

pub(crate) fn decode_worker(d: &[u64; WORKER_DATA]) -> WorkerView {
    let mut drops = [0u64; MAX_DROP_REASONS];
    drops.copy_from_slice(&d[15..]);
    WorkerView {
        generation: d[0],
        published_ns: d[1],
        stats: WorkerStats {
            rx_packets: d[2],
            rx_bytes: d[3],
            tx_packets: d[4],
            tx_bytes: d[5],
            bursts: d[6],
            idle_polls: d[7],
            icmp_errors: d[8],
            icmp_rate_limited: d[9],
            resolve_requests: d[10],
            neighbour_held: d[11],
            neighbour_stale: d[12],
            esp_held: d[13],
            esp_held_released: d[14],
            drops,
        },
    }
}

/// State of a control SA record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordState {
    /// The control process sent an add (or replace) for this slot.
    Installed,
    /// The control process sent a remove; the slot keeps the sequence information.
    Removed,
}

/// What the control process records about one SA slot before sending the
/// command that installs or removes it (so that a restarted control process
/// knows what the dataplane holds, and which sequence numbers may have been used).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaRecord {
    /// Installed or removed.
    pub state: RecordState,
    /// Direction.
    pub direction: Direction,
    /// Tunnel.
    pub tunnel_id: u32,
    /// SPI.
    pub spi: u32,
    /// Identifies the keys (a hash of them): sequence numbers are unique per key.
    pub key_id: u64,
    /// Hash of all the parameters (detects changes on resync).
    pub params_hash: u64,
    /// Initial sequence number sent with the add.
    pub initial_seq: u64,
    /// CLOCK_MONOTONIC time the command was sent, in ns.
    pub sent_ns: u64,
    /// Command ring position the command was written at.
    pub cmd_pos: u64,
}

pub(crate) const SA_CTL_DATA: usize = 8;

pub(crate) fn encode_record(r: &SaRecord) -> [u64; SA_CTL_DATA] {
    let st = match r.state {
        RecordState::Installed => 1u64,
        RecordState::Removed => 2,
    };
    [
        st | (super::codec::dir_code(r.direction) as u64) << 8 | u64::from(r.tunnel_id) << 32,
        u64::from(r.spi),
        r.key_id,
        r.params_hash,
        r.initial_seq,
        r.sent_ns,
        r.cmd_pos,
        0,
    ]
}

pub(crate) fn decode_record(d: &[u64; SA_CTL_DATA]) -> Result<SaRecord, SlotError> {
    let state = match d[0] & 0xff {
        1 => RecordState::Installed,
        2 => RecordState::Removed,
        v => {
            return Err(SlotError::Field {
                field: "record.state",
                value: v,
            })
        }
    };
    let dc = (d[0] >> 8) & 0xff;
    let direction = super::codec::dir_from(dc as u8).map_err(|_| SlotError::Field {
        field: "record.direction",
        value: dc,
    })?;
    Ok(SaRecord {
        state,
        direction,
        tunnel_id: (d[0] >> 32) as u32,
        spi: d[1] as u32,
        key_id: d[2],
        params_hash: d[3],
        initial_seq: d[4],
        sent_ns: d[5],
        cmd_pos: d[6],
    })
}

/// A tunnel as the control process records it (stable ids across restarts).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunnelRecord {
    /// Tunnel name (at most 63 bytes).
    pub name: String,
    /// Tunnel id (`1..=max_tunnels`).
    pub id: u32,
    /// The operator wants it up.
    pub admin_up: bool,
    /// Hash of its configuration when last applied.
    pub config_hash: u64,
    /// SA slot used for the inbound SA (`u32::MAX`: none).
    pub slot_in: u32,
    /// SA slot used for the outbound SA (`u32::MAX`: none).
    pub slot_out: u32,
}

/// Longest tunnel name that fits a record.
pub const MAX_TUNNEL_NAME: usize = 63;
pub(crate) const TUNNEL_DATA: usize = 12;

pub(crate) fn encode_tunnel(t: &TunnelRecord) -> Option<[u64; TUNNEL_DATA]> {
    let nb = t.name.as_bytes();
    if nb.len() > MAX_TUNNEL_NAME || nb.is_empty() {
        return None;
    }
    let mut name = [0u8; 64];
    name[..nb.len()].copy_from_slice(nb);
    let mut d = [0u64; TUNNEL_DATA];
    for i in 0..8 {
        let mut w = [0u8; 8];
        w.copy_from_slice(&name[i * 8..i * 8 + 8]);
        d[i] = u64::from_le_bytes(w);
    }
    d[8] = u64::from(t.id) | (t.admin_up as u64) << 32;
    d[9] = t.config_hash;
    d[10] = u64::from(t.slot_in) | u64::from(t.slot_out) << 32;
    Some(d)
}

pub(crate) fn decode_tunnel(d: &[u64; TUNNEL_DATA]) -> Result<TunnelRecord, SlotError> {
    let mut name = Vec::with_capacity(64);
    for w in &d[..8] {
        name.extend_from_slice(&w.to_le_bytes());
    }
    let end = name.iter().position(|&b| b == 0).unwrap_or(64);
    name.truncate(end);
    let name = String::from_utf8(name).map_err(|_| SlotError::Field {
        field: "tunnel.name",
        value: 0,
    })?;
    Ok(TunnelRecord {
        name,
        id: d[8] as u32,
        admin_up: (d[8] >> 32) & 1 == 1,
        config_hash: d[9],
        slot_in: d[10] as u32,
        slot_out: (d[10] >> 32) as u32,
    })
}

/// A policy the control process installed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyRecord {
    /// Policy id.
    pub id: u32,
    /// Tunnel.
    pub tunnel_id: u32,
    /// Hash of the policy.
    pub hash: u64,
    /// Command ring position of the add.
    pub cmd_pos: u64,
}

pub(crate) const POLICY_DATA: usize = 3;

pub(crate) fn encode_policy(p: &PolicyRecord) -> [u64; POLICY_DATA] {
    [
        u64::from(p.id) | u64::from(p.tunnel_id) << 32,
        p.hash,
        p.cmd_pos,
    ]
}

pub(crate) fn decode_policy(d: &[u64; POLICY_DATA]) -> PolicyRecord {
    PolicyRecord {
        id: d[0] as u32,
        tunnel_id: (d[0] >> 32) as u32,
        hash: d[1],
        cmd_pos: d[2],
    }
}

/// An exact observation of an outbound SA's next sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LedgerEntry {
    /// Key identifier.
    pub key_id: u64,
    /// Next sequence number at `at_ns` (an upper bound then).
    pub seq: u64,
    /// CLOCK_MONOTONIC time in ns; `u64::MAX` when the SA was known to be
    /// stopped (removed, or its dataplane dead) so no time-based margin applies.
    pub at_ns: u64,
}

pub(crate) const LEDGER_DATA: usize = 3;

#[cfg(test)]
mod crc_tests {
    use super::crc_words;
    use proptest::prelude::*;

    /// The CRC as it was defined (one update per word's LE bytes): what a
    /// region written by an older build holds.
    fn per_word(w: &[u64]) -> u32 {
        let mut h = crc32fast::Hasher::new();
        for x in w {
            h.update(&x.to_le_bytes());
        }
        h.finalize()
    }

    proptest! {
        /// The same CRC as one update per word, at every length (across
        /// the 32-word chunks).
        #[test]
        fn same_as_one_update_per_word(w in proptest::collection::vec(any::<u64>(), 0..140)) {
            prop_assert_eq!(crc_words(&w), per_word(&w));
        }
    }

    /// Known CRC-32 (IEEE) values: the empty input, and eight zero bytes
    /// (one zero word).
    #[test]
    fn known_values() {
        assert_eq!(crc_words(&[]), 0);
        assert_eq!(crc_words(&[0]), 0x6522_DF69);
    }
}
