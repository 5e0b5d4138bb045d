#!/usr/bin/env bash
# ESP that arrives before its SA is installed (session 7: worker/spihold.rs,
# the shared-memory ExpectSpi command) against strongSwan 5.9.8 (charon +
# kernel-libipsec, IKEv2, its default configuration otherwise):
#
#   hA 10.1.0.2 — gwA (espresso) — gwB (charon) — hB 10.2.0.2
#
#   1. hB sends numbered UDP to hA at 100 datagrams/s; until the child SA
#      exists gwB drops it (no cleartext between the sites). espresso
#      initiates; strongSwan installs the child before it answers IKE_AUTH
#      and sends ESP on it at once; its first answer is dropped on gwB's way
#      out (nft), so espresso installs the SA only on the answer to its
#      retransmission, 4 s later: ESP for the inbound SPI espresso announced
#      reaches the dataplane all that time. Asserted: the dataplane held
#      packets and released some to decapsulation once the SA was installed
#      (status and metrics; held = released + held too long, 200 ms, and
#      dropped as unknown_spi_held_expired); every packet the inbound SA
#      decapsulated reached hA, and hA got every datagram from the first one
#      that crossed on (the only ones missing are a prefix: before
#      strongSwan had the SA, and held too long).
#   2. A flood of ESP for SPIs nobody announced (scapy, 3000 packets from
#      gwB): every one a counted unknown_spi drop, none held.
# Root; about 25 s.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/netns.sh
source tests/lib/control.sh
source tests/lib/strongswan.sh
nsl_init espheld
command -v nft >/dev/null || nsl_die "nft missing"
python3 -c 'import scapy' 2>/dev/null || nsl_die "scapy missing (python3-scapy)"
nsl_topo_pair
sw_setup
passed=0
pass() { nsl_log "ok: $*"; passed=$((passed + 1)); }

mkdir -p "$NSL_TMP/A"
( umask 077; printf 'psk = "%s"\n' "$SW_PSK" >"$NSL_TMP/A/sw.psk" )
cat >"$NSL_TMP/A/espresso.toml" <<CONF
[daemon]
shm = "$NSL_TMP/A/region.shm"
socket = "$NSL_TMP/A/espresso.sock"
metrics = "127.0.0.1:9715"

[[connection]]
name = "sw"
left = "192.0.2.1"
right = "192.0.2.2"
leftsubnet = "10.1.0.0/24"
rightsubnet = "10.2.0.0/24"
secrets = "sw.psk"
ike = "aes128gcm16-prfsha256-ecp256"
esp = "aes128gcm16"
pfs = false
auto = "none"
CONF
sw_write_conf "aes128gcm16-prfsha256-ecp256" "aes128gcm16" child.start_action=none
sw_start
ctl_dataplane A
ctl_daemon A
# no cleartext between the sites while there is no child SA (strongSwan's
# ESP leaves from gwB itself, not through its forward path)
nsl_x "$NS_GWB" nft -f - <<'NFT'
table ip espresso_test_held {
  chain gate {
    type filter hook forward priority filter; policy accept;
    oifname "wan" ip daddr 10.1.0.0/24 counter drop
  }
}
NFT
# strongSwan's first IKE_AUTH answer (exchange type 35, response flag; on
# port 500 or, after the non-ESP marker, 4500) is dropped on its way out: espresso installs the child SA
# only when its retransmission (4 s later) brings the answer again, while
# strongSwan sends ESP on the child from its first answer on
nsl_x "$NS_GWB" nft -f - <<'NFT'
table ip espresso_test_auth {
  chain out {
    type filter hook output priority filter; policy accept;
    ip saddr 192.0.2.2 udp sport 500 @th,208,8 35 @th,216,8 & 0x20 == 0x20 counter drop
    ip saddr 192.0.2.2 udp sport 4500 @th,64,32 0 @th,240,8 35 @th,248,8 & 0x20 == 0x20 counter drop
  }
}
NFT

w() { ctl_field A "sum(w.get('$1', 0) for w in s['workers'])"; }
wd() { ctl_field A "sum(w['drops_by_reason'].get('$1', 0) for w in s['workers'])"; }

# ---- 1. ESP before the SA, held and released
# hA not resolved at gwA yet: the released burst (up to 32 packets) meets
# an unresolved next hop and must wait whole in its queue (one receive
# burst; with 16 the rest was lost as neighbour_queue_full, and the check
# below that every decapsulated packet reached hA failed)
COUNT=1000
FPORT=$(( 20000 + RANDOM % 20000 ))
nsl_bg "$NS_HA" recvA python3 tests/lib/udp_seq.py recv 10.1.0.2 "$FPORT" "$NSL_TMP/ba.json" 3
for _ in $(seq 1 100); do
  [ -n "$(ip netns exec "$NS_HA" ss -Huln "sport = :$FPORT")" ] && break
  sleep 0.1
done
[ -n "$(ip netns exec "$NS_HA" ss -Huln "sport = :$FPORT")" ] || nsl_die "receiver in hA not listening on $FPORT"
nsl_bg "$NS_HB" sendB python3 tests/lib/udp_seq.py send 10.1.0.2 "$FPORT" "$COUNT" 0.01 200
SEND_B=$NSL_PID
sleep 1
up=$(ctl A up sw)
grep -q "sw: initiating" <<<"$up" || nsl_die "up sw: $up"
dropped=0
for _ in $(seq 1 200); do
  nsl_x "$NS_GWB" nft list chain ip espresso_test_auth out | grep -q "packets [1-9]" && { dropped=1; break; }
  sleep 0.025
done
[ "$dropped" = 1 ] || nsl_die "strongSwan's IKE_AUTH answer never came"
nsl_x "$NS_GWB" nft delete table ip espresso_test_auth
[ "$(ctl_field A "t('sw')['state']")" != up ] || nsl_die "espresso installed the child without strongSwan's answer"
ctl_wait_state A sw up 20
wait "$SEND_B" 2>/dev/null || true
nsl_wait_file "$NSL_TMP/ba.json" 30 || nsl_die "receiver in hA wrote no result"
held=$(w esp_held)
released=$(w esp_held_released)
expired=$(wd unknown_spi_held_expired)
r=$(python3 -c '
import json,sys
d=json.load(open(sys.argv[1]))
rng=d["missing_ranges"]
prefix = rng[0][1] if rng and rng[0][0] == 0 else -1
print(d["expected"], d["unique"], d["missing_count"], prefix, len(rng))' "$NSL_TMP/ba.json")
read -r exp uniq miss prefix nranges <<<"$r"
nsl_log "hB -> hA: expected $exp, received $uniq, missing $miss (a prefix of $((prefix + 1)), $nranges run(s)); dataplane: esp held $held, released $released, held and expired $expired"
ctl A status | grep '^worker' >&2 || true
[ "$held" -ge 1 ] || nsl_die "no ESP held before its SA (strongSwan's ESP did not arrive before the IKE_AUTH answer?): drops $(ctl_field A "[w['drops_by_reason'] for w in s['workers']]")"
[ "$released" -ge 1 ] && [ "$held" = $((released + expired)) ] ||
  nsl_die "held ESP: held $held, released $released, expired $expired (want released >= 1, held = released + expired)"
[ "$uniq" -ge 1 ] || nsl_die "nothing crossed the tunnel"
# only a prefix is missing (before the SA at strongSwan): from the first
# datagram that crossed on, none lost
[ "$miss" = 0 ] || { [ "$nranges" = 1 ] && [ "$miss" = $((prefix + 1)) ]; } ||
  nsl_die "datagrams lost after the first one crossed: $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["missing_ranges"][:10])' "$NSL_TMP/ba.json")"
# every packet the inbound SA decapsulated (the released ones among them)
# reached hA
sa_in=$(ctl_field A "t('sw')['inbound']['packets']")
[ "$sa_in" = "$uniq" ] || nsl_die "inbound SA decapsulated $sa_in packets, hA received $uniq; gwA drops $(ctl_field A "[w['drops_by_reason'] for w in s['workers']]")"
nheld=$(w neighbour_held)
[ "$nheld" -ge 1 ] || nsl_die "no packet waited for hA's address at gwA: the release did not meet an unresolved next hop"
m=$(ctl_metrics A)
grep -q "espresso_worker_esp_held_total{worker=\"0\",event=\"held\"} $held\$" <<<"$m" ||
  nsl_die "metrics: $(grep espresso_worker_esp_held <<<"$m")"
grep -q "espresso_worker_esp_held_total{worker=\"0\",event=\"released\"} $released\$" <<<"$m" ||
  nsl_die "metrics: $(grep espresso_worker_esp_held <<<"$m")"
ctl A status | grep -q "esp before its SA: held $held, released $released" || nsl_die "status: no held-ESP counters: $(ctl A status | grep '^worker')"
pass "strongSwan's ESP before espresso installed the SA: $held held, $released released to decapsulation once the SA was in (decrypted, delivered: the inbound SA's $sa_in packets = hA's $uniq datagrams), $expired held longer than 200 ms and dropped; hB -> hA: only a prefix of $((prefix + 1)) missing (before strongSwan's SA and held too long); status and metrics show the counters"

# ---- 2. an unannounced SPI flood: counted unknown_spi drops, none held
FLOOD=3000
u0=$(wd unknown_spi)
nsl_x "$NS_GWB" python3 - "$FLOOD" <<'PY'
import random, sys
from scapy.all import IP, ESP, Raw, send, conf
conf.verb = 0
n = int(sys.argv[1])
pkts = [IP(src="192.0.2.2", dst="192.0.2.1") / ESP(spi=random.randrange(0x10000, 1 << 32), seq=1) / Raw(b"\x00" * 64) for _ in range(n)]
send(pkts, inter=0)
PY
u1=$u0
for _ in $(seq 1 50); do
  u1=$(wd unknown_spi)
  [ "$((u1 - u0))" -ge "$FLOOD" ] && break
  sleep 0.1
done
[ "$((u1 - u0))" = "$FLOOD" ] || nsl_die "flood of $FLOOD unannounced SPIs: unknown_spi $u0 -> $u1"
[ "$(w esp_held)" = "$held" ] || nsl_die "ESP for unannounced SPIs was held: esp held $held -> $(w esp_held)"
[ "$(wd unknown_spi_held_expired)" = "$expired" ] || nsl_die "held-and-expired drops during the flood: $expired -> $(wd unknown_spi_held_expired)"
pass "$FLOOD ESP packets for unannounced SPIs: $((u1 - u0)) unknown_spi drops, none held"

echo "45_esp_held_before_sa: $passed passed, 0 failed"
