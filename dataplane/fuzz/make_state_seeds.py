#!/usr/bin/env python3
"""Writes the seed corpora of the state-reaching fuzz targets (ike_engine,
shm, config, cli) into dataplane/fuzz/seeds/<target>/. Separate from
make_seeds.py (the ESP and parser targets), which it does not touch; it
rewrites only these four directories, keeping files named regress-* (the
regression seeds of crashes found, which must stay).

The seeds follow the input formats documented at each entry point:
control::ike::fuzz::engine, espresso_core::shm::fuzz::ring,
espresso_core::config::fuzz::load, control::cli::fuzz::cli.
The configuration seeds are the golden espresso.toml files of
tests/configs/*/expected/ with their secrets files renamed secrets.toml.

usage: make_state_seeds.py
"""
import glob
import hashlib
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.join(HERE, '..', '..')
OUT = os.path.join(HERE, 'seeds')


def write(target, blobs):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        if not f.startswith('regress-'):
            os.remove(os.path.join(d, f))
    for b in blobs:
        with open(os.path.join(d, hashlib.sha1(b).hexdigest()), 'wb') as f:
            f.write(b)
    print(f'{target}: {len(blobs)} seeds')


def ike_engine():
    out = []
    cfgs = [0x80, 0x81, 0x82, 0x84, 0x88, 0x8c, 0x90, 0x9d]
    for c in cfgs:
        out.append(bytes([c]))
        for what in range(6):
            # A starts something, its request reaches B (no edit), B's answer reaches A
            out.append(bytes([c, 3, what, 0, 0, 1, 0, 11]))
            # B starts something, A answers, the answer reaches B with one flip
            out.append(bytes([c, 4, what, 1, 0, 0, 1, 0, 8, 1, 11]))
        # time runs: DPD, rekeys, expiry
        out.append(bytes([c, 2, 40, 11, 2, 40, 11, 2, 120, 11, 2, 255, 11]))
        # harness-built requests: empty INFORMATIONAL, CREATE_CHILD_SA with an SA payload start
        out.append(bytes([c, 5, 1, 0, 0, 0, 0]))
        out.append(bytes([c, 5, 0, 0, 33, 0, 8]) + bytes([0, 0, 0, 8, 0, 0, 0, 4]))
        out.append(bytes([c, 5, 1, 0, 42, 0, 8]) + bytes([0, 0, 0, 8, 1, 0, 0, 0]))
        out.append(bytes([c, 4, 3, 6, 1, 0, 0, 0, 0]))
        # dataplane events
        for k in range(12):
            out.append(bytes([c, 8, k, 0, 11]))
        # raw datagram, retransmission and loss
        out.append(bytes([c, 7, 0, 4, 1, 2, 3, 4]))
        out.append(bytes([c, 3, 1, 10, 0, 0, 0, 0, 1, 0, 11]))
        out.append(bytes([c, 3, 1, 9, 2, 20, 11]))
    for c in [0x00, 0x01, 0x02, 0x04, 0x10]:
        # the handshake step by step (each delivery without edits)
        out.append(bytes([c, 0, 0, 1, 0, 0, 0, 1, 0, 11]))
        # IKE_SA_INIT request with one byte changed
        out.append(bytes([c, 0, 1, 0, 40, 0x55, 1, 0, 11]))
        # IKE_AUTH request with an inner byte changed (opened and sealed again)
        out.append(bytes([c, 0, 0, 1, 0, 0, 1, 0, 60, 0x10, 1, 0, 11]))
        # IKE_AUTH answer to A with an inner byte changed
        out.append(bytes([c, 0, 0, 1, 0, 0, 0, 1, 1, 0, 80, 0x01, 11]))
        # half-open SA timing out
        out.append(bytes([c, 0, 0, 2, 255, 2, 255]))
    return out


def shm():
    out = []
    for ring in (0, 1):
        for t in range(12):
            out.append(bytes([ring, 1, t, 0, 0, 9]))
            out.append(bytes([ring, 1, t, 1, 5, 0xff, 0, 9]))
        out.append(bytes([ring, 0, 1, 0, 0, 0, 4, 0, 1, 2, 3, 4, 9]))
        out.append(bytes([ring, 6, 0, 0, 0, 1, 5, 0, 1, 9]))
        out.append(bytes([ring, 1, 0, 0, 0, 2, 0, 0, 1, 0xaa, 9]))
        out.append(bytes([ring, 1, 2, 0, 0, 4]) + (7).to_bytes(8, 'little') + bytes([9]))
    return out


def config():
    out = []
    for p in sorted(glob.glob(os.path.join(TOP, 'tests', 'configs', '*', 'expected', 'espresso.toml'))):
        text = open(p, 'rb').read()
        text = re.sub(rb'^include = .*$', b'include = ["inc.toml"]', text, flags=re.M)
        text = re.sub(rb'^(keys|secrets) = ".*"$', rb'\1 = "secrets.toml"', text, flags=re.M)
        sec = b''
        for s in sorted(glob.glob(os.path.join(os.path.dirname(p), 'secrets', '*')))[:1]:
            sec = open(s, 'rb').read()
        # drop certificate/key file names: they would name files outside
        text = b'\n'.join(l for l in text.split(b'\n') if b'"/' not in l and b'..' not in l)
        out.append(bytes([0]) + text + b'\0' + sec + b'\0' + b'[daemon]\nlog_level = "debug"\n')
    out.append(bytes([5]) + b'[daemon]\n\0\0')
    return out


def cli():
    lines = [
        '{"cmd":"status"}', '{"cmd":"up","name":"t1"}', '{"cmd":"down","name":"t1"}',
        '{"cmd":"reload"}', '{"cmd":"reload","name":"t1"}', '{"cmd":"log","lines":50}',
        '{"cmd":"tap","name":"t1"}', '{"cmd":"metrics"}', '{"cmd":"keys","name":null}',
        '{"code":0,"message":"ok"}', '{"code":4,"message":"no tunnel t9","lines":["a","b"]}',
        'status', 'status --json', 'up t1', 'down t1', 'reload t1', 'log -n 5', 'keys --format scapy',
        'tap t1', 'check', '-c espresso.toml status', 'statusall', 'up conn1', 'ipsec status',
    ]
    return [l.encode() for l in lines]


write('ike_engine', ike_engine())
write('shm', shm())
write('config', config())
write('cli', cli())
