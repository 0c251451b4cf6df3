#!/usr/bin/env python3
"""Independent RFC 8785 check: prints, for each JSON file given, the lowercase hex SHA-256 of the
JCS encoding (Trail of Bits' `rfc8785` package) of the document with a top-level
`manifest_hash` member removed. The Rust tests compare this with what `janus` computed."""
import hashlib
import json
import sys

try:
    import rfc8785
except ImportError:
    sys.exit("python module rfc8785 is missing: run tests/setup (pip install rfc8785)")

for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    if isinstance(doc, dict):
        doc.pop("manifest_hash", None)
    print(hashlib.sha256(rfc8785.dumps(doc)).hexdigest())
