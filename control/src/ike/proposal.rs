//! IKEv2 negotiation of proposals (RFC 7296 §2.7, §3.3): choosing one
//! transform of each type from what the peer offers.
//!
//! The algorithms, proposal strings (strongSwan and router-CLI forms) and
//! transforms are espresso-core's algorithm table (`espresso_core::alg`);
//! they are re-exported here so that `ike::proposal::{DhGroup, IkeSuite,
//! parse_esp_proposals, ...}` keep working.

pub use espresso_core::alg::ike::{DhGroup, IkeEncr, IkeInteg, PrfAlg};
pub use espresso_core::alg::proposal::{
    default_esp_proposals, default_ike_proposals, parse_esp_proposals, parse_ike_proposals, ttype,
    xform_name, xforms_to_string, ChildSuite, EspProposal, IkeProposal, IkeSuite, ProposalError,
    Xform,
};

use super::wire::TransformView;

impl From<TransformView> for Xform {
    fn from(t: TransformView) -> Self {
        Xform::new(t.ttype, t.id, t.key_len)
    }
}

/// Chooses one transform of each type from `ours` that `theirs` also offers
/// (ours in preference order). Types absent on a side count as "NONE" (ID 0)
/// for INTEG, DH and ESN. `skip_dh` ignores DH entirely (IKE_AUTH child SAs).
pub fn match_xforms(ours: &[Xform], theirs: &[Xform], skip_dh: bool) -> Option<Vec<Xform>> {
    let mut out = Vec::new();
    for t in [ttype::ENCR, ttype::PRF, ttype::INTEG, ttype::DH, ttype::ESN] {
        if skip_dh && t == ttype::DH {
            continue;
        }
        let none = [Xform::new(t, 0, None)];
        let o: Vec<Xform> = ours.iter().copied().filter(|x| x.ttype == t).collect();
        let th: Vec<Xform> = theirs.iter().copied().filter(|x| x.ttype == t).collect();
        if o.is_empty() && th.is_empty() {
            continue;
        }
        let noneable = matches!(t, ttype::INTEG | ttype::DH | ttype::ESN);
        let o = if o.is_empty() && noneable {
            none.to_vec()
        } else {
            o
        };
        let th = if th.is_empty() && noneable {
            none.to_vec()
        } else {
            th
        };
        let pick = o.iter().find(|x| th.contains(x))?;
        if pick.id != 0 || t == ttype::ESN {
            out.push(*pick);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use espresso_core::alg::EncrAlg;

    /// The proposal of issue 13 that used to be refused.
    #[test]
    fn chacha20poly1305_and_strongswan_groups() {
        let p = parse_ike_proposals("chacha20poly1305-prfsha512-curve25519").unwrap();
        assert_eq!(p[0].encr, vec![IkeEncr::ChaCha20Poly1305]);
        assert!(p[0].integ.is_empty());
        assert_eq!(p[0].to_string(), "chacha20poly1305-prfsha512-curve25519");
        let x = p[0].xforms();
        assert_eq!(
            x[0],
            Xform::new(ttype::ENCR, 28, None),
            "no key length attribute"
        );
        for (s, g) in [
            ("modp3072", 15),
            ("modp4096", 16),
            ("modp6144", 17),
            ("modp8192", 18),
            ("ecp521", 21),
        ] {
            let p = parse_ike_proposals(&format!("aes256-sha384-{s}")).unwrap();
            assert_eq!(p[0].dh[0].number(), g);
            assert_eq!(p[0].to_string(), format!("aes256-sha384-prfsha384-{s}"));
        }
        assert!(parse_ike_proposals("aes256-sha256-curve448").is_err());
    }

    #[test]
    fn matching_prefers_ours_and_treats_absent_as_none() {
        let ours = parse_esp_proposals("aes256gcm16-aes128gcm16")
            .unwrap()
            .remove(0)
            .xforms(true);
        let theirs = parse_esp_proposals("aes128gcm16-aes256gcm16-esn-noesn")
            .unwrap()
            .remove(0)
            .xforms(true);
        let m = match_xforms(&ours, &theirs, false).unwrap();
        let s = ChildSuite::from_xforms(&m).unwrap();
        assert_eq!(s.encr, EncrAlg::AesGcm256);
        assert!(!s.esn);
        // PFS on their side, none on ours: no match unless DH is skipped
        let theirs = parse_esp_proposals("aes128gcm16-ecp256")
            .unwrap()
            .remove(0)
            .xforms(true);
        assert!(match_xforms(&ours, &theirs, false).is_none());
        assert!(match_xforms(&ours, &theirs, true).is_some());
    }
}
