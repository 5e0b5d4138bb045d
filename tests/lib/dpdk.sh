#!/usr/bin/env bash
# DPDK helpers for the namespace tests (needs tests/lib/netns.sh).
#
#   nsl_dataplane_dpdk NS NAME CORE EXCEPTION INSIDE OUTSIDE "VDEVS" [extra args...]
# starts espresso-dataplane with --backend dpdk in namespace NS: worker on
# CORE, EAL without hugepages or PCI (--no-huge -m 256 --no-pci --no-shconf),
# the given --vdev arguments, DPDK ports INSIDE and OUTSIDE, exception path
# EXCEPTION (tap|kernel); waits until it runs; sets NSL_PID. Counters go to
# $NSL_TMP/NAME.json.

# nsl_eal CORE "VDEVS": the EAL argument string used by the tests.
nsl_eal() {
  echo "-l $1 --no-huge -m 256 --no-pci --no-shconf --log-level=warning $2"
}

nsl_dataplane_dpdk() {
  local n="$1" name="$2" core="$3" exc="$4" inside="$5" outside="$6" vdevs="$7"; shift 7
  local bin="${ESPRESSO_DP_BIN:-${ESPRESSO_TARGET:-target/release}/espresso-dataplane}"
  [ -x "$bin" ] || nsl_die "$bin not built (cargo build --profile ci -p espresso-dataplane)"
  rm -f "$NSL_TMP/$name.json"
  nsl_bg "$n" "$name" env RUST_LOG="${RUST_LOG:-info}" "$bin" --backend dpdk \
        --eal "$(nsl_eal "$core" "$vdevs")" --exception "$exc" \
        --inside "$inside" --outside "$outside" --cores "$core" \
        --configure-kernel --stats-file "$NSL_TMP/$name.json" --stats-interval-ms 200 "$@"
  nsl_wait_file "$NSL_TMP/$name.json" 30 || nsl_die "dataplane $name did not start"
}

# nsl_tshark_esp PCAP SPI KEYHEX SRC DST: number of ESP packets of SPI in PCAP
# that tshark decrypts with an intact AES-GCM-128 ICV (RFC 4106, 16-byte ICV).
nsl_tshark_esp() {
  local pcap="$1" spi="$2" key="$3" src="$4" dst="$5"
  # Only ESP fields are read: TCP dissection of the decrypted iperf3 stream
  # (reassembly, sequence analysis) would cost minutes, so it is off.
  tshark -r "$pcap" --disable-protocol tcp \
    -o esp.enable_encryption_decode:TRUE -o esp.enable_authentication_check:TRUE \
    -o "uat:esp_sa:\"IPv4\",\"$src\",\"$dst\",\"$(printf '0x%08x' "$spi")\",\"AES-GCM with 16 octet ICV [RFC4106]\",\"$key\",\"NULL\",\"\"" \
    -Y "esp.spi == $spi && esp.icv_good == 1" -T fields -e esp.sequence 2>/dev/null | grep -c . || true
}

# nsl_iperf SERVER_NS CLIENT_NS ADDR SECONDS: iperf3 TCP; prints Gbps received.
nsl_iperf() {
  local srv_ns="$1" cli_ns="$2" addr="$3" secs="$4"
  local port=$(( 5201 + RANDOM % 1000 ))
  nsl_bg "$srv_ns" "iperf3s_$port" iperf3 -s -1 -B "$addr" -p "$port"
  local srv=$NSL_PID
  sleep 0.5
  nsl_x "$cli_ns" iperf3 -c "$addr" -p "$port" -t "$secs" -J >"$NSL_TMP/iperf_$port.json" \
    || { nsl_stop "$srv"; return 1; }
  nsl_stop "$srv"
  python3 -c 'import json,sys; e=json.load(open(sys.argv[1]))["end"]; print("%.3f" % (e["sum_received"]["bits_per_second"]/1e9))' \
    "$NSL_TMP/iperf_$port.json"
}
