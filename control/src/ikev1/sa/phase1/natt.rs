//! NAT traversal in phase 1 (RFC 3947): the vendor IDs we send and learn
//! (with DPD's, RFC 3706), the NAT-D payloads, NAT detection and the float
//! to port 4500.

use super::*;

impl IsakmpSa {
    pub(super) fn vendor_ids(ctx: &Ctx, pw: &mut PayloadWriter) {
        pw.push(payload::VENDOR, &vid::DPD);
        if ctx.settings.nat_traversal {
            pw.push(payload::VENDOR, &vid::NATT_RFC3947);
            pw.push(payload::VENDOR, &vid::NATT_DRAFT_03);
            pw.push(payload::VENDOR, &vid::NATT_DRAFT_02N);
            pw.push(payload::VENDOR, &vid::NATT_DRAFT_02);
        }
    }

    pub(super) fn learn_vids(&mut self, ctx: &Ctx, p: &Payloads<'_>) {
        let k = p.known_vids();
        self.peer_dpd |= k.contains(&vid::Known::Dpd);
        if ctx.settings.nat_traversal && self.natt == Natt::None {
            if k.contains(&vid::Known::NattRfc) {
                self.natt = Natt::Rfc;
            } else if k.contains(&vid::Known::NattDraft) {
                self.natt = Natt::Draft;
            }
        }
    }

    pub(super) fn nat_d_type(&self) -> u8 {
        if self.natt == Natt::Draft {
            payload::NAT_D_DRAFT
        } else {
            payload::NAT_D
        }
    }

    /// NAT-D payloads for a message from `local` to `remote`: the
    /// destination's hash first, then ours (faked with `encap` forced).
    pub(super) fn push_nat_d(
        &self,
        ctx: &mut Ctx,
        pw: &mut PayloadWriter,
        local: SocketAddr,
        remote: SocketAddr,
    ) {
        if self.natt == Natt::None {
            return;
        }
        let h = self.hash_alg();
        let t = self.nat_d_type();
        pw.push(t, &crypto::nat_d(h, self.ic, self.rc, remote));
        if self.conn.force_encap {
            let fake = ctx.random_bytes(h.out_len());
            pw.push(t, &fake);
        } else {
            pw.push(t, &crypto::nat_d(h, self.ic, self.rc, local));
        }
    }

    /// Compares the peer's NAT-D hashes with the message's addresses.
    pub(super) fn detect_nat(&mut self, p: &Payloads<'_>, from: SocketAddr, to: SocketAddr) {
        if self.natt == Natt::None || p.nat_d.is_empty() {
            return;
        }
        let h = self.hash_alg();
        let me = crypto::nat_d(h, self.ic, self.rc, to);
        let them = crypto::nat_d(h, self.ic, self.rc, from);
        self.nat_local = p.nat_d[0] != me.as_slice() || self.conn.force_encap;
        self.nat_remote = !p.nat_d[1..].contains(&them.as_slice());
    }

    pub(in crate::ikev1::sa) fn natted(&self) -> bool {
        self.natt != Natt::None && (self.nat_local || self.nat_remote)
    }

    /// Moves to port 4500 (initiator, when a NAT was found).
    pub(super) fn float(&mut self, ctx: &Ctx) {
        if self.natted() && self.local.port() != ctx.settings.natt_port {
            self.local.set_port(ctx.settings.natt_port);
            self.remote.set_port(ctx.settings.natt_port);
        }
    }
}
