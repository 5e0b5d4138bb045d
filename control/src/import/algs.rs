//! Proposal strings of FreeS/WAN, Openswan, Libreswan and strongSwan
//! (`3des-md5-96`, `aes256-sha1;modp2048`, `aes_gcm256-null`,
//! `aes+3des-sha2_256+sha1-dh14`, `aes128gcm16-prfsha256-ecp256!`)
//! written the way espresso's `ike =` / `esp =` read them (strongSwan
//! form). A proposal with an algorithm espresso does not implement is left
//! out with the reason.

/// Kinds of token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok {
    Encr,
    Integ,
    Prf,
    Dh,
    Esn,
    Skip,
}

/// The table: names as the old daemons write them -> espresso's token.
/// `None`: not implemented, with the reason.
fn token(t: &str) -> Result<(Tok, &'static str), &'static str> {
    use Tok::*;
    Ok(match t {
        "aes" | "aes128" | "aes_cbc" | "aes_cbc128" | "aescbc" | "aes128cbc" => (Encr, "aes128"),
        "aes256" | "aes_cbc256" | "aes256cbc" => (Encr, "aes256"),
        "3des" | "3des_cbc" | "des3" | "des3_cbc" => (Encr, "3des"),
        "aes_gcm" | "aes_gcm128" | "aes_gcm_c" | "aes_gcm_16" | "aes_gcm16" | "aes128gcm16"
        | "aes128gcm128" | "aes128gcm" | "aes_gcm_c128" | "aes_gcm_16_128" => (Encr, "aes128gcm16"),
        "aes_gcm256" | "aes_gcm_c256" | "aes_gcm_16_256" | "aes256gcm16" | "aes256gcm128" | "aes256gcm" => {
            (Encr, "aes256gcm16")
        }
        "chacha20_poly1305" | "chacha20poly1305" => (Encr, "chacha20poly1305"),
        "null" | "null_auth_aes_gmac" => (Skip, ""),
        "esp_null" => (Encr, "null"),
        "md5" | "md5_96" | "hmac_md5" | "hmac_md5_96" => (Integ, "md5"),
        "sha" | "sha1" | "sha1_96" | "hmac_sha1" | "hmac_sha1_96" => (Integ, "sha1"),
        "sha2" | "sha256" | "sha2_256" | "sha2_256_128" | "hmac_sha2_256" | "hmac_sha2_256_128" => (Integ, "sha256"),
        "sha384" | "sha2_384" | "sha2_384_192" => (Integ, "sha384"),
        "sha512" | "sha2_512" | "sha2_512_256" => (Integ, "sha512"),
        "prfsha1" => (Prf, "prfsha1"),
        "prfsha256" => (Prf, "prfsha256"),
        "prfsha384" => (Prf, "prfsha384"),
        "prfsha512" => (Prf, "prfsha512"),
        "modp1024" | "dh2" => (Dh, "modp1024"),
        "modp2048" | "dh14" => (Dh, "modp2048"),
        "ecp256" | "dh19" => (Dh, "ecp256"),
        "ecp384" | "dh20" => (Dh, "ecp384"),
        "curve25519" | "x25519" | "dh31" => (Dh, "curve25519"),
        "esn" => (Esn, "esn"),
        "noesn" => (Esn, "noesn"),
        "aes192" | "aes_cbc192" | "aes_gcm192" | "aes192gcm16" => return Err("AES-192 is not implemented"),
        "aes_gcm_a" | "aes_gcm_b" | "aes_gcm8" | "aes_gcm12" | "aes128gcm8" | "aes128gcm12" | "aes256gcm8"
        | "aes256gcm12" | "aes128gcm64" | "aes128gcm96" | "aes256gcm64" | "aes256gcm96" => {
            return Err("AES-GCM with an 8- or 12-byte ICV is not implemented (16 only)")
        }
        "aes_ctr" | "aesctr" | "aes128ctr" | "aes256ctr" | "aes_ccm" | "aes128ccm16" | "aes256ccm16"
        | "camellia" | "camellia128" | "camellia256" | "serpent" | "twofish" | "blowfish" | "cast"
        | "cast128" | "des" | "1des" | "aes_xcbc" | "aesxcbc" | "aes_cmac" | "aescmac" | "ripemd"
        | "sha2_256_96" | "sha256_96" | "md5_128" => return Err("algorithm not implemented in espresso"),
        "modp768" | "dh1" | "modp1536" | "dh5" | "modp3072" | "dh15" | "modp4096" | "dh16" | "modp6144"
        | "dh17" | "modp8192" | "dh18" | "ecp521" | "dh21" | "curve448" | "dh32" | "ecp224" | "ecp192"
        | "modp1024s160" | "modp2048s224" | "modp2048s256" | "dh22" | "dh23" | "dh24" => {
            return Err("Diffie-Hellman group not implemented (espresso: modp1024, modp2048, ecp256, ecp384, curve25519)")
        }
        _ => return Err("unknown algorithm name"),
    })
}

/// One proposal string, translated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Translated {
    /// Proposals in espresso's form, in order.
    pub proposals: Vec<String>,
    /// Proposals left out: (as written, why).
    pub dropped: Vec<(String, String)>,
    /// 3DES or HMAC-MD5 in an ESP proposal (needs `allow_legacy = true`).
    pub legacy: bool,
    /// Written with strongSwan's `!` (only these proposals).
    pub strict: bool,
    /// An IKE proposal had no DH group and got `default_dh`.
    pub filled_dh: bool,
}

/// Translates `s`. `ike`: IKE proposals (3DES and MD5 are not accepted
/// for IKE SAs, RFC 8247; a DH group is required: `default_dh` is added
/// where none is written). `pfs`: a DH group added to ESP proposals that
/// have none (Openswan's `pfsgroup=`).
pub fn translate(s: &str, ike: bool, default_dh: &[&str], pfs: Option<&str>) -> Translated {
    translate_for(s, ike, false, default_dh, pfs)
}

/// [`translate`] for the IKE (phase 1) proposals of an IKEv1-only
/// connection: 3DES, MD5 and MODP-1024/1536 are kept and flagged `legacy`
/// (IKEv1 accepts them with `allow_legacy = true`, RFC 8247 says not to).
pub fn translate_ikev1(s: &str, default_dh: &[&str]) -> Translated {
    translate_for(s, true, true, default_dh, None)
}

fn translate_for(
    s: &str,
    ike: bool,
    ikev1: bool,
    default_dh: &[&str],
    pfs: Option<&str>,
) -> Translated {
    let mut out = Translated::default();
    let s = s.trim();
    out.strict = s.ends_with('!');
    for written in s
        .split(',')
        .map(|p| p.trim().trim_end_matches('!'))
        .filter(|p| !p.is_empty())
    {
        let lower = written.to_ascii_lowercase().replace(';', "-");
        let (mut toks, why) = match tokens(&lower) {
            Ok(t) => {
                let why = refusal(&t, ike, ikev1, &mut out.legacy);
                (t, why)
            }
            Err(w) => (Vec::new(), Some(w)),
        };
        if let Some(w) = why {
            out.dropped.push((written.to_string(), w));
            continue;
        }
        let aead = toks
            .iter()
            .any(|(k, t)| *k == Tok::Encr && (t.contains("gcm") || t.contains("chacha")));
        if aead {
            if ike {
                // An AEAD IKE proposal takes its PRF from the hash names.
                for (k, t) in toks.iter_mut() {
                    if *k == Tok::Integ {
                        *k = Tok::Prf;
                        *t = format!("prf{t}");
                    }
                }
            } else {
                // Libreswan writes aes_gcm-null; AEAD ESP has no integrity.
                toks.retain(|(k, _)| *k != Tok::Integ);
            }
        } else if !toks.iter().any(|(k, _)| *k == Tok::Integ) {
            out.dropped.push((
                written.to_string(),
                "no integrity algorithm (encryption without integrity is refused)".into(),
            ));
            continue;
        }
        if !ike && toks.iter().any(|(_, t)| t == "3des" || t == "md5") {
            out.legacy = true;
        }
        fill_dh(&mut toks, ike, ikev1, default_dh, pfs, &mut out);
        let p = joined(&toks);
        if !out.proposals.contains(&p) {
            out.proposals.push(p);
        }
    }
    out
}

/// The algorithms of one written proposal, in order; why not when a word is
/// not understood.
fn tokens(lower: &str) -> Result<Vec<(Tok, String)>, String> {
    let mut toks: Vec<(Tok, String)> = Vec::new();
    let mut why = None;
    for part in lower.split(['-', '+']).filter(|p| !p.is_empty()) {
        // FreeS/WAN's "-96" (truncated HMAC) and key lengths after "aes".
        if part.chars().all(|c| c.is_ascii_digit()) {
            match (toks.last_mut(), part) {
                (Some((Tok::Integ, _)), "96" | "128") => continue,
                (Some((Tok::Encr, e)), "128") if e == "aes128" || e == "aes128gcm16" => continue,
                (Some((Tok::Encr, e)), "256") if e == "aes128" => {
                    *e = "aes256".into();
                    continue;
                }
                (Some((Tok::Encr, e)), "256") if e == "aes128gcm16" => {
                    *e = "aes256gcm16".into();
                    continue;
                }
                // mbox and the seeds write DH groups as numbers (AES SHA 14).
                _ => match token(&format!("dh{part}")) {
                    Ok((k, t)) => {
                        toks.push((k, t.to_string()));
                        continue;
                    }
                    Err(e) => {
                        why = Some(format!("group {part}: {e}"));
                        break;
                    }
                },
            }
        }
        match token(part) {
            Ok((Tok::Skip, _)) => {}
            Ok((k, t)) => toks.push((k, t.to_string())),
            Err(e) => {
                why = Some(format!("{part}: {e}"));
                break;
            }
        }
    }
    match why {
        Some(w) => Err(w),
        None => Ok(toks),
    }
}

/// Why a proposal is refused for this kind of SA (IKEv2 refuses the legacy
/// algorithms, IKEv1 marks them legacy).
fn refusal(toks: &[(Tok, String)], ike: bool, ikev1: bool, legacy: &mut bool) -> Option<String> {
    let mut why = None;
    if ike && ikev1 {
        if toks
            .iter()
            .any(|(_, t)| t == "3des" || t == "md5" || t == "modp1024" || t == "modp1536")
        {
            *legacy = true;
        }
    } else if ike {
        if let Some((_, t)) = toks
            .iter()
            .find(|(k, t)| (*k == Tok::Encr && t == "3des") || (*k == Tok::Integ && t == "md5"))
        {
            why = Some(format!("{t}: not accepted for IKE SAs (legacy, RFC 8247)"));
        }
        if toks
            .iter()
            .any(|(k, t)| *k == Tok::Encr && t == "chacha20poly1305")
        {
            why = Some("chacha20poly1305 is implemented for ESP, not for IKE SAs".into());
        }
    }
    if why.is_none() && !toks.iter().any(|(k, _)| *k == Tok::Encr) {
        why = Some("no encryption algorithm".into());
    }
    why
}

/// The DH groups: IKE proposals without one get the defaults, ESP ones the
/// PFS group.
fn fill_dh(
    toks: &mut Vec<(Tok, String)>,
    ike: bool,
    ikev1: bool,
    default_dh: &[&str],
    pfs: Option<&str>,
    out: &mut Translated,
) {
    let has_dh = toks.iter().any(|(k, _)| *k == Tok::Dh);
    if ike && !has_dh {
        out.filled_dh = true;
        toks.extend(default_dh.iter().map(|d| (Tok::Dh, d.to_string())));
        if ikev1
            && default_dh
                .iter()
                .any(|d| *d == "modp1024" || *d == "modp1536")
        {
            out.legacy = true;
        }
    }
    if !ike && !has_dh {
        if let Some(g) = pfs {
            toks.push((Tok::Dh, g.to_string()));
        }
    }
}

/// The proposal string: algorithms in espresso's order, each once.
fn joined(toks: &[(Tok, String)]) -> String {
    let order = [Tok::Encr, Tok::Integ, Tok::Prf, Tok::Dh, Tok::Esn];
    let mut parts: Vec<String> = Vec::new();
    for o in order {
        for (k, t) in toks {
            if *k == o && !parts.contains(t) {
                parts.push(t.clone());
            }
        }
    }
    parts.join("-")
}

/// A DH group name (`modp2048`, `dh14`, `14`) in espresso's form.
pub fn dh_group(s: &str) -> Result<String, String> {
    let l = s.trim().to_ascii_lowercase();
    let l = if l.chars().all(|c| c.is_ascii_digit()) {
        format!("dh{l}")
    } else {
        l
    };
    match token(&l) {
        Ok((Tok::Dh, t)) => Ok(t.to_string()),
        Ok(_) => Err(format!("\"{s}\" is not a Diffie-Hellman group")),
        Err(e) => Err(format!("{s}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openswan_forms() {
        let t = translate(
            "aes256-sha1;modp2048, 3des-md5-modp1024",
            true,
            &["modp2048"],
            None,
        );
        assert_eq!(t.proposals, vec!["aes256-sha1-modp2048"]);
        assert_eq!(t.dropped.len(), 1);
        let t = translate("aes128-sha1", true, &["modp2048", "modp1024"], None);
        assert_eq!(t.proposals, vec!["aes128-sha1-modp2048-modp1024"]);
        assert!(t.filled_dh);
        let t = translate("3des-md5-96", false, &[], None);
        assert_eq!(t.proposals, vec!["3des-md5"]);
        assert!(t.legacy);
        let t = translate("aes_gcm256-null", false, &[], Some("modp2048"));
        assert_eq!(t.proposals, vec!["aes256gcm16-modp2048"]);
        let t = translate("aes+3des-sha2_256+sha1-dh14", false, &[], None);
        assert_eq!(t.proposals, vec!["aes128-3des-sha256-sha1-modp2048"]);
        let t = translate("aes128gcm16-prfsha256-ecp256!", true, &[], None);
        assert_eq!(t.proposals, vec!["aes128gcm16-prfsha256-ecp256"]);
        assert!(t.strict);
        let t = translate("aes_gcm128-sha2_256;dh19", true, &[], None);
        assert_eq!(t.proposals, vec!["aes128gcm16-prfsha256-ecp256"]);
        let t = translate("aes192-sha1", false, &[], None);
        assert!(t.proposals.is_empty());
        assert!(t.dropped[0].1.contains("AES-192"));
        assert_eq!(dh_group("14").unwrap(), "modp2048");
        assert!(dh_group("modp1536").is_err());
    }

    #[test]
    fn translations_parse() {
        for (s, ike) in [
            ("aes256-sha1;modp2048", true),
            ("aes128-sha2_256-dh19", true),
            ("aes_gcm128-sha2_256;dh19", true),
            ("3des-md5-96", false),
            ("aes+3des-sha2_256+sha1-dh14", false),
            ("aes_gcm256-null", false),
        ] {
            let t = translate(s, ike, &["modp2048"], None);
            for p in &t.proposals {
                if ike {
                    crate::ike::proposal::parse_ike_proposals(p)
                        .unwrap_or_else(|e| panic!("{p}: {e}"));
                } else {
                    crate::ike::proposal::parse_esp_proposals(p)
                        .unwrap_or_else(|e| panic!("{p}: {e}"));
                }
            }
        }
    }
}
