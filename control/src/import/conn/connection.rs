//! An IKE conn: a `[[connection]]` entry (addresses, identities,
//! authentication and the pre-shared key, IKE version, proposals,
//! lifetimes, DPD, start, certificate fields).

use std::net::IpAddr;

use toml::Value;
use zeroize::Zeroizing;

use super::auth;
use super::conv::{set_subnets, start_of, Conv, Ctx, Ikev};
use super::values::*;
use crate::import::algs;
use crate::import::dialect::Dialect;
use crate::import::features;
use crate::import::ipsecconf::Param;
use crate::import::notes::NoteKind;
use crate::import::out::{Entry, SecretFile, Table, SECRETS_DIR};
use crate::import::secrets;
pub(super) fn connection(
    c: &mut Conv,
    ctx: &Ctx,
    name: &str,
    ty: &str,
    origin: &mut Vec<String>,
) -> Entry {
    let mut e = Entry::new(Table::Connection, name, c.r.loc.clone());
    let pluto = ctx.dialect != Dialect::Strongswan;
    let ends = endpoints(c, &mut e);
    let ids = identities(c, &mut e, &ends, pluto);
    set_subnets(c, &mut e, true);
    set_subnets(c, &mut e, false);

    // Authentication: the methods here, the signature fields once the IKE
    // version is known.
    let auth_plan = auth::plan(c, &mut e, ctx.dialect);
    // The pre-shared key.
    if auth_plan.psk() {
        psk(c, ctx, &mut e, name, &ids, origin);
    }
    let mut v = ike_version(c, ctx, pluto);
    auth::signatures(c, ctx, &mut e, &auth_plan, &mut v.ikev, &ids, origin);
    set_ike_version(c, &mut e, &v, pluto);
    proposals(c, &mut e, &v, pluto);
    lifetimes(c, ctx, &mut e);
    dpd(c, &mut e, pluto);
    start_and_options(c, &mut e, ty, ends.remote_any);
    c.leftovers();
    e
}

/// The two addresses as written (`left=`/`right=`, the local one
/// `%defaultroute` when empty).
struct Ends {
    lv: String,
    rv: String,
    remote_any: bool,
}

/// Addresses.
fn endpoints(c: &mut Conv, e: &mut Entry) -> Ends {
    let lp = c.local("");
    let rp = c.remote("");
    let lv = lp.as_ref().map(|p| p.value.clone()).unwrap_or_default();
    let rv = rp.as_ref().map(|p| p.value.clone()).unwrap_or_default();
    let lv = if lv.is_empty() {
        "%defaultroute".to_string()
    } else {
        lv
    };
    match addr_value(&lv, true) {
        Ok(v) => e.set("local", v),
        Err(w) => {
            if let Some(p) = &lp {
                c.note(p, NoteKind::NotCarried, w.clone());
            }
            e.disable(w);
        }
    }
    let remote_any = rv.starts_with("%any");
    match addr_value(&rv, false) {
        Ok(v) => e.set("remote", v),
        Err(w) => {
            match &rp {
                Some(p) => c.note(p, NoteKind::NotCarried, w.clone()),
                None => c.conn_note(NoteKind::NotCarried, "no remote address (right=)"),
            }
            e.disable(format!("remote: {w}"));
        }
    }
    Ends { lv, rv, remote_any }
}

/// Identities: `local_id`/`remote_id`; returns the names each side's
/// secrets may be filed under (identity first, then address).
fn identities(c: &mut Conv, e: &mut Entry, ends: &Ends, pluto: bool) -> [Vec<String>; 2] {
    let mut ids: [Vec<String>; 2] = [vec![], vec![]];
    for (i, (local, k)) in [(true, "local_id"), (false, "remote_id")]
        .into_iter()
        .enumerate()
    {
        let addr = if local {
            ends.lv.clone()
        } else {
            ends.rv.clone()
        };
        ids[i].push(addr.clone());
        let Some(p) = (if local { c.local("id") } else { c.remote("id") }) else {
            continue;
        };
        let v = p.value.trim().to_string();
        let id = if v == "%any" {
            Ok("%any".to_string())
        } else if v == "%fromcert" {
            c.note(
                &p,
                NoteKind::NoEffect,
                if local {
                    "without local_id espresso identifies with its certificate's subject"
                } else {
                    "without remote_id espresso accepts the identity the peer's certificate proves"
                },
            );
            continue;
        } else if v.contains('=') {
            Ok(v.clone())
        } else if v.starts_with('%') {
            Err((NoteKind::NotCarried, format!("{v} is not implemented")))
        } else if let Some(f) = v.strip_prefix("@[").and_then(|f| f.strip_suffix(']')) {
            Ok(format!("@{f}"))
        } else if v.starts_with('@') || v.parse::<IpAddr>().is_ok() || v.contains('@') {
            Ok(v.clone())
        } else if pluto {
            Err((NoteKind::NotCarried, format!("{v}: Openswan resolves a bare name to its address at load time; write the address or @{v}")))
        } else {
            Ok(format!("@{v}"))
        };
        match id {
            Ok(id) => {
                ids[i].insert(0, id.clone());
                e.set(k, id);
            }
            Err((kind, why)) => {
                c.note(&p, kind, why.clone());
                e.disable(why);
            }
        }
    }
    ids
}

/// The pre-shared key, found in the secrets by the identities.
fn psk(
    c: &mut Conv,
    ctx: &Ctx,
    e: &mut Entry,
    name: &str,
    ids: &[Vec<String>; 2],
    origin: &mut Vec<String>,
) {
    let (lids, rids) = (ids[0].clone(), ids[1].clone());
    match secrets::find(ctx.secrets, "PSK", &lids, &rids) {
        Some(s) => match s.text() {
            Some(t) if t.len() >= 8 => {
                let path = format!("{SECRETS_DIR}/{name}.psk");
                e.set("secrets", path.clone());
                origin.push(format!(
                    "pre-shared key from {} (selectors: {})",
                    s.loc,
                    if s.selectors.is_empty() {
                        "none".into()
                    } else {
                        s.selectors.join(" ")
                    }
                ));
                e.secret = Some(SecretFile {
                    path,
                    fields: vec![("psk".into(), Zeroizing::new(t.to_string()))],
                    raw: None,
                });
            }
            Some(t) => {
                let why = format!("the pre-shared key at {} has {} characters: espresso requires at least 8 (use 20 or more random ones on both sides)", s.loc, t.len());
                c.conn_note(NoteKind::NotCarried, why.clone());
                e.disable(why);
            }
            None => {
                let why = format!(
                    "the pre-shared key at {} is binary (0x/0s): espresso's psk is text",
                    s.loc
                );
                c.conn_note(NoteKind::NotCarried, why.clone());
                e.disable(why);
            }
        },
        None => {
            let why = if ctx.have_secrets {
                format!(
                    "no PSK in the secrets for {} <-> {}",
                    lids.join("/"),
                    rids.join("/")
                )
            } else {
                "no ipsec.secrets given: the pre-shared key is missing (espresso import ipsec.conf ipsec.secrets)".to_string()
            };
            c.conn_note(NoteKind::NotCarried, why.clone());
            e.disable(why);
        }
    }
}

/// The IKE version as the original reads it (before the signature fields,
/// which may narrow it).
struct IkeChoice {
    ikev: Ikev,
    why_v1: String,
    v1_param: Option<Param>,
    kx: Option<Param>,
    aggr: Option<Param>,
    aggr_on: bool,
}

/// IKE version: `keyexchange=`, `ikev1=`, `ikev2=` over the dialect's
/// default; aggressive mode.
fn ike_version(c: &mut Conv, ctx: &Ctx, pluto: bool) -> IkeChoice {
    let kx = c.get("keyexchange");
    let v2 = c.get("ikev2");
    let v1 = c.get("ikev1");
    let mut ikev = match ctx.dialect {
        Dialect::Freeswan => Ikev::Never,
        Dialect::Openswan | Dialect::Auto => Ikev::Permit,
        Dialect::Libreswan => Ikev::Insist,
        Dialect::Strongswan => Ikev::Propose,
    };
    let mut why_v1 = format!(
        "{}'s default when ikev2= is absent is {} (initiates with IKEv1)",
        ctx.dialect.name(),
        ikev.name()
    );
    let mut v1_param: Option<Param> = None;
    if let Some(p) = &kx {
        match p.value.to_ascii_lowercase().as_str() {
            "ikev1" => ikev = Ikev::Never,
            "ikev2" => ikev = Ikev::Insist,
            "ike" if !pluto => ikev = Ikev::Propose,
            "ike" => {}
            o => c.note(
                p,
                NoteKind::NotCarried,
                format!("keyexchange={o} is not understood"),
            ),
        }
        why_v1 = format!("keyexchange={}", p.value);
        v1_param = Some(p.clone());
    }
    if let Some(p) = &v1 {
        if yes(&p.value) == Some(false) {
            ikev = Ikev::Insist;
        }
    }
    if let Some(p) = &v2 {
        ikev = match p.value.to_ascii_lowercase().as_str() {
            "never" | "no" => Ikev::Never,
            "permit" => Ikev::Permit,
            "propose" => Ikev::Propose,
            "yes" if ctx.dialect == Dialect::Libreswan => Ikev::Insist,
            "yes" => Ikev::Propose,
            "insist" | "always" | "mandatory" => Ikev::Insist,
            o => {
                c.note(
                    p,
                    NoteKind::NotCarried,
                    format!("ikev2={o} is not understood"),
                );
                ikev
            }
        };
        why_v1 = format!("ikev2={}", p.value);
        v1_param = Some(p.clone());
    }
    let aggr = c.get("aggrmode").or_else(|| c.get("aggressive"));
    let aggr_on = aggr.as_ref().is_some_and(|p| yes(&p.value) == Some(true));
    IkeChoice {
        ikev,
        why_v1,
        v1_param,
        kx,
        aggr,
        aggr_on,
    }
}

/// Writes the IKE version (or, without IKEv1, notes and disables what needs
/// it).
fn set_ike_version(c: &mut Conv, e: &mut Entry, v: &IkeChoice, pluto: bool) {
    let (ikev, aggr_on) = (v.ikev, v.aggr_on);
    let (why_v1, v1_param, kx, aggr) = (&v.why_v1, &v.v1_param, &v.kx, &v.aggr);
    let needs_v1 = matches!(ikev, Ikev::Never | Ikev::Permit);
    if features::IKEV1 {
        if pluto || kx.is_none() {
            e.set("ikev2", ikev.name());
        } else {
            e.set(
                "keyexchange",
                match ikev {
                    Ikev::Never => "ikev1",
                    Ikev::Insist => "ikev2",
                    _ => "ike",
                },
            );
        }
        if aggr_on && ikev != Ikev::Insist {
            e.set("aggressive", true);
        }
    } else {
        if needs_v1 {
            let why = format!("{why_v1}: {}", features::IKEV1_MISSING);
            match &v1_param {
                Some(p) => c.note(p, NoteKind::NeedsIkev1, why.clone()),
                None => c.conn_note(NoteKind::NeedsIkev1, why.clone()),
            }
            // Written in the agreed schema (the commented-out block shows it).
            e.set(
                if pluto || kx.is_none() {
                    "ikev2"
                } else {
                    "keyexchange"
                },
                if pluto || kx.is_none() {
                    ikev.name()
                } else {
                    "ikev1"
                },
            );
            if aggr_on {
                e.set("aggressive", true);
            }
            e.disable(format!("IKEv1 ({why_v1}): {}", features::IKEV1_MISSING));
        } else if ikev == Ikev::Propose {
            let why = "IKEv2 is initiated as in the original; IKEv1 from the peer (which the original would also accept) is not answered until IKEv1 is available";
            match &v1_param {
                Some(p) => c.note(p, NoteKind::Changed, why),
                None => c.conn_note(NoteKind::Changed, format!("{why_v1}: {why}")),
            }
        }
        if let Some(p) = &aggr {
            if aggr_on && !needs_v1 {
                c.note(
                    p,
                    NoteKind::NoEffect,
                    "aggressive mode is IKEv1; this connection uses IKEv2",
                );
            } else if aggr_on {
                c.note(
                    p,
                    NoteKind::NeedsIkev1,
                    format!("aggressive mode: {}", features::IKEV1_MISSING),
                );
            }
        }
    }
}

/// Proposals: `ike=`/`ikealg=`, `esp=`/`phase2alg=` with `pfsgroup=` and
/// `esn=`; `pfs=`; AH refused.
fn proposals(c: &mut Conv, e: &mut Entry, v: &IkeChoice, pluto: bool) {
    let (ikev, aggr_on) = (v.ikev, v.aggr_on);
    // Aggressive mode sends its KE in the first message: one group only.
    let default_dh: &[&str] = if features::IKEV1 && aggr_on && ikev != Ikev::Insist {
        &["modp2048"]
    } else {
        &["modp2048", "modp1024"]
    };
    let pfsgroup = c.get("pfsgroup");
    let pfs_dh = match &pfsgroup {
        Some(p) => match algs::dh_group(&p.value) {
            Ok(g) => Some(g),
            Err(w) => {
                c.note(p, NoteKind::NotCarried, w.clone());
                e.disable(w);
                None
            }
        },
        None => None,
    };
    let mut esn_tokens = None;
    if let Some(p) = c.get("esn") {
        match p.value.to_ascii_lowercase().as_str() {
            "yes" => esn_tokens = Some("esn"),
            "either" => esn_tokens = Some("esn-noesn"),
            "no" => {}
            o => c.note(
                &p,
                NoteKind::NotCarried,
                format!("esn={o} is not understood"),
            ),
        }
    }
    for (keys, ike, field) in [
        (&["ike", "ikealg"][..], true, "ike"),
        (&["esp", "phase2alg"][..], false, "esp"),
    ] {
        let mut ps: Vec<Param> = keys.iter().filter_map(|k| c.get(k)).collect();
        let Some(p) = ps.pop() else {
            if !ike && (pfs_dh.is_some() || esn_tokens.is_some()) {
                c.conn_note(NoteKind::NotCarried, "pfsgroup=/esn= without esp=/phase2alg=: espresso's default ESP proposals are used as they are");
            }
            continue;
        };
        let t = if ike && features::IKEV1 && ikev == Ikev::Never {
            algs::translate_ikev1(&p.value, default_dh)
        } else {
            algs::translate(&p.value, ike, default_dh, pfs_dh.as_deref())
        };
        for (w, why) in &t.dropped {
            c.note(
                &p,
                NoteKind::NotCarried,
                format!("proposal {w} left out: {why}"),
            );
        }
        if t.filled_dh {
            c.note(&p, NoteKind::Changed, "a proposal without a DH group: the original fills in its defaults; espresso proposes modp2048 and modp1024");
        }
        if !pluto && !t.strict {
            c.note(&p, NoteKind::Changed, "strongSwan appends its default proposals when the list does not end in '!'; espresso offers exactly these");
        }
        if t.proposals.is_empty() {
            e.disable(format!(
                "{}={}: no proposal espresso implements",
                p.key, p.value
            ));
            continue;
        }
        let mut props = t.proposals.clone();
        if !ike {
            if let Some(x) = esn_tokens {
                for q in props.iter_mut() {
                    *q = format!("{q}-{x}");
                }
            }
            if t.legacy {
                e.set("allow_legacy", true);
                c.note(&p, NoteKind::Changed, "allow_legacy = true: the original offers 3DES or HMAC-MD5 (deprecated, RFC 8221)");
            }
        } else if t.legacy {
            e.set("allow_legacy", true);
            c.note(&p, NoteKind::Changed, "allow_legacy = true: the original's IKEv1 proposal uses 3DES, MD5 or MODP-1024/1536 (deprecated, RFC 8247)");
        }
        e.set(field, props.join(", "));
    }
    if let Some(p) = c.get("pfs") {
        if yes(&p.value) == Some(false) {
            e.set("pfs", false);
        }
    }
    for k in ["phase2", "auth"] {
        if let Some(p) = c.get(k) {
            if p.value.eq_ignore_ascii_case("ah") {
                c.note(
                    &p,
                    NoteKind::Refused,
                    "espresso has no AH (RFC 4302): use ESP with integrity on both sides",
                );
                e.disable("uses AH, which espresso does not implement (RFC 4302)");
            }
        }
    }
}

/// Lifetimes (explicit: the dialect's defaults differ from espresso's) and
/// `rekey=`.
fn lifetimes(c: &mut Conv, ctx: &Ctx, e: &mut Entry) {
    let (ike_def, child_def) = match ctx.dialect {
        Dialect::Strongswan => ("3h", "1h"),
        Dialect::Libreswan => ("8h", "8h"),
        _ => ("1h", "8h"),
    };
    for (keys, field, def) in [
        (&["ikelifetime"][..], "ike_lifetime", Some(ike_def)),
        (
            &["keylife", "salifetime", "lifetime"][..],
            "lifetime",
            Some(child_def),
        ),
        (&["rekeymargin", "margintime"][..], "margin", None),
        (&["rekeyfuzz"][..], "fuzz", None),
        (&["lifebytes"][..], "life_bytes", None),
        (&["lifepackets"][..], "life_packets", None),
    ] {
        let mut ps: Vec<Param> = keys.iter().filter_map(|k| c.get(k)).collect();
        match ps.pop() {
            Some(p) => {
                let v = match field {
                    "fuzz" => Some(Value::String(p.value.clone())),
                    "life_bytes" | "life_packets" => p
                        .value
                        .parse::<i64>()
                        .ok()
                        .map(Value::Integer)
                        .or(Some(Value::String(p.value.clone()))),
                    _ => duration(&p.value),
                };
                match v {
                    Some(v) => e.set(field, v),
                    None => c.note(
                        &p,
                        NoteKind::NotCarried,
                        "not a duration (seconds, or a number with s, m, h or d)",
                    ),
                }
            }
            None => {
                if let Some(d) = def {
                    e.set(field, d);
                }
            }
        }
    }
    if let Some(p) = c.get("rekey") {
        if yes(&p.value) == Some(false) {
            e.set("rekey", false);
        }
    }
}

/// DPD: on with `dpddelay=` (pluto) or a `dpdaction=` other than none
/// (strongSwan).
fn dpd(c: &mut Conv, e: &mut Entry, pluto: bool) {
    let dd = c.get("dpddelay");
    let dt = c.get("dpdtimeout");
    let da = c.get("dpdaction");
    let action = da.as_ref().map(|p| p.value.to_ascii_lowercase());
    let on = if pluto {
        dd.is_some()
    } else {
        action.as_deref().is_some_and(|a| a != "none")
    };
    if on {
        let a = match action.as_deref() {
            None => "hold",
            Some("hold") | Some("trap") => "hold",
            Some("clear") => "clear",
            Some("restart") => "restart",
            Some("restart_by_peer") => {
                if let Some(p) = &da {
                    c.note(
                        p,
                        NoteKind::Changed,
                        "restart_by_peer: espresso restarts this connection (restart)",
                    );
                }
                "restart"
            }
            Some(o) => {
                if let Some(p) = &da {
                    c.note(
                        p,
                        NoteKind::NotCarried,
                        format!("dpdaction={o} is not understood"),
                    );
                }
                "hold"
            }
        };
        let delay = dd
            .as_ref()
            .and_then(|p| duration(&p.value))
            .unwrap_or(Value::String("30s".into()));
        let timeout = dt
            .as_ref()
            .and_then(|p| duration(&p.value))
            .unwrap_or(Value::String(if pluto { "120s" } else { "150s" }.into()));
        e.set("dpd_delay", delay);
        e.set("dpd_timeout", timeout);
        e.set("dpd_action", a);
    } else {
        for p in [&dd, &dt, &da].into_iter().flatten() {
            c.note(
                p,
                NoteKind::NoEffect,
                if pluto {
                    "DPD is off without dpddelay="
                } else {
                    "DPD is off with dpdaction=none (strongSwan's default)"
                },
            );
        }
    }
}

/// Start (`auto=`), mode, and the per-connection switches: encapsulation,
/// compression, MOBIKE, replay window.
fn start_and_options(c: &mut Conv, e: &mut Entry, ty: &str, remote_any: bool) {
    // Start.
    match start_of(c, Table::Connection) {
        Ok(s) if remote_any && matches!(s, "start" | "trap") => {
            c.conn_note(
                NoteKind::Changed,
                format!("right=%any cannot initiate: start = \"add\" (was auto={s})"),
            );
            e.set("start", "add");
        }
        Ok(s) => e.set("start", s),
        Err(w) => e.disable(w),
    }
    if ty == "transport" {
        e.set("mode", "transport");
    }
    for k in ["forceencaps", "encapsulation"] {
        if let Some(p) = c.get(k) {
            if yes(&p.value) == Some(true) {
                e.set("encap", true);
            }
        }
    }
    if let Some(p) = c.get("compress") {
        if yes(&p.value) == Some(true) {
            c.note(&p, NoteKind::NotCarried, "IPComp is not implemented: the tunnel runs uncompressed (the original also proposes uncompressed)");
        }
    }
    if let Some(p) = c.get("mobike") {
        match yes(&p.value) {
            Some(false) => e.set("mobike", false),
            Some(true) => {}
            None => c.note(&p, NoteKind::NotCarried, "not yes or no"),
        }
    }
    for k in ["replay_window", "replay-window"] {
        if let Some(p) = c.get(k) {
            match p.value.parse::<i64>() {
                Ok(n) => e.set("replay_window", n),
                Err(_) => c.note(&p, NoteKind::NotCarried, "not a number"),
            }
        }
    }
}
