#!/usr/bin/env python3
"""Counts numbered UDP probes ("probe-N") carried in the ESP packets of one
SPI in a capture, decrypting them with scapy's SecurityAssociation built from
`espresso keys --format scapy` (the receiving peer's view: only its own keys).

    esp_probes.py CAPTURE.pcap --spi SPI [--keys KEYS.json]

Prints one line

    esp=N spi=S decrypted=D failed=F probes=P

(N: ESP packets, raw or in UDP 4500; S: those with SPI; D/F: of those,
decrypted with the keys or not; P: distinct probe numbers found inside).
Without --keys only N and S are counted.
"""
import argparse
import json
import re

from scapy.all import IP, UDP, rdpcap, conf
from scapy.layers.ipsec import ESP, SecurityAssociation

conf.verb = 0


def esp_of(ip):
    raw = bytes(ip.payload)
    if ip.proto == 50 and len(raw) >= 8:
        return int.from_bytes(raw[:4], "big"), raw
    if ip.proto == 17 and len(raw) >= 16:
        sport, dport = int.from_bytes(raw[0:2], "big"), int.from_bytes(raw[2:4], "big")
        if 4500 in (sport, dport) and raw[8:12] != b"\0\0\0\0" and raw[8:9] != b"\xff":
            return int.from_bytes(raw[8:12], "big"), raw[8:]
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("pcap")
    ap.add_argument("--spi", type=lambda s: int(s, 0), required=True)
    ap.add_argument("--keys")
    a = ap.parse_args()
    sa = None
    if a.keys:
        with open(a.keys) as f:
            d = [e for e in json.load(f) if e["spi"] == a.spi]
        if not d:
            raise SystemExit("esp_probes: no SA with SPI %#x in %s" % (a.spi, a.keys))
        d = d[0]
        sa = SecurityAssociation(
            ESP,
            spi=d["spi"],
            crypt_algo=d["crypt_algo"],
            crypt_key=bytes.fromhex(d["crypt_key"]),
            auth_algo=d["auth_algo"],
            auth_key=bytes.fromhex(d["auth_key"]) if d["auth_key"] else None,
            esn_en=d["esn_en"],
        )
    n = s = dec = failed = 0
    probes = set()
    for p in rdpcap(a.pcap):
        if IP not in p:
            continue
        ip = p[IP]
        e = esp_of(ip)
        if e is None:
            continue
        n += 1
        spi, raw = e
        if spi != a.spi:
            continue
        s += 1
        if sa is None:
            continue
        try:
            inner = sa.decrypt(IP(src=ip.src, dst=ip.dst, proto=50) / ESP(raw))
        except Exception:
            failed += 1
            continue
        dec += 1
        if UDP in inner:
            m = re.match(rb"probe-(\d+)", bytes(inner[UDP].payload))
            if m:
                probes.add(int(m.group(1)))
    print("esp=%d spi=%d decrypted=%d failed=%d probes=%d" % (n, s, dec, failed, len(probes)))


if __name__ == "__main__":
    main()
