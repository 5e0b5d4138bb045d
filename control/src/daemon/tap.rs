//! The decrypted-traffic tap (`espresso tap NAME`): subscriptions per tunnel
//! id; every tick the dataplane's tap rings are drained and each
//! subscriber gets its tunnel's packets as pcap records.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};

use espresso_core::shm::{ControlEnd, TapPacket};
use tracing::{info, warn};

struct Sub {
    tunnel_id: u32,
    tx: SyncSender<Vec<u8>>,
}

/// The tap subscriptions.
#[derive(Default)]
pub struct Taps {
    subs: Vec<Sub>,
}

impl Taps {
    /// Starts a tap on tunnel `tunnel_id`; the receiver gets pcap record bytes.
    pub fn start(&mut self, shm: &mut ControlEnd, tunnel_id: u32) -> Receiver<Vec<u8>> {
        let (tx, rx) = sync_channel(256);
        if !self.subs.iter().any(|s| s.tunnel_id == tunnel_id) {
            shm.discard_taps();
        }
        self.subs.push(Sub { tunnel_id, tx });
        shm.set_tap(tunnel_id, true);
        rx
    }

    /// Ends the taps of tunnel ids that were given back.
    pub fn forget(&mut self, freed: &[u32]) {
        self.subs.retain(|s| !freed.contains(&s.tunnel_id));
    }

    /// Hands the packets in the tap rings to their subscribers; ends the
    /// taps nobody reads any more.
    pub fn tick(&mut self, shm: &mut ControlEnd) {
        if self.subs.is_empty() {
            return;
        }
        let mut pkts: Vec<TapPacket> = Vec::new();
        if let Err(e) = shm.drain_taps(4096, &mut pkts) {
            warn!("tap ring: {e}");
        }
        let mut gone = Vec::new();
        for (n, sub) in self.subs.iter().enumerate() {
            let mut buf = Vec::new();
            for p in pkts.iter().filter(|p| p.tunnel_id == sub.tunnel_id) {
                super::pcap::record(&mut buf, p);
            }
            // An empty message probes whether the reader is still there.
            match sub.tx.try_send(buf) {
                Ok(()) | Err(TrySendError::Full(_)) => {}
                Err(TrySendError::Disconnected(_)) => gone.push(n),
            }
        }
        for n in gone.into_iter().rev() {
            let sub = self.subs.remove(n);
            if !self.subs.iter().any(|s| s.tunnel_id == sub.tunnel_id) {
                shm.set_tap(sub.tunnel_id, false);
                info!("tap of tunnel id {} stopped", sub.tunnel_id);
            }
        }
    }
}
