#!/usr/bin/env bash
# tshark (Wireshark 4.0, libgcrypt ESP code we did not write) decrypts the
# ESP packets our engine makes.
#
# `cargo run --example esp_pcap` encapsulates ICMP/ICMPv6 echo requests with
# the real engine (Sa::new + esp::encap_burst) for AES-GCM-128/256,
# AES-CBC-128/256 with HMAC-SHA1-96 / SHA-256-128 / SHA-384-192 / SHA-512-256,
# and NULL with each HMAC; tunnel (4in4, 6in4, 4in6, 6in6) and transport
# over IPv4 and IPv6; with and without NAT-T (UDP 4500); Raw-IP and Ethernet
# link types. tshark is given the keys (tests/lib/tshark_esp.sh) and must
# report, for every packet: ICV good, the SPI and sequence number we sent,
# and the inner packet we sent (addresses, ICMP id and sequence, payload
# bytes). Packets with one flipped bit must show ICV bad.
#
# Not covered here because Wireshark 4.0 lacks them: ESN (its esp_sa table
# has no ESN field) and ChaCha20-Poly1305 (and AES-GMAC). The scapy interop
# test (dataplane/tests/esp_scapy.rs) checks those both ways.
set -euo pipefail
cd "$(dirname "$0")/../.."
top=$(pwd)
. tests/lib/tshark_esp.sh

command -v tshark >/dev/null || { echo "esp_tshark: tshark not installed (scripts/setup.sh installs it)"; exit 1; }
echo "esp_tshark: $(tshark --version | sed -n 1p)"

tmp=$(mktemp -d /tmp/espresso-tshark.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

cargo run -q --profile ci -p espresso-dataplane --example esp_pcap -- "$tmp"

mapfile -t records < <(tshark_esp_records_from_tsv "$tmp/sas.tsv")
nsas=$(grep -vc '^#' "$tmp/sas.tsv")
[ "${#records[@]}" -eq "$nsas" ] || { echo "esp_tshark: ${#records[@]} of $nsas SAs usable"; exit 1; }

fail=0
for pcap in esp_raw.pcap esp_ether.pcap esp_neg.pcap; do
  tshark_esp_fields "$tmp/$pcap" "${records[@]}" -- \
    -e ip.src -e ip.dst -e ipv6.src -e ipv6.dst -e icmp.ident -e icmp.seq \
    -e icmpv6.echo.identifier -e icmpv6.echo.sequence_number -e data.data \
    > "$tmp/$pcap.tsv"
  # Join tshark's view with what was sent (expect.tsv) on the frame number.
  if ! awk -F'\t' -v pcap="$pcap" '
    FNR == NR {
      if ($1 == pcap) { want[$2] = $0; n++ }
      next
    }
    { got[$1] = $0 }
    END {
      ok = 0
      for (f in want) {
        split(want[f], w, "\t")
        if (!(f in got)) { printf "FAIL %s frame %s: not dissected as ESP\n", pcap, f; bad++; continue }
        split(got[f], g, "\t")
        err = ""
        if (tolower(g[2]) != tolower(w[3])) err = err " spi " g[2] "!=" w[3]
        if (g[3] != w[4]) err = err " seq " g[3] "!=" w[4]
        good = (g[4] == "1" || g[4] == "True"); icvbad = (g[5] == "1" || g[5] == "True")
        if (w[11] == "bad") {
          if (!icvbad || good) err = err " expected ICV bad, got good=" g[4] " bad=" g[5]
        } else {
          if (!good || icvbad) err = err " ICV not good (good=" g[4] " bad=" g[5] ")"
          if (w[5] == "IPv4") { src = g[6]; dst = g[7]; id = g[10]; sq = g[11] }
          else { src = g[8]; dst = g[9]; id = g[12]; sq = g[13] }
          if (src != w[6] || dst != w[7]) err = err " inner " src ">" dst " != " w[6] ">" w[7]
          # Wireshark prints the ICMPv6 identifier in hex, ICMP in decimal.
          if ((id != w[8] && tolower(id) != sprintf("0x%04x", w[8])) || \
              (sq != w[9] && tolower(sq) != sprintf("0x%04x", w[9])))
            err = err " icmp id/seq " id "/" sq " != " w[8] "/" w[9]
          data = (g[14] == "") ? "-" : tolower(g[14])
          if (data != w[10]) err = err " payload differs (" length(g[14]) / 2 " bytes vs " (w[10] == "-" ? 0 : length(w[10]) / 2) ")"
        }
        if (err != "") { printf "FAIL %s frame %s spi %s:%s\n", pcap, f, w[3], err; bad++ } else ok++
      }
      printf "%s: %d/%d packets as expected\n", pcap, ok, n
      exit (bad > 0 || n == 0)
    }' "$tmp/expect.tsv" "$tmp/$pcap.tsv"; then
    fail=1
  fi
done

# The helper the gateway tests use, on one SA: counts and exit status.
first=$(grep -v -m1 '^#' "$tmp/sas.tsv")
IFS=$'\t' read -r name spi fam src dst enc ekey auth akey _ <<<"$first"
out=$(tshark_esp_count "$tmp/esp_raw.pcap" "$fam" "$src" "$dst" "$spi" "$enc" "$ekey" "$auth" "$akey" -Y "esp.spi == $spi") \
  || { echo "FAIL tshark_esp_count on $name: $out"; fail=1; }
[ "$out" = "good=3 bad=0 unchecked=0 total=3" ] || { echo "FAIL tshark_esp_count $name: $out"; fail=1; }
# A wrong key makes every packet of that SA fail, and the helper says so.
wrong=$(printf '%s' "$ekey" | tr '0-9a-f' '1-9a-f0')
if out=$(tshark_esp_count "$tmp/esp_raw.pcap" "$fam" "$src" "$dst" "$spi" "$enc" "$wrong" "$auth" "$akey" -Y "esp.spi == $spi"); then
  echo "FAIL tshark_esp_count accepted a wrong key: $out"; fail=1
fi
echo "tshark_esp_count: right key -> good=3, wrong key -> ${out}"
# Every SA at once from a Wireshark esp_sa UAT file (a key export in that form).
printf '%s\n' "# esp_sa" "${records[@]}" > "$tmp/esp_sa"
mapfile -t uat < <(tshark_esp_records_from_uat "$tmp/esp_sa")
out=$(tshark_esp_count_multi "$tmp/esp_raw.pcap" "${uat[@]}") || { echo "FAIL tshark_esp_count_multi: $out"; fail=1; }
n=$(grep -c '^esp_raw.pcap' "$tmp/expect.tsv")
[ "$out" = "good=$n bad=0 unchecked=0 total=$n" ] || { echo "FAIL tshark_esp_count_multi: $out"; fail=1; }
echo "tshark_esp_count_multi (UAT file, ${#uat[@]} SAs): $out"

if [ $fail -ne 0 ]; then
  echo "esp_tshark: FAILED"
  exit 1
fi
echo "esp_tshark: ${#records[@]} SAs: tshark decrypts every packet we sent (ICV good, inner packet as sent), flags every bit flip"
