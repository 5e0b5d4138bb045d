#!/usr/bin/env python3
"""Writes an espresso-dataplane static SA file (--static-sa) for one gateway
of the test pair (lanA 10.1.0.0/24 + fd00:1::/64 behind gwA 192.0.2.1,
lanB 10.2.0.0/24 + fd00:2::/64 behind gwB 192.0.2.2): one tunnel-mode SA
each way and protect policies for both address families. The file is 0600.

usage: static_sa.py OUT --side a|b --spi-ab N --spi-ba N --key-ab HEX --key-ba HEX
                    [--suite aes-gcm128] [--bypass] [--encap-udp]
--bypass: no SA, one bypass policy per family (cleartext through the same code path).
--encap-udp: ESP in UDP 4500 both ways (RFC 3948, as NAT-T or strongSwan's libipsec).
"""
import argparse, json, os

p = argparse.ArgumentParser()
p.add_argument("out")
p.add_argument("--side", choices=["a", "b"], required=True)
p.add_argument("--spi-ab", type=lambda s: int(s, 0), default=0x1001)
p.add_argument("--spi-ba", type=lambda s: int(s, 0), default=0x2002)
p.add_argument("--key-ab", default="")
p.add_argument("--key-ba", default="")
p.add_argument("--suite", default="aes-gcm128", help="serde name of dataplane::crypto::EncrAlg (aes-gcm128, aes-gcm256, cha-cha20-poly1305)")
p.add_argument("--bypass", action="store_true")
p.add_argument("--encap-udp", action="store_true")
a = p.parse_args()

gw = {"a": "192.0.2.1", "b": "192.0.2.2"}
lan4 = {"a": "10.1.0.0/24", "b": "10.2.0.0/24"}
lan6 = {"a": "fd00:1::/64", "b": "fd00:2::/64"}
me, peer = a.side, ("b" if a.side == "a" else "a")
ANY = {"start": 0, "end": 65535}

def ts(local, remote):
    return {"local": local, "remote": remote, "proto": 0,
            "local_ports": ANY, "remote_ports": ANY}

sels = [ts(lan4[me], lan4[peer]), ts(lan6[me], lan6[peer])]

def sa(spi, direction, key):
    return {
        "spi": spi, "direction": direction, "mode": "tunnel",
        "suite": {"encr": a.suite, "integ": "none"},
        "enc_key": key, "auth_key": "",
        "esn": False, "replay_window": 4096 if direction == "inbound" else 0,
        "local_addr": gw[me], "remote_addr": gw[peer],
        "encap": {"local_port": 4500, "remote_port": 4500} if a.encap_udp else None,
        "selectors": sels,
        "lifetime": {"soft_bytes": 0, "hard_bytes": 0, "soft_packets": 0, "hard_packets": 0},
        "df": "copy", "copy_dscp": True, "initial_seq": 1, "allow_legacy": False,
        "tunnel_id": 1,
    }

out_spi = a.spi_ab if me == "a" else a.spi_ba
in_spi = a.spi_ba if me == "a" else a.spi_ab
out_key = a.key_ab if me == "a" else a.key_ba
in_key = a.key_ba if me == "a" else a.key_ab
if a.bypass:
    doc = {"sas": [], "policies": [
        {"id": i + 1, "tunnel_id": 1, "selector": s, "action": {"action": "bypass"}, "priority": 10}
        for i, s in enumerate(sels)]}
else:
    doc = {"sas": [sa(out_spi, "outbound", out_key), sa(in_spi, "inbound", in_key)],
           "policies": [
               {"id": i + 1, "tunnel_id": 1, "selector": s,
                "action": {"action": "protect", "spi": out_spi}, "priority": 10}
               for i, s in enumerate(sels)]}
fd = os.open(a.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
os.fchmod(fd, 0o600)
with os.fdopen(fd, "w") as f:
    json.dump(doc, f, indent=1)
