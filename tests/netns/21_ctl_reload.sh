#!/usr/bin/env bash
# Reload: `reload lan4` with new SPIs on both gateways re-installs lan4 only;
# lan6's SAs are not touched (no new install in the dataplane) and its
# counters keep running, with a ping running through it all the time. Bad
# configurations (duplicate SPI, key file 0644, wrong key length) are refused
# with exit 3 and file:line field = value, and change nothing.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/netns.sh
source tests/lib/control.sh
nsl_init ctlrl
nsl_topo_pair
ctl_setup
ctl_dataplane A
ctl_dataplane B
ctl_daemon A
ctl_daemon B
for s in A B; do for t in lan4 lan6; do ctl_wait_state "$s" "$t" up; done; done
ctl_ping "$NS_HA" 10.2.0.2 3 >/dev/null || true
ctl_ping "$NS_HA" fd00:2::2 3 >/dev/null || true

# A ping through lan6 for the whole test.
nsl_bg "$NS_HA" ping6 ping -6 -i 0.05 -c 200 -W 1 fd00:2::2
ping6=$NSL_PID
sleep 0.5
l6_in=$(ctl_installs A 8194)
l6_pkts0=$(ctl_field A "t('lan6')['outbound']['packets']")

LAN4_SPI_AB=0x1101 LAN4_SPI_BA=0x1102
ctl_write_config A
ctl_write_config B
grep -q "lan4: reloaded" <<<"$(ctl A reload lan4)" || nsl_die "reload lan4 on A"
grep -q "lan4: reloaded" <<<"$(ctl B reload lan4)" || nsl_die "reload lan4 on B"
ctl_wait_state A lan4 up
[ "$(ctl_field A "t('lan4')['outbound']['spi_hex']")" = 0x1101 ] || nsl_die "lan4 new SPI not in use"
ctl_ping "$NS_HA" 10.2.0.2 2 >/dev/null || true
[ "$(ctl_ping "$NS_HA" 10.2.0.2 10)" -ge 9 ] || nsl_die "lan4 after reload"
sleep 0.3
l6_pkts1=$(ctl_field A "t('lan6')['outbound']['packets']")
[ "$l6_pkts1" -gt "$l6_pkts0" ] || nsl_die "lan6 counters did not keep running ($l6_pkts0 -> $l6_pkts1)"
[ "$(ctl_installs A 8194)" = "$l6_in" ] || nsl_die "lan6 re-installed by reload lan4"
nsl_log "ok: reload lan4 (new SPIs) leaves lan6 untouched ($l6_pkts0 -> $l6_pkts1 packets, no re-install)"

# Bad configurations change nothing.
good4="$NSL_TMP/A/tunnels/lan4.toml"
cp "$good4" "$NSL_TMP/lan4.good"
sed -i 's/^spi_in = .*/spi_in = 8194/' "$good4"
set +e
err=$(ctl A reload 2>&1); rc=$?
set -e
echo "$err"
[ "$rc" = 3 ] || nsl_die "duplicate SPI: exit $rc, want 3"
grep -q "$NSL_TMP/A/tunnels/lan[46].toml:[0-9]*: tunnel\[lan[46]\].spi_in = 0x2002: spi_in 0x2002 (8194) is already used" <<<"$err" \
  || nsl_die "duplicate SPI message"
cp "$NSL_TMP/lan4.good" "$good4"
chmod 644 "$NSL_TMP/A/tunnels/lan6.keys"
set +e
err=$(ctl A reload lan6 2>&1); rc=$?
set -e
[ "$rc" = 3 ] && grep -q "lan6.keys holds keys but has mode 0644" <<<"$err" || nsl_die "loose key file: $rc $err"
chmod 600 "$NSL_TMP/A/tunnels/lan6.keys"
sed -i 's/^enc_key_out = "0x\(.\{32\}\).*"/enc_key_out = "0x\1"/' "$NSL_TMP/A/tunnels/lan6.keys"
set +e
err=$(ctl A reload 2>&1); rc=$?
set -e
[ "$rc" = 3 ] && grep -q "lan6.keys:1: tunnel\[lan6\].enc_key_out = <16 bytes>: aes-gcm-128 needs a 20-byte key" <<<"$err" || nsl_die "short key: $rc $err"
nsl_log "ok: bad configurations refused with exit 3, file:line field = value"
sleep 0.3
[ "$(ctl_field A "t('lan4')['state']") $(ctl_field A "t('lan6')['state']")" = "up up" ] || nsl_die "tunnels changed by a refused reload"
[ "$(ctl_installs A 8194)" = "$l6_in" ] || nsl_die "lan6 re-installed by a refused reload"
[ "$(ctl_ping "$NS_HA" 10.2.0.2 5)" -ge 4 ] || nsl_die "lan4 broken by a refused reload"

wait "$ping6" || true
got=$(sed -n 's/.* \([0-9]*\) received.*/\1/p' "$NSL_TMP/ping6.log")
[ "${got:-0}" -ge 195 ] || nsl_die "lan6 ping lost packets during the reloads ($got/200)"
nsl_log "ok: lan6 carried $got/200 pings through every reload"
echo "21_ctl_reload: 5 passed, 0 failed"
