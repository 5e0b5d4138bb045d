//! `[daemon]` and `[dataplane]` (main file only).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use toml::Value;

use super::{values, Block, Loader, Parse};
use crate::config::dataplane::{DataplaneSettings, ExceptionPath, ShmSetting, CRYPTO_BACKENDS};
use crate::config::model::{DaemonSettings, IkeLimits};

const DAEMON_FIELDS: &[(&str, &[&str])] = &[
    ("shm", &[]),
    ("socket", &[]),
    ("metrics", &[]),
    ("log_lines", &[]),
    ("allow_key_export", &[]),
    ("fragmentation", &["ike_fragmentation"]),
    ("fragment_size", &["ike_fragment_size"]),
    ("rfc7427", &["signature_authentication"]),
    ("half_open", &["half_open_max"]),
    ("half_open_per_source", &[]),
    ("cookie_threshold", &[]),
    ("max_init_message", &[]),
    ("max_message", &[]),
    ("ike_queue", &[]),
];

/// An integer of `field` within `lo..=hi`, else an error saying why.
fn within(v: &Value, lo: u64, hi: u64, what: &str) -> Result<usize, String> {
    let n = values::integer(v)?;
    if (lo..=hi).contains(&n) {
        Ok(n as usize)
    } else {
        Err(format!("{n}: {what}, {lo} to {hi}"))
    }
}

impl Loader {
    pub(super) fn daemon_settings(&mut self) -> DaemonSettings {
        let mut d = DaemonSettings::default();
        let Some(b) = self.daemon.take() else {
            return d;
        };
        let b = self.canonical("daemon", b, DAEMON_FIELDS);
        let mut p = Parse {
            l: self,
            ctx: "daemon".into(),
            fields: b.fields,
            file: b.file,
            span: b.span,
        };
        if let Some(v) = p.get("shm", values::string) {
            d.shm = v.into();
        }
        if let Some(v) = p.get("socket", values::string) {
            d.socket = v.into();
        }
        if let Some(v) = p.get("metrics", |v| match v {
            Value::Boolean(false) => Ok(None),
            Value::String(s) if s.is_empty() || s == "off" => Ok(None),
            Value::String(s) => s.parse::<SocketAddr>().map(Some).map_err(|_| {
                format!("\"{s}\" is not ADDRESS:PORT (e.g. 127.0.0.1:9715), \"\" or false")
            }),
            o => Err(format!(
                "expected \"ADDRESS:PORT\" or false, found {}",
                values::kind(o)
            )),
        }) {
            d.metrics = v;
        }
        if let Some(v) = p.get("log_lines", |v| {
            let n = values::integer(v)?;
            if (10..=1_000_000).contains(&n) {
                Ok(n as usize)
            } else {
                Err(format!("{n}: keep between 10 and 1000000 lines"))
            }
        }) {
            d.log_lines = v;
        }
        if let Some(v) = p.get("allow_key_export", values::boolean) {
            d.allow_key_export = v;
        }
        if let Some(v) = p.get("fragmentation", values::boolean) {
            d.fragmentation = v;
        }
        if let Some(v) = p.get("fragment_size", |v| {
            let n = values::integer(v)?;
            if (576..=65535).contains(&n) {
                Ok(n as usize)
            } else {
                Err(format!(
                    "{n}: the largest IP datagram of an IKE fragment, 576 to 65535 bytes (1280 fits every IPv6 path)"
                ))
            }
        }) {
            d.fragment_size = v;
        }
        if let Some(v) = p.get("rfc7427", values::boolean) {
            d.rfc7427 = v;
        }
        ike_limits(&mut p, &mut d.ike_limits);
        d
    }
}

/// `[daemon]`'s IKE limits and the relations between them (reported at the
/// field that breaks them).
fn ike_limits(p: &mut Parse, lim: &mut IkeLimits) {
    let mut seen = Vec::new();
    let fields: [(&str, &mut usize, u64, u64, &str); 6] = [
        (
            "half_open",
            &mut lim.half_open,
            1,
            1 << 20,
            "half-open IKE SAs in total",
        ),
        (
            "half_open_per_source",
            &mut lim.half_open_per_source,
            1,
            1 << 20,
            "half-open IKE SAs per source address",
        ),
        (
            "cookie_threshold",
            &mut lim.cookie_threshold,
            0,
            1 << 20,
            "half-open IKE SAs before cookies are demanded (0: always)",
        ),
        (
            "max_init_message",
            &mut lim.max_init_message,
            512,
            65535,
            "bytes of an IKE_SA_INIT / IKEv1 first message",
        ),
        (
            "max_message",
            &mut lim.max_message,
            1280,
            65535,
            "bytes of any other IKE message",
        ),
        (
            "ike_queue",
            &mut lim.queue,
            16,
            1 << 16,
            "datagrams per queue between the IKE sockets and the daemon",
        ),
    ];
    for (name, slot, lo, hi, what) in fields {
        if let Some((v, f)) = p.get_field(name, |v| within(v, lo, hi, what)) {
            *slot = v;
            seen.push((name, f));
        }
    }
    // Relations between the limits, reported at the field that breaks them.
    let lim = *lim;
    let checks = [
        (
            "half_open_per_source",
            lim.half_open_per_source > lim.half_open,
            format!(
                "{} per source is more than the {} half-open IKE SAs allowed in total (half_open)",
                lim.half_open_per_source, lim.half_open
            ),
        ),
        (
            "cookie_threshold",
            lim.cookie_threshold > lim.half_open,
            format!(
                "cookies from {} half-open IKE SAs would never start: half_open caps them at {}",
                lim.cookie_threshold, lim.half_open
            ),
        ),
        (
            "max_init_message",
            lim.max_init_message > lim.max_message,
            format!(
                "{} bytes for first messages is more than max_message ({})",
                lim.max_init_message, lim.max_message
            ),
        ),
    ];
    for (name, bad, msg) in checks {
        if !bad {
            continue;
        }
        match seen.iter().find(|(n, _)| *n == name) {
            Some((_, f)) => {
                let (file, span) = (f.file, f.span.clone());
                let field = format!("daemon.{}", f.written);
                let value = values::show(&f.value);
                p.l.err(file, Some(&span), Some(field), Some(value), msg);
            }
            None => {
                let (file, span) = (p.file, p.span.clone());
                p.l.err(file, Some(&span), Some(format!("daemon.{name}")), None, msg);
            }
        }
    }
}

const DATAPLANE_FIELDS: &[(&str, &[&str])] = &[
    ("backend", &[]),
    ("inside", &[]),
    ("outside", &[]),
    ("eal", &[]),
    ("exception", &[]),
    ("inside_tap", &[]),
    ("outside_tap", &[]),
    ("mbufs", &[]),
    ("cores", &[]),
    ("rx_ring", &[]),
    ("tx", &[]),
    ("burst", &[]),
    ("idle", &[]),
    ("idle_sleep_us", &[]),
    ("v3_block_timeout_ms", &[]),
    ("frames", &[]),
    ("sched_fifo", &[]),
    ("stats_file", &[]),
    ("stats_interval_ms", &[]),
    ("static_sa", &[]),
    ("shm", &[]),
    ("tun", &[]),
    ("crypto", &[]),
    ("key_cache_entries", &[]),
    ("configure_kernel", &[]),
];

/// A keyword value.
fn keyword<T: FromStr<Err = String>>(v: &Value) -> Result<T, String> {
    values::string(v)?.parse()
}

/// A list of values: a TOML array, or one string separated by commas.
fn list<T>(v: &Value, item: impl Fn(&Value) -> Result<T, String>) -> Result<Vec<T>, String> {
    let items: Vec<Value> = match v {
        Value::Array(a) => a.clone(),
        Value::String(s) => s
            .split(',')
            .map(|x| Value::String(x.trim().to_string()))
            .collect(),
        o => vec![o.clone()],
    };
    items.iter().map(item).collect()
}

/// A non-negative integer no larger than `max`.
fn bounded(v: &Value, max: u64) -> Result<u64, String> {
    let n = match v {
        Value::String(s) => s
            .trim()
            .parse::<u64>()
            .map_err(|_| format!("\"{s}\" is not a number"))?,
        o => values::integer(o)?,
    };
    if n > max {
        return Err(format!("{n}: at most {max}"));
    }
    Ok(n)
}

impl Loader {
    /// Reads `[dataplane]` (main file only).
    pub(super) fn dataplane_settings(&mut self, b: Option<Block>) -> DataplaneSettings {
        let mut d = DataplaneSettings::default();
        let Some(mut b) = b else {
            return d;
        };
        // Keys are the dataplane's long options: `rx_ring` or `rx-ring`.
        b.fields = std::mem::take(&mut b.fields)
            .into_iter()
            .map(|(k, f)| (k.replace('-', "_"), f))
            .collect();
        let b = self.canonical("dataplane", b, DATAPLANE_FIELDS);
        let mut p = Parse {
            l: self,
            ctx: "dataplane".into(),
            fields: b.fields,
            file: b.file,
            span: b.span,
        };
        d.backend = p.get("backend", keyword);
        d.inside = p.get("inside", values::string);
        d.outside = p.get("outside", values::string);
        d.eal = p.get("eal", values::string);
        d.exception = p.get("exception", |v| {
            let l = list(v, keyword::<ExceptionPath>)?;
            if l.is_empty() || l.len() > 2 {
                return Err(format!(
                    "one mode for both ports or two (inside, outside), got {}",
                    l.len()
                ));
            }
            Ok(l)
        });
        d.inside_tap = p.get("inside_tap", values::string);
        d.outside_tap = p.get("outside_tap", values::string);
        d.mbufs = p.get("mbufs", |v| {
            bounded(v, u64::from(u32::MAX)).map(|n| n as u32)
        });
        d.cores = p.get("cores", |v| {
            let l = list(v, |x| bounded(x, 4095).map(|n| n as usize))?;
            if l.is_empty() {
                return Err("at least one core".into());
            }
            Ok(l)
        });
        d.rx_ring = p.get("rx_ring", keyword);
        d.tx = p.get("tx", keyword);
        d.burst = p.get("burst", |v| match bounded(v, 1 << 16)? {
            0 => Err("0: at least 1 packet".into()),
            n => Ok(n as usize),
        });
        d.idle = p.get("idle", keyword);
        d.idle_sleep_us = p.get("idle_sleep_us", |v| {
            bounded(v, u64::from(u32::MAX)).map(|n| n as u32)
        });
        d.v3_block_timeout_ms = p.get("v3_block_timeout_ms", |v| {
            bounded(v, u64::from(u32::MAX)).map(|n| n as u32)
        });
        d.frames = p.get("frames", |v| {
            bounded(v, u64::from(u32::MAX)).map(|n| n as u32)
        });
        d.sched_fifo = p.get("sched_fifo", |v| bounded(v, 99).map(|n| n as i32));
        d.stats_file = p.get("stats_file", values::string).map(PathBuf::from);
        d.stats_interval_ms = p.get("stats_interval_ms", |v| bounded(v, u64::MAX));
        d.static_sa = p.get("static_sa", values::string).map(PathBuf::from);
        d.key_cache_entries = p.get("key_cache_entries", |v| match bounded(v, 1 << 20)? {
            n if n >= 16 && n.is_power_of_two() => Ok(n as u32),
            n => Err(format!("{n}: a power of two from 16 to 1048576")),
        });
        d.shm = p.get("shm", |v| match v {
            Value::Boolean(true) => Ok(ShmSetting::Daemon),
            Value::Boolean(false) => Ok(ShmSetting::Off),
            Value::String(s) if !s.is_empty() => Ok(ShmSetting::Path(s.into())),
            o => Err(format!(
                "expected a path, true (the daemon's region) or false, found {}",
                values::kind(o)
            )),
        });
        d.tun = p.get("tun", values::string);
        d.crypto = p.get("crypto", |v| {
            let s = values::string(v)?;
            if CRYPTO_BACKENDS.contains(&s.to_ascii_lowercase().as_str()) {
                Ok(s)
            } else {
                Err(format!("\"{s}\": expected {}", CRYPTO_BACKENDS.join(", ")))
            }
        });
        d.configure_kernel = p.get("configure_kernel", values::boolean);
        d
    }
}
