#!/usr/bin/env bash
# tcp_echo SERVER_NS CLIENT_NS ADDR [BYTES]: sends BYTES (default 1 MiB) of
# random data over TCP to an echo server in SERVER_NS and checks every byte
# comes back. Needs tests/lib/netns.sh.
tcp_echo() {
  local srv_ns="$1" cli_ns="$2" addr="$3" bytes="${4:-1048576}"
  local port=$(( 20000 + RANDOM % 20000 ))
  nsl_bg "$srv_ns" "tcpsrv_$port" python3 -c '
import socket,sys
fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(fam); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1); s.settimeout(30)
c, _ = s.accept(); c.settimeout(30)
while True:
    d = c.recv(65536)
    if not d: break
    c.sendall(d)
c.close()' "$addr" "$port"
  sleep 0.5
  nsl_x "$cli_ns" python3 -c '
import socket,sys,os,threading,time
data = os.urandom(int(sys.argv[3]))
for i in range(100):  # the server may still be starting (busy machine)
    try:
        c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30)
        break
    except ConnectionRefusedError:
        time.sleep(0.1)
else:
    raise SystemExit("echo server never listened")
got = bytearray()
def rd():
    while len(got) < len(data):
        d = c.recv(65536)
        if not d: break
        got.extend(d)
t = threading.Thread(target=rd); t.start()
c.sendall(data); t.join(60)
c.close()
assert bytes(got) == data, "echoed %d of %d bytes" % (len(got), len(data))
' "$addr" "$port" "$bytes"
}
