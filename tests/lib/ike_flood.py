#!/usr/bin/env python3
"""IKE_SA_INIT flood for tests/netns/53_ike_flood.sh and bench/e2e/ike_flood.sh,
IKEv1 main mode flood for tests/netns/44_ikev1_flood.sh.

  ike_flood.py IFACE DST_MAC DST_IP SECONDS OUT.json REAL_SRC[,REAL_SRC...] [v1]

Builds a pool of Ethernet frames with scapy: IKEv2 IKE_SA_INIT requests
(AES-CBC-128, HMAC-SHA-256, PRF-SHA-256, MODP-2048 with a 256-byte KE that
is a valid public value, a 32-byte nonce), each with its own initiator SPI
and source port, to UDP 500 and (with the non-ESP marker) 4500 of DST_IP.
Three frames in four come from spoofed sources (198.18.0.0/15, never
answered), one in four from the REAL_SRC addresses (which can receive the
answers: cookies, NO_PROPOSAL_CHOSEN), plus a few IKEv1 main-mode first
messages and oversized (4000-byte, IP-fragmented) requests. Then sends the pool round and round on an
AF_PACKET socket as fast as it can for SECONDS and writes {"sent": n,
"seconds": s, "pps": r} to OUT.json. OUT.json.started appears when the
pool is built and the sending starts.

With `v1`, every request is an IKEv1 main-mode first message (ISAKMP SA
payload: AES-CBC-128, SHA-1, pre-shared key, MODP-2048, 28800 s, which an
IKEv1 connection with `ike = "aes128-sha1-modp2048"` and `right = "%any"`
accepts, so that each one costs the responder a half-open ISAKMP SA), one
in 64 of them oversized (4000 bytes, IP-fragmented).
"""
import json
import os
import random
import socket
import struct
import sys
import time

from scapy.layers.inet import IP, UDP, fragment
from scapy.layers.l2 import Ether
from scapy.arch import get_if_hwaddr

MODP2048_P = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74"
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437"
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05"
    "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB"
    "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718"
    "3995497CEA956AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF",
    16,
)


def transform(last, ttype, tid, attr=b""):
    return struct.pack("!BBHBBH", 0 if last else 3, 0, 8 + len(attr), ttype, 0, tid) + attr


def ike_sa_init(spi_i, size=0):
    trans = (
        transform(False, 1, 12, struct.pack("!HH", 0x800E, 128))  # ENCR AES-CBC 128
        + transform(False, 2, 5)  # PRF HMAC-SHA-256
        + transform(False, 3, 12)  # INTEG HMAC-SHA-256-128
        + transform(True, 4, 14)  # DH MODP-2048
    )
    prop = struct.pack("!BBHBBBB", 0, 0, 8 + len(trans), 1, 1, 0, 4) + trans
    sa = struct.pack("!BBH", 34, 0, 4 + len(prop)) + prop
    ke_val = random.randrange(2, MODP2048_P - 1).to_bytes(256, "big")
    ke = struct.pack("!BBHHH", 40, 0, 8 + 256, 14, 0) + ke_val
    nonce = struct.pack("!BBH", 0, 0, 4 + 32) + os.urandom(32)
    body = sa + ke + nonce
    if size:
        body += b"\0" * max(0, size - 28 - len(body))
    hdr = struct.pack("!QQBBBBII", spi_i, 0, 33, 0x20, 34, 0x08, 0, 28 + len(body))
    return hdr + body


def ikev1_main_mode_1(icookie, size=0):
    # SA payload with one proposal, one transform (AES-128/SHA-1/modp2048/PSK)
    attrs = struct.pack("!HHHHHHHHHHHH", 0x8001, 7, 0x800E, 128, 0x8002, 2, 0x8003, 1, 0x8004, 14, 0x800B, 1)
    attrs += struct.pack("!HHI", 0x000C, 4, 28800)
    t = struct.pack("!BBHBBH", 0, 0, 8 + len(attrs), 1, 1, 0) + attrs
    p = struct.pack("!BBHBBBB", 0, 0, 8 + len(t), 1, 1, 0, 1) + t
    sa = struct.pack("!BBHII", 0, 0, 12 + len(p), 1, 1) + p
    if size:
        # a vendor ID payload fills the message up to `size`
        vid = os.urandom(max(16, size - 28 - len(sa) - 4))
        sa = struct.pack("!BBHII", 13, 0, 12 + len(p), 1, 1) + p
        sa += struct.pack("!BBH", 0, 0, 4 + len(vid)) + vid
    hdr = struct.pack("!QQBBBBII", icookie, 0, 1, 0x10, 2, 0, 0, 28 + len(sa))
    return hdr + sa


def main():
    iface, dst_mac, dst_ip, seconds, out, reals = sys.argv[1:7]
    v1 = sys.argv[7:8] == ["v1"]
    seconds = float(seconds)
    reals = reals.split(",")
    src_mac = get_if_hwaddr(iface)
    random.seed(int.from_bytes(os.urandom(8), "big"))
    frames = []
    for i in range(2048):
        if i % 4 == 3:
            src = reals[i % len(reals)]
        else:
            src = "198.%d.%d.%d" % (18 + random.randint(0, 1), random.randint(0, 255), random.randint(1, 254))
        if v1:
            size = 4000 if i % 64 == 9 else 0
            ike = ikev1_main_mode_1(random.getrandbits(64) | 1, size)
        elif i % 64 == 5:
            ike = ikev1_main_mode_1(random.getrandbits(64) | 1)
        elif i % 64 == 9:
            ike = ike_sa_init(random.getrandbits(64) | 1, size=4000)
        else:
            ike = ike_sa_init(random.getrandbits(64) | 1)
        if i % 3 == 2:
            dport, payload = 4500, b"\0\0\0\0" + ike
        else:
            dport, payload = 500, ike
        f = Ether(src=src_mac, dst=dst_mac) / IP(src=src, dst=dst_ip) / UDP(
            sport=random.randint(1024, 65535), dport=dport
        ) / payload
        if len(f) > 1514:
            # oversized requests travel as IP fragments (the kernel reassembles them)
            for part in fragment(f[IP], fragsize=1400):
                frames.append(bytes(Ether(src=src_mac, dst=dst_mac) / part))
        else:
            frames.append(bytes(f))
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    # OUT.started: the frames are built and sending begins (under load,
    # building the pool with scapy takes from a second to a minute)
    with open(out + ".started", "w") as fh:
        fh.write("%.3f\n" % time.time())
    sent = 0
    start = time.monotonic()
    end = start + seconds
    n = len(frames)
    while True:
        for i in range(256):
            try:
                s.send(frames[(sent + i) % n])
            except (BlockingIOError, OSError):
                pass
        sent += 256
        if time.monotonic() >= end:
            break
    took = time.monotonic() - start
    with open(out, "w") as fh:
        json.dump({"sent": sent, "seconds": round(took, 2), "pps": int(sent / took)}, fh)


if __name__ == "__main__":
    main()
