#!/usr/bin/env python3
"""Reads the chart's rendered webhook.yaml as kubectl's JSON (one object after another) on stdin
and prints its Mutating/ValidatingWebhookConfigurations as a List whose webhooks call
https://127.0.0.1:PORT<path> with the CA bundle CA_FILE instead of the in-cluster Service.
Usage: webhook-config.py PORT CA_FILE"""
import base64
import json
import sys

port, ca_file = sys.argv[1], sys.argv[2]
ca = base64.b64encode(open(ca_file, "rb").read()).decode()
text, docs, pos, dec = sys.stdin.read(), [], 0, json.JSONDecoder()
while True:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    if pos >= len(text):
        break
    doc, pos = dec.raw_decode(text, pos)
    docs.extend(doc.get("items", [doc]))
items = [d for d in docs if d["kind"].endswith("WebhookConfiguration")]
for item in items:
    for hook in item["webhooks"]:
        path = hook["clientConfig"]["service"]["path"]
        hook["clientConfig"] = {"url": "https://127.0.0.1:%s%s" % (port, path), "caBundle": ca}
if not items:
    sys.exit("no webhook configurations in the input")
print(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
