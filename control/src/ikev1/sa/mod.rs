//! One ISAKMP SA and its IPsec SAs: phase 1 in main or aggressive mode
//! (`phase1`), quick mode with and without PFS, rekeys make-before-break and
//! the commit bit (`quick`), informational exchanges: deletes, notifies,
//! DPD (`info`), timers: retransmission, lifetimes, DPD, keepalives (`timers`).
//! Here: the state, encryption with IV chaining, sending and queries.

mod collision;
mod info;
mod phase1;
mod quick;
mod quick_responder;
mod timers;

use std::collections::{HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use espresso_core::sa::{
    DfMode, Direction, Lifetime, Mode, Policy, PolicyAction, SaParams, TrafficSelector, UdpEncap,
};
use rand::Rng;
use sha2::{Digest, Sha256};

use crate::ike::crypto::DhPrivate;
use crate::ike::engine::{ChildSaStatus, DataplaneOp, DeleteReason, Event, IkeSaStatus};
use crate::ike::error::IkeError;
use crate::ike::proposal::ChildSuite;
use crate::ike::wire::TsEntry;
use crate::ike::{ts, Identity};

use super::config::{Connection, ExchangeMode};
use super::crypto::{self, CbcKey, Phase1Keys};
use super::ctx::{Ctx, Deferred, Ikev1SaStatus, Task, V1Drop};
use super::proposal::Phase1Suite;
use super::wire::{self, flags, Header, PayloadWriter, HEADER_LEN};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum P1State {
    MmI1,
    MmI3,
    MmI5,
    MmR2,
    MmR4,
    AmI1,
    AmR2,
    Established,
    Deleting,
}

impl P1State {
    fn name(self) -> &'static str {
        match self {
            Self::MmI1 | Self::MmI3 | Self::MmI5 | Self::AmI1 => "CONNECTING",
            Self::MmR2 | Self::MmR4 | Self::AmR2 => "HALF_OPEN",
            Self::Established => "ESTABLISHED",
            Self::Deleting => "DELETING",
        }
    }
}

/// NAT-T variant agreed through vendor IDs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Natt {
    None,
    Rfc,
    Draft,
}

/// A message waiting for its answer, retransmitted with backoff.
pub(crate) struct Rtx {
    pub packet: Vec<u8>,
    pub retries: u32,
    pub next: Instant,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChildState {
    /// Both directions installed, policies point at it.
    Installed,
    /// Inbound installed; outbound waits for QM3 (responder) or CONNECTED (commit bit).
    InboundOnly,
    /// Replaced by a rekey; waits for its delete or its end.
    Rekeyed,
}

impl ChildState {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Installed => "INSTALLED",
            Self::InboundOnly => "INSTALLING",
            Self::Rekeyed => "REKEYED",
        }
    }
}

/// One IPsec SA pair.
pub(crate) struct ChildSa {
    pub inbound_spi: u32,
    pub outbound_spi: u32,
    pub suite: ChildSuite,
    pub local_ts: TsEntry,
    pub remote_ts: TsEntry,
    pub policies: Vec<(u32, TrafficSelector)>,
    pub state: ChildState,
    pub in_installed: bool,
    pub out_installed: bool,
    pub pending_out: Option<Box<SaParams>>,
    pub created: Instant,
    pub rekey_at: Option<Instant>,
    pub expire_at: Instant,
    pub encap: bool,
    pub rekey_busy: bool,
    /// The child this one replaces (until the switch).
    pub replaces: Option<u32>,
    /// A rekeyed child whose delete we send at this time (after our last
    /// packets on its outbound SA have reached the peer).
    pub delete_at: Option<Instant>,
    /// We initiated the quick mode that made this child.
    pub initiated: bool,
    /// The child this one was made to replace (kept after the switch: two
    /// children made for the same one are a rekey collision).
    pub rekeyed_from: Option<u32>,
    /// The lower of its quick mode's two nonces (a collision's loser is the
    /// pair whose exchange had the lowest nonce, as RFC 7296 §2.8.1 does).
    pub low_nonce: Vec<u8>,
    /// The losing pair of a rekey collision: no traffic from us, no rekey;
    /// it goes once the peer's choice is visible (`watch`) or at its end.
    pub redundant: bool,
    /// The dataplane's count of packets received on the inbound SA, as
    /// the bridge last reported it (only while a collision watches it).
    pub in_packets: Option<u64>,
    /// A redundant pair waiting for the peer's choice between it and the
    /// pair we send on (`collision.rs`).
    pub watch: Option<CollisionWatch>,
}

/// A rekey collision's redundant pair watching which of the two pairs the
/// peer sends on.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CollisionWatch {
    /// Inbound SPI of the pair we send on.
    pub partner: u32,
    /// The next look at the counters.
    pub next: Instant,
    /// No conclusion before then (the peer may still be switching).
    pub settle_until: Instant,
    /// Since when, and the counts then (redundant pair, partner).
    pub base: Option<(Instant, u64, u64)>,
    /// The partner was the redundant pair first (we moved to the peer's pick).
    pub swapped: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum QmState {
    /// Initiator: QM1 sent.
    I1Sent,
    /// Responder: QM2 sent, waiting for QM3.
    R2Sent,
    /// Initiator with the responder's commit bit: QM3 sent, waiting for CONNECTED.
    WaitConnected,
    /// Finished; kept a while to answer retransmissions.
    Done,
}

/// One quick-mode exchange.
pub(crate) struct QuickMode {
    pub mid: u32,
    pub initiator: bool,
    pub state: QmState,
    /// The IV for the next message of this exchange (CBC chaining).
    pub iv: Vec<u8>,
    pub ni: Vec<u8>,
    pub nr: Vec<u8>,
    pub dh: Option<DhPrivate>,
    pub inbound_spi: u32,
    pub local_ts: TsEntry,
    pub remote_ts: TsEntry,
    pub offered: Vec<ChildSuite>,
    pub rekey_of: Option<u32>,
    pub commit: bool,
    /// Hash of the last message received in this exchange (its repeat gets `reply` again).
    pub last_rx: [u8; 32],
    /// Hashes of every message received in this exchange (repeats are dropped).
    pub rx_seen: Vec<[u8; 32]>,
    /// What to send again when that message comes again.
    pub reply: Option<Vec<u8>>,
    pub rtx: Option<Rtx>,
    /// Kept until then for retransmissions (Done), or deadline for CONNECTED.
    pub until: Option<Instant>,
    /// Our rekey waiting for the peer to take the new pair (no commit bit):
    /// [`SwitchWatch`].
    pub switch: Option<SwitchWatch>,
}

/// A quick-mode rekey we started, its new inbound SA installed and QM3
/// sent, waiting to move our traffic to the new pair and drop the old one.
/// IKEv1 does not acknowledge QM3: the responder installs the new pair when
/// QM3 arrives (strongSwan both SAs then, Libreswan its outbound SA) and
/// only then sends on it; a QM3 lost or late reaches it only with its next
/// QM2 retransmission (strongSwan 4 s by default). Meanwhile it sends on
/// the old pair and may not receive on the new one, and our DELETE of the
/// old pair leaves it none. So the old pair carries our traffic until the
/// peer is seen on the new one (the dataplane's counters), or
/// [`SWITCH_WAIT_MAX`] passed, or the old pair is about to expire.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SwitchWatch {
    /// QM3 sent then.
    pub since: Instant,
}

/// The longest a rekey we started waits for the peer to send on the new
/// pair before it switches anyway: longer than strongSwan's first QM2
/// retransmission (4 s by default) and Libreswan's first three (0.5 s,
/// doubling).
pub(crate) const SWITCH_WAIT_MAX: Duration = Duration::from_secs(10);

/// How often a [`SwitchWatch`] looks at the counters.
pub(crate) const SWITCH_TICK: Duration = Duration::from_millis(250);

/// A DPD R-U-THERE waiting for its ACK.
pub(crate) struct DpdPending {
    pub seq: u32,
    pub deadline: Instant,
    pub next: Instant,
    pub retries: u32,
}

pub(crate) struct IsakmpSa {
    pub id: u64,
    pub conn: Arc<Connection>,
    pub initiator: bool,
    pub mode: ExchangeMode,
    pub ic: u64,
    pub rc: u64,
    pub(crate) state: P1State,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    natt: Natt,
    nat_local: bool,
    nat_remote: bool,
    peer_dpd: bool,
    suite: Option<Phase1Suite>,
    pub keys: Option<Phase1Keys>,
    cipher: Option<CbcKey>,
    /// Phase 1 IV; once established, the last phase 1 CBC block.
    p1_iv: Vec<u8>,
    sai_b: Vec<u8>,
    dh: Option<DhPrivate>,
    g_peer: Vec<u8>,
    ni: Vec<u8>,
    nr: Vec<u8>,
    candidates: Vec<Arc<Connection>>,
    pub remote_id: Option<Identity>,
    /// The peer's ID payload body (aggressive mode: HASH_I covers it).
    peer_id_b: Vec<u8>,
    /// How the peer authenticated (method, certificate subject).
    peer_auth: Option<crate::ike::sigauth::PeerAuth>,
    /// CA names of the peer's CERTREQ payloads (which intermediates to send).
    peer_certreqs: Vec<Vec<u8>>,
    /// Hash of the last phase 1 message received and what to resend for it.
    p1_last_rx: Option<[u8; 32]>,
    p1_reply: Option<(SocketAddr, SocketAddr, Vec<u8>)>,
    p1_rtx: Option<Rtx>,
    qms: Vec<QuickMode>,
    seen_mids: HashSet<u32>,
    seen_order: VecDeque<u32>,
    tasks: VecDeque<Task>,
    children: Vec<ChildSa>,
    first_qm: Option<(Vec<TsEntry>, Vec<TsEntry>)>,
    reauth_of: Option<u64>,
    reauth_busy: bool,
    replaced: bool,
    first_contact: bool,
    dpd_seq: u32,
    dpd: Option<DpdPending>,
    last_heard: Instant,
    rekey_at: Option<Instant>,
    expire_at: Option<Instant>,
    keepalive_at: Option<Instant>,
    half_open_deadline: Option<Instant>,
    drains: Vec<(Instant, u32)>,
    /// A replaced ISAKMP SA's DELETE goes out then (`info::retire`), not at
    /// once: the peer's IPsec SAs may still hang on it.
    retire_at: Option<Instant>,
    /// The source address this SA counts as half-open for, until phase 1 completes.
    pub half_open_from: Option<IpAddr>,
}

/// How long an ISAKMP SA replaced by our re-authentication stays before its
/// DELETE goes out. strongSwan adopts the IPsec SAs of a peer's
/// re-authentication in a job it queues after its last main mode message
/// (`adopt_children_job`, main_mode.c `build_r` MM_AUTH); a DELETE of the old
/// ISAKMP SA handled before that job destroys them with it
/// (isakmp_delete.c `process_r`). strongSwan and Libreswan themselves never
/// delete the old ISAKMP SA at once: strongSwan's adoption deletes it 10 s
/// later (`delete_ike_sa_job`), its own re-authentication keeps it REKEYING
/// until it expires, Libreswan lets it expire.
pub(crate) const RETIRE_AFTER_REAUTH: Duration = Duration::from_secs(2);
/// The same after the peer's re-authentication crossed one of ours (the old
/// SA is our own re-authentication's): longer than strongSwan's 10 s, so the
/// peer deletes the one of the two it does not keep first, and the IPsec SAs
/// follow it (`Deferred::PeerDeleted`).
pub(crate) const RETIRE_AFTER_CROSSING: Duration = Duration::from_secs(15);
/// The other side of a crossing: this SA waits for the peer's DELETE of the
/// other one (`IsakmpSa::retire_crossed`).
pub(crate) const RETIRE_AFTER_CROSSING_YIELD: Duration = Duration::from_secs(60);

/// SHA-256 of a message, for duplicate detection.
fn digest(msg: &[u8]) -> [u8; 32] {
    Sha256::digest(msg).into()
}

impl IsakmpSa {
    #[allow(clippy::too_many_arguments)]
    fn blank(
        conn: Arc<Connection>,
        initiator: bool,
        mode: ExchangeMode,
        id: u64,
        ic: u64,
        rc: u64,
        local: SocketAddr,
        remote: SocketAddr,
        now: Instant,
    ) -> Self {
        IsakmpSa {
            id,
            conn,
            initiator,
            mode,
            ic,
            rc,
            state: P1State::MmI1,
            local,
            remote,
            natt: Natt::None,
            nat_local: false,
            nat_remote: false,
            peer_dpd: false,
            suite: None,
            keys: None,
            cipher: None,
            p1_iv: Vec::new(),
            sai_b: Vec::new(),
            dh: None,
            g_peer: Vec::new(),
            ni: Vec::new(),
            nr: Vec::new(),
            candidates: Vec::new(),
            remote_id: None,
            peer_id_b: Vec::new(),
            peer_auth: None,
            peer_certreqs: Vec::new(),
            p1_last_rx: None,
            p1_reply: None,
            p1_rtx: None,
            qms: Vec::new(),
            seen_mids: HashSet::new(),
            seen_order: VecDeque::new(),
            tasks: VecDeque::new(),
            children: Vec::new(),
            first_qm: None,
            reauth_of: None,
            reauth_busy: false,
            replaced: false,
            first_contact: false,
            dpd_seq: 0,
            dpd: None,
            last_heard: now,
            rekey_at: None,
            expire_at: None,
            keepalive_at: None,
            half_open_deadline: None,
            drains: Vec::new(),
            retire_at: None,
            half_open_from: None,
        }
    }

    // ------------------------------------------------------------ queries

    pub fn is_established(&self) -> bool {
        self.state == P1State::Established
    }
    pub fn is_usable(&self) -> bool {
        self.state != P1State::Deleting && !self.replaced
    }
    pub fn has_child(&self, inbound: u32) -> bool {
        self.children.iter().any(|c| c.inbound_spi == inbound)
    }
    pub fn child_by_spi(&self, spi: u32, dir: Direction) -> Option<u32> {
        self.children
            .iter()
            .find(|c| match dir {
                Direction::Inbound => c.inbound_spi == spi,
                Direction::Outbound => c.outbound_spi == spi,
            })
            .map(|c| c.inbound_spi)
    }
    pub fn child_rekey_pending(&self, inbound: u32) -> bool {
        self.children
            .iter()
            .any(|c| c.inbound_spi == inbound && (c.rekey_busy || c.state == ChildState::Rekeyed))
    }
    pub fn has_children_or_pending(&self) -> bool {
        !self.children.is_empty()
            || self.qms.iter().any(|q| q.state != QmState::Done)
            || self
                .tasks
                .iter()
                .any(|t| matches!(t, Task::QuickMode { .. }))
            || self.first_qm.is_some()
    }

    pub fn status(&self) -> Ikev1SaStatus {
        Ikev1SaStatus {
            sa: IkeSaStatus {
                id: self.id,
                conn: self.conn.name.clone(),
                state: self.state.name(),
                spis: (self.ic, self.rc),
                local: self.local,
                remote: self.remote,
                proposal: self.suite.map(|s| s.to_string()).unwrap_or_default(),
                initiator: self.initiator,
                remote_id: self.remote_id.as_ref().map(|i| i.to_string()),
                nat_local: self.nat_local,
                nat_remote: self.nat_remote,
                mobike: false,
                peer_addresses: Vec::new(),
                rekey_at: self.rekey_at,
                expire_at: self.expire_at,
                children: self.children.iter().map(child_status).collect(),
            },
            mode: self.mode,
            nat_t: match self.natt {
                Natt::None => "",
                Natt::Rfc => "rfc3947",
                Natt::Draft => "draft",
            },
            peer_dpd: self.peer_dpd,
            peer_auth: self.peer_auth.as_ref().map(|p| p.method.clone()),
            peer_cert: self.peer_auth.as_ref().and_then(|p| p.cert_subject.clone()),
        }
    }

    fn hash_alg(&self) -> crypto::HashAlg {
        self.suite
            .map(|s| s.hash)
            .unwrap_or(crypto::HashAlg::Sha256)
    }
    fn block(&self) -> usize {
        self.suite.map(|s| s.encr.block_len()).unwrap_or(16)
    }
    fn skeyid_a(&self) -> &[u8] {
        self.keys.as_ref().map(|k| &k.skeyid_a[..]).unwrap_or(&[])
    }
    fn skeyid_d(&self) -> &[u8] {
        self.keys.as_ref().map(|k| &k.skeyid_d[..]).unwrap_or(&[])
    }

    fn remember_mid(&mut self, mid: u32) {
        if self.seen_mids.insert(mid) {
            self.seen_order.push_back(mid);
            if self.seen_order.len() > 4096 {
                if let Some(o) = self.seen_order.pop_front() {
                    self.seen_mids.remove(&o);
                }
            }
        }
    }

    // ------------------------------------------------------ encryption

    /// Encrypts a payload chain under `iv`: zero padding to the block size
    /// (1..=block bytes, as strongSwan pads), header with the E flag.
    /// Returns the message and its last cipher block (the next IV).
    fn encrypt(
        &self,
        exch: u8,
        fl: u8,
        mid: u32,
        pw: &PayloadWriter,
        iv: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>), IkeError> {
        self.encrypt_raw(exch, fl, mid, pw.first(), &pw.buf, iv)
    }

    fn encrypt_raw(
        &self,
        exch: u8,
        fl: u8,
        mid: u32,
        first: u8,
        chain: &[u8],
        iv: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>), IkeError> {
        let c = self.cipher.as_ref().ok_or(IkeError::State {
            op: "encrypt",
            state: "no keys",
        })?;
        let bs = c.alg().block_len();
        let mut out = Vec::with_capacity(HEADER_LEN + chain.len() + bs);
        wire::write_header(
            &mut out,
            self.ic,
            self.rc,
            first,
            exch,
            fl | flags::ENCRYPTION,
            mid,
        );
        out.extend_from_slice(chain);
        let pad = bs - chain.len() % bs;
        out.extend(std::iter::repeat_n(0u8, pad));
        c.encrypt(iv, &mut out[HEADER_LEN..])?;
        wire::finish_length(&mut out);
        let last = out[out.len() - bs..].to_vec();
        Ok((out, last))
    }

    /// Decrypts a message under `iv`; returns the plaintext chain and the
    /// last cipher block.
    fn decrypt(&self, msg: &[u8], iv: &[u8]) -> Result<(Vec<u8>, Vec<u8>), V1Drop> {
        let c = self.cipher.as_ref().ok_or(V1Drop::Unexpected)?;
        let bs = c.alg().block_len();
        let ct = &msg[HEADER_LEN..];
        if ct.is_empty() || !ct.len().is_multiple_of(bs) {
            return Err(V1Drop::Malformed);
        }
        let mut pt = ct.to_vec();
        c.decrypt(iv, &mut pt).map_err(|_| V1Drop::Malformed)?;
        Ok((pt, ct[ct.len() - bs..].to_vec()))
    }

    /// Decrypts a protected message (quick mode, informational) under `iv`,
    /// counting the drop (the reason `decrypt` gives) when it fails; returns
    /// the plaintext chain and the last cipher block. The caller parses the
    /// chain with [`hash_first`].
    fn open(&self, ctx: &mut Ctx, msg: &[u8], iv: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
        match self.decrypt(msg, iv) {
            Ok(x) => Some(x),
            Err(r) => {
                ctx.drop(r);
                None
            }
        }
    }

    /// A phase 2 message: HASH first, then `rest`; `hash` computes the hash
    /// over `rest`'s bytes.
    fn with_hash(
        &self,
        rest: &PayloadWriter,
        hash: impl FnOnce(&[u8]) -> Vec<u8>,
    ) -> PayloadWriter {
        let h = hash(&rest.buf);
        let mut pw = PayloadWriter::new();
        pw.push(wire::payload::HASH, &h);
        pw.append(rest);
        pw
    }

    /// Fuzzing: a first message of a new phase 2 exchange (`mid`) whose
    /// payloads after a valid HASH(1) are `chain` (arbitrary bytes, first
    /// payload type `first`), encrypted as this SA's peer would.
    #[cfg(any(fuzzing, test))]
    pub(crate) fn fuzz_phase2(
        &self,
        exch: u8,
        mid: u32,
        first: u8,
        chain: &[u8],
    ) -> Option<Vec<u8>> {
        let keys = self.keys.as_ref()?;
        let h = self.hash_alg();
        let hash = crypto::hash1(h, &keys.skeyid_a, mid, chain);
        let mut b = vec![first, 0];
        b.extend_from_slice(&((hash.len() + 4) as u16).to_be_bytes());
        b.extend_from_slice(&hash);
        b.extend_from_slice(chain);
        let iv = crypto::phase2_iv(h, &self.p1_iv, mid, self.block());
        self.encrypt_raw(exch, 0, mid, wire::payload::HASH, &b, &iv)
            .ok()
            .map(|(m, _)| m)
    }

    fn send(&self, ctx: &mut Ctx, msg: &[u8]) {
        ctx.transmit(self.local, self.remote, msg);
    }

    // ------------------------------------------------------ IPsec SAs

    #[allow(clippy::too_many_arguments)]
    fn sa_params(
        &self,
        ctx: &mut Ctx,
        suite: &ChildSuite,
        local_ts: &TsEntry,
        remote_ts: &TsEntry,
        encap: bool,
        spi: u32,
        dir: Direction,
        km: &[u8],
    ) -> Box<SaParams> {
        let c = &self.conn;
        let el = suite.encr.key_len();
        let life = |hard: u64, ctx: &mut Ctx| {
            if hard == 0 {
                (0, 0)
            } else {
                let pct: u64 = ctx.rng.random_range(85..=90);
                (hard / 100 * pct, hard)
            }
        };
        let (sb, hb) = life(c.life_bytes, ctx);
        let (sp, hp) = life(c.life_packets, ctx);
        Box::new(SaParams {
            spi,
            direction: dir,
            mode: c.mode,
            suite: suite.suite(),
            enc_key: espresso_core::key::Key::from_slice(&km[..el]),
            auth_key: espresso_core::key::Key::from_slice(&km[el..]),
            esn: suite.esn,
            replay_window: if dir == Direction::Inbound {
                c.replay_window
            } else {
                0
            },
            local_addr: self.local.ip(),
            remote_addr: self.remote.ip(),
            encap: encap.then_some(UdpEncap {
                local_port: self.local.port(),
                remote_port: self.remote.port(),
            }),
            selectors: ts::to_selectors(
                std::slice::from_ref(local_ts),
                std::slice::from_ref(remote_ts),
            ),
            lifetime: Lifetime {
                soft_bytes: sb,
                hard_bytes: hb,
                soft_packets: sp,
                hard_packets: hp,
            },
            df: DfMode::Copy,
            copy_dscp: false,
            initial_seq: 1,
            allow_legacy: c.allow_legacy,
            tunnel_id: c.tunnel_id,
        })
    }

    /// Points the child's selectors at its outbound SA (reusing trap
    /// policy ids so that a trap becomes a protect policy).
    fn install_policies(&mut self, ctx: &mut Ctx, idx: usize) {
        let c = &self.children[idx];
        let sels = ts::to_selectors(
            std::slice::from_ref(&c.local_ts),
            std::slice::from_ref(&c.remote_ts),
        );
        let traps = ctx
            .trap_policies
            .get(&self.conn.name)
            .cloned()
            .unwrap_or_default();
        let spi = c.outbound_spi;
        let mut pols = Vec::new();
        for s in sels {
            let id = traps
                .iter()
                .find(|(_, t)| *t == s)
                .map(|(id, _)| *id)
                .unwrap_or_else(|| ctx.new_policy_id());
            ctx.dp(DataplaneOp::InstallPolicy(Policy {
                id,
                tunnel_id: self.conn.tunnel_id,
                selector: s.clone(),
                action: PolicyAction::Protect { spi },
                priority: 100,
            }));
            pols.push((id, s));
        }
        self.children[idx].policies = pols;
    }

    /// Removes a child's SAs (inbound after the drain time when `drain`) and
    /// its policies (back to traps where the connection has them).
    fn remove_child_sas(&mut self, ctx: &mut Ctx, idx: usize, drain: bool, now: Instant) {
        let traps = ctx
            .trap_policies
            .get(&self.conn.name)
            .cloned()
            .unwrap_or_default();
        let c = &mut self.children[idx];
        for (id, s) in std::mem::take(&mut c.policies) {
            if traps.iter().any(|(tid, _)| *tid == id) {
                ctx.dp(DataplaneOp::InstallPolicy(Policy {
                    id,
                    tunnel_id: self.conn.tunnel_id,
                    selector: s,
                    action: PolicyAction::Trap,
                    priority: 100,
                }));
            } else {
                ctx.dp(DataplaneOp::RemovePolicy { id });
            }
        }
        if c.out_installed {
            ctx.dp(DataplaneOp::RemoveSa {
                spi: c.outbound_spi,
                direction: Direction::Outbound,
            });
            c.out_installed = false;
        }
        if c.in_installed {
            c.in_installed = false;
            if drain {
                self.drains.push((now + ctx.settings.drain, c.inbound_spi));
            } else {
                ctx.dp(DataplaneOp::RemoveSa {
                    spi: c.inbound_spi,
                    direction: Direction::Inbound,
                });
                ctx.free_child_spi(c.inbound_spi);
            }
        } else {
            ctx.free_child_spi(c.inbound_spi);
        }
    }

    /// Removes everything this SA installed (SA gone, peer dead, INITIAL-CONTACT).
    pub fn purge(&mut self, ctx: &mut Ctx, reason: DeleteReason) {
        let now = self.last_heard;
        for i in (0..self.children.len()).rev() {
            self.remove_child_sas(ctx, i, false, now);
            let c = self.children.remove(i);
            ctx.event(Event::ChildDeleted {
                sa: self.id,
                conn: self.conn.name.clone(),
                inbound_spi: c.inbound_spi,
                outbound_spi: c.outbound_spi,
                reason: reason.clone(),
            });
        }
        for (_, spi) in std::mem::take(&mut self.drains) {
            ctx.dp(DataplaneOp::RemoveSa {
                spi,
                direction: Direction::Inbound,
            });
            ctx.free_child_spi(spi);
        }
        for q in std::mem::take(&mut self.qms) {
            if q.state != QmState::Done {
                ctx.free_child_spi(q.inbound_spi);
            }
        }
    }

    /// Bookkeeping when the engine drops this SA.
    pub fn release(mut self, ctx: &mut Ctx) {
        if let Some(ip) = self.half_open_from.take() {
            ctx.half_open.remove(ip);
        }
        for q in &self.qms {
            if q.state != QmState::Done {
                ctx.free_child_spi(q.inbound_spi);
            }
        }
        for c in &self.children {
            ctx.free_child_spi(c.inbound_spi);
        }
        self.children.clear();
    }

    /// Switches the IPsec SAs whose outbound half still waits (a rekey's
    /// switch delay, a CONNECTED) before they move to another ISAKMP SA:
    /// the wait is this SA's, and it is going.
    pub fn finish_pending_switches(&mut self, ctx: &mut Ctx, now: Instant) {
        let waiting: Vec<u32> = self
            .qms
            .iter()
            .filter(|q| q.state == QmState::WaitConnected)
            .map(|q| q.inbound_spi)
            .collect();
        for inbound in waiting {
            if let Some(q) = self.qms.iter_mut().find(|q| q.inbound_spi == inbound) {
                q.state = QmState::Done;
            }
            self.finish_outbound(ctx, inbound, now);
        }
    }
    /// Hands the IPsec SAs over to a replacing ISAKMP SA. A quick-mode
    /// rekey we started here and that still waits for QM2 dies with this SA
    /// (strongSwan ignores a quick mode on an IKEv1 SA it is
    /// re-authenticating, and destroys that SA): its SA is rekeyed again at
    /// once under the new ISAKMP SA rather than left marked busy, which
    /// would let it expire without a successor.
    pub fn take_children(
        &mut self,
        ctx: &mut Ctx,
        now: Instant,
    ) -> (Vec<ChildSa>, Vec<(Instant, u32)>) {
        for q in &mut self.qms {
            if q.initiator && q.state == QmState::I1Sent {
                q.state = QmState::Done;
                q.rtx = None;
                q.until = Some(now);
                ctx.free_child_spi(q.inbound_spi);
                if let Some(c) = q
                    .rekey_of
                    .and_then(|o| self.children.iter_mut().find(|c| c.inbound_spi == o))
                {
                    c.rekey_busy = false;
                    c.rekey_at = Some(now);
                }
            }
        }
        (
            std::mem::take(&mut self.children),
            std::mem::take(&mut self.drains),
        )
    }
    pub fn adopt_children(&mut self, (children, drains): (Vec<ChildSa>, Vec<(Instant, u32)>)) {
        self.children.extend(children);
        self.drains.extend(drains);
    }

    /// The SA failed before or during phase 1: event, removal.
    fn fail(&mut self, ctx: &mut Ctx, e: IkeError) {
        if self.state == P1State::Deleting {
            return;
        }
        let reason = match &e {
            IkeError::Timeout(_) if self.state == P1State::Established => DeleteReason::Dead,
            _ => DeleteReason::Failed(e.clone()),
        };
        self.purge(ctx, reason.clone());
        ctx.event(Event::IkeDeleted {
            sa: self.id,
            conn: self.conn.name.clone(),
            reason,
        });
        self.state = P1State::Deleting;
        ctx.deferred.push(Deferred::Remove(self.id));
    }

    pub fn handle(
        &mut self,
        ctx: &mut Ctx,
        msg: &[u8],
        hdr: Header<'_>,
        from: SocketAddr,
        to: SocketAddr,
        now: Instant,
    ) {
        match hdr.exchange() {
            wire::exchange::MAIN | wire::exchange::AGGRESSIVE => {
                if hdr.message_id() != 0 {
                    ctx.drop(V1Drop::Malformed);
                    return;
                }
                let d = digest(msg);
                if self.p1_last_rx == Some(d) {
                    ctx.drop(V1Drop::Duplicate);
                    if let Some((l, r, m)) = self.p1_reply.clone() {
                        ctx.stats.replies_repeated += 1;
                        ctx.transmit(l, r, &m);
                    }
                    return;
                }
                if hdr.exchange() != self.mode_exchange() {
                    ctx.drop(V1Drop::Unexpected);
                    return;
                }
                self.phase1(ctx, msg, hdr, from, to, now, d);
            }
            wire::exchange::QUICK => self.quick(ctx, msg, hdr, from, to, now),
            wire::exchange::INFORMATIONAL => self.info(ctx, msg, hdr, from, to, now),
            _ => ctx.drop(V1Drop::Unexpected),
        }
    }

    fn mode_exchange(&self) -> u8 {
        match self.mode {
            ExchangeMode::Main => wire::exchange::MAIN,
            ExchangeMode::Aggressive => wire::exchange::AGGRESSIVE,
        }
    }

    /// After an authenticated message: the peer is alive; follow NAT
    /// mapping changes of an established SA.
    fn heard(&mut self, from: SocketAddr, to: SocketAddr, now: Instant) {
        self.last_heard = now;
        if self.state == P1State::Established && (from != self.remote || to != self.local) {
            self.remote = from;
            self.local = to;
        }
    }

    fn child_lifetime(&self) -> Duration {
        self.conn.child_lifetime
    }
}

/// A child status for the CLI.
fn child_status(c: &ChildSa) -> ChildSaStatus {
    ChildSaStatus {
        inbound_spi: c.inbound_spi,
        outbound_spi: c.outbound_spi,
        state: c.state.name(),
        proposal: c.suite.to_string(),
        local_ts: vec![ts::display(&c.local_ts)],
        remote_ts: vec![ts::display(&c.remote_ts)],
        encap: c.encap,
        created: c.created,
        rekey_at: c.rekey_at,
        expire_at: c.expire_at,
    }
}

/// Parses a decrypted phase 2 / informational chain (`next`: the header's
/// first payload type) and checks it starts with HASH (RFC 2409 §5.5, §5.7);
/// returns the payloads and the HASH payload's body. Counts
/// `V1Drop::Decrypt` for a chain that does not parse (a wrong key or IV
/// shows as garbage) and `V1Drop::Invalid` without a leading HASH.
fn hash_first<'a>(
    ctx: &mut Ctx,
    plain: &'a [u8],
    next: u8,
) -> Option<(wire::Payloads<'a>, &'a [u8])> {
    let p = match wire::Payloads::parse(plain, next) {
        Ok(p) => p,
        Err(_) => {
            ctx.drop(V1Drop::Decrypt);
            return None;
        }
    };
    let (Some(hash), true) = (p.hash, p.hash_first) else {
        ctx.drop(V1Drop::Invalid);
        return None;
    };
    Some((p, hash))
}
