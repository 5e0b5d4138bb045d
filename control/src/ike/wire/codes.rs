//! The numbers of the IKEv2 format (RFC 7296 §3, IANA): lengths, exchange
//! types, flags, payload types, notify types, protocol ids, TS types.

/// Fixed IKE header length.
pub const HEADER_LEN: usize = 28;
/// Generic payload header length.
pub const GENERIC_LEN: usize = 4;
/// Largest number of payloads accepted in one message (a hostile message with
/// thousands of empty payloads costs us no more than this).
pub const MAX_PAYLOADS: usize = 64;

/// Exchange types (RFC 7296 §3.1).
pub mod exchange {
    /// IKE_SA_INIT.
    pub const IKE_SA_INIT: u8 = 34;
    /// IKE_AUTH.
    pub const IKE_AUTH: u8 = 35;
    /// CREATE_CHILD_SA.
    pub const CREATE_CHILD_SA: u8 = 36;
    /// INFORMATIONAL.
    pub const INFORMATIONAL: u8 = 37;
    /// Name for logs.
    pub fn name(t: u8) -> &'static str {
        match t {
            IKE_SA_INIT => "IKE_SA_INIT",
            IKE_AUTH => "IKE_AUTH",
            CREATE_CHILD_SA => "CREATE_CHILD_SA",
            INFORMATIONAL => "INFORMATIONAL",
            _ => "UNKNOWN_EXCHANGE",
        }
    }
}

/// Header flags (RFC 7296 §3.1).
pub mod flags {
    /// Sent by the original initiator of the IKE SA.
    pub const INITIATOR: u8 = 0x08;
    /// Higher version possible.
    pub const VERSION: u8 = 0x10;
    /// This is a response.
    pub const RESPONSE: u8 = 0x20;
}

/// Payload types (RFC 7296 §3.2).
pub mod payload {
    /// No next payload.
    pub const NONE: u8 = 0;
    /// Security Association.
    pub const SA: u8 = 33;
    /// Key Exchange.
    pub const KE: u8 = 34;
    /// Identification - Initiator.
    pub const IDI: u8 = 35;
    /// Identification - Responder.
    pub const IDR: u8 = 36;
    /// Certificate.
    pub const CERT: u8 = 37;
    /// Certificate Request.
    pub const CERTREQ: u8 = 38;
    /// Authentication.
    pub const AUTH: u8 = 39;
    /// Nonce.
    pub const NONCE: u8 = 40;
    /// Notify.
    pub const NOTIFY: u8 = 41;
    /// Delete.
    pub const DELETE: u8 = 42;
    /// Vendor ID.
    pub const VENDOR: u8 = 43;
    /// Traffic Selector - Initiator.
    pub const TSI: u8 = 44;
    /// Traffic Selector - Responder.
    pub const TSR: u8 = 45;
    /// Encrypted and Authenticated.
    pub const SK: u8 = 46;
    /// Configuration.
    pub const CP: u8 = 47;
    /// EAP.
    pub const EAP: u8 = 48;
    /// Encrypted and Authenticated Fragment (RFC 7383).
    pub const SKF: u8 = 53;
}

/// Notify message types (RFC 7296 §3.10.1 and later RFCs).
pub mod notify {
    /// UNSUPPORTED_CRITICAL_PAYLOAD.
    pub const UNSUPPORTED_CRITICAL_PAYLOAD: u16 = 1;
    /// INVALID_IKE_SPI.
    pub const INVALID_IKE_SPI: u16 = 4;
    /// INVALID_MAJOR_VERSION.
    pub const INVALID_MAJOR_VERSION: u16 = 5;
    /// INVALID_SYNTAX.
    pub const INVALID_SYNTAX: u16 = 7;
    /// INVALID_MESSAGE_ID.
    pub const INVALID_MESSAGE_ID: u16 = 9;
    /// INVALID_SPI.
    pub const INVALID_SPI: u16 = 11;
    /// NO_PROPOSAL_CHOSEN.
    pub const NO_PROPOSAL_CHOSEN: u16 = 14;
    /// INVALID_KE_PAYLOAD.
    pub const INVALID_KE_PAYLOAD: u16 = 17;
    /// AUTHENTICATION_FAILED.
    pub const AUTHENTICATION_FAILED: u16 = 24;
    /// SINGLE_PAIR_REQUIRED.
    pub const SINGLE_PAIR_REQUIRED: u16 = 34;
    /// NO_ADDITIONAL_SAS.
    pub const NO_ADDITIONAL_SAS: u16 = 35;
    /// INTERNAL_ADDRESS_FAILURE.
    pub const INTERNAL_ADDRESS_FAILURE: u16 = 36;
    /// FAILED_CP_REQUIRED.
    pub const FAILED_CP_REQUIRED: u16 = 37;
    /// TS_UNACCEPTABLE.
    pub const TS_UNACCEPTABLE: u16 = 38;
    /// INVALID_SELECTORS.
    pub const INVALID_SELECTORS: u16 = 39;
    /// UNACCEPTABLE_ADDRESSES (RFC 4555).
    pub const UNACCEPTABLE_ADDRESSES: u16 = 40;
    /// UNEXPECTED_NAT_DETECTED (RFC 4555).
    pub const UNEXPECTED_NAT_DETECTED: u16 = 41;
    /// TEMPORARY_FAILURE.
    pub const TEMPORARY_FAILURE: u16 = 43;
    /// CHILD_SA_NOT_FOUND.
    pub const CHILD_SA_NOT_FOUND: u16 = 44;
    /// INITIAL_CONTACT.
    pub const INITIAL_CONTACT: u16 = 16384;
    /// SET_WINDOW_SIZE.
    pub const SET_WINDOW_SIZE: u16 = 16385;
    /// ADDITIONAL_TS_POSSIBLE.
    pub const ADDITIONAL_TS_POSSIBLE: u16 = 16386;
    /// IPCOMP_SUPPORTED.
    pub const IPCOMP_SUPPORTED: u16 = 16387;
    /// NAT_DETECTION_SOURCE_IP.
    pub const NAT_DETECTION_SOURCE_IP: u16 = 16388;
    /// NAT_DETECTION_DESTINATION_IP.
    pub const NAT_DETECTION_DESTINATION_IP: u16 = 16389;
    /// COOKIE.
    pub const COOKIE: u16 = 16390;
    /// USE_TRANSPORT_MODE.
    pub const USE_TRANSPORT_MODE: u16 = 16391;
    /// REKEY_SA.
    pub const REKEY_SA: u16 = 16393;
    /// ESP_TFC_PADDING_NOT_SUPPORTED.
    pub const ESP_TFC_PADDING_NOT_SUPPORTED: u16 = 16394;
    /// NON_FIRST_FRAGMENTS_ALSO.
    pub const NON_FIRST_FRAGMENTS_ALSO: u16 = 16395;
    /// MOBIKE_SUPPORTED (RFC 4555).
    pub const MOBIKE_SUPPORTED: u16 = 16396;
    /// ADDITIONAL_IP4_ADDRESS (RFC 4555).
    pub const ADDITIONAL_IP4_ADDRESS: u16 = 16397;
    /// ADDITIONAL_IP6_ADDRESS (RFC 4555).
    pub const ADDITIONAL_IP6_ADDRESS: u16 = 16398;
    /// NO_ADDITIONAL_ADDRESSES (RFC 4555).
    pub const NO_ADDITIONAL_ADDRESSES: u16 = 16399;
    /// UPDATE_SA_ADDRESSES (RFC 4555).
    pub const UPDATE_SA_ADDRESSES: u16 = 16400;
    /// COOKIE2 (RFC 4555).
    pub const COOKIE2: u16 = 16401;
    /// NO_NATS_ALLOWED (RFC 4555).
    pub const NO_NATS_ALLOWED: u16 = 16402;
    /// MULTIPLE_AUTH_SUPPORTED (RFC 4739).
    pub const MULTIPLE_AUTH_SUPPORTED: u16 = 16404;
    /// ANOTHER_AUTH_FOLLOWS (RFC 4739).
    pub const ANOTHER_AUTH_FOLLOWS: u16 = 16405;
    /// REDIRECT_SUPPORTED (RFC 5685).
    pub const REDIRECT_SUPPORTED: u16 = 16406;
    /// EAP_ONLY_AUTHENTICATION (RFC 5998).
    pub const EAP_ONLY_AUTHENTICATION: u16 = 16417;
    /// IKEV2_MESSAGE_ID_SYNC_SUPPORTED (RFC 6311).
    pub const IKEV2_MESSAGE_ID_SYNC_SUPPORTED: u16 = 16420;
    /// IKEV2_FRAGMENTATION_SUPPORTED (RFC 7383).
    pub const IKEV2_FRAGMENTATION_SUPPORTED: u16 = 16430;
    /// SIGNATURE_HASH_ALGORITHMS (RFC 7427).
    pub const SIGNATURE_HASH_ALGORITHMS: u16 = 16431;

    /// True for error types (below 16384): they make the exchange fail.
    pub const fn is_error(t: u16) -> bool {
        t < 16384
    }

    /// Name for logs and events.
    pub fn name(t: u16) -> &'static str {
        match t {
            UNSUPPORTED_CRITICAL_PAYLOAD => "UNSUPPORTED_CRITICAL_PAYLOAD",
            INVALID_IKE_SPI => "INVALID_IKE_SPI",
            INVALID_MAJOR_VERSION => "INVALID_MAJOR_VERSION",
            INVALID_SYNTAX => "INVALID_SYNTAX",
            INVALID_MESSAGE_ID => "INVALID_MESSAGE_ID",
            INVALID_SPI => "INVALID_SPI",
            NO_PROPOSAL_CHOSEN => "NO_PROPOSAL_CHOSEN",
            INVALID_KE_PAYLOAD => "INVALID_KE_PAYLOAD",
            AUTHENTICATION_FAILED => "AUTHENTICATION_FAILED",
            SINGLE_PAIR_REQUIRED => "SINGLE_PAIR_REQUIRED",
            NO_ADDITIONAL_SAS => "NO_ADDITIONAL_SAS",
            INTERNAL_ADDRESS_FAILURE => "INTERNAL_ADDRESS_FAILURE",
            FAILED_CP_REQUIRED => "FAILED_CP_REQUIRED",
            TS_UNACCEPTABLE => "TS_UNACCEPTABLE",
            INVALID_SELECTORS => "INVALID_SELECTORS",
            UNACCEPTABLE_ADDRESSES => "UNACCEPTABLE_ADDRESSES",
            UNEXPECTED_NAT_DETECTED => "UNEXPECTED_NAT_DETECTED",
            TEMPORARY_FAILURE => "TEMPORARY_FAILURE",
            CHILD_SA_NOT_FOUND => "CHILD_SA_NOT_FOUND",
            INITIAL_CONTACT => "INITIAL_CONTACT",
            SET_WINDOW_SIZE => "SET_WINDOW_SIZE",
            ADDITIONAL_TS_POSSIBLE => "ADDITIONAL_TS_POSSIBLE",
            IPCOMP_SUPPORTED => "IPCOMP_SUPPORTED",
            NAT_DETECTION_SOURCE_IP => "NAT_DETECTION_SOURCE_IP",
            NAT_DETECTION_DESTINATION_IP => "NAT_DETECTION_DESTINATION_IP",
            COOKIE => "COOKIE",
            USE_TRANSPORT_MODE => "USE_TRANSPORT_MODE",
            REKEY_SA => "REKEY_SA",
            ESP_TFC_PADDING_NOT_SUPPORTED => "ESP_TFC_PADDING_NOT_SUPPORTED",
            NON_FIRST_FRAGMENTS_ALSO => "NON_FIRST_FRAGMENTS_ALSO",
            MOBIKE_SUPPORTED => "MOBIKE_SUPPORTED",
            ADDITIONAL_IP4_ADDRESS => "ADDITIONAL_IP4_ADDRESS",
            ADDITIONAL_IP6_ADDRESS => "ADDITIONAL_IP6_ADDRESS",
            NO_ADDITIONAL_ADDRESSES => "NO_ADDITIONAL_ADDRESSES",
            UPDATE_SA_ADDRESSES => "UPDATE_SA_ADDRESSES",
            COOKIE2 => "COOKIE2",
            NO_NATS_ALLOWED => "NO_NATS_ALLOWED",
            MULTIPLE_AUTH_SUPPORTED => "MULTIPLE_AUTH_SUPPORTED",
            ANOTHER_AUTH_FOLLOWS => "ANOTHER_AUTH_FOLLOWS",
            REDIRECT_SUPPORTED => "REDIRECT_SUPPORTED",
            EAP_ONLY_AUTHENTICATION => "EAP_ONLY_AUTHENTICATION",
            IKEV2_MESSAGE_ID_SYNC_SUPPORTED => "IKEV2_MESSAGE_ID_SYNC_SUPPORTED",
            IKEV2_FRAGMENTATION_SUPPORTED => "IKEV2_FRAGMENTATION_SUPPORTED",
            SIGNATURE_HASH_ALGORITHMS => "SIGNATURE_HASH_ALGORITHMS",
            t if is_error(t) => "UNKNOWN_ERROR",
            _ => "UNKNOWN_STATUS",
        }
    }
}

/// Security protocol identifiers (RFC 7296 §3.3.1).
pub mod proto {
    /// IKE.
    pub const IKE: u8 = 1;
    /// AH.
    pub const AH: u8 = 2;
    /// ESP.
    pub const ESP: u8 = 3;
}

/// Identification types (the configuration's `Identity` encodes itself with them).
pub use espresso_core::config::ike::id_type;

/// Authentication method: Shared Key Message Integrity Code.
pub const AUTH_PSK: u8 = 2;

/// Traffic selector types.
pub mod ts_type {
    /// TS_IPV4_ADDR_RANGE.
    pub const IPV4: u8 = 7;
    /// TS_IPV6_ADDR_RANGE.
    pub const IPV6: u8 = 8;
}
