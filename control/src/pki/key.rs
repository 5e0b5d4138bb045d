//! Public and private keys, signature schemes, signing and verification
//! (aws-lc-rs; see the module doc of `pki` for the choice).
//!
//! Private keys come from PEM or DER files: PKCS#8 (`PRIVATE KEY`), PKCS#1
//! (`RSA PRIVATE KEY`, what FreeS/WAN/strongSwan write for RSA) and SEC1 (`EC
//! PRIVATE KEY`, what `pki --gen --type ecdsa` writes). The file must be mode
//! 0600 or stricter and belong to root or to us. The key material lives in
//! aws-lc (which wipes it when freed) and in zeroized buffers; `Debug` shows
//! only the type, size and a fingerprint of the public key.

use std::fmt;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self as sig, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use const_oid::ObjectIdentifier;
use der::asn1::{AnyRef, BitString, Null};
use der::{Decode, Encode};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use spki::{AlgorithmIdentifierOwned, AlgorithmIdentifierRef, SubjectPublicKeyInfoOwned};
use zeroize::Zeroizing;

use super::{malformed, rsa_legacy, PkiError};

const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_RSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
const OID_MGF1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.8");
const OID_SHA1_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.5");
const OID_SHA256_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const OID_SHA384_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const OID_SHA512_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
const OID_EC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const OID_ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const OID_ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const OID_ECDSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.4");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const OID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const OID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const OID_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const OID_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");

/// RSA keys shorter than this are refused (RFC 8247 §3.2).
pub const MIN_RSA_BITS: usize = 2048;

/// A hash function of a signature scheme; the numbers are RFC 7427's
/// SIGNATURE_HASH_ALGORITHMS values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Hash {
    /// SHA-1 (1).
    Sha1,
    /// SHA2-256 (2).
    Sha256,
    /// SHA2-384 (3).
    Sha384,
    /// SHA2-512 (4).
    Sha512,
}

impl Hash {
    /// RFC 7427 hash algorithm number.
    pub const fn rfc7427(self) -> u16 {
        match self {
            Self::Sha1 => 1,
            Self::Sha256 => 2,
            Self::Sha384 => 3,
            Self::Sha512 => 4,
        }
    }
    /// From an RFC 7427 number.
    pub fn from_rfc7427(n: u16) -> Option<Self> {
        Some(match n {
            1 => Self::Sha1,
            2 => Self::Sha256,
            3 => Self::Sha384,
            4 => Self::Sha512,
            _ => return None,
        })
    }
    /// Output length.
    pub const fn len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 => 32,
            Self::Sha384 => 48,
            Self::Sha512 => 64,
        }
    }
    /// Never empty (clippy's len/is_empty pairing).
    pub const fn is_empty(self) -> bool {
        false
    }
    fn oid(self) -> ObjectIdentifier {
        match self {
            Self::Sha1 => OID_SHA1,
            Self::Sha256 => OID_SHA256,
            Self::Sha384 => OID_SHA384,
            Self::Sha512 => OID_SHA512,
        }
    }
    fn from_oid(o: &ObjectIdentifier) -> Option<Self> {
        Some(match *o {
            x if x == OID_SHA1 => Self::Sha1,
            x if x == OID_SHA256 => Self::Sha256,
            x if x == OID_SHA384 => Self::Sha384,
            x if x == OID_SHA512 => Self::Sha512,
            _ => return None,
        })
    }
    /// Name for logs.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Sha1 => "sha1",
            Self::Sha256 => "sha256",
            Self::Sha384 => "sha384",
            Self::Sha512 => "sha512",
        }
    }
}

/// A signature scheme: how a signature is made and checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SignatureScheme {
    /// RSASSA-PKCS1-v1_5 with a hash (SHA-1 only for IKEv2 AUTH method 1).
    RsaPkcs1(Hash),
    /// The PKCS#1 v1.5 type-1 block over the data itself, no DigestInfo
    /// (IKEv1 RSA signatures, RFC 2409 §5.1).
    RsaPkcs1Raw,
    /// RSASSA-PSS, MGF1 with the same hash, salt as long as the hash.
    RsaPss(Hash),
    /// ECDSA, signature DER-encoded (RFC 7427, X.509).
    Ecdsa(Hash),
    /// ECDSA, signature as r | s of the curve's size (IKEv2 methods 9-11, RFC 4754).
    EcdsaFixed(Hash),
    /// Ed25519 (RFC 8420 for IKEv2).
    Ed25519,
}

impl SignatureScheme {
    /// The hash, if the scheme has one.
    pub fn hash(self) -> Option<Hash> {
        match self {
            Self::RsaPkcs1(h) | Self::RsaPss(h) | Self::Ecdsa(h) | Self::EcdsaFixed(h) => Some(h),
            Self::RsaPkcs1Raw | Self::Ed25519 => None,
        }
    }

    /// Name for logs (`sha256WithRSAEncryption`, `rsassa-pss-sha384`, ...).
    pub fn name(self) -> String {
        match self {
            Self::RsaPkcs1(h) => format!("{}WithRSAEncryption", h.name()),
            Self::RsaPkcs1Raw => "rsa-pkcs1-nohash".into(),
            Self::RsaPss(h) => format!("rsassa-pss-{}", h.name()),
            Self::Ecdsa(h) => format!("ecdsa-with-{}", h.name()),
            Self::EcdsaFixed(h) => format!("ecdsa-{}-fixed", h.name()),
            Self::Ed25519 => "ed25519".into(),
        }
    }

    /// From an AlgorithmIdentifier (a certificate's or CRL's signature
    /// algorithm, or the one in an RFC 7427 AUTH payload).
    pub fn from_algorithm_identifier(a: &AlgorithmIdentifierRef<'_>) -> Result<Self, PkiError> {
        let o = a.oid;
        Ok(match o {
            x if x == OID_SHA1_RSA => Self::RsaPkcs1(Hash::Sha1),
            x if x == OID_SHA256_RSA => Self::RsaPkcs1(Hash::Sha256),
            x if x == OID_SHA384_RSA => Self::RsaPkcs1(Hash::Sha384),
            x if x == OID_SHA512_RSA => Self::RsaPkcs1(Hash::Sha512),
            x if x == OID_ECDSA_SHA256 => Self::Ecdsa(Hash::Sha256),
            x if x == OID_ECDSA_SHA384 => Self::Ecdsa(Hash::Sha384),
            x if x == OID_ECDSA_SHA512 => Self::Ecdsa(Hash::Sha512),
            x if x == OID_ED25519 => Self::Ed25519,
            x if x == OID_RSA_PSS => {
                let p = a
                    .parameters
                    .ok_or_else(|| PkiError::Unsupported("RSASSA-PSS without parameters".into()))?;
                let params: pkcs1::RsaPssParams<'_> = p
                    .decode_as()
                    .map_err(|e| malformed("RSASSA-PSS parameters", e))?;
                let h = Hash::from_oid(&params.hash.oid).ok_or_else(|| {
                    PkiError::Unsupported(format!("RSASSA-PSS with hash {}", params.hash.oid))
                })?;
                let mgf_h = params.mask_gen.parameters.as_ref().map(|p| p.oid);
                if params.mask_gen.oid != OID_MGF1 || mgf_h != Some(params.hash.oid) {
                    return Err(PkiError::Unsupported(
                        "RSASSA-PSS with a mask generation function other than MGF1 of the same hash".into(),
                    ));
                }
                if usize::from(params.salt_len) != h.len() || h == Hash::Sha1 {
                    return Err(PkiError::Unsupported(format!(
                        "RSASSA-PSS with {} and a {}-byte salt (supported: SHA-256/384/512 with a salt as long as the hash)",
                        h.name(),
                        params.salt_len
                    )));
                }
                Self::RsaPss(h)
            }
            o => {
                return Err(PkiError::Unsupported(format!(
                    "signature algorithm {o} (supported: RSA PKCS#1 v1.5 and PSS with SHA-2, ECDSA with SHA-2, Ed25519)"
                )))
            }
        })
    }

    /// From the DER of an AlgorithmIdentifier.
    pub fn from_algorithm_identifier_der(der: &[u8]) -> Result<Self, PkiError> {
        let a = AlgorithmIdentifierRef::from_der(der)
            .map_err(|e| malformed("AlgorithmIdentifier", e))?;
        Self::from_algorithm_identifier(&a)
    }

    /// The DER AlgorithmIdentifier of the scheme, as RFC 7427 AUTH carries it
    /// (None for the schemes that have none: PKCS#1 raw, fixed ECDSA).
    pub fn algorithm_identifier(self) -> Option<Vec<u8>> {
        let null = Null.to_der().ok()?;
        let null = AnyRef::from_der(&null).ok()?;
        let a = match self {
            Self::RsaPkcs1(h) => AlgorithmIdentifierRef {
                oid: match h {
                    Hash::Sha1 => OID_SHA1_RSA,
                    Hash::Sha256 => OID_SHA256_RSA,
                    Hash::Sha384 => OID_SHA384_RSA,
                    Hash::Sha512 => OID_SHA512_RSA,
                },
                parameters: Some(null),
            },
            Self::Ecdsa(h) => AlgorithmIdentifierRef {
                oid: match h {
                    Hash::Sha256 => OID_ECDSA_SHA256,
                    Hash::Sha384 => OID_ECDSA_SHA384,
                    Hash::Sha512 => OID_ECDSA_SHA512,
                    Hash::Sha1 => return None,
                },
                parameters: None,
            },
            Self::Ed25519 => AlgorithmIdentifierRef {
                oid: OID_ED25519,
                parameters: None,
            },
            Self::RsaPss(h) => {
                let hash = AlgorithmIdentifierRef {
                    oid: h.oid(),
                    parameters: Some(null),
                };
                let params = pkcs1::RsaPssParams {
                    hash,
                    mask_gen: spki::AlgorithmIdentifier {
                        oid: OID_MGF1,
                        parameters: Some(hash),
                    },
                    salt_len: h.len() as u8,
                    trailer_field: pkcs1::TrailerField::BC,
                };
                let pder = params.to_der().ok()?;
                let any = AnyRef::from_der(&pder).ok()?;
                return AlgorithmIdentifierRef {
                    oid: OID_RSA_PSS,
                    parameters: Some(any),
                }
                .to_der()
                .ok();
            }
            Self::RsaPkcs1Raw | Self::EcdsaFixed(_) => return None,
        };
        a.to_der().ok()
    }
}

/// The kind and size of a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// RSA with a modulus of this many bits.
    Rsa(usize),
    /// ECDSA on P-256.
    EcdsaP256,
    /// ECDSA on P-384.
    EcdsaP384,
    /// Ed25519.
    Ed25519,
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rsa(b) => write!(f, "RSA {b}"),
            Self::EcdsaP256 => f.write_str("ECDSA P-256"),
            Self::EcdsaP384 => f.write_str("ECDSA P-384"),
            Self::Ed25519 => f.write_str("Ed25519"),
        }
    }
}

/// A public key (from a certificate's SubjectPublicKeyInfo or a raw RSA key).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PublicKey {
    kind: KeyKind,
    /// RSAPublicKey DER (RSA), uncompressed SEC1 point (ECDSA), 32 bytes (Ed25519).
    raw: Vec<u8>,
    spki: Vec<u8>,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({}, {})", self.kind, self.fingerprint())
    }
}

fn rsa_bits(rsa_pub_der: &[u8]) -> Result<(usize, Vec<u8>, Vec<u8>), PkiError> {
    let k =
        pkcs1::RsaPublicKey::from_der(rsa_pub_der).map_err(|e| malformed("RSA public key", e))?;
    let n = k.modulus.as_bytes();
    let bits = n.len() * 8 - n.first().map_or(8, |b| b.leading_zeros() as usize);
    Ok((bits, n.to_vec(), k.public_exponent.as_bytes().to_vec()))
}

impl PublicKey {
    /// From a SubjectPublicKeyInfo.
    pub fn from_spki(spki: &SubjectPublicKeyInfoOwned) -> Result<Self, PkiError> {
        let der = spki
            .to_der()
            .map_err(|e| malformed("SubjectPublicKeyInfo", e))?;
        let raw = spki
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| malformed("SubjectPublicKeyInfo", "unused bits in the key"))?
            .to_vec();
        let o = spki.algorithm.oid;
        let kind = if o == OID_RSA || o == OID_RSA_PSS {
            let (bits, _, _) = rsa_bits(&raw)?;
            if bits < MIN_RSA_BITS {
                return Err(PkiError::Unsupported(format!(
                    "RSA key of {bits} bits (at least {MIN_RSA_BITS}, RFC 8247)"
                )));
            }
            KeyKind::Rsa(bits)
        } else if o == OID_EC {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
            match (curve, raw.len(), raw.first()) {
                (Some(c), 65, Some(4)) if c == OID_P256 => KeyKind::EcdsaP256,
                (Some(c), 97, Some(4)) if c == OID_P384 => KeyKind::EcdsaP384,
                (Some(c), _, _) if c == OID_P256 || c == OID_P384 => {
                    return Err(malformed("EC public key", "not an uncompressed point"))
                }
                (c, _, _) => {
                    return Err(PkiError::Unsupported(format!(
                        "EC key on curve {} (supported: P-256, P-384)",
                        c.map(|c| c.to_string()).unwrap_or_else(|| "?".into())
                    )))
                }
            }
        } else if o == OID_ED25519 {
            if raw.len() != 32 {
                return Err(malformed("Ed25519 public key", "not 32 bytes"));
            }
            KeyKind::Ed25519
        } else {
            return Err(PkiError::Unsupported(format!(
                "public key algorithm {o} (supported: RSA, ECDSA P-256/P-384, Ed25519)"
            )));
        };
        Ok(PublicKey {
            kind,
            raw,
            spki: der,
        })
    }

    /// From the DER of a SubjectPublicKeyInfo.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, PkiError> {
        let s = SubjectPublicKeyInfoOwned::from_der(der)
            .map_err(|e| malformed("SubjectPublicKeyInfo", e))?;
        Self::from_spki(&s)
    }

    /// An RSA key from its modulus and public exponent (big-endian).
    pub fn from_rsa(n: &[u8], e: &[u8]) -> Result<Self, PkiError> {
        let strip = |b: &[u8]| b[b.iter().take_while(|x| **x == 0).count()..].to_vec();
        let (n, e) = (strip(n), strip(e));
        if n.is_empty() || e.is_empty() {
            return Err(malformed("RSA public key", "empty modulus or exponent"));
        }
        let k = pkcs1::RsaPublicKey {
            modulus: pkcs1::UintRef::new(&n).map_err(|e| malformed("RSA modulus", e))?,
            public_exponent: pkcs1::UintRef::new(&e).map_err(|e| malformed("RSA exponent", e))?,
        };
        let raw = k.to_der().map_err(|e| malformed("RSA public key", e))?;
        let null = Null.to_der().map_err(|e| malformed("NULL", e))?;
        let spki = SubjectPublicKeyInfoOwned {
            algorithm: AlgorithmIdentifierOwned {
                oid: OID_RSA,
                parameters: Some(der::Any::from_der(&null).map_err(|e| malformed("NULL", e))?),
            },
            subject_public_key: BitString::from_bytes(&raw).map_err(|e| malformed("RSA key", e))?,
        };
        Self::from_spki(&spki)
    }

    /// Kind and size.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }
    /// The DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki
    }
    /// The key's bytes (RSAPublicKey DER, EC point, Ed25519 key).
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }
    /// RSA modulus and exponent (big-endian, no leading zeros).
    pub fn rsa_components(&self) -> Option<(Vec<u8>, Vec<u8>)> {
        match self.kind {
            KeyKind::Rsa(_) => rsa_bits(&self.raw).ok().map(|(_, n, e)| (n, e)),
            _ => None,
        }
    }
    /// SHA-1 of the SubjectPublicKeyInfo: how CERTREQ names a CA (RFC 7296 §3.7)
    /// and the key id of CERT encodings 12/13.
    pub fn key_id(&self) -> [u8; 20] {
        Sha1::digest(&self.spki).into()
    }
    /// `sha256:` and the first 16 hex digits of SHA-256(SPKI), for logs.
    pub fn fingerprint(&self) -> String {
        let d = Sha256::digest(&self.spki);
        format!("sha256:{}", super::hex(&d[..8]))
    }

    /// Verifies `sig` over `msg`; the scheme must fit the key.
    pub fn verify(&self, scheme: SignatureScheme, msg: &[u8], sig: &[u8]) -> Result<(), PkiError> {
        use SignatureScheme as S;
        let alg: &dyn sig::VerificationAlgorithm = match (self.kind, scheme) {
            (KeyKind::Rsa(_), S::RsaPkcs1Raw) => return self.verify_rsa_raw(msg, sig),
            (KeyKind::Rsa(_), S::RsaPkcs1(h)) => match h {
                Hash::Sha1 => &sig::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
                Hash::Sha256 => &sig::RSA_PKCS1_2048_8192_SHA256,
                Hash::Sha384 => &sig::RSA_PKCS1_2048_8192_SHA384,
                Hash::Sha512 => &sig::RSA_PKCS1_2048_8192_SHA512,
            },
            (KeyKind::Rsa(_), S::RsaPss(h)) => match h {
                Hash::Sha256 => &sig::RSA_PSS_2048_8192_SHA256,
                Hash::Sha384 => &sig::RSA_PSS_2048_8192_SHA384,
                Hash::Sha512 => &sig::RSA_PSS_2048_8192_SHA512,
                Hash::Sha1 => return Err(self.mismatch(scheme)),
            },
            (KeyKind::EcdsaP256, S::Ecdsa(h)) => match h {
                Hash::Sha256 => &sig::ECDSA_P256_SHA256_ASN1,
                Hash::Sha384 => &sig::ECDSA_P256_SHA384_ASN1,
                Hash::Sha512 => &sig::ECDSA_P256_SHA512_ASN1,
                Hash::Sha1 => return Err(self.mismatch(scheme)),
            },
            (KeyKind::EcdsaP384, S::Ecdsa(h)) => match h {
                Hash::Sha256 => &sig::ECDSA_P384_SHA256_ASN1,
                Hash::Sha384 => &sig::ECDSA_P384_SHA384_ASN1,
                Hash::Sha512 => &sig::ECDSA_P384_SHA512_ASN1,
                Hash::Sha1 => return Err(self.mismatch(scheme)),
            },
            (KeyKind::EcdsaP256, S::EcdsaFixed(Hash::Sha256)) => &sig::ECDSA_P256_SHA256_FIXED,
            (KeyKind::EcdsaP384, S::EcdsaFixed(Hash::Sha384)) => &sig::ECDSA_P384_SHA384_FIXED,
            (KeyKind::Ed25519, S::Ed25519) => &sig::ED25519,
            _ => return Err(self.mismatch(scheme)),
        };
        sig::UnparsedPublicKey::new(alg, &self.raw)
            .verify(msg, sig)
            .map_err(|_| {
                PkiError::BadSignature(format!(
                    "{} signature with {} key {}",
                    scheme.name(),
                    self.kind,
                    self.fingerprint()
                ))
            })
    }

    fn mismatch(&self, scheme: SignatureScheme) -> PkiError {
        PkiError::Unsupported(format!(
            "{} signatures with a {} key",
            scheme.name(),
            self.kind
        ))
    }

    fn verify_rsa_raw(&self, msg: &[u8], sig: &[u8]) -> Result<(), PkiError> {
        let bad = || {
            PkiError::BadSignature(format!(
                "PKCS#1 v1.5 (no hash) signature with {} key {}",
                self.kind,
                self.fingerprint()
            ))
        };
        let (n, e) = self.rsa_components().ok_or_else(bad)?;
        let k = rsa_legacy::modulus_len(&n);
        if sig.len() != k {
            return Err(bad());
        }
        let em = rsa_legacy::emsa_pkcs1_v15(msg, k).ok_or_else(bad)?;
        let got = rsa_legacy::rsa_op(&n, &e, sig).ok_or_else(bad)?;
        if got.len() == em.len() && bool::from(subtle::ConstantTimeEq::ct_eq(&got[..], &em[..])) {
            Ok(())
        } else {
            Err(bad())
        }
    }
}

enum Inner {
    Rsa {
        kp: RsaKeyPair,
        /// PKCS#1 RSAPrivateKey DER, for the legacy encodings.
        pkcs1: Zeroizing<Vec<u8>>,
    },
    Ec {
        asn1: EcdsaKeyPair,
        fixed: EcdsaKeyPair,
    },
    Ed(Ed25519KeyPair),
}

/// A private key. Debug shows the kind and the public key's fingerprint only.
pub struct PrivateKey {
    public: PublicKey,
    inner: Inner,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PrivateKey({}, {}, <redacted>)",
            self.public.kind,
            self.public.fingerprint()
        )
    }
}

fn ec_algs(
    curve: ObjectIdentifier,
) -> Result<
    (
        &'static sig::EcdsaSigningAlgorithm,
        &'static sig::EcdsaSigningAlgorithm,
    ),
    PkiError,
> {
    if curve == OID_P256 {
        Ok((
            &sig::ECDSA_P256_SHA256_ASN1_SIGNING,
            &sig::ECDSA_P256_SHA256_FIXED_SIGNING,
        ))
    } else if curve == OID_P384 {
        Ok((
            &sig::ECDSA_P384_SHA384_ASN1_SIGNING,
            &sig::ECDSA_P384_SHA384_FIXED_SIGNING,
        ))
    } else {
        Err(PkiError::Unsupported(format!(
            "EC private key on curve {curve} (supported: P-256, P-384)"
        )))
    }
}

fn rejected(what: &'static str) -> impl Fn(aws_lc_rs::error::KeyRejected) -> PkiError {
    move |e| malformed(what, e)
}

impl PrivateKey {
    /// From PKCS#8 DER.
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, PkiError> {
        let info =
            pkcs8::PrivateKeyInfo::from_der(der).map_err(|e| malformed("PKCS#8 private key", e))?;
        let o = info.algorithm.oid;
        if o == OID_RSA {
            let pkcs1 = Zeroizing::new(info.private_key.to_vec());
            let kp = RsaKeyPair::from_pkcs8(der).map_err(rejected("RSA private key"))?;
            Self::rsa(kp, pkcs1)
        } else if o == OID_EC {
            let curve = info
                .algorithm
                .parameters
                .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
                .ok_or_else(|| malformed("EC private key", "no named curve"))?;
            let (a, f) = ec_algs(curve)?;
            let asn1 = EcdsaKeyPair::from_pkcs8(a, der).map_err(rejected("EC private key"))?;
            let fixed = EcdsaKeyPair::from_pkcs8(f, der).map_err(rejected("EC private key"))?;
            Self::ec(curve, asn1, fixed)
        } else if o == OID_ED25519 {
            let kp = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                .map_err(rejected("Ed25519 private key"))?;
            let raw = kp.public_key().as_ref().to_vec();
            let spki = SubjectPublicKeyInfoOwned {
                algorithm: AlgorithmIdentifierOwned {
                    oid: OID_ED25519,
                    parameters: None,
                },
                subject_public_key: BitString::from_bytes(&raw)
                    .map_err(|e| malformed("Ed25519", e))?,
            };
            Ok(PrivateKey {
                public: PublicKey::from_spki(&spki)?,
                inner: Inner::Ed(kp),
            })
        } else {
            Err(PkiError::Unsupported(format!(
                "private key algorithm {o} (supported: RSA, ECDSA P-256/P-384, Ed25519)"
            )))
        }
    }

    /// From PKCS#1 RSAPrivateKey DER.
    pub fn from_pkcs1(der: &[u8]) -> Result<Self, PkiError> {
        pkcs1::RsaPrivateKey::from_der(der).map_err(|e| malformed("PKCS#1 RSA private key", e))?;
        let kp = RsaKeyPair::from_der(der).map_err(rejected("RSA private key"))?;
        Self::rsa(kp, Zeroizing::new(der.to_vec()))
    }

    /// From SEC1 ECPrivateKey DER (with the named curve).
    pub fn from_sec1(der: &[u8]) -> Result<Self, PkiError> {
        let k =
            sec1::EcPrivateKey::from_der(der).map_err(|e| malformed("SEC1 EC private key", e))?;
        let curve = k
            .parameters
            .and_then(|p| p.named_curve())
            .ok_or_else(|| malformed("EC private key", "no named curve"))?;
        let (a, f) = ec_algs(curve)?;
        let asn1 =
            EcdsaKeyPair::from_private_key_der(a, der).map_err(rejected("EC private key"))?;
        let fixed =
            EcdsaKeyPair::from_private_key_der(f, der).map_err(rejected("EC private key"))?;
        Self::ec(curve, asn1, fixed)
    }

    fn rsa(kp: RsaKeyPair, pkcs1: Zeroizing<Vec<u8>>) -> Result<Self, PkiError> {
        let pubder = kp.public_key().as_ref().to_vec();
        let (_, n, e) = rsa_bits(&pubder)?;
        let public = PublicKey::from_rsa(&n, &e)?;
        Ok(PrivateKey {
            public,
            inner: Inner::Rsa { kp, pkcs1 },
        })
    }

    fn ec(
        curve: ObjectIdentifier,
        asn1: EcdsaKeyPair,
        fixed: EcdsaKeyPair,
    ) -> Result<Self, PkiError> {
        let point = asn1.public_key().as_ref().to_vec();
        let spki = SubjectPublicKeyInfoOwned {
            algorithm: AlgorithmIdentifierOwned {
                oid: OID_EC,
                parameters: Some(der::Any::encode_from(&curve).map_err(|e| malformed("EC", e))?),
            },
            subject_public_key: BitString::from_bytes(&point).map_err(|e| malformed("EC", e))?,
        };
        Ok(PrivateKey {
            public: PublicKey::from_spki(&spki)?,
            inner: Inner::Ec { asn1, fixed },
        })
    }

    /// A new RSA key of `bits` (2048, 3072, 4096 or 8192) and its PKCS#8 DER.
    pub fn generate_rsa(bits: usize) -> Result<(Self, Zeroizing<Vec<u8>>), PkiError> {
        let size = match bits {
            2048 => KeySize::Rsa2048,
            3072 => KeySize::Rsa3072,
            4096 => KeySize::Rsa4096,
            8192 => KeySize::Rsa8192,
            b => {
                return Err(PkiError::Unsupported(format!(
                    "RSA key size {b} (choose 2048, 3072, 4096 or 8192)"
                )))
            }
        };
        let kp = RsaKeyPair::generate(size)
            .map_err(|_| PkiError::Unsupported("RSA key generation failed".into()))?;
        let doc = kp
            .as_der()
            .map_err(|_| PkiError::Unsupported("PKCS#8 encoding failed".into()))?;
        let der = Zeroizing::new(doc.as_ref().to_vec());
        Ok((Self::from_pkcs8(&der)?, der))
    }

    /// The public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }
    /// Kind and size.
    pub fn kind(&self) -> KeyKind {
        self.public.kind
    }

    /// Signs `msg` with `scheme` (which must fit the key).
    pub fn sign(&self, scheme: SignatureScheme, msg: &[u8]) -> Result<Vec<u8>, PkiError> {
        use SignatureScheme as S;
        let rng = SystemRandom::new();
        let fail = |what: &str| PkiError::Unsupported(format!("{what}: signing failed"));
        match (&self.inner, scheme) {
            (
                Inner::Rsa { kp, .. },
                S::RsaPkcs1(h @ (Hash::Sha256 | Hash::Sha384 | Hash::Sha512))
                | S::RsaPss(h @ (Hash::Sha256 | Hash::Sha384 | Hash::Sha512)),
            ) => {
                let pss = matches!(scheme, S::RsaPss(_));
                let enc: &'static dyn sig::RsaEncoding = match (pss, h) {
                    (false, Hash::Sha256) => &sig::RSA_PKCS1_SHA256,
                    (false, Hash::Sha384) => &sig::RSA_PKCS1_SHA384,
                    (false, _) => &sig::RSA_PKCS1_SHA512,
                    (true, Hash::Sha256) => &sig::RSA_PSS_SHA256,
                    (true, Hash::Sha384) => &sig::RSA_PSS_SHA384,
                    (true, _) => &sig::RSA_PSS_SHA512,
                };
                let mut out = vec![0u8; kp.public_modulus_len()];
                kp.sign(enc, &rng, msg, &mut out).map_err(|_| fail("RSA"))?;
                Ok(out)
            }
            (Inner::Rsa { pkcs1, .. }, S::RsaPkcs1(Hash::Sha1) | S::RsaPkcs1Raw) => {
                let t = if scheme == S::RsaPkcs1Raw {
                    msg.to_vec()
                } else {
                    let mut t = rsa_legacy::SHA1_PREFIX.to_vec();
                    t.extend_from_slice(&Sha1::digest(msg));
                    t
                };
                let s = self.rsa_legacy_sign(pkcs1, &t)?;
                // checked before it leaves (fault or bug: never send a bad signature)
                self.public.verify(scheme, msg, &s)?;
                Ok(s)
            }
            (Inner::Ec { asn1, .. }, S::Ecdsa(h)) if Some(h) == self.ec_hash() => Ok(asn1
                .sign(&rng, msg)
                .map_err(|_| fail("ECDSA"))?
                .as_ref()
                .to_vec()),
            (Inner::Ec { fixed, .. }, S::EcdsaFixed(h)) if Some(h) == self.ec_hash() => Ok(fixed
                .sign(&rng, msg)
                .map_err(|_| fail("ECDSA"))?
                .as_ref()
                .to_vec()),
            (Inner::Ed(kp), S::Ed25519) => Ok(kp.sign(msg).as_ref().to_vec()),
            _ => Err(PkiError::Unsupported(format!(
                "{} signatures with a {} key",
                scheme.name(),
                self.public.kind
            ))),
        }
    }

    fn ec_hash(&self) -> Option<Hash> {
        match self.public.kind {
            KeyKind::EcdsaP256 => Some(Hash::Sha256),
            KeyKind::EcdsaP384 => Some(Hash::Sha384),
            _ => None,
        }
    }

    /// RSA private operation on the EMSA-PKCS1-v1_5 block of `t`.
    fn rsa_legacy_sign(&self, pkcs1: &[u8], t: &[u8]) -> Result<Vec<u8>, PkiError> {
        let k =
            pkcs1::RsaPrivateKey::from_der(pkcs1).map_err(|e| malformed("RSA private key", e))?;
        let n = k.modulus.as_bytes();
        let len = rsa_legacy::modulus_len(n);
        let em = rsa_legacy::emsa_pkcs1_v15(t, len)
            .ok_or_else(|| PkiError::Unsupported("data too long for the RSA modulus".into()))?;
        let s = rsa_legacy::rsa_op(n, k.private_exponent.as_bytes(), &em)
            .ok_or_else(|| PkiError::Unsupported("RSA private operation failed".into()))?;
        Ok(s.to_vec())
    }

    /// The schemes this key can sign with.
    pub fn schemes(&self) -> Vec<SignatureScheme> {
        use SignatureScheme as S;
        match self.public.kind {
            KeyKind::Rsa(_) => vec![
                S::RsaPkcs1(Hash::Sha256),
                S::RsaPkcs1(Hash::Sha384),
                S::RsaPkcs1(Hash::Sha512),
                S::RsaPss(Hash::Sha256),
                S::RsaPss(Hash::Sha384),
                S::RsaPss(Hash::Sha512),
                S::RsaPkcs1(Hash::Sha1),
                S::RsaPkcs1Raw,
            ],
            KeyKind::EcdsaP256 => vec![S::Ecdsa(Hash::Sha256), S::EcdsaFixed(Hash::Sha256)],
            KeyKind::EcdsaP384 => vec![S::Ecdsa(Hash::Sha384), S::EcdsaFixed(Hash::Sha384)],
            KeyKind::Ed25519 => vec![S::Ed25519],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, RngCore, SeedableRng};

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/fixtures/pki/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn every_key_format_signs_and_verifies_every_scheme() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for (file, kind) in [
            ("moon.key.pem", "RSA 2048"),    // pki: PKCS#1
            ("neptune.key.pem", "RSA 2048"), // openssl: PKCS#8
            ("mars.key.pem", "ECDSA P-256"), // pki: SEC1
            ("jupiter.key.pem", "ECDSA P-384"),
            ("saturn.key.pem", "ECDSA P-256"), // openssl: PKCS#8
            ("pluto.key.pem", "Ed25519"),      // pki: PKCS#8
        ] {
            let k = PrivateKey::from_bytes(&fixture(file)).unwrap();
            assert_eq!(k.kind().to_string(), kind, "{file}");
            let dbg = format!("{k:?}");
            assert!(dbg.contains("redacted") && dbg.len() < 100, "{dbg}");
            for s in k.schemes() {
                let mut msg = vec![0u8; rng.random_range(0..300)];
                rng.fill_bytes(&mut msg);
                if s == SignatureScheme::RsaPkcs1Raw {
                    msg.truncate(36); // IKEv1 signs a prf output
                }
                let sig = k.sign(s, &msg).unwrap();
                k.public_key()
                    .verify(s, &msg, &sig)
                    .unwrap_or_else(|e| panic!("{file} {s:?}: {e}"));
                let mut bad = msg.clone();
                bad.push(1);
                assert!(
                    k.public_key().verify(s, &bad, &sig).is_err(),
                    "{file} {s:?}"
                );
                if let Some(a) = s.algorithm_identifier() {
                    assert_eq!(
                        SignatureScheme::from_algorithm_identifier_der(&a).unwrap(),
                        s
                    );
                }
            }
            assert!(k.sign(SignatureScheme::Ed25519, b"x").is_err() || kind == "Ed25519");
        }
    }

    /// The hand-made PKCS#1 v1.5 path against aws-lc-rs: with the SHA-256
    /// DigestInfo, the raw private operation must give aws-lc's (deterministic)
    /// signature byte for byte, on random keys and messages.
    #[test]
    fn raw_rsa_operation_equals_aws_lc_pkcs1_sha256() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let mut keys = vec![PrivateKey::from_bytes(&fixture("moon.key.pem")).unwrap()];
        for bits in [2048, 3072] {
            keys.push(PrivateKey::generate_rsa(bits).unwrap().0);
        }
        for k in &keys {
            let Inner::Rsa { pkcs1, .. } = &k.inner else {
                panic!()
            };
            for _ in 0..4 {
                let mut msg = vec![0u8; rng.random_range(0..200)];
                rng.fill_bytes(&mut msg);
                let reference = k
                    .sign(SignatureScheme::RsaPkcs1(Hash::Sha256), &msg)
                    .unwrap();
                let mut t = rsa_legacy::SHA256_PREFIX.to_vec();
                t.extend_from_slice(&Sha256::digest(&msg));
                let ours = k.rsa_legacy_sign(pkcs1, &t).unwrap();
                assert_eq!(ours, reference, "{k:?}");
            }
            // SHA-1 signatures verify with aws-lc's legacy verifier
            let s = k
                .sign(SignatureScheme::RsaPkcs1(Hash::Sha1), b"abc")
                .unwrap();
            sig::UnparsedPublicKey::new(
                &sig::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
                k.public_key().raw(),
            )
            .verify(b"abc", &s)
            .unwrap();
        }
    }

    #[test]
    fn key_files_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.pem");
        std::fs::write(&p, fixture("mars.key.pem")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = PrivateKey::load(&p).unwrap_err().to_string();
        assert!(e.contains("0644") && e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(PrivateKey::load(&p).unwrap().kind(), KeyKind::EcdsaP256);
        std::fs::write(
            &p,
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
        )
        .unwrap();
        let e = PrivateKey::load(&p).unwrap_err().to_string();
        assert!(e.contains("encrypted"), "{e}");
        assert!(PrivateKey::from_bytes(b"garbage").is_err());
    }
}
