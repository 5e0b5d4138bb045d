//! Fuzz entry point of the CLI protocol (`cargo fuzz run cli`, in
//! dataplane/fuzz): built for fuzzing (`cfg(fuzzing)`, set by cargo-fuzz) and
//! for the tests, never into the programs.
//!
//! Three parsers see the input: the daemon's request-line parser
//! ([`Request::parse`], what any local user who can reach the socket
//! controls), the CLI's parser of the daemon's answer (a [`Response`],
//! rendered as `status`, `ipsec status`, metrics and key exports), and the
//! command line itself (`espresso ARGS`, `ipsec ARGS`).
//! Checked: no panic; a request that parses serialises back to itself.

use clap::Parser;

use super::args::{Cli, IpsecCli};
use super::keys::KeyFormat;
use crate::daemon::api::{Request, Response};

/// Fuzz entry point: `data` as a request line, as a response line, and
/// (split at whitespace) as arguments of `espresso` and of `ipsec`.
/// Never panics.
pub fn cli(data: &[u8]) {
    let line = String::from_utf8_lossy(data);
    if let Ok(req) = Request::parse(&line) {
        // What the daemon acts on must be what the CLI meant to send.
        let again = serde_json::to_string(&req).map(|s| Request::parse(&s).ok());
        assert_eq!(
            again.ok().flatten().as_ref(),
            Some(&req),
            "request does not round-trip"
        );
    }
    if let Ok(r) = serde_json::from_str::<Response>(line.trim()) {
        if let Some(st) = &r.status {
            let _ = super::status_table(st);
            let _ = super::ipsec::status_text(st, None, true);
            let _ = super::ipsec::status_text(st, Some("a"), false);
            let _ = crate::daemon::status::metrics::render(st);
        }
        for f in [KeyFormat::Wireshark, KeyFormat::Scapy] {
            let _ = super::keys::render(&r.keys, f);
        }
    }
    if data.len() <= 512 {
        let args: Vec<&str> = line.split_whitespace().collect();
        let _ = Cli::try_parse_from(std::iter::once("espresso").chain(args.iter().copied()));
        let _ = IpsecCli::try_parse_from(std::iter::once("ipsec").chain(args.iter().copied()));
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::cli;

    #[test]
    fn every_request_kind_and_a_status_answer() {
        for l in [
            r#"{"cmd":"status"}"#,
            r#"{"cmd":"up","name":"t1"}"#,
            r#"{"cmd":"reload","name":null}"#,
            r#"{"cmd":"log","lines":18446744073709551615}"#,
            r#"{"cmd":"keys"}"#,
            r#"{"code":0,"message":"","status":{}}"#,
            "status --json",
            "up t1",
        ] {
            cli(l.as_bytes());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

        #[test]
        fn random_lines_never_panic(s in "[ -~]{0,200}") {
            cli(s.as_bytes());
        }
    }
}
