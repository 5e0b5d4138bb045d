//! One IKE SA: the exchanges of RFC 7296 (IKE_SA_INIT, IKE_AUTH with PSK,
//! CREATE_CHILD_SA for new and rekeyed child SAs and IKE SA rekeys,
//! INFORMATIONAL for deletes and liveness), message IDs and retransmission,
//! NAT detection, rekey collisions, lifetimes and make-before-break child rekeys.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dataplane::crypto::Key;
use dataplane::sa::{
    DfMode, Direction, Lifetime, Mode, Policy, PolicyAction, SaParams, TrafficSelector, UdpEncap,
};
use rand::Rng;

use super::config::{Connection, DpdAction, Identity, StartAction};
use super::crypto::{self, DhPrivate, IkeKeys, SkCipher};
use super::engine::{
    conn_ts, id_matches, ChildSaStatus, Ctx, DataplaneOp, Deferred, DeleteReason, Event, IkeDrop,
    IkeSaStatus,
};
use super::error::IkeError;
use super::proposal::{
    match_xforms, ttype, xforms_to_string, ChildSuite, DhGroup, IkeSuite, Xform,
};
use super::ts;
use super::wire::{
    self, exchange, flags, notify, payload, proto, Header, PayloadWriter, Payloads, TsEntry,
    HEADER_LEN,
};

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
}

struct Active {
    msg_id: u32,
    exchange: u8,
    packet: Vec<u8>,
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
    last_response: Option<(u32, Vec<u8>)>,
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
    pub half_open_counted: bool,
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
            half_open_counted: false,
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

    fn prf(&self) -> super::proposal::PrfAlg {
        self.suite
            .map(|s| s.prf)
            .unwrap_or(super::proposal::PrfAlg::HmacSha256)
    }

    // ------------------------------------------------------------- sending

    fn flag_bits(&self, response: bool) -> u8 {
        let mut f = if self.initiator { flags::INITIATOR } else { 0 };
        if response {
            f |= flags::RESPONSE;
        }
        f
    }

    fn seal(
        &mut self,
        ctx: &mut Ctx,
        exch: u8,
        response: bool,
        msg_id: u32,
        pw: &PayloadWriter,
    ) -> Vec<u8> {
        self.iv_counter += 1;
        let fl = self.flag_bits(response);
        match &self.tx {
            Some(c) => c.seal(
                self.spi_i,
                self.spi_r,
                exch,
                fl,
                msg_id,
                pw.first(),
                &pw.buf,
                self.iv_counter,
                &mut ctx.rng,
            ),
            None => wire::build_plain(self.spi_i, self.spi_r, exch, fl, msg_id, pw),
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
        let pkt = self.seal(ctx, exch, false, id, &pw);
        ctx.transmit(self.local, self.remote, &pkt);
        // With DPD on, the DPD timeout bounds every exchange of an established
        // SA (a rekey that goes unanswered shows a dead peer as well as a
        // liveness check does); otherwise retransmissions run out first.
        let dpd_on = self.conn.dpd.delay > Duration::ZERO && self.state == State::Established;
        let deadline =
            (matches!(kind, ActiveKind::Dpd) || dpd_on).then(|| now + self.conn.dpd.timeout);
        self.active = Some(Active {
            msg_id: id,
            exchange: exch,
            packet: pkt,
            retries: 0,
            next_rtx: now + ctx.settings.retransmit_timeout,
            deadline,
            kind,
        });
    }

    fn respond(&mut self, ctx: &mut Ctx, exch: u8, msg_id: u32, pw: &PayloadWriter) {
        let pkt = self.seal(ctx, exch, true, msg_id, pw);
        ctx.transmit(self.local, self.remote, &pkt);
        self.last_response = Some((msg_id, pkt));
    }

    pub fn retransmit_init_response(&mut self, ctx: &mut Ctx, req: &[u8]) {
        if req == self.init_req.as_slice() && !self.init_resp.is_empty() {
            let r = self.init_resp.clone();
            ctx.transmit(self.local, self.remote, &r);
        } else {
            ctx.drop(IkeDrop::Unexpected);
        }
    }

    // ----------------------------------------------------- IKE_SA_INIT (I)

    pub fn initiate(
        ctx: &mut Ctx,
        conn: Arc<Connection>,
        local: SocketAddr,
        remote: SocketAddr,
        tsi: Vec<TsEntry>,
        tsr: Vec<TsEntry>,
        now: Instant,
    ) -> IkeSa {
        let spi_i = ctx.new_ike_spi();
        let group = conn
            .ike_proposals
            .first()
            .and_then(|p| p.dh.first().copied())
            .unwrap_or(DhGroup::Ecp256);
        let mut sa = IkeSa::blank(conn, true, spi_i, spi_i, 0, local, remote, now);
        sa.ni = ctx.random_bytes(32);
        sa.dh = Some(DhPrivate::generate(group, &mut ctx.rng));
        sa.first_child = Some((tsi, tsr));
        sa.send_init(ctx, now);
        sa
    }

    fn send_init(&mut self, ctx: &mut Ctx, now: Instant) {
        let Some(dh) = &self.dh else { return };
        let mut pw = PayloadWriter::new();
        if let Some(c) = &self.cookie {
            pw.notify(0, &[], notify::COOKIE, c);
        }
        let props: Vec<Vec<Xform>> = self.conn.ike_proposals.iter().map(|p| p.xforms()).collect();
        sa_payload(&mut pw, proto::IKE, &[], &props);
        pw.ke(dh.group().number(), dh.public());
        pw.nonce(&self.ni);
        let src = if self.conn.force_encap {
            ctx.random_bytes(20)
        } else {
            crypto::nat_hash(self.spi_i, 0, self.local).to_vec()
        };
        pw.notify(0, &[], notify::NAT_DETECTION_SOURCE_IP, &src);
        pw.notify(
            0,
            &[],
            notify::NAT_DETECTION_DESTINATION_IP,
            &crypto::nat_hash(self.spi_i, 0, self.remote),
        );
        let msg = wire::build_plain(
            self.spi_i,
            0,
            exchange::IKE_SA_INIT,
            flags::INITIATOR,
            0,
            &pw,
        );
        ctx.transmit(self.local, self.remote, &msg);
        self.init_req = msg.clone();
        self.next_msg_id = 1;
        self.active = Some(Active {
            msg_id: 0,
            exchange: exchange::IKE_SA_INIT,
            packet: msg,
            retries: 0,
            next_rtx: now + ctx.settings.retransmit_timeout,
            deadline: None,
            kind: ActiveKind::Init,
        });
    }

    fn configured_ike(&self) -> Vec<String> {
        self.conn
            .ike_proposals
            .iter()
            .map(|p| p.to_string())
            .collect()
    }
    fn configured_esp(&self) -> Vec<String> {
        self.conn
            .esp_proposals
            .iter()
            .map(|p| p.to_string())
            .collect()
    }

    fn fail(&mut self, ctx: &mut Ctx, err: IkeError) {
        ctx.event(Event::IkeDeleted {
            sa: self.id,
            conn: self.conn.name.clone(),
            reason: DeleteReason::Failed(err),
        });
        self.purge(
            ctx,
            DeleteReason::Failed(IkeError::State {
                op: "negotiation",
                state: "failed",
            }),
        );
        self.active = None;
        self.state = State::Deleting;
        ctx.deferred.push(Deferred::Remove(self.id));
    }

    fn handle_init_response(
        &mut self,
        ctx: &mut Ctx,
        msg: &[u8],
        hdr: Header<'_>,
        from: SocketAddr,
        to: SocketAddr,
        now: Instant,
    ) {
        if self.state != State::InitSent
            || !matches!(
                self.active.as_ref().map(|a| &a.kind),
                Some(ActiveKind::Init)
            )
            || hdr.message_id() != 0
        {
            ctx.drop(IkeDrop::Unexpected);
            return;
        }
        let p = match Payloads::parse(&msg[HEADER_LEN..], hdr.next_payload(), HEADER_LEN) {
            Ok(p) => p,
            Err(_) => {
                ctx.drop(IkeDrop::Malformed);
                return;
            }
        };
        if p.sa.is_none() {
            if let Some(c) = p.notify(notify::COOKIE) {
                if self.init_retries < 4 && !c.data.is_empty() && c.data.len() <= 64 {
                    self.init_retries += 1;
                    self.cookie = Some(c.data.to_vec());
                    self.send_init(ctx, now);
                } else {
                    ctx.drop(IkeDrop::Invalid);
                }
                return;
            }
            if let Some(n) = p.notify(notify::INVALID_KE_PAYLOAD) {
                let g = be16(n.data).and_then(DhGroup::from_number);
                let allowed =
                    g.is_some_and(|g| self.conn.ike_proposals.iter().any(|p| p.dh.contains(&g)));
                match g {
                    Some(g) if allowed && self.init_retries < 4 => {
                        self.init_retries += 1;
                        self.dh = Some(DhPrivate::generate(g, &mut ctx.rng));
                        self.send_init(ctx, now);
                    }
                    _ => {
                        let code = be16(n.data).unwrap_or(0);
                        self.fail(
                            ctx,
                            IkeError::KeyExchange(if code == 0 {
                                "INVALID_KE_PAYLOAD without group"
                            } else {
                                "peer wants a DH group we do not offer"
                            }),
                        );
                    }
                }
                return;
            }
            if let Some(code) = p.error_notify() {
                if code == notify::NO_PROPOSAL_CHOSEN {
                    ctx.event(Event::ProposalMismatch {
                        conn: self.conn.name.clone(),
                        kind: "IKE",
                        peer: self.remote,
                        offered: vec!["? (peer answered NO_PROPOSAL_CHOSEN)".into()],
                        configured: self.configured_ike(),
                        local_responder: false,
                    });
                }
                self.fail(
                    ctx,
                    IkeError::PeerError {
                        code,
                        name: notify::name(code),
                    },
                );
                return;
            }
            ctx.drop(IkeDrop::Invalid);
            return;
        }
        let (Some(sa), Some(ke), Some(nr)) = (p.sa, p.ke, p.nonce) else {
            ctx.drop(IkeDrop::Invalid);
            return;
        };
        let props = match peer_proposals(&sa) {
            Ok(v) => v,
            Err(_) => {
                ctx.drop(IkeDrop::Malformed);
                return;
            }
        };
        let offered: Vec<Vec<Xform>> = self.conn.ike_proposals.iter().map(|p| p.xforms()).collect();
        let suite = match props.as_slice() {
            [(num, proto::IKE, spi, x)]
                if spi.is_empty() && check_chosen(&offered, *num, x, false) =>
            {
                IkeSuite::from_xforms(x)
            }
            _ => None,
        };
        let Some(suite) = suite else {
            self.fail(
                ctx,
                IkeError::NoProposalChosen {
                    offered: "invalid proposal in IKE_SA_INIT response".into(),
                    configured: self.configured_ike().join(", "),
                },
            );
            return;
        };
        let Some(dh) = self.dh.take() else { return };
        if ke.group != suite.dh.number() || dh.group() != suite.dh {
            self.fail(
                ctx,
                IkeError::KeyExchange("KE group differs from the chosen proposal"),
            );
            return;
        }
        let shared = match dh.shared(ke.data) {
            Ok(s) => s,
            Err(e) => {
                self.fail(ctx, e);
                return;
            }
        };
        if hdr.spi_r() == 0 {
            ctx.drop(IkeDrop::Invalid);
            return;
        }
        self.spi_r = hdr.spi_r();
        self.nr = nr.to_vec();
        let keys = crypto::derive_ike_keys(
            &suite, None, &shared, &self.ni, &self.nr, self.spi_i, self.spi_r,
        );
        if let Err(e) = self.set_keys(&suite, keys) {
            self.fail(ctx, e);
            return;
        }
        self.init_resp = msg.to_vec();
        // NAT detection (§2.23)
        let srcs: Vec<&[u8]> = p
            .notifies
            .iter()
            .filter(|n| n.ntype == notify::NAT_DETECTION_SOURCE_IP)
            .map(|n| n.data)
            .collect();
        let dsts: Vec<&[u8]> = p
            .notifies
            .iter()
            .filter(|n| n.ntype == notify::NAT_DETECTION_DESTINATION_IP)
            .map(|n| n.data)
            .collect();
        if !srcs.is_empty() && !dsts.is_empty() {
            let hs = crypto::nat_hash(self.spi_i, self.spi_r, from);
            let hd = crypto::nat_hash(self.spi_i, self.spi_r, to);
            self.nat_remote = !srcs.iter().any(|s| *s == hs);
            self.nat_local = !dsts.iter().any(|d| *d == hd) || self.conn.force_encap;
            if self.nat_local || self.nat_remote {
                self.local.set_port(ctx.settings.natt_port);
                self.remote.set_port(ctx.settings.natt_port);
            }
        }
        self.last_rx = now;
        self.active = None;
        self.state = State::AuthSent;
        self.send_auth(ctx, now);
    }

    fn set_keys(&mut self, suite: &IkeSuite, keys: IkeKeys) -> Result<(), IkeError> {
        let (tx, rx) = if self.initiator {
            (
                SkCipher::new(suite, &keys.sk_ei, &keys.sk_ai)?,
                SkCipher::new(suite, &keys.sk_er, &keys.sk_ar)?,
            )
        } else {
            (
                SkCipher::new(suite, &keys.sk_er, &keys.sk_ar)?,
                SkCipher::new(suite, &keys.sk_ei, &keys.sk_ai)?,
            )
        };
        self.suite = Some(*suite);
        self.keys = Some(keys);
        self.tx = Some(tx);
        self.rx = Some(rx);
        Ok(())
    }

    fn local_identity(&self) -> Identity {
        self.conn
            .local_id
            .clone()
            .unwrap_or_else(|| Identity::from_ip(self.local.ip()))
    }

    fn child_offers(&self, with_dh: bool) -> Vec<Vec<Xform>> {
        let ike_dh = self.suite.map(|s| s.dh);
        self.conn
            .esp_proposals
            .iter()
            .map(|p| {
                let mut p = p.clone();
                if !with_dh || !self.conn.pfs {
                    p.dh.clear();
                } else if p.dh.is_empty() {
                    p.dh.extend(ike_dh);
                }
                p.xforms(with_dh && self.conn.pfs)
            })
            .collect()
    }

    fn send_auth(&mut self, ctx: &mut Ctx, now: Instant) {
        let (Some(keys), Some(suite)) = (&self.keys, self.suite) else {
            return;
        };
        let idi = self.local_identity().to_body();
        let auth = crypto::psk_auth(
            suite.prf,
            self.conn.psk.bytes(),
            &self.init_req,
            &self.nr,
            keys.sk_pi.bytes(),
            &idi,
        );
        let mut pw = PayloadWriter::new();
        pw.id(payload::IDI, &idi);
        if let Some(r) = &self.conn.remote_id {
            pw.id(payload::IDR, &r.to_body());
        }
        pw.auth(wire::AUTH_PSK, &auth);
        pw.notify(0, &[], notify::INITIAL_CONTACT, &[]);
        let (tsi, tsr) = self.first_child.take().unwrap_or_default();
        let offered = self.child_offers(false);
        let spi = ctx.new_child_spi();
        sa_payload(&mut pw, proto::ESP, &spi.to_be_bytes(), &offered);
        pw.ts(payload::TSI, &tsi);
        pw.ts(payload::TSR, &tsr);
        if self.conn.mode == Mode::Transport {
            pw.notify(0, &[], notify::USE_TRANSPORT_MODE, &[]);
        }
        let pc = PendingChild {
            inbound_spi: spi,
            ni: self.ni.clone(),
            dh: None,
            tsi,
            tsr,
            rekey_of: None,
            offered,
            ke_retries: 0,
        };
        self.send_request(ctx, now, exchange::IKE_AUTH, pw, ActiveKind::Auth(pc));
    }

    // ----------------------------------------------------- IKE_SA_INIT (R)

    #[allow(clippy::too_many_arguments)]
    pub fn respond_init(
        ctx: &mut Ctx,
        cands: Vec<Arc<Connection>>,
        msg: &[u8],
        hdr: Header<'_>,
        p: &Payloads<'_>,
        from: SocketAddr,
        to: SocketAddr,
        now: Instant,
    ) -> Option<IkeSa> {
        let (sa, ke, ni) = (p.sa?, p.ke?, p.nonce?);
        let conn = cands.first()?.clone();
        let plain_reply = |ctx: &mut Ctx, ntype: u16, data: &[u8]| {
            let mut pw = PayloadWriter::new();
            pw.notify(0, &[], ntype, data);
            let r = wire::build_plain(
                hdr.spi_i(),
                0,
                exchange::IKE_SA_INIT,
                flags::RESPONSE,
                0,
                &pw,
            );
            ctx.transmit(to, from, &r);
        };
        let props = match peer_proposals(&sa) {
            Ok(v) => v,
            Err(_) => {
                ctx.drop(IkeDrop::Malformed);
                return None;
            }
        };
        let mut chosen = None;
        'outer: for c in &cands {
            for ours in &c.ike_proposals {
                let ox = ours.xforms();
                for (num, prot, spi, x) in &props {
                    if *prot != proto::IKE || !spi.is_empty() {
                        continue;
                    }
                    if let Some(m) = match_xforms(&ox, x, false) {
                        if let Some(s) = IkeSuite::from_xforms(&m) {
                            chosen = Some((*num, s, c.clone()));
                            break 'outer;
                        }
                    }
                }
            }
        }
        let Some((num, suite, conn)) = chosen else {
            ctx.event(Event::ProposalMismatch {
                conn: conn.name.clone(),
                kind: "IKE",
                peer: from,
                offered: props
                    .iter()
                    .map(|(_, _, _, x)| xforms_to_string(x, true))
                    .collect(),
                configured: conn.ike_proposals.iter().map(|p| p.to_string()).collect(),
                local_responder: true,
            });
            plain_reply(ctx, notify::NO_PROPOSAL_CHOSEN, &[]);
            return None;
        };
        if ke.group != suite.dh.number() {
            plain_reply(
                ctx,
                notify::INVALID_KE_PAYLOAD,
                &suite.dh.number().to_be_bytes(),
            );
            return None;
        }
        let dh = DhPrivate::generate(suite.dh, &mut ctx.rng);
        let shared = match dh.shared(ke.data) {
            Ok(s) => s,
            Err(_) => {
                ctx.drop(IkeDrop::Invalid);
                plain_reply(ctx, notify::INVALID_SYNTAX, &[]);
                return None;
            }
        };
        let spi_r = ctx.new_ike_spi();
        let mut sa = IkeSa::blank(
            conn.clone(),
            false,
            spi_r,
            hdr.spi_i(),
            spi_r,
            to,
            from,
            now,
        );
        sa.state = State::InitReplied;
        sa.candidates = cands;
        sa.ni = ni.to_vec();
        sa.nr = ctx.random_bytes(32);
        let keys =
            crypto::derive_ike_keys(&suite, None, &shared, &sa.ni, &sa.nr, sa.spi_i, sa.spi_r);
        sa.set_keys(&suite, keys).ok()?;
        let mut pw = PayloadWriter::new();
        sa_payload_one(&mut pw, num, proto::IKE, &[], &suite.xforms());
        pw.ke(suite.dh.number(), dh.public());
        pw.nonce(&sa.nr);
        let srcs: Vec<&[u8]> = p
            .notifies
            .iter()
            .filter(|n| n.ntype == notify::NAT_DETECTION_SOURCE_IP)
            .map(|n| n.data)
            .collect();
        let dsts: Vec<&[u8]> = p
            .notifies
            .iter()
            .filter(|n| n.ntype == notify::NAT_DETECTION_DESTINATION_IP)
            .map(|n| n.data)
            .collect();
        if !srcs.is_empty() && !dsts.is_empty() {
            let hs = crypto::nat_hash(sa.spi_i, 0, from);
            let hd = crypto::nat_hash(sa.spi_i, 0, to);
            sa.nat_remote = !srcs.iter().any(|s| *s == hs);
            sa.nat_local = !dsts.iter().any(|d| *d == hd) || conn.force_encap;
            let src = if conn.force_encap {
                ctx.random_bytes(20)
            } else {
                crypto::nat_hash(sa.spi_i, sa.spi_r, to).to_vec()
            };
            pw.notify(0, &[], notify::NAT_DETECTION_SOURCE_IP, &src);
            pw.notify(
                0,
                &[],
                notify::NAT_DETECTION_DESTINATION_IP,
                &crypto::nat_hash(sa.spi_i, sa.spi_r, from),
            );
        }
        let resp = wire::build_plain(
            sa.spi_i,
            sa.spi_r,
            exchange::IKE_SA_INIT,
            flags::RESPONSE,
            0,
            &pw,
        );
        ctx.transmit(to, from, &resp);
        sa.init_req = msg.to_vec();
        sa.init_resp = resp;
        sa.peer_next_id = 1;
        sa.half_open_deadline = Some(now + ctx.settings.half_open_timeout);
        Some(sa)
    }

    // ------------------------------------------------------------ dispatch

    pub fn handle(
        &mut self,
        ctx: &mut Ctx,
        msg: &[u8],
        hdr: Header<'_>,
        from: SocketAddr,
        to: SocketAddr,
        now: Instant,
    ) {
        if hdr.spi_i() != self.spi_i {
            ctx.drop(IkeDrop::UnknownSpi);
            return;
        }
        if hdr.is_response() {
            if hdr.exchange() == exchange::IKE_SA_INIT {
                self.handle_init_response(ctx, msg, hdr, from, to, now);
                return;
            }
            if hdr.spi_r() != self.spi_r || hdr.is_initiator() == self.initiator {
                ctx.drop(IkeDrop::UnknownSpi);
                return;
            }
            let ok = self
                .active
                .as_ref()
                .is_some_and(|a| a.msg_id == hdr.message_id() && a.exchange == hdr.exchange());
            if !ok {
                ctx.drop(IkeDrop::MessageId);
                return;
            }
            let Some((first, plain)) = self.decrypt(ctx, msg, hdr) else {
                return;
            };
            let p = match Payloads::parse(&plain, first, 0) {
                Ok(p) => p,
                Err(_) => {
                    ctx.drop(IkeDrop::Malformed);
                    return;
                }
            };
            self.last_rx = now;
            let Some(active) = self.active.take() else {
                return;
            };
            self.on_response(ctx, active, &p, now);
            self.kick(ctx, now);
        } else {
            if hdr.spi_r() != self.spi_r || hdr.is_initiator() == self.initiator {
                ctx.drop(IkeDrop::UnknownSpi);
                return;
            }
            let id = hdr.message_id();
            if let Some((last, pkt)) = &self.last_response {
                if *last == id {
                    let pkt = pkt.clone();
                    ctx.transmit(self.local, self.remote, &pkt);
                    return;
                }
            }
            if id != self.peer_next_id {
                ctx.drop(IkeDrop::MessageId);
                return;
            }
            let Some((first, plain)) = self.decrypt(ctx, msg, hdr) else {
                return;
            };
            let p = match Payloads::parse(&plain, first, 0) {
                Ok(p) => p,
                Err(_) => {
                    ctx.drop(IkeDrop::Malformed);
                    let mut pw = PayloadWriter::new();
                    pw.notify(0, &[], notify::INVALID_SYNTAX, &[]);
                    self.peer_next_id = self.peer_next_id.wrapping_add(1);
                    self.respond(ctx, hdr.exchange(), id, &pw);
                    return;
                }
            };
            self.last_rx = now;
            // after NAT-T the peer's mapping may change: answer where it came from
            if to.port() == ctx.settings.natt_port || self.nat_remote {
                self.local = to;
                self.remote = from;
            }
            self.peer_next_id = self.peer_next_id.wrapping_add(1);
            match (hdr.exchange(), self.state) {
                (exchange::IKE_AUTH, State::InitReplied) => self.auth_request(ctx, id, &p, now),
                (exchange::CREATE_CHILD_SA, State::Established) => {
                    self.create_child_request(ctx, id, &p, now)
                }
                (exchange::CREATE_CHILD_SA, _) => {
                    let mut pw = PayloadWriter::new();
                    pw.notify(0, &[], notify::TEMPORARY_FAILURE, &[]);
                    self.respond(ctx, exchange::CREATE_CHILD_SA, id, &pw);
                }
                (exchange::INFORMATIONAL, State::Established | State::Deleting) => {
                    self.informational_request(ctx, id, &p, now)
                }
                (e, _) => {
                    ctx.drop(IkeDrop::Unexpected);
                    let mut pw = PayloadWriter::new();
                    pw.notify(0, &[], notify::INVALID_SYNTAX, &[]);
                    self.respond(ctx, e, id, &pw);
                }
            }
            self.kick(ctx, now);
        }
    }

    fn decrypt(&self, ctx: &mut Ctx, msg: &[u8], hdr: Header<'_>) -> Option<(u8, crypto::Secret)> {
        let Some(rx) = &self.rx else {
            ctx.drop(IkeDrop::Unexpected);
            return None;
        };
        let p = match Payloads::parse(&msg[HEADER_LEN..], hdr.next_payload(), HEADER_LEN) {
            Ok(p) => p,
            Err(_) => {
                ctx.drop(IkeDrop::Malformed);
                return None;
            }
        };
        let Some((first, at, _)) = p.sk else {
            ctx.drop(IkeDrop::Invalid);
            return None;
        };
        match rx.open(msg, at) {
            Ok(pt) => Some((first, pt)),
            Err(IkeError::Integrity) => {
                ctx.drop(IkeDrop::Integrity);
                None
            }
            Err(_) => {
                ctx.drop(IkeDrop::Malformed);
                None
            }
        }
    }

    fn on_response(&mut self, ctx: &mut Ctx, active: Active, p: &Payloads<'_>, now: Instant) {
        match active.kind {
            ActiveKind::Init => {}
            ActiveKind::Auth(pc) => self.auth_response(ctx, pc, p, now),
            ActiveKind::CreateChild(pc) => self.create_child_response(ctx, pc, p, now),
            ActiveKind::RekeyIke {
                new_spi,
                ni,
                dh,
                offered,
                ke_retries,
            } => self.ike_rekey_response(ctx, new_spi, ni, dh, offered, ke_retries, p, now),
            ActiveKind::Delete { spis, rekey } => {
                for spi in spis {
                    if let Some(i) = self.children.iter().position(|c| c.inbound_spi == spi) {
                        let c = self.children.remove(i);
                        if rekey {
                            self.drains.push((now + ctx.settings.drain, c.inbound_spi));
                        } else {
                            if c.in_installed {
                                ctx.dp(DataplaneOp::RemoveSa {
                                    spi: c.inbound_spi,
                                    direction: Direction::Inbound,
                                });
                            }
                            ctx.free_child_spi(c.inbound_spi);
                        }
                    }
                }
            }
            ActiveKind::DeleteIke => self.finish_delete(ctx, DeleteReason::Local),
            ActiveKind::Dpd => {}
        }
    }

    /// Our delete of this IKE SA completed, or the peer deleted it.
    fn finish_delete(&mut self, ctx: &mut Ctx, reason: DeleteReason) {
        self.state = State::Deleting;
        if let Some(to) = self.rekeyed_to {
            ctx.deferred
                .push(Deferred::MoveChildren { from: self.id, to });
            ctx.event(Event::IkeRekeyed {
                conn: self.conn.name.clone(),
                old_sa: self.id,
                new_sa: to,
            });
        } else {
            self.purge(ctx, reason.clone());
            ctx.event(Event::IkeDeleted {
                sa: self.id,
                conn: self.conn.name.clone(),
                reason,
            });
        }
        ctx.deferred.push(Deferred::Remove(self.id));
    }

    // ---------------------------------------------------------- IKE_AUTH

    fn established(&mut self, ctx: &mut Ctx, now: Instant) {
        self.state = State::Established;
        self.half_open_deadline = None;
        let c = self.conn.clone();
        if c.rekey {
            self.rekey_at = Some(now + ctx.rekey_time(c.ike_lifetime, c.margin, c.fuzz_percent));
        }
        self.expire_at = Some(now + c.ike_lifetime);
        if self.nat_local {
            self.keepalive_at = Some(now + ctx.settings.keepalive);
        }
        ctx.stats.ike_established += 1;
        ctx.event(Event::IkeEstablished {
            sa: self.id,
            conn: c.name.clone(),
            local: self.local,
            remote: self.remote,
            remote_id: self
                .remote_id
                .as_ref()
                .map(|i| i.to_string())
                .unwrap_or_default(),
            proposal: self.suite.map(|s| s.to_string()).unwrap_or_default(),
            initiator: self.initiator,
            nat_local: self.nat_local,
            nat_remote: self.nat_remote,
        });
    }

    fn auth_response(&mut self, ctx: &mut Ctx, pc: PendingChild, p: &Payloads<'_>, now: Instant) {
        let (Some(keys), Some(suite)) = (&self.keys, self.suite) else {
            return;
        };
        let Some(auth) = p.auth else {
            ctx.free_child_spi(pc.inbound_spi);
            let code = p.error_notify().unwrap_or(notify::INVALID_SYNTAX);
            if code == notify::AUTHENTICATION_FAILED {
                ctx.event(Event::AuthFailed {
                    conn: self.conn.name.clone(),
                    peer: self.remote,
                    reason: "peer rejected our authentication (AUTHENTICATION_FAILED): PSK or IDs differ".into(),
                });
            }
            self.fail(
                ctx,
                IkeError::PeerError {
                    code,
                    name: notify::name(code),
                },
            );
            return;
        };
        let Some(idr) = p.idr else {
            ctx.free_child_spi(pc.inbound_spi);
            self.fail(
                ctx,
                IkeError::Missing {
                    exchange: "IKE_AUTH",
                    payload: "IDr",
                },
            );
            return;
        };
        let rid = Identity::from_payload(idr.id_type, idr.data);
        if !id_matches(&self.conn.remote_id, &rid) {
            ctx.free_child_spi(pc.inbound_spi);
            let reason = format!(
                "peer identity {} is not the configured {}",
                rid.as_ref()
                    .map(|i| i.to_string())
                    .unwrap_or_else(|| format!("(type {})", idr.id_type)),
                self.conn
                    .remote_id
                    .as_ref()
                    .map(|i| i.to_string())
                    .unwrap_or_default()
            );
            ctx.event(Event::AuthFailed {
                conn: self.conn.name.clone(),
                peer: self.remote,
                reason: reason.clone(),
            });
            self.fail(ctx, IkeError::AuthFailed(reason));
            return;
        }
        let want = crypto::psk_auth(
            suite.prf,
            self.conn.psk.bytes(),
            &self.init_resp,
            &self.ni,
            keys.sk_pr.bytes(),
            idr.body,
        );
        if auth.method != wire::AUTH_PSK || !crypto::ct_eq(&want, auth.data) {
            ctx.free_child_spi(pc.inbound_spi);
            let reason = format!(
                "AUTH payload of the peer does not verify (method {}): pre-shared keys differ",
                auth.method
            );
            ctx.event(Event::AuthFailed {
                conn: self.conn.name.clone(),
                peer: self.remote,
                reason: reason.clone(),
            });
            self.fail(ctx, IkeError::AuthFailed(reason));
            return;
        }
        self.remote_id = rid;
        self.established(ctx, now);
        self.dh = None;
        if let Some(code) = p.error_notify() {
            ctx.free_child_spi(pc.inbound_spi);
            self.child_refused(ctx, code);
            return;
        }
        let (ni, nr) = (self.ni.clone(), self.nr.clone());
        match self.finish_child_initiator(ctx, &pc, p, &ni, &nr, true, now) {
            Ok(child) => self.install_new_child(ctx, child),
            Err(e) => {
                ctx.free_child_spi(pc.inbound_spi);
                ctx.event(Event::ChildFailed {
                    sa: self.id,
                    conn: self.conn.name.clone(),
                    error: e,
                });
            }
        }
    }

    fn child_refused(&mut self, ctx: &mut Ctx, code: u16) {
        if code == notify::NO_PROPOSAL_CHOSEN {
            ctx.event(Event::ProposalMismatch {
                conn: self.conn.name.clone(),
                kind: "ESP",
                peer: self.remote,
                offered: vec!["? (peer answered NO_PROPOSAL_CHOSEN)".into()],
                configured: self.configured_esp(),
                local_responder: false,
            });
        }
        ctx.event(Event::ChildFailed {
            sa: self.id,
            conn: self.conn.name.clone(),
            error: IkeError::PeerError {
                code,
                name: notify::name(code),
            },
        });
    }

    fn auth_request(&mut self, ctx: &mut Ctx, msg_id: u32, p: &Payloads<'_>, now: Instant) {
        let (Some(keys), Some(suite)) = (&self.keys, self.suite) else {
            return;
        };
        let (Some(idi), Some(auth)) = (p.idi, p.auth) else {
            ctx.drop(IkeDrop::Invalid);
            let mut pw = PayloadWriter::new();
            pw.notify(0, &[], notify::INVALID_SYNTAX, &[]);
            self.respond(ctx, exchange::IKE_AUTH, msg_id, &pw);
            self.state = State::Deleting;
            ctx.deferred.push(Deferred::Remove(self.id));
            return;
        };
        let peer_id = Identity::from_payload(idi.id_type, idi.data);
        let idr_req = p
            .idr
            .and_then(|r| Identity::from_payload(r.id_type, r.data));
        let mut chosen = None;
        let mut reason = format!(
            "no connection for peer identity {}",
            peer_id
                .as_ref()
                .map(|i| i.to_string())
                .unwrap_or_else(|| format!("(type {})", idi.id_type))
        );
        for c in self.candidates.iter() {
            if !id_matches(&c.remote_id, &peer_id) {
                continue;
            }
            if let (Some(want), Some(l)) = (&idr_req, &c.local_id) {
                if want != l {
                    reason = format!("peer asks for identity {want}, we are {l}");
                    continue;
                }
            }
            if !c
                .ike_proposals
                .iter()
                .any(|pr| match_xforms(&pr.xforms(), &suite.xforms(), false).is_some())
            {
                reason = format!("connection {:?} does not allow {suite}", c.name);
                continue;
            }
            let want = crypto::psk_auth(
                suite.prf,
                c.psk.bytes(),
                &self.init_req,
                &self.nr,
                keys.sk_pi.bytes(),
                idi.body,
            );
            if auth.method == wire::AUTH_PSK && crypto::ct_eq(&want, auth.data) {
                chosen = Some(c.clone());
                break;
            }
            reason = format!(
                "AUTH of peer {} does not verify: pre-shared keys differ",
                peer_id.as_ref().map(|i| i.to_string()).unwrap_or_default()
            );
        }
        let Some(conn) = chosen else {
            ctx.event(Event::AuthFailed {
                conn: self.conn.name.clone(),
                peer: self.remote,
                reason: reason.clone(),
            });
            let mut pw = PayloadWriter::new();
            pw.notify(0, &[], notify::AUTHENTICATION_FAILED, &[]);
            self.respond(ctx, exchange::IKE_AUTH, msg_id, &pw);
            self.fail(ctx, IkeError::AuthFailed(reason));
            return;
        };
        if self.half_open_counted {
            self.half_open_counted = false;
            ctx.half_open = ctx.half_open.saturating_sub(1);
        }
        self.conn = conn;
        self.candidates.clear();
        self.remote_id = peer_id;
        let idr = self.local_identity().to_body();
        let my_auth = crypto::psk_auth(
            suite.prf,
            self.conn.psk.bytes(),
            &self.init_resp,
            &self.ni,
            keys.sk_pr.bytes(),
            &idr,
        );
        let mut pw = PayloadWriter::new();
        pw.id(payload::IDR, &idr);
        pw.auth(wire::AUTH_PSK, &my_auth);
        self.established(ctx, now);
        if p.notify(notify::INITIAL_CONTACT).is_some() {
            ctx.deferred
                .push(Deferred::InitialContact { keep: self.id });
        }
        if p.sa.is_some() && p.tsi.is_some() && p.tsr.is_some() {
            let (ni, nr) = (self.ni.clone(), self.nr.clone());
            self.responder_child(ctx, p, &ni, Some(&nr), true, None, &mut pw, now);
        }
        self.respond(ctx, exchange::IKE_AUTH, msg_id, &pw);
    }

    // ------------------------------------------------------- child SAs

    #[allow(clippy::too_many_arguments)]
    fn sa_params(
        &self,
        child: &ChildSa,
        spi: u32,
        dir: Direction,
        enc: Key,
        auth: Key,
        mode: Mode,
        ctx: &mut Ctx,
    ) -> SaParams {
        let c = &self.conn;
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
        let (local_sel, remote_sel) = (&child.local_ts, &child.remote_ts);
        SaParams {
            spi,
            direction: dir,
            mode,
            suite: child.suite.suite(),
            enc_key: enc,
            auth_key: auth,
            esn: child.suite.esn,
            replay_window: if dir == Direction::Inbound {
                c.replay_window
            } else {
                0
            },
            local_addr: self.local.ip(),
            remote_addr: self.remote.ip(),
            encap: child.encap.then_some(UdpEncap {
                local_port: self.local.port(),
                remote_port: self.remote.port(),
            }),
            selectors: ts::to_selectors(local_sel, remote_sel),
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
        }
    }

    /// Builds the child of an exchange we initiated from the response.
    #[allow(clippy::too_many_arguments)]
    fn finish_child_initiator(
        &mut self,
        ctx: &mut Ctx,
        pc: &PendingChild,
        p: &Payloads<'_>,
        ni: &[u8],
        nr: &[u8],
        in_auth: bool,
        now: Instant,
    ) -> Result<(ChildSa, Box<SaParams>, Box<SaParams>), IkeError> {
        let exch = if in_auth {
            "IKE_AUTH"
        } else {
            "CREATE_CHILD_SA"
        };
        let sa = p.sa.ok_or(IkeError::Missing {
            exchange: exch,
            payload: "SA",
        })?;
        let props = peer_proposals(&sa)?;
        let [(num, proto::ESP, spi, x)] = props.as_slice() else {
            return Err(IkeError::NoProposalChosen {
                offered: "answer is not one ESP proposal".into(),
                configured: self.configured_esp().join(", "),
            });
        };
        if spi.len() != 4 || !check_chosen(&pc.offered, *num, x, in_auth) {
            return Err(IkeError::NoProposalChosen {
                offered: xforms_to_string(x, false),
                configured: self.configured_esp().join(", "),
            });
        }
        let suite = ChildSuite::from_xforms(x).ok_or_else(|| IkeError::NoProposalChosen {
            offered: xforms_to_string(x, false),
            configured: self.configured_esp().join(", "),
        })?;
        let outbound = u32::from_be_bytes([spi[0], spi[1], spi[2], spi[3]]);
        if outbound < 256 {
            return Err(IkeError::Parse(wire_err("ESP SPI", outbound as u64)));
        }
        let shared = match (suite.dh, &pc.dh) {
            (Some(g), Some(dh)) if !in_auth => {
                let ke = p.ke.ok_or(IkeError::Missing {
                    exchange: exch,
                    payload: "KE",
                })?;
                if ke.group != g.number() || dh.group() != g {
                    return Err(IkeError::KeyExchange(
                        "KE group differs from the chosen proposal",
                    ));
                }
                Some(dh.shared(ke.data)?)
            }
            (Some(_), _) if !in_auth => {
                return Err(IkeError::KeyExchange("peer chose PFS we did not offer"))
            }
            _ => None,
        };
        let tsi = p.tsi.clone().ok_or(IkeError::Missing {
            exchange: exch,
            payload: "TSi",
        })?;
        let tsr = p.tsr.clone().ok_or(IkeError::Missing {
            exchange: exch,
            payload: "TSr",
        })?;
        if !ts::all_within(&tsi, &pc.tsi) || !ts::all_within(&tsr, &pc.tsr) {
            return Err(IkeError::TsUnacceptable(format!(
                "peer answered TSi {:?} TSr {:?}, wider than proposed",
                tsi.iter().map(ts::display).collect::<Vec<_>>(),
                tsr.iter().map(ts::display).collect::<Vec<_>>()
            )));
        }
        let mode = if self.conn.mode == Mode::Transport
            && p.notify(notify::USE_TRANSPORT_MODE).is_some()
        {
            Mode::Transport
        } else {
            Mode::Tunnel
        };
        let keys_ = self.keys.as_ref().ok_or(IkeError::State {
            op: "child",
            state: "no keys",
        })?;
        let k = crypto::derive_child_keys(
            self.prf(),
            keys_.sk_d.bytes(),
            shared.as_deref().map(|s| &s[..]),
            ni,
            nr,
            suite.encr.key_len(),
            suite.integ.key_len(),
        );
        let mut nonce_min = ni.min(nr).to_vec();
        if nonce_min.is_empty() {
            nonce_min = ni.to_vec();
        }
        let child = self.new_child(
            ctx,
            pc.inbound_spi,
            outbound,
            suite,
            tsi,
            tsr,
            nonce_min,
            now,
        );
        let inb = Box::new(self.sa_params(
            &child,
            child.inbound_spi,
            Direction::Inbound,
            k.er,
            k.ar,
            mode,
            ctx,
        ));
        let out =
            Box::new(self.sa_params(&child, outbound, Direction::Outbound, k.ei, k.ai, mode, ctx));
        Ok((child, inb, out))
    }

    #[allow(clippy::too_many_arguments)]
    fn new_child(
        &self,
        ctx: &mut Ctx,
        inbound: u32,
        outbound: u32,
        suite: ChildSuite,
        local_ts: Vec<TsEntry>,
        remote_ts: Vec<TsEntry>,
        nonce_min: Vec<u8>,
        now: Instant,
    ) -> ChildSa {
        let c = &self.conn;
        let rekey_at = c
            .rekey
            .then(|| now + ctx.rekey_time(c.child_lifetime, c.margin, c.fuzz_percent));
        ChildSa {
            inbound_spi: inbound,
            outbound_spi: outbound,
            suite,
            local_ts,
            remote_ts,
            policies: Vec::new(),
            state: ChildState::Installed,
            in_installed: false,
            out_installed: false,
            pending_out: None,
            nonce_min,
            created: now,
            rekey_at,
            expire_at: now + c.child_lifetime,
            rekeyed_by_peer: None,
            rekey_busy: false,
            encap: self.nat_local || self.nat_remote,
        }
    }

    /// Installs both directions and the policies of a new (not rekeyed) child.
    fn install_new_child(&mut self, ctx: &mut Ctx, parts: (ChildSa, Box<SaParams>, Box<SaParams>)) {
        let (mut child, inb, out) = parts;
        ctx.dp(DataplaneOp::InstallSa(inb));
        ctx.dp(DataplaneOp::InstallSa(out));
        child.in_installed = true;
        child.out_installed = true;
        let sels = ts::to_selectors(&child.local_ts, &child.remote_ts);
        let traps = ctx
            .trap_policies
            .get(&self.conn.name)
            .cloned()
            .unwrap_or_default();
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
                action: PolicyAction::Protect {
                    spi: child.outbound_spi,
                },
                priority: 100,
            }));
            child.policies.push((id, s));
        }
        ctx.stats.child_established += 1;
        ctx.event(self.child_event(&child));
        self.children.push(child);
    }

    fn child_event(&self, c: &ChildSa) -> Event {
        Event::ChildEstablished {
            sa: self.id,
            conn: self.conn.name.clone(),
            inbound_spi: c.inbound_spi,
            outbound_spi: c.outbound_spi,
            proposal: c.suite.to_string(),
            local_ts: c.local_ts.iter().map(ts::display).collect(),
            remote_ts: c.remote_ts.iter().map(ts::display).collect(),
            encap: c.encap,
        }
    }

    /// Switches from `old` to `new` after a rekey: new outbound in, policies
    /// to the new SPI, old outbound out, old inbound drained later.
    fn switch_child(&mut self, ctx: &mut Ctx, old_idx: usize, new_idx: usize, now: Instant) {
        if let Some(out) = self.children[new_idx].pending_out.take() {
            ctx.dp(DataplaneOp::InstallSa(out));
            self.children[new_idx].out_installed = true;
        }
        let new_out = self.children[new_idx].outbound_spi;
        let pols = std::mem::take(&mut self.children[old_idx].policies);
        for (id, s) in &pols {
            ctx.dp(DataplaneOp::InstallPolicy(Policy {
                id: *id,
                tunnel_id: self.conn.tunnel_id,
                selector: s.clone(),
                action: PolicyAction::Protect { spi: new_out },
                priority: 100,
            }));
        }
        self.children[new_idx].policies = pols;
        self.children[new_idx].state = ChildState::Installed;
        let old = &mut self.children[old_idx];
        if old.out_installed {
            ctx.dp(DataplaneOp::RemoveSa {
                spi: old.outbound_spi,
                direction: Direction::Outbound,
            });
            old.out_installed = false;
        }
        ctx.stats.child_established += 1;
        ctx.event(Event::ChildRekeyed {
            sa: self.id,
            conn: self.conn.name.clone(),
            old_inbound: old.inbound_spi,
            old_outbound: old.outbound_spi,
            new_inbound: self.children[new_idx].inbound_spi,
            new_outbound: new_out,
        });
        let _ = now;
    }

    /// Chooses and installs a child SA for a request; writes the answer's
    /// payloads (or an error notify) to `pw`. `nr_auth` is the IKE_SA_INIT
    /// nonce when called from IKE_AUTH.
    #[allow(clippy::too_many_arguments)]
    fn responder_child(
        &mut self,
        ctx: &mut Ctx,
        p: &Payloads<'_>,
        ni: &[u8],
        nr_auth: Option<&[u8]>,
        in_auth: bool,
        rekey_of: Option<usize>,
        pw: &mut PayloadWriter,
        now: Instant,
    ) -> bool {
        let (Some(sa), Some(tsi), Some(tsr)) = (p.sa, p.tsi.as_ref(), p.tsr.as_ref()) else {
            pw.notify(0, &[], notify::INVALID_SYNTAX, &[]);
            return false;
        };
        let props = match peer_proposals(&sa) {
            Ok(v) => v,
            Err(_) => {
                pw.notify(0, &[], notify::INVALID_SYNTAX, &[]);
                return false;
            }
        };
        let ike_dh = self.suite.map(|s| s.dh);
        let mut chosen = None;
        'outer: for ours in &self.conn.esp_proposals {
            let mut o = ours.clone();
            if o.dh.is_empty() && self.conn.pfs {
                o.dh.extend(ike_dh);
            }
            let mut ox = o.xforms(true);
            if !self.conn.pfs {
                // pfs = no still accepts PFS when the peer asks for it (seed 000)
                ox.push(Xform {
                    ttype: ttype::DH,
                    id: 0,
                    key_len: None,
                });
                for g in [
                    DhGroup::Ecp256,
                    DhGroup::Curve25519,
                    DhGroup::Ecp384,
                    DhGroup::Modp2048,
                    DhGroup::Modp1024,
                ] {
                    ox.push(Xform {
                        ttype: ttype::DH,
                        id: g.number(),
                        key_len: None,
                    });
                }
            }
            for (num, prot, spi, x) in &props {
                if *prot != proto::ESP || spi.len() != 4 {
                    continue;
                }
                if let Some(m) = match_xforms(&ox, x, in_auth) {
                    if let Some(s) = ChildSuite::from_xforms(&m) {
                        if s.suite().validate(self.conn.allow_legacy).is_ok() {
                            chosen = Some((
                                *num,
                                u32::from_be_bytes([spi[0], spi[1], spi[2], spi[3]]),
                                s,
                                m,
                            ));
                            break 'outer;
                        }
                    }
                }
            }
        }
        let Some((num, outbound, suite, m)) = chosen else {
            ctx.event(Event::ProposalMismatch {
                conn: self.conn.name.clone(),
                kind: "ESP",
                peer: self.remote,
                offered: props
                    .iter()
                    .map(|(_, _, _, x)| xforms_to_string(x, false))
                    .collect(),
                configured: self.configured_esp(),
                local_responder: true,
            });
            pw.notify(0, &[], notify::NO_PROPOSAL_CHOSEN, &[]);
            return false;
        };
        if outbound < 256 {
            pw.notify(0, &[], notify::INVALID_SYNTAX, &[]);
            return false;
        }
        let mut dh_priv = None;
        let mut shared = None;
        if let (Some(g), false) = (suite.dh, in_auth) {
            match p.ke {
                Some(ke) if ke.group == g.number() => {
                    let d = DhPrivate::generate(g, &mut ctx.rng);
                    match d.shared(ke.data) {
                        Ok(s) => shared = Some(s),
                        Err(_) => {
                            pw.notify(0, &[], notify::INVALID_SYNTAX, &[]);
                            return false;
                        }
                    }
                    dh_priv = Some(d);
                }
                _ => {
                    pw.notify(
                        0,
                        &[],
                        notify::INVALID_KE_PAYLOAD,
                        &g.number().to_be_bytes(),
                    );
                    return false;
                }
            }
        }
        let (cfg_local, cfg_remote) = match rekey_of {
            Some(i) => (
                self.children[i].local_ts.clone(),
                self.children[i].remote_ts.clone(),
            ),
            None => conn_ts(&self.conn, Some(self.local.ip()), Some(self.remote.ip())),
        };
        let n_tsi = ts::narrow(tsi, &cfg_remote);
        let n_tsr = ts::narrow(tsr, &cfg_local);
        if n_tsi.is_empty() || n_tsr.is_empty() {
            ctx.event(Event::ChildFailed {
                sa: self.id,
                conn: self.conn.name.clone(),
                error: IkeError::TsUnacceptable(format!(
                    "peer proposed TSi {:?} TSr {:?}; configured remote {:?} local {:?}",
                    tsi.iter().map(ts::display).collect::<Vec<_>>(),
                    tsr.iter().map(ts::display).collect::<Vec<_>>(),
                    cfg_remote.iter().map(ts::display).collect::<Vec<_>>(),
                    cfg_local.iter().map(ts::display).collect::<Vec<_>>()
                )),
            });
            pw.notify(0, &[], notify::TS_UNACCEPTABLE, &[]);
            return false;
        }
        let nr: Vec<u8> = match nr_auth {
            Some(n) => n.to_vec(),
            None => ctx.random_bytes(32),
        };
        let Some(keys) = &self.keys else { return false };
        let k = crypto::derive_child_keys(
            self.prf(),
            keys.sk_d.bytes(),
            shared.as_deref().map(|s| &s[..]),
            ni,
            &nr,
            suite.encr.key_len(),
            suite.integ.key_len(),
        );
        let mode = if self.conn.mode == Mode::Transport
            && p.notify(notify::USE_TRANSPORT_MODE).is_some()
        {
            Mode::Transport
        } else {
            Mode::Tunnel
        };
        let inbound = ctx.new_child_spi();
        let nonce_min = ni.min(&nr[..]).to_vec();
        // our local selectors are the narrowed TSr, remote the narrowed TSi
        let mut child = self.new_child(
            ctx,
            inbound,
            outbound,
            suite,
            n_tsr.clone(),
            n_tsi.clone(),
            nonce_min,
            now,
        );
        let inb =
            Box::new(self.sa_params(&child, inbound, Direction::Inbound, k.ei, k.ai, mode, ctx));
        let out =
            Box::new(self.sa_params(&child, outbound, Direction::Outbound, k.er, k.ar, mode, ctx));
        sa_payload_one(pw, num, proto::ESP, &inbound.to_be_bytes(), &m);
        if !in_auth {
            pw.nonce(&nr);
        }
        if let Some(d) = &dh_priv {
            pw.ke(d.group().number(), d.public());
        }
        pw.ts(payload::TSI, &n_tsi);
        pw.ts(payload::TSR, &n_tsr);
        if mode == Mode::Transport {
            pw.notify(0, &[], notify::USE_TRANSPORT_MODE, &[]);
        }
        match rekey_of {
            Some(i) => {
                ctx.dp(DataplaneOp::InstallSa(inb));
                child.in_installed = true;
                child.pending_out = Some(out);
                child.state = ChildState::InboundOnly;
                self.children[i].rekeyed_by_peer = Some(inbound);
                self.children.push(child);
            }
            None => self.install_new_child(ctx, (child, inb, out)),
        }
        true
    }

    fn create_child_request(&mut self, ctx: &mut Ctx, msg_id: u32, p: &Payloads<'_>, now: Instant) {
        let mut pw = PayloadWriter::new();
        let is_ike =
            p.sa.and_then(|s| s.proposals().ok())
                .and_then(|v| v.first().map(|p| p.protocol))
                == Some(proto::IKE);
        if is_ike {
            self.ike_rekey_request(ctx, msg_id, p, now);
            return;
        }
        let Some(ni) = p.nonce else {
            pw.notify(0, &[], notify::INVALID_SYNTAX, &[]);
            self.respond(ctx, exchange::CREATE_CHILD_SA, msg_id, &pw);
            return;
        };
        if self.rekeyed_to.is_some() {
            pw.notify(0, &[], notify::TEMPORARY_FAILURE, &[]);
            self.respond(ctx, exchange::CREATE_CHILD_SA, msg_id, &pw);
            return;
        }
        let mut rekey_idx = None;
        if let Some(n) = p.notify(notify::REKEY_SA) {
            let spi = n.spi32().unwrap_or(0);
            match self.children.iter().position(|c| c.outbound_spi == spi) {
                None => {
                    pw.notify(
                        proto::ESP,
                        &spi.to_be_bytes(),
                        notify::CHILD_SA_NOT_FOUND,
                        &[],
                    );
                    self.respond(ctx, exchange::CREATE_CHILD_SA, msg_id, &pw);
                    return;
                }
                Some(i)
                    if self.children[i].state != ChildState::Installed
                        || self.children[i].rekeyed_by_peer.is_some() =>
                {
                    pw.notify(0, &[], notify::TEMPORARY_FAILURE, &[]);
                    self.respond(ctx, exchange::CREATE_CHILD_SA, msg_id, &pw);
                    return;
                }
                Some(i) => rekey_idx = Some(i),
            }
        }
        let ni = ni.to_vec();
        self.responder_child(ctx, p, &ni, None, false, rekey_idx, &mut pw, now);
        self.respond(ctx, exchange::CREATE_CHILD_SA, msg_id, &pw);
    }

    #[allow(clippy::too_many_arguments)]
    fn start_create_child(
        &mut self,
        ctx: &mut Ctx,
        rekey_of: Option<u32>,
        tsi: Vec<TsEntry>,
        tsr: Vec<TsEntry>,
        group: Option<DhGroup>,
        ke_retries: u32,
        now: Instant,
    ) {
        let offered = self.child_offers(true);
        let group = group.or_else(|| {
            offered
                .first()
                .and_then(|x| x.iter().find(|t| t.ttype == ttype::DH && t.id != 0))
                .and_then(|t| DhGroup::from_number(t.id))
        });
        let dh = group.map(|g| DhPrivate::generate(g, &mut ctx.rng));
        let pc = PendingChild {
            inbound_spi: ctx.new_child_spi(),
            ni: ctx.random_bytes(32),
            dh,
            tsi,
            tsr,
            rekey_of,
            offered,
            ke_retries,
        };
        let mut pw = PayloadWriter::new();
        if let Some(old) = rekey_of {
            pw.notify(proto::ESP, &old.to_be_bytes(), notify::REKEY_SA, &[]);
        }
        sa_payload(
            &mut pw,
            proto::ESP,
            &pc.inbound_spi.to_be_bytes(),
            &pc.offered,
        );
        pw.nonce(&pc.ni);
        if let Some(d) = &pc.dh {
            pw.ke(d.group().number(), d.public());
        }
        pw.ts(payload::TSI, &pc.tsi);
        pw.ts(payload::TSR, &pc.tsr);
        if self.conn.mode == Mode::Transport {
            pw.notify(0, &[], notify::USE_TRANSPORT_MODE, &[]);
        }
        self.send_request(
            ctx,
            now,
            exchange::CREATE_CHILD_SA,
            pw,
            ActiveKind::CreateChild(pc),
        );
    }

    fn create_child_response(
        &mut self,
        ctx: &mut Ctx,
        pc: PendingChild,
        p: &Payloads<'_>,
        now: Instant,
    ) {
        let old_idx = pc
            .rekey_of
            .and_then(|o| self.children.iter().position(|c| c.inbound_spi == o));
        if let Some(code) = p.error_notify() {
            ctx.free_child_spi(pc.inbound_spi);
            if code == notify::INVALID_KE_PAYLOAD && pc.ke_retries < 2 {
                let g = p
                    .notify(notify::INVALID_KE_PAYLOAD)
                    .and_then(|n| be16(n.data))
                    .and_then(DhGroup::from_number);
                if let Some(g) = g {
                    let (tsi, tsr) = (pc.tsi.clone(), pc.tsr.clone());
                    self.start_create_child(
                        ctx,
                        pc.rekey_of,
                        tsi,
                        tsr,
                        Some(g),
                        pc.ke_retries + 1,
                        now,
                    );
                    return;
                }
            }
            if let Some(i) = old_idx {
                let c = &mut self.children[i];
                c.rekey_busy = false;
                if code == notify::TEMPORARY_FAILURE || code == notify::CHILD_SA_NOT_FOUND {
                    // §2.25: retry a little later (the peer may be rekeying it)
                    let wait = ctx.rng.random_range(2.0..10.0);
                    c.rekey_at = Some(now + Duration::from_secs_f64(wait));
                    if code == notify::CHILD_SA_NOT_FOUND {
                        c.rekey_at = None;
                    }
                    return;
                }
            }
            self.child_refused(ctx, code);
            return;
        }
        let Some(nr) = p.nonce else {
            ctx.free_child_spi(pc.inbound_spi);
            if let Some(i) = old_idx {
                self.children[i].rekey_busy = false;
            }
            ctx.event(Event::ChildFailed {
                sa: self.id,
                conn: self.conn.name.clone(),
                error: IkeError::Missing {
                    exchange: "CREATE_CHILD_SA",
                    payload: "Nr",
                },
            });
            return;
        };
        let nr = nr.to_vec();
        let ni = pc.ni.clone();
        let parts = match self.finish_child_initiator(ctx, &pc, p, &ni, &nr, false, now) {
            Ok(x) => x,
            Err(e) => {
                ctx.free_child_spi(pc.inbound_spi);
                if let Some(i) = old_idx {
                    self.children[i].rekey_busy = false;
                }
                ctx.event(Event::ChildFailed {
                    sa: self.id,
                    conn: self.conn.name.clone(),
                    error: e,
                });
                return;
            }
        };
        let Some(oi) = old_idx else {
            self.install_new_child(ctx, parts);
            return;
        };
        let (mut child, inb, out) = parts;
        // rekey collision (§2.8.1): the exchange holding the lowest nonce loses
        if let Some(peer_new) = self.children[oi].rekeyed_by_peer {
            let peer_min = self
                .children
                .iter()
                .find(|c| c.inbound_spi == peer_new)
                .map(|c| c.nonce_min.clone());
            if let Some(pm) = peer_min {
                if child.nonce_min < pm {
                    // ours lost: never installed; delete it at the peer
                    child.state = ChildState::Deleting;
                    let spi = child.inbound_spi;
                    self.children.push(child);
                    self.children[oi].rekey_busy = false;
                    self.tasks.push_front(Task::DeleteChild {
                        spis: vec![spi],
                        rekey: false,
                    });
                    return;
                }
                // ours won: the peer deletes its new SA; forget the link
                self.children[oi].rekeyed_by_peer = None;
            }
        }
        ctx.dp(DataplaneOp::InstallSa(inb));
        child.in_installed = true;
        child.pending_out = Some(out);
        child.state = ChildState::InboundOnly;
        self.children.push(child);
        let ni_idx = self.children.len() - 1;
        self.switch_child(ctx, oi, ni_idx, now);
        let old_in = self.children[oi].inbound_spi;
        self.children[oi].state = ChildState::Rekeyed;
        self.tasks.push_front(Task::DeleteChild {
            spis: vec![old_in],
            rekey: true,
        });
    }

    // ---------------------------------------------------------- IKE rekey

    fn start_ike_rekey(
        &mut self,
        ctx: &mut Ctx,
        group: Option<DhGroup>,
        ke_retries: u32,
        now: Instant,
    ) {
        let Some(suite) = self.suite else { return };
        let g = group.unwrap_or(suite.dh);
        let dh = DhPrivate::generate(g, &mut ctx.rng);
        let new_spi = ctx.new_ike_spi();
        let ni = ctx.random_bytes(32);
        let offered: Vec<Vec<Xform>> = self.conn.ike_proposals.iter().map(|p| p.xforms()).collect();
        let mut pw = PayloadWriter::new();
        sa_payload(&mut pw, proto::IKE, &new_spi.to_be_bytes(), &offered);
        pw.nonce(&ni);
        pw.ke(dh.group().number(), dh.public());
        self.send_request(
            ctx,
            now,
            exchange::CREATE_CHILD_SA,
            pw,
            ActiveKind::RekeyIke {
                new_spi,
                ni,
                dh,
                offered,
                ke_retries,
            },
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn rekeyed_sa(
        &self,
        ctx: &mut Ctx,
        initiator: bool,
        spi_i: u64,
        spi_r: u64,
        suite: IkeSuite,
        keys: IkeKeys,
        now: Instant,
    ) -> Result<IkeSa, IkeError> {
        let id = if initiator { spi_i } else { spi_r };
        let mut n = IkeSa::blank(
            self.conn.clone(),
            initiator,
            id,
            spi_i,
            spi_r,
            self.local,
            self.remote,
            now,
        );
        n.nat_local = self.nat_local;
        n.nat_remote = self.nat_remote;
        n.remote_id = self.remote_id.clone();
        n.set_keys(&suite, keys)?;
        n.state = State::Established;
        let c = self.conn.clone();
        if c.rekey {
            n.rekey_at = Some(now + ctx.rekey_time(c.ike_lifetime, c.margin, c.fuzz_percent));
        }
        n.expire_at = Some(now + c.ike_lifetime);
        n.keepalive_at = self.keepalive_at;
        Ok(n)
    }

    fn ike_rekey_request(&mut self, ctx: &mut Ctx, msg_id: u32, p: &Payloads<'_>, now: Instant) {
        let mut pw = PayloadWriter::new();
        let reply_err =
            |s: &mut Self, ctx: &mut Ctx, pw: &mut PayloadWriter, code: u16, data: &[u8]| {
                pw.notify(0, &[], code, data);
                s.respond(ctx, exchange::CREATE_CHILD_SA, msg_id, pw);
            };
        if self.rekeyed_to.is_some()
            || self.state != State::Established
            || self
                .children
                .iter()
                .any(|c| c.state != ChildState::Installed)
        {
            reply_err(self, ctx, &mut pw, notify::TEMPORARY_FAILURE, &[]);
            return;
        }
        let (Some(sa), Some(ke), Some(ni)) = (p.sa, p.ke, p.nonce) else {
            reply_err(self, ctx, &mut pw, notify::INVALID_SYNTAX, &[]);
            return;
        };
        let props = match peer_proposals(&sa) {
            Ok(v) => v,
            Err(_) => {
                reply_err(self, ctx, &mut pw, notify::INVALID_SYNTAX, &[]);
                return;
            }
        };
        let mut chosen = None;
        'outer: for ours in &self.conn.ike_proposals {
            for (num, prot, spi, x) in &props {
                if *prot != proto::IKE || spi.len() != 8 {
                    continue;
                }
                if let Some(m) = match_xforms(&ours.xforms(), x, false) {
                    if let Some(s) = IkeSuite::from_xforms(&m) {
                        let mut b = [0u8; 8];
                        b.copy_from_slice(spi);
                        chosen = Some((*num, u64::from_be_bytes(b), s));
                        break 'outer;
                    }
                }
            }
        }
        let Some((num, peer_spi, suite)) = chosen else {
            ctx.event(Event::ProposalMismatch {
                conn: self.conn.name.clone(),
                kind: "IKE",
                peer: self.remote,
                offered: props
                    .iter()
                    .map(|(_, _, _, x)| xforms_to_string(x, true))
                    .collect(),
                configured: self.configured_ike(),
                local_responder: true,
            });
            reply_err(self, ctx, &mut pw, notify::NO_PROPOSAL_CHOSEN, &[]);
            return;
        };
        if ke.group != suite.dh.number() {
            reply_err(
                self,
                ctx,
                &mut pw,
                notify::INVALID_KE_PAYLOAD,
                &suite.dh.number().to_be_bytes(),
            );
            return;
        }
        let dh = DhPrivate::generate(suite.dh, &mut ctx.rng);
        let Ok(shared) = dh.shared(ke.data) else {
            reply_err(self, ctx, &mut pw, notify::INVALID_SYNTAX, &[]);
            return;
        };
        let Some(old) = &self.keys else { return };
        let nr = ctx.random_bytes(32);
        let my_spi = ctx.new_ike_spi();
        let keys = crypto::derive_ike_keys(
            &suite,
            Some((self.prf(), old.sk_d.bytes())),
            &shared,
            ni,
            &nr,
            peer_spi,
            my_spi,
        );
        let Ok(new_sa) = self.rekeyed_sa(ctx, false, peer_spi, my_spi, suite, keys, now) else {
            return;
        };
        sa_payload_one(
            &mut pw,
            num,
            proto::IKE,
            &my_spi.to_be_bytes(),
            &suite.xforms(),
        );
        pw.nonce(&nr);
        pw.ke(suite.dh.number(), dh.public());
        self.respond(ctx, exchange::CREATE_CHILD_SA, msg_id, &pw);
        ctx.deferred.push(Deferred::Insert(Box::new(new_sa)));
        self.peer_ike_rekey = Some((my_spi, ni.min(&nr[..]).to_vec()));
        if !matches!(
            self.active.as_ref().map(|a| &a.kind),
            Some(ActiveKind::RekeyIke { .. })
        ) {
            self.rekeyed_to = Some(my_spi);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn ike_rekey_response(
        &mut self,
        ctx: &mut Ctx,
        new_spi: u64,
        ni: Vec<u8>,
        dh: DhPrivate,
        offered: Vec<Vec<Xform>>,
        ke_retries: u32,
        p: &Payloads<'_>,
        now: Instant,
    ) {
        self.rekey_busy = false;
        if let Some(code) = p.error_notify() {
            match code {
                notify::INVALID_KE_PAYLOAD if ke_retries < 2 => {
                    let g = p
                        .notify(code)
                        .and_then(|n| be16(n.data))
                        .and_then(DhGroup::from_number);
                    if let Some(g) = g {
                        self.rekey_busy = true;
                        self.start_ike_rekey(ctx, Some(g), ke_retries + 1, now);
                        return;
                    }
                }
                notify::TEMPORARY_FAILURE => {
                    let wait = ctx.rng.random_range(2.0..10.0);
                    self.rekey_at = Some(now + Duration::from_secs_f64(wait));
                    return;
                }
                notify::NO_PROPOSAL_CHOSEN => ctx.event(Event::ProposalMismatch {
                    conn: self.conn.name.clone(),
                    kind: "IKE",
                    peer: self.remote,
                    offered: vec!["? (peer answered NO_PROPOSAL_CHOSEN)".into()],
                    configured: self.configured_ike(),
                    local_responder: false,
                }),
                _ => {}
            }
            self.rekey_at = None;
            return;
        }
        let parsed = (|| -> Result<(u64, IkeSuite, Vec<u8>, crypto::Secret), IkeError> {
            let sa = p.sa.ok_or(IkeError::Missing {
                exchange: "CREATE_CHILD_SA",
                payload: "SA",
            })?;
            let ke = p.ke.ok_or(IkeError::Missing {
                exchange: "CREATE_CHILD_SA",
                payload: "KE",
            })?;
            let nr = p.nonce.ok_or(IkeError::Missing {
                exchange: "CREATE_CHILD_SA",
                payload: "Nr",
            })?;
            let props = peer_proposals(&sa)?;
            let [(num, proto::IKE, spi, x)] = props.as_slice() else {
                return Err(IkeError::NoProposalChosen {
                    offered: "not one IKE proposal".into(),
                    configured: String::new(),
                });
            };
            if spi.len() != 8 || !check_chosen(&offered, *num, x, false) {
                return Err(IkeError::NoProposalChosen {
                    offered: xforms_to_string(x, true),
                    configured: String::new(),
                });
            }
            let suite = IkeSuite::from_xforms(x).ok_or(IkeError::KeyExchange("bad suite"))?;
            if ke.group != suite.dh.number() || dh.group() != suite.dh {
                return Err(IkeError::KeyExchange(
                    "KE group differs from the chosen proposal",
                ));
            }
            let mut b = [0u8; 8];
            b.copy_from_slice(spi);
            Ok((
                u64::from_be_bytes(b),
                suite,
                nr.to_vec(),
                dh.shared(ke.data)?,
            ))
        })();
        let (peer_spi, suite, nr, shared) = match parsed {
            Ok(v) => v,
            Err(e) => {
                ctx.event(Event::ChildFailed {
                    sa: self.id,
                    conn: self.conn.name.clone(),
                    error: e,
                });
                self.rekey_at = None;
                return;
            }
        };
        let Some(old) = &self.keys else { return };
        let keys = crypto::derive_ike_keys(
            &suite,
            Some((self.prf(), old.sk_d.bytes())),
            &shared,
            &ni,
            &nr,
            new_spi,
            peer_spi,
        );
        let Ok(new_sa) = self.rekeyed_sa(ctx, true, new_spi, peer_spi, suite, keys, now) else {
            return;
        };
        ctx.deferred.push(Deferred::Insert(Box::new(new_sa)));
        let our_min = ni.min(nr).to_vec();
        match self.peer_ike_rekey.take() {
            Some((peer_new, peer_min)) if our_min < peer_min => {
                // collision, ours lost: delete our new SA, the peer deletes the old one
                ctx.deferred.push(Deferred::Task {
                    sa: new_spi,
                    task: Task::DeleteIke,
                });
                self.rekeyed_to = Some(peer_new);
            }
            _ => {
                self.rekeyed_to = Some(new_spi);
                self.tasks.push_front(Task::DeleteIke);
            }
        }
    }

    // ------------------------------------------------------- INFORMATIONAL

    fn informational_request(
        &mut self,
        ctx: &mut Ctx,
        msg_id: u32,
        p: &Payloads<'_>,
        now: Instant,
    ) {
        let mut ike_deleted = false;
        let mut resp_spis = Vec::new();
        for d in &p.deletes {
            if d.protocol == proto::IKE {
                ike_deleted = true;
                continue;
            }
            if d.protocol != proto::ESP {
                continue;
            }
            for spi in d.spis32() {
                let Some(i) = self.children.iter().position(|c| c.outbound_spi == spi) else {
                    continue;
                };
                let st = self.children[i].state;
                let inb = self.children[i].inbound_spi;
                resp_spis.push(inb);
                match (st, self.children[i].rekeyed_by_peer) {
                    (ChildState::Installed, Some(new_in)) => {
                        // the peer finished its rekey: switch to the new SA now
                        if let Some(ni) = self.children.iter().position(|c| c.inbound_spi == new_in)
                        {
                            self.switch_child(ctx, i, ni, now);
                        }
                        let c = self.children.remove(i);
                        if c.out_installed {
                            ctx.dp(DataplaneOp::RemoveSa {
                                spi: c.outbound_spi,
                                direction: Direction::Outbound,
                            });
                        }
                        self.drains.push((now + ctx.settings.drain, c.inbound_spi));
                    }
                    (ChildState::Rekeyed, _) => {
                        let c = self.children.remove(i);
                        self.drains.push((now + ctx.settings.drain, c.inbound_spi));
                    }
                    (ChildState::InboundOnly, _) => {
                        // a collision loser the peer created with us: gone without ever carrying traffic
                        let c = self.children.remove(i);
                        if c.in_installed {
                            ctx.dp(DataplaneOp::RemoveSa {
                                spi: c.inbound_spi,
                                direction: Direction::Inbound,
                            });
                        }
                        ctx.free_child_spi(c.inbound_spi);
                        for o in self.children.iter_mut() {
                            if o.rekeyed_by_peer == Some(c.inbound_spi) {
                                o.rekeyed_by_peer = None;
                            }
                        }
                    }
                    (ChildState::Deleting, _) | (ChildState::Installed, None) => {
                        let c = self.children.remove(i);
                        let was_live = st == ChildState::Installed;
                        self.remove_child_sas(ctx, &c, false);
                        if was_live {
                            ctx.event(Event::ChildDeleted {
                                sa: self.id,
                                conn: self.conn.name.clone(),
                                inbound_spi: c.inbound_spi,
                                outbound_spi: c.outbound_spi,
                                reason: DeleteReason::Peer,
                            });
                        }
                    }
                }
            }
        }
        let mut pw = PayloadWriter::new();
        if ike_deleted {
            self.respond(ctx, exchange::INFORMATIONAL, msg_id, &pw);
            self.active = None;
            self.finish_delete(ctx, DeleteReason::Peer);
            return;
        }
        if !resp_spis.is_empty() {
            pw.delete(proto::ESP, &resp_spis);
        }
        self.respond(ctx, exchange::INFORMATIONAL, msg_id, &pw);
    }

    /// Removes a child's SAs from the dataplane and releases its policies
    /// (back to trap when the connection or DPD hold wants that).
    fn remove_child_sas(&mut self, ctx: &mut Ctx, c: &ChildSa, hold: bool) {
        // policies first: no policy may point at a removed SA
        self.release_policies(ctx, &c.policies, hold);
        if c.in_installed {
            ctx.dp(DataplaneOp::RemoveSa {
                spi: c.inbound_spi,
                direction: Direction::Inbound,
            });
        }
        if c.out_installed {
            ctx.dp(DataplaneOp::RemoveSa {
                spi: c.outbound_spi,
                direction: Direction::Outbound,
            });
        }
        ctx.free_child_spi(c.inbound_spi);
    }

    fn release_policies(&mut self, ctx: &mut Ctx, policies: &[(u32, TrafficSelector)], hold: bool) {
        let trap = hold || self.conn.start_action == StartAction::Trap;
        for (id, sel) in policies {
            if trap {
                ctx.dp(DataplaneOp::InstallPolicy(Policy {
                    id: *id,
                    tunnel_id: self.conn.tunnel_id,
                    selector: sel.clone(),
                    action: PolicyAction::Trap,
                    priority: 100,
                }));
                let e = ctx.trap_policies.entry(self.conn.name.clone()).or_default();
                if !e.iter().any(|(i, _)| i == id) {
                    e.push((*id, sel.clone()));
                }
            } else {
                ctx.dp(DataplaneOp::RemovePolicy { id: *id });
            }
        }
    }

    /// Removes every child without telling the peer (SA gone, dead, replaced).
    pub fn purge(&mut self, ctx: &mut Ctx, reason: DeleteReason) {
        let hold = matches!(reason, DeleteReason::Dead) && self.conn.dpd.action != DpdAction::Clear;
        let children = std::mem::take(&mut self.children);
        for c in children {
            self.remove_child_sas(ctx, &c, hold);
            if c.state == ChildState::Installed {
                ctx.event(Event::ChildDeleted {
                    sa: self.id,
                    conn: self.conn.name.clone(),
                    inbound_spi: c.inbound_spi,
                    outbound_spi: c.outbound_spi,
                    reason: reason.clone(),
                });
            }
        }
        for (_, spi) in std::mem::take(&mut self.drains) {
            ctx.dp(DataplaneOp::RemoveSa {
                spi,
                direction: Direction::Inbound,
            });
            ctx.free_child_spi(spi);
        }
    }

    /// Called when the SA leaves the engine.
    pub fn release(mut self, ctx: &mut Ctx) {
        if self.half_open_counted {
            ctx.half_open = ctx.half_open.saturating_sub(1);
        }
        if !self.children.is_empty() || !self.drains.is_empty() {
            self.purge(ctx, DeleteReason::Local);
        }
    }

    pub fn take_children(&mut self) -> (Vec<ChildSa>, Vec<(Instant, u32)>) {
        (
            std::mem::take(&mut self.children),
            std::mem::take(&mut self.drains),
        )
    }

    pub fn adopt_children(&mut self, m: (Vec<ChildSa>, Vec<(Instant, u32)>)) {
        self.children.extend(m.0);
        self.drains.extend(m.1);
    }

    /// Deletes one child at the operator's request or on expiry.
    pub fn delete_child_local(&mut self, ctx: &mut Ctx, inbound: u32, now: Instant) {
        let Some(i) = self.children.iter().position(|c| c.inbound_spi == inbound) else {
            return;
        };
        if self.children[i].state == ChildState::Deleting {
            return;
        }
        let c = &mut self.children[i];
        c.state = ChildState::Deleting;
        let out = c.outbound_spi;
        let out_inst = c.out_installed;
        c.out_installed = false;
        let pols = std::mem::take(&mut c.policies);
        self.release_policies(ctx, &pols, false);
        if out_inst {
            ctx.dp(DataplaneOp::RemoveSa {
                spi: out,
                direction: Direction::Outbound,
            });
        }
        ctx.event(Event::ChildDeleted {
            sa: self.id,
            conn: self.conn.name.clone(),
            inbound_spi: inbound,
            outbound_spi: out,
            reason: DeleteReason::Local,
        });
        self.tasks.push_back(Task::DeleteChild {
            spis: vec![inbound],
            rekey: false,
        });
        self.kick(ctx, now);
    }

    // ------------------------------------------------------------- tasks

    pub fn queue(&mut self, ctx: &mut Ctx, task: Task, now: Instant) {
        if let Task::RekeyChild(spi) = task {
            match self.children.iter_mut().find(|c| c.inbound_spi == spi) {
                Some(c)
                    if c.state == ChildState::Installed
                        && !c.rekey_busy
                        && c.rekeyed_by_peer.is_none() =>
                {
                    c.rekey_busy = true
                }
                _ => return,
            }
        }
        if matches!(task, Task::RekeyIke) {
            if self.rekey_busy || self.rekeyed_to.is_some() {
                return;
            }
            self.rekey_busy = true;
        }
        if matches!(task, Task::DeleteIke) && self.state != State::Established {
            if self.state != State::Deleting {
                self.fail(
                    ctx,
                    IkeError::State {
                        op: "delete",
                        state: "not established",
                    },
                );
            }
            return;
        }
        self.tasks.push_back(task);
        self.kick(ctx, now);
    }

    fn kick(&mut self, ctx: &mut Ctx, now: Instant) {
        while self.active.is_none() && matches!(self.state, State::Established | State::Deleting) {
            let Some(t) = self.tasks.pop_front() else {
                return;
            };
            if self.state == State::Deleting
                && !matches!(t, Task::DeleteIke | Task::DeleteChild { .. })
            {
                continue;
            }
            match t {
                Task::CreateChild { tsi, tsr } => {
                    if self.rekeyed_to.is_none() {
                        self.start_create_child(ctx, None, tsi, tsr, None, 0, now);
                    }
                }
                Task::RekeyChild(spi) => {
                    let ok = self.rekeyed_to.is_none()
                        && self.children.iter().any(|c| {
                            c.inbound_spi == spi
                                && c.state == ChildState::Installed
                                && c.rekeyed_by_peer.is_none()
                        });
                    if let Some(c) = self.children.iter_mut().find(|c| c.inbound_spi == spi) {
                        if !ok {
                            c.rekey_busy = false;
                            continue;
                        }
                        let (l, r) = (c.local_ts.clone(), c.remote_ts.clone());
                        self.start_create_child(ctx, Some(spi), l, r, None, 0, now);
                    }
                }
                Task::RekeyIke => {
                    if self.rekeyed_to.is_none() && self.state == State::Established {
                        self.start_ike_rekey(ctx, None, 0, now);
                    } else {
                        self.rekey_busy = false;
                    }
                }
                Task::DeleteChild { spis, rekey } => {
                    let mut pw = PayloadWriter::new();
                    pw.delete(proto::ESP, &spis);
                    self.send_request(
                        ctx,
                        now,
                        exchange::INFORMATIONAL,
                        pw,
                        ActiveKind::Delete { spis, rekey },
                    );
                }
                Task::DeleteIke => {
                    self.state = State::Deleting;
                    let mut pw = PayloadWriter::new();
                    pw.delete(proto::IKE, &[]);
                    self.send_request(ctx, now, exchange::INFORMATIONAL, pw, ActiveKind::DeleteIke);
                }
                Task::Dpd => {
                    if self.state == State::Established {
                        self.send_request(
                            ctx,
                            now,
                            exchange::INFORMATIONAL,
                            PayloadWriter::new(),
                            ActiveKind::Dpd,
                        );
                    }
                }
            }
        }
    }

    // ------------------------------------------------------------ timers

    fn dpd_due(&self) -> Option<Instant> {
        let d = self.conn.dpd.delay;
        (d > Duration::ZERO
            && self.state == State::Established
            && self.active.is_none()
            && self.tasks.is_empty()
            && self.rekeyed_to.is_none())
        .then(|| self.last_rx + d)
    }

    pub fn next_timeout(&self, ctx: &Ctx) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut m = |x: Option<Instant>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        };
        m(self.half_open_deadline);
        if let Some(a) = &self.active {
            m(Some(a.next_rtx));
            m(a.deadline);
        }
        for (at, _) in &self.drains {
            m(Some(*at));
        }
        if self.state == State::Established {
            for c in &self.children {
                match c.state {
                    ChildState::Installed => {
                        m(Some(c.expire_at));
                        if !c.rekey_busy && c.rekeyed_by_peer.is_none() && self.rekeyed_to.is_none()
                        {
                            m(c.rekey_at);
                        }
                    }
                    ChildState::InboundOnly => {
                        m(Some(c.created + ctx.settings.outbound_install_timeout))
                    }
                    _ => {}
                }
            }
            if self.rekeyed_to.is_none() {
                m(self.expire_at);
                if !self.rekey_busy {
                    m(self.rekey_at);
                }
            }
            m(self.dpd_due());
            if self.nat_local {
                m(self.keepalive_at);
            }
        }
        t
    }

    pub fn on_timeout(&mut self, ctx: &mut Ctx, now: Instant) {
        if self.half_open_deadline.is_some_and(|d| now >= d) && self.state == State::InitReplied {
            self.half_open_deadline = None;
            ctx.event(Event::IkeDeleted {
                sa: self.id,
                conn: self.conn.name.clone(),
                reason: DeleteReason::HalfOpenTimeout,
            });
            self.state = State::Deleting;
            ctx.deferred.push(Deferred::Remove(self.id));
            return;
        }
        if let Some(a) = &mut self.active {
            let expired = a.deadline.is_some_and(|d| now >= d);
            if now >= a.next_rtx || expired {
                if a.retries >= ctx.settings.retransmit_tries || expired {
                    let tries = a.retries + 1;
                    self.peer_dead(ctx, tries);
                    return;
                }
                a.retries += 1;
                let wait = ctx.settings.retransmit_timeout.as_secs_f64()
                    * ctx.settings.retransmit_base.powi(a.retries as i32);
                a.next_rtx = now + Duration::from_secs_f64(wait);
                ctx.stats.retransmits += 1;
                let (l, r, pkt) = (self.local, self.remote, a.packet.clone());
                ctx.transmit(l, r, &pkt);
            }
        }
        let mut i = 0;
        while i < self.drains.len() {
            if self.drains[i].0 <= now {
                let (_, spi) = self.drains.swap_remove(i);
                ctx.dp(DataplaneOp::RemoveSa {
                    spi,
                    direction: Direction::Inbound,
                });
                ctx.free_child_spi(spi);
            } else {
                i += 1;
            }
        }
        if self.state == State::Established {
            // the initiator's delete never came: switch anyway
            let late: Vec<u32> = self
                .children
                .iter()
                .filter(|c| {
                    c.state == ChildState::InboundOnly
                        && now >= c.created + ctx.settings.outbound_install_timeout
                })
                .map(|c| c.inbound_spi)
                .collect();
            for n in late {
                let old = self
                    .children
                    .iter()
                    .position(|c| c.rekeyed_by_peer == Some(n));
                let new = self.children.iter().position(|c| c.inbound_spi == n);
                match (old, new) {
                    (Some(o), Some(ni)) => {
                        self.switch_child(ctx, o, ni, now);
                        self.children[o].rekeyed_by_peer = None;
                        self.children[o].state = ChildState::Rekeyed;
                        let old_in = self.children[o].inbound_spi;
                        self.tasks.push_back(Task::DeleteChild {
                            spis: vec![old_in],
                            rekey: true,
                        });
                    }
                    (None, Some(ni)) => {
                        if let Some(out) = self.children[ni].pending_out.take() {
                            ctx.dp(DataplaneOp::InstallSa(out));
                            self.children[ni].out_installed = true;
                        }
                        self.children[ni].state = ChildState::Installed;
                    }
                    _ => {}
                }
            }
            let mut expired = Vec::new();
            let mut rekey = Vec::new();
            for c in &self.children {
                if c.state != ChildState::Installed {
                    continue;
                }
                if now >= c.expire_at {
                    expired.push(c.inbound_spi);
                } else if !c.rekey_busy
                    && c.rekeyed_by_peer.is_none()
                    && self.rekeyed_to.is_none()
                    && c.rekey_at.is_some_and(|r| now >= r)
                {
                    rekey.push(c.inbound_spi);
                }
            }
            for s in expired {
                self.delete_child_local(ctx, s, now);
                if let Some(c) = self.children.iter_mut().find(|c| c.inbound_spi == s) {
                    c.rekey_at = None;
                }
            }
            for s in rekey {
                if let Some(c) = self.children.iter_mut().find(|c| c.inbound_spi == s) {
                    c.rekey_at = None;
                }
                self.queue(ctx, Task::RekeyChild(s), now);
            }
            if self.rekeyed_to.is_none() {
                if self.expire_at.is_some_and(|e| now >= e) {
                    self.expire_at = None;
                    self.queue(ctx, Task::DeleteIke, now);
                } else if !self.rekey_busy && self.rekey_at.is_some_and(|r| now >= r) {
                    self.rekey_at = None;
                    self.queue(ctx, Task::RekeyIke, now);
                }
            }
            if self.dpd_due().is_some_and(|d| now >= d) {
                self.queue(ctx, Task::Dpd, now);
            }
            if self.nat_local && self.keepalive_at.is_some_and(|k| now >= k) {
                ctx.stats.keepalives_tx += 1;
                ctx.stats.tx += 1;
                ctx.out
                    .push_back(super::engine::Output::Transmit(super::engine::Transmit {
                        local: self.local,
                        remote: self.remote,
                        data: vec![0xff],
                    }));
                self.keepalive_at = Some(now + ctx.settings.keepalive);
            }
        }
        self.kick(ctx, now);
    }

    fn peer_dead(&mut self, ctx: &mut Ctx, tries: u32) {
        let kind = self.active.take().map(|a| a.kind);
        if let Some(ActiveKind::Auth(pc) | ActiveKind::CreateChild(pc)) = &kind {
            ctx.free_child_spi(pc.inbound_spi);
        }
        if matches!(self.state, State::InitSent | State::AuthSent) {
            self.fail(ctx, IkeError::Timeout(tries));
            return;
        }
        if matches!(kind, Some(ActiveKind::DeleteIke)) {
            self.finish_delete(ctx, DeleteReason::Local);
            return;
        }
        let action = self.conn.dpd.action;
        ctx.event(Event::DpdDead {
            sa: self.id,
            conn: self.conn.name.clone(),
            action,
        });
        self.purge(ctx, DeleteReason::Dead);
        ctx.event(Event::IkeDeleted {
            sa: self.id,
            conn: self.conn.name.clone(),
            reason: DeleteReason::Dead,
        });
        self.state = State::Deleting;
        ctx.deferred.push(Deferred::Remove(self.id));
        if action == DpdAction::Restart && self.conn.remote_addr != super::config::RemoteAddr::Any {
            ctx.deferred.push(Deferred::Restart {
                conn: self.conn.clone(),
            });
        }
    }
}

fn wire_err(what: &'static str, value: u64) -> super::error::ParseError {
    super::error::ParseError::BadValue { what, value }
}
