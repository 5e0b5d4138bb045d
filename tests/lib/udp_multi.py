#!/usr/bin/env python3
"""Numbered UDP datagrams on many flows at once (one per tunnel), counted at
the receiver: one process per side instead of one per flow.

  udp_multi.py recv PORT OUT.json STOPFILE
      binds 0.0.0.0:PORT; a flow is the datagram's source address. Runs until
      STOPFILE exists and no datagram came for 2 s, then writes
      {"flows": {src: {"received", "unique", "dups", "expected", "missing"}},
       "received", "unique", "dups", "expected", "missing"} (totals).
  udp_multi.py send PORT RATE DURATION_S SRC:DST [SRC:DST ...]
      RATE datagrams per second per flow for DURATION_S seconds, round-robin
      over the flows, from SRC (bound) to DST:PORT. Datagram: flow sequence
      (8 bytes), then the number of datagrams the flow will send in all (8
      bytes, so the receiver knows what is missing), padded to 64 bytes.
      Prints {"sent": n, "failed": f, "errors": {errno name: count},
      "flows": k, "behind_max_s": b} when done: `sent` counts every
      datagram numbered (what the receiver expects; behind schedule, it
      catches up at twice RATE at most, never in one burst), `failed` those the
      kernel refused to take (sendto raised: they never left, and are
      missing at the receiver for a reason of the sender's), and
      `behind_max_s` how far the sender fell behind its schedule at worst.

The receiver asks for a 32 MiB receive buffer (the kernel caps it at
net.core.rmem_max unless run as root, which SO_RCVBUFFORCE bypasses) so
that a receiver descheduled for a few seconds on a loaded machine loses
nothing; what it loses anyway is the kernel's UDP RcvbufErrors counter of
its namespace.
"""
import errno
import json
import os
import socket
import struct
import sys
import time


def recv(port, out, stopfile):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        # SO_RCVBUFFORCE (33 on Linux; not in the socket module)
        s.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_RCVBUFFORCE", 33), 32 << 20)
    except OSError:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 << 20)
    s.bind(("0.0.0.0", int(port)))
    s.settimeout(0.5)
    flows = {}
    last = time.monotonic()
    while True:
        try:
            data, (src, _) = s.recvfrom(2048)
        except socket.timeout:
            if os.path.exists(stopfile) and time.monotonic() - last > 2.0:
                break
            continue
        last = time.monotonic()
        if len(data) < 16:
            continue
        n, total = struct.unpack("!QQ", data[:16])
        f = flows.setdefault(src, {"seen": set(), "received": 0, "dups": 0, "expected": 0})
        f["received"] += 1
        if n in f["seen"]:
            f["dups"] += 1
        f["seen"].add(n)
        f["expected"] = total
    res = {"flows": {}}
    tot = {"received": 0, "unique": 0, "dups": 0, "expected": 0, "missing": 0}
    for src, f in sorted(flows.items()):
        missing = sum(1 for i in range(f["expected"]) if i not in f["seen"])
        r = {
            "received": f["received"],
            "unique": len(f["seen"]),
            "dups": f["dups"],
            "expected": f["expected"],
            "missing": missing,
        }
        res["flows"][src] = r
        for k in tot:
            tot[k] += r[k]
    res.update(tot)
    with open(out, "w") as fh:
        json.dump(res, fh)


def send(port, rate, duration, pairs):
    port, rate, duration = int(port), float(rate), float(duration)
    socks = []
    for p in pairs:
        src, dst = p.split(":")
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((src, 0))
        socks.append((s, (dst, port)))
    per_flow = int(rate * duration)
    interval = 1.0 / (rate * len(socks))
    sent = failed = 0
    errors = {}
    behind = 0.0
    t0 = time.monotonic()
    for seq in range(per_flow):
        for s, dst in socks:
            payload = struct.pack("!QQ", seq, per_flow).ljust(64, b"\0")
            try:
                s.sendto(payload, dst)
            except OSError as e:
                # never left: missing at the receiver, the sender's fault
                failed += 1
                name = errno.errorcode.get(e.errno, str(e.errno))
                errors[name] = errors.get(name, 0) + 1
            sent += 1
            # keep the pace against the clock (no drift under load), but
            # catch up after a stall at twice the rate at most: a sender
            # descheduled for seconds that then sent its backlog at once
            # would overflow the gateways' receive rings (what the soak
            # of 2026-12-06 lost)
            ahead = t0 + sent * interval - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
            else:
                behind = max(behind, -ahead)
                time.sleep(interval / 2)
    print(json.dumps({"sent": sent, "failed": failed, "errors": errors,
                      "flows": len(socks), "behind_max_s": round(behind, 3)}))


if __name__ == "__main__":
    if len(sys.argv) >= 5 and sys.argv[1] == "recv":
        recv(sys.argv[2], sys.argv[3], sys.argv[4])
    elif len(sys.argv) >= 6 and sys.argv[1] == "send":
        send(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
