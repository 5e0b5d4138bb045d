//! `[[policy]]`: cleartext (`bypass`) and `discard` rules.

use super::{values, Block, Loader, Parse};
use crate::config::model::{PolicyRule, StartMode};
use crate::sa::PolicyAction;

const POLICY_FIELDS: &[(&str, &[&str])] = &[
    ("name", &[]),
    ("local_subnets", &["leftsubnet", "local_subnet", "from"]),
    ("remote_subnets", &["rightsubnet", "remote_subnet", "to"]),
    ("action", &[]),
    ("priority", &[]),
    ("start", &["auto"]),
];

impl Loader {
    pub(super) fn policy_rule(&mut self, b: Block) -> Option<PolicyRule> {
        let ctx0 = match b.fields.get("name") {
            Some(f) => match Self::name_ok(&f.value) {
                Ok(n) => format!("policy[{n}]"),
                Err(_) => "policy".into(),
            },
            None => "policy".into(),
        };
        let b = self.canonical(&ctx0, b, POLICY_FIELDS);
        let (file, span) = (b.file, b.span.clone());
        let nerr = self.errors.len();
        let mut p = Parse {
            l: self,
            ctx: ctx0,
            fields: b.fields,
            file,
            span: span.clone(),
        };
        let name = p.req("name", Self::name_ok);
        let local_subnets = p.req("local_subnets", values::prefixes);
        let remote_subnets = p.req("remote_subnets", values::prefixes);
        let action = p.req("action", |v| match values::string(v)?.as_str() {
            "bypass" | "clear" | "pass" => Ok(PolicyAction::Bypass),
            "discard" | "drop" | "block" => Ok(PolicyAction::Discard),
            "protect" => Err("protect rules come from [[tunnel]] definitions".into()),
            s => Err(format!("\"{s}\": expected bypass or discard")),
        });
        let priority = p
            .get("priority", |v| {
                let n = values::integer(v)?;
                u32::try_from(n).map_err(|_| format!("{n} does not fit in 32 bits"))
            })
            .unwrap_or(50);
        let start = p.get("start", Self::start_mode).unwrap_or(StartMode::Start);
        drop(p);
        if self.errors.len() != nerr {
            return None;
        }
        let rule = PolicyRule {
            name: name?,
            file: self.files[file].path.clone(),
            line: self.files[file].line(span.start),
            local_subnets: local_subnets?,
            remote_subnets: remote_subnets?,
            action: action?,
            priority,
            start,
        };
        if rule.to_policies(0).is_empty() {
            self.err(
                file,
                Some(&span),
                Some(format!("policy[{}].remote_subnets", rule.name)),
                None,
                "no local and remote prefixes of the same address family",
            );
            return None;
        }
        Some(rule)
    }
}
