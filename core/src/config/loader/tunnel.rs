//! `[[tunnel]]`: manually keyed tunnels. A block is read in steps: its
//! fields (templates with `also =`, a secrets file with `keys =`), their
//! values, the SPIs, the suite, the keys and the subnets; each step reports
//! what it finds wrong, and the tunnel is kept only if none did.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::ops::Range;
use std::time::Duration;

use ipnet::IpNet;
use toml::Value;

use super::{block_ctx, values, At, Block, Field, Fields, Loader, Parse};
use crate::alg::Suite;
use crate::config::model::{Lifetimes, StartMode, Tunnel, TunnelKeys};
use crate::key::Key;
use crate::sa::{DfMode, Mode, UdpEncap, DEFAULT_REPLAY_WINDOW};

const TUNNEL_FIELDS: &[(&str, &[&str])] = &[
    ("name", &["conn"]),
    ("also", &[]),
    ("local", &["left", "local_addr", "local_gateway"]),
    (
        "remote",
        &["right", "remote_addr", "remote_gateway", "peer"],
    ),
    ("local_subnets", &["leftsubnet", "local_subnet", "from"]),
    ("remote_subnets", &["rightsubnet", "remote_subnet", "to"]),
    ("mode", &["type"]),
    ("suite", &["esp"]),
    ("spi", &[]),
    ("spi_in", &[]),
    ("spi_out", &[]),
    ("enc_key", &["espenckey"]),
    ("enc_key_in", &[]),
    ("enc_key_out", &[]),
    ("auth_key", &["espauthkey"]),
    ("auth_key_in", &[]),
    ("auth_key_out", &[]),
    ("keys", &["secrets"]),
    ("replay_window", &[]),
    ("esn", &[]),
    ("nat_t", &["encap", "udp_encap"]),
    ("df", &[]),
    ("copy_dscp", &[]),
    ("lifetime", &[]),
    ("start", &["auto"]),
    ("allow_legacy", &[]),
    ("priority", &[]),
];

const KEY_FIELDS: [&str; 6] = [
    "enc_key",
    "enc_key_in",
    "enc_key_out",
    "auth_key",
    "auth_key_in",
    "auth_key_out",
];

/// The values of a tunnel block, each checked on its own.
struct TunnelFields {
    name: String,
    local: IpAddr,
    remote: IpAddr,
    mode: Mode,
    suite: Suite,
    /// Where the suite was written (errors about it point there).
    suite_f: Option<Field>,
    allow_legacy: bool,
    local_subnets: Option<Vec<IpNet>>,
    remote_subnets: Option<Vec<IpNet>>,
    spi_both: Option<(u32, Field)>,
    spi_in: Option<(u32, Field)>,
    spi_out: Option<(u32, Field)>,
    replay_window: u32,
    esn: bool,
    encap: Option<UdpEncap>,
    df: DfMode,
    copy_dscp: bool,
    lifetime: Lifetimes,
    start: StartMode,
    priority: u32,
    /// The key fields, checked with the suite ([`Loader::tunnel_keys`]).
    keys: HashMap<&'static str, Field>,
}

/// `nat_t`: `true`/`"udp"` (4500 both sides), `false`/`"none"`, or
/// `{ local_port, remote_port }`.
fn nat_t(v: &Value) -> Result<Option<UdpEncap>, String> {
    const NATT: UdpEncap = UdpEncap {
        local_port: 4500,
        remote_port: 4500,
    };
    match v {
        Value::Boolean(false) => Ok(None),
        Value::Boolean(true) => Ok(Some(NATT)),
        Value::Table(t) => {
            let port = |k: &str| -> Result<u16, String> {
                match t.get(k) {
                    None => Ok(4500),
                    Some(v) => {
                        let n = values::integer(v).map_err(|e| format!("{k}: {e}"))?;
                        if (1..=65535).contains(&n) {
                            Ok(n as u16)
                        } else {
                            Err(format!("{k} = {n}: ports are 1..=65535"))
                        }
                    }
                }
            };
            if let Some(k) = t.keys().find(|k| *k != "local_port" && *k != "remote_port") {
                return Err(format!("unknown field {k} (local_port, remote_port)"));
            }
            let local_port = port("local_port")?;
            if local_port != NATT.local_port {
                // the dataplane takes ESP in UDP off the wire on 4500 only
                // (and the kernel's nft rules leave only that port to it)
                return Err(format!(
                    "local_port = {local_port}: the dataplane decapsulates ESP in UDP on port 4500 only (the peer's remote_port may differ)"
                ));
            }
            Ok(Some(UdpEncap {
                local_port,
                remote_port: port("remote_port")?,
            }))
        }
        Value::String(s) if s == "udp" || s == "nat-t" || s == "natt" => Ok(Some(NATT)),
        Value::String(s) if s == "none" || s == "esp" => Ok(None),
        o => Err(format!(
            "expected true, false, \"udp\", \"none\" or {{ local_port, remote_port }}, found {}",
            values::kind(o)
        )),
    }
}

fn mode(v: &Value) -> Result<Mode, String> {
    match values::string(v)?.as_str() {
        "tunnel" => Ok(Mode::Tunnel),
        "transport" => Ok(Mode::Transport),
        s => Err(format!("\"{s}\": expected tunnel or transport")),
    }
}

fn df(v: &Value) -> Result<DfMode, String> {
    match values::string(v)?.as_str() {
        "copy" => Ok(DfMode::Copy),
        "set" => Ok(DfMode::Set),
        "clear" => Ok(DfMode::Clear),
        s => Err(format!("\"{s}\": expected copy, set or clear")),
    }
}

impl Loader {
    pub(super) fn tunnel(&mut self, b: Block) -> Option<Tunnel> {
        let ctx0 = block_ctx("tunnel", &b);
        let b = self.tunnel_block(&ctx0, b);
        let (file, span) = (b.file, b.span.clone());
        let nerr = self.errors.len();
        let Some(f) = self.tunnel_fields(&ctx0, b) else {
            if self.errors.len() == nerr {
                self.err(file, Some(&span), Some(ctx0), None, "incomplete tunnel");
            }
            return None;
        };
        let at = At {
            ctx: format!("tunnel[{}]", f.name),
            file,
            span,
        };
        if f.local.is_ipv4() != f.remote.is_ipv4() {
            let (l, r) = (f.local, f.remote);
            at.err(
                self,
                "remote",
                Some(r.to_string()),
                format!("local {l} and remote {r} are of different address families"),
            );
        }
        let (spi_in, spi_out) = self.tunnel_spis(&at, nerr, &f)?;
        self.tunnel_suite(&at, &f)?;
        let TunnelFields {
            name,
            local,
            remote,
            mode,
            suite,
            keys,
            ..
        } = f;
        let keys = self.tunnel_keys(&at.ctx, at.file, &at.span, suite, keys)?;
        let (local_subnets, remote_subnets) =
            self.tunnel_subnets(&at, mode, local, remote, f.local_subnets, f.remote_subnets);
        if self.errors.len() != nerr {
            return None;
        }
        Some(Tunnel {
            name,
            file: self.files[at.file].path.clone(),
            line: self.files[at.file].line(at.span.start),
            local,
            remote,
            local_subnets,
            remote_subnets,
            mode,
            suite,
            spi_in,
            spi_out,
            keys,
            replay_window: f.replay_window,
            esn: f.esn,
            encap: f.encap,
            df: f.df,
            copy_dscp: f.copy_dscp,
            lifetime: f.lifetime,
            start: f.start,
            allow_legacy: f.allow_legacy,
            priority: f.priority,
        })
    }

    /// The block with canonical field names, the fields of its templates
    /// (`also =`, in order, for the fields it does not set) and of its
    /// secrets file (`keys =`).
    fn tunnel_block(&mut self, ctx0: &str, b: Block) -> Block {
        let mut b = self.canonical(ctx0, b, TUNNEL_FIELDS);
        if let Some(also) = b.fields.remove("also") {
            match values::strings(&also.value) {
                Err(m) => self.err(
                    also.file,
                    Some(&also.span),
                    Some(format!("{ctx0}.also")),
                    Some(values::show(&also.value)),
                    m,
                ),
                Ok(names) => {
                    for n in names {
                        self.template_into(ctx0, &also, &n, &mut b.fields);
                    }
                }
            }
        }
        if let Some(kf) = b.fields.remove("keys") {
            self.secrets_file(ctx0, &kf, &mut b.fields);
        }
        b
    }

    /// Fills the fields `fields` lacks from template `n` (named by field `also`).
    fn template_into(&mut self, ctx0: &str, also: &Field, n: &str, fields: &mut Fields) {
        let Some(t) = self.templates.get(n) else {
            let known: Vec<_> = self.templates.keys().cloned().collect();
            let msg = if known.is_empty() {
                "no such template (define it as [template.NAME])".to_string()
            } else {
                format!("no such template (known: {})", known.join(", "))
            };
            self.err(
                also.file,
                Some(&also.span),
                Some(format!("{ctx0}.also")),
                Some(format!("{n:?}")),
                msg,
            );
            return;
        };
        let tb = Block {
            fields: t.fields.clone(),
            file: t.file,
            span: t.span.clone(),
        };
        let tb = self.canonical(&format!("template.{n}"), tb, TUNNEL_FIELDS);
        for (k, f) in tb.fields {
            if k == "name" || k == "also" {
                continue;
            }
            fields.entry(k).or_insert(f);
        }
    }

    /// Every field's value; `None` if a required one is missing or wrong.
    fn tunnel_fields(&mut self, ctx0: &str, b: Block) -> Option<TunnelFields> {
        let mut p = Parse {
            l: self,
            ctx: ctx0.to_string(),
            fields: b.fields,
            file: b.file,
            span: b.span,
        };
        let name = p.req("name", Loader::name_ok);
        let local = p.req("local", values::address);
        let remote = p.req("remote", values::address);
        let mode = p.get("mode", mode).unwrap_or(Mode::Tunnel);
        let suite_f = p.fields.get("suite").cloned();
        let suite = p.req("suite", |v| Suite::parse(&values::string(v)?));
        let allow_legacy = p.get("allow_legacy", values::boolean).unwrap_or(false);
        let local_subnets = p.get("local_subnets", values::prefixes);
        let remote_subnets = p.get("remote_subnets", values::prefixes);
        let spi_both = p.get_field("spi", values::spi);
        let spi_in = p.get_field("spi_in", values::spi);
        let spi_out = p.get_field("spi_out", values::spi);
        let replay_window = p
            .get("replay_window", values::replay_window)
            .unwrap_or(DEFAULT_REPLAY_WINDOW);
        let esn = p.get("esn", values::boolean).unwrap_or(false);
        let encap = p.get("nat_t", nat_t).flatten();
        let df = p.get("df", df).unwrap_or_default();
        let copy_dscp = p.get("copy_dscp", values::boolean).unwrap_or(true);
        let lifetime = p.get("lifetime", lifetimes).unwrap_or_default();
        let start = p
            .get("start", Loader::start_mode)
            .unwrap_or(StartMode::Start);
        let priority = p.get("priority", values::priority).unwrap_or(100);
        let keys: HashMap<&'static str, Field> = KEY_FIELDS
            .iter()
            .filter_map(|k| p.fields.remove(*k).map(|f| (*k, f)))
            .collect();
        let fields_left = std::mem::take(&mut p.fields);
        debug_assert!(fields_left.is_empty(), "every known field is consumed");
        Some(TunnelFields {
            name: name?,
            local: local?,
            remote: remote?,
            mode,
            suite: suite?,
            suite_f,
            allow_legacy,
            local_subnets,
            remote_subnets,
            spi_both,
            spi_in,
            spi_out,
            replay_window,
            esn,
            encap,
            df,
            copy_dscp,
            lifetime,
            start,
            priority,
            keys,
        })
    }

    /// The SPIs: `spi` for both directions, or `spi_in` and `spi_out`.
    fn tunnel_spis(&mut self, at: &At, nerr: usize, f: &TunnelFields) -> Option<(u32, u32)> {
        let ctx = &at.ctx;
        match (&f.spi_both, &f.spi_in, &f.spi_out) {
            (Some((s, _)), None, None) => Some((*s, *s)),
            (None, Some((i, _)), Some((o, _))) => Some((*i, *o)),
            (Some(_), Some((_, f)), _) | (Some(_), _, Some((_, f))) => {
                self.err(
                    f.file,
                    Some(&f.span),
                    Some(format!("{ctx}.{}", f.written)),
                    Some(values::show(&f.value)),
                    "give either spi (one SPI for both directions) or spi_in and spi_out, not both",
                );
                None
            }
            (None, Some(_), None) => {
                at.err(self, "spi_out", None, "missing: spi_in is given, spi_out is not (or give one spi for both directions)");
                None
            }
            (None, None, Some(_)) => {
                at.err(self, "spi_in", None, "missing: spi_out is given, spi_in is not (or give one spi for both directions)");
                None
            }
            (None, None, None) => {
                if self.errors.len() == nerr {
                    at.err(self, "spi_in", None, "missing: give spi_in and spi_out (the peer's spi_out and spi_in), or one spi for both directions");
                }
                None
            }
        }
    }

    /// The suite goes together (and is legacy only with `allow_legacy`);
    /// warnings for legacy algorithms and for anti-replay off.
    fn tunnel_suite(&mut self, at: &At, f: &TunnelFields) -> Option<()> {
        let (suite, name) = (f.suite, &f.name);
        if let Err(e) = suite.validate(f.allow_legacy) {
            let (file, sp) = f
                .suite_f
                .as_ref()
                .map_or((at.file, at.span.clone()), |f| (f.file, f.span.clone()));
            self.err(
                file,
                Some(&sp),
                Some(format!("{}.suite", at.ctx)),
                f.suite_f.as_ref().map(|f| values::show(&f.value)),
                e.to_string(),
            );
            return None;
        }
        if f.allow_legacy && (suite.encr.is_legacy() || suite.integ.is_legacy()) {
            self.warnings.push(format!(
                "{}:{}: tunnel {name} uses legacy {} (RFC 8221: 3DES and HMAC-MD5 are deprecated); allowed by allow_legacy",
                self.files[at.file].path.display(),
                self.files[at.file].line(at.span.start),
                suite
            ));
        }
        if f.replay_window == 0 {
            self.warnings.push(format!(
                "tunnel {name}: replay_window = 0 turns anti-replay protection off"
            ));
        }
        Some(())
    }

    /// The subnets: given (tunnel mode, defaulting to the gateways), or the
    /// gateways themselves (transport mode); each local prefix needs a
    /// remote one of its family and the other way round.
    fn tunnel_subnets(
        &mut self,
        at: &At,
        mode: Mode,
        local: IpAddr,
        remote: IpAddr,
        local_subnets: Option<Vec<IpNet>>,
        remote_subnets: Option<Vec<IpNet>>,
    ) -> (Vec<IpNet>, Vec<IpNet>) {
        let host = |a: IpAddr| IpNet::from(a);
        let (local_subnets, remote_subnets) = match mode {
            Mode::Transport => {
                for (f, v, want) in [
                    ("local_subnets", &local_subnets, host(local)),
                    ("remote_subnets", &remote_subnets, host(remote)),
                ] {
                    if let Some(v) = v {
                        if v.len() != 1 || v[0] != want {
                            at.err(self, f, Some(format!("{v:?}")), format!("transport mode protects the gateways' own traffic only: leave {f} out (or set it to {want})"));
                        }
                    }
                }
                (vec![host(local)], vec![host(remote)])
            }
            Mode::Tunnel => (
                local_subnets.unwrap_or_else(|| vec![host(local)]),
                remote_subnets.unwrap_or_else(|| vec![host(remote)]),
            ),
        };
        for (field, mine, theirs, other) in [
            ("local_subnets", &local_subnets, &remote_subnets, "remote"),
            ("remote_subnets", &remote_subnets, &local_subnets, "local"),
        ] {
            for n in mine {
                if !theirs
                    .iter()
                    .any(|t| t.addr().is_ipv4() == n.addr().is_ipv4())
                {
                    at.err(
                        self,
                        field,
                        Some(n.to_string()),
                        format!("no {other} subnet of the same address family for {n}"),
                    );
                }
            }
        }
        (local_subnets, remote_subnets)
    }

    fn secrets_file(&mut self, ctx: &str, kf: &Field, fields: &mut Fields) {
        let Some((file, raw)) =
            self.read_secrets(ctx, "keys", kf, "expected lines like enc_key = \"0x...\"")
        else {
            return;
        };
        let only = format!("a secrets file holds only {}", KEY_FIELDS.join(", "));
        let canon = |k: &str| {
            let c = match k {
                "espenckey" => "enc_key",
                "espauthkey" => "auth_key",
                s => s,
            };
            KEY_FIELDS.iter().copied().find(|f| *f == c)
        };
        self.secret_fields(ctx, file, raw, canon, &only, "give each key once", fields);
    }

    /// The four keys, from `enc_key`/`auth_key` (both directions) or their
    /// `_in`/`_out` forms, each of the length the suite needs.
    fn tunnel_keys(
        &mut self,
        ctx: &str,
        file: usize,
        span: &Range<usize>,
        suite: Suite,
        kf: HashMap<&'static str, Field>,
    ) -> Option<TunnelKeys> {
        let nerr = self.errors.len();
        // Files holding inline keys must be private too.
        let mut checked = HashSet::new();
        for f in KEY_FIELDS.iter().filter_map(|k| kf.get(k)) {
            if checked.insert(f.file) {
                let fld = format!("{ctx}.{}", f.written);
                let sp = f.span.clone();
                self.check_secret_perms(f.file, Some(&sp), &fld);
            }
        }
        let given = self.key_values(ctx, kf);
        if self.errors.len() != nerr {
            return None;
        }
        let [enc, enc_in, enc_out, auth, auth_in, auth_out] = given;
        let ei = self.key_for(ctx, &enc, &enc_in, "enc_key")?;
        let eo = self.key_for(ctx, &enc, &enc_out, "enc_key")?;
        let ai = self.key_for(ctx, &auth, &auth_in, "auth_key")?;
        let ao = self.key_for(ctx, &auth, &auth_out, "auth_key")?;
        let at = At {
            ctx: ctx.to_string(),
            file,
            span: span.clone(),
        };
        self.key_lengths(&at, suite, [&ei, &eo, &ai, &ao]);
        if self.errors.len() != nerr {
            return None;
        }
        if suite.encr.is_aead() && ei.0 == eo.0 {
            let f = ei.1.as_ref().or(eo.1.as_ref());
            let (ff, sp) = f.map_or((file, span.clone()), |f| (f.file, f.span.clone()));
            self.err(ff, Some(&sp), Some(format!("{ctx}.enc_key")), None, format!(
                "{} uses the sequence number as nonce: with one key for both directions both gateways would send the same nonces under the same key (RFC 4106 §9). Give enc_key_in and enc_key_out with different keys (the peer's enc_key_out is our enc_key_in)",
                suite.encr.name()
            ));
            return None;
        }
        Some(TunnelKeys {
            enc_in: Key::new(ei.0),
            enc_out: Key::new(eo.0),
            auth_in: Key::new(ai.0),
            auth_out: Key::new(ao.0),
        })
    }

    /// The key fields' bytes, in [`KEY_FIELDS`] order (a bad one is an error
    /// that shows its length only).
    fn key_values(
        &mut self,
        ctx: &str,
        mut kf: HashMap<&'static str, Field>,
    ) -> [Option<(Vec<u8>, Field)>; 6] {
        KEY_FIELDS.map(|name| {
            let f = kf.remove(name)?;
            match values::key(&f.value) {
                Ok(k) => Some((k, f)),
                Err(m) => {
                    let shown = match &f.value {
                        Value::String(s) => format!("<hidden, {} characters>", s.len()),
                        o => values::kind(o).to_string(),
                    };
                    self.err(
                        f.file,
                        Some(&f.span),
                        Some(format!("{ctx}.{}", f.written)),
                        Some(shown),
                        m,
                    );
                    None
                }
            }
        })
    }

    /// One direction's key: `base` (both directions) or `one` (this
    /// direction), not both; empty when neither is given.
    fn key_for(
        &mut self,
        ctx: &str,
        both: &Option<(Vec<u8>, Field)>,
        one: &Option<(Vec<u8>, Field)>,
        base: &str,
    ) -> Option<(Vec<u8>, Option<Field>)> {
        match (both, one) {
            (Some(_), Some((_, f))) => {
                self.err(f.file, Some(&f.span), Some(format!("{ctx}.{}", f.written)), None, format!("{base} already gives the key for both directions: use either {base} or {base}_in and {base}_out"));
                None
            }
            (Some((k, f)), None) | (None, Some((k, f))) => Some((k.clone(), Some(f.clone()))),
            (None, None) => Some((Vec::new(), None)),
        }
    }

    /// Each key has the length its algorithm needs (none for what takes none).
    fn key_lengths(&mut self, at: &At, suite: Suite, keys: [&(Vec<u8>, Option<Field>); 4]) {
        let ctx = &at.ctx;
        let aead = suite.encr.is_aead();
        let elen = suite.encr.key_len();
        let alen = suite.integ.key_len();
        let salt_note = if aead {
            format!(" ({}-byte key + 4-byte salt)", elen - 4)
        } else {
            String::new()
        };
        let [ei, eo, ai, ao] = keys;
        for ((k, f), field, want, what) in [
            (ei, "enc_key_in", elen, suite.encr.name()),
            (eo, "enc_key_out", elen, suite.encr.name()),
            (ai, "auth_key_in", alen, suite.integ.name()),
            (ao, "auth_key_out", alen, suite.integ.name()),
        ] {
            let is_enc = field.starts_with("enc");
            let note = if is_enc { salt_note.as_str() } else { "" };
            match f {
                None if want > 0 => {
                    let base = if is_enc { "enc_key" } else { "auth_key" };
                    at.err(self, field, None, format!("missing: {what} needs a {want}-byte key{note}; give {base} (both directions) or {base}_in and {base}_out, inline or in a keys file (espresso genkey --bits {} makes one)", want * 8));
                }
                Some(f) if want == 0 => {
                    let why = if is_enc {
                        format!("{what} takes no encryption key")
                    } else if aead {
                        format!(
                            "{} is a combined-mode cipher: it takes no auth_key",
                            suite.encr.name()
                        )
                    } else {
                        format!("{what} takes no key")
                    };
                    self.err(
                        f.file,
                        Some(&f.span),
                        Some(format!("{ctx}.{}", f.written)),
                        Some(format!("<{} bytes>", k.len())),
                        why,
                    );
                }
                Some(f) if k.len() != want => {
                    self.err(
                        f.file,
                        Some(&f.span),
                        Some(format!("{ctx}.{}", f.written)),
                        Some(format!("<{} bytes>", k.len())),
                        format!(
                            "{what} needs a {want}-byte key{note} ({} hex digits after 0x), got {} bytes",
                            want * 2,
                            k.len()
                        ),
                    );
                }
                _ => {}
            }
        }
    }
}

fn lifetimes(v: &Value) -> Result<Lifetimes, String> {
    let Value::Table(t) = v else {
        return Err(format!(
            "expected a table like {{ time = \"8h\", bytes = \"100G\" }}, found {}",
            values::kind(v)
        ));
    };
    let mut l = Lifetimes::default();
    for (k, v) in t {
        let r: Result<(), String> = match k.as_str() {
            "bytes" => values::amount(v).map(|x| l.hard_bytes = x),
            "soft_bytes" => values::amount(v).map(|x| l.soft_bytes = x),
            "packets" => values::amount(v).map(|x| l.hard_packets = x),
            "soft_packets" => values::amount(v).map(|x| l.soft_packets = x),
            "time" => values::duration(v).map(|x| l.hard_time = Some(x)),
            "soft_time" => values::duration(v).map(|x| l.soft_time = Some(x)),
            _ => Err(
                "unknown field (time, bytes, packets, soft_time, soft_bytes, soft_packets)".into(),
            ),
        };
        r.map_err(|e| format!("{k} = {}: {e}", values::show(v)))?;
    }
    let pct = |h: u64| h - h / 10;
    if l.hard_bytes > 0 && l.soft_bytes == 0 {
        l.soft_bytes = pct(l.hard_bytes);
    }
    if l.hard_packets > 0 && l.soft_packets == 0 {
        l.soft_packets = pct(l.hard_packets);
    }
    if let (Some(h), None) = (l.hard_time, l.soft_time) {
        l.soft_time = Some(h - h / 10);
    }
    if l.hard_bytes > 0 && l.soft_bytes >= l.hard_bytes {
        return Err(format!(
            "soft_bytes {} must be below bytes {}",
            l.soft_bytes, l.hard_bytes
        ));
    }
    if l.hard_packets > 0 && l.soft_packets >= l.hard_packets {
        return Err(format!(
            "soft_packets {} must be below packets {}",
            l.soft_packets, l.hard_packets
        ));
    }
    if let (Some(s), Some(h)) = (l.soft_time, l.hard_time) {
        if s >= h {
            return Err(format!(
                "soft_time {}s must be below time {}s",
                s.as_secs(),
                h.as_secs()
            ));
        }
    }
    if l.hard_time == Some(Duration::ZERO) {
        return Err("time = 0: leave it out for no time limit".into());
    }
    Ok(l)
}
