#!/usr/bin/env python3
"""A peer that sends fragmented ESP (scapy's ESP with known keys), the
gateway's matching static SAs, a receiver for numbered datagrams, and a flood
of incomplete fragments. Topology of tests/lib/netns.sh's nsl_topo_pair: the
peer is gwA (192.0.2.1, fd00:ff::1, LAN 10.1.0.0/24 + fd00:1::/64), the
gateway under test gwB (192.0.2.2, fd00:ff::2, LAN 10.2.0.0/24 + fd00:2::/64).

  esp_frag.py sa OUT --key4 HEX --key6 HEX --keyn HEX
      gwB's static SA file (0600): inbound AES-GCM-128 tunnel SAs
      0x5001 (IPv4 outer), 0x5002 (IPv6 outer), 0x5003 (IPv4, UDP 4500).
  esp_frag.py send MODE --key HEX --count N --size S --mtu M --dmac MAC
                   [--iface wan] [--gap-ms G] [--seq0 K]
      MODE v4 | v6 | natt: N numbered UDP datagrams (S bytes of IP) from
      hA to hB:5000 (IPv6 for v6), each encrypted by scapy's
      SecurityAssociation, the outer packet cut by scapy's fragment() /
      fragment6() to fit MTU M, sent on IFACE (AF_PACKET) in orders that
      vary: odd datagrams last fragment first, every fifth with the fragment
      it sends first sent twice in a row (a duplicate). Prints "sent=N frames=F".
  esp_frag.py recv ADDR PORT OUT.json [IDLE_S]
      counts numbered datagrams (v4 or v6 ADDR) until IDLE_S without one
      (after the first; 1 s once the run's last number and all below it down
      to the lowest seen are in); writes {"received", "unique", "dups", "max"}.
  esp_frag.py flood --seconds T --dmac MAC [--iface wan] [--seed S]
      fragments of ESP that never complete, as fast as it can for T seconds,
      to 192.0.2.2 and fd00:ff::2: first fragments and middle ones, 2/3 of
      the IPv4 ones from 2 fixed sources (many identifications each: more
      than a source's share of the table), the rest from random spoofed
      sources, 1 in 10 IPv6. Prints "flood=N seconds=T".
"""
import json
import os
import random
import socket
import struct
import sys
import time

SPI4, SPI6, SPIN = 0x5001, 0x5002, 0x5003
A4, B4 = "192.0.2.1", "192.0.2.2"
A6, B6 = "fd00:ff::1", "fd00:ff::2"
LAN = {"a4": "10.1.0.0/24", "b4": "10.2.0.0/24", "a6": "fd00:1::/64", "b6": "fd00:2::/64"}
ANY = {"start": 0, "end": 65535}


def opt(args, name, default=None):
    if name in args:
        return args[args.index(name) + 1]
    if default is None:
        sys.exit("esp_frag: %s needed" % name)
    return default


def cmd_sa(args):
    out = args[0]

    def sa(spi, key, local, remote, encap):
        sels = [{"local": LAN["b4"], "remote": LAN["a4"], "proto": 0,
                 "local_ports": ANY, "remote_ports": ANY},
                {"local": LAN["b6"], "remote": LAN["a6"], "proto": 0,
                 "local_ports": ANY, "remote_ports": ANY}]
        return {
            "spi": spi, "direction": "inbound", "mode": "tunnel",
            "suite": {"encr": "aes-gcm128", "integ": "none"},
            "enc_key": key, "auth_key": "", "esn": False, "replay_window": 4096,
            "local_addr": local, "remote_addr": remote, "encap": encap,
            "selectors": sels,
            "lifetime": {"soft_bytes": 0, "hard_bytes": 0, "soft_packets": 0, "hard_packets": 0},
            "df": "copy", "copy_dscp": True, "initial_seq": 1, "allow_legacy": False,
            "tunnel_id": spi & 0xff,
        }

    doc = {"sas": [
        sa(SPI4, "0x" + opt(args, "--key4"), B4, A4, None),
        sa(SPI6, "0x" + opt(args, "--key6"), B6, A6, None),
        sa(SPIN, "0x" + opt(args, "--keyn"), B4, A4, {"local_port": 4500, "remote_port": 4500}),
    ], "policies": []}
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent=1)


def raw_socket(iface):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    with open("/sys/class/net/%s/address" % iface) as f:
        smac = bytes.fromhex(f.read().strip().replace(":", ""))
    return s, smac


def cmd_send(args):
    from scapy.all import IP, IPv6, UDP, Raw, IPv6ExtHdrFragment, fragment, fragment6, conf
    from scapy.layers.ipsec import ESP, SecurityAssociation
    conf.verb = 0
    mode = args[0]
    key = bytes.fromhex(opt(args, "--key"))
    count, size, mtu = int(opt(args, "--count")), int(opt(args, "--size")), int(opt(args, "--mtu"))
    dmac = bytes.fromhex(opt(args, "--dmac").replace(":", ""))
    iface = opt(args, "--iface", "wan")
    gap = float(opt(args, "--gap-ms", "1")) / 1000
    seq0 = int(opt(args, "--seq0", "0"))
    v6 = mode == "v6"
    spi = {"v4": SPI4, "v6": SPI6, "natt": SPIN}[mode]
    sa = SecurityAssociation(
        ESP, spi=spi, crypt_algo="AES-GCM", crypt_key=key, auth_algo=None,
        tunnel_header=IPv6(src=A6, dst=B6) if v6 else IP(src=A4, dst=B4),
        nat_t_header=UDP(sport=4500, dport=4500) if mode == "natt" else None,
    )
    s, smac = raw_socket(iface)
    eth4 = dmac + smac + b"\x08\x00"
    eth6 = dmac + smac + b"\x86\xdd"
    frames = 0
    for i in range(count):
        n = seq0 + i
        body = struct.pack("!QQ", n, seq0 + count).ljust(size - (48 if v6 else 28), b"\x5a")
        if v6:
            inner = IPv6(src="fd00:1::2", dst="fd00:2::2") / UDP(sport=40000, dport=5000) / Raw(body)
        else:
            inner = IP(src="10.1.0.2", dst="10.2.0.2", flags=0) / UDP(sport=40000, dport=5000) / Raw(body)
        e = sa.encrypt(inner, seq_num=n + 1)
        if v6:
            outer = IPv6(bytes(e))
            pkt = IPv6(src=outer.src, dst=outer.dst, nh=44) / IPv6ExtHdrFragment(nh=outer.nh, id=0x10000 + n) / outer.payload
            frags = [bytes(f) for f in fragment6(pkt, mtu)]
            eth = eth6
        else:
            outer = IP(bytes(e))
            outer.flags = 0
            outer.id = n & 0xffff
            del outer.chksum
            frags = [bytes(f) for f in fragment(outer, fragsize=(mtu - 20) // 8 * 8)]
            eth = eth4
        if len(frags) < 2:
            sys.exit("esp_frag: datagram %d not fragmented (%d bytes, mtu %d)" % (n, len(bytes(e)), mtu))
        for f in frags:
            if len(f) > mtu:
                sys.exit("esp_frag: fragment of %d bytes > mtu %d" % (len(f), mtu))
        order = list(frags)
        if n % 2:
            order.reverse()
        if n % 5 == 0:
            # A duplicate while the datagram is incomplete.
            order.insert(1, order[0])
        for f in order:
            s.send(eth + f)
            frames += 1
        time.sleep(gap)
    print("sent=%d frames=%d" % (count, frames))


def cmd_recv(args):
    addr, port, out = args[0], int(args[1]), args[2]
    idle = float(args[3]) if len(args) > 3 else 3.0
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind((addr, port))
    seen, received, dups, first, mx = set(), 0, 0, True, -1
    # Datagrams carry (n, end): n in [seq0, end). Once every number from the
    # lowest seen up to end - 1 is in, wait only a short grace for late
    # duplicates instead of the whole idle time.
    end, grace = None, min(idle, 1.0)
    while True:
        done = end is not None and mx == end - 1 and len(seen) == end - min(seen)
        s.settimeout(None if first else (grace if done else idle))
        try:
            data = s.recv(65535)
        except socket.timeout:
            break
        first = False
        if len(data) < 16:
            continue
        n, end = struct.unpack("!QQ", data[:16])
        received += 1
        if n in seen:
            dups += 1
        seen.add(n)
        mx = max(mx, n)
    with open(out, "w") as f:
        json.dump({"received": received, "unique": len(seen), "dups": dups, "max": mx}, f)


def csum(h):
    s = sum(struct.unpack("!10H", h))
    s = (s & 0xffff) + (s >> 16)
    s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff


def cmd_flood(args):
    secs = float(opt(args, "--seconds"))
    dmac = bytes.fromhex(opt(args, "--dmac").replace(":", ""))
    iface = opt(args, "--iface", "wan")
    rnd = random.Random(int(opt(args, "--seed", "1")))
    s, smac = raw_socket(iface)
    eth4 = dmac + smac + b"\x08\x00"
    eth6 = dmac + smac + b"\x86\xdd"
    dst4 = socket.inet_aton(B4)
    dst6 = socket.inet_pton(socket.AF_INET6, B6)
    fixed = [socket.inet_aton("192.0.2.%d" % h) for h in (50, 51)]
    payload = bytes(rnd.getrandbits(8) for _ in range(1024))
    frames = []
    # Prebuilt templates; identifications and sources vary per send below.
    for k in range(4096):
        # Every one fits the reassembly buffer (2048 bytes): each takes a slot.
        plen = 8 * rnd.randint(2, 60)
        first = k % 2 == 0
        off = 0 if first else rnd.randint(1, 180)
        if k % 10 == 9:
            src6 = bytes([0x20, 0x01, 0x0d, 0xb8, 0, 0xf]) + rnd.getrandbits(80).to_bytes(10, "big")
            fh = struct.pack("!BBHI", 50, 0, (off << 3) | 1, rnd.getrandbits(32))
            ip6 = struct.pack("!IHBB", 0x60000000, 8 + plen, 44, 64) + src6 + dst6
            frames.append(eth6 + ip6 + fh + payload[:plen])
            continue
        src = fixed[k % 2] if k % 3 != 0 else rnd.getrandbits(32).to_bytes(4, "big")
        h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + plen, rnd.getrandbits(16),
                        0x2000 | off, 64, 50, 0, src, dst4)
        h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
        frames.append(eth4 + h + payload[:plen])
    t0 = time.time()
    sent = 0
    while time.time() - t0 < secs:
        for fr in frames:
            try:
                s.send(fr)
            except OSError:
                time.sleep(0.001)
            sent += 1
        # New identifications for the next round (IPv4 id, IPv6 id).
        nf = []
        for fr in frames:
            b = bytearray(fr)
            if b[12:14] == b"\x08\x00":
                b[18:20] = rnd.getrandbits(16).to_bytes(2, "big")
                b[24:26] = b"\0\0"
                b[24:26] = csum(bytes(b[14:34])).to_bytes(2, "big")
            else:
                b[58:62] = rnd.getrandbits(32).to_bytes(4, "big")
            nf.append(bytes(b))
        frames = nf
    print("flood=%d seconds=%.1f" % (sent, time.time() - t0))


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cmd, args = sys.argv[1], sys.argv[2:]
    {"sa": cmd_sa, "send": cmd_send, "recv": cmd_recv, "flood": cmd_flood}[cmd](args)


if __name__ == "__main__":
    main()
