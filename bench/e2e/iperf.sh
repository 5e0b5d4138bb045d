#!/usr/bin/env bash
# iperf3 TCP Gbps hA -> hB through the gateway pair (nsl_topo_pair: hA — gwA
# — wan — gwB — hB, offloads off on the gateways), four contenders in one run
# through the same namespaces, rounds alternating (the machine is shared and
# noisy):
#   esp      ESP AES-128-GCM tunnel through espresso's dataplanes
#   esp_udp  the same in UDP 4500 (RFC 3948): strongSwan's wire format below
#   clear    cleartext (bypass policy) through the same espresso dataplanes
#   kernel   kernel forwarding on the gateways (no IPsec)
#   swan     a strongSwan 5.9.8 pair (charon + kernel-libipsec, userspace ESP,
#            IKEv2 PSK, ESP AES-128-GCM-16 in UDP 4500 as libipsec always
#            does), the recipe of /work/shared/docs/interop/strongswan-notes.md
# Each figure is the median of its rounds (all rounds are printed). For the
# espresso contenders the CPU time of both dataplane processes during the
# iperf3 run (utime + stime: the kernel work a veth does in the sending
# worker's context included) gives Gbit per CPU-second, a figure that the
# machine's load moves far less than Gbps; for strongSwan the same from both
# charon processes (all threads; the kernel forwarding and veth work its TUN
# writes and UDP sends do in their context included, as for espresso).
# Each round also prints iperf3's own CPU use (client, server): near 100 %
# the generator or the sink is the bottleneck, not the gateways. A run
# that fails (iperf3 error, no tunnel) fails the benchmark: it never counts
# as 0 Gbps.
#   espresso dataplanes: gwA on CPU 0, gwB on CPU 1, --idle backoff.
#   Lines: iperf3_esp_vs_clear, iperf3_clear_vs_kernel, iperf3_esp_vs_kernel,
#   iperf3_esp_vs_strongswan, iperf3_espudp_vs_strongswan, iperf3_espudp_vs_esp,
#   iperf3_cpu_esp_vs_clear, iperf3_cpu_esp_vs_strongswan,
#   iperf3_cpu_espudp_vs_strongswan.
# Env: DUR (iperf3 seconds, default 10), REPS (rounds, default 3),
#      CONTENDERS (default "kernel esp clear esp_udp swan"; with BASE_DP
#      also esp_base, clear_base and esp_udp_base),
#      BASE_DP (another espresso-dataplane binary, e.g. a build of the
#      previous commit: esp_base and clear_base run through it in the same
#      alternating rounds, for before/after ratios measured in one run),
#      PERF_DIR (profile both gateways' processes with perf record during
#      the espresso and strongSwan runs: PERF_DIR/<label>-gw{A,B}-<round>.data),
#      PERF_ALL=1 (with PERF_DIR: also both CPUs, <label>-all-<round>.data).
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/netns.sh
DUR="${DUR:-10}"
REPS="${REPS:-3}"
BASE_DP="${BASE_DP:-}"
if [ -n "$BASE_DP" ]; then
  [ -x "$BASE_DP" ] || { echo "BASE_DP=$BASE_DP is not an executable" >&2; exit 2; }
  CONTENDERS="${CONTENDERS:-kernel esp esp_base clear clear_base esp_udp esp_udp_base swan}"
else
  CONTENDERS="${CONTENDERS:-kernel esp clear esp_udp swan}"
fi
nsl_init iperf
nsl_topo_pair
KAB=0x$(python3 -c 'import os;print(os.urandom(20).hex())')
KBA=0x$(python3 -c 'import os;print(os.urandom(20).hex())')
for s in a b; do
  python3 tests/lib/static_sa.py "$NSL_TMP/$s.sa" --side $s --key-ab "$KAB" --key-ba "$KBA"
  python3 tests/lib/static_sa.py "$NSL_TMP/${s}_bypass.sa" --side $s --bypass
  python3 tests/lib/static_sa.py "$NSL_TMP/${s}_udp.sa" --side $s --key-ab "$KAB" --key-ba "$KBA" --encap-udp
done
echo "# $(date -u +%FT%TZ) CPU: $(lscpu | sed -nE 's/^Model name: *//p'), $(nproc) vCPUs, load average $(cut -d' ' -f1-3 /proc/loadavg); DUR=$DUR REPS=$REPS"

# iperf_run LABEL: sets GBPS and RETR; fails the benchmark if iperf3 fails.
# (Called directly, never in a subshell: the processes it starts must stay
# known to the cleanup trap.)
iperf_run() {
  local label=$1 port=$(( 5201 + RANDOM % 1000 ))
  nsl_bg "$NS_HB" "iperf3s_${label}_$port" iperf3 -s -1 -B 10.2.0.2 -p "$port"
  local srv=$NSL_PID i
  # Wait until it listens (a fixed 0.5 s was not enough at load 19).
  for i in $(seq 1 100); do
    ip netns exec "$NS_HB" ss -Hltn "sport = :$port" | grep -q . && break
    sleep 0.1
  done
  if ! nsl_x "$NS_HA" iperf3 -c 10.2.0.2 -p "$port" -t "$DUR" -J >"$NSL_TMP/iperf_${label}_$port.json"; then
    nsl_stop "$srv"
    nsl_die "iperf3 through $label failed: $(head -c 400 "$NSL_TMP/iperf_${label}_$port.json")"
  fi
  nsl_stop "$srv"
  python3 - "$NSL_TMP/iperf_${label}_$port.json" "$label" >"$NSL_TMP/iperf.res" <<'PY' ||
import json, sys
d = json.load(open(sys.argv[1]))
if "error" in d:
    sys.exit("iperf3 through %s: %s" % (sys.argv[2], d["error"]))
e = d["end"]
g = e["sum_received"]["bits_per_second"] / 1e9
if g <= 0:
    sys.exit("iperf3 through %s received nothing" % sys.argv[2])
u = e.get("cpu_utilization_percent", {})
print("%.3f %d %.0f %.0f" % (g, e["sum_sent"].get("retransmits", 0),
                             u.get("host_total", -1), u.get("remote_total", -1)))
PY
    nsl_die "iperf3 through $label: no valid result"
  read -r GBPS RETR CCPU SCPU <"$NSL_TMP/iperf.res"
}

# cpu_ticks PID...: utime + stime of the processes, in clock ticks.
cpu_ticks() {
  local p t=0 f
  for p in "$@"; do
    f=$(cut -d')' -f2- "/proc/$p/stat") || nsl_die "process $p is gone"
    t=$(( t + $(echo "$f" | awk '{print $12 + $13}') ))
  done
  echo "$t"
}

# sleeps PID: voluntary context switches of all the process's threads (a
# worker with --idle backoff sleeps in poll(2) when its rings are empty).
sleeps() {
  local f t=0
  for f in /proc/"$1"/task/*/status; do
    t=$(( t + $(awk '/^voluntary_ctxt_switches/ {print $2}' "$f") ))
  done
  echo "$t"
}
# rx_pkts NAME: packets the dataplane NAME received (its counters file).
rx_pkts() { nsl_stat "$1" "sum(w['rx'] for w in s['workers'])"; }

# gbit_per_cpu_s TICKS0 TICKS1: Gbit transferred (GBPS over DUR) per
# CPU-second of the gateway processes.
gbit_per_cpu_s() {
  python3 -c "import os,sys; t=(int(sys.argv[2])-int(sys.argv[1]))/os.sysconf('SC_CLK_TCK'); print('%.3f' % (float(sys.argv[3]) * $DUR / t) if t > 0 else 'nan')" "$1" "$2" "$GBPS"
}

# perf_start LABEL PID_A PID_B: with PERF_DIR, perf record on both gateway
# processes (PERF_DIR/<label>-gw{A,B}-<round>.data) and, with PERF_ALL=1,
# on both CPUs (<label>-all-<round>.data: the iperf3 ends, softirqs and
# whatever else shares the machine). The caller declares `local perfs=()`.
perf_start() {
  [ -n "${PERF_DIR:-}" ] || return 0
  mkdir -p "$PERF_DIR"
  local label=$1 g p
  for g in A B; do
    p=$2; [ "$g" = B ] && p=$3
    perf record -q -g -o "$PERF_DIR/$label-gw$g-$ROUND.data" -p "$p" >/dev/null 2>&1 &
    perfs+=($!)
    NSL_PIDS+=($!)
  done
  if [ "${PERF_ALL:-0}" = 1 ]; then
    perf record -q -g -a -o "$PERF_DIR/$label-all-$ROUND.data" >/dev/null 2>&1 &
    perfs+=($!)
    NSL_PIDS+=($!)
  fi
}
perf_stop() {
  local q
  for q in "${perfs[@]}"; do kill -INT "$q" 2>/dev/null || true; wait "$q" 2>/dev/null || true; done
}

ping_ok() {
  local i
  for i in 1 2 3 4 5; do
    nsl_x "$NS_HA" ping -c 1 -W 1 10.2.0.2 >/dev/null 2>&1 && return 0
    sleep 0.3
  done
  return 1
}

forwarding() { # on|off
  local v=0 n
  [ "$1" = on ] && v=1
  for n in "$NS_GWA" "$NS_GWB"; do
    ip netns exec "$n" sysctl -qw net.ipv4.ip_forward=$v
    ip netns exec "$n" sysctl -qw net.ipv6.conf.all.forwarding=$v
  done
}

run_kernel() {
  forwarding on
  ping_ok || nsl_die "no connectivity through kernel forwarding"
  iperf_run kernel
  forwarding off
}

# espresso dataplanes with static SAs ($1: "" for ESP, _bypass for
# cleartext; $3: the dataplane binary, default the one under test).
run_espresso() {
  local sfx=$1 label=$2 bin=${3:-${ESPRESSO_DP_BIN:-${ESPRESSO_TARGET:-target/release}/espresso-dataplane}}
  local na="gwA${sfx}_$RANDOM" nb="gwB${sfx}_$RANDOM"
  ESPRESSO_DP_BIN=$bin nsl_dataplane "$NS_GWA" "$na" --cores 0 --idle backoff --static-sa "$NSL_TMP/a$sfx.sa"; local pa=$NSL_PID
  ESPRESSO_DP_BIN=$bin nsl_dataplane "$NS_GWB" "$nb" --cores 1 --idle backoff --static-sa "$NSL_TMP/b$sfx.sa"; local pb=$NSL_PID
  ping_ok || nsl_die "no connectivity through espresso ($label)"
  local perfs=()
  perf_start "$label" "$pa" "$pb"
  local c0 c1 w0a w0b r0a r0b
  c0=$(cpu_ticks "$pa" "$pb")
  w0a=$(sleeps "$pa"); w0b=$(sleeps "$pb"); r0a=$(rx_pkts "$na"); r0b=$(rx_pkts "$nb")
  iperf_run "$label"
  c1=$(cpu_ticks "$pa" "$pb")
  sleep 0.3 # one more counters file
  WAKES="gwA $(( $(rx_pkts "$na") - r0a )) packets in $(( $(sleeps "$pa") - w0a )) sleeps, gwB $(( $(rx_pkts "$nb") - r0b )) in $(( $(sleeps "$pb") - w0b ))"
  EFF=$(gbit_per_cpu_s "$c0" "$c1")
  perf_stop
  nsl_stop "$pa"; nsl_stop "$pb"
}

# --- strongSwan pair (both gateways) ---------------------------------------
SW_CHARON=/usr/lib/ipsec/charon
SW_PSK="espresso-bench-psk-$(python3 -c 'import os;print(os.urandom(8).hex())')"
sw_conf() { # DIR LOCAL REMOTE LOCAL_TS REMOTE_TS
  local d=$1
  mkdir -p "$d/run" "$d/swanctl"
  cat >"$d/strongswan.conf" <<EOF
charon {
    load_modular = no
    load = random nonce openssl pem pkcs1 x509 pubkey aes sha1 sha2 hmac gcm kdf drbg kernel-libipsec! kernel-netlink socket-default vici updown
    install_routes = yes
    routing_table = 220
    routing_table_prio = 220
    filelog {
        main {
            path = $d/charon.log
            time_format = %T
            default = 1
        }
    }
    plugins {
        vici {
            socket = unix://$d/run/charon.vici
        }
    }
}
swanctl {
    socket = unix://$d/run/charon.vici
    load = pem pkcs1 x509 pubkey openssl random
}
EOF
  cat >"$d/swanctl/swanctl.conf" <<EOF
connections {
    gw {
        version = 2
        local_addrs = $2
        remote_addrs = $3
        proposals = aes128gcm16-prfsha256-ecp256
        mobike = no
        local {
            auth = psk
            id = $2
        }
        remote {
            auth = psk
            id = $3
        }
        children {
            net {
                mode = tunnel
                local_ts = $4
                remote_ts = $5
                esp_proposals = aes128gcm16
            }
        }
    }
}
secrets {
    ike-gw {
        id-a = 192.0.2.1
        id-b = 192.0.2.2
        secret = "$SW_PSK"
    }
}
EOF
}
swc_in() { # NS DIR swanctl-args...
  local n=$1 d=$2; shift 2
  ip netns exec "$n" env STRONGSWAN_CONF="$d/strongswan.conf" SWANCTL_DIR="$d/swanctl" swanctl "$@"
}
sw_start_in() { # NS DIR: starts charon, sets NSL_PID
  local n=$1 d=$2 i
  rm -f "$d/run/charon.vici" "$d/run/charon.pid"
  nsl_bg "$n" "charon_$(basename "$d")_$RANDOM" unshare --mount --propagation private \
    sh -c "mount --bind '$d/run' /run && exec env STRONGSWAN_CONF='$d/strongswan.conf' $SW_CHARON"
  local pid=$NSL_PID
  for i in $(seq 1 100); do [ -S "$d/run/charon.vici" ] && break; sleep 0.1; done
  [ -S "$d/run/charon.vici" ] || nsl_die "charon in $n did not start"
  for i in $(seq 1 50); do [ "$(cat /proc/$pid/comm 2>/dev/null)" = charon ] && break; sleep 0.1; done
  [ "$(cat /proc/$pid/comm 2>/dev/null)" = charon ] || nsl_die "PID $pid is not charon"
  swc_in "$n" "$d" --load-all >"$d/load.log" 2>&1 || nsl_die "swanctl --load-all in $n: $(cat "$d/load.log")"
  NSL_PID=$pid
}
run_swan() {
  [ -x "$SW_CHARON" ] && [ -e /usr/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so ] ||
    nsl_die "strongSwan with kernel-libipsec missing (scripts/setup.sh installs it)"
  local da="$NSL_TMP/swA" db="$NSL_TMP/swB"
  sw_conf "$da" 192.0.2.1 192.0.2.2 10.1.0.0/24 10.2.0.0/24
  sw_conf "$db" 192.0.2.2 192.0.2.1 10.2.0.0/24 10.1.0.0/24
  forwarding on
  local n
  for n in "$NS_GWA" "$NS_GWB"; do
    ip netns exec "$n" sysctl -qw net.ipv4.conf.all.rp_filter=0
    ip netns exec "$n" sysctl -qw net.ipv4.conf.default.rp_filter=0
  done
  sw_start_in "$NS_GWB" "$db"; local pb=$NSL_PID
  sw_start_in "$NS_GWA" "$da"; local pa=$NSL_PID
  swc_in "$NS_GWA" "$da" --initiate --child net --timeout 10 >"$da/initiate.log" 2>&1 ||
    nsl_die "strongSwan pair: initiate failed: $(tail -5 "$da/initiate.log")"
  swc_in "$NS_GWA" "$da" --list-sas 2>/dev/null | grep -q "INSTALLED, TUNNEL" ||
    nsl_die "strongSwan pair: no CHILD_SA installed"
  ping_ok || nsl_die "no connectivity through the strongSwan pair"
  local perfs=()
  perf_start swan "$pa" "$pb"
  local c0 c1
  c0=$(cpu_ticks "$pa" "$pb")
  iperf_run swan
  c1=$(cpu_ticks "$pa" "$pb")
  EFF=$(gbit_per_cpu_s "$c0" "$c1")
  perf_stop
  # The traffic really went through libipsec: its CHILD_SA counted the bytes.
  swc_in "$NS_GWA" "$da" --list-sas 2>/dev/null | grep -qE "out [0-9a-f]+, +[1-9][0-9]* bytes" ||
    nsl_die "strongSwan pair: no bytes through the CHILD_SA"
  nsl_stop "$pa"; nsl_stop "$pb"
  forwarding off
}

declare -A G=() R=() E=()
for r in $(seq 1 "$REPS"); do
  ROUND=$r
  for c in $CONTENDERS; do
    GBPS= RETR= EFF= WAKES=
    case "$c" in
      kernel) run_kernel ;;
      esp) run_espresso "" esp ;;
      clear) run_espresso _bypass clear ;;
      esp_udp) run_espresso _udp esp_udp ;;
      esp_udp_base) run_espresso _udp esp_udp_base "$BASE_DP" ;;
      esp_base) run_espresso "" esp_base "$BASE_DP" ;;
      clear_base) run_espresso _bypass clear_base "$BASE_DP" ;;
      swan) run_swan ;;
      *) nsl_die "unknown contender $c" ;;
    esac
    [ -n "$GBPS" ] || nsl_die "$c: no result"
    G[$c]="${G[$c]:-} $GBPS"; R[$c]="${R[$c]:-} $RETR"; [ -z "${EFF:-}" ] || E[$c]="${E[$c]:-} $EFF"
    nsl_log "round $r $c: $GBPS Gbps ($RETR retransmits)${EFF:+, $EFF Gbit per gateway CPU-second}; iperf3 CPU: client $CCPU %, server $SCPU %${WAKES:+; $WAKES}"
  done
done
for c in $CONTENDERS; do echo "# $c Gbps per round:${G[$c]} (retransmits:${R[$c]})${E[$c]:+; Gbit per gateway CPU-second:${E[$c]}}"; done
python3 - "${G[esp]:-}" "${G[clear]:-}" "${G[kernel]:-}" "${G[swan]:-}" "${G[esp_base]:-}" "${G[clear_base]:-}" "$BASE_DP" "${G[esp_udp]:-}" "${G[esp_udp_base]:-}" <<'PY'
import statistics, sys
med = lambda s: statistics.median(float(x) for x in s.split()) if s.strip() else None
e, c, k, s, eb, cb = (med(a) for a in sys.argv[1:7])
eu, eub = med(sys.argv[8]), med(sys.argv[9])
def line(name, o, ref, what):
    if o is not None and ref:
        print("%s: ours %.3f Gbps, reference %.3f Gbps (%s), ratio %.2f" % (name, o, ref, what, o / ref))
line("iperf3_esp_vs_clear", e, c, "cleartext, same dataplanes")
line("iperf3_clear_vs_kernel", c, k, "kernel forwarding, offloads off")
line("iperf3_esp_vs_kernel", e, k, "kernel forwarding, cleartext")
line("iperf3_esp_vs_strongswan", e, s, "strongSwan 5.9.8 libipsec pair, AES-128-GCM")
line("iperf3_espudp_vs_strongswan", eu, s, "strongSwan 5.9.8 libipsec pair, AES-128-GCM, both in UDP 4500")
line("iperf3_espudp_vs_esp", eu, e, "ESP without UDP, same dataplanes")
line("iperf3_esp_vs_base", e, eb, "ESP through BASE_DP %s" % sys.argv[7])
line("iperf3_clear_vs_base", c, cb, "cleartext through BASE_DP %s" % sys.argv[7])
line("iperf3_base_esp_vs_clear", eb, cb, "BASE_DP: ESP vs cleartext")
line("iperf3_espudp_vs_base", eu, eub, "ESP in UDP through BASE_DP %s" % sys.argv[7])
PY
python3 - "${E[esp]:-}" "${E[clear]:-}" "${E[esp_base]:-}" "${E[clear_base]:-}" "$BASE_DP" "${E[swan]:-}" "${E[esp_udp]:-}" "${E[esp_udp_base]:-}" <<'PY'
import statistics, sys
med = lambda s: statistics.median(float(x) for x in s.split()) if s.strip() else None
e, c, eb, cb = (med(a) for a in sys.argv[1:5])
s, eu, eub = med(sys.argv[6]), med(sys.argv[7]), med(sys.argv[8])
def line(name, o, ref, what):
    if o is not None and ref:
        print("%s: ours %.3f Gbit per CPU-second, reference %.3f Gbit per CPU-second (%s), ratio %.2f" % (name, o, ref, what, o / ref))
line("iperf3_cpu_esp_vs_clear", e, c, "cleartext, same dataplanes, both gateways' CPU time")
line("iperf3_cpu_esp_vs_strongswan", e, s, "strongSwan libipsec pair, both charon processes' CPU time")
line("iperf3_cpu_espudp_vs_strongswan", eu, s, "strongSwan libipsec pair, both in UDP 4500, both charon processes' CPU time")
line("iperf3_cpu_esp_vs_base", e, eb, "ESP through BASE_DP %s" % sys.argv[5])
line("iperf3_cpu_clear_vs_base", c, cb, "cleartext through BASE_DP %s" % sys.argv[5])
line("iperf3_cpu_base_esp_vs_clear", eb, cb, "BASE_DP: ESP vs cleartext")
line("iperf3_cpu_espudp_vs_base", eu, eub, "ESP in UDP through BASE_DP %s" % sys.argv[5])
PY
