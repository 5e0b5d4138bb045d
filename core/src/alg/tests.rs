use super::ike::{DH_TABLE, IKE_ENCR_TABLE, IKE_INTEG_TABLE, PRF_TABLE};
use super::proposal::{default_esp_proposals, default_ike_proposals, ttype};
use super::*;

fn ok(n: &str) -> Suite {
    Suite::parse(n).unwrap_or_else(|e| panic!("{n}: {e}"))
}

#[test]
fn rows_are_in_discriminant_order() {
    for (i, r) in ENCR_TABLE.iter().enumerate() {
        assert_eq!(r.alg as usize, i, "{}", r.name);
        assert_eq!(EncrAlg::ALL[i], r.alg);
    }
    for (i, r) in INTEG_TABLE.iter().enumerate() {
        assert_eq!(r.alg as usize, i, "{}", r.name);
        assert_eq!(IntegAlg::ALL[i], r.alg);
    }
    for (i, r) in IKE_ENCR_TABLE.iter().enumerate() {
        assert_eq!(r.alg as usize, i, "{}", r.keyword);
    }
    for (i, r) in IKE_INTEG_TABLE.iter().enumerate() {
        assert_eq!(r.alg as usize, i);
    }
    for (i, r) in PRF_TABLE.iter().enumerate() {
        assert_eq!(r.alg as usize, i, "{}", r.keyword);
    }
    for (i, r) in DH_TABLE.iter().enumerate() {
        assert_eq!(r.group as usize, i, "{}", r.keyword);
    }
}

#[test]
fn every_spelling_names_one_algorithm() {
    let mut seen = std::collections::HashMap::new();
    for r in &ENCR_TABLE {
        assert!(r.aliases.contains(&compact(r.name).as_str()) || r.alg == EncrAlg::Null);
        for a in r.aliases {
            assert_eq!(compact(a), *a, "aliases are stored compact");
            assert_eq!(seen.insert(*a, r.name), None, "{a} twice");
            assert_eq!(EncrAlg::from_name(a), Some(r.alg));
        }
        assert_eq!(EncrAlg::from_stable_name(r.name), Some(r.alg));
        assert_eq!(EncrAlg::from_xform(r.alg.xform()), Some(r.alg));
    }
    for r in &INTEG_TABLE {
        for a in r.aliases {
            assert_eq!(compact(a), *a);
            assert_eq!(seen.insert(*a, r.name), None, "{a} twice");
            assert_eq!(IntegAlg::from_name(a), Some(r.alg));
        }
        assert_eq!(IntegAlg::from_stable_name(r.name), Some(r.alg));
        assert_eq!(IntegAlg::from_iana(r.iana_id), Some(r.alg));
    }
    for r in &PRF_TABLE {
        for a in r.aliases {
            assert_eq!(seen.insert(*a, r.keyword), None, "{a} twice");
        }
    }
    for r in &DH_TABLE {
        for a in r.aliases {
            assert_eq!(seen.insert(*a, r.keyword), None, "{a} twice");
        }
    }
}

#[test]
fn iana_ids_are_rfc_values() {
    // RFC 7296 §3.3.2, RFC 4106, RFC 7634, RFC 4868.
    let encr: Vec<(u16, Option<u16>)> = EncrAlg::ALL
        .iter()
        .map(|e| (e.row().iana_id, e.row().key_bits))
        .collect();
    assert_eq!(
        encr,
        vec![
            (11, None),
            (12, Some(128)),
            (12, Some(256)),
            (20, Some(128)),
            (20, Some(256)),
            (28, None),
            (3, None)
        ]
    );
    let integ: Vec<u16> = IntegAlg::ALL.iter().map(|i| i.row().iana_id).collect();
    assert_eq!(integ, vec![0, 2, 12, 13, 14, 1]);
    let prf: Vec<u16> = PRF_TABLE.iter().map(|p| p.iana_id).collect();
    assert_eq!(prf, vec![2, 5, 6, 7]);
    let dh: Vec<u16> = DH_TABLE.iter().map(|d| d.number).collect();
    assert_eq!(dh, vec![2, 14, 19, 20, 31, 5, 15, 16, 21, 17, 18]);
    let ike_encr: Vec<(u16, Option<u16>)> = IKE_ENCR_TABLE
        .iter()
        .map(|e| (e.iana_id, e.key_bits))
        .collect();
    assert_eq!(
        ike_encr,
        vec![
            (12, Some(128)),
            (12, Some(192)),
            (12, Some(256)),
            (20, Some(128)),
            (20, Some(256)),
            (28, None)
        ]
    );
}

#[test]
fn strongswan_freeswan_and_own_names() {
    let gcm128 = Suite {
        encr: EncrAlg::AesGcm128,
        integ: IntegAlg::None,
    };
    for n in [
        "aes128gcm16",
        "aes128gcm128",
        "AES-GCM-128",
        "aes-128-gcm",
        "aes_gcm_128",
    ] {
        assert_eq!(ok(n), gcm128, "{n}");
    }
    assert_eq!(ok("aes256gcm16").encr, EncrAlg::AesGcm256);
    assert_eq!(ok("chacha20-poly1305").encr, EncrAlg::ChaCha20Poly1305);
    let cbc = ok("aes256-sha256");
    assert_eq!(
        (cbc.encr, cbc.integ),
        (EncrAlg::AesCbc256, IntegAlg::HmacSha256_128)
    );
    assert_eq!(ok("aes128-sha2_256").integ, IntegAlg::HmacSha256_128);
    assert_eq!(
        ok("aes-cbc-128/hmac-sha256-128").integ,
        IntegAlg::HmacSha256_128
    );
    assert_eq!(ok("aes128-sha1").integ, IntegAlg::HmacSha1_96);
    assert_eq!(ok("aes-sha1").encr, EncrAlg::AesCbc128);
    assert_eq!(ok("aes256-sha512").integ, IntegAlg::HmacSha512_256);
    assert_eq!(ok("aes256-sha384").integ, IntegAlg::HmacSha384_192);
    let fs = ok("3des-md5-96");
    assert_eq!(
        (fs.encr, fs.integ),
        (EncrAlg::TripleDesCbc, IntegAlg::HmacMd5_96)
    );
    assert_eq!(ok("3des-sha1").integ, IntegAlg::HmacSha1_96);
    assert_eq!(ok("null-sha256").encr, EncrAlg::Null);
    // The router-CLI words, as in an ESP proposal, name a suite too.
    assert_eq!(ok("AES SHA").integ, IntegAlg::HmacSha1_96);
    assert_eq!(ok("3DES MD5-128").integ, IntegAlg::HmacMd5_96);
}

#[test]
fn suite_errors_say_what_is_wrong() {
    let e = |n: &str| Suite::parse(n).unwrap_err();
    assert!(e("aes128").contains("integrity"));
    assert!(e("aes128gcm16-sha256").contains("combined-mode"));
    assert!(e("aes128gcm8").contains("8-byte ICV"));
    assert!(e("aes128gcm12").contains("12-byte ICV"));
    assert!(e("aes192-sha1").contains("AES-192"));
    assert!(e("aes128-sha256-modp2048").contains("Diffie-Hellman"));
    assert!(e("blowfish-md5").contains("unknown encryption"));
    assert!(e("aes128-whirlpool").contains("unknown integrity algorithm \"whirlpool\""));
    assert!(Suite::parse("").is_err());
}

#[test]
fn canonical_names() {
    assert_eq!(ok("aes128gcm16").to_string(), "aes-gcm-128");
    assert_eq!(ok("aes256-sha256").name(), "aes-cbc-256/hmac-sha256-128");
}

/// Every spelling either parser accepted before the table existed is
/// still accepted, with the same meaning (no configuration stops loading).
#[test]
fn union_of_former_spellings() {
    // config/suite.rs (manual tunnels): every encryption prefix with every
    // integrity word.
    let former_encr = [
        ("aes128gcm16", EncrAlg::AesGcm128),
        ("aes128gcm128", EncrAlg::AesGcm128),
        ("aesgcm16128", EncrAlg::AesGcm128),
        ("aesgcm128", EncrAlg::AesGcm128),
        ("aes128gcm", EncrAlg::AesGcm128),
        ("aes256gcm16", EncrAlg::AesGcm256),
        ("aes256gcm128", EncrAlg::AesGcm256),
        ("aesgcm16256", EncrAlg::AesGcm256),
        ("aesgcm256", EncrAlg::AesGcm256),
        ("aes256gcm", EncrAlg::AesGcm256),
        ("chacha20poly1305", EncrAlg::ChaCha20Poly1305),
        ("aes128cbc", EncrAlg::AesCbc128),
        ("aescbc128", EncrAlg::AesCbc128),
        ("aes128", EncrAlg::AesCbc128),
        ("aes256cbc", EncrAlg::AesCbc256),
        ("aescbc256", EncrAlg::AesCbc256),
        ("aes256", EncrAlg::AesCbc256),
        ("aes", EncrAlg::AesCbc128),
        ("3descbc", EncrAlg::TripleDesCbc),
        ("des3cbc", EncrAlg::TripleDesCbc),
        ("3des", EncrAlg::TripleDesCbc),
        ("null", EncrAlg::Null),
    ];
    let former_integ = [
        ("hmacsha256128", IntegAlg::HmacSha256_128),
        ("sha2256128", IntegAlg::HmacSha256_128),
        ("sha256128", IntegAlg::HmacSha256_128),
        ("hmacsha256", IntegAlg::HmacSha256_128),
        ("sha2256", IntegAlg::HmacSha256_128),
        ("sha256", IntegAlg::HmacSha256_128),
        ("hmacsha384192", IntegAlg::HmacSha384_192),
        ("sha2384192", IntegAlg::HmacSha384_192),
        ("sha384192", IntegAlg::HmacSha384_192),
        ("hmacsha384", IntegAlg::HmacSha384_192),
        ("sha2384", IntegAlg::HmacSha384_192),
        ("sha384", IntegAlg::HmacSha384_192),
        ("hmacsha512256", IntegAlg::HmacSha512_256),
        ("sha2512256", IntegAlg::HmacSha512_256),
        ("sha512256", IntegAlg::HmacSha512_256),
        ("hmacsha512", IntegAlg::HmacSha512_256),
        ("sha2512", IntegAlg::HmacSha512_256),
        ("sha512", IntegAlg::HmacSha512_256),
        ("hmacsha196", IntegAlg::HmacSha1_96),
        ("hmacsha1", IntegAlg::HmacSha1_96),
        ("sha196", IntegAlg::HmacSha1_96),
        ("sha1", IntegAlg::HmacSha1_96),
        ("sha", IntegAlg::HmacSha1_96),
        ("hmacmd596", IntegAlg::HmacMd5_96),
        ("hmacmd5", IntegAlg::HmacMd5_96),
        ("md596", IntegAlg::HmacMd5_96),
        ("md5", IntegAlg::HmacMd5_96),
    ];
    for (e, ea) in former_encr {
        if ea.is_aead() {
            assert_eq!(ok(e).encr, ea, "{e}");
            continue;
        }
        for (i, ia) in former_integ {
            let s = ok(&format!("{e}-{i}"));
            assert_eq!((s.encr, s.integ), (ea, ia), "{e}-{i}");
        }
    }
    // ike/proposal.rs (IKE and ESP proposals), strongSwan and router-CLI forms.
    for (p, encr, integ) in [
        ("aes-sha1", EncrAlg::AesCbc128, IntegAlg::HmacSha1_96),
        ("aes128-sha", EncrAlg::AesCbc128, IntegAlg::HmacSha1_96),
        (
            "aes256-sha2_256",
            EncrAlg::AesCbc256,
            IntegAlg::HmacSha256_128,
        ),
        (
            "aes256-sha2_384",
            EncrAlg::AesCbc256,
            IntegAlg::HmacSha384_192,
        ),
        (
            "aes256-sha2_512",
            EncrAlg::AesCbc256,
            IntegAlg::HmacSha512_256,
        ),
        ("3des-md5", EncrAlg::TripleDesCbc, IntegAlg::HmacMd5_96),
        ("null-sha256", EncrAlg::Null, IntegAlg::HmacSha256_128),
        ("AES SHA", EncrAlg::AesCbc128, IntegAlg::HmacSha1_96),
        ("AES-128 SHA-1", EncrAlg::AesCbc128, IntegAlg::HmacSha1_96),
        (
            "AES-256 SHA-256",
            EncrAlg::AesCbc256,
            IntegAlg::HmacSha256_128,
        ),
        (
            "aes256 sha2_512",
            EncrAlg::AesCbc256,
            IntegAlg::HmacSha512_256,
        ),
        ("3DES MD5-128", EncrAlg::TripleDesCbc, IntegAlg::HmacMd5_96),
        ("3des md5_128", EncrAlg::TripleDesCbc, IntegAlg::HmacMd5_96),
    ] {
        let e = parse_esp_proposals(p).unwrap_or_else(|e| panic!("{p}: {e}"));
        assert_eq!((e[0].encr[0], e[0].integ[0]), (encr, integ), "{p}");
    }
    for (p, encr) in [
        ("aes128gcm16", EncrAlg::AesGcm128),
        ("aes128gcm", EncrAlg::AesGcm128),
        ("aes128gcm128", EncrAlg::AesGcm128),
        ("aes256gcm16", EncrAlg::AesGcm256),
        ("aes256gcm", EncrAlg::AesGcm256),
        ("aes256gcm128", EncrAlg::AesGcm256),
        ("chacha20poly1305", EncrAlg::ChaCha20Poly1305),
    ] {
        assert_eq!(parse_esp_proposals(p).unwrap()[0].encr[0], encr, "{p}");
    }
    for (p, encr) in [
        ("aes-sha1-modp2048", IkeEncr::AesCbc128),
        ("aes128-sha256-ecp256", IkeEncr::AesCbc128),
        ("aes192-sha256-ecp384", IkeEncr::AesCbc192),
        ("aes256-sha2_512-x25519", IkeEncr::AesCbc256),
        ("aes128gcm16-prfsha256-curve25519", IkeEncr::AesGcm128),
        ("aes128gcm-prfsha1-modp1024", IkeEncr::AesGcm128),
        ("aes256gcm128-prfsha384-ecp384", IkeEncr::AesGcm256),
        ("AES-192 SHA-384 20", IkeEncr::AesCbc192),
    ] {
        let i = parse_ike_proposals(p).unwrap_or_else(|e| panic!("{p}: {e}"));
        assert_eq!(i[0].encr[0], encr, "{p}");
    }
}

#[test]
fn strongswan_and_seed_forms() {
    let p = parse_ike_proposals("aes128gcm16-prfsha256-ecp256").unwrap();
    assert_eq!(p[0].encr, vec![IkeEncr::AesGcm128]);
    assert!(p[0].integ.is_empty());
    assert_eq!(p[0].prf, vec![PrfAlg::HmacSha256]);
    assert_eq!(p[0].dh, vec![DhGroup::Ecp256]);
    assert_eq!(p[0].to_string(), "aes128gcm16-prfsha256-ecp256");

    let p = parse_ike_proposals("aes256-sha256-modp2048").unwrap();
    assert_eq!(p[0].integ, vec![IkeInteg::HmacSha256_128]);
    assert_eq!(p[0].prf, vec![PrfAlg::HmacSha256]);
    assert_eq!(p[0].to_string(), "aes256-sha256-prfsha256-modp2048");

    let p = parse_ike_proposals("AES SHA 14").unwrap();
    assert_eq!(p[0].encr, vec![IkeEncr::AesCbc128]);
    assert_eq!(p[0].integ, vec![IkeInteg::HmacSha1_96]);
    assert_eq!(p[0].prf, vec![PrfAlg::HmacSha1]);
    assert_eq!(p[0].dh, vec![DhGroup::Modp2048]);

    let p = parse_ike_proposals("aes128-sha1-modp1024").unwrap();
    assert_eq!(p[0].dh, vec![DhGroup::Modp1024]);
    let p = parse_ike_proposals("AES-256 SHA-256 19").unwrap();
    assert_eq!(p[0].to_string(), "aes256-sha256-prfsha256-ecp256");

    let e = parse_ike_proposals("3DES MD5 2").unwrap_err().to_string();
    assert!(e.contains("3des"), "{e}");
    let e = parse_ike_proposals("aes128-md5-modp2048")
        .unwrap_err()
        .to_string();
    assert!(e.contains("legacy"), "{e}");
    let e = parse_ike_proposals("AES SHA 5").unwrap_err().to_string();
    assert!(e.contains("DH group 5"), "{e}");
    assert!(e.contains("2, 14, 19, 20, 31"), "{e}");

    let e = parse_esp_proposals("aes128gcm16").unwrap();
    assert_eq!(e[0].encr, vec![EncrAlg::AesGcm128]);
    assert_eq!(e[0].esn, vec![false]);
    let e = parse_esp_proposals("aes256-sha256").unwrap();
    assert_eq!(e[0].integ, vec![IntegAlg::HmacSha256_128]);
    let e = parse_esp_proposals("AES SHA 2").unwrap();
    assert_eq!(e[0].dh, vec![DhGroup::Modp1024]);
    let e = parse_esp_proposals("3DES MD5").unwrap();
    assert_eq!(e[0].encr, vec![EncrAlg::TripleDesCbc]);
    assert_eq!(e[0].integ, vec![IntegAlg::HmacMd5_96]);
    let e = parse_esp_proposals("aes128gcm16-aes256gcm16-esn-noesn").unwrap();
    assert_eq!(e[0].esn, vec![true, false]);
    assert!(parse_esp_proposals("aes128gcm16-sha256").is_err());
    assert!(parse_esp_proposals("blowfish-sha1").is_err());
    assert!(parse_esp_proposals("").is_err());
}

/// The seeds' and Openswan's/Libreswan's spellings of IKE proposals (seed 000:
/// "any left out option will be filled in with all allowed default options").
#[test]
fn openswan_forms_and_left_out_dh_groups() {
    // no DH group: the default groups, MODP-2048 first (as `espresso import`)
    for s in ["aes128-sha256", "aes-sha1", "AES SHA"] {
        let p = parse_ike_proposals(s).unwrap();
        assert_eq!(p[0].dh, DEFAULT_DH.to_vec(), "{s}");
        assert_eq!(p[0].dh[0], DhGroup::Modp2048, "{s}");
    }
    // Openswan's `;` before the group, Libreswan's dhN and `+`, sha2 = SHA2-256
    let p = parse_ike_proposals("aes128-sha1;modp2048").unwrap();
    assert_eq!(p[0].encr, vec![IkeEncr::AesCbc128]);
    assert_eq!(p[0].integ, vec![IkeInteg::HmacSha1_96]);
    assert_eq!(p[0].dh, vec![DhGroup::Modp2048]);
    let p = parse_ike_proposals("aes256-sha2_512;dh14").unwrap();
    assert_eq!(p[0].integ, vec![IkeInteg::HmacSha512_256]);
    assert_eq!(p[0].dh, vec![DhGroup::Modp2048]);
    let p = parse_ike_proposals("aes+aes256-sha2-dh19+dh31").unwrap();
    assert_eq!(p[0].encr, vec![IkeEncr::AesCbc128, IkeEncr::AesCbc256]);
    assert_eq!(p[0].integ, vec![IkeInteg::HmacSha256_128]);
    assert_eq!(p[0].prf, vec![PrfAlg::HmacSha256]);
    assert_eq!(p[0].dh, vec![DhGroup::Ecp256, DhGroup::Curve25519]);
    let e = parse_esp_proposals("aes-sha2;dh20").unwrap();
    assert_eq!(e[0].integ, vec![IntegAlg::HmacSha256_128]);
    assert_eq!(e[0].dh, vec![DhGroup::Ecp384]);
    // an ESP proposal without a group stays without PFS group
    assert!(parse_esp_proposals("aes-sha1").unwrap()[0].dh.is_empty());
    assert!(parse_ike_proposals("aes128-sha1;modp768").is_err());
    assert!(parse_ike_proposals("aes128-;").is_err(), "no integrity");
}

#[test]
fn defaults_and_transforms() {
    let ike = default_ike_proposals();
    assert_eq!(ike.len(), 2);
    assert_eq!(
        ike[0].to_string(),
        "aes128gcm16-aes256gcm16-prfsha256-prfsha384-prfsha512-ecp256-curve25519-ecp384-modp2048"
    );
    let esp = default_esp_proposals();
    assert_eq!(esp.len(), 2);
    let x = esp[1].xforms(true);
    let s = ChildSuite::from_xforms(&[x[0], x[2], x[5]]).unwrap();
    assert_eq!(s.suite().to_string(), "aes-cbc-128/hmac-sha256-128");
    assert_eq!(s.to_string(), "aes128-sha256");
    let unknown = [
        Xform::new(ttype::ENCR, 13, Some(128)),
        Xform::new(ttype::INTEG, 5, None),
        Xform::new(ttype::PRF, 4, None),
        Xform::new(ttype::DH, 21, None),
    ];
    assert_eq!(
        proposal::xforms_to_string(&unknown, true),
        "aes128ctr-aesxcbc-prfaesxcbc-ecp521"
    );
}

/// The docs list exactly the table's spellings.
#[test]
fn docs_list_the_table() {
    let docs = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/config.md");
    let text = std::fs::read_to_string(docs).expect("docs/config.md");
    assert!(
        text.contains(&spellings_markdown()),
        "docs/config.md (### Suites) must contain this table, generated from core/src/alg:\n{}",
        spellings_markdown()
    );
}
