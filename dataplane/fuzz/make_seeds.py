#!/usr/bin/env python3
"""Writes the seed corpora of the ESP fuzz targets (dataplane/fuzz/seeds/).

Seeds are built from real packets: the oracle sample captures in
dataplane/tests/vectors/oracle_samples/ (scapy-made ESP for the SAs of
sa_table.txt, which the fuzz SAD also holds, so these decrypt for real),
any extra pcaps given on the command line (e.g. the ones
`cargo run --example esp_pcap` writes), and a few hand-built inner packets
(IPv4 with options, IPv6 with extension headers, ICMP/ICMPv6, UDP, a first
IPv6 fragment), and for the IKE parser the strongSwan messages recorded in
control/tests/fixtures/ike/ (IKEv2) and control/tests/fixtures/ikev1/
(IKEv1: the ikev1 and ikev1_engine targets). No third-party module: pcap
files are read with struct. (It rewrites every seed directory: hand-added
seeds elsewhere must be restored with git afterwards.)

usage: make_seeds.py [extra.pcap ...]
"""
import glob
import hashlib
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SAMPLES = os.path.join(HERE, '..', 'tests', 'vectors', 'oracle_samples')
IKE_FIXTURES = os.path.join(HERE, '..', '..', 'control', 'tests', 'fixtures', 'ike')
IKEV1_FIXTURES = os.path.join(HERE, '..', '..', 'control', 'tests', 'fixtures', 'ikev1')
OUT = os.path.join(HERE, 'seeds')

# Must match dataplane/fuzz/src/lib.rs configs(): (spi, mode, v6, natt).
CONFIGS = [
    (0x1001, 'tunnel', False, False), (0x1002, 'tunnel', False, False),
    (0x1003, 'transport', False, True), (0x1004, 'tunnel', False, False),
    (0x1005, 'tunnel', False, False), (0x1006, 'tunnel', False, False),
    (0x1007, 'tunnel', False, False), (0x1008, 'tunnel', True, False),
    (0x1009, 'tunnel', False, False), (0x100a, 'tunnel', False, False),
    (0x100b, 'transport', True, False), (0x100c, 'tunnel', True, True),
    (0x100d, 'transport', True, True), (0x100e, 'transport', False, False),
    (0x100f, 'tunnel', False, True), (0x1010, 'transport', False, False),
    (0x1011, 'tunnel', True, False), (0x1012, 'tunnel', False, True),
    (0x1013, 'tunnel', False, False), (0x1014, 'tunnel', True, True),
]


def read_pcap(path):
    """Yields (linktype, packet bytes) of a classic pcap file."""
    with open(path, 'rb') as f:
        data = f.read()
    magic = data[:4]
    if magic in (b'\xd4\xc3\xb2\xa1', b'\x4d\x3c\xb2\xa1'):
        e = '<'
    elif magic in (b'\xa1\xb2\xc3\xd4', b'\xa1\xb2\x3c\x4d'):
        e = '>'
    else:
        raise ValueError('%s: not a pcap file' % path)
    linktype = struct.unpack(e + 'I', data[20:24])[0]
    off = 24
    while off + 16 <= len(data):
        incl = struct.unpack(e + 'I', data[off + 8:off + 12])[0]
        pkt = data[off + 16:off + 16 + incl]
        off += 16 + incl
        if linktype == 1:              # Ethernet
            if len(pkt) < 14 or pkt[12:14] not in (b'\x08\x00', b'\x86\xdd'):
                continue
            pkt = pkt[14:]
        elif linktype not in (101, 228, 229):
            continue
        yield pkt


def csum(b):
    if len(b) % 2:
        b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s > 0xffff:
        s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff


def ipv4(src, dst, proto, payload, tos=0, options=b'', df=True, frag=0):
    ihl = 5 + len(options) // 4
    h = struct.pack('!BBHHHBBH4s4s', 0x40 | ihl, tos, 20 + len(options) + len(payload), 0x1234,
                    (0x4000 if df else 0) | frag, 64, proto, 0, bytes(src), bytes(dst)) + options
    h = h[:10] + struct.pack('!H', csum(h)) + h[12:]
    return h + payload


def ipv6(src, dst, nh, payload, tc=0):
    return struct.pack('!IHBB16s16s', (6 << 28) | (tc << 20) | 0x12345, len(payload), nh, 64,
                       bytes(src), bytes(dst)) + payload


def icmp_echo(ident, seq, data, v6=False):
    t = 128 if v6 else 8
    h = struct.pack('!BBHHH', t, 0, 0, ident, seq) + data
    if v6:
        return h  # checksum left 0: seeds need not be valid
    return h[:2] + struct.pack('!H', csum(h)) + h[4:]


def udp(sport, dport, data):
    return struct.pack('!HHHH', sport, dport, 8 + len(data), 0) + data


A4, B4 = [10, 1, 0, 10], [10, 2, 0, 20]
P4, U4 = [192, 0, 2, 1], [192, 0, 2, 2]
A6 = [0x20, 0x01, 0x0d, 0xb8, 0, 1] + [0] * 9 + [0x10]
B6 = [0x20, 0x01, 0x0d, 0xb8, 0, 2] + [0] * 9 + [0x20]
P6 = [0x20, 0x01, 0x0d, 0xb8] + [0] * 11 + [1]
U6 = [0x20, 0x01, 0x0d, 0xb8] + [0] * 11 + [2]


def inner_packets():
    """Inner packets a gateway forwards: the samples' inner packets plus edge cases."""
    pay = bytes(range(56))
    return [
        bytes.fromhex('4500002600010000400166d40a0000010a0000020800a2e0424200016573702d6f7261636c65'),
        ipv4(A4, B4, 1, icmp_echo(0x4242, 1, pay)),
        ipv4(A4, B4, 17, udp(5000, 6000, b'x' * 200), tos=0xb9),
        ipv4(A4, B4, 6, b'\x13\x88\x00\x50' + b'\0' * 16, tos=3),
        ipv4(A4, B4, 17, udp(53, 53, b'q'), options=b'\x01\x01\x01\x00'),
        ipv4(A4, B4, 17, udp(1, 2, b''), frag=0x2000),
        ipv6(A6, B6, 58, icmp_echo(0x4242, 2, pay, v6=True), tc=0x02),
        ipv6(A6, B6, 17, udp(4000, 4001, b'y' * 100), tc=0xbb),
        # hop-by-hop + destination options, then UDP
        ipv6(A6, B6, 0, bytes([60, 0, 1, 4, 0, 0, 0, 0]) + bytes([17, 0, 1, 4, 0, 0, 0, 0])
             + udp(7, 9, b'ext')),
        # first fragment (offset 0, M=1) carrying ICMPv6
        ipv6(A6, B6, 44, bytes([58, 0, 0, 1, 0, 0, 0, 7]) + icmp_echo(1, 1, b'frag', v6=True)),
        bytes.fromhex('6000000000123a4020010db800010000000000000000000120010db8000200000000000000000001'
                      '8000cf1c424200016573702d6f7261636c65'),
    ]


def transport_packets(v6):
    if v6:
        return [ipv6(P6, U6, 58, icmp_echo(7, 1, b'ping6', v6=True)),
                ipv6(P6, U6, 17, udp(500, 4500, b'z' * 40)),
                ipv6(P6, U6, 60, bytes([6, 0, 1, 4, 0, 0, 0, 0]) + b'\x13\x88\x00\x50' + b'\0' * 16)]
    return [ipv4(P4, U4, 1, icmp_echo(7, 1, b'ping4')),
            ipv4(P4, U4, 17, udp(5000, 6000, b'esp-oracle')),
            ipv4(P4, U4, 6, b'\x13\x88\x00\x50' + b'\0' * 16, options=b'\x94\x04\x00\x00')]


def lp(b):
    return struct.pack('!H', len(b)) + b


class Corpus:
    def __init__(self, name):
        self.dir = os.path.join(OUT, name)
        os.makedirs(self.dir, exist_ok=True)
        for f in os.listdir(self.dir):
            os.unlink(os.path.join(self.dir, f))
        self.n = 0

    def add(self, data):
        with open(os.path.join(self.dir, hashlib.sha1(data).hexdigest()), 'wb') as f:
            f.write(data)
        self.n += 1


def main():
    pcaps = sorted(glob.glob(os.path.join(SAMPLES, '*.pcap'))) + sys.argv[1:]
    captured = {p: list(read_pcap(p)) for p in pcaps}
    allpkts = [pkt for ps in captured.values() for pkt in ps]

    wire = Corpus('wire')
    for pkt in allpkts + inner_packets():
        wire.add(b'\x01' + pkt)
        wire.add(b'\x00' + b'\x02\x00\x00\x00\x00\x01' + b'\x02\x00\x00\x00\x00\x02'
                 + (b'\x86\xdd' if pkt[0] >> 4 == 6 else b'\x08\x00') + pkt)
        wire.add((b'\x03' if pkt[0] >> 4 == 6 else b'\x02') + pkt)
        wire.add(b'\x08' + pkt)
        hl = 40 if pkt[0] >> 4 == 6 else (pkt[0] & 15) * 4
        l4 = pkt[hl:]
        proto = pkt[6] if pkt[0] >> 4 == 6 else pkt[9]
        if proto == 17:
            wire.add(b'\x04' + l4)
            wire.add(b'\x07' + l4[8:])
            wire.add(b'\x05' + l4[8:])
        elif proto == 50:
            wire.add(b'\x05' + l4)
        elif proto in (1, 58):
            wire.add(b'\x06' + l4)
    for t in (b'\xff', b'\x00\x00\x00\x00' + b'\x21' * 28, b'\x00\x01\x02\x02\x04', b'\x01\x02\x03\x03\x29'):
        wire.add(b'\x07' + t)
        wire.add(b'\x05' + t)
    wire.add(b'\x09' + bytes(range(64)))

    decap = Corpus('decap')
    for p, ps in captured.items():
        if ps:
            decap.add(b'\x00\x00' + b''.join(lp(x) for x in ps))
            decap.add(b'\x00\x21' + b''.join(lp(x) for x in ps))
    decap.add(b'\x00\x00' + b''.join(lp(x) for x in allpkts[:80]))
    inners = inner_packets()
    for i, (spi, mode, v6, natt) in enumerate(CONFIGS):
        if mode == 'tunnel':
            body = [(4 if x[0] >> 4 == 4 else 41, x) for x in inners]
        else:
            body = [(x[6] if v6 else x[9], x[40:] if v6 else x[(x[0] & 15) * 4:])
                    for x in transport_packets(v6)]
        for variant in range(3):
            pk = body[variant::3][:4] or body[:2]
            s = bytes([1, i, 0x10 * variant + variant, [0, 2, 3][variant], len(pk) - 1,
                       [0, 0xff, 0x10][variant]])
            for j, (nh, b) in enumerate(pk):
                flags = 1
                if variant == 1 and j == 1:
                    flags |= 0x10          # bit flip
                if variant == 2 and j == len(pk) - 1:
                    flags |= 0x08          # replay
                s += bytes([flags, 1, nh]) + struct.pack('!H', 77 * j) + lp(b)
            decap.add(s)
        # hand-made trailer (bad padding) and a dummy packet (next header 59)
        decap.add(bytes([1, i, 0, 0, 1, 0]) + bytes([0, 1, 0]) + b'\0\0'
                  + lp(b'\0' * 10 + b'\x01\x02\x03\x05\x04\x04'))
        decap.add(bytes([1, i, 0, 0, 0, 0]) + bytes([1, 1, 59]) + b'\0\0' + lp(b'dummy'))

    encap = Corpus('encap')
    for i, (spi, mode, v6, natt) in enumerate(CONFIGS):
        pk = inners if mode == 'tunnel' else transport_packets(v6) + transport_packets(not v6)[:1]
        encap.add(bytes([i, i * 17 & 0xff, 1]) + b''.join(lp(x) for x in pk))
        encap.add(bytes([i, 0, 8 * 20]) + b''.join(lp(x) for x in pk[:2]))
    # IKE: the strongSwan 5.9.8 exchanges recorded by the IKE engineer
    # (control/tests/fixtures/ike/*.txt, `msg N SPORT DPORT HEX` lines); on
    # port 4500 the non-ESP marker is stripped, as the receiver does.
    ike = Corpus('ike')
    for path in sorted(glob.glob(os.path.join(IKE_FIXTURES, '*.txt'))):
        with open(path) as f:
            for line in f:
                p = line.split()
                if len(p) == 5 and p[0] == 'msg':
                    m = bytes.fromhex(p[4])
                    if p[2] == '4500' and m[:4] == b'\0\0\0\0':
                        m = m[4:]
                    ike.add(m)
                    ike.add(m[28:])   # the payload chain alone
    # IKEv1: strongSwan 5.9.8's IKEv1 exchanges (control/tests/fixtures/ikev1/),
    # whole messages and payload chains for the parser; for the engine target
    # (control::ikev1::fuzz_engine) the clear phase 1 messages as datagrams
    # (mode byte < 128, length-prefixed) and a few payload chains for the
    # encrypted-message mode (mode byte >= 128).
    ikev1 = Corpus('ikev1')
    ikev1e = Corpus('ikev1_engine')
    for path in sorted(glob.glob(os.path.join(IKEV1_FIXTURES, '*.txt'))):
        with open(path) as f:
            for line in f:
                p = line.split()
                if len(p) == 5 and p[0] == 'msg':
                    m = bytes.fromhex(p[4])
                    if p[2] == '4500' and m[:4] == b'\0\0\0\0':
                        m = m[4:]
                    ikev1.add(m)
                    ikev1.add(m[28:])
                    if m[19] & 1 == 0 and m[8:16] == b'\0' * 8:
                        ikev1e.add(bytes([0]) + struct.pack('>H', len(m)) + m)
    # quick mode / informational bodies: SA+Nonce+IDs, a delete, a DPD notify
    sa = (b'\0\0\0\x01\0\0\0\x01' + b'\0\0\0\x20\x01\x03\x04\x01' + b'\x12\x34\x56\x78'
          + b'\0\0\0\x14\x01\x14\0\0' + b'\x80\x04\0\x01' + b'\x80\x06\0\x80' + b'\x80\x01\0\x01')
    def pl(np, body):
        return bytes([np, 0]) + struct.pack('>H', len(body) + 4) + body
    qm = bytes([1]) + pl(10, sa) + pl(5, b'\x20' * 16) + pl(5, b'\x04\0\0\0\x0a\x01\0\0\xff\xff\xff\0') \
        + pl(0, b'\x04\0\0\0\x0a\x02\0\0\xff\xff\xff\0')
    ikev1e.add(bytes([128, 60]) + qm)
    ikev1e.add(bytes([129, 8]) + bytes([12]) + pl(0, b'\0\0\0\x01\x03\x04\0\x01\x12\x34\x56\x78'))
    ikev1e.add(bytes([129, 8]) + bytes([11]) + pl(0, b'\0\0\0\x01\x01\x10\x8d\x28' + b'\x11' * 16 + b'\0\0\0\x07'))
    print('seeds: wire %d, decap %d, encap %d (from %d captured packets), ike %d, ikev1 %d, ikev1_engine %d'
          % (wire.n, decap.n, encap.n, len(allpkts), ike.n, ikev1.n, ikev1e.n))


if __name__ == '__main__':
    main()
