#!/usr/bin/env python3
"""UDP datagrams larger than the path MTU, sent with DF clear
(IP_MTU_DISCOVER = IP_PMTUDISC_DONT), and a receiver that checks each one
byte for byte (the receiving host reassembles the fragments).

  udp_frag.py recv PORT COUNT SIZE   exits 0 when COUNT intact datagrams came
  udp_frag.py send ADDR PORT COUNT SIZE
"""
import socket
import sys

IP_MTU_DISCOVER = getattr(socket, "IP_MTU_DISCOVER", 10)
IP_PMTUDISC_DONT = getattr(socket, "IP_PMTUDISC_DONT", 0)


def payload(k, size):
    return bytes(((i * 31 + k * 7 + (i >> 8)) & 0xFF) for i in range(size))


def recv(port, count, size):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    s.settimeout(10)
    good = set()
    bad = 0
    try:
        while len(good) < count:
            d, _ = s.recvfrom(65535)
            k = d[0] if d else 255
            if len(d) == size and d[1:] == payload(k, size)[1:]:
                good.add(k)
            else:
                bad += 1
                print(f"bad datagram: {len(d)} bytes", flush=True)
    except socket.timeout:
        pass
    print(f"received {len(good)} intact {size}-byte datagrams, {bad} bad", flush=True)
    return 0 if len(good) == count and bad == 0 else 1


def send(addr, port, count, size):
    import time

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DONT)
    for k in range(count):
        p = bytearray(payload(k, size))
        p[0] = k
        s.sendto(bytes(p), (addr, port))
        time.sleep(0.1)
    return 0


if __name__ == "__main__":
    a = sys.argv[1:]
    if a[0] == "recv":
        sys.exit(recv(int(a[1]), int(a[2]), int(a[3])))
    sys.exit(send(a[1], int(a[2]), int(a[3]), int(a[4])))
