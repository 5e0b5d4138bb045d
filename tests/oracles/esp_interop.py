#!/usr/bin/env python3
"""Batch scapy interop for the ESP engine tests (dataplane/tests/esp_scapy.rs).

Reads a JSON list of cases from the file named by argv[1] and prints a JSON
list of results on stdout. Each case describes one SA and asks scapy (through
esp_oracle.py, which works around scapy's known bugs) to
  - "decrypt": decrypt ESP packets that espresso built (hex, starting at the
    outer IP header), checking ICV, padding (1,2,3,...) and ESN inference;
  - "encrypt": encrypt inner packets (hex) with given sequence numbers so that
    espresso can decrypt them.
One process handles every case: importing scapy costs about a second.
"""
import json
import sys

sys.path.insert(0, __import__('os').path.dirname(__file__))
import esp_oracle as o  # noqa: E402
from scapy.all import IP, IPv6, UDP, conf  # noqa: E402

conf.verb = 0


def parse_ip(raw):
    return (IPv6 if raw[0] >> 4 == 6 else IP)(raw)


def run_case(c):
    key = bytes.fromhex(c['key'])
    akey = bytes.fromhex(c.get('auth_key', ''))
    res = {'id': c['id'], 'decrypt': [], 'encrypt': []}
    st = o.SAState(c['spi'], c['enc'], key, c['auth'], akey, c['esn'], c.get('esn_hi', 0), c.get('window', 64))
    for hx in c.get('decrypt', []):
        p = parse_ip(bytes.fromhex(hx))
        kind, outer, e = o.extract_esp(p)
        r = {'ok': False}
        if kind != 'esp':
            r['err'] = kind
        else:
            try:
                plain, seq64, hi, ctl = o.decrypt_one(st, e)
                errs = o.check_trailer(st.sa, plain, ctl)
                if errs:
                    r['err'] = '; '.join(errs)
                else:
                    st.accept(seq64)
                    r = {'ok': True, 'nh': plain.nh, 'padlen': plain.padlen, 'seq64': seq64,
                         'data': bytes(plain.data).hex(),
                         'udp': bool(p.haslayer(UDP)),
                         'udp_csum': p[UDP].chksum if p.haslayer(UDP) else None}
            except Exception as ex:  # ICV failure, bad length...
                r['err'] = '%s: %s' % (type(ex).__name__, ex)
        res['decrypt'].append(r)
    if c.get('encrypt'):
        tunnel = None
        if c['mode'] == 'tunnel':
            src, dst = c['outer_src'], c['outer_dst']
            tunnel = IPv6(src=src, dst=dst) if ':' in src else IP(src=src, dst=dst)
        sa = o.make_sa(c['spi'], c['enc'], key, c['auth'], akey, c['esn'], 0, 1, tunnel, c['natt'])
        for job in c['encrypt']:
            seq = job['seq']
            sa.seq_num = seq & 0xffffffff
            sa.esn = seq >> 32
            inner = parse_ip(bytes.fromhex(job['inner']))
            p = sa.encrypt(inner, esn_en=c['esn'])
            res['encrypt'].append(bytes(p).hex())
    return res


def main():
    cases = json.load(open(sys.argv[1]))
    out = []
    for c in cases:
        try:
            out.append(run_case(c))
        except Exception as ex:
            out.append({'id': c['id'], 'error': '%s: %s' % (type(ex).__name__, ex)})
    json.dump(out, sys.stdout)


if __name__ == '__main__':
    main()
