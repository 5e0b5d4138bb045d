//! pcap output of the decrypted-traffic tap (nanosecond timestamps,
//! LINKTYPE_RAW: each record is an IP packet, as tcpdump shows enc0).

use espresso_core::shm::TapPacket;

/// pcap magic for nanosecond timestamps.
pub const MAGIC_NS: u32 = 0xa1b2_3c4d;
/// LINKTYPE_RAW (raw IPv4/IPv6).
pub const LINKTYPE_RAW: u32 = 101;

/// The 24-byte pcap file header.
pub fn file_header(snaplen: u32) -> [u8; 24] {
    let mut h = [0u8; 24];
    h[0..4].copy_from_slice(&MAGIC_NS.to_le_bytes());
    h[4..6].copy_from_slice(&2u16.to_le_bytes());
    h[6..8].copy_from_slice(&4u16.to_le_bytes());
    h[16..20].copy_from_slice(&snaplen.to_le_bytes());
    h[20..24].copy_from_slice(&LINKTYPE_RAW.to_le_bytes());
    h
}

/// Appends one record for a tapped packet.
pub fn record(out: &mut Vec<u8>, p: &TapPacket) {
    let sec = (p.time_ns / 1_000_000_000) as u32;
    let nsec = (p.time_ns % 1_000_000_000) as u32;
    out.extend_from_slice(&sec.to_le_bytes());
    out.extend_from_slice(&nsec.to_le_bytes());
    out.extend_from_slice(&(p.data.len() as u32).to_le_bytes());
    out.extend_from_slice(&p.orig_len.max(p.data.len() as u32).to_le_bytes());
    out.extend_from_slice(&p.data);
}

/// Records of a pcap stream: (timestamp in ns, packet bytes).
pub type Records = Vec<(u64, Vec<u8>)>;

/// Splits a pcap byte stream into (link type, records) — used by tests.
pub fn parse(bytes: &[u8]) -> Option<(u32, Records)> {
    if bytes.len() < 24 || u32::from_le_bytes(bytes[0..4].try_into().ok()?) != MAGIC_NS {
        return None;
    }
    let link = u32::from_le_bytes(bytes[20..24].try_into().ok()?);
    let mut at = 24;
    let mut out = Vec::new();
    while at + 16 <= bytes.len() {
        let sec = u32::from_le_bytes(bytes[at..at + 4].try_into().ok()?);
        let nsec = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().ok()?);
        let incl = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().ok()?) as usize;
        at += 16;
        if at + incl > bytes.len() {
            return None;
        }
        out.push((
            u64::from(sec) * 1_000_000_000 + u64::from(nsec),
            bytes[at..at + incl].to_vec(),
        ));
        at += incl;
    }
    Some((link, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use espresso_core::shm::TapDirection;

    #[test]
    fn header_and_records_round_trip() {
        let mut b = file_header(2048).to_vec();
        let p = TapPacket {
            tunnel_id: 1,
            direction: TapDirection::In,
            time_ns: 1_700_000_000_123_456_789,
            orig_len: 60,
            data: vec![0x45; 60],
        };
        record(&mut b, &p);
        record(&mut b, &p);
        let (link, recs) = parse(&b).unwrap();
        assert_eq!(link, LINKTYPE_RAW);
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].0, p.time_ns);
        assert_eq!(recs[0].1, p.data);
    }
}
