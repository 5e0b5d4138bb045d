//! Known answers from strongSwan 5.9.8: two charons negotiated, rekeyed the
//! CHILD_SA (with PFS where configured) and the IKE SA, and logged every key
//! at level 4 (fixtures/ike/capture_strongswan.sh regenerates the files).
//! From the captured datagrams and the logged DH shared secrets alone, our
//! parser and key derivation must reproduce strongSwan's SKEYSEED, SK_d,
//! SK_ai/ar, SK_ei/er, SK_pi/pr, both AUTH payloads, the ESP KEYMAT of the
//! first and the rekeyed CHILD_SA and the rekeyed IKE SA's keys, and our SK
//! payload code must decrypt every protected message strongSwan sent.

use std::collections::HashMap;
use std::net::SocketAddr;

use control::ike::crypto::{self, derive_child_keys, derive_ike_keys, IkeKeys, SkCipher};
use control::ike::proposal::{ChildSuite, IkeSuite, Xform};
use control::ike::wire::{self, exchange, payload, Message, Payloads, HEADER_LEN};

struct Fixture {
    name: String,
    psk: Vec<u8>,
    msgs: Vec<Vec<u8>>,
    logs: HashMap<String, Vec<Vec<u8>>>,
}

fn load(name: &str) -> Fixture {
    let path = format!(
        "{}/tests/fixtures/ike/strongswan_{name}.txt",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let mut f = Fixture {
        name: name.into(),
        psk: Vec::new(),
        msgs: Vec::new(),
        logs: HashMap::new(),
    };
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["#", "psk", p] => f.psk = p.as_bytes().to_vec(),
            ["msg", _, _, to, hex] => {
                let mut m = hex::decode(hex).unwrap();
                if *to == "4500" {
                    assert_eq!(&m[..4], &[0, 0, 0, 0], "non-ESP marker");
                    m.drain(..4);
                }
                f.msgs.push(m);
            }
            ["log", label, hex] => f
                .logs
                .entry(label.to_string())
                .or_default()
                .push(hex::decode(hex).unwrap_or_default()),
            _ => {}
        }
    }
    assert!(f.msgs.len() >= 12, "{name}: {} messages", f.msgs.len());
    f
}

impl Fixture {
    fn log(&self, label: &str, n: usize) -> &[u8] {
        &self
            .logs
            .get(label)
            .unwrap_or_else(|| panic!("{}: no {label} in the log", self.name))[n]
    }
    fn has(&self, label: &str) -> bool {
        self.logs.contains_key(label)
    }
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

fn check_ike_keys(f: &Fixture, k: &IkeKeys, n: usize) {
    assert_eq!(
        k.skeyseed.bytes(),
        f.log("SKEYSEED", n),
        "{} SKEYSEED #{n}",
        f.name
    );
    assert_eq!(
        k.sk_d.bytes(),
        f.log("Sk_d_secret", n),
        "{} SK_d #{n}",
        f.name
    );
    assert_eq!(
        k.sk_ei.bytes(),
        f.log("Sk_ei_secret", n),
        "{} SK_ei #{n}",
        f.name
    );
    assert_eq!(
        k.sk_er.bytes(),
        f.log("Sk_er_secret", n),
        "{} SK_er #{n}",
        f.name
    );
    assert_eq!(
        k.sk_pi.bytes(),
        f.log("Sk_pi_secret", n),
        "{} SK_pi #{n}",
        f.name
    );
    assert_eq!(
        k.sk_pr.bytes(),
        f.log("Sk_pr_secret", n),
        "{} SK_pr #{n}",
        f.name
    );
    if f.has("Sk_ai_secret") {
        assert_eq!(
            k.sk_ai.bytes(),
            f.log("Sk_ai_secret", n),
            "{} SK_ai #{n}",
            f.name
        );
        assert_eq!(
            k.sk_ar.bytes(),
            f.log("Sk_ar_secret", n),
            "{} SK_ar #{n}",
            f.name
        );
    } else {
        assert!(
            k.sk_ai.is_empty() && k.sk_ar.is_empty(),
            "AEAD: no integrity keys"
        );
    }
}

fn check_child_keys(f: &Fixture, k: &crypto::ChildKeys, n: usize) {
    assert_eq!(
        k.ei.bytes(),
        f.log("encryption_initiator_key", n),
        "{} ESP ei #{n}",
        f.name
    );
    assert_eq!(
        k.er.bytes(),
        f.log("encryption_responder_key", n),
        "{} ESP er #{n}",
        f.name
    );
    if f.has("integrity_initiator_key") {
        assert_eq!(
            k.ai.bytes(),
            f.log("integrity_initiator_key", n),
            "{} ESP ai #{n}",
            f.name
        );
        assert_eq!(
            k.ar.bytes(),
            f.log("integrity_responder_key", n),
            "{} ESP ar #{n}",
            f.name
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
    let (ex, esp_offer) = xforms(&p.sa.unwrap());
    let _ = ex;
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
    let _ = payload::DELETE;
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
