//! `espresso keys`: the SAs of running tunnels with their keys, in forms
//! independent decoders take, so that any capture of the WAN can be checked:
//!
//! - `wireshark`: one record of Wireshark's `esp_sa` UAT per SA (the 8
//!   quoted fields of Wireshark 4.0: protocol, source, destination, SPI,
//!   encryption, encryption key, authentication, authentication key), for
//!   `tshark -o 'uat:esp_sa:RECORD'` or the profile's `esp_sa` file. SAs
//!   Wireshark 4.0 cannot decrypt (ChaCha20-Poly1305, ESN) are left out
//!   with a note on stderr.
//! - `scapy`: a JSON array, one object per SA, whose fields are the
//!   arguments of scapy's `SecurityAssociation` (`spi`, `crypt_algo`,
//!   `crypt_key`, `auth_algo`, `auth_key`, `esn_en`, `tunnel_header`,
//!   `nat_t_header`; keys in hex), plus `tunnel`, `direction`, `family`,
//!   `src`, `dst` and `mode` to pick packets by.

use espresso_core::alg::{EncrAlg, IntegAlg};
use serde_json::{json, Value};

use crate::daemon::api::SaKeys;

/// Output formats of `espresso keys`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyFormat {
    /// Wireshark `esp_sa` UAT records (Wireshark 4.0 field set).
    Wireshark,
    /// JSON for scapy's SecurityAssociation.
    Scapy,
}

/// Wireshark 4.0's name of an encryption algorithm, by stable name (None:
/// it has none). From the algorithm table (`espresso_core::alg`).
pub fn wireshark_encr(name: &str) -> Option<&'static str> {
    EncrAlg::from_stable_name(name)?.row().wireshark
}

/// Wireshark 4.0's name of an integrity algorithm, by stable name.
pub fn wireshark_integ(name: &str) -> Option<&'static str> {
    IntegAlg::from_stable_name(name)?.row().wireshark
}

/// scapy 2.x's `crypt_algo` name, by stable name.
pub fn scapy_encr(name: &str) -> Option<&'static str> {
    EncrAlg::from_stable_name(name)?.row().scapy
}

/// scapy 2.x's `auth_algo` name, by stable name.
pub fn scapy_integ(name: &str) -> Option<&'static str> {
    IntegAlg::from_stable_name(name)?.row().scapy
}

fn family(k: &SaKeys) -> &'static str {
    if k.src.contains(':') {
        "IPv6"
    } else {
        "IPv4"
    }
}

fn hex0x(h: &str) -> String {
    if h.is_empty() {
        String::new()
    } else {
        format!("0x{h}")
    }
}

/// One `esp_sa` record, or why Wireshark 4.0 cannot use this SA.
pub fn wireshark_record(k: &SaKeys) -> Result<String, String> {
    let what = || format!("{} {} spi {:#010x}", k.tunnel, k.direction, k.spi);
    let enc = wireshark_encr(&k.encr)
        .ok_or_else(|| format!("{}: Wireshark 4.0 cannot decrypt {}", what(), k.encr))?;
    let auth = wireshark_integ(&k.integ)
        .ok_or_else(|| format!("{}: Wireshark 4.0 has no {}", what(), k.integ))?;
    if k.esn {
        return Err(format!(
            "{}: Wireshark 4.0 has no extended sequence numbers",
            what()
        ));
    }
    Ok(format!(
        "\"{}\",\"{}\",\"{}\",\"{:#010x}\",\"{}\",\"{}\",\"{}\",\"{}\"",
        family(k),
        k.src,
        k.dst,
        k.spi,
        enc,
        hex0x(&k.enc_key),
        auth,
        hex0x(&k.auth_key)
    ))
}

/// The scapy form of one SA, or why scapy cannot use it.
pub fn scapy_object(k: &SaKeys) -> Result<Value, String> {
    let what = || format!("{} {} spi {:#010x}", k.tunnel, k.direction, k.spi);
    let enc = scapy_encr(&k.encr).ok_or_else(|| format!("{}: scapy has no {}", what(), k.encr))?;
    let auth =
        scapy_integ(&k.integ).ok_or_else(|| format!("{}: scapy has no {}", what(), k.integ))?;
    let fam = family(k);
    Ok(json!({
        "tunnel": k.tunnel,
        "direction": k.direction,
        "family": fam,
        "src": k.src,
        "dst": k.dst,
        "mode": k.mode,
        "proto": "ESP",
        "spi": k.spi,
        "crypt_algo": enc,
        "crypt_key": k.enc_key,
        "auth_algo": auth,
        "auth_key": if k.auth_key.is_empty() { Value::Null } else { Value::from(k.auth_key.as_str()) },
        "esn_en": k.esn,
        "tunnel_header": if k.mode == "tunnel" {
            json!({ "version": if fam == "IPv6" { 6 } else { 4 }, "src": k.src, "dst": k.dst })
        } else {
            Value::Null
        },
        "nat_t_header": match k.udp_ports {
            Some((s, d)) => json!({ "sport": s, "dport": d }),
            None => Value::Null,
        },
    }))
}

/// The whole output for `format`, and notes for stderr (SAs left out).
pub fn render(keys: &[SaKeys], format: KeyFormat) -> (String, Vec<String>) {
    let mut notes = Vec::new();
    let mut out = String::new();
    match format {
        KeyFormat::Wireshark => {
            for k in keys {
                match wireshark_record(k) {
                    Ok(r) => {
                        out += &r;
                        out.push('\n');
                    }
                    Err(e) => notes.push(e),
                }
            }
        }
        KeyFormat::Scapy => {
            let mut v = Vec::new();
            for k in keys {
                match scapy_object(k) {
                    Ok(o) => v.push(o),
                    Err(e) => notes.push(e),
                }
            }
            // One SA per line inside the array: easy to read and to grep.
            out.push('[');
            for (i, o) in v.iter().enumerate() {
                out += if i == 0 { "\n  " } else { ",\n  " };
                out += &o.to_string();
            }
            out += if v.is_empty() { "]\n" } else { "\n]\n" };
        }
    }
    (out, notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(encr: &str, integ: &str, ek: &str, ak: &str) -> SaKeys {
        SaKeys {
            tunnel: "t".into(),
            direction: "out".into(),
            src: "192.0.2.1".into(),
            dst: "192.0.2.2".into(),
            spi: 0x1001,
            mode: "tunnel".into(),
            encr: encr.into(),
            enc_key: ek.into(),
            integ: integ.into(),
            auth_key: ak.into(),
            esn: false,
            udp_ports: None,
        }
    }

    #[test]
    fn wireshark_gcm_record_is_interop_md_form() {
        let k = sa(
            "aes-gcm-128",
            "none",
            "00112233445566778899aabbccddeeffdeadbeef",
            "",
        );
        assert_eq!(
            wireshark_record(&k).unwrap(),
            "\"IPv4\",\"192.0.2.1\",\"192.0.2.2\",\"0x00001001\",\"AES-GCM with 16 octet ICV [RFC4106]\",\
             \"0x00112233445566778899aabbccddeeffdeadbeef\",\"NULL\",\"\""
        );
    }

    #[test]
    fn wireshark_cbc_sha256_and_ipv6() {
        let mut k = sa("aes-cbc-128", "hmac-sha256-128", "aa", "bb");
        k.src = "2001:db8::1".into();
        k.dst = "2001:db8::2".into();
        assert_eq!(
            wireshark_record(&k).unwrap(),
            "\"IPv6\",\"2001:db8::1\",\"2001:db8::2\",\"0x00001001\",\"AES-CBC [RFC3602]\",\"0xaa\",\
             \"HMAC-SHA-256-128 [RFC4868]\",\"0xbb\""
        );
    }

    #[test]
    fn wireshark_skips_what_4_0_cannot_do() {
        let (out, notes) = render(
            &[
                sa("chacha20-poly1305", "none", "aa", ""),
                {
                    let mut k = sa("aes-gcm-256", "none", "aa", "");
                    k.esn = true;
                    k
                },
                sa("aes-gcm-256", "none", "cc", ""),
            ],
            KeyFormat::Wireshark,
        );
        assert_eq!(out.lines().count(), 1);
        assert!(out.contains("0xcc"));
        assert_eq!(notes.len(), 2);
        assert!(notes[0].contains("chacha20"));
        assert!(notes[1].contains("extended sequence"));
    }

    #[test]
    fn scapy_objects_carry_securityassociation_arguments() {
        let mut k = sa("aes-cbc-256", "hmac-sha512-256", "aa", "bb");
        k.udp_ports = Some((4500, 4501));
        let (out, notes) = render(&[k, sa("aes-gcm-128", "none", "cc", "")], KeyFormat::Scapy);
        assert!(notes.is_empty());
        let v: Value = serde_json::from_str(&out).unwrap();
        let a = v.as_array().unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!(a[0]["crypt_algo"], "AES-CBC");
        assert_eq!(a[0]["auth_algo"], "SHA2-512-256");
        assert_eq!(a[0]["auth_key"], "bb");
        assert_eq!(a[0]["nat_t_header"]["dport"], 4501);
        assert_eq!(a[0]["tunnel_header"]["dst"], "192.0.2.2");
        assert_eq!(a[1]["crypt_algo"], "AES-GCM");
        assert_eq!(a[1]["auth_key"], Value::Null);
        assert_eq!(a[1]["nat_t_header"], Value::Null);
        assert_eq!(a[1]["spi"], 0x1001);
    }

    #[test]
    fn every_engine_name_is_mapped() {
        for e in EncrAlg::ALL {
            assert!(scapy_encr(e.name()).is_some(), "{}", e.name());
            assert!(
                wireshark_encr(e.name()).is_some() || e == EncrAlg::ChaCha20Poly1305,
                "{}",
                e.name()
            );
        }
        for i in IntegAlg::ALL {
            assert!(scapy_integ(i.name()).is_some(), "{}", i.name());
            assert!(wireshark_integ(i.name()).is_some(), "{}", i.name());
        }
        // The names Wireshark 4.0 and scapy 2.x use (as before the table).
        assert_eq!(
            wireshark_encr("aes-gcm-256"),
            Some("AES-GCM with 16 octet ICV [RFC4106]")
        );
        assert_eq!(wireshark_encr("3des-cbc"), Some("TripleDES-CBC [RFC2451]"));
        assert_eq!(
            wireshark_integ("hmac-sha512-256"),
            Some("HMAC-SHA-512-256 [RFC4868]")
        );
        assert_eq!(wireshark_integ("none"), Some("NULL"));
        assert_eq!(scapy_encr("chacha20-poly1305"), Some("CHACHA20-POLY1305"));
        assert_eq!(scapy_integ("hmac-sha256-128"), Some("SHA2-256-128"));
        assert_eq!(scapy_integ("hmac-md5-96"), Some("HMAC-MD5-96"));
    }
}
