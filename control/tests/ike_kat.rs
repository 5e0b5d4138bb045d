//! Known answers from strongSwan 5.9.8: two charons negotiated, rekeyed the
//! CHILD_SA (with PFS where configured) and the IKE SA, and logged every key
//! at level 4 (fixtures/ike/capture_strongswan.sh regenerates the files).
//! From the captured datagrams and the logged DH shared secrets alone, our
//! parser and key derivation must reproduce strongSwan's SKEYSEED, SK_d,
//! SK_ai/ar, SK_ei/er, SK_pi/pr, both AUTH payloads, the ESP KEYMAT of the
//! first and the rekeyed CHILD_SA and the rekeyed IKE SA's keys, and our SK
//! payload code must decrypt every protected message strongSwan sent.

use std::net::SocketAddr;

use control::ike::crypto::{self, derive_child_keys, derive_ike_keys, IkeKeys, SkCipher};
use control::ike::proposal::{ChildSuite, IkeSuite, Xform};
use control::ike::wire::{self, exchange, Message, Payloads, HEADER_LEN};

#[path = "common/kat_fixture.rs"]
mod kat_fixture;
use kat_fixture::Fixture;

fn load(name: &str) -> Fixture {
    kat_fixture::load("ike", name, 12)
}

fn xforms(sa: &wire::SaView<'_>) -> (Vec<u8>, Vec<Xform>) {
    let p = sa.proposals().unwrap();
    assert_eq!(p.len(), 1, "a response carries one proposal");
    (
        p[0].spi.to_vec(),
        p[0].transforms()
            .unwrap()
            .into_iter()
            .map(Xform::from)
            .collect(),
    )
}

/// The (request, response) SK ciphers of an IKE SA whose original initiator is A.
fn ciphers(suite: &IkeSuite, k: &IkeKeys) -> (SkCipher, SkCipher) {
    (
        SkCipher::new(suite, &k.sk_ei, &k.sk_ai).unwrap(),
        SkCipher::new(suite, &k.sk_er, &k.sk_ar).unwrap(),
    )
}

fn open(c: &SkCipher, m: &[u8]) -> (u8, Vec<u8>) {
    let msg = Message::parse(m).unwrap();
    let (first, at, _) = msg.payloads.sk.expect("SK payload");
    assert_eq!(at, HEADER_LEN);
    (
        first,
        c.open(m, at)
            .expect("strongSwan's message decrypts and verifies")
            .to_vec(),
    )
}

/// Each of our keys equals the `n`th value strongSwan logged under its label.
fn check_logged(f: &Fixture, n: usize, keys: &[(&[u8], &str, &str)]) {
    for (got, label, what) in keys {
        assert_eq!(*got, f.log(label, n), "{} {what} #{n}", f.name);
    }
}

fn check_ike_keys(f: &Fixture, k: &IkeKeys, n: usize) {
    check_logged(
        f,
        n,
        &[
            (k.skeyseed.bytes(), "SKEYSEED", "SKEYSEED"),
            (k.sk_d.bytes(), "Sk_d_secret", "SK_d"),
            (k.sk_ei.bytes(), "Sk_ei_secret", "SK_ei"),
            (k.sk_er.bytes(), "Sk_er_secret", "SK_er"),
            (k.sk_pi.bytes(), "Sk_pi_secret", "SK_pi"),
            (k.sk_pr.bytes(), "Sk_pr_secret", "SK_pr"),
        ],
    );
    if f.has("Sk_ai_secret") {
        check_logged(
            f,
            n,
            &[
                (k.sk_ai.bytes(), "Sk_ai_secret", "SK_ai"),
                (k.sk_ar.bytes(), "Sk_ar_secret", "SK_ar"),
            ],
        );
    } else {
        assert!(
            k.sk_ai.is_empty() && k.sk_ar.is_empty(),
            "AEAD: no integrity keys"
        );
    }
}

fn check_child_keys(f: &Fixture, k: &crypto::ChildKeys, n: usize) {
    check_logged(
        f,
        n,
        &[
            (k.ei.bytes(), "encryption_initiator_key", "ESP ei"),
            (k.er.bytes(), "encryption_responder_key", "ESP er"),
        ],
    );
    if f.has("integrity_initiator_key") {
        check_logged(
            f,
            n,
            &[
                (k.ai.bytes(), "integrity_initiator_key", "ESP ai"),
                (k.ar.bytes(), "integrity_responder_key", "ESP ar"),
            ],
        );
    }
}

fn run(name: &str) {
    let f = load(name);
    // ---------------------------------------------------------- IKE_SA_INIT
    let req = Message::parse(&f.msgs[0]).unwrap();
    let resp = Message::parse(&f.msgs[1]).unwrap();
    assert_eq!(req.header.exchange(), exchange::IKE_SA_INIT);
    assert!(resp.header.is_response());
    let (spi_i, spi_r) = (resp.header.spi_i(), resp.header.spi_r());
    let ni = req.payloads.nonce.unwrap().to_vec();
    let nr = resp.payloads.nonce.unwrap().to_vec();
    let (_, x) = xforms(&resp.payloads.sa.unwrap());
    let suite = IkeSuite::from_xforms(&x).expect("our suite type understands strongSwan's choice");
    assert_eq!(resp.payloads.ke.unwrap().group, suite.dh.number());
    assert_eq!(resp.payloads.ke.unwrap().data.len(), suite.dh.public_len());
    let shared = f.log("shared_Diffie_Hellman_secret", 0);
    let k = derive_ike_keys(&suite, None, shared, &ni, &nr, spi_i, spi_r);
    check_ike_keys(&f, &k, 0);

    // NAT-D: strongSwan's hash input (SPIi | SPIr | IP | port) and output
    let chunks = &f.logs["natd_chunk"];
    let hashes = &f.logs["natd_hash"];
    for (c, h) in chunks.iter().zip(hashes) {
        assert_eq!(c.len(), 22);
        let si = u64::from_be_bytes(c[0..8].try_into().unwrap());
        let sr = u64::from_be_bytes(c[8..16].try_into().unwrap());
        let ip = std::net::Ipv4Addr::new(c[16], c[17], c[18], c[19]);
        let port = u16::from_be_bytes([c[20], c[21]]);
        assert_eq!(
            &crypto::nat_hash(si, sr, SocketAddr::new(ip.into(), port))[..],
            &h[..]
        );
    }

    // ------------------------------------------------------------ IKE_AUTH
    let (to_r, to_i) = ciphers(&suite, &k);
    let (first, auth_req) = open(&to_r, &f.msgs[2]);
    let p = Payloads::parse(&auth_req, first, 0).unwrap();
    let idi = p.idi.unwrap();
    let auth_i = p.auth.unwrap();
    assert_eq!(auth_i.method, wire::AUTH_PSK);
    let want = crypto::psk_auth(
        suite.prf,
        &f.psk,
        &f.msgs[0],
        &nr,
        k.sk_pi.bytes(),
        idi.body,
    );
    assert_eq!(want, auth_i.data, "{name}: initiator AUTH");
    // the strongSwan notifies we must tolerate are in there
    for n in [
        wire::notify::INITIAL_CONTACT,
        wire::notify::MULTIPLE_AUTH_SUPPORTED,
        wire::notify::EAP_ONLY_AUTHENTICATION,
        wire::notify::IKEV2_MESSAGE_ID_SYNC_SUPPORTED,
    ] {
        assert!(p.notify(n).is_some(), "{name}: notify {n}");
    }
    let (_, esp_offer) = xforms(&p.sa.unwrap());
    assert!(!esp_offer.is_empty());
    let ts_i = p.tsi.clone().unwrap();
    assert_eq!(control::ike::ts::display(&ts_i[0]), "10.1.0.0/24");

    let (first, auth_resp) = open(&to_i, &f.msgs[3]);
    let p = Payloads::parse(&auth_resp, first, 0).unwrap();
    let idr = p.idr.unwrap();
    let want_r = crypto::psk_auth(
        suite.prf,
        &f.psk,
        &f.msgs[1],
        &ni,
        k.sk_pr.bytes(),
        idr.body,
    );
    assert_eq!(want_r, p.auth.unwrap().data, "{name}: responder AUTH");
    let logged: Vec<&[u8]> = f.logs["AUTH_=_prf(prf(secret,_keypad),_octets)"]
        .iter()
        .map(|v| &v[..])
        .collect();
    assert!(logged.contains(&&want[..]) && logged.contains(&&want_r[..]));
    // first CHILD_SA: KEYMAT = prf+(SK_d, Ni | Nr)
    let (spi, x) = xforms(&p.sa.unwrap());
    assert_eq!(spi.len(), 4);
    let cs = ChildSuite::from_xforms(&x).unwrap();
    let ck = derive_child_keys(
        suite.prf,
        k.sk_d.bytes(),
        None,
        &ni,
        &nr,
        cs.encr.key_len(),
        cs.integ.key_len(),
    );
    check_child_keys(&f, &ck, 0);
    let mut seed = ni.clone();
    seed.extend_from_slice(&nr);
    assert_eq!(f.log("seed", 0), &seed[..]);

    // ----------------------------------------------- CHILD_SA rekey (CCS #1)
    let (first, ccs_req) = open(&to_r, &f.msgs[4]);
    let q = Payloads::parse(&ccs_req, first, 0).unwrap();
    assert!(q.notify(wire::notify::REKEY_SA).is_some());
    let (first, ccs_resp) = open(&to_i, &f.msgs[5]);
    let r = Payloads::parse(&ccs_resp, first, 0).unwrap();
    let (cni, cnr) = (q.nonce.unwrap().to_vec(), r.nonce.unwrap().to_vec());
    let (_, x) = xforms(&r.sa.unwrap());
    let cs2 = ChildSuite::from_xforms(&x).unwrap();
    let pfs = cs2.dh.map(|g| {
        assert_eq!(q.ke.unwrap().group, g.number());
        assert_eq!(r.ke.unwrap().group, g.number());
        f.log("DH_secret", 0).to_vec()
    });
    let ck2 = derive_child_keys(
        suite.prf,
        k.sk_d.bytes(),
        pfs.as_deref(),
        &cni,
        &cnr,
        cs2.encr.key_len(),
        cs2.integ.key_len(),
    );
    check_child_keys(&f, &ck2, 1);
    let mut seed = pfs.clone().unwrap_or_default();
    seed.extend_from_slice(&cni);
    seed.extend_from_slice(&cnr);
    assert_eq!(f.log("seed", 1), &seed[..]);

    // --------------------------------------------- IKE SA rekey (CCS #2)
    let ike_rekey = (4..f.msgs.len())
        .find(|&i| {
            let h = wire::Header::parse(&f.msgs[i]).unwrap();
            h.exchange() == exchange::CREATE_CHILD_SA && !h.is_response() && {
                let (first, pt) = open(&to_r, &f.msgs[i]);
                let p = Payloads::parse(&pt, first, 0).unwrap();
                p.sa.unwrap().proposals().unwrap()[0].protocol == wire::proto::IKE
            }
        })
        .expect("IKE rekey request");
    let (first, pt) = open(&to_r, &f.msgs[ike_rekey]);
    let q = Payloads::parse(&pt, first, 0).unwrap();
    let (first, pt2) = open(&to_i, &f.msgs[ike_rekey + 1]);
    let r = Payloads::parse(&pt2, first, 0).unwrap();
    let new_spi_i = u64::from_be_bytes(
        q.sa.unwrap().proposals().unwrap()[0]
            .spi
            .try_into()
            .unwrap(),
    );
    let (rspi, x) = xforms(&r.sa.unwrap());
    let new_spi_r = u64::from_be_bytes(rspi.try_into().unwrap());
    let suite2 = IkeSuite::from_xforms(&x).unwrap();
    let shared2 = f.log("shared_Diffie_Hellman_secret", 1);
    let k2 = derive_ike_keys(
        &suite2,
        Some((suite.prf, k.sk_d.bytes())),
        shared2,
        q.nonce.unwrap(),
        r.nonce.unwrap(),
        new_spi_i,
        new_spi_r,
    );
    check_ike_keys(&f, &k2, 1);

    // every other protected message decrypts under the SA its SPIs name
    let (n_to_r, n_to_i) = ciphers(&suite2, &k2);
    let mut deletes = 0;
    for m in &f.msgs[2..] {
        let h = wire::Header::parse(m).unwrap();
        let c = match (h.spi_i() == spi_i, h.is_response()) {
            (true, false) => &to_r,
            (true, true) => &to_i,
            (false, false) => &n_to_r,
            (false, true) => &n_to_i,
        };
        assert!(h.spi_i() == spi_i || h.spi_i() == new_spi_i);
        let (first, pt) = open(c, m);
        let p = Payloads::parse(&pt, first, 0).unwrap();
        deletes += p.deletes.len();
    }
    // old CHILD_SA, old IKE SA, final terminate: three deletes (+ answers for the ESP one)
    assert!(deletes >= 3, "{name}: {deletes} deletes");
}

#[test]
fn strongswan_aes128gcm16_prfsha256_ecp256_pfs_ecp256() {
    run("gcm_ecp256");
}

#[test]
fn strongswan_aes256_sha256_modp2048_esp_aes256_sha256() {
    run("cbc_modp2048");
}

#[test]
fn strongswan_aes256gcm16_prfsha384_curve25519_esp_aes256_sha512_pfs() {
    run("gcm256_x25519");
}

#[test]
fn strongswan_chacha20poly1305_prfsha512_curve25519() {
    run("chapoly_x25519");
}

#[test]
fn strongswan_aes256gcm16_prfsha384_ecp384_pfs_ecp384() {
    run("gcm256_ecp384");
}

#[test]
fn strongswan_aes256_sha384_modp3072_pfs_modp4096() {
    run("cbc_modp3072");
}

#[test]
fn strongswan_aes128_sha512_ecp521_pfs_modp6144() {
    run("cbc_ecp521");
}
