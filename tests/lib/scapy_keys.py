#!/usr/bin/env python3
"""Decrypts the ESP packets of a capture with scapy's SecurityAssociation,
built from the JSON that `espresso keys --format scapy` prints.

    scapy_keys.py KEYS.json CAPTURE.pcap [--lan-a NET --lan-b NET]

Finds every ESP packet (IP protocol 50, and UDP port 4500 whose first four
payload bytes are not the non-ESP marker), builds the SA of its SPI from the
JSON exactly as the keys' documentation shows (SecurityAssociation(ESP,
spi=..., crypt_algo=..., crypt_key=..., auth_algo=..., auth_key=...,
tunnel_header=..., nat_t_header=...)), decrypts it (ICV verified), checks the
ESP padding (1, 2, 3, ...; scapy does not) and that the inner packet goes
between the two LANs. Prints one summary line

    esp=N decrypted=D failed=F unknown_spi=U icmp=I tcp=T natt=X spi=0x..:n,...

and exits 0 only if N > 0 and every ESP packet decrypted to an inner packet
between the LANs.
"""
import argparse
import ipaddress
import json
import sys
from collections import Counter

from scapy.all import IP, IPv6, UDP, Ether, rdpcap, conf  # noqa: F401
from scapy.layers.ipsec import ESP, SecurityAssociation

conf.verb = 0


def build_sa(d):
    th = d["tunnel_header"]
    return SecurityAssociation(
        ESP,
        spi=d["spi"],
        crypt_algo=d["crypt_algo"],
        crypt_key=bytes.fromhex(d["crypt_key"]),
        auth_algo=d["auth_algo"],
        auth_key=bytes.fromhex(d["auth_key"]) if d["auth_key"] else None,
        esn_en=d["esn_en"],
        tunnel_header=th and (IPv6 if th["version"] == 6 else IP)(src=th["src"], dst=th["dst"]),
        nat_t_header=d["nat_t_header"] and UDP(**d["nat_t_header"]),
    )


def esp_payload(ip):
    """(spi, natt) of an ESP packet, or None."""
    proto = ip.proto if ip.version == 4 else ip.nh
    raw = bytes(ip.payload)
    if proto == 50 and len(raw) >= 8:
        return int.from_bytes(raw[:4], "big"), False
    if proto == 17 and len(raw) >= 16:
        sport, dport = int.from_bytes(raw[0:2], "big"), int.from_bytes(raw[2:4], "big")
        if 4500 in (sport, dport) and raw[8:12] != b"\0\0\0\0" and raw[8:9] != b"\xff":
            return int.from_bytes(raw[8:12], "big"), True
    return None


def padding_ok(sa, ip):
    """Independent trailer check: decrypt without scapy's stripping."""
    esp = ip[ESP]
    icv = sa.crypt_icv_size or sa.crypt_algo.icv_size or sa.auth_algo.icv_size
    dec = sa.crypt_algo.decrypt(sa, esp.copy(), sa.crypt_key, icv,
                                esn_en=sa.esn_en, esn=sa.esn)
    pad = bytes(dec.padding)
    return pad == bytes(range(1, len(pad) + 1)) and dec.padlen == len(pad)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("keys")
    ap.add_argument("pcap")
    ap.add_argument("--lan-a", default="10.1.0.0/24")
    ap.add_argument("--lan-b", default="10.2.0.0/24")
    a = ap.parse_args()
    with open(a.keys) as f:
        entries = json.load(f)
    if not entries:
        print("scapy_keys: no SAs in %s" % a.keys, file=sys.stderr)
        return 1
    sas = {d["spi"]: (build_sa(d), d) for d in entries}
    lans = [ipaddress.ip_network(a.lan_a), ipaddress.ip_network(a.lan_b)]
    n = ok = failed = unknown = natt = 0
    inner_proto = Counter()
    per_spi = Counter()
    for p in rdpcap(a.pcap):
        ip = p[IP] if IP in p else (p[IPv6] if IPv6 in p else None)
        if ip is None:
            continue
        e = esp_payload(ip)
        if e is None:
            continue
        spi, is_natt = e
        n += 1
        natt += is_natt
        if spi not in sas:
            unknown += 1
            continue
        sa, d = sas[spi]
        if bool(d["nat_t_header"]) != is_natt:
            print("scapy_keys: spi %#x: NAT-T %s on the wire, %s in the keys"
                  % (spi, is_natt, bool(d["nat_t_header"])), file=sys.stderr)
            failed += 1
            continue
        if ip.src != d["src"] or ip.dst != d["dst"]:
            print("scapy_keys: spi %#x: %s -> %s, keys say %s -> %s"
                  % (spi, ip.src, ip.dst, d["src"], d["dst"]), file=sys.stderr)
            failed += 1
            continue
        pkt = ip.__class__(bytes(ip))
        try:
            inner = sa.decrypt(pkt)
            good_pad = padding_ok(sa, ip.__class__(bytes(ip)))
        except Exception as ex:  # ICV failure, bad key, ...
            failed += 1
            if failed <= 3:
                print("scapy_keys: spi %#x: %s: %s" % (spi, type(ex).__name__, ex), file=sys.stderr)
            continue
        if not good_pad:
            failed += 1
            print("scapy_keys: spi %#x: bad ESP padding" % spi, file=sys.stderr)
            continue
        try:
            s = ipaddress.ip_address(inner.src)
            t = ipaddress.ip_address(inner.dst)
        except Exception:
            failed += 1
            continue
        if not ((s in lans[0] and t in lans[1]) or (s in lans[1] and t in lans[0])):
            failed += 1
            print("scapy_keys: spi %#x: inner %s -> %s not between the LANs" % (spi, s, t),
                  file=sys.stderr)
            continue
        ok += 1
        per_spi[spi] += 1
        proto = inner.proto if inner.version == 4 else inner.nh
        inner_proto[{1: "icmp", 6: "tcp", 58: "icmp"}.get(proto, str(proto))] += 1
    print("esp=%d decrypted=%d failed=%d unknown_spi=%d icmp=%d tcp=%d natt=%d spi=%s" % (
        n, ok, failed, unknown, inner_proto["icmp"], inner_proto["tcp"], natt,
        ",".join("%#x:%d" % (k, v) for k, v in sorted(per_spi.items()))))
    return 0 if n > 0 and ok == n else 1


if __name__ == "__main__":
    sys.exit(main())
