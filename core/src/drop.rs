//! Why a packet was dropped. Every dropped packet is counted under exactly one
//! reason, per SA where there is one and per worker in total (as VPP does).

#![forbid(unsafe_code)]

/// What happens to a packet after a processing stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The packet goes on to the next stage.
    Pass,
    /// The packet is dropped, and counted under this reason.
    Drop(DropReason),
}

macro_rules! drop_reasons {
    ($( $(#[$m:meta])* $name:ident => $text:literal, )*) => {
        /// A reason for dropping a packet. `as_str` gives the stable snake_case
        /// name used in metrics, `status` and logs.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum DropReason { $( $(#[$m])* $name, )* }

        impl DropReason {
            /// Every reason, in index order.
            pub const ALL: &'static [DropReason] = &[ $( DropReason::$name, )* ];
            /// Number of reasons (size of a counter array).
            pub const COUNT: usize = Self::ALL.len();
            /// Stable name for metrics and status output.
            pub const fn as_str(self) -> &'static str {
                match self { $( DropReason::$name => $text, )* }
            }
            /// Index into a counter array.
            pub const fn index(self) -> usize { self as usize }
        }
    };
}

drop_reasons! {
    /// Inbound ESP with an SPI we have no SA for.
    UnknownSpi => "unknown_spi",
    /// Sequence number already seen inside the replay window.
    Replayed => "replayed",
    /// Sequence number older than the replay window.
    OutsideWindow => "outside_window",
    /// Integrity check value did not verify.
    IcvMismatch => "icv_mismatch",
    /// ESP padding bytes or pad length wrong after decryption.
    BadPadding => "bad_padding",
    /// Packet shorter than its headers or lengths claim.
    Truncated => "truncated",
    /// Header fields invalid (version, lengths, alignment).
    Malformed => "malformed",
    /// Outbound sequence numbers used up: the SA must be rekeyed.
    SeqExhausted => "seq_exhausted",
    /// Decapsulated packet does not match the SA's traffic selectors.
    PolicyMismatch => "policy_mismatch",
    /// Outbound packet matched a discard policy.
    PolicyDiscard => "policy_discard",
    /// Outbound packet matched a protect policy whose SA is not installed.
    NoSa => "no_sa",
    /// SA passed its hard byte or packet lifetime.
    HardLifetime => "hard_lifetime",
    /// Not enough headroom or tailroom in the buffer to encapsulate.
    NoRoom => "no_room",
    /// Inner next header not supported for this SA's mode.
    UnsupportedPayload => "unsupported_payload",
    /// TTL/hop limit reached zero (an ICMP time-exceeded is sent where allowed).
    TtlExceeded => "ttl_exceeded",
    /// Packet larger than the path MTU with DF set (an ICMP error is sent).
    TooBig => "too_big",
    /// No route to the destination.
    NoRoute => "no_route",
    /// Next hop's link-layer address unknown: resolution failed or did not
    /// finish within the time packets may wait for it (3 s, as the kernel's
    /// three probes).
    NoNeighbour => "no_neighbour",
    /// Transmit ring full.
    TxFull => "tx_full",
    /// Packet for the gateway itself could not be handed to the kernel.
    ExceptionFull => "exception_full",
    /// Dummy ESP packet (next header 59, RFC 4303 §2.6): consumed, not forwarded.
    DummyPacket => "dummy_packet",
    /// Tunnel exit: outer header says CE but the inner packet is not
    /// ECN-capable (RFC 6040 §4.2: drop).
    EcnCeNotEct => "ecn_ce_not_ect",
    /// A direction mismatch: an inbound SA given to encap, or an outbound SA
    /// found for a received SPI.
    WrongDirection => "wrong_direction",
    /// A packet had to be fragmented (DF clear, larger than the MTU), or
    /// held while its next hop was resolved, but the I/O backend had no
    /// free buffer for it.
    NoBuffer => "no_buffer",
    /// An IP fragment (of ESP or ESP-in-UDP to the gateway) with an
    /// impossible offset or length (RFC 8200 §4.5: a non-last IPv6 fragment
    /// whose length is not a multiple of 8; an empty fragment; a last
    /// fragment that ends before bytes already received or disagrees with
    /// another last fragment; bytes past the last fragment), a first
    /// fragment without the whole ESP/UDP header (RFC 7112, RFC 8200 §4.5),
    /// more fragments than one datagram may have, or fragments whose ECN
    /// codepoints cannot be combined (RFC 3168 §5.3). Counted per fragment,
    /// including the fragments held for a datagram it made invalid.
    FragInvalid => "frag_invalid",
    /// An IP fragment that would make its datagram larger than the
    /// reassembly buffer (or 65535 bytes): the whole datagram is dropped.
    FragTooBig => "frag_too_big",
    /// An IP fragment overlapping bytes already received (and not an exact
    /// duplicate): the whole datagram is dropped, as Linux does for IPv4
    /// and RFC 5722 requires for IPv6. Counted per fragment.
    FragOverlap => "frag_overlap",
    /// An IP fragment lying entirely inside one already received: dropped,
    /// the datagram keeps waiting.
    FragDuplicate => "frag_duplicate",
    /// Fragments of a datagram not completed within the reassembly timeout.
    FragTimeout => "frag_timeout",
    /// Fragments of the oldest incomplete datagram, given up to make room
    /// for a new one: the reassembly table was full.
    FragEvicted => "frag_evicted",
    /// Fragments of a source's oldest incomplete datagram, given up to make
    /// room for a new one from that source: it already had its share of the
    /// reassembly table.
    FragSourceLimit => "frag_source_limit",
    /// Next hop being resolved, and its queue of waiting packets full
    /// (16 per next hop, 32 next hops and 128 packets per worker; Linux's
    /// `unres_qlen` overflow, counted there as `unresolved_discards`).
    NeighbourQueueFull => "neighbour_queue_full",
    /// ESP for an SPI the control process announced (an inbound SA being
    /// set up, e.g. the IKE_AUTH child whose answer the peer sends ESP
    /// right behind), held by the worker but not installed within the
    /// hold time (200 ms). Unknown SPIs that were not announced, or found
    /// the worker's hold queue full, count as `unknown_spi`.
    UnknownSpiHeldExpired => "unknown_spi_held_expired",
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_and_names_are_unique() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT);
    }
}
