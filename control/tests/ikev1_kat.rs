//! Known answers from strongSwan 5.9.8 for IKEv1: two charons negotiated
//! main or aggressive mode with PSK and quick mode (with PFS where
//! configured), exchanged DPD, rekeyed the IPsec SA, re-authenticated the
//! ISAKMP SA and deleted everything, logging every key at level 4
//! (fixtures/ikev1/capture_strongswan.sh regenerates the files). From the
//! captured datagrams, the PSK and the logged DH shared secrets alone, our
//! parser and key derivation must reproduce strongSwan's SKEYID,
//! SKEYID_d/a/e, the expanded key Ka, the initial IV, every phase 2 IV,
//! NAT-D hashes and ESP KEYMAT; our CBC code must decrypt every encrypted
//! message strongSwan sent and every HASH payload (HASH_I, HASH_R, HASH(1),
//! HASH(2), HASH(3), informational HASH) must verify.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use control::ikev1::crypto::{self, CbcKey, HashAlg};
use control::ikev1::proposal::{p2_from_transform, Phase1Suite};
use control::ikev1::wire::{exchange, notify, payload, proto, Header, Payloads, HEADER_LEN};

#[path = "common/kat_fixture.rs"]
mod kat_fixture;
use kat_fixture::Fixture;

fn load(name: &str) -> Fixture {
    kat_fixture::load("ikev1", name, 10)
}

/// One ISAKMP SA being replayed.
struct Isakmp {
    hash: HashAlg,
    cipher: CbcKey,
    skeyid_a: Vec<u8>,
    skeyid_d: Vec<u8>,
    p1_last: Vec<u8>,
    /// per message ID: (IV for the next message, messages seen, Ni_b, Nr_b, spi_i, spi_r, suite, pfs)
    ph2: HashMap<u32, Phase2>,
}

#[derive(Default, Clone)]
struct Phase2 {
    iv: Vec<u8>,
    seen: usize,
    ni: Vec<u8>,
    nr: Vec<u8>,
    spi_i: u32,
    suite: Option<control::ike::proposal::ChildSuite>,
}

struct Counts {
    hashes: usize,
    qm_keys: usize,
    dh_secret: usize,
    dpd: usize,
    dpd_ack: usize,
    deletes: usize,
    phase2_ivs: usize,
}

fn decrypt(c: &CbcKey, msg: &[u8], iv: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut pt = msg[HEADER_LEN..].to_vec();
    c.decrypt(iv, &mut pt).expect("block-aligned");
    let bs = c.alg().block_len();
    (pt, msg[msg.len() - bs..].to_vec())
}

fn spi_of(p: &Payloads<'_>) -> (u32, control::ike::proposal::ChildSuite) {
    let props = p.sa.unwrap().proposals().unwrap();
    let s = props[0].spi;
    let (suite, _) = p2_from_transform(&props[0].transforms[0]).unwrap();
    (u32::from_be_bytes([s[0], s[1], s[2], s[3]]), suite)
}

/// Phase 1 of the `n`-th ISAKMP SA starting at message `at`; returns the
/// SA state and the index of the first message after phase 1.
fn phase1(f: &Fixture, at: usize, n: usize, c: &mut Counts) -> (Isakmp, usize) {
    let h0 = Header::parse(&f.msgs[at]).unwrap();
    let aggressive = h0.exchange() == exchange::AGGRESSIVE;
    let m1 = Payloads::parse(&f.msgs[at][HEADER_LEN..], h0.next_payload()).unwrap();
    let sai_b = m1.sa.unwrap().body.to_vec();
    let h1 = Header::parse(&f.msgs[at + 1]).unwrap();
    let m2 = Payloads::parse(&f.msgs[at + 1][HEADER_LEN..], h1.next_payload()).unwrap();
    let chosen = m2.sa.unwrap().proposals().unwrap();
    let suite = Phase1Suite::from_transform(&chosen[0].transforms[0]).unwrap();
    let (ic, rc) = (h1.icookie(), h1.rcookie());
    let (gxi, ni, gxr, nr, next);
    let (m3, m4);
    if aggressive {
        gxi = m1.ke.unwrap().to_vec();
        ni = m1.nonce.unwrap().to_vec();
        gxr = m2.ke.unwrap().to_vec();
        nr = m2.nonce.unwrap().to_vec();
        next = at + 3;
    } else {
        let h3 = Header::parse(&f.msgs[at + 2]).unwrap();
        m3 = Payloads::parse(&f.msgs[at + 2][HEADER_LEN..], h3.next_payload()).unwrap();
        let h4 = Header::parse(&f.msgs[at + 3]).unwrap();
        m4 = Payloads::parse(&f.msgs[at + 3][HEADER_LEN..], h4.next_payload()).unwrap();
        gxi = m3.ke.unwrap().to_vec();
        ni = m3.nonce.unwrap().to_vec();
        gxr = m4.ke.unwrap().to_vec();
        nr = m4.nonce.unwrap().to_vec();
        next = at + 6;
    }
    let gxy = f.log("shared_Diffie_Hellman_secret", n).to_vec();
    assert_eq!(gxy.len(), suite.dh.public_len().min(gxy.len()));
    let skeyid = crypto::skeyid_psk(suite.hash, &f.psk, &ni, &nr);
    assert_eq!(&skeyid[..], f.log("SKEYID", n), "{} SKEYID #{n}", f.name);
    let k = crypto::derive_phase1(suite.hash, suite.encr, skeyid, &gxy, ic, rc, &gxi, &gxr);
    assert_eq!(&k.skeyid_d[..], f.log("SKEYID_d", n), "{} SKEYID_d", f.name);
    assert_eq!(&k.skeyid_a[..], f.log("SKEYID_a", n), "{} SKEYID_a", f.name);
    assert_eq!(&k.skeyid_e[..], f.log("SKEYID_e", n), "{} SKEYID_e", f.name);
    assert_eq!(&k.ka[..], f.log("encryption_key_Ka", n), "{} Ka", f.name);
    assert_eq!(&k.iv[..], f.log("initial_IV", n), "{} initial IV", f.name);
    let cipher = CbcKey::new(suite.encr, &k.ka).unwrap();
    let hash_i =
        |id_b: &[u8]| crypto::phase1_hash(suite.hash, &k.skeyid, &gxi, &gxr, ic, rc, &sai_b, id_b);
    let hash_r =
        |id_b: &[u8]| crypto::phase1_hash(suite.hash, &k.skeyid, &gxr, &gxi, rc, ic, &sai_b, id_b);
    let p1_last = if aggressive {
        // AM2 in the clear: HASH_R over IDir
        assert_eq!(
            m2.hash.unwrap(),
            &hash_r(m2.ids[0].body)[..],
            "{} HASH_R",
            f.name
        );
        // AM3 encrypted with the initial IV: HASH_I over AM1's IDii
        let m = &f.msgs[at + 2];
        let h = Header::parse(m).unwrap();
        assert!(h.encrypted());
        let (pt, last) = decrypt(&cipher, m, &k.iv);
        let p = Payloads::parse(&pt, h.next_payload()).unwrap();
        assert_eq!(
            p.hash.unwrap(),
            &hash_i(m1.ids[0].body)[..],
            "{} HASH_I",
            f.name
        );
        assert_eq!(p.nat_d.len(), 2, "NAT-D in AM3");
        c.hashes += 2;
        last
    } else {
        let m5 = &f.msgs[at + 4];
        let h5 = Header::parse(m5).unwrap();
        let (pt5, last5) = decrypt(&cipher, m5, &k.iv);
        let p5 = Payloads::parse(&pt5, h5.next_payload()).unwrap();
        assert_eq!(
            p5.hash.unwrap(),
            &hash_i(p5.ids[0].body)[..],
            "{} HASH_I",
            f.name
        );
        assert_eq!(p5.hash.unwrap(), f.log("HASH_I", n));
        let m6 = &f.msgs[at + 5];
        let h6 = Header::parse(m6).unwrap();
        let (pt6, last6) = decrypt(&cipher, m6, &last5);
        let p6 = Payloads::parse(&pt6, h6.next_payload()).unwrap();
        assert_eq!(
            p6.hash.unwrap(),
            &hash_r(p6.ids[0].body)[..],
            "{} HASH_R",
            f.name
        );
        assert_eq!(p6.hash.unwrap(), f.log("HASH_R", n));
        c.hashes += 2;
        last6
    };
    (
        Isakmp {
            hash: suite.hash,
            cipher,
            skeyid_a: k.skeyid_a.to_vec(),
            skeyid_d: k.skeyid_d.to_vec(),
            p1_last,
            ph2: HashMap::new(),
        },
        next,
    )
}

/// A phase 2 message (quick mode or informational) of an established SA.
fn phase2(f: &Fixture, sa: &mut Isakmp, m: &[u8], c: &mut Counts) {
    let h = Header::parse(m).unwrap();
    assert!(h.encrypted(), "{}: phase 2 messages are encrypted", f.name);
    let mid = h.message_id();
    let bs = sa.cipher.alg().block_len();
    let st = sa.ph2.entry(mid).or_insert_with(|| {
        let iv = crypto::phase2_iv(sa.hash, &sa.p1_last, mid, bs);
        if let Some(v) = f.logs.get(&format!("next_IV_for_MID_{mid}")) {
            assert_eq!(&v[0][..], &iv[..], "{}: first IV of MID {mid}", f.name);
            c.phase2_ivs += 1;
        }
        Phase2 {
            iv,
            ..Default::default()
        }
    });
    let (pt, last) = decrypt(&sa.cipher, m, &st.iv);
    st.iv = last;
    st.seen += 1;
    let p = Payloads::parse(&pt, h.next_payload())
        .unwrap_or_else(|e| panic!("{}: MID {mid} does not parse: {e}", f.name));
    assert!(p.hash_first, "HASH first");
    let rest = &pt[p.after_hash..p.end];
    let (a, hh) = (&sa.skeyid_a, sa.hash);
    let want = match (h.exchange(), st.seen) {
        (exchange::INFORMATIONAL, _) => crypto::hash1(hh, a, mid, rest),
        (exchange::QUICK, 1) => {
            st.ni = p.nonce.unwrap().to_vec();
            st.spi_i = spi_of(&p).0;
            crypto::hash1(hh, a, mid, rest)
        }
        (exchange::QUICK, 2) => {
            st.nr = p.nonce.unwrap().to_vec();
            let (spi_r, suite) = spi_of(&p);
            st.suite = Some(suite);
            // KEYMAT, named as strongSwan does: "initiator" keys protect
            // initiator -> responder traffic, keyed with the responder's SPI
            let g = suite.dh.map(|_| {
                let s = f.log("DH_secret", c.dh_secret).to_vec();
                c.dh_secret += 1;
                s
            });
            let len = suite.encr.key_len() + suite.integ.key_len();
            let el = suite.encr.key_len();
            let ki = crypto::keymat(
                hh,
                &sa.skeyid_d,
                g.as_deref(),
                proto::ESP,
                spi_r,
                &st.ni,
                &st.nr,
                len,
            );
            let kr = crypto::keymat(
                hh,
                &sa.skeyid_d,
                g.as_deref(),
                proto::ESP,
                st.spi_i,
                &st.ni,
                &st.nr,
                len,
            );
            let n = c.qm_keys;
            assert_eq!(
                &ki[..el],
                f.log("encryption_initiator_key", n),
                "{} ESP ei #{n}",
                f.name
            );
            assert_eq!(
                &kr[..el],
                f.log("encryption_responder_key", n),
                "{} ESP er #{n}",
                f.name
            );
            if f.has("integrity_initiator_key") {
                assert_eq!(
                    &ki[el..],
                    f.log("integrity_initiator_key", n),
                    "{} ESP ai #{n}",
                    f.name
                );
                assert_eq!(
                    &kr[el..],
                    f.log("integrity_responder_key", n),
                    "{} ESP ar #{n}",
                    f.name
                );
            }
            c.qm_keys += 1;
            crypto::hash2(hh, a, mid, &st.ni, rest)
        }
        (exchange::QUICK, 3) => {
            assert!(rest.is_empty(), "QM3 holds only the HASH");
            crypto::hash3(hh, a, mid, &st.ni, &st.nr)
        }
        (x, s) => panic!("{}: unexpected exchange {x} message {s}", f.name),
    };
    assert_eq!(
        p.hash.unwrap(),
        &want[..],
        "{}: hash of MID {mid} message {}",
        f.name,
        st.seen
    );
    c.hashes += 1;
    for nt in &p.notifies {
        match nt.ntype {
            notify::R_U_THERE => c.dpd += 1,
            notify::R_U_THERE_ACK => c.dpd_ack += 1,
            _ => {}
        }
    }
    c.deletes += p.deletes.len();
}

fn run(name: &str) -> Counts {
    let f = load(name);
    let mut c = Counts {
        hashes: 0,
        qm_keys: 0,
        dh_secret: 0,
        dpd: 0,
        dpd_ack: 0,
        deletes: 0,
        phase2_ivs: 0,
    };
    let mut sas: HashMap<(u64, u64), Isakmp> = HashMap::new();
    let mut i = 0;
    let mut n = 0;
    while i < f.msgs.len() {
        let h = Header::parse(&f.msgs[i]).unwrap();
        let key = (h.icookie(), h.rcookie());
        if let Some(sa) = sas.get_mut(&key) {
            phase2(&f, sa, &f.msgs[i], &mut c);
            i += 1;
            continue;
        }
        assert!(
            matches!(h.exchange(), exchange::MAIN | exchange::AGGRESSIVE),
            "{}: message {i} of an unknown SA",
            f.name
        );
        let h1 = Header::parse(&f.msgs[i + 1]).unwrap();
        let (sa, next) = phase1(&f, i, n, &mut c);
        sas.insert((h1.icookie(), h1.rcookie()), sa);
        n += 1;
        i = next;
    }
    // NAT-D: our hash of every chunk strongSwan hashed
    let chunks = &f.logs["natd_chunk"];
    let hashes = &f.logs["natd_hash"];
    let alg = if name.contains("gcm") {
        HashAlg::Sha256
    } else if name == "legacy" {
        HashAlg::Md5
    } else {
        HashAlg::Sha1
    };
    for (ch, hs) in chunks.iter().zip(hashes) {
        let ic = u64::from_be_bytes(ch[..8].try_into().unwrap());
        let rc = u64::from_be_bytes(ch[8..16].try_into().unwrap());
        let ip = IpAddr::V4(Ipv4Addr::new(ch[16], ch[17], ch[18], ch[19]));
        let port = u16::from_be_bytes([ch[20], ch[21]]);
        assert_eq!(
            crypto::nat_d(alg, ic, rc, SocketAddr::new(ip, port)),
            *hs,
            "{} NAT-D",
            f.name
        );
    }
    assert_eq!(
        n, 2,
        "{}: the first ISAKMP SA and its re-authentication",
        f.name
    );
    assert_eq!(
        c.qm_keys,
        f.logs["encryption_initiator_key"].len(),
        "{}: every KEYMAT",
        f.name
    );
    assert!(c.qm_keys >= 2, "{}: first and rekeyed IPsec SA", f.name);
    assert!(c.deletes >= 2, "{}: deletes", f.name);
    assert!(c.phase2_ivs >= 4, "{}: phase 2 IVs compared", f.name);
    let _ = payload::NONE;
    c
}

#[test]
fn strongswan_main_mode_cbc_pfs_dpd() {
    let c = run("main_cbc");
    assert!(c.dpd >= 1 && c.dpd_ack >= 1, "DPD R-U-THERE and ACK");
    assert!(c.dh_secret >= 2, "PFS in both quick modes");
    assert!(c.hashes >= 14);
}

#[test]
fn strongswan_main_mode_gcm() {
    let c = run("main_gcm");
    assert_eq!(c.dh_secret, 0, "no PFS");
}

#[test]
fn strongswan_aggressive_mode() {
    run("aggr");
}

#[test]
fn strongswan_legacy_3des_md5_key_expansion() {
    // 3DES needs 24 bytes from MD5's 16: Appendix B expansion; ESP 3DES+MD5 KEYMAT too
    run("legacy");
}

#[test]
fn strongswan_aes256_sha1_key_expansion() {
    // AES-256 needs 32 bytes from SHA-1's 20; ESP AES-GCM-256 with PFS
    run("aes256_sha1");
}
