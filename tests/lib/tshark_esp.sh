# shellcheck shell=bash
# tshark (Wireshark 4.0) as an independent ESP decoder: decrypt a capture
# given the SA keys and count the packets whose ICV verified.
# Source this file:  . tests/lib/tshark_esp.sh
#
#   tshark_esp_count PCAP PROTO SRC DST SPI ENC ENCKEY AUTH [AUTHKEY [TSHARK_ARGS...]]
#       Decrypts PCAP with one SA; prints "good=G bad=B unchecked=U total=T"
#       (ESP frames only) and returns 0 iff T > 0, B = 0 and U = 0.
#   tshark_esp_count_multi PCAP RECORD... [-- TSHARK_ARGS...]
#       Same with several SAs (e.g. both directions of a tunnel on a WAN
#       capture); each RECORD comes from tshark_esp_sa.
#   tshark_esp_sa PROTO SRC DST SPI ENC ENCKEY AUTH AUTHKEY
#       Prints one Wireshark `esp_sa` UAT record.
#   tshark_esp_fields PCAP RECORD... [-- TSHARK_ARGS...]
#       Prints one tab-separated line per ESP frame: frame spi seq icv_good
#       icv_bad, then any `-e FIELD` given in TSHARK_ARGS (last occurrence,
#       i.e. the inner header for tunnel mode).
#   tshark_esp_records_from_tsv FILE
#       One record per SA line of a table in the form
#       `case spi family src dst enc enc_key auth auth_key mode natt esn`
#       (what `cargo run --example esp_pcap` writes; '#' lines skipped).
#       SAs tshark 4.0 cannot check (ESN, ChaCha20-Poly1305) are skipped
#       with a note on stderr.
#   tshark_esp_records_from_uat FILE
#       One record per line of a Wireshark `esp_sa` UAT file (the format
#       Wireshark saves in its profile: 8 quoted comma-separated fields),
#       e.g. a key export written in that form; '#' lines skipped.
#
# Arguments:
#   PROTO    IPv4 | IPv6 (outer header family)
#   SRC DST  outer addresses of that direction, or '*'
#   SPI      0x-hex or decimal, or '*'
#   ENC      espresso name (aes-gcm-128, aes-gcm-256, aes-cbc-128, aes-cbc-256,
#            null, 3des-cbc) or the Wireshark 4.0 string itself
#   ENCKEY   hex (0x optional); AES-GCM: key || 4-byte salt; '-' or '' for none
#   AUTH     espresso name (none, hmac-sha1-96, hmac-sha256-128,
#            hmac-sha384-192, hmac-sha512-256, hmac-md5-96) or Wireshark string
#   AUTHKEY  hex; '-' or '' for none
# Env: TSHARK_ESP_MAX_FRAMES=N reads only the first N frames (decrypting a
# long iperf capture takes minutes; a sample is enough).
#
# Wireshark 4.0 limits: no ESN (SAs with ESN show icv_bad), no
# ChaCha20-Poly1305, no AES-GMAC, and it does not check padding contents.
# Those are covered by the scapy oracle (dataplane/tests/esp_scapy.rs).

# Wireshark 4.0 encryption algorithm string for an espresso name.
tshark_esp_enc_name() {
  case "$1" in
    null|NULL) echo "NULL" ;;
    aes-cbc-128|aes-cbc-256|aes-cbc-192|aes-cbc) echo "AES-CBC [RFC3602]" ;;
    aes-gcm-128|aes-gcm-256|aes-gcm-192|aes-gcm|aes-gcm-16) echo "AES-GCM with 16 octet ICV [RFC4106]" ;;
    aes-ctr-128|aes-ctr-256|aes-ctr) echo "AES-CTR [RFC3686]" ;;
    3des-cbc|3des) echo "TripleDES-CBC [RFC2451]" ;;
    chacha20-poly1305|aes-gmac-*)
      echo "tshark_esp: Wireshark 4.0 cannot decrypt $1" >&2; return 1 ;;
    *\[*\]*|NULL) echo "$1" ;;
    *) echo "tshark_esp: unknown encryption algorithm '$1'" >&2; return 1 ;;
  esac
}

# Wireshark 4.0 authentication algorithm string for an espresso name.
tshark_esp_auth_name() {
  case "$1" in
    none|NULL|'') echo "NULL" ;;
    hmac-sha1-96) echo "HMAC-SHA-1-96 [RFC2404]" ;;
    hmac-sha256-128) echo "HMAC-SHA-256-128 [RFC4868]" ;;
    hmac-sha384-192) echo "HMAC-SHA-384-192 [RFC4868]" ;;
    hmac-sha512-256) echo "HMAC-SHA-512-256 [RFC4868]" ;;
    hmac-md5-96) echo "HMAC-MD5-96 [RFC2403]" ;;
    *\[*\]*) echo "$1" ;;
    *) echo "tshark_esp: unknown authentication algorithm '$1'" >&2; return 1 ;;
  esac
}

_tshark_esp_hex() {
  local k=${1#0x}
  case "$k" in ''|-) echo "" ;; *) echo "0x$k" ;; esac
}

_tshark_esp_spi() {
  case "$1" in
    '*') echo '*' ;;
    0x*|0X*) printf '0x%08x' "$(( $1 ))" ;;
    *) printf '0x%08x' "$1" ;;
  esac
}

# tshark_esp_sa PROTO SRC DST SPI ENC ENCKEY AUTH AUTHKEY
tshark_esp_sa() {
  [ $# -ge 7 ] || { echo "usage: tshark_esp_sa PROTO SRC DST SPI ENC ENCKEY AUTH [AUTHKEY]" >&2; return 2; }
  local proto=$1 src=$2 dst=$3 spi enc auth ekey akey
  spi=$(_tshark_esp_spi "$4") || return 1
  enc=$(tshark_esp_enc_name "$5") || return 1
  auth=$(tshark_esp_auth_name "$7") || return 1
  ekey=$(_tshark_esp_hex "$6")
  akey=$(_tshark_esp_hex "${8:-}")
  case "$proto" in IPv4|IPv6) ;; *) echo "tshark_esp: protocol must be IPv4 or IPv6, not '$proto'" >&2; return 1 ;; esac
  printf '"%s","%s","%s","%s","%s","%s","%s","%s"\n' \
    "$proto" "$src" "$dst" "$spi" "$enc" "$ekey" "$auth" "$akey"
}

# tshark_esp_fields PCAP RECORD... [-- TSHARK_ARGS...]
tshark_esp_fields() {
  local pcap=$1; shift
  local -a uat=() extra=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do uat+=(-o "uat:esp_sa:$1"); shift; done
  [ "${1:-}" = "--" ] && shift
  extra=("$@")
  [ -n "${TSHARK_ESP_MAX_FRAMES:-}" ] && extra=(-c "$TSHARK_ESP_MAX_FRAMES" "${extra[@]}")
  [ -r "$pcap" ] || { echo "tshark_esp: cannot read $pcap" >&2; return 1; }
  # TCP dissection off: reassembling a decrypted TCP stream costs minutes
  # and can hide the ESP fields of the frames it swallows.
  tshark -n -r "$pcap" --disable-protocol tcp \
    -o esp.enable_encryption_decode:TRUE \
    -o esp.enable_authentication_check:TRUE \
    "${uat[@]}" -Y esp \
    -T fields -E separator=/t -E occurrence=l \
    -e frame.number -e esp.spi -e esp.sequence -e esp.icv_good -e esp.icv_bad \
    "${extra[@]}" 2>/dev/null
}

# tshark_esp_count_multi PCAP RECORD... [-- TSHARK_ARGS...]
tshark_esp_count_multi() {
  local out rc
  out=$(tshark_esp_fields "$@") || return 1
  echo "$out" | awk -F'\t' '
    NF == 0 || $1 == "" { next }
    { t++; g = ($4 == "1" || $4 == "True"); b = ($5 == "1" || $5 == "True")
      if (b) bad++; else if (g) good++; else un++ }
    END { printf "good=%d bad=%d unchecked=%d total=%d\n", good, bad, un, t
          exit !(t > 0 && bad == 0 && un == 0) }'
  rc=$?
  return $rc
}

# tshark_esp_count PCAP PROTO SRC DST SPI ENC ENCKEY AUTH AUTHKEY [TSHARK_ARGS...]
tshark_esp_count() {
  [ $# -ge 8 ] || { echo "usage: tshark_esp_count PCAP PROTO SRC DST SPI ENC ENCKEY AUTH [AUTHKEY [TSHARK_ARGS...]]" >&2; return 2; }
  local pcap=$1 rec
  rec=$(tshark_esp_sa "$2" "$3" "$4" "$5" "$6" "$7" "$8" "${9:-}") || return 1
  shift $(( $# >= 9 ? 9 : 8 ))
  tshark_esp_count_multi "$pcap" "$rec" -- "$@"
}

# tshark_esp_records_from_tsv FILE
tshark_esp_records_from_tsv() {
  local name spi fam src dst enc ekey auth akey mode natt esn rec
  while IFS=$'\t' read -r name spi fam src dst enc ekey auth akey mode natt esn; do
    case "$name" in ''|'#'*) continue ;; esac
    if [ "$esn" = "true" ]; then
      echo "tshark_esp: skipping $name (SPI $spi): Wireshark 4.0 has no ESN" >&2; continue
    fi
    if ! rec=$(tshark_esp_sa "$fam" "$src" "$dst" "$spi" "$enc" "$ekey" "$auth" "$akey" 2>/dev/null); then
      echo "tshark_esp: skipping $name (SPI $spi): $enc/$auth not in Wireshark 4.0" >&2; continue
    fi
    echo "$rec"
  done < "$1"
}

# tshark_esp_records_from_uat FILE
tshark_esp_records_from_uat() {
  local line n
  while IFS= read -r line || [ -n "$line" ]; do
    case "$line" in ''|'#'*) continue ;; esac
    n=$(printf '%s' "$line" | tr -cd '"' | wc -c)
    if [ "$n" -ne 16 ]; then
      echo "tshark_esp: not an esp_sa record (8 quoted fields): $line" >&2; return 1
    fi
    echo "$line"
  done < "$1"
}
