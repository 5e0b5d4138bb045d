//! IKE output held behind a dataplane barrier, for both keying engines'
//! bridges ([`super::ike`], [`super::ikev1`]).
//!
//! An inbound SA must be live in the dataplane before the peer hears of it
//! (an IKEv2 CREATE_CHILD_SA/IKE_AUTH answer, IKEv1's QM2 or QM3, or the
//! DELETE after a rekey we started lets it switch): the first datagram after
//! a new inbound SA, and every output after it, wait in order until the
//! dataplane passed a barrier ([`Installer`]'s shared-memory sync) sent
//! behind the SA. The daemon's loop runs on meanwhile (the bridge looks at
//! the barrier again every millisecond, [`ApplyBarrier::timeout`]); a
//! dataplane starved of CPU for seconds delays the message and loses
//! nothing. A dataplane that is gone releases the outputs at once, one that
//! does not answer in [`APPLY_HOLD_MAX`] with a warning.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use espresso_core::sa::Direction;
use tracing::warn;

use super::installer::Installer;
use crate::ike::{DataplaneOp, Output};

/// How long IKE messages wait at most for the dataplane to apply a new
/// inbound SA (it may be starved of CPU for seconds on a loaded machine):
/// after that they go anyway, with a warning.
pub const APPLY_HOLD_MAX: Duration = Duration::from_secs(10);

/// How often a bridge holding outputs looks at the barrier.
const POLL: Duration = Duration::from_millis(1);

/// Engine outputs held until the dataplane passed a barrier: the first is
/// the message that tells the peer of a new inbound SA.
struct Held {
    token: u64,
    since: Instant,
    outputs: VecDeque<Output>,
}

/// One engine's outputs on their way out (see the module docs). A bridge's
/// drain loop takes [`released`](Self::released) first, then passes each
/// output through [`pass`](Self::pass) and acts only on what it returns.
#[derive(Default)]
pub struct ApplyBarrier {
    /// A new inbound SA went to the dataplane and no datagram left since.
    inbound_pending: bool,
    /// Outputs waiting for the dataplane to apply that inbound SA.
    held: Option<Held>,
}

impl ApplyBarrier {
    /// The held outputs, in order, if the barrier was passed (they are
    /// then the bridge's to act on, through [`pass`](Self::pass) again);
    /// empty while the dataplane has not applied the SA.
    pub fn released(&mut self, inst: &Installer) -> VecDeque<Output> {
        match self.held.take() {
            Some(h) if Self::passed(inst, &h) => h.outputs,
            h => {
                self.held = h;
                VecDeque::new()
            }
        }
    }

    /// One output in engine order: `Some` to act on now, `None` if it is
    /// held (then `queue`, the outputs after it that the bridge already
    /// took, is held behind it).
    pub fn pass(
        &mut self,
        inst: &mut Installer,
        o: Output,
        queue: &mut VecDeque<Output>,
    ) -> Option<Output> {
        if let Some(h) = &mut self.held {
            h.outputs.push_back(o);
            h.outputs.append(queue);
            return None;
        }
        if self.inbound_pending && matches!(o, Output::Transmit(_)) {
            self.inbound_pending = false;
            if inst.dp_live() {
                match inst.shm_mut().sync() {
                    Ok(token) if !inst.shm().synced(token) => {
                        let mut outputs = VecDeque::from([o]);
                        outputs.append(queue);
                        self.held = Some(Held {
                            token,
                            since: Instant::now(),
                            outputs,
                        });
                        return None;
                    }
                    Ok(_) => {}
                    Err(e) => warn!("dataplane barrier after a new inbound SA: {e}"),
                }
            }
        }
        if let Output::Dataplane(DataplaneOp::InstallSa(p)) = &o {
            self.inbound_pending |= p.direction == Direction::Inbound;
        }
        Some(o)
    }

    /// When the bridge should look at the barrier again (while it holds).
    pub fn timeout(&self) -> Option<Instant> {
        self.held.as_ref().map(|_| Instant::now() + POLL)
    }

    /// How many outputs wait for the dataplane.
    pub fn holding(&self) -> usize {
        self.held.as_ref().map_or(0, |h| h.outputs.len())
    }

    /// True when held outputs may go: the dataplane applied everything
    /// before the barrier, is gone, or did not answer in `APPLY_HOLD_MAX`.
    fn passed(inst: &Installer, h: &Held) -> bool {
        if inst.shm().synced(h.token) || !inst.dp_live() || !inst.shm().dataplane().alive {
            return true;
        }
        if h.since.elapsed() >= APPLY_HOLD_MAX {
            warn!(
                "the dataplane did not apply a new inbound SA in {} s: sending {} held IKE output(s) anyway",
                APPLY_HOLD_MAX.as_secs(),
                h.outputs.len()
            );
            return true;
        }
        false
    }
}
