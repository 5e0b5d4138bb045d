#!/usr/bin/env bash
# IKEv1 engine (issue 12 phase A, no daemon yet) against strongSwan 5.9.8.
# control/examples/ikev1_probe runs the engine over UDP 500/4500 in gateway A
# of tests/lib/netns.sh's pair; charon (kernel-libipsec, which forces NAT-T:
# both sides float to 4500) runs in gateway B. Cases, each checked on both
# sides: main mode as initiator (AES-CBC+SHA-1 ESP with PFS, a quick-mode
# rekey, DPD, delete), main mode as initiator with AES-GCM ESP, aggressive
# mode with FQDN IDs as initiator, main and aggressive mode as responder
# (strongSwan initiates, then rekeys the quick-mode SA itself), a legacy
# 3des-md5-modp1024 proposal (refused without allow_legacy, working with it),
# DH groups 21/16/15/5 with AES-192 and SHA-384/512, single-host client IDs,
# ISAKMP re-authentication both ways, and a mismatched proposal explained
# with both sides' lists. tshark decrypts every encrypted IKEv1 message of
# the first case with the encryption key the probe exports.
# Keys: charon logs ESP keys at level 4 (chd = 4); every SA the probe would
# install must have the key and SPI charon derived for that direction.
# Usage (root): tests/interop/ikev1_strongswan.sh [case...]
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=../lib/netns.sh
source "$ROOT/tests/lib/netns.sh"
# shellcheck source=../lib/strongswan.sh
source "$ROOT/tests/lib/strongswan.sh"

PROBE="${ESPRESSO_TARGET:-$ROOT/target/ci}/examples/ikev1_probe"
[ -x "$PROBE" ] || { echo "build it: cargo build --profile ci -p espresso-control --example ikev1_probe" >&2; exit 1; }
nsl_init ikev1
nsl_topo_pair
sw_setup
# keys at level 4 (test use only); aggressive-mode PSK answered
sed -i 's/^\( *\)ike = 2$/\1ike = 4/; s/^\( *\)chd = 2$/\1chd = 4/' "$SW_DIR/strongswan.conf"
sed -i 's/^\( *\)load = random nonce openssl/\1i_dont_care_about_security_and_use_aggressive_mode_psk = yes\n\1load = random nonce openssl md5/' "$SW_DIR/strongswan.conf"
PSK=$SW_PSK
FAILS=0
ok() { nsl_log "ok: $*"; }
bad() { nsl_log "FAIL: $*"; FAILS=$((FAILS + 1)); }

# sw_conf IKE ESP AGGR(yes|no) A_ID B_ID [extra child lines]
sw_conf() {
  cat >"$SW_DIR/swanctl/swanctl.conf" <<EOC
connections {
    gw {
        version = 1
        aggressive = $3
        local_addrs = 192.0.2.2
        remote_addrs = 192.0.2.1
        proposals = $1
        rekey_time = 4h
        dpd_delay = 0
        local {
            auth = psk
            id = $5
        }
        remote {
            auth = psk
            id = $4
        }
        children {
            net {
                mode = tunnel
                local_ts = ${SW_LTS:-10.2.0.0/24}
                remote_ts = ${SW_RTS:-10.1.0.0/24}
                esp_proposals = $2
                rekey_time = 1h
$6
            }
        }
    }
}
secrets {
    ike-gw {
        id-a = $4
        id-b = $5
        secret = "$PSK"
    }
}
EOC
}

probe() { # LOGNAME args...  (foreground in gwA)
  local log=$1; shift
  ip netns exec "$NS_GWA" "$PROBE" --local 192.0.2.1 --remote 192.0.2.2 --psk "$PSK" \
    --local-subnet 10.1.0.0/24 --remote-subnet 10.2.0.0/24 "$@" >"$NSL_TMP/$log.log" 2>&1
}

# compare_keys PROBE_LOG CHARON_LOG_SINCE_LINE: every SA line of the probe has
# charon's key for the same SPI (charon's in = our out and back)
compare_keys() {
  SW_RESPONDER=$SW_RESPONDER python3 - "$1" "$2" "$3" <<'PY'
import os, re, sys
SW_RESPONDER = os.environ["SW_RESPONDER"] == "True"
probe, clog, since = sys.argv[1], sys.argv[2], int(sys.argv[3])
lines = open(clog, errors="replace").read().splitlines()[since:]
# chunks "label => N bytes @ 0x..." followed by hexdump rows
keys, cur, want, hexs = [], None, 0, ""
chunks = []
for l in lines:
    m = re.search(r"\] (.*?) => (\d+) bytes @", l)
    if m:
        cur, want, hexs = m.group(1), int(m.group(2)), ""
        if want == 0:
            chunks.append((cur, "")); cur = None
        continue
    if cur:
        m = re.search(r"\s(\d+): ((?:[0-9A-F]{2} ){1,16})", l + " ")
        if m:
            hexs += "".join(m.group(2).split())[: 2 * (want - len(hexs) // 2)]
            if len(hexs) // 2 >= want:
                chunks.append((cur, hexs.lower())); cur = None
            continue
        cur = None
    m = re.search(r"CHILD_SA net\{\d+\} established with SPIs ([0-9a-f]+)_i ([0-9a-f]+)_o", l)
    if m:
        chunks.append(("SPIS", m.group(1) + " " + m.group(2)))
# charon's children: keys then SPIs
sw = {}   # spi -> (enc, auth) for traffic carried with that SPI
pend = {}
init = None
for lab, v in chunks:
    if lab in ("encryption initiator key", "encryption responder key",
               "integrity initiator key", "integrity responder key"):
        pend[lab] = v
    if lab == "SPIS" and pend:
        spi_in, spi_out = v.split()
        pend_i = (pend.get("encryption initiator key", ""), pend.get("integrity initiator key", ""))
        pend_r = (pend.get("encryption responder key", ""), pend.get("integrity responder key", ""))
        sw[spi_in] = pend_i if SW_RESPONDER else pend_r
        sw[spi_out] = pend_r if SW_RESPONDER else pend_i
        pend = {}
ours = []
for l in open(probe):
    m = re.match(r"SA dir=(\w+) spi=([0-9a-f]+) suite=\S+ enc=([0-9a-f]*) auth=([0-9a-f]*)", l)
    if m:
        ours.append(m.groups())
bad = 0
for d, spi, enc, auth in ours:
    if spi not in sw:
        print(f"  SPI {spi} ({d}) unknown to charon"); bad += 1; continue
    if sw[spi] != (enc, auth):
        print(f"  SPI {spi} ({d}) keys differ: ours {enc}/{auth} charon {sw[spi]}"); bad += 1
print(f"  {len(ours)} SAs of the probe, {len(sw)} SPIs in charon's log, {bad} mismatches")
sys.exit(1 if bad or not ours else 0)
PY
}

sw_restart() { sw_stop; : >"$SW_DIR/charon.log"; sw_start; }
charon_lines() { wc -l <"$SW_DIR/charon.log"; }

run_case() {
  local c=$1 since rc=0
  nsl_log "=== case $c"
  case $c in
    main_cbc_initiator)
      sw_conf aes128-sha1-modp2048 aes128-sha1-modp2048 no 192.0.2.1 192.0.2.2 "                start_action = none"
      sw_restart; since=$(charon_lines)
      nsl_bg "$NS_GWA" "$c-tcpdump" tcpdump -i wan -n -U -s 0 -w "$NSL_TMP/$c.pcap" 'udp port 500 or udp port 4500'
      local td=$NSL_PID
      sleep 1
      probe "$c" --initiate --ike aes128-sha1-modp2048 --esp aes128-sha1-modp2048 \
        --rekey-after 1 --dpd 1 --delete-after 4 --seconds 12 --expect-children 2 || rc=1
      sleep 0.3; nsl_stop "$td"
      # tshark (Wireshark 4.0) decrypts both directions with our Ka: every
      # encrypted message must dissect cleanly with its HASH payload first
      local uat n_enc n_hash n_bad
      uat=$(sed -n 's/^IKEKEYS ic=\([0-9a-f]*\) ka=\([0-9a-f]*\)/\1,\2/p' "$NSL_TMP/$c.log" | head -1)
      tshark -r "$NSL_TMP/$c.pcap" -o "uat:ikev1_decryption_table:$uat" -Y 'isakmp.flags & 1' \
        -T fields -e isakmp.exchangetype -e isakmp.typepayload -e _ws.malformed -e _ws.expert.severity \
        >"$NSL_TMP/$c-tshark.txt" 2>&1
      n_enc=$(grep -cE '^[0-9]+\s' "$NSL_TMP/$c-tshark.txt")
      # main mode: ID then HASH; quick mode and informational: HASH first
      n_hash=$(awk -F'\t' '{ split($2, a, ","); if (($1 == 2 && a[1] == 5 && a[2] == 8) || ($1 != 2 && a[1] == 8)) n++ } END { print n + 0 }' "$NSL_TMP/$c-tshark.txt")
      n_bad=$(awk -F'\t' '$3 != "" || $4 ~ /(error|warn)/' "$NSL_TMP/$c-tshark.txt" | wc -l)
      if [ "$n_enc" -ge 10 ] && [ "$n_hash" = "$n_enc" ] && [ "$n_bad" = 0 ]; then
        ok "$c: tshark decrypted $n_enc encrypted IKEv1 messages with our Ka (ID/HASH first, none malformed)"
      else
        nsl_log "tshark: $n_enc encrypted, $n_hash with ID/HASH first, $n_bad malformed/expert"; head -20 "$NSL_TMP/$c-tshark.txt" >&2; rc=1
      fi
      grep -q "EVENT ChildRekeyed" "$NSL_TMP/$c.log" || rc=1
      grep -q "ChildEstablished.*encap: true" "$NSL_TMP/$c.log" || { nsl_log "no UDP encapsulation (libipsec fakes NAT)"; rc=1; }
      grep -q "received DELETE for ESP CHILD_SA" "$SW_DIR/charon.log" || { nsl_log "charon saw no ESP delete"; rc=1; }
      grep -q "received DELETE for IKE_SA" "$SW_DIR/charon.log" || { nsl_log "charon saw no ISAKMP delete"; rc=1; }
      grep -q "parsed INFORMATIONAL_V1 request .*N(DPD) \]" "$SW_DIR/charon.log" || { nsl_log "charon got no R-U-THERE"; rc=1; }
      grep -q "generating INFORMATIONAL_V1 request .*N(DPD_ACK) \]" "$SW_DIR/charon.log" || { nsl_log "charon sent no R-U-THERE-ACK"; rc=1; }
      grep -q "DpdDead" "$NSL_TMP/$c.log" && { nsl_log "the probe declared charon dead"; rc=1; }
      SW_RESPONDER=True ;;
    reauth_initiator)
      sw_conf aes128-sha1-modp2048 aes128-sha1-modp2048 no 192.0.2.1 192.0.2.2 "                start_action = none"
      sw_restart; since=$(charon_lines)
      probe "$c" --initiate --ike aes128-sha1-modp2048 --esp aes128-sha1-modp2048 \
        --reauth-after 1 --seconds 4 || rc=1
      grep -q "EVENT IkeRekeyed" "$NSL_TMP/$c.log" || { nsl_log "no re-authentication"; rc=1; }
      grep -q "detected reauth of existing IKE_SA, adopting 1 children" "$SW_DIR/charon.log" || { nsl_log "charon did not adopt the IPsec SA"; rc=1; }
      grep -q "received DELETE for IKE_SA" "$SW_DIR/charon.log" || { nsl_log "old ISAKMP SA not deleted"; rc=1; }
      swc --list-sas >"$NSL_TMP/$c-sas.log" 2>&1
      [ "$(grep -c "ESTABLISHED" "$NSL_TMP/$c-sas.log")" = 1 ] && grep -q INSTALLED "$NSL_TMP/$c-sas.log" || { nsl_log "charon after reauth: $(cat "$NSL_TMP/$c-sas.log")"; rc=1; }
      grep -q "^STATUS ESTABLISHED sa=.*children=1" "$NSL_TMP/$c.log" || { nsl_log "the IPsec SA did not move to the new ISAKMP SA"; rc=1; }
      [ "$(grep -c "^STATUS" "$NSL_TMP/$c.log")" = 1 ] || { nsl_log "the old ISAKMP SA is still there"; rc=1; }
      SW_RESPONDER=True ;;
    host_ids)
      # single hosts as client IDs (ID_IPV4_ADDR in quick mode). The gateways'
      # own WAN addresses cannot be used: libipsec refuses a route that
      # "conflicts with IKE traffic" and deletes the SA (the engine then
      # reports the peer's delete).
      SW_LTS=10.2.0.1/32 SW_RTS=10.1.0.1/32 sw_conf aes128-sha256-modp2048 aes128-sha256 no 192.0.2.1 192.0.2.2 "                start_action = none"
      sw_restart; since=$(charon_lines)
      ip netns exec "$NS_GWA" "$PROBE" --local 192.0.2.1 --remote 192.0.2.2 --psk "$PSK" --initiate \
        --local-subnet 10.1.0.1/32 --remote-subnet 10.2.0.1/32 \
        --ike aes128-sha256-modp2048 --esp aes128-sha256 --no-pfs --seconds 4 >"$NSL_TMP/$c.log" 2>&1 || rc=1
      grep -q 'local=10.1.0.1/32 remote=10.2.0.1/32' "$NSL_TMP/$c.log" || { nsl_log "not host selectors"; rc=1; }
      grep -q "ChildDeleted" "$NSL_TMP/$c.log" && { nsl_log "charon deleted the SA: $(grep -i 'unable\|conflict' "$SW_DIR/charon.log" | head -2)"; rc=1; }
      SW_RESPONDER=True ;;
    main_gcm_initiator)
      sw_conf aes128-sha256-ecp256 aes128gcm16 no 192.0.2.1 192.0.2.2 "                start_action = none"
      sw_restart; since=$(charon_lines)
      probe "$c" --initiate --ike aes128-sha256-ecp256 --esp aes128gcm16 --no-pfs --seconds 4 || rc=1
      SW_RESPONDER=True ;;
    aggr_initiator)
      sw_conf aes128-sha1-modp2048 aes128-sha1 yes @west.example.net @east.example.net "                start_action = none"
      sw_restart; since=$(charon_lines)
      probe "$c" --initiate --aggressive --local-id @west.example.net --remote-id @east.example.net \
        --ike aes128-sha1-modp2048 --esp aes128-sha1 --no-pfs --seconds 4 || rc=1
      SW_RESPONDER=True ;;
    main_responder|aggr_responder)
      local aggr=no ids=(192.0.2.1 192.0.2.2) pa=()
      [ "$c" = aggr_responder ] && { aggr=yes; ids=(@west.example.net @east.example.net); pa=(--aggressive --local-id @west.example.net --remote-id @east.example.net); }
      sw_conf aes128-sha1-modp2048 aes128-sha1-modp2048 "$aggr" "${ids[0]}" "${ids[1]}" "                start_action = none"
      sw_restart; since=$(charon_lines)
      ip netns exec "$NS_GWA" "$PROBE" --local 192.0.2.1 --remote 192.0.2.2 --psk "$PSK" \
        --local-subnet 10.1.0.0/24 --remote-subnet 10.2.0.0/24 "${pa[@]}" \
        --ike aes128-sha1-modp2048 --esp aes128-sha1-modp2048 --seconds 9 --expect-children 2 \
        >"$NSL_TMP/$c.log" 2>&1 &
      local ppid=$!
      sleep 0.5
      swc --initiate --child net --timeout 10 >"$NSL_TMP/$c-initiate.log" 2>&1 || { nsl_log "swanctl --initiate: $(tail -3 "$NSL_TMP/$c-initiate.log")"; rc=1; }
      sleep 1
      swc --rekey --child net >/dev/null 2>&1
      sleep 1
      swc --rekey --ike gw >/dev/null 2>&1     # IKEv1: charon re-authenticates
      sleep 2
      swc --list-sas >"$NSL_TMP/$c-sas.log" 2>&1
      grep -q "ESTABLISHED.*IKEv1" "$NSL_TMP/$c-sas.log" && grep -q INSTALLED "$NSL_TMP/$c-sas.log" || { nsl_log "charon: $(cat "$NSL_TMP/$c-sas.log")"; rc=1; }
      wait "$ppid" || rc=1
      grep -q "EVENT ChildRekeyed" "$NSL_TMP/$c.log" || { nsl_log "no rekey by charon seen"; rc=1; }
      [ "$(grep -c "EVENT IkeEstablished" "$NSL_TMP/$c.log")" = 2 ] || { nsl_log "no re-authentication by charon seen"; rc=1; }
      local newsa
      newsa=$(grep "EVENT IkeEstablished" "$NSL_TMP/$c.log" | sed -n '2s/.*sa: \([0-9]*\),.*/\1/p')
      grep -q "^STATUS ESTABLISHED sa=$newsa .*children=[1-9]" "$NSL_TMP/$c.log" || { nsl_log "IPsec SAs not adopted by the new ISAKMP SA $newsa"; rc=1; }
      SW_RESPONDER=False ;;
    groups_a|groups_b)
      # DH groups 21 (P-521) / 16 (MODP-4096) in phase 1, 15 / 5 for PFS,
      # AES-256/192, SHA-512/384, AES-GCM-256 ESP
      local ike esp extra=()
      if [ "$c" = groups_a ]; then ike=aes256-sha512-ecp521; esp=aes256gcm16-modp3072
      else ike=aes192-sha384-modp4096; esp=aes256-sha384-modp1536; extra=(--allow-legacy); fi
      sw_conf "$ike" "$esp" no 192.0.2.1 192.0.2.2 "                start_action = none"
      sw_restart; since=$(charon_lines)
      probe "$c" --initiate --ike "$ike" --esp "$esp" "${extra[@]}" --seconds 4 || rc=1
      grep -q "^STATUS ESTABLISHED .*proposal=$ike" "$NSL_TMP/$c.log" || { nsl_log "phase 1 not $ike"; rc=1; }
      SW_RESPONDER=True ;;
    legacy)
      sw_conf 3des-md5-modp1024 3des-md5 no 192.0.2.1 192.0.2.2 "                start_action = none"
      sw_restart; since=$(charon_lines)
      if probe "$c-refused" --initiate --ike 3des-md5-modp1024 --esp 3des-md5 --seconds 2; then
        nsl_log "legacy proposal accepted without allow_legacy"; rc=1
      fi
      grep -q "allow_legacy" "$NSL_TMP/$c-refused.log" || { nsl_log "refusal does not name allow_legacy"; rc=1; }
      probe "$c" --initiate --allow-legacy --ike 3des-md5-modp1024 --esp 3des-md5 --no-pfs --seconds 4 || rc=1
      SW_RESPONDER=True ;;
    mismatch)
      sw_conf aes256-sha512-modp4096 aes256-sha512 no 192.0.2.1 192.0.2.2 "                start_action = none"
      sw_restart; since=$(charon_lines)
      probe "$c-us" --initiate --ike aes128-sha1-modp2048 --esp aes128-sha1 --seconds 3 && rc=1
      grep -q "ProposalMismatch" "$NSL_TMP/$c-us.log" || { nsl_log "no mismatch event as initiator"; rc=1; }
      # charon initiates with its proposal: we answer NO-PROPOSAL-CHOSEN and list both
      ip netns exec "$NS_GWA" "$PROBE" --local 192.0.2.1 --remote 192.0.2.2 --psk "$PSK" \
        --ike aes128-sha1-modp2048 --esp aes128-sha1 --seconds 3 >"$NSL_TMP/$c-them.log" 2>&1 &
      local ppid=$!
      sleep 0.5
      swc --initiate --child net --timeout 3 >/dev/null 2>&1
      wait "$ppid"
      grep -q 'ProposalMismatch.*offered: \["aes256-sha512-modp4096"\], configured: \["aes128-sha1-modp2048"\]' "$NSL_TMP/$c-them.log" ||
        { nsl_log "mismatch as responder not explained: $(grep Mismatch "$NSL_TMP/$c-them.log")"; rc=1; }
      grep -q "NO_PROPOSAL_CHOSEN" "$SW_DIR/charon.log" || { nsl_log "charon got no NO_PROPOSAL_CHOSEN"; rc=1; }
      SW_RESPONDER=skip ;;
  esac
  if [ "$SW_RESPONDER" != skip ]; then
    if compare_keys "$NSL_TMP/$c.log" "$SW_DIR/charon.log" "$since"; then ok "$c: keys equal charon's"; else rc=1; fi
  fi
  if [ $rc = 0 ]; then ok "$c"; else bad "$c"; tail -n 25 "$NSL_TMP/$c.log" >&2; fi
}
CASES=("$@")
[ ${#CASES[@]} -eq 0 ] && CASES=(main_cbc_initiator reauth_initiator host_ids main_gcm_initiator aggr_initiator main_responder aggr_responder groups_a groups_b legacy mismatch)
for c in "${CASES[@]}"; do run_case "$c"; done
if [ -n "${INTEROP_KEEP:-}" ]; then mkdir -p "$INTEROP_KEEP" && cp -r "$NSL_TMP"/. "$INTEROP_KEEP"/; fi
nsl_log "failures: $FAILS"
[ "$FAILS" = 0 ]
