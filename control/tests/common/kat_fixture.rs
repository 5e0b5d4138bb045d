//! The strongSwan known-answer fixtures of `ike_kat` and `ikev1_kat`
//! (written by fixtures/{ike,ikev1}/capture_strongswan.sh): the PSK, the
//! captured IKE messages (without the non-ESP marker; NAT keepalives
//! skipped) and every key chunk charon logged, by label, in order.

use std::collections::HashMap;

pub struct Fixture {
    pub name: String,
    pub psk: Vec<u8>,
    pub msgs: Vec<Vec<u8>>,
    pub logs: HashMap<String, Vec<Vec<u8>>>,
}

/// Loads `fixtures/<dir>/strongswan_<name>.txt`, which must hold at least
/// `min_msgs` messages.
pub fn load(dir: &str, name: &str, min_msgs: usize) -> Fixture {
    let path = format!(
        "{}/tests/fixtures/{dir}/strongswan_{name}.txt",
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
                if m == [0xff] {
                    continue; // NAT keepalive
                }
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
    assert!(
        f.msgs.len() >= min_msgs,
        "{name}: {} messages",
        f.msgs.len()
    );
    f
}

impl Fixture {
    /// The `n`th value logged under `label`.
    pub fn log(&self, label: &str, n: usize) -> &[u8] {
        let v = self
            .logs
            .get(label)
            .unwrap_or_else(|| panic!("{}: no {label} in the log", self.name));
        v.get(n)
            .unwrap_or_else(|| panic!("{}: {label} #{n} missing", self.name))
    }
    /// Whether anything was logged under `label`.
    pub fn has(&self, label: &str) -> bool {
        self.logs.contains_key(label)
    }
}
