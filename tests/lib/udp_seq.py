#!/usr/bin/env python3
"""Numbered UDP datagrams for loss measurements at the receiver.

  udp_seq.py recv ADDR PORT OUT.json [IDLE_S]   # counts until IDLE_S (default 3) without a datagram
  udp_seq.py send ADDR PORT COUNT INTERVAL_S [SIZE]

The receiver records every sequence number it got (duplicates counted apart)
and writes {"received": n, "unique": u, "dups": d, "missing": [...first 50],
"missing_ranges": [[first, last]...first 50 runs], "max": m} when the
sender's last datagram is followed by IDLE_S of silence, or when 20 s pass
without any datagram before it (it waits indefinitely for the first one). The sender numbers datagrams
0..COUNT-1 (8-byte big-endian sequence, padded to SIZE bytes).
"""
import json
import socket
import struct
import sys
import time


def recv(addr, port, out, idle=3.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind((addr, int(port)))
    seen = set()
    received = dups = 0
    first = True
    expected = None
    last_seen = False
    while True:
        # IDLE_S of silence ends the count once the sender's last datagram
        # is in; before that only a long silence does (a machine stalled for
        # seconds must not end the count early and call the rest lost)
        s.settimeout(None if first else idle if last_seen else max(idle, 20.0))
        try:
            data, _ = s.recvfrom(65535)
        except socket.timeout:
            break
        first = False
        if len(data) < 16:
            continue
        n, total = struct.unpack("!QQ", data[:16])
        expected = total
        last_seen |= n == total - 1
        received += 1
        if n in seen:
            dups += 1
        seen.add(n)
    total = expected or 0
    missing = [i for i in range(total) if i not in seen]
    # runs of consecutive missing numbers [first, last] (a burst is one run)
    ranges = []
    for i in missing:
        if ranges and ranges[-1][1] == i - 1:
            ranges[-1][1] = i
        else:
            ranges.append([i, i])
    with open(out, "w") as f:
        json.dump(
            {
                "expected": total,
                "received": received,
                "unique": len(seen),
                "dups": dups,
                "missing_count": len(missing),
                "missing": missing[:50],
                "missing_ranges": ranges[:50],
            },
            f,
        )


def send(addr, port, count, interval, size=200):
    count, interval, size = int(count), float(interval), max(16, int(size))
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    pad = b"x" * (size - 16)
    t0 = time.monotonic()
    for i in range(count):
        s.sendto(struct.pack("!QQ", i, count) + pad, (addr, int(port)))
        # paced on the clock, not on sleeps that drift
        d = t0 + (i + 1) * interval - time.monotonic()
        if d > 0:
            time.sleep(d)


if __name__ == "__main__":
    if sys.argv[1] == "recv":
        recv(sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]) if len(sys.argv) > 5 else 3.0)
    elif sys.argv[1] == "send":
        send(*sys.argv[2:])
    else:
        sys.exit(__doc__)
