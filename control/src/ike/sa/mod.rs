//! One IKE SA: the exchanges of RFC 7296 (IKE_SA_INIT, IKE_AUTH with PSK,
//! CREATE_CHILD_SA for new and rekeyed child SAs and IKE SA rekeys,
//! INFORMATIONAL for deletes and liveness), message IDs and retransmission,
//! NAT detection, rekey collisions, lifetimes and make-before-break child rekeys.
//!
//! Here: the state, queries and sending. The exchanges are in `init`
//! (IKE_SA_INIT), `dispatch` (incoming messages), `auth` (IKE_AUTH), `child`
//! (child SAs), `rekey` (IKE SA rekey), `info` (INFORMATIONAL), `timers`
//! (tasks and timers).

mod auth;
mod child;
mod create_child;
mod dispatch;
mod fragments;
mod info;
mod init;
mod mobike;
mod rekey;
mod timers;

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use espresso_core::key::Key;
use espresso_core::sa::{
    DfMode, Direction, Lifetime, Mode, Policy, PolicyAction, SaParams, TrafficSelector, UdpEncap,
};
use rand::Rng;

use super::config::{Connection, DpdAction, Identity, StartAction};
use super::crypto::{self, DhPrivate, IkeKeys, SkCipher};
use super::ctx::{id_matches, DataplaneOp, DegradedNext, DeleteReason, Event, IkeDrop};
use super::error::IkeError;
use super::proposal::{
    match_xforms, ttype, xforms_to_string, ChildSuite, DhGroup, IkeSuite, Xform,
};
use super::sigauth;
use super::status::{ChildSaStatus, IkeSaStatus};
use super::ts;
use super::ts::conn_ts;
use super::wire::{
    self, exchange, flags, notify, payload, proto, Header, PayloadWriter, Payloads, TsEntry,
    HEADER_LEN,
};

/// Work an IKE SA hands back to the engine (it touches other SAs).
pub(crate) enum Deferred {
    Insert(Box<IkeSa>),
    Remove(u64),
    MoveChildren {
        from: u64,
        to: u64,
    },
    InitialContact {
        keep: u64,
    },
    Restart {
        conn: Arc<Connection>,
    },
    /// A fresh IKE SA (and child) next to this connection's current one,
    /// without INITIAL_CONTACT (the old SAs carry traffic until the new
    /// child is up).
    Reestablish {
        conn: Arc<Connection>,
        /// When the peer deleted the connection's last child, if it did.
        since: Option<Instant>,
        /// The IKE SA the new one replaces (retired once the new child is up).
        old: u64,
    },
    /// Retire an IKE SA: a fresh one of its connection has its child up.
    Retire {
        sa: u64,
    },
    Task {
        sa: u64,
        task: Task,
    },
}

/// The engine context as an IKE SA sees it.
pub(crate) type Ctx = super::ctx::Ctx<Deferred>;

/// Work queued on an IKE SA; run one at a time (window size 1).
#[derive(Clone, Debug)]
pub(crate) enum Task {
    CreateChild {
        tsi: Vec<TsEntry>,
        tsr: Vec<TsEntry>,
    },
    RekeyChild(u32),
    RekeyIke,
    DeleteChild {
        spis: Vec<u32>,
        rekey: bool,
    },
    DeleteIke,
    Dpd,
    /// MOBIKE: the return routability check of the peer's new address.
    CheckRoutability,
    /// MOBIKE: our address changed; tell the peer (UPDATE_SA_ADDRESSES).
    UpdateAddresses {
        local: SocketAddr,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    InitSent,
    AuthSent,
    InitReplied,
    Established,
    Deleting,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::InitSent => "CONNECTING",
            State::AuthSent => "AUTHENTICATING",
            State::InitReplied => "HALF_OPEN",
            State::Established => "ESTABLISHED",
            State::Deleting => "DELETING",
        }
    }
}

struct PendingChild {
    inbound_spi: u32,
    ni: Vec<u8>,
    dh: Option<DhPrivate>,
    tsi: Vec<TsEntry>,
    tsr: Vec<TsEntry>,
    rekey_of: Option<u32>,
    offered: Vec<Vec<Xform>>,
    ke_retries: u32,
}

enum ActiveKind {
    Init,
    Auth(PendingChild),
    CreateChild(PendingChild),
    RekeyIke {
        new_spi: u64,
        ni: Vec<u8>,
        dh: DhPrivate,
        offered: Vec<Vec<Xform>>,
        ke_retries: u32,
    },
    Delete {
        spis: Vec<u32>,
        rekey: bool,
    },
    DeleteIke,
    Dpd,
    Routability {
        cookie: Vec<u8>,
        local: SocketAddr,
        remote: SocketAddr,
    },
    UpdateAddresses {
        old: SocketAddr,
    },
}

struct Active {
    msg_id: u32,
    exchange: u8,
    /// The request as sent: one datagram, or its fragments (RFC 7383).
    packets: Vec<Vec<u8>>,
    retries: u32,
    next_rtx: Instant,
    deadline: Option<Instant>,
    kind: ActiveKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChildState {
    /// Both directions installed, policies point at it.
    Installed,
    /// Rekeyed by the peer: inbound installed, outbound waits for the
    /// initiator's delete of the old SA (make-before-break).
    InboundOnly,
    /// Replaced by our rekey; its delete is under way.
    Rekeyed,
    /// Being deleted.
    Deleting,
}

pub(crate) struct ChildSa {
    inbound_spi: u32,
    outbound_spi: u32,
    suite: ChildSuite,
    local_ts: Vec<TsEntry>,
    remote_ts: Vec<TsEntry>,
    policies: Vec<(u32, TrafficSelector)>,
    state: ChildState,
    in_installed: bool,
    out_installed: bool,
    pending_out: Option<Box<SaParams>>,
    nonce_min: Vec<u8>,
    created: Instant,
    rekey_at: Option<Instant>,
    expire_at: Instant,
    rekeyed_by_peer: Option<u32>,
    rekey_busy: bool,
    encap: bool,
    /// Its rekey was refused (PFS mismatch): it runs until it expires.
    degraded: bool,
    /// Replaced by our rekey: its DELETE is sent then (switch delay).
    delete_at: Option<Instant>,
}

pub(crate) struct IkeSa {
    pub id: u64,
    pub conn: Arc<Connection>,
    initiator: bool,
    spi_i: u64,
    spi_r: u64,
    state: State,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    nat_local: bool,
    nat_remote: bool,
    suite: Option<IkeSuite>,
    keys: Option<IkeKeys>,
    tx: Option<SkCipher>,
    rx: Option<SkCipher>,
    iv_counter: u64,
    ni: Vec<u8>,
    nr: Vec<u8>,
    dh: Option<DhPrivate>,
    init_req: Vec<u8>,
    init_resp: Vec<u8>,
    cookie: Option<Vec<u8>>,
    init_retries: u32,
    candidates: Vec<Arc<Connection>>,
    pub remote_id: Option<Identity>,
    next_msg_id: u32,
    active: Option<Active>,
    tasks: VecDeque<Task>,
    peer_next_id: u32,
    last_response: Option<(u32, Vec<Vec<u8>>)>,
    children: Vec<ChildSa>,
    first_child: Option<(Vec<TsEntry>, Vec<TsEntry>)>,
    rekey_at: Option<Instant>,
    expire_at: Option<Instant>,
    rekey_busy: bool,
    last_rx: Instant,
    keepalive_at: Option<Instant>,
    half_open_deadline: Option<Instant>,
    drains: Vec<(Instant, u32)>,
    rekeyed_to: Option<u64>,
    peer_ike_rekey: Option<(u64, Vec<u8>)>,
    /// The source address this SA counts as half-open for, until it is authenticated.
    pub half_open_from: Option<IpAddr>,
    /// IKE_AUTH carries INITIAL_CONTACT (not when the SA is negotiated next
    /// to a degraded one of the same connection).
    pub initial_contact: bool,
    /// Delete this IKE SA once its last child is gone (a fresh one replaced it).
    retire_when_empty: bool,
    /// Delete this IKE SA then (a fresh one's child is up, old SAs drained).
    retire_at: Option<Instant>,
    /// The IKE SA this one was negotiated to replace (a degraded child's).
    pub replaces: Option<u64>,
    /// When the peer deleted this connection's last child, while a new one
    /// is being negotiated (`start`, DPD restart).
    peer_deleted_at: Option<Instant>,
    /// The peer's SIGNATURE_HASH_ALGORITHMS (RFC 7427), if it sent them.
    peer_hashes: Option<Vec<u16>>,
    /// Both sides announced IKEV2_FRAGMENTATION_SUPPORTED (RFC 7383).
    frag: bool,
    /// CA key hashes the peer asked for in CERTREQ.
    peer_certreq: Vec<[u8; 20]>,
    /// How the peer authenticated (method or scheme, certificate subject).
    pub peer_auth: Option<super::sigauth::PeerAuth>,
    /// Fragments of an incoming message being reassembled (RFC 7383).
    frag_rx: Option<super::frag::Reassembly>,
    /// Both sides announced MOBIKE_SUPPORTED in IKE_AUTH (RFC 4555).
    mobike: bool,
    /// The peer's additional addresses (RFC 4555 §3.6), kept for `status`.
    peer_addresses: Vec<std::net::IpAddr>,
}

fn be16(b: &[u8]) -> Option<u16> {
    (b.len() >= 2).then(|| u16::from_be_bytes([b[0], b[1]]))
}

fn write_proposal(b: &mut Vec<u8>, num: u8, protocol: u8, spi: &[u8], x: &[Xform], last: bool) {
    let at = b.len();
    b.push(if last { 0 } else { 2 });
    b.push(0);
    b.extend_from_slice(&[0, 0]);
    b.push(num);
    b.push(protocol);
    b.push(spi.len() as u8);
    b.push(x.len() as u8);
    b.extend_from_slice(spi);
    for (i, t) in x.iter().enumerate() {
        b.push(if i + 1 == x.len() { 0 } else { 3 });
        b.push(0);
        let len: u16 = if t.key_len.is_some() { 12 } else { 8 };
        b.extend_from_slice(&len.to_be_bytes());
        b.push(t.ttype);
        b.push(0);
        b.extend_from_slice(&t.id.to_be_bytes());
        if let Some(k) = t.key_len {
            b.extend_from_slice(&0x800eu16.to_be_bytes());
            b.extend_from_slice(&k.to_be_bytes());
        }
    }
    let len = (b.len() - at) as u16;
    b[at + 2..at + 4].copy_from_slice(&len.to_be_bytes());
}

fn sa_payload(pw: &mut PayloadWriter, protocol: u8, spi: &[u8], props: &[Vec<Xform>]) {
    pw.push_with(payload::SA, |b| {
        for (i, x) in props.iter().enumerate() {
            write_proposal(b, (i + 1) as u8, protocol, spi, x, i + 1 == props.len());
        }
    });
}

fn sa_payload_one(pw: &mut PayloadWriter, num: u8, protocol: u8, spi: &[u8], x: &[Xform]) {
    pw.push_with(payload::SA, |b| {
        write_proposal(b, num, protocol, spi, x, true)
    });
}

/// (number, protocol, spi, transforms) of each proposal in an SA payload.
type PeerProposal = (u8, u8, Vec<u8>, Vec<Xform>);

fn peer_proposals(sa: &wire::SaView<'_>) -> Result<Vec<PeerProposal>, IkeError> {
    let mut out = Vec::new();
    for p in sa.proposals()? {
        let x: Vec<Xform> = p
            .transforms()?
            .into_iter()
            .filter(|t| !t.unknown_attr)
            .map(Xform::from)
            .collect();
        out.push((p.num, p.protocol, p.spi.to_vec(), x));
    }
    Ok(out)
}

/// A responder's single chosen proposal must be one of ours, narrowed to one
/// transform per type.
fn check_chosen(offered: &[Vec<Xform>], num: u8, chosen: &[Xform], skip_dh: bool) -> bool {
    let Some(ours) = offered.get((num as usize).wrapping_sub(1)) else {
        return false;
    };
    for t in [ttype::ENCR, ttype::PRF, ttype::INTEG, ttype::DH, ttype::ESN] {
        let n = chosen.iter().filter(|x| x.ttype == t).count();
        if n > 1 {
            return false;
        }
        let offered_t = ours.iter().any(|x| x.ttype == t);
        if n == 0 && offered_t && !(skip_dh && t == ttype::DH) {
            // absent type is acceptable only as "NONE" where we offered NONE
            let none_ok = matches!(t, ttype::INTEG | ttype::DH | ttype::ESN)
                && ours.iter().any(|x| x.ttype == t && x.id == 0);
            if !none_ok {
                return false;
            }
        }
    }
    chosen
        .iter()
        .all(|c| ours.contains(c) || (skip_dh && c.ttype == ttype::DH))
}

impl IkeSa {
    #[allow(clippy::too_many_arguments)]
    fn blank(
        conn: Arc<Connection>,
        initiator: bool,
        id: u64,
        spi_i: u64,
        spi_r: u64,
        local: SocketAddr,
        remote: SocketAddr,
        now: Instant,
    ) -> Self {
        IkeSa {
            id,
            conn,
            initiator,
            spi_i,
            spi_r,
            state: State::InitSent,
            local,
            remote,
            nat_local: false,
            nat_remote: false,
            suite: None,
            keys: None,
            tx: None,
            rx: None,
            iv_counter: 0,
            ni: Vec::new(),
            nr: Vec::new(),
            dh: None,
            init_req: Vec::new(),
            init_resp: Vec::new(),
            cookie: None,
            init_retries: 0,
            candidates: Vec::new(),
            remote_id: None,
            next_msg_id: 0,
            active: None,
            tasks: VecDeque::new(),
            peer_next_id: 0,
            last_response: None,
            children: Vec::new(),
            first_child: None,
            rekey_at: None,
            expire_at: None,
            rekey_busy: false,
            last_rx: now,
            keepalive_at: None,
            half_open_deadline: None,
            drains: Vec::new(),
            rekeyed_to: None,
            peer_ike_rekey: None,
            half_open_from: None,
            initial_contact: true,
            retire_when_empty: false,
            retire_at: None,
            replaces: None,
            peer_deleted_at: None,
            peer_hashes: None,
            frag: false,
            peer_certreq: Vec::new(),
            peer_auth: None,
            frag_rx: None,
            mobike: false,
            peer_addresses: Vec::new(),
        }
    }

    // ------------------------------------------------------------ queries

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
    /// A rekey of this child (by inbound SPI) is under way, ours or the peer's.
    pub fn child_rekey_pending(&self, inbound: u32) -> bool {
        self.children
            .iter()
            .any(|c| c.inbound_spi == inbound && (c.rekey_busy || c.rekeyed_by_peer.is_some()))
    }
    /// The replaced child's delete time, for the gap a new child reports.
    pub fn set_peer_deleted_at(&mut self, t: Option<Instant>) {
        self.peer_deleted_at = t;
    }
    pub fn is_usable(&self) -> bool {
        self.state != State::Deleting && self.rekeyed_to.is_none()
    }
    pub fn is_established(&self) -> bool {
        self.state == State::Established
    }
    pub fn has_children_or_pending(&self) -> bool {
        !self.children.is_empty()
            || matches!(
                self.active.as_ref().map(|a| &a.kind),
                Some(ActiveKind::CreateChild(_)) | Some(ActiveKind::Auth(_))
            )
            || self
                .tasks
                .iter()
                .any(|t| matches!(t, Task::CreateChild { .. }))
    }

    pub fn status(&self) -> IkeSaStatus {
        IkeSaStatus {
            id: self.id,
            conn: self.conn.name.clone(),
            state: self.state.name(),
            spis: (self.spi_i, self.spi_r),
            local: self.local,
            remote: self.remote,
            proposal: self.suite.map(|s| s.to_string()).unwrap_or_default(),
            initiator: self.initiator,
            remote_id: self.remote_id.as_ref().map(|i| i.to_string()),
            nat_local: self.nat_local,
            nat_remote: self.nat_remote,
            mobike: self.mobike,
            peer_addresses: self.peer_addresses.clone(),
            rekey_at: self.rekey_at,
            expire_at: self.expire_at,
            children: self
                .children
                .iter()
                .map(|c| ChildSaStatus {
                    inbound_spi: c.inbound_spi,
                    outbound_spi: c.outbound_spi,
                    state: match c.state {
                        ChildState::Installed => "INSTALLED",
                        ChildState::InboundOnly => "REKEYING",
                        ChildState::Rekeyed => "REKEYED",
                        ChildState::Deleting => "DELETING",
                    },
                    proposal: c.suite.to_string(),
                    local_ts: c.local_ts.iter().map(ts::display).collect(),
                    remote_ts: c.remote_ts.iter().map(ts::display).collect(),
                    encap: c.encap,
                    created: c.created,
                    rekey_at: c.rekey_at,
                    expire_at: c.expire_at,
                })
                .collect(),
        }
    }

    /// Keys of this IKE SA (tests and key-log export only).
    pub fn keys(&self) -> Option<&IkeKeys> {
        self.keys.as_ref()
    }

    fn prf(&self) -> crate::ike::proposal::PrfAlg {
        self.suite
            .map(|s| s.prf)
            .unwrap_or(crate::ike::proposal::PrfAlg::HmacSha256)
    }

    // ------------------------------------------------------------- sending

    fn flag_bits(&self, response: bool) -> u8 {
        let mut f = if self.initiator { flags::INITIATOR } else { 0 };
        if response {
            f |= flags::RESPONSE;
        }
        f
    }

    /// The datagrams of a message: one, or (RFC 7383, when both sides
    /// support it) its fragments if it does not fit `fragment_size`.
    fn seal(
        &mut self,
        ctx: &mut Ctx,
        exch: u8,
        response: bool,
        msg_id: u32,
        pw: &PayloadWriter,
    ) -> Vec<Vec<u8>> {
        self.iv_counter += 1;
        let fl = self.flag_bits(response);
        match &self.tx {
            Some(c) => {
                let one = c.seal(
                    self.spi_i,
                    self.spi_r,
                    exch,
                    fl,
                    msg_id,
                    pw.first(),
                    &pw.buf,
                    self.iv_counter,
                    &mut ctx.rng,
                );
                let natt = self.local.port() == ctx.settings.natt_port;
                let max =
                    super::frag::max_message_len(ctx.settings.fragment_size, self.remote, natt);
                if !self.frag || exch == exchange::IKE_SA_INIT || one.len() <= max {
                    return vec![one];
                }
                super::frag::seal_fragments(
                    c,
                    (self.spi_i, self.spi_r, exch, fl, msg_id),
                    pw.first(),
                    &pw.buf,
                    max,
                    &mut self.iv_counter,
                    &mut ctx.rng,
                )
            }
            None => vec![wire::build_plain(
                self.spi_i, self.spi_r, exch, fl, msg_id, pw,
            )],
        }
    }

    fn transmit_all(&self, ctx: &mut Ctx, pkts: &[Vec<u8>]) {
        for p in pkts {
            ctx.transmit(self.local, self.remote, p);
        }
    }

    fn send_request(
        &mut self,
        ctx: &mut Ctx,
        now: Instant,
        exch: u8,
        pw: PayloadWriter,
        kind: ActiveKind,
    ) {
        let id = self.next_msg_id;
        self.next_msg_id = self.next_msg_id.wrapping_add(1);
        let pkts = self.seal(ctx, exch, false, id, &pw);
        self.transmit_all(ctx, &pkts);
        // With DPD on, the DPD timeout bounds every exchange of an established
        // SA (a rekey that goes unanswered shows a dead peer as well as a
        // liveness check does); otherwise retransmissions run out first.
        let dpd_on = self.conn.dpd.delay > Duration::ZERO && self.state == State::Established;
        let deadline =
            (matches!(kind, ActiveKind::Dpd) || dpd_on).then(|| now + self.conn.dpd.timeout);
        self.active = Some(Active {
            msg_id: id,
            exchange: exch,
            packets: pkts,
            retries: 0,
            next_rtx: now + ctx.settings.retransmit_timeout,
            deadline,
            kind,
        });
    }

    fn respond(&mut self, ctx: &mut Ctx, exch: u8, msg_id: u32, pw: &PayloadWriter) {
        let pkts = self.seal(ctx, exch, true, msg_id, pw);
        self.transmit_all(ctx, &pkts);
        self.last_response = Some((msg_id, pkts));
    }

    pub fn retransmit_init_response(&mut self, ctx: &mut Ctx, req: &[u8]) {
        if req == self.init_req.as_slice() && !self.init_resp.is_empty() {
            let r = self.init_resp.clone();
            ctx.transmit(self.local, self.remote, &r);
        } else {
            ctx.drop(IkeDrop::Unexpected);
        }
    }
}

fn wire_err(what: &'static str, value: u64) -> super::error::ParseError {
    super::error::ParseError::BadValue { what, value }
}

/// Fuzzing hooks (`cfg(fuzzing)` or tests only, never in the daemon): the
/// harness of `ike::fuzz::engine` opens and builds messages of this IKE SA
/// as its peer would, with the keys the SA negotiated.
#[cfg(any(fuzzing, test))]
impl IkeSa {
    /// Opens a message the peer sent on this SA (SK first): the first inner
    /// payload type and the plaintext inner payloads.
    pub(crate) fn fuzz_open(&self, msg: &[u8]) -> Option<(u8, Vec<u8>)> {
        let rx = self.rx.as_ref()?;
        let h = Header::parse(msg).ok()?;
        if h.next_payload() != payload::SK || msg.len() <= HEADER_LEN {
            return None;
        }
        let inner = rx.open(msg, HEADER_LEN).ok()?;
        Some((msg[HEADER_LEN], inner.to_vec()))
    }

    /// Seals `inner` (first payload type `first`) as the peer would send it
    /// on this SA: the peer's keys and role flags; CBC IVs from `iv`.
    pub(crate) fn fuzz_seal(
        &self,
        exch: u8,
        response: bool,
        msg_id: u32,
        first: u8,
        inner: &[u8],
        iv: u64,
    ) -> Option<Vec<u8>> {
        use rand::SeedableRng;
        let rx = self.rx.as_ref()?;
        let mut f = if self.initiator { 0 } else { flags::INITIATOR };
        if response {
            f |= flags::RESPONSE;
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(iv);
        Some(rx.seal(
            self.spi_i, self.spi_r, exch, f, msg_id, first, inner, iv, &mut rng,
        ))
    }

    /// The message id the peer's next request must carry, and our own
    /// outstanding request (message id, exchange), if any.
    pub(crate) fn fuzz_ids(&self) -> (u32, Option<(u32, u8)>) {
        (
            self.peer_next_id,
            self.active.as_ref().map(|a| (a.msg_id, a.exchange)),
        )
    }

    /// The SPIs of this IKE SA (initiator's, responder's).
    pub(crate) fn fuzz_spis(&self) -> (u64, u64) {
        (self.spi_i, self.spi_r)
    }
}

/// When to retry a rekey the peer answered with TEMPORARY_FAILURE (RFC 7296
/// §2.25: it was busy with another exchange of this SA): 2 to 10 s later at
/// random, but at most half the time left before `expire` (never later than
/// the expiry it must beat).
fn retry_wait(ctx: &mut Ctx, expire: Option<Instant>, now: Instant) -> Duration {
    let wait = Duration::from_secs_f64(ctx.rng.random_range(2.0..10.0));
    match expire {
        Some(e) => wait.min(e.saturating_duration_since(now) / 2),
        None => wait,
    }
}
