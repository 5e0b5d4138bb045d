//! Distinguished names as operators write them (strongSwan's notation,
//! `C=CH, O=strongSwan, CN=moon.strongswan.org`, in the order of the DER
//! encoding; or `/C=CH/O=.../CN=...`), encoded to and decoded from the DER
//! `Name` with `x509-cert`, and matched the way strongSwan matches them: the
//! same attributes in the same order, values equal (case-insensitively for
//! PrintableString/IA5String), and a value `*` in the configured name matching
//! any value (`C=CH, O=strongSwan, CN=*`).

use const_oid::ObjectIdentifier;
use der::asn1::{Any, Ia5StringRef, PrintableStringRef, SetOfVec, Utf8StringRef};
use der::{Decode, Encode, Tag, Tagged};
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::name::{RdnSequence, RelativeDistinguishedName};

/// (keyword, OID); the first keyword of an OID is the one shown.
const ATTRS: &[(&str, &str)] = &[
    ("C", "2.5.4.6"),
    ("ST", "2.5.4.8"),
    ("S", "2.5.4.8"),
    ("L", "2.5.4.7"),
    ("O", "2.5.4.10"),
    ("OU", "2.5.4.11"),
    ("CN", "2.5.4.3"),
    ("SN", "2.5.4.5"),
    ("serialNumber", "2.5.4.5"),
    ("E", "1.2.840.113549.1.9.1"),
    ("Email", "1.2.840.113549.1.9.1"),
    ("emailAddress", "1.2.840.113549.1.9.1"),
    ("DC", "0.9.2342.19200300.100.1.25"),
    ("UID", "0.9.2342.19200300.100.1.1"),
    ("T", "2.5.4.12"),
    ("title", "2.5.4.12"),
    ("D", "2.5.4.13"),
    ("description", "2.5.4.13"),
    ("street", "2.5.4.9"),
    ("postalCode", "2.5.4.17"),
    ("N", "2.5.4.41"),
    ("name", "2.5.4.41"),
    ("G", "2.5.4.42"),
    ("givenName", "2.5.4.42"),
    ("I", "2.5.4.43"),
    ("initials", "2.5.4.43"),
    ("surname", "2.5.4.4"),
    ("dnQualifier", "2.5.4.46"),
    ("pseudonym", "2.5.4.65"),
];

fn oid_of(keyword: &str) -> Option<ObjectIdentifier> {
    ATTRS
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(keyword))
        .and_then(|(_, o)| ObjectIdentifier::new(o).ok())
}

/// A dotted OID written by an operator (`2.5.4.3`). Checked before
/// const-oid sees it: its parser overflows (a panic with debug assertions)
/// on an arc with too many digits (found by the `x509` fuzz target).
fn dotted_oid(s: &str) -> Option<ObjectIdentifier> {
    let arcs: Vec<&str> = s.split('.').collect();
    if arcs.len() < 2
        || arcs.len() > 20
        || arcs
            .iter()
            .any(|a| a.is_empty() || a.len() > 9 || !a.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    ObjectIdentifier::new(s).ok()
}

fn keyword_of(oid: &ObjectIdentifier) -> String {
    let s = oid.to_string();
    ATTRS
        .iter()
        .find(|(_, o)| *o == s)
        .map(|(k, _)| k.to_string())
        .unwrap_or(s)
}

/// True if `s` looks like a DN (`KEY=value`, first key a known attribute),
/// as strongSwan decides between a DN and an FQDN/e-mail identity.
pub fn looks_like_dn(s: &str) -> bool {
    let s = s.trim().trim_start_matches('/');
    match s.split_once('=') {
        Some((k, _)) => oid_of(k.trim()).is_some() || dotted_oid(k.trim()).is_some(),
        None => false,
    }
}

fn is_printable(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || " '()+,-./:=?".contains(c))
}

fn split_rdns(s: &str) -> Vec<String> {
    let s = s.trim();
    let sep = if s.starts_with('/') { '/' } else { ',' };
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut esc = false;
    for c in s.chars() {
        if esc {
            cur.push(c);
            esc = false;
        } else if c == '\\' {
            esc = true;
        } else if c == sep || (sep == ',' && c == ';') {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// Parses a DN in strongSwan's notation into the DER of an X.501 `Name`.
pub fn parse(s: &str) -> Result<Vec<u8>, String> {
    let mut rdns = Vec::new();
    for part in split_rdns(s) {
        let Some((k, v)) = part.split_once('=') else {
            return Err(format!("\"{part}\" is not KEY=value"));
        };
        let (k, v) = (k.trim(), v.trim());
        let oid = match oid_of(k) {
            Some(o) => o,
            None => dotted_oid(k).ok_or_else(|| {
                format!("unknown attribute \"{k}\" (use C, ST, L, O, OU, CN, E, DC, SN, UID, ... or a dotted OID)")
            })?,
        };
        if v.is_empty() {
            return Err(format!("attribute {k} has an empty value"));
        }
        let ks = oid.to_string();
        let value = if ks == "2.5.4.6" && is_printable(v) {
            Any::encode_from(&PrintableStringRef::new(v).map_err(|e| e.to_string())?)
        } else if (ks == "1.2.840.113549.1.9.1" || ks == "0.9.2342.19200300.100.1.25")
            && v.is_ascii()
        {
            Any::encode_from(&Ia5StringRef::new(v).map_err(|e| e.to_string())?)
        } else if is_printable(v) {
            Any::encode_from(&PrintableStringRef::new(v).map_err(|e| e.to_string())?)
        } else {
            Any::encode_from(&Utf8StringRef::new(v).map_err(|e| e.to_string())?)
        }
        .map_err(|e| e.to_string())?;
        let atv = AttributeTypeAndValue { oid, value };
        let set = SetOfVec::try_from(vec![atv]).map_err(|e| e.to_string())?;
        rdns.push(RelativeDistinguishedName(set));
    }
    if rdns.is_empty() {
        return Err("empty distinguished name".into());
    }
    RdnSequence(rdns).to_der().map_err(|e| e.to_string())
}

/// The text of an attribute value (any of the string types a DN uses).
fn value_text(v: &Any) -> (String, bool) {
    let b = v.value();
    match v.tag() {
        Tag::PrintableString | Tag::Ia5String => (String::from_utf8_lossy(b).into_owned(), true),
        Tag::Utf8String | Tag::TeletexString | Tag::VisibleString => {
            (String::from_utf8_lossy(b).into_owned(), false)
        }
        Tag::BmpString => {
            let u: Vec<u16> = b
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            (String::from_utf16_lossy(&u), false)
        }
        _ => (format!("#{}", hex::encode(b)), false),
    }
}

/// (OID, value text, case-insensitive type) of every attribute, in order.
fn attrs(der: &[u8]) -> Option<Vec<(ObjectIdentifier, String, bool)>> {
    let name = RdnSequence::from_der(der).ok()?;
    let mut out = Vec::new();
    for rdn in name.0.iter() {
        for atv in rdn.0.iter() {
            let (t, ci) = value_text(&atv.value);
            out.push((atv.oid, t, ci));
        }
    }
    Some(out)
}

/// Shows a DER `Name` in strongSwan's notation (`C=CH, O=.., CN=..`).
pub fn display(der: &[u8]) -> String {
    match attrs(der) {
        Some(a) if !a.is_empty() => a
            .iter()
            .map(|(o, v, _)| format!("{}={v}", keyword_of(o)))
            .collect::<Vec<_>>()
            .join(", "),
        Some(_) => String::new(),
        None => format!("<DN {}>", hex::encode(der)),
    }
}

/// strongSwan's DN match: `pattern` (configured, may hold `*` values) against
/// `got` (from a certificate or an ID payload). Same attributes in the same
/// order; values equal, case-insensitively if both are PrintableString or
/// IA5String; `*` matches anything.
pub fn matches(pattern: &[u8], got: &[u8]) -> bool {
    let (Some(p), Some(g)) = (attrs(pattern), attrs(got)) else {
        return false;
    };
    p.len() == g.len()
        && p.iter()
            .zip(g.iter())
            .all(|((po, pv, pci), (go, gv, gci))| {
                po == go && (pv == "*" || pv == gv || (*pci && *gci && pv.eq_ignore_ascii_case(gv)))
            })
}

/// True if the DN holds a `*` value.
pub fn has_wildcard(der: &[u8]) -> bool {
    attrs(der).is_some_and(|a| a.iter().any(|(_, v, _)| v == "*"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_matching() {
        let d = parse("C=CH, O=espresso test, CN=moon.example").unwrap();
        assert_eq!(display(&d), "C=CH, O=espresso test, CN=moon.example");
        let slash = parse("/C=CH/O=espresso test/CN=moon.example").unwrap();
        assert_eq!(d, slash);
        assert!(matches(&d, &d));
        let w = parse("C=CH, O=espresso test, CN=*").unwrap();
        assert!(has_wildcard(&w));
        assert!(matches(&w, &d));
        assert!(!matches(&d, &w), "a wildcard only works in the pattern");
        let other = parse("C=CH, O=espresso test, CN=sun.example").unwrap();
        assert!(!matches(&d, &other));
        let shorter = parse("C=CH, O=espresso test").unwrap();
        assert!(!matches(&shorter, &d) && !matches(&w, &shorter));
        let case = parse("c=ch, o=ESPRESSO TEST, cn=MOON.example").unwrap();
        assert!(matches(&case, &d), "PrintableString compares without case");
        let utf = parse("C=CH, O=Zürich AG, CN=x").unwrap();
        assert_eq!(display(&utf), "C=CH, O=Zürich AG, CN=x");
        assert!(parse("C=CH, foo=bar")
            .unwrap_err()
            .contains("unknown attribute"));
        assert!(parse("").is_err());
        assert!(looks_like_dn("C=CH, O=x") && looks_like_dn("CN=x"));
        assert!(!looks_like_dn("moon.example") && !looks_like_dn("a@b=c"));
        assert_eq!(display(&parse("2.5.4.3=x").unwrap()), "CN=x");
        // fuzz finding: a long arc made const-oid overflow
        let long = format!("C=CH, 7{}=x", "7".repeat(40));
        assert!(parse(&long).is_err());
        assert!(!looks_like_dn(&format!("{}=x", "7.".repeat(30))));
    }
}
