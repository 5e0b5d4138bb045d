#!/usr/bin/env python3
"""Every metric and label the Grafana dashboard queries is in a metrics dump.
Usage: dashboard_check.py DASHBOARD.json METRICS.txt [--ignore PREFIX]"""
import json, re, sys
ignore = [sys.argv[i + 1] for i, a in enumerate(sys.argv) if a == "--ignore"]
d = json.load(open(sys.argv[1]))
text = open(sys.argv[2]).read()
labels = {}
for l in text.splitlines():
    if l.startswith("#") or not l.strip():
        continue
    m = re.match(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s', l)
    if m is None:
        sys.exit(f"metrics dump: line not in the exposition format: {l!r}")
    labels.setdefault(m.group(1), set()).update(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', m.group(3) or ""))
bad = []
n = 0
for p in d["panels"]:
    for t in p["targets"]:
        names = set(re.findall(r'espresso_[a-z0-9_]+', t["expr"]))
        used = set(re.findall(r'by \(([^)]*)\)', t["expr"]))
        used = {x.strip() for u in used for x in u.split(",")} | set(re.findall(r'\{\{(\w+)\}\}', t.get("legendFormat", "")))
        used |= set(re.findall(r'([a-z_]+)=~?"', t["expr"]))
        if any(m.startswith(tuple(ignore)) for m in names):
            continue
        for m in names:
            n += 1
            if m not in labels:
                bad.append(f'{p["title"]}: metric {m} not exported')
        have = set().union(*(labels.get(m, set()) for m in names))
        for u in used - have:
            bad.append(f'{p["title"]}: label {u} not on {sorted(names)}')
if bad:
    print("\n".join(bad))
    sys.exit(1)
print(f"dashboard: {n} metric references in {len(d['panels'])} panels, all exported with their labels")
