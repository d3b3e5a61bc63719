#!/usr/bin/env python3
"""Prints the codec table of benches/README.md from the last `cargo bench -p benches --bench cmc`:
each median beside its floor (three signatures or verifications, measured in the same run) and
the OpenSSL peer, as ratios. Reads target/criterion/*/*/new/{benchmark,estimates}.json."""
import glob
import json
import os
import sys

root = os.path.join(os.path.dirname(__file__), "..", "target", "criterion")
median = {}
for bench in glob.glob(os.path.join(root, "*", "*", "new", "benchmark.json")):
    full_id = json.load(open(bench))["full_id"]
    est = json.load(open(os.path.join(os.path.dirname(bench), "estimates.json")))
    median[full_id] = est["median"]["point_estimate"] / 1000.0  # µs

def get(name):
    if name not in median:
        sys.exit(f"bench-report: no result for {name!r}: run cargo bench -p benches --bench cmc")
    return median[name]

def us(v):
    return f"{v:,.1f} µs" if v < 100 else f"{v:,.0f} µs"

print("| operation | ours | floor (3 ops, aws-lc) | ours / floor | OpenSSL peer | peer / ours |")
print("|---|---|---|---|---|---|")
for alg in ["p256", "rsa2048"]:
    for what, op in [("build+sign", "sign"), ("parse+verify", "verify")]:
        ours = get(f"ours/{what}/{alg}")
        floor = 3 * get(f"floor/aws-lc/{alg}/{op}")
        peer = get(f"openssl/{what}/{alg}")
        print(f"| {what} {alg} | {us(ours)} | {us(floor)} | {ours / floor:.2f}x | {us(peer)} | {peer / ours:.2f}x |")
for alg in ["p256", "rsa2048"]:
    enc = get(f"ours/encode-only/{alg}")
    one = get(f"floor/aws-lc/{alg}/sign")
    print(f"| encode-only {alg} | {us(enc)} | 1 sign = {us(one)} | {enc / one:.2f} of a signature | — | — |")
    print(f"| parse {alg} | {us(get(f'ours/parse/{alg}'))} | — | — | — | — |")
print(f"| build+sign p256, RFC 6979 (p256 crate) | {us(get('ours/build+sign/p256-rfc6979'))} | | | | |")
print()
print("Single operations in the same run:")
for lib in ["aws-lc", "openssl"]:
    for alg in ["p256", "rsa2048"]:
        print(f"- {lib} {alg}: sign {us(get(f'floor/{lib}/{alg}/sign'))}, verify {us(get(f'floor/{lib}/{alg}/verify'))}")
