#!/usr/bin/env bash
# Soak: N IKEv2 tunnels between two espresso gateways (dataplane + daemon on
# each, in network namespaces), child SAs with lifetimes of tens of seconds so
# that they rekey all the time (IKE SAs too), numbered UDP datagrams on every
# tunnel counted at the receiver, for a set duration.
#
#   bench/e2e/soak.sh [--tunnels N] [--duration S] [--lifetime S] [--margin S]
#                     [--ike-lifetime S] [--rate PPS] [--sample S] [--check]
#                     [--out DIR]
#   defaults: 200 tunnels, 1200 s (20 min), child lifetime 40 s, margin 15 s,
#   IKE lifetime 300 s, 10 datagrams/s per tunnel, a sample every 10 s.
#
# Topology: nsl_topo_pair. Tunnel i (1..N, N <= 200) protects host
# 10.1.0.(20+i) <-> 10.2.0.(20+i) (hA and hB carry those addresses), with
# its own identities (@a<i>.soak, @b<i>.soak); gateway A initiates them all,
# both sides rekey (same lifetimes, randomised by rekeyfuzz).
#
# Prints: rekeys done (child and IKE SAs, counted in A's daemon log),
# datagrams sent / received / lost / duplicated, the dataplanes' drops by
# reason, SAs at the start and while running at the end (dataplane SA slots
# from each dataplane's counters, IKE and child SA records from each
# daemon's status; the running count includes SAs that drain for a few
# seconds after a rekey), SAs leaked: every tunnel is then taken down and
# both dataplanes must be back to the slots they had before the daemons
# started (none), both daemons must hold no IKE or child SA; and the RSS of
# the four processes over time (every sample, and the growth from the first
# to the last quarter of the run), the load average over time, and where
# every lost datagram went: the sender's failed sends (by errno), UDP
# receive-buffer overflows in the receiving namespace (/proc/net/snmp
# RcvbufErrors, InErrors), drops of every interface of the four namespaces
# (`ip -s link`, rx/tx dropped), the machine's per-CPU backlog drops
# (/proc/net/softnet_stat, machine-wide), the dataplanes' AF_PACKET ring
# drops (PACKET_STATISTICS, logged when they stop) and the dataplanes' drops
# by reason; what none of them explains is printed as unexplained.
# --check: exit 1 unless no SA leaked, every child SA was there at the end,
# each tunnel was rekeyed at least once, no datagram was lost or
# duplicated, and no process's RSS grew by more than 16 MiB (the short
# variant in scripts/test.sh, tests/netns/52_soak_short.sh, runs with it).
# --out DIR: the samples (CSV) and the receiver's per-flow counts are kept.
# Namespaces are named uniquely (tests/lib/netns.sh: name + PID), cleaned up
# by a trap, and every process is stopped by its PID.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/netns.sh
source tests/lib/control.sh

tunnels=200 duration=1200 lifetime=40 margin=15 ike_lifetime=300 rate=10 sample=10
check=0 out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --tunnels) tunnels=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --lifetime) lifetime=$2; shift 2 ;;
    --margin) margin=$2; shift 2 ;;
    --ike-lifetime) ike_lifetime=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --sample) sample=$2; shift 2 ;;
    --check) check=1; shift ;;
    --out) out=$2; shift 2 ;;
    *) echo "usage: $0 [--tunnels N] [--duration S] [--lifetime S] [--margin S] [--ike-lifetime S] [--rate PPS] [--sample S] [--check] [--out DIR]" >&2; exit 2 ;;
  esac
done
[ "$tunnels" -ge 1 ] && [ "$tunnels" -le 200 ] || { echo "--tunnels: 1 to 200" >&2; exit 2; }
[ -x "$ESPRESSO_BIN" ] || { echo "$ESPRESSO_BIN not built (cargo build --profile ci --bins; ESPRESSO_TARGET=target/ci)" >&2; exit 1; }

nsl_init soak
nsl_topo_pair
PORT=5999

# host addresses: one per tunnel on each side
{ for i in $(seq 1 "$tunnels"); do echo "addr add 10.1.0.$((20 + i))/24 dev eth0"; done; } |
  ip -n "$NS_HA" -batch -
{ for i in $(seq 1 "$tunnels"); do echo "addr add 10.2.0.$((20 + i))/24 dev eth0"; done; } |
  ip -n "$NS_HB" -batch -

psk="soak-pre-shared-key-$(python3 -c 'import os;print(os.urandom(12).hex())')"
write_conf() { # SIDE
  local side=$1 d="$NSL_TMP/$1" me peer mine theirs lp rp start
  if [ "$side" = A ]; then me=192.0.2.1 peer=192.0.2.2 lp=1 rp=2 mine=a theirs=b start=start
  else me=192.0.2.2 peer=192.0.2.1 lp=2 rp=1 mine=b theirs=a start=add; fi
  mkdir -p "$d"
  ( umask 077; printf 'psk = "%s"\n' "$psk" >"$d/soak.psk" )
  {
    cat <<CONF
[daemon]
shm = "$d/region.shm"
socket = "$d/espresso.sock"
metrics = "127.0.0.1:9718"
CONF
    for i in $(seq 1 "$tunnels"); do
      cat <<CONF

[[connection]]
name = "s$i"
local = "$me"
remote = "$peer"
local_id = "@$mine$i.soak"
remote_id = "@$theirs$i.soak"
local_subnets = ["10.$lp.0.$((20 + i))/32"]
remote_subnets = ["10.$rp.0.$((20 + i))/32"]
secrets = "soak.psk"
ike = "aes128gcm16-prfsha256-ecp256"
esp = "aes128gcm16"
lifetime = "${lifetime}s"
ike_lifetime = "${ike_lifetime}s"
margin = "${margin}s"
start = "$start"
CONF
    done
  } >"$d/espresso.toml"
  chmod 600 "$d/espresso.toml"
}
write_conf A
write_conf B

ctl_dataplane A; ctl_dataplane B
sleep 1
base_a_dp=$(nsl_stat dpA "len(s['sas'])"); base_b_dp=$(nsl_stat dpB "len(s['sas'])")
ctl_daemon B
ctl_daemon A
nsl_log "soak: $tunnels tunnels, ${duration}s, child lifetime ${lifetime}s (margin ${margin}s), IKE lifetime ${ike_lifetime}s, $rate datagrams/s per tunnel"

# counts SIDE: "ike_sas children dp_sas" (established IKE SAs and their
# child SAs in the daemon's status, SAs in the dataplane's counters file)
counts() {
  local d
  d=$(ctl_field "$1" "'%d %d' % (len([x for x in s.get('ike_sas', []) if x['state'].upper()=='ESTABLISHED']), sum(len(x.get('children', [])) for x in s.get('ike_sas', [])))" 2>/dev/null) || d="? ?"
  echo "$d $(nsl_stat "dp$1" "len(s['sas'])" 2>/dev/null || echo '?')"
}
engine() { ctl_field "$1" "'%d %d' % (s['ike']['child_established'], s['ike']['ike_established'])"; }
rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# up IKE CHILDREN DP_SAS: every tunnel established. At least (not exactly)
# one child and two dataplane SAs per tunnel: the first tunnels may rekey
# (a second pair draining for a few seconds) before the last ones are up.
up() {
  [ "$1" = "$tunnels" ] && [[ "$2" =~ ^[0-9]+$ ]] && [ "$2" -ge "$tunnels" ] &&
    [[ "$3" =~ ^[0-9]+$ ]] && [ "$3" -ge $((2 * tunnels)) ]
}
up_deadline=$((SECONDS + 60 + tunnels))
while :; do
  read -r ike kids dps < <(counts A)
  up "$ike" "$kids" "$dps" && break
  [ "$SECONDS" -lt "$up_deadline" ] || nsl_die "only $ike IKE SAs, $kids child SAs, $dps dataplane SAs on A after $((60 + tunnels)) s"
  sleep 1
done
for _ in $(seq 1 30); do
  read -r ike kids dps < <(counts B)
  up "$ike" "$kids" "$dps" && break
  sleep 1
done
read -r start_a_ike start_a_kids start_a_dp < <(counts A)
read -r start_b_ike start_b_kids start_b_dp < <(counts B)
nsl_log "all up: A $start_a_ike IKE / $start_a_kids child / $start_a_dp dataplane SAs, B $start_b_ike / $start_b_kids / $start_b_dp"

# every tunnel carries a ping first, so that both gateways have resolved
# every host address (the dataplane drops, as no_neighbour, what it sends
# while it resolves) before the datagrams are counted
warm() {
  local i pids=()
  for i in $(seq 1 "$tunnels"); do
    ip netns exec "$NS_HA" ping -c 2 -i 0.2 -W 2 -I "10.1.0.$((20 + i))" "10.2.0.$((20 + i))" >/dev/null 2>&1 &
    pids+=("$!")
  done
  wait "${pids[@]}" 2>/dev/null || true
}
warm; warm

# snap TAG: kernel counters of the four namespaces (interfaces, UDP) and the
# machine's backlog drops
snap() {
  local tag=$1 ns i=0
  for ns in "$NS_HA" "$NS_GWA" "$NS_GWB" "$NS_HB"; do
    ip -n "$ns" -s -j link show >"$NSL_TMP/link_${tag}_$i.json"
    ip netns exec "$ns" cat /proc/net/snmp >"$NSL_TMP/snmp_${tag}_$i.txt"
    i=$((i + 1))
  done
  cat /proc/net/softnet_stat >"$NSL_TMP/softnet_$tag.txt"
}
snap before
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

stop="$NSL_TMP/stop"
nsl_bg "$NS_HB" recv python3 tests/lib/udp_multi.py recv "$PORT" "$NSL_TMP/recv.json" "$stop"
RECV=$NSL_PID
sleep 1
pairs=()
for i in $(seq 1 "$tunnels"); do pairs+=("10.1.0.$((20 + i)):10.2.0.$((20 + i))"); done
nsl_bg "$NS_HA" send python3 tests/lib/udp_multi.py send "$PORT" "$rate" "$duration" "${pairs[@]}"
SEND=$NSL_PID

samples="$NSL_TMP/samples.csv"
echo "t_s,rss_dp_a_kib,rss_ctl_a_kib,rss_dp_b_kib,rss_ctl_b_kib,ike_a,children_a,dp_sas_a,ike_b,children_b,dp_sas_b,child_established_a,ike_established_a,load1" >"$samples"
t0=$SECONDS
while kill -0 "$SEND" 2>/dev/null; do
  read -r ia ca da < <(counts A)
  read -r ib cb db < <(counts B)
  read -r ce ie < <(engine A 2>/dev/null || echo "? ?")
  line="$((SECONDS - t0)),$(rss "$DP_A"),$(rss "$CTL_A"),$(rss "$DP_B"),$(rss "$CTL_B"),$ia,$ca,$da,$ib,$cb,$db,$ce,$ie,$(cut -d' ' -f1 /proc/loadavg)"
  echo "$line" >>"$samples"
  nsl_log "sample $line"
  for _ in $(seq 1 "$sample"); do kill -0 "$SEND" 2>/dev/null || break; sleep 1; done
done
wait "$SEND" 2>/dev/null || true
sent=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])["sent"])' "$NSL_TMP/send.log" 2>/dev/null || echo 0)
touch "$stop"
for _ in $(seq 1 30); do kill -0 "$RECV" 2>/dev/null || break; sleep 1; done
[ -s "$NSL_TMP/recv.json" ] || nsl_die "receiver wrote no counts"
snap after
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# SAs while running (after the traffic; rekeys go on, so SAs replaced by a
# rekey may still be draining): shown, not judged
read -r run_a_ike run_a_kids run_a_dp < <(counts A)
read -r run_b_ike run_b_kids run_b_dp < <(counts B)
drops_a=$(nsl_stat dpA "sorted((k, v) for k, v in s['drops'].items() if v)" 2>/dev/null || echo '?')
drops_b=$(nsl_stat dpB "sorted((k, v) for k, v in s['drops'].items() if v)" 2>/dev/null || echo '?')
rekeys_child=$(grep -c "child SA rekeyed" "$NSL_TMP/ctlA.log" || true)
rekeys_ike=$(grep -c "IKE SA rekeyed" "$NSL_TMP/ctlA.log" || true)
# The leak check: every tunnel taken down on A (IKE deletes reach B); then
# both dataplanes must be back to the SAs they had before the daemons
# started (none) and both daemons must hold no IKE or child SA.
for i in $(seq 1 "$tunnels"); do ctl A down "s$i" >/dev/null 2>&1 || nsl_log "down s$i failed"; done
for _ in $(seq 1 60); do
  read -r end_a_ike end_a_kids end_a_dp < <(counts A)
  read -r end_b_ike end_b_kids end_b_dp < <(counts B)
  [ "$end_a_ike$end_a_kids$end_b_ike$end_b_kids" = 0000 ] && [ "$end_a_dp" = "$base_a_dp" ] && [ "$end_b_dp" = "$base_b_dp" ] && break
  sleep 1
done

read -r received unique dups missing < <(python3 -c '
import json,sys; r=json.load(open(sys.argv[1])); print(r["received"], r["unique"], r["dups"], r["missing"])' "$NSL_TMP/recv.json")
lost=$((sent - unique))
# The dataplanes log their AF_PACKET queues' counters when they stop.
nsl_stop "$DP_A"; nsl_stop "$DP_B"
accounting=$(python3 - "$NSL_TMP" "$lost" "$drops_a" "$drops_b" <<'PY'
import ast, glob, json, re, sys
tmp, lost = sys.argv[1], int(sys.argv[2])
names = ["hA", "gwA", "gwB", "hB"]
def links(tag, i):
    out = {}
    for l in json.load(open("%s/link_%s_%d.json" % (tmp, tag, i))):
        st = l.get("stats64", l.get("stats", {}))
        out[l["ifname"]] = (st.get("rx", {}).get("dropped", 0), st.get("tx", {}).get("dropped", 0))
    return out
def udp(tag, i):
    lines = [l.split() for l in open("%s/snmp_%s_%d.txt" % (tmp, tag, i)) if l.startswith("Udp:")]
    return dict(zip(lines[0][1:], map(int, lines[1][1:])))
def softnet(tag):
    return sum(int(l.split()[1], 16) for l in open("%s/softnet_%s.txt" % (tmp, tag)))
send = json.loads(open(tmp + "/send.log").read().strip().splitlines()[-1])
print("  sender: %d numbered, %d refused by the kernel %s, at worst %.3f s behind schedule"
      % (send["sent"], send.get("failed", 0), send.get("errors", {}), send.get("behind_max_s", 0)))
explained = send.get("failed", 0)
veth = 0
for i, n in enumerate(names):
    a, b = links("before", i), links("after", i)
    parts = []
    for ifn in sorted(b):
        rx = b[ifn][0] - a.get(ifn, (0, 0))[0]
        tx = b[ifn][1] - a.get(ifn, (0, 0))[1]
        parts.append("%s rx_dropped %d tx_dropped %d" % (ifn, rx, tx))
        if ifn != "lo":
            veth += rx + tx
    u0, u1 = udp("before", i), udp("after", i)
    d = {k: u1[k] - u0.get(k, 0) for k in ("InDatagrams", "InErrors", "RcvbufErrors", "SndbufErrors", "NoPorts")}
    print("  %-3s interfaces: %s; UDP: %s" % (n, ", ".join(parts), " ".join("%s %d" % kv for kv in d.items())))
    if n == "hB":
        rcvbuf = d["RcvbufErrors"]
explained += veth + rcvbuf
sn = softnet("after") - softnet("before")
print("  machine-wide per-CPU backlog drops (softnet_stat, all namespaces): %d" % sn)
ring = 0
for side in ("A", "B"):
    txt = open("%s/dp%s.log" % (tmp, side), errors="replace").read()
    d = sum(int(x) for x in re.findall(r"rx_dropped: (\d+)", txt))
    print("  dataplane %s: AF_PACKET ring drops %d" % (side, d))
    ring += d
explained += ring
dp = 0
for arg in sys.argv[3:5]:
    try:
        dp += sum(v for _, v in ast.literal_eval(arg))
    except Exception:
        pass
print("  dataplane drops by reason (both): %d" % dp)
explained += dp
print("  lost %d = sender %d + interfaces %d + receiver socket buffer %d + rings %d + dataplane drops %d + unexplained %d"
      % (lost, send.get("failed", 0), veth, rcvbuf, ring, dp, lost - explained))
print("UNEXPLAINED %d" % (lost - explained))
PY
) || accounting="accounting failed"

echo "== soak: $tunnels IKEv2 tunnels espresso <-> espresso, ${duration}s, child lifetime ${lifetime}s margin ${margin}s, IKE lifetime ${ike_lifetime}s"
echo "rekeys: child $rekeys_child, IKE $rekeys_ike (completed, from A's daemon log; each was started by A or B)"
echo "datagrams: sent $sent, received $received, unique $unique, lost $lost, duplicated $dups (receiver's missing count $missing)"
echo "dataplane drops by reason: A $drops_a; B $drops_b"
echo "SAs at start (all up): A IKE $start_a_ike, child $start_a_kids, dataplane slots $start_a_dp; B IKE $start_b_ike, child $start_b_kids, dataplane slots $start_b_dp"
echo "SAs at the end while running: A IKE $run_a_ike, child $run_a_kids, dataplane slots $run_a_dp; B IKE $run_b_ike, child $run_b_kids, dataplane slots $run_b_dp (includes SAs draining after a rekey)"
echo "SAs after every tunnel was taken down: A IKE $end_a_ike, child $end_a_kids, dataplane slots $end_a_dp (before the daemons: $base_a_dp); B IKE $end_b_ike, child $end_b_kids, dataplane slots $end_b_dp (before: $base_b_dp)"
leaked=$(( end_a_ike + end_a_kids + end_b_ike + end_b_kids + (end_a_dp - base_a_dp) + (end_b_dp - base_b_dp) ))
missing_sas=0
[ "$run_a_kids" -ge "$tunnels" ] || missing_sas=$((missing_sas + tunnels - run_a_kids))
[ "$run_b_kids" -ge "$tunnels" ] || missing_sas=$((missing_sas + tunnels - run_b_kids))
echo "SAs leaked (daemon IKE + child records and dataplane slots left after down, both sides): $leaked"
echo "load average: before the traffic $load_before, after $load_after"
echo "where the lost datagrams went:"
echo "$accounting" | grep -v '^UNEXPLAINED'
unexplained=$(echo "$accounting" | sed -n 's/^UNEXPLAINED //p')
echo "RSS (KiB) over time: t_s dataplane_A daemon_A dataplane_B daemon_B"
rss_report=$(python3 - "$samples" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
cols = ["rss_dp_a_kib", "rss_ctl_a_kib", "rss_dp_b_kib", "rss_ctl_b_kib"]
for r in rows:
    print("  %5s %s" % (r["t_s"], " ".join("%8s" % r[c] for c in cols)))
n = len(rows)
worst = 0
if n >= 4:
    q = max(1, n // 4)
    for c, name in zip(cols, ["dataplane A", "daemon A", "dataplane B", "daemon B"]):
        first = sum(int(r[c]) for r in rows[:q]) / q
        last = sum(int(r[c]) for r in rows[-q:]) / q
        peak = max(int(r[c]) for r in rows)
        worst = max(worst, last - first)
        print("  %-12s first quarter %.0f KiB, last quarter %.0f KiB, growth %+.0f KiB (%+.1f%%), peak %d KiB"
              % (name, first, last, last - first, 100.0 * (last - first) / max(first, 1), peak))
print("RSS_WORST_GROWTH_KIB %d" % worst)
PY
)
echo "$rss_report" | grep -v '^RSS_WORST'
growth=$(echo "$rss_report" | sed -n 's/^RSS_WORST_GROWTH_KIB //p')
if [ -n "$out" ]; then
  mkdir -p "$out"
  cp "$samples" "$out/soak-samples.csv"
  cp "$NSL_TMP/recv.json" "$out/soak-receiver.json"
fi
if [ "$check" = 1 ]; then
  fail=0
  [ "$leaked" -eq 0 ] || { nsl_log "FAIL: $leaked SAs leaked"; fail=1; }
  [ "$missing_sas" -eq 0 ] || { nsl_log "FAIL: $missing_sas child SAs missing while running at the end"; fail=1; }
  [ "$rekeys_child" -ge "$tunnels" ] || { nsl_log "FAIL: only $rekeys_child child rekeys"; fail=1; }
  [ "$lost" -eq 0 ] && [ "$dups" -eq 0 ] || { nsl_log "FAIL: $lost datagrams lost, $dups duplicated"; fail=1; }
  [ "$sent" -gt 0 ] || { nsl_log "FAIL: nothing sent"; fail=1; }
  [ "${growth:-0}" -le 16384 ] || { nsl_log "FAIL: RSS grew by ${growth} KiB"; fail=1; }
  [ "$fail" = 0 ] || exit 1
  nsl_log "ok: soak check passed"
fi
