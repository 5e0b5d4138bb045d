//! The numbers of ISAKMP/IKEv1 (RFC 2407/2408/2409, 3947, IANA): lengths,
//! exchange types, flags, payload and notify types, DOI, attribute types,
//! vendor IDs.

/// ISAKMP header length.
pub const HEADER_LEN: usize = 28;
/// Generic payload header length.
pub const GENERIC_LEN: usize = 4;
/// Most payloads accepted in one message.
pub const MAX_PAYLOADS: usize = 64;
/// Version byte: major 1, minor 0.
pub const VERSION: u8 = 0x10;
/// DOI: IPsec (RFC 2407 §4.2).
pub const DOI_IPSEC: u32 = 1;
/// Situation: SIT_IDENTITY_ONLY.
pub const SIT_IDENTITY_ONLY: u32 = 1;

/// Exchange types (RFC 2408 §3.1, RFC 2409 §5).
pub mod exchange {
    /// Base exchange.
    pub const BASE: u8 = 1;
    /// Identity protection (main mode).
    pub const MAIN: u8 = 2;
    /// Authentication only.
    pub const AUTH_ONLY: u8 = 3;
    /// Aggressive mode.
    pub const AGGRESSIVE: u8 = 4;
    /// Informational.
    pub const INFORMATIONAL: u8 = 5;
    /// Transaction (mode config / XAUTH).
    pub const TRANSACTION: u8 = 6;
    /// Quick mode.
    pub const QUICK: u8 = 32;
    /// New group mode.
    pub const NEW_GROUP: u8 = 33;
    /// Name for logs.
    pub fn name(t: u8) -> &'static str {
        match t {
            BASE => "BASE",
            MAIN => "ID_PROT",
            AUTH_ONLY => "AUTH_ONLY",
            AGGRESSIVE => "AGGRESSIVE",
            INFORMATIONAL => "INFORMATIONAL_V1",
            TRANSACTION => "TRANSACTION",
            QUICK => "QUICK_MODE",
            NEW_GROUP => "NEW_GROUP",
            _ => "UNKNOWN",
        }
    }
}

/// Header flags.
pub mod flags {
    /// Payloads after the header are encrypted.
    pub const ENCRYPTION: u8 = 0x01;
    /// Commit bit (key exchange synchronisation, RFC 2408 §3.1).
    pub const COMMIT: u8 = 0x02;
    /// Authentication only.
    pub const AUTH_ONLY: u8 = 0x04;
}

/// Payload types (RFC 2408 §3.1, RFC 3947, draft-ietf-ipsec-nat-t-ike).
pub mod payload {
    /// End of chain.
    pub const NONE: u8 = 0;
    /// Security Association.
    pub const SA: u8 = 1;
    /// Proposal.
    pub const PROPOSAL: u8 = 2;
    /// Transform.
    pub const TRANSFORM: u8 = 3;
    /// Key Exchange.
    pub const KE: u8 = 4;
    /// Identification.
    pub const ID: u8 = 5;
    /// Certificate.
    pub const CERT: u8 = 6;
    /// Certificate Request.
    pub const CERTREQ: u8 = 7;
    /// Hash.
    pub const HASH: u8 = 8;
    /// Signature.
    pub const SIG: u8 = 9;
    /// Nonce.
    pub const NONCE: u8 = 10;
    /// Notification.
    pub const NOTIFY: u8 = 11;
    /// Delete.
    pub const DELETE: u8 = 12;
    /// Vendor ID.
    pub const VENDOR: u8 = 13;
    /// Mode-config attributes.
    pub const ATTRIBUTE: u8 = 14;
    /// NAT discovery (RFC 3947).
    pub const NAT_D: u8 = 20;
    /// NAT original address (RFC 3947).
    pub const NAT_OA: u8 = 21;
    /// NAT-D of the drafts.
    pub const NAT_D_DRAFT: u8 = 130;
    /// NAT-OA of the drafts.
    pub const NAT_OA_DRAFT: u8 = 131;
    /// Cisco IKE fragment.
    pub const FRAGMENT: u8 = 132;
}

/// Notify message types (RFC 2408 §3.14.1, RFC 2407 §4.6.3, RFC 3706).
pub mod notify {
    /// INVALID-PAYLOAD-TYPE.
    pub const INVALID_PAYLOAD_TYPE: u16 = 1;
    /// INVALID-COOKIE.
    pub const INVALID_COOKIE: u16 = 4;
    /// INVALID-MAJOR-VERSION.
    pub const INVALID_MAJOR_VERSION: u16 = 5;
    /// INVALID-EXCHANGE-TYPE.
    pub const INVALID_EXCHANGE_TYPE: u16 = 7;
    /// INVALID-FLAGS.
    pub const INVALID_FLAGS: u16 = 8;
    /// INVALID-MESSAGE-ID.
    pub const INVALID_MESSAGE_ID: u16 = 9;
    /// INVALID-SPI.
    pub const INVALID_SPI: u16 = 11;
    /// ATTRIBUTES-NOT-SUPPORTED.
    pub const ATTRIBUTES_NOT_SUPPORTED: u16 = 13;
    /// NO-PROPOSAL-CHOSEN.
    pub const NO_PROPOSAL_CHOSEN: u16 = 14;
    /// BAD-PROPOSAL-SYNTAX.
    pub const BAD_PROPOSAL_SYNTAX: u16 = 15;
    /// PAYLOAD-MALFORMED.
    pub const PAYLOAD_MALFORMED: u16 = 16;
    /// INVALID-KEY-INFORMATION.
    pub const INVALID_KEY_INFORMATION: u16 = 17;
    /// INVALID-ID-INFORMATION.
    pub const INVALID_ID_INFORMATION: u16 = 18;
    /// INVALID-HASH-INFORMATION.
    pub const INVALID_HASH_INFORMATION: u16 = 23;
    /// AUTHENTICATION-FAILED.
    pub const AUTHENTICATION_FAILED: u16 = 24;
    /// UNSUPPORTED-EXCHANGE-TYPE.
    pub const UNSUPPORTED_EXCHANGE_TYPE: u16 = 29;
    /// CONNECTED (commit bit answer).
    pub const CONNECTED: u16 = 16384;
    /// RESPONDER-LIFETIME (RFC 2407 §4.6.3.1).
    pub const RESPONDER_LIFETIME: u16 = 24576;
    /// REPLAY-STATUS.
    pub const REPLAY_STATUS: u16 = 24577;
    /// INITIAL-CONTACT.
    pub const INITIAL_CONTACT: u16 = 24578;
    /// DPD R-U-THERE (RFC 3706).
    pub const R_U_THERE: u16 = 36136;
    /// DPD R-U-THERE-ACK (RFC 3706).
    pub const R_U_THERE_ACK: u16 = 36137;
    /// Error types are below 8192.
    pub const fn is_error(t: u16) -> bool {
        t > 0 && t < 8192
    }
    /// Name for logs.
    pub fn name(t: u16) -> &'static str {
        match t {
            1 => "INVALID_PAYLOAD_TYPE",
            2 => "DOI_NOT_SUPPORTED",
            3 => "SITUATION_NOT_SUPPORTED",
            4 => "INVALID_COOKIE",
            5 => "INVALID_MAJOR_VERSION",
            6 => "INVALID_MINOR_VERSION",
            7 => "INVALID_EXCHANGE_TYPE",
            8 => "INVALID_FLAGS",
            9 => "INVALID_MESSAGE_ID",
            10 => "INVALID_PROTOCOL_ID",
            11 => "INVALID_SPI",
            12 => "INVALID_TRANSFORM_ID",
            13 => "ATTRIBUTES_NOT_SUPPORTED",
            14 => "NO_PROPOSAL_CHOSEN",
            15 => "BAD_PROPOSAL_SYNTAX",
            16 => "PAYLOAD_MALFORMED",
            17 => "INVALID_KEY_INFORMATION",
            18 => "INVALID_ID_INFORMATION",
            19 => "INVALID_CERT_ENCODING",
            20 => "INVALID_CERTIFICATE",
            21 => "CERT_TYPE_UNSUPPORTED",
            22 => "INVALID_CERT_AUTHORITY",
            23 => "INVALID_HASH_INFORMATION",
            24 => "AUTHENTICATION_FAILED",
            25 => "INVALID_SIGNATURE",
            26 => "ADDRESS_NOTIFICATION",
            27 => "NOTIFY_SA_LIFETIME",
            28 => "CERTIFICATE_UNAVAILABLE",
            29 => "UNSUPPORTED_EXCHANGE_TYPE",
            30 => "UNEQUAL_PAYLOAD_LENGTHS",
            CONNECTED => "CONNECTED",
            RESPONDER_LIFETIME => "RESPONDER_LIFETIME",
            REPLAY_STATUS => "REPLAY_STATUS",
            INITIAL_CONTACT => "INITIAL_CONTACT",
            R_U_THERE => "DPD_R_U_THERE",
            R_U_THERE_ACK => "DPD_R_U_THERE_ACK",
            _ => "UNKNOWN",
        }
    }
}

/// Protocol IDs (RFC 2407 §4.4.1).
pub mod proto {
    /// ISAKMP.
    pub const ISAKMP: u8 = 1;
    /// AH.
    pub const AH: u8 = 2;
    /// ESP.
    pub const ESP: u8 = 3;
    /// IPComp.
    pub const IPCOMP: u8 = 4;
}

/// Identification types (RFC 2407 §4.6.2.1).
pub mod id_type {
    /// ID_IPV4_ADDR.
    pub const IPV4_ADDR: u8 = 1;
    /// ID_FQDN.
    pub const FQDN: u8 = 2;
    /// ID_USER_FQDN.
    pub const USER_FQDN: u8 = 3;
    /// ID_IPV4_ADDR_SUBNET.
    pub const IPV4_ADDR_SUBNET: u8 = 4;
    /// ID_IPV6_ADDR.
    pub const IPV6_ADDR: u8 = 5;
    /// ID_IPV6_ADDR_SUBNET.
    pub const IPV6_ADDR_SUBNET: u8 = 6;
    /// ID_IPV4_ADDR_RANGE.
    pub const IPV4_ADDR_RANGE: u8 = 7;
    /// ID_IPV6_ADDR_RANGE.
    pub const IPV6_ADDR_RANGE: u8 = 8;
    /// ID_DER_ASN1_DN.
    pub const DER_ASN1_DN: u8 = 9;
    /// ID_DER_ASN1_GN.
    pub const DER_ASN1_GN: u8 = 10;
    /// ID_KEY_ID.
    pub const KEY_ID: u8 = 11;
}

/// Phase 1 (ISAKMP SA) attribute types and values (RFC 2409 Appendix A).
pub mod p1attr {
    /// Encryption algorithm.
    pub const ENCRYPTION: u16 = 1;
    /// Hash algorithm.
    pub const HASH: u16 = 2;
    /// Authentication method.
    pub const AUTH_METHOD: u16 = 3;
    /// Group description.
    pub const GROUP: u16 = 4;
    /// Group type (custom groups; not supported).
    pub const GROUP_TYPE: u16 = 5;
    /// Life type.
    pub const LIFE_TYPE: u16 = 11;
    /// Life duration.
    pub const LIFE_DURATION: u16 = 12;
    /// PRF (no values defined; not supported).
    pub const PRF: u16 = 13;
    /// Key length (bits).
    pub const KEY_LENGTH: u16 = 14;
    /// Encryption: DES-CBC.
    pub const ENC_DES: u16 = 1;
    /// Encryption: 3DES-CBC.
    pub const ENC_3DES: u16 = 5;
    /// Encryption: AES-CBC (RFC 3602).
    pub const ENC_AES: u16 = 7;
    /// Hash: MD5.
    pub const HASH_MD5: u16 = 1;
    /// Hash: SHA-1.
    pub const HASH_SHA1: u16 = 2;
    /// Hash: SHA2-256 (RFC 4878).
    pub const HASH_SHA256: u16 = 4;
    /// Hash: SHA2-384.
    pub const HASH_SHA384: u16 = 5;
    /// Hash: SHA2-512.
    pub const HASH_SHA512: u16 = 6;
    /// Auth: pre-shared key.
    pub const AUTH_PSK: u16 = 1;
    /// Auth: DSS signatures.
    pub const AUTH_DSS: u16 = 2;
    /// Auth: RSA signatures.
    pub const AUTH_RSA: u16 = 3;
    /// Auth: ECDSA with SHA-256 on P-256 (RFC 4754).
    pub const AUTH_ECDSA_256: u16 = 9;
    /// Auth: ECDSA with SHA-384 on P-384.
    pub const AUTH_ECDSA_384: u16 = 10;
    /// Auth: ECDSA with SHA-512 on P-521.
    pub const AUTH_ECDSA_521: u16 = 11;
    /// Life type: seconds.
    pub const LIFE_SECONDS: u16 = 1;
    /// Life type: kilobytes.
    pub const LIFE_KILOBYTES: u16 = 2;
}

/// Phase 2 (IPsec DOI) SA attribute types and values (RFC 2407 §4.5, RFC 3947).
pub mod p2attr {
    /// SA life type.
    pub const LIFE_TYPE: u16 = 1;
    /// SA life duration.
    pub const LIFE_DURATION: u16 = 2;
    /// Group description (PFS).
    pub const GROUP: u16 = 3;
    /// Encapsulation mode.
    pub const ENCAP_MODE: u16 = 4;
    /// Authentication algorithm.
    pub const AUTH_ALG: u16 = 5;
    /// Key length (bits).
    pub const KEY_LENGTH: u16 = 6;
    /// Key rounds.
    pub const KEY_ROUNDS: u16 = 7;
    /// Extended (64-bit) sequence number (RFC 4304).
    pub const ESN: u16 = 11;
    /// Encap: tunnel.
    pub const MODE_TUNNEL: u16 = 1;
    /// Encap: transport.
    pub const MODE_TRANSPORT: u16 = 2;
    /// Encap: UDP-encapsulated tunnel (RFC 3947).
    pub const MODE_UDP_TUNNEL: u16 = 3;
    /// Encap: UDP-encapsulated transport (RFC 3947).
    pub const MODE_UDP_TRANSPORT: u16 = 4;
    /// Encap: UDP-encapsulated tunnel of the NAT-T drafts.
    pub const MODE_UDP_TUNNEL_DRAFT: u16 = 61443;
    /// Encap: UDP-encapsulated transport of the NAT-T drafts.
    pub const MODE_UDP_TRANSPORT_DRAFT: u16 = 61444;
    /// Auth: HMAC-MD5.
    pub const AUTH_HMAC_MD5: u16 = 1;
    /// Auth: HMAC-SHA-1.
    pub const AUTH_HMAC_SHA1: u16 = 2;
    /// Auth: HMAC-SHA2-256 (128-bit ICV, RFC 4868).
    pub const AUTH_HMAC_SHA256: u16 = 5;
    /// Auth: HMAC-SHA2-384.
    pub const AUTH_HMAC_SHA384: u16 = 6;
    /// Auth: HMAC-SHA2-512.
    pub const AUTH_HMAC_SHA512: u16 = 7;
}

/// ESP transform IDs in the IPsec DOI (RFC 2407 §4.4.4, RFC 4106).
pub mod esp_id {
    /// ESP_3DES.
    pub const DES3: u8 = 3;
    /// ESP_NULL.
    pub const NULL: u8 = 11;
    /// ESP_AES (CBC).
    pub const AES_CBC: u8 = 12;
    /// ESP_AES_GCM_16.
    pub const AES_GCM_16: u8 = 20;
}

/// KEY_IKE: the only ISAKMP transform ID.
pub const KEY_IKE: u8 = 1;

/// Vendor IDs we send or recognise.
pub mod vid {
    /// Dead Peer Detection (RFC 3706).
    pub const DPD: [u8; 16] = [
        0xaf, 0xca, 0xd7, 0x13, 0x68, 0xa1, 0xf1, 0xc9, 0x6b, 0x86, 0x96, 0xfc, 0x77, 0x57, 0x01,
        0x00,
    ];
    /// NAT-T, RFC 3947 (MD5 of "RFC 3947").
    pub const NATT_RFC3947: [u8; 16] = [
        0x4a, 0x13, 0x1c, 0x81, 0x07, 0x03, 0x58, 0x45, 0x5c, 0x57, 0x28, 0xf2, 0x0e, 0x95, 0x45,
        0x2f,
    ];
    /// NAT-T draft-ietf-ipsec-nat-t-ike-02.
    pub const NATT_DRAFT_02: [u8; 16] = [
        0xcd, 0x60, 0x46, 0x43, 0x35, 0xdf, 0x21, 0xf8, 0x7c, 0xfd, 0xb2, 0xfc, 0x68, 0xb6, 0xa4,
        0x48,
    ];
    /// NAT-T draft-ietf-ipsec-nat-t-ike-02 with a newline (as strongSwan sends it).
    pub const NATT_DRAFT_02N: [u8; 16] = [
        0x90, 0xcb, 0x80, 0x91, 0x3e, 0xbb, 0x69, 0x6e, 0x08, 0x63, 0x81, 0xb5, 0xec, 0x42, 0x7b,
        0x1f,
    ];
    /// NAT-T draft-ietf-ipsec-nat-t-ike-03.
    pub const NATT_DRAFT_03: [u8; 16] = [
        0x7d, 0x94, 0x19, 0xa6, 0x53, 0x10, 0xca, 0x6f, 0x2c, 0x17, 0x9d, 0x92, 0x15, 0x52, 0x9d,
        0x56,
    ];
    /// Cisco/strongSwan IKE fragmentation ("FRAGMENTATION" MD5 prefix).
    pub const FRAGMENTATION: [u8; 16] = [
        0x40, 0x48, 0xb7, 0xd5, 0x6e, 0xbc, 0xe8, 0x85, 0x25, 0xe7, 0xde, 0x7f, 0x00, 0xd6, 0xc2,
        0xd3,
    ];
    /// XAUTH.
    pub const XAUTH: [u8; 8] = [0x09, 0x00, 0x26, 0x89, 0xdf, 0xd6, 0xb7, 0x12];

    /// What a vendor ID announces.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Known {
        /// RFC 3706.
        Dpd,
        /// RFC 3947.
        NattRfc,
        /// A NAT-T draft (02, 02\n or 03).
        NattDraft,
        /// IKE fragmentation.
        Fragmentation,
        /// XAUTH.
        Xauth,
    }

    /// Recognises a vendor ID.
    pub fn classify(v: &[u8]) -> Option<Known> {
        if v == DPD {
            Some(Known::Dpd)
        } else if v == NATT_RFC3947 {
            Some(Known::NattRfc)
        } else if v == NATT_DRAFT_02 || v == NATT_DRAFT_02N || v == NATT_DRAFT_03 {
            Some(Known::NattDraft)
        } else if v.len() >= 16 && v[..16] == FRAGMENTATION {
            Some(Known::Fragmentation)
        } else if v == XAUTH {
            Some(Known::Xauth)
        } else {
            None
        }
    }
}
