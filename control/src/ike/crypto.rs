//! IKE cryptography: PRFs and prf+ (RFC 7296 §2.13), key derivation
//! (§2.14, §2.17, §2.18), Diffie-Hellman groups 2/14 (constant-time MODP with
//! crypto-bigint), 19/20 (NIST curves, RFC 5903 encoding) and 31 (X25519,
//! RFC 8031), the SK payload ciphers (AES-GCM-16 per RFC 5282, AES-CBC with
//! HMAC-SHA2), PSK authentication (§2.15) and the NAT-D hashes (§2.23).

use aes::cipher::{block_padding::NoPadding, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes128Gcm, Aes256Gcm, KeyInit, Nonce, Tag};
use crypto_bigint::modular::runtime_mod::{DynResidue, DynResidueParams};
use crypto_bigint::{Encoding, U1024, U1536, U2048, U3072, U4096, U6144, U8192};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha384, Sha512};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use espresso_core::key::Key;

use super::error::IkeError;
use super::proposal::{DhGroup, IkeEncr, IkeInteg, IkeSuite, PrfAlg};
use super::wire::{self, HEADER_LEN};

/// Secret bytes that are wiped on drop.
pub type Secret = Zeroizing<Vec<u8>>;

macro_rules! hmac_parts {
    ($h:ty, $key:expr, $parts:expr) => {{
        // HMAC accepts keys of any length: new_from_slice cannot fail.
        let mut m = match <Hmac<$h> as Mac>::new_from_slice($key) {
            Ok(m) => m,
            Err(_) => return Vec::new(),
        };
        for p in $parts {
            m.update(p);
        }
        m.finalize().into_bytes().to_vec()
    }};
}

/// prf(key, data...) for a negotiated PRF.
pub fn prf(alg: PrfAlg, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    match alg {
        PrfAlg::HmacSha1 => hmac_parts!(Sha1, key, parts),
        PrfAlg::HmacSha256 => hmac_parts!(Sha256, key, parts),
        PrfAlg::HmacSha384 => hmac_parts!(Sha384, key, parts),
        PrfAlg::HmacSha512 => hmac_parts!(Sha512, key, parts),
    }
}

/// prf+ (RFC 7296 §2.13): T1 = prf(K, S | 0x01), Tn = prf(K, Tn-1 | S | n).
pub fn prf_plus(alg: PrfAlg, key: &[u8], seed: &[&[u8]], len: usize) -> Secret {
    let mut out = Zeroizing::new(Vec::with_capacity(len + alg.out_len()));
    let mut t: Secret = Zeroizing::new(Vec::new());
    let mut n: u8 = 1;
    while out.len() < len {
        let mut parts: Vec<&[u8]> = Vec::with_capacity(seed.len() + 2);
        parts.push(&t);
        parts.extend_from_slice(seed);
        let nb = [n];
        parts.push(&nb);
        let next = Zeroizing::new(prf(alg, key, &parts));
        out.extend_from_slice(&next);
        t = next;
        // RFC 7296 limits prf+ to 255 iterations; callers never ask for more.
        n = n.wrapping_add(1);
        if n == 0 {
            break;
        }
    }
    out.truncate(len);
    out
}

/// The seven IKE SA keys (§2.14).
#[derive(Clone, Debug)]
pub struct IkeKeys {
    /// SKEYSEED (kept for the known-answer tests; not used afterwards).
    pub skeyseed: Key,
    /// SK_d: derives child SA keys.
    pub sk_d: Key,
    /// SK_ai: integrity, initiator to responder.
    pub sk_ai: Key,
    /// SK_ar: integrity, responder to initiator.
    pub sk_ar: Key,
    /// SK_ei: encryption, initiator to responder.
    pub sk_ei: Key,
    /// SK_er: encryption, responder to initiator.
    pub sk_er: Key,
    /// SK_pi: initiator's AUTH.
    pub sk_pi: Key,
    /// SK_pr: responder's AUTH.
    pub sk_pr: Key,
}

/// Derives SKEYSEED and the IKE keys. `skeyseed_prf`/`skeyseed_key` are the PRF
/// and key of the SKEYSEED step: the new PRF with `Ni | Nr` for IKE_SA_INIT, the
/// old SA's PRF with `SK_d(old)` for an IKE SA rekey (§2.18), where the data is
/// `g^ir | Ni | Nr` instead of `g^ir`.
#[allow(clippy::too_many_arguments)]
pub fn derive_ike_keys(
    suite: &IkeSuite,
    rekey: Option<(PrfAlg, &[u8])>,
    shared: &[u8],
    ni: &[u8],
    nr: &[u8],
    spi_i: u64,
    spi_r: u64,
) -> IkeKeys {
    let skeyseed = match rekey {
        None => {
            let mut k = Zeroizing::new(Vec::with_capacity(ni.len() + nr.len()));
            k.extend_from_slice(ni);
            k.extend_from_slice(nr);
            Zeroizing::new(prf(suite.prf, &k, &[shared]))
        }
        Some((old_prf, sk_d)) => Zeroizing::new(prf(old_prf, sk_d, &[shared, ni, nr])),
    };
    let plen = suite.prf.out_len();
    let elen = suite.encr.key_len();
    let alen = suite.integ.map_or(0, |i| i.key_len());
    let total = plen * 3 + elen * 2 + alen * 2;
    let km = prf_plus(
        suite.prf,
        &skeyseed,
        &[ni, nr, &spi_i.to_be_bytes(), &spi_r.to_be_bytes()],
        total,
    );
    let mut at = 0;
    let mut take = |n: usize| {
        let k = Key::from_slice(&km[at..at + n]);
        at += n;
        k
    };
    let sk_d = take(plen);
    let sk_ai = take(alen);
    let sk_ar = take(alen);
    let sk_ei = take(elen);
    let sk_er = take(elen);
    let sk_pi = take(plen);
    let sk_pr = take(plen);
    IkeKeys {
        skeyseed: Key::from_slice(&skeyseed),
        sk_d,
        sk_ai,
        sk_ar,
        sk_ei,
        sk_er,
        sk_pi,
        sk_pr,
    }
}

/// Child SA keys (§2.17), named by the direction of the exchange that made them.
#[derive(Clone, Debug)]
pub struct ChildKeys {
    /// Encryption key, exchange initiator to responder.
    pub ei: Key,
    /// Integrity key, exchange initiator to responder.
    pub ai: Key,
    /// Encryption key, responder to initiator.
    pub er: Key,
    /// Integrity key, responder to initiator.
    pub ar: Key,
}

/// KEYMAT = prf+(SK_d, [g^ir (new) |] Ni | Nr), split as ei | ai | er | ar.
pub fn derive_child_keys(
    prf_alg: PrfAlg,
    sk_d: &[u8],
    shared: Option<&[u8]>,
    ni: &[u8],
    nr: &[u8],
    encr_len: usize,
    integ_len: usize,
) -> ChildKeys {
    let mut seed: Vec<&[u8]> = Vec::with_capacity(3);
    if let Some(s) = shared {
        seed.push(s);
    }
    seed.push(ni);
    seed.push(nr);
    let km = prf_plus(prf_alg, sk_d, &seed, 2 * (encr_len + integ_len));
    let mut at = 0;
    let mut take = |n: usize| {
        let k = Key::from_slice(&km[at..at + n]);
        at += n;
        k
    };
    let ei = take(encr_len);
    let ai = take(integ_len);
    let er = take(encr_len);
    let ar = take(integ_len);
    ChildKeys { ei, ai, er, ar }
}

/// AUTH for a shared key (§2.15):
/// `prf(prf(PSK, "Key Pad for IKEv2"), RealMessage | Nonce | prf(SK_p, IDbody))`.
pub fn psk_auth(
    prf_alg: PrfAlg,
    psk: &[u8],
    real_message: &[u8],
    other_nonce: &[u8],
    sk_p: &[u8],
    id_body: &[u8],
) -> Vec<u8> {
    let maced_id = prf(prf_alg, sk_p, &[id_body]);
    let key = Zeroizing::new(prf(prf_alg, psk, &[b"Key Pad for IKEv2"]));
    prf(prf_alg, &key, &[real_message, other_nonce, &maced_id])
}

/// Constant-time equality.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// NAT_DETECTION_*_IP data: SHA-1(SPIi | SPIr | IP | port).
pub fn nat_hash(spi_i: u64, spi_r: u64, addr: std::net::SocketAddr) -> [u8; 20] {
    let mut h = Sha1::new();
    h.update(spi_i.to_be_bytes());
    h.update(spi_r.to_be_bytes());
    match addr.ip() {
        std::net::IpAddr::V4(a) => h.update(a.octets()),
        std::net::IpAddr::V6(a) => h.update(a.octets()),
    }
    h.update(addr.port().to_be_bytes());
    h.finalize().into()
}

/// SHA-256 of the parts (cookies).
pub fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

// ----------------------------------------------------------- Diffie-Hellman

const MODP1024_P: &str = "ffffffffffffffffc90fdaa22168c234c4c6628b80dc1cd129024e088a67cc74020bbea63b139b22514a08798e3404ddef9519b3cd3a431b302b0a6df25f14374fe1356d6d51c245e485b576625e7ec6f44c42e9a637ed6b0bff5cb6f406b7edee386bfb5a899fa5ae9f24117c4b1fe649286651ece65381ffffffffffffffff";
const MODP2048_P: &str = "ffffffffffffffffc90fdaa22168c234c4c6628b80dc1cd129024e088a67cc74020bbea63b139b22514a08798e3404ddef9519b3cd3a431b302b0a6df25f14374fe1356d6d51c245e485b576625e7ec6f44c42e9a637ed6b0bff5cb6f406b7edee386bfb5a899fa5ae9f24117c4b1fe649286651ece45b3dc2007cb8a163bf0598da48361c55d39a69163fa8fd24cf5f83655d23dca3ad961c62f356208552bb9ed529077096966d670c354e4abc9804f1746c08ca18217c32905e462e36ce3be39e772c180e86039b2783a2ec07a28fb5c55df06f4c52c9de2bcbf6955817183995497cea956ae515d2261898fa051015728e5a8aacaa68ffffffffffffffff";

// RFC 3526 §2 (group 5).
const MODP1536_P: &str = "ffffffffffffffffc90fdaa22168c234c4c6628b80dc1cd129024e088a67cc74020bbea63b139b22514a08798e3404ddef9519b3cd3a431b302b0a6df25f14374fe1356d6d51c245e485b576625e7ec6f44c42e9a637ed6b0bff5cb6f406b7edee386bfb5a899fa5ae9f24117c4b1fe649286651ece45b3dc2007cb8a163bf0598da48361c55d39a69163fa8fd24cf5f83655d23dca3ad961c62f356208552bb9ed529077096966d670c354e4abc9804f1746c08ca237327ffffffffffffffff";
const MODP3072_P: &str = "ffffffffffffffffc90fdaa22168c234c4c6628b80dc1cd129024e088a67cc74020bbea63b139b22514a08798e3404ddef9519b3cd3a431b302b0a6df25f14374fe1356d6d51c245e485b576625e7ec6f44c42e9a637ed6b0bff5cb6f406b7edee386bfb5a899fa5ae9f24117c4b1fe649286651ece45b3dc2007cb8a163bf0598da48361c55d39a69163fa8fd24cf5f83655d23dca3ad961c62f356208552bb9ed529077096966d670c354e4abc9804f1746c08ca18217c32905e462e36ce3be39e772c180e86039b2783a2ec07a28fb5c55df06f4c52c9de2bcbf6955817183995497cea956ae515d2261898fa051015728e5a8aaac42dad33170d04507a33a85521abdf1cba64ecfb850458dbef0a8aea71575d060c7db3970f85a6e1e4c7abf5ae8cdb0933d71e8c94e04a25619dcee3d2261ad2ee6bf12ffa06d98a0864d87602733ec86a64521f2b18177b200cbbe117577a615d6c770988c0bad946e208e24fa074e5ab3143db5bfce0fd108e4b82d120a93ad2caffffffffffffffff";
const MODP4096_P: &str = "ffffffffffffffffc90fdaa22168c234c4c6628b80dc1cd129024e088a67cc74020bbea63b139b22514a08798e3404ddef9519b3cd3a431b302b0a6df25f14374fe1356d6d51c245e485b576625e7ec6f44c42e9a637ed6b0bff5cb6f406b7edee386bfb5a899fa5ae9f24117c4b1fe649286651ece45b3dc2007cb8a163bf0598da48361c55d39a69163fa8fd24cf5f83655d23dca3ad961c62f356208552bb9ed529077096966d670c354e4abc9804f1746c08ca18217c32905e462e36ce3be39e772c180e86039b2783a2ec07a28fb5c55df06f4c52c9de2bcbf6955817183995497cea956ae515d2261898fa051015728e5a8aaac42dad33170d04507a33a85521abdf1cba64ecfb850458dbef0a8aea71575d060c7db3970f85a6e1e4c7abf5ae8cdb0933d71e8c94e04a25619dcee3d2261ad2ee6bf12ffa06d98a0864d87602733ec86a64521f2b18177b200cbbe117577a615d6c770988c0bad946e208e24fa074e5ab3143db5bfce0fd108e4b82d120a92108011a723c12a787e6d788719a10bdba5b2699c327186af4e23c1a946834b6150bda2583e9ca2ad44ce8dbbbc2db04de8ef92e8efc141fbecaa6287c59474e6bc05d99b2964fa090c3a2233ba186515be7ed1f612970cee2d7afb81bdd762170481cd0069127d5b05aa993b4ea988d8fddc186ffb7dc90a6c08f4df435c934063199ffffffffffffffff";
const MODP6144_P: &str = "ffffffffffffffffc90fdaa22168c234c4c6628b80dc1cd129024e088a67cc74020bbea63b139b22514a08798e3404ddef9519b3cd3a431b302b0a6df25f14374fe1356d6d51c245e485b576625e7ec6f44c42e9a637ed6b0bff5cb6f406b7edee386bfb5a899fa5ae9f24117c4b1fe649286651ece45b3dc2007cb8a163bf0598da48361c55d39a69163fa8fd24cf5f83655d23dca3ad961c62f356208552bb9ed529077096966d670c354e4abc9804f1746c08ca18217c32905e462e36ce3be39e772c180e86039b2783a2ec07a28fb5c55df06f4c52c9de2bcbf6955817183995497cea956ae515d2261898fa051015728e5a8aaac42dad33170d04507a33a85521abdf1cba64ecfb850458dbef0a8aea71575d060c7db3970f85a6e1e4c7abf5ae8cdb0933d71e8c94e04a25619dcee3d2261ad2ee6bf12ffa06d98a0864d87602733ec86a64521f2b18177b200cbbe117577a615d6c770988c0bad946e208e24fa074e5ab3143db5bfce0fd108e4b82d120a92108011a723c12a787e6d788719a10bdba5b2699c327186af4e23c1a946834b6150bda2583e9ca2ad44ce8dbbbc2db04de8ef92e8efc141fbecaa6287c59474e6bc05d99b2964fa090c3a2233ba186515be7ed1f612970cee2d7afb81bdd762170481cd0069127d5b05aa993b4ea988d8fddc186ffb7dc90a6c08f4df435c93402849236c3fab4d27c7026c1d4dcb2602646dec9751e763dba37bdf8ff9406ad9e530ee5db382f413001aeb06a53ed9027d831179727b0865a8918da3edbebcf9b14ed44ce6cbaced4bb1bdb7f1447e6cc254b332051512bd7af426fb8f401378cd2bf5983ca01c64b92ecf032ea15d1721d03f482d7ce6e74fef6d55e702f46980c82b5a84031900b1c9e59e7c97fbec7e8f323a97a7e36cc88be0f1d45b7ff585ac54bd407b22b4154aacc8f6d7ebf48e1d814cc5ed20f8037e0a79715eef29be32806a1d58bb7c5da76f550aa3d8a1fbff0eb19ccb1a313d55cda56c9ec2ef29632387fe8d76e3c0468043e8f663f4860ee12bf2d5b0b7474d6e694f91e6dcc4024ffffffffffffffff";
const MODP8192_P: &str = "ffffffffffffffffc90fdaa22168c234c4c6628b80dc1cd129024e088a67cc74020bbea63b139b22514a08798e3404ddef9519b3cd3a431b302b0a6df25f14374fe1356d6d51c245e485b576625e7ec6f44c42e9a637ed6b0bff5cb6f406b7edee386bfb5a899fa5ae9f24117c4b1fe649286651ece45b3dc2007cb8a163bf0598da48361c55d39a69163fa8fd24cf5f83655d23dca3ad961c62f356208552bb9ed529077096966d670c354e4abc9804f1746c08ca18217c32905e462e36ce3be39e772c180e86039b2783a2ec07a28fb5c55df06f4c52c9de2bcbf6955817183995497cea956ae515d2261898fa051015728e5a8aaac42dad33170d04507a33a85521abdf1cba64ecfb850458dbef0a8aea71575d060c7db3970f85a6e1e4c7abf5ae8cdb0933d71e8c94e04a25619dcee3d2261ad2ee6bf12ffa06d98a0864d87602733ec86a64521f2b18177b200cbbe117577a615d6c770988c0bad946e208e24fa074e5ab3143db5bfce0fd108e4b82d120a92108011a723c12a787e6d788719a10bdba5b2699c327186af4e23c1a946834b6150bda2583e9ca2ad44ce8dbbbc2db04de8ef92e8efc141fbecaa6287c59474e6bc05d99b2964fa090c3a2233ba186515be7ed1f612970cee2d7afb81bdd762170481cd0069127d5b05aa993b4ea988d8fddc186ffb7dc90a6c08f4df435c93402849236c3fab4d27c7026c1d4dcb2602646dec9751e763dba37bdf8ff9406ad9e530ee5db382f413001aeb06a53ed9027d831179727b0865a8918da3edbebcf9b14ed44ce6cbaced4bb1bdb7f1447e6cc254b332051512bd7af426fb8f401378cd2bf5983ca01c64b92ecf032ea15d1721d03f482d7ce6e74fef6d55e702f46980c82b5a84031900b1c9e59e7c97fbec7e8f323a97a7e36cc88be0f1d45b7ff585ac54bd407b22b4154aacc8f6d7ebf48e1d814cc5ed20f8037e0a79715eef29be32806a1d58bb7c5da76f550aa3d8a1fbff0eb19ccb1a313d55cda56c9ec2ef29632387fe8d76e3c0468043e8f663f4860ee12bf2d5b0b7474d6e694f91e6dbe115974a3926f12fee5e438777cb6a932df8cd8bec4d073b931ba3bc832b68d9dd300741fa7bf8afc47ed2576f6936ba424663aab639c5ae4f5683423b4742bf1c978238f16cbe39d652de3fdb8befc848ad922222e04a4037c0713eb57a81a23f0c73473fc646cea306b4bcbc8862f8385ddfa9d4b7fa2c087e879683303ed5bdd3a062b3cf5b3a278a66d2a13f83f44f82ddf310ee074ab6a364597e899a0255dc164f31cc50846851df9ab48195ded7ea1b1d510bd7ee74d73faf36bc31ecfa268359046f4eb879f924009438b481c6cd7889a002ed5ee382bc9190da6fc026e479558e4475677e9aa9e3050e2765694dfc81f56e880b96e7160c980dd98edd3dfffffffffffffffff";

/// Private exponent length in bits for the MODP groups (RFC 3526 §8 asks for at
/// least twice the group's strength: 2x112 for MODP-2048).
const MODP_EXP_BITS: usize = 512;

enum DhInner {
    Modp1024(Box<U1024>),
    Modp2048(Box<U2048>),
    Modp1536(Box<U1536>),
    Modp3072(Box<U3072>),
    Modp4096(Box<U4096>),
    Modp6144(Box<U6144>),
    Modp8192(Box<U8192>),
    P256(p256::SecretKey),
    P384(p384::SecretKey),
    P521(p521::SecretKey),
    X25519(x25519_dalek::StaticSecret),
}

/// An ephemeral Diffie-Hellman private value.
pub struct DhPrivate {
    group: DhGroup,
    inner: DhInner,
    public: Vec<u8>,
}

impl std::fmt::Debug for DhPrivate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DhPrivate({:?}, <redacted>)", self.group)
    }
}

impl Drop for DhPrivate {
    fn drop(&mut self) {
        match &mut self.inner {
            DhInner::Modp1024(x) => x.zeroize(),
            DhInner::Modp2048(x) => x.zeroize(),
            DhInner::Modp1536(x) => x.zeroize(),
            DhInner::Modp3072(x) => x.zeroize(),
            DhInner::Modp4096(x) => x.zeroize(),
            DhInner::Modp6144(x) => x.zeroize(),
            DhInner::Modp8192(x) => x.zeroize(),
            // p256/p384/p521 SecretKey and StaticSecret zeroize themselves on drop
            _ => {}
        }
    }
}

fn modp_pub<const L: usize>(p_hex: &str, x: &crypto_bigint::Uint<L>) -> crypto_bigint::Uint<L> {
    let p = crypto_bigint::Uint::<L>::from_be_hex(p_hex);
    let params = DynResidueParams::new(&p);
    let g = DynResidue::new(&crypto_bigint::Uint::<L>::from_u8(2), params);
    g.pow_bounded_exp(x, MODP_EXP_BITS).retrieve()
}

fn modp_shared<const L: usize>(
    p_hex: &str,
    x: &crypto_bigint::Uint<L>,
    peer: &crypto_bigint::Uint<L>,
) -> Result<crypto_bigint::Uint<L>, IkeError> {
    let p = crypto_bigint::Uint::<L>::from_be_hex(p_hex);
    let one = crypto_bigint::Uint::<L>::ONE;
    let pm1 = p.wrapping_sub(&one);
    // 1 < y < p-1 (RFC 7296 §5 / RFC 2631 checks against small-subgroup values)
    if peer <= &one || peer >= &pm1 {
        return Err(IkeError::KeyExchange("MODP public value out of range"));
    }
    let params = DynResidueParams::new(&p);
    let y = DynResidue::new(peer, params);
    Ok(y.pow_bounded_exp(x, MODP_EXP_BITS).retrieve())
}

macro_rules! modp_gen {
    ($rng:expr, $group:expr, $var:ident, $ty:ty, $p:expr, $len:expr) => {{
        let mut b = Zeroizing::new([0u8; $len]);
        $rng.fill_bytes(&mut b[$len - MODP_EXP_BITS / 8..]);
        let x = <$ty>::from_be_slice(&b[..]);
        let public = modp_pub($p, &x).to_be_bytes().to_vec();
        DhPrivate {
            group: $group,
            inner: DhInner::$var(Box::new(x)),
            public,
        }
    }};
}

macro_rules! modp_sh {
    ($p:expr, $ty:ty, $x:expr, $peer:expr) => {{
        let y = <$ty>::from_be_slice($peer);
        let s = modp_shared($p, $x, &y)?;
        Ok(Zeroizing::new(s.to_be_bytes().to_vec()))
    }};
}

impl DhPrivate {
    /// Generates a fresh private value and its public value.
    pub fn generate(group: DhGroup, rng: &mut dyn RngCore) -> Self {
        match group {
            DhGroup::Modp1024 => {
                let mut b = Zeroizing::new([0u8; 128]);
                rng.fill_bytes(&mut b[128 - MODP_EXP_BITS / 8..]);
                let x = U1024::from_be_slice(&b[..]);
                let public = modp_pub(MODP1024_P, &x).to_be_bytes().to_vec();
                DhPrivate {
                    group,
                    inner: DhInner::Modp1024(Box::new(x)),
                    public,
                }
            }
            DhGroup::Modp2048 => {
                let mut b = Zeroizing::new([0u8; 256]);
                rng.fill_bytes(&mut b[256 - MODP_EXP_BITS / 8..]);
                let x = U2048::from_be_slice(&b[..]);
                let public = modp_pub(MODP2048_P, &x).to_be_bytes().to_vec();
                DhPrivate {
                    group,
                    inner: DhInner::Modp2048(Box::new(x)),
                    public,
                }
            }
            DhGroup::Modp1536 => modp_gen!(rng, group, Modp1536, U1536, MODP1536_P, 192),
            DhGroup::Modp3072 => modp_gen!(rng, group, Modp3072, U3072, MODP3072_P, 384),
            DhGroup::Modp4096 => modp_gen!(rng, group, Modp4096, U4096, MODP4096_P, 512),
            DhGroup::Modp6144 => modp_gen!(rng, group, Modp6144, U6144, MODP6144_P, 768),
            DhGroup::Modp8192 => modp_gen!(rng, group, Modp8192, U8192, MODP8192_P, 1024),
            DhGroup::Ecp521 => loop {
                let mut b = Zeroizing::new([0u8; 66]);
                rng.fill_bytes(&mut b[..]);
                b[0] &= 1; // 521 bits
                if let Ok(sk) = p521::SecretKey::from_slice(&b[..]) {
                    use p521::elliptic_curve::sec1::ToEncodedPoint;
                    let pt = sk.public_key().to_encoded_point(false);
                    let public = pt.as_bytes()[1..].to_vec();
                    break DhPrivate {
                        group,
                        inner: DhInner::P521(sk),
                        public,
                    };
                }
            },
            DhGroup::Ecp256 => loop {
                let mut b = Zeroizing::new([0u8; 32]);
                rng.fill_bytes(&mut b[..]);
                if let Ok(sk) = p256::SecretKey::from_slice(&b[..]) {
                    use p256::elliptic_curve::sec1::ToEncodedPoint;
                    let pt = sk.public_key().to_encoded_point(false);
                    let public = pt.as_bytes()[1..].to_vec();
                    break DhPrivate {
                        group,
                        inner: DhInner::P256(sk),
                        public,
                    };
                }
            },
            DhGroup::Ecp384 => loop {
                let mut b = Zeroizing::new([0u8; 48]);
                rng.fill_bytes(&mut b[..]);
                if let Ok(sk) = p384::SecretKey::from_slice(&b[..]) {
                    use p384::elliptic_curve::sec1::ToEncodedPoint;
                    let pt = sk.public_key().to_encoded_point(false);
                    let public = pt.as_bytes()[1..].to_vec();
                    break DhPrivate {
                        group,
                        inner: DhInner::P384(sk),
                        public,
                    };
                }
            },
            DhGroup::Curve25519 => {
                let mut b = [0u8; 32];
                rng.fill_bytes(&mut b);
                let sk = x25519_dalek::StaticSecret::from(b);
                b.zeroize();
                let public = x25519_dalek::PublicKey::from(&sk).as_bytes().to_vec();
                DhPrivate {
                    group,
                    inner: DhInner::X25519(sk),
                    public,
                }
            }
        }
    }

    /// The group.
    pub fn group(&self) -> DhGroup {
        self.group
    }

    /// The public value as carried in a KE payload.
    pub fn public(&self) -> &[u8] {
        &self.public
    }

    /// The shared secret g^ir from the peer's public value, validated.
    pub fn shared(&self, peer: &[u8]) -> Result<Secret, IkeError> {
        if peer.len() != self.group.public_len() {
            return Err(IkeError::KeyExchange("public value has the wrong length"));
        }
        match &self.inner {
            DhInner::Modp1024(x) => {
                let y = U1024::from_be_slice(peer);
                let s = modp_shared(MODP1024_P, x, &y)?;
                Ok(Zeroizing::new(s.to_be_bytes().to_vec()))
            }
            DhInner::Modp2048(x) => {
                let y = U2048::from_be_slice(peer);
                let s = modp_shared(MODP2048_P, x, &y)?;
                Ok(Zeroizing::new(s.to_be_bytes().to_vec()))
            }
            DhInner::Modp1536(x) => modp_sh!(MODP1536_P, U1536, x, peer),
            DhInner::Modp3072(x) => modp_sh!(MODP3072_P, U3072, x, peer),
            DhInner::Modp4096(x) => modp_sh!(MODP4096_P, U4096, x, peer),
            DhInner::Modp6144(x) => modp_sh!(MODP6144_P, U6144, x, peer),
            DhInner::Modp8192(x) => modp_sh!(MODP8192_P, U8192, x, peer),
            DhInner::P521(sk) => {
                let mut sec1 = Vec::with_capacity(133);
                sec1.push(4);
                sec1.extend_from_slice(peer);
                let pk = p521::PublicKey::from_sec1_bytes(&sec1)
                    .map_err(|_| IkeError::KeyExchange("P-521 point not on the curve"))?;
                let s = p521::ecdh::diffie_hellman(sk.to_nonzero_scalar(), pk.as_affine());
                Ok(Zeroizing::new(s.raw_secret_bytes().to_vec()))
            }
            DhInner::P256(sk) => {
                let mut sec1 = Vec::with_capacity(65);
                sec1.push(4);
                sec1.extend_from_slice(peer);
                let pk = p256::PublicKey::from_sec1_bytes(&sec1)
                    .map_err(|_| IkeError::KeyExchange("P-256 point not on the curve"))?;
                let s = p256::ecdh::diffie_hellman(sk.to_nonzero_scalar(), pk.as_affine());
                Ok(Zeroizing::new(s.raw_secret_bytes().to_vec()))
            }
            DhInner::P384(sk) => {
                let mut sec1 = Vec::with_capacity(97);
                sec1.push(4);
                sec1.extend_from_slice(peer);
                let pk = p384::PublicKey::from_sec1_bytes(&sec1)
                    .map_err(|_| IkeError::KeyExchange("P-384 point not on the curve"))?;
                let s = p384::ecdh::diffie_hellman(sk.to_nonzero_scalar(), pk.as_affine());
                Ok(Zeroizing::new(s.raw_secret_bytes().to_vec()))
            }
            DhInner::X25519(sk) => {
                let mut b = [0u8; 32];
                b.copy_from_slice(peer);
                let s = sk.diffie_hellman(&x25519_dalek::PublicKey::from(b));
                if !s.was_contributory() {
                    return Err(IkeError::KeyExchange("X25519 low-order public value"));
                }
                Ok(Zeroizing::new(s.as_bytes().to_vec()))
            }
        }
    }
}

// --------------------------------------------------------------- SK payload

enum Cbc {
    A128([u8; 16]),
    A192([u8; 24]),
    A256([u8; 32]),
}
impl Drop for Cbc {
    fn drop(&mut self) {
        match self {
            Cbc::A128(k) => k.zeroize(),
            Cbc::A192(k) => k.zeroize(),
            Cbc::A256(k) => k.zeroize(),
        }
    }
}

enum SkAlg {
    Gcm128(Box<Aes128Gcm>),
    Gcm256(Box<Aes256Gcm>),
    ChaCha(Box<chacha20poly1305::ChaCha20Poly1305>),
    Cbc(Cbc, IkeInteg, Key),
}

/// One direction of an IKE SA's encrypted-payload protection.
pub struct SkCipher {
    alg: SkAlg,
    salt: [u8; 4],
}

impl std::fmt::Debug for SkCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SkCipher(<redacted>)")
    }
}

fn hmac_trunc(integ: IkeInteg, key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut t = prf(integ.hash(), key, &[data]);
    t.truncate(integ.icv_len());
    t
}

impl SkCipher {
    /// Builds the cipher for one direction from SK_e and SK_a.
    pub fn new(suite: &IkeSuite, sk_e: &Key, sk_a: &Key) -> Result<Self, IkeError> {
        let e = sk_e.bytes();
        if e.len() != suite.encr.key_len() {
            return Err(IkeError::Config("SK_e length".into()));
        }
        let mut salt = [0u8; 4];
        let alg = match suite.encr {
            IkeEncr::AesGcm128 => {
                salt.copy_from_slice(&e[16..20]);
                SkAlg::Gcm128(Box::new(
                    Aes128Gcm::new_from_slice(&e[..16])
                        .map_err(|_| IkeError::Config("AES-GCM key".into()))?,
                ))
            }
            IkeEncr::AesGcm256 => {
                salt.copy_from_slice(&e[32..36]);
                SkAlg::Gcm256(Box::new(
                    Aes256Gcm::new_from_slice(&e[..32])
                        .map_err(|_| IkeError::Config("AES-GCM key".into()))?,
                ))
            }
            IkeEncr::ChaCha20Poly1305 => {
                salt.copy_from_slice(&e[32..36]);
                SkAlg::ChaCha(Box::new(
                    chacha20poly1305::ChaCha20Poly1305::new_from_slice(&e[..32])
                        .map_err(|_| IkeError::Config("ChaCha20-Poly1305 key".into()))?,
                ))
            }
            IkeEncr::AesCbc128 | IkeEncr::AesCbc192 | IkeEncr::AesCbc256 => {
                let integ = suite
                    .integ
                    .ok_or_else(|| IkeError::Config("AES-CBC without integrity".into()))?;
                let c = match suite.encr {
                    IkeEncr::AesCbc128 => {
                        let mut k = [0u8; 16];
                        k.copy_from_slice(e);
                        Cbc::A128(k)
                    }
                    IkeEncr::AesCbc192 => {
                        let mut k = [0u8; 24];
                        k.copy_from_slice(e);
                        Cbc::A192(k)
                    }
                    _ => {
                        let mut k = [0u8; 32];
                        k.copy_from_slice(e);
                        Cbc::A256(k)
                    }
                };
                SkAlg::Cbc(c, integ, sk_a.clone())
            }
        };
        Ok(SkCipher { alg, salt })
    }

    fn iv_len(&self) -> usize {
        match self.alg {
            SkAlg::Cbc(..) => 16,
            _ => 8,
        }
    }
    /// Bytes an SK payload adds around its contents at most (generic header,
    /// IV, padding and pad length, ICV).
    pub fn overhead(&self) -> usize {
        let pad = if matches!(self.alg, SkAlg::Cbc(..)) {
            16
        } else {
            1
        };
        wire::GENERIC_LEN + self.iv_len() + pad + self.icv_len()
    }
    fn icv_len(&self) -> usize {
        match &self.alg {
            SkAlg::Cbc(_, i, _) => i.icv_len(),
            _ => 16,
        }
    }

    /// Builds a protected message: header (with SK as first payload), SK payload
    /// holding `inner` (whose first payload type is `first_inner`).
    #[allow(clippy::too_many_arguments)]
    pub fn seal(
        &self,
        spi_i: u64,
        spi_r: u64,
        exchange: u8,
        flag_bits: u8,
        msg_id: u32,
        first_inner: u8,
        inner: &[u8],
        iv_counter: u64,
        rng: &mut dyn RngCore,
    ) -> Vec<u8> {
        self.seal_with(
            wire::payload::SK,
            &[],
            (spi_i, spi_r, exchange, flag_bits, msg_id),
            first_inner,
            inner,
            iv_counter,
            rng,
        )
    }

    /// Like [`seal`](Self::seal) for an SK (`extra` empty) or an SKF payload
    /// (`extra` = Fragment Number | Total Fragments, RFC 7383 §2.5, covered by
    /// the AAD / ICV like the rest of the header).
    #[allow(clippy::too_many_arguments)]
    pub fn seal_with(
        &self,
        ptype: u8,
        extra: &[u8],
        (spi_i, spi_r, exchange, flag_bits, msg_id): (u64, u64, u8, u8, u32),
        first_inner: u8,
        inner: &[u8],
        iv_counter: u64,
        rng: &mut dyn RngCore,
    ) -> Vec<u8> {
        let iv_len = self.iv_len();
        let icv_len = self.icv_len();
        let block = if matches!(self.alg, SkAlg::Cbc(..)) {
            16
        } else {
            1
        };
        let pad = (block - (inner.len() + 1) % block) % block;
        let ct_len = inner.len() + pad + 1;
        let sk_len = wire::GENERIC_LEN + extra.len() + iv_len + ct_len + icv_len;
        let mut out = Vec::with_capacity(HEADER_LEN + sk_len);
        wire::write_header(&mut out, spi_i, spi_r, ptype, exchange, flag_bits, msg_id);
        out.push(first_inner);
        out.push(0);
        out.extend_from_slice(&(sk_len as u16).to_be_bytes());
        out.extend_from_slice(extra);
        let iv_at = out.len();
        match &self.alg {
            SkAlg::Cbc(..) => {
                let mut iv = [0u8; 16];
                rng.fill_bytes(&mut iv);
                out.extend_from_slice(&iv);
            }
            _ => out.extend_from_slice(&iv_counter.to_be_bytes()),
        }
        let ct_at = out.len();
        out.extend_from_slice(inner);
        out.extend(std::iter::repeat_n(0u8, pad));
        out.push(pad as u8);
        out.extend(std::iter::repeat_n(0u8, icv_len));
        wire::finish_length(&mut out);
        let total = out.len();
        match &self.alg {
            SkAlg::Gcm128(_) | SkAlg::Gcm256(_) | SkAlg::ChaCha(_) => {
                let mut nonce = [0u8; 12];
                nonce[..4].copy_from_slice(&self.salt);
                nonce[4..].copy_from_slice(&out[iv_at..iv_at + 8]);
                let (aad, rest) = out.split_at_mut(iv_at);
                let (ct, icv) = rest[8..].split_at_mut(ct_len);
                let tag = match &self.alg {
                    SkAlg::Gcm128(c) => {
                        c.encrypt_in_place_detached(Nonce::from_slice(&nonce), aad, ct)
                    }
                    SkAlg::Gcm256(c) => {
                        c.encrypt_in_place_detached(Nonce::from_slice(&nonce), aad, ct)
                    }
                    SkAlg::ChaCha(c) => {
                        use chacha20poly1305::aead::AeadInPlace as _;
                        c.encrypt_in_place_detached(
                            chacha20poly1305::Nonce::from_slice(&nonce),
                            aad,
                            ct,
                        )
                        .map(|t| *Tag::from_slice(&t))
                        .map_err(|_| aes_gcm::Error)
                    }
                    SkAlg::Cbc(..) => unreachable_tag(),
                };
                if let Ok(tag) = tag {
                    icv.copy_from_slice(&tag);
                }
            }
            SkAlg::Cbc(c, integ, ak) => {
                let mut iv = [0u8; 16];
                iv.copy_from_slice(&out[iv_at..iv_at + 16]);
                let ct = &mut out[ct_at..ct_at + ct_len];
                cbc_encrypt(c, &iv, ct);
                let mac = hmac_trunc(*integ, ak.bytes(), &out[..total - icv_len]);
                out[total - icv_len..].copy_from_slice(&mac);
            }
        }
        out
    }

    /// Verifies and decrypts the SK payload of `msg` whose generic header
    /// starts at `sk_at`; returns the inner payload bytes.
    pub fn open(&self, msg: &[u8], sk_at: usize) -> Result<Secret, IkeError> {
        self.open_with(msg, sk_at, 0)
    }

    /// Like [`open`](Self::open); `extra` bytes after the generic header
    /// (4 for an SKF payload's fragment numbers) belong to the AAD.
    pub fn open_with(&self, msg: &[u8], sk_at: usize, extra: usize) -> Result<Secret, IkeError> {
        let iv_len = self.iv_len();
        let icv_len = self.icv_len();
        let body_at = sk_at + wire::GENERIC_LEN + extra;
        if msg.len() < body_at + iv_len + icv_len + 1 {
            return Err(IkeError::Decrypt("encrypted payload shorter than IV + ICV"));
        }
        let ct_at = body_at + iv_len;
        let icv_at = msg.len() - icv_len;
        let ct = &msg[ct_at..icv_at];
        match &self.alg {
            SkAlg::Gcm128(_) | SkAlg::Gcm256(_) | SkAlg::ChaCha(_) => {
                let mut nonce = [0u8; 12];
                nonce[..4].copy_from_slice(&self.salt);
                nonce[4..].copy_from_slice(&msg[body_at..body_at + 8]);
                let aad = &msg[..body_at];
                let mut pt = Zeroizing::new(ct.to_vec());
                let tag = Tag::from_slice(&msg[icv_at..]);
                let r = match &self.alg {
                    SkAlg::Gcm128(c) => {
                        c.decrypt_in_place_detached(Nonce::from_slice(&nonce), aad, &mut pt, tag)
                    }
                    SkAlg::Gcm256(c) => {
                        c.decrypt_in_place_detached(Nonce::from_slice(&nonce), aad, &mut pt, tag)
                    }
                    SkAlg::ChaCha(c) => {
                        use chacha20poly1305::aead::AeadInPlace as _;
                        c.decrypt_in_place_detached(
                            chacha20poly1305::Nonce::from_slice(&nonce),
                            aad,
                            &mut pt,
                            chacha20poly1305::Tag::from_slice(&msg[icv_at..]),
                        )
                        .map_err(|_| aes_gcm::Error)
                    }
                    SkAlg::Cbc(..) => Err(aes_gcm::Error),
                };
                r.map_err(|_| IkeError::Integrity)?;
                strip_pad(pt)
            }
            SkAlg::Cbc(c, integ, ak) => {
                let mac = hmac_trunc(*integ, ak.bytes(), &msg[..icv_at]);
                if !ct_eq(&mac, &msg[icv_at..]) {
                    return Err(IkeError::Integrity);
                }
                if ct.is_empty() || !ct.len().is_multiple_of(16) {
                    return Err(IkeError::Decrypt("CBC ciphertext not a multiple of 16"));
                }
                let mut iv = [0u8; 16];
                iv.copy_from_slice(&msg[body_at..body_at + 16]);
                let mut pt = Zeroizing::new(ct.to_vec());
                cbc_decrypt(c, &iv, &mut pt);
                strip_pad(pt)
            }
        }
    }
}

fn unreachable_tag() -> Result<Tag, aes_gcm::Error> {
    Err(aes_gcm::Error)
}

fn strip_pad(mut pt: Secret) -> Result<Secret, IkeError> {
    let Some(&pad) = pt.last() else {
        return Err(IkeError::Decrypt("empty plaintext"));
    };
    let pad = pad as usize;
    if pad + 1 > pt.len() {
        return Err(IkeError::Decrypt("pad length exceeds plaintext"));
    }
    let n = pt.len() - pad - 1;
    pt.truncate(n);
    Ok(pt)
}

fn cbc_encrypt(c: &Cbc, iv: &[u8; 16], buf: &mut [u8]) {
    let n = buf.len();
    // Lengths are multiples of 16 by construction; the padded API cannot fail then.
    let _ = match c {
        Cbc::A128(k) => cbc::Encryptor::<aes::Aes128>::new(k.into(), iv.into())
            .encrypt_padded_mut::<NoPadding>(buf, n)
            .map(|_| ()),
        Cbc::A192(k) => cbc::Encryptor::<aes::Aes192>::new(k.into(), iv.into())
            .encrypt_padded_mut::<NoPadding>(buf, n)
            .map(|_| ()),
        Cbc::A256(k) => cbc::Encryptor::<aes::Aes256>::new(k.into(), iv.into())
            .encrypt_padded_mut::<NoPadding>(buf, n)
            .map(|_| ()),
    };
}

fn cbc_decrypt(c: &Cbc, iv: &[u8; 16], buf: &mut [u8]) {
    let _ = match c {
        Cbc::A128(k) => cbc::Decryptor::<aes::Aes128>::new(k.into(), iv.into())
            .decrypt_padded_mut::<NoPadding>(buf)
            .map(|_| ()),
        Cbc::A192(k) => cbc::Decryptor::<aes::Aes192>::new(k.into(), iv.into())
            .decrypt_padded_mut::<NoPadding>(buf)
            .map(|_| ()),
        Cbc::A256(k) => cbc::Decryptor::<aes::Aes256>::new(k.into(), iv.into())
            .decrypt_padded_mut::<NoPadding>(buf)
            .map(|_| ()),
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn prf_plus_matches_definition() {
        let k = b"key";
        let s = b"seed";
        let out = prf_plus(PrfAlg::HmacSha256, k, &[s], 80);
        let t1 = prf(PrfAlg::HmacSha256, k, &[s, &[1]]);
        let t2 = prf(PrfAlg::HmacSha256, k, &[&t1, s, &[2]]);
        let t3 = prf(PrfAlg::HmacSha256, k, &[&t2, s, &[3]]);
        assert_eq!(&out[..32], &t1[..]);
        assert_eq!(&out[32..64], &t2[..]);
        assert_eq!(&out[64..80], &t3[..16]);
    }

    #[test]
    fn every_group_agrees() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for g in [
            DhGroup::Modp1024,
            DhGroup::Modp2048,
            DhGroup::Modp3072,
            DhGroup::Modp4096,
            DhGroup::Modp6144,
            DhGroup::Modp8192,
            DhGroup::Ecp521,
            DhGroup::Ecp256,
            DhGroup::Ecp384,
            DhGroup::Curve25519,
            DhGroup::Modp1536,
        ] {
            let a = DhPrivate::generate(g, &mut rng);
            let b = DhPrivate::generate(g, &mut rng);
            assert_eq!(a.public().len(), g.public_len());
            let sa = a.shared(b.public()).unwrap();
            let sb = b.shared(a.public()).unwrap();
            assert_eq!(sa, sb, "{g:?}");
            assert!(a.shared(&vec![0u8; g.public_len()]).is_err(), "{g:?} zero");
            assert!(a.shared(&[1, 2, 3]).is_err());
        }
    }

    #[test]
    fn modp_rejects_one_and_p_minus_one() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let a = DhPrivate::generate(DhGroup::Modp2048, &mut rng);
        let mut one = vec![0u8; 256];
        one[255] = 1;
        assert!(a.shared(&one).is_err());
        let p = U2048::from_be_hex(MODP2048_P);
        let pm1 = p.wrapping_sub(&U2048::ONE).to_be_bytes();
        assert!(a.shared(&pm1).is_err());
        let p = p.to_be_bytes();
        assert!(a.shared(&p).is_err());
    }

    #[test]
    fn sk_round_trip_and_tamper() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for (encr, integ) in [
            (IkeEncr::AesGcm128, None),
            (IkeEncr::AesGcm256, None),
            (IkeEncr::ChaCha20Poly1305, None),
            (IkeEncr::AesCbc128, Some(IkeInteg::HmacSha256_128)),
            (IkeEncr::AesCbc256, Some(IkeInteg::HmacSha512_256)),
            (IkeEncr::AesCbc192, Some(IkeInteg::HmacSha1_96)),
        ] {
            let suite = IkeSuite {
                encr,
                integ,
                prf: PrfAlg::HmacSha256,
                dh: DhGroup::Ecp256,
            };
            let ek = Key::new((0..encr.key_len() as u8).collect());
            let ak = Key::new(vec![9; integ.map_or(0, |i| i.key_len())]);
            let c = SkCipher::new(&suite, &ek, &ak).unwrap();
            for n in [0usize, 1, 15, 16, 17, 100] {
                let inner: Vec<u8> = (0..n as u8).collect();
                let m = c.seal(1, 2, 35, 0x08, 1, 41, &inner, 5, &mut rng);
                let h = wire::Header::parse(&m).unwrap();
                assert_eq!(h.next_payload(), wire::payload::SK);
                let pt = c.open(&m, HEADER_LEN).unwrap();
                assert_eq!(&pt[..], &inner[..]);
                for i in [0, 20, HEADER_LEN + 5, m.len() - 1] {
                    let mut bad = m.clone();
                    bad[i] ^= 1;
                    assert!(c.open(&bad, HEADER_LEN).is_err(), "{encr:?} byte {i}");
                }
            }
        }
    }
}
