//! How a conn authenticates, in espresso's fields: which method each side
//! uses (`authby`, `leftauth`/`rightauth`, the dialect's default), and for
//! signatures the files and keys that needs: `leftcert` (strongSwan's and
//! Openswan's `/etc/ipsec.d/certs`), the private key from the `: RSA` /
//! `: ECDSA` entry of ipsec.secrets (a file in `/etc/ipsec.d/private`, or
//! FreeS/WAN's inline `{ Modulus: ... }` block, written to a 0600 file
//! beside the configuration), `leftrsasigkey`/`rightrsasigkey`, the CA
//! certificates and CRLs (the old stack's directories plus the `ca`
//! sections' `cacert`), `rightca`.

use toml::Value;
use zeroize::Zeroizing;

use super::conv::{Conv, Ctx, Ikev};
use crate::import::dialect::Dialect;
use crate::import::ipsecconf::Param;
use crate::import::notes::NoteKind;
use crate::import::out::{Entry, SecretFile, SECRETS_DIR};
use crate::import::secrets;

/// Where strongSwan, Openswan and FreeS/WAN keep certificates, keys, CA
/// certificates and CRLs (relative names in ipsec.conf and ipsec.secrets
/// are resolved there).
pub(super) const CERTS_DIR: &str = "/etc/ipsec.d/certs";
pub(super) const PRIVATE_DIR: &str = "/etc/ipsec.d/private";
pub(super) const CACERTS_DIR: &str = "/etc/ipsec.d/cacerts";
pub(super) const CRLS_DIR: &str = "/etc/ipsec.d/crls";

/// What one side authenticates with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Word {
    Psk,
    Sig,
    /// Not implemented (why).
    Other(String),
}

impl Word {
    fn of(v: &str) -> Word {
        let v = v.to_ascii_lowercase();
        let parts: Vec<&str> = v.split(['|', ',']).map(str::trim).collect();
        if parts.iter().any(|a| matches!(*a, "secret" | "psk")) {
            return Word::Psk;
        }
        if parts.iter().any(|a| {
            matches!(*a, "rsasig" | "rsa" | "pubkey" | "ecdsa" | "ecdsasig")
                || a.starts_with("rsa-")
                || a.starts_with("ecdsa-")
                || a.starts_with("rsa/")
        }) {
            return Word::Sig;
        }
        Word::Other(if v.contains("xauth") {
            format!("{v}: XAUTH is an IKEv1 extension espresso does not implement")
        } else if v.contains("eap") {
            format!("{v}: EAP is not implemented")
        } else if v == "null" || v == "never" {
            format!("{v}: NULL authentication (RFC 7619) is not implemented")
        } else {
            format!("{v}: not implemented")
        })
    }
}

/// The authentication plan of a conn.
pub(super) struct Plan {
    pub(super) local: Word,
    pub(super) remote: Word,
}

impl Plan {
    /// Either side uses the pre-shared key.
    pub(super) fn psk(&self) -> bool {
        self.local == Word::Psk || self.remote == Word::Psk
    }
    fn sig(&self) -> bool {
        self.local == Word::Sig || self.remote == Word::Sig
    }
}

/// Which method each side uses; unimplemented ones noted and the entry disabled.
pub(super) fn plan(c: &mut Conv, e: &mut Entry, dialect: Dialect) -> Plan {
    let pluto = dialect != Dialect::Strongswan;
    let authby = c.get("authby");
    let lauth = c.local("auth");
    let rauth = c.remote("auth");
    let default = if pluto { "rsasig" } else { "pubkey" };
    let both = authby.as_ref().map(|p| Word::of(&p.value));
    if let Some(p) = &authby {
        let v = p.value.to_ascii_lowercase();
        if Word::of(&v) == Word::Psk && v.split(['|', ',']).count() > 1 {
            c.note(
                p,
                NoteKind::Changed,
                "only the pre-shared key is carried over (espresso takes one method per side: set auth = \"pubkey\" with certificates instead)",
            );
        }
    }
    let side = |p: &Option<Param>| {
        p.as_ref()
            .map(|p| Word::of(&p.value))
            .or(both.clone())
            .unwrap_or_else(|| Word::of(default))
    };
    let plan = Plan {
        local: side(&lauth),
        remote: side(&rauth),
    };
    for (w, p) in [(&plan.local, &lauth), (&plan.remote, &rauth)] {
        if let Word::Other(why) = w {
            match p.as_ref().or(authby.as_ref()) {
                Some(p) => {
                    c.note(p, NoteKind::NotCarried, why.clone());
                    e.disable(format!("{}={why}", p.key));
                }
                None => {
                    c.conn_note(NoteKind::NotCarried, why.clone());
                    e.disable(format!("authentication {why}"));
                }
            }
        }
    }
    if authby.is_none() && lauth.is_none() && rauth.is_none() && plan.sig() {
        c.conn_note(
            NoteKind::Changed,
            format!(
                "no authby= ({} authenticates with {} by default): so does this connection",
                dialect.name(),
                if pluto {
                    "RSA signatures"
                } else {
                    "public keys (certificates)"
                },
            ),
        );
    }
    plan
}

/// A `ca` section's `cacert=` file, resolved as the original does.
pub(super) fn ca_file(name: &str) -> String {
    in_dir(name, CACERTS_DIR)
}

/// Whether `f` lies in the CA directory every certificate connection names.
pub(super) fn in_cacerts_dir(f: &str) -> bool {
    f.strip_prefix(CACERTS_DIR)
        .is_some_and(|r| r.starts_with('/') && !r[1..].contains('/'))
}

/// `name` in `dir` unless it is absolute.
fn in_dir(name: &str, dir: &str) -> String {
    let n = name.trim().trim_matches('"');
    if n.starts_with('/') {
        n.to_string()
    } else {
        format!("{dir}/{n}")
    }
}

/// What the signature side of a conn needs, written into `e`: the methods,
/// our certificate and private key, the peer's key or CAs. IKEv1 signs with
/// RSA (certificates or raw keys) as IKEv2 does, but negotiates one method
/// for both sides: a conn that mixes a pre-shared key and signatures and
/// may speak IKEv1 is disabled when IKEv1-only, else becomes IKEv2-only
/// (noted).
pub(super) fn signatures(
    c: &mut Conv,
    ctx: &Ctx,
    e: &mut Entry,
    plan: &Plan,
    ikev: &mut Ikev,
    ids: &[Vec<String>; 2],
    origin: &mut Vec<String>,
) {
    if !plan.sig() {
        return;
    }
    if plan.local != plan.remote {
        match *ikev {
            Ikev::Never => {
                let why = "IKEv1 with a pre-shared key one way and signatures the other: IKEv1 negotiates one authentication method for both sides";
                c.conn_note(NoteKind::NotCarried, why);
                e.disable(why);
            }
            Ikev::Permit | Ikev::Propose => {
                c.conn_note(
                    NoteKind::Changed,
                    format!(
                        "ikev2 = \"insist\" (was {}): a pre-shared key one way and signatures the other is IKEv2's (IKEv1 negotiates one method for both sides), so this connection speaks IKEv2 only",
                        ikev.name()
                    ),
                );
                *ikev = Ikev::Insist;
            }
            Ikev::Insist => {}
        }
    }
    let word = |w: &Word, raw: bool| match w {
        Word::Psk => "psk",
        _ if raw => "rsasig",
        _ => "pubkey",
    };
    let local_raw = plan.local == Word::Sig && local_side(c, ctx, e, ids, origin);
    let remote_raw = plan.remote == Word::Sig && remote_side(c, ctx, e);
    let (lw, rw) = (word(&plan.local, local_raw), word(&plan.remote, remote_raw));
    if lw == rw {
        e.set("auth", lw);
    } else {
        e.set("local_auth", lw);
        e.set("remote_auth", rw);
    }
}

/// Our certificate or raw key and the private key. True for a raw key.
fn local_side(
    c: &mut Conv,
    ctx: &Ctx,
    e: &mut Entry,
    ids: &[Vec<String>; 2],
    origin: &mut Vec<String>,
) -> bool {
    let cert = c.local("cert");
    let sigkey = c.local("rsasigkey");
    let mut raw = cert.is_none();
    if let Some(p) = &cert {
        if ctx.dialect == Dialect::Libreswan {
            let why = format!("{}: Libreswan's leftcert names a certificate in its NSS database: export it (certutil -L -n NAME -a > NAME.pem; pk12util -o NAME.p12 -n NAME, then openssl pkcs12 -nocerts -noenc) and set local_cert and local_key", p.value);
            c.note(p, NoteKind::NotCarried, why.clone());
            e.disable(why);
        } else {
            e.set("local_cert", in_dir(&p.value, CERTS_DIR));
        }
    }
    if let Some(p) = &sigkey {
        let v = p.value.trim();
        if v == "%cert" {
            raw = false;
        } else if v.starts_with('%') {
            let why =
                format!("{v}: public keys from DNS are not implemented: write the key (0s...)");
            c.note(p, NoteKind::NotCarried, why.clone());
            e.disable(why);
        } else {
            e.set("local_rsasigkey", v);
        }
    }
    // The private key: the ipsec.secrets entry for our identity.
    let found = secrets::find(ctx.secrets, "RSA", &ids[0], &ids[1])
        .or_else(|| secrets::find(ctx.secrets, "ECDSA", &ids[0], &ids[1]));
    let Some(s) = found else {
        let why = if ctx.have_secrets {
            format!(
                "no private key: ipsec.secrets has no `: RSA` entry for {}",
                ids[0].join("/")
            )
        } else {
            "no ipsec.secrets given: the private key is missing (espresso import ipsec.conf ipsec.secrets)".to_string()
        };
        c.conn_note(NoteKind::NotCarried, why.clone());
        e.disable(why);
        return raw;
    };
    let text = s.text().unwrap_or("").trim();
    let sel = if s.selectors.is_empty() {
        "none".to_string()
    } else {
        s.selectors.join(" ")
    };
    if text.starts_with('{') {
        if !text.contains("PrivateExponent") {
            let why = format!("the private key at {} is in Libreswan's NSS database (ipsec.secrets holds only its CKAID): export it to a PEM file and set local_key", s.loc);
            c.conn_note(NoteKind::NotCarried, why.clone());
            e.disable(why);
            return raw;
        }
        // One file per secrets entry: connections sharing the host key share it.
        let base = s
            .selectors
            .first()
            .map(|x| super::values::sanitize(x.trim_start_matches('@')))
            .filter(|x| !x.is_empty())
            .unwrap_or_else(|| "host".to_string());
        let path = format!("{SECRETS_DIR}/{base}.key");
        e.set("local_key", path.clone());
        e.key_file = Some(SecretFile {
            path: path.clone(),
            fields: vec![],
            raw: Some(Zeroizing::new(format!(": {} {text}\n", s.kind))),
        });
        origin.push(format!(
            "private key from {} (selectors: {sel}), written to {path}",
            s.loc
        ));
    } else {
        let mut words = text.split_whitespace();
        let file = words.next().unwrap_or("");
        if file.is_empty() || file.starts_with('%') || words.next().is_some() {
            let why = format!("the private key at {} is encrypted (a passphrase or %prompt in ipsec.secrets): espresso reads unencrypted keys only: `openssl pkey -in KEY -out KEY.plain` (mode 0600) and set local_key", s.loc);
            c.conn_note(NoteKind::NotCarried, why.clone());
            e.disable(why);
            return raw;
        }
        let path = in_dir(file, PRIVATE_DIR);
        e.set("local_key", path.clone());
        origin.push(format!(
            "private key from {} (selectors: {sel}): {path}",
            s.loc
        ));
    }
    raw
}

/// The peer's raw key, or the CAs its certificate must chain to. True for a raw key.
fn remote_side(c: &mut Conv, ctx: &Ctx, e: &mut Entry) -> bool {
    let sigkey = c.remote("rsasigkey");
    let ca = c.remote("ca");
    let rcert = c.remote("cert");
    if let Some(p) = &sigkey {
        let v = p.value.trim();
        if v.starts_with('%') && v != "%cert" {
            let why = format!(
                "{v}: public keys from DNS are not implemented: write the peer's key (0s...)"
            );
            c.note(p, NoteKind::NotCarried, why.clone());
            e.disable(why);
            return true;
        }
        if v != "%cert" {
            e.set("remote_rsasigkey", v);
            if let Some(p) = &ca {
                c.note(
                    p,
                    NoteKind::NoEffect,
                    "the peer is checked against its raw key (rightrsasigkey), not a CA",
                );
            }
            return true;
        }
    }
    if ctx.dialect == Dialect::Libreswan {
        c.conn_note(
            NoteKind::Changed,
            format!("the peer's certificate is checked against the CA certificates in {CACERTS_DIR} and the CRLs in {CRLS_DIR} (Libreswan keeps them in its NSS database: export them there)"),
        );
    } else {
        c.conn_note(
            NoteKind::Changed,
            format!("the peer's certificate is checked against the CA certificates in {CACERTS_DIR} and the CRLs in {CRLS_DIR}, as the original does (both must exist on this gateway); CRLs are not fetched"),
        );
    }
    let mut cacerts = vec![CACERTS_DIR.to_string()];
    for f in &ctx.cacerts {
        if !cacerts.contains(f) && !in_cacerts_dir(f) {
            cacerts.push(f.clone());
        }
    }
    e.set(
        "cacerts",
        Value::Array(cacerts.into_iter().map(Value::String).collect()),
    );
    e.set("crls", Value::Array(vec![Value::String(CRLS_DIR.into())]));
    if let Some(p) = &ca {
        let v = p.value.trim().trim_matches('"');
        if v == "%same" {
            match c.local("ca") {
                Some(l) if !l.value.trim().starts_with('%') => {
                    e.set("remote_ca", l.value.trim().trim_matches('"'))
                }
                _ => c.note(
                    p,
                    NoteKind::NoEffect,
                    "%same without leftca: any CA in cacerts",
                ),
            }
        } else if v.starts_with('%') {
            c.note(
                p,
                NoteKind::NotCarried,
                format!("{v} is not implemented: any CA in cacerts"),
            );
        } else {
            e.set("remote_ca", v);
        }
    }
    if let Some(p) = &rcert {
        c.note(
            p,
            NoteKind::NotCarried,
            "the peer's certificate file is not pinned: espresso verifies the certificate the peer sends against cacerts (and remote_id)",
        );
    }
    false
}
