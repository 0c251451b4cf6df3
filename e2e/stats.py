"""Reads the runtime statistics files under a candidate's stage folder, as the e2e scenarios
check them. Subcommands:

  sum DIR [REPLICA]      totals over the files (of one replica): {"files", "events", "decisions",
                         "signed", "sources", "replicas", "start", "end", "span_s"}
  gaps DIR REPLICA       the holes between one replica's consecutive windows: [{"from", "seconds"}]
  verify DIR KEYFILE     checks every file's signature the way docs/serving.md states it, computed
                         here independently of janus: HMAC-SHA256 under the key file's first line
                         over "janus-runtime-stats-v1\n" + RFC 8785 of the file without
                         manifest_hash and with signature null; prints how many verified
  forge SRC DST MODE     a file made from SRC by hand, its content hash recomputed (RFC 8785):
                         MODE `unsigned` (as a decision service's, no signature), `badsig` (a
                         signature under another key), `stretch72` (a simulation whose window is
                         stretched to 72 h ending now)
"""
import datetime
import glob
import hashlib
import hmac
import json
import os
import sys


def canonical(v):
    # RFC 8785 for what these files hold: sorted members, no spaces, integral floats as
    # integers (JavaScript's number form), other floats in their shortest round-trip form.
    if isinstance(v, dict):
        return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + canonical(v[k]) for k in sorted(v)) + "}"
    if isinstance(v, list):
        return "[" + ",".join(canonical(x) for x in v) + "]"
    if isinstance(v, float) and v.is_integer() and abs(v) < 2**53:
        return str(int(v))
    return json.dumps(v, ensure_ascii=False)


def seal(a):
    body = {k: x for k, x in a.items() if k != "manifest_hash"}
    a["manifest_hash"] = hashlib.sha256(canonical(body).encode()).hexdigest()
    return a


def parse(t):
    return datetime.datetime.fromisoformat(t.replace("Z", "+00:00"))


def files(d, replica=None):
    out = []
    for p in sorted(glob.glob(os.path.join(d, "*.json"))):
        a = json.load(open(p))
        if replica is None or a["service"]["replica"] == replica:
            out.append(a)
    return sorted(out, key=lambda a: (a["window_start"], a["window_end"]))


cmd = sys.argv[1]
if cmd == "sum":
    fs = files(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
    start = min((parse(a["window_start"]) for a in fs), default=None)
    end = max((parse(a["window_end"]) for a in fs), default=None)
    print(json.dumps({
        "files": len(fs),
        "events": sum(a["counts"]["events"] for a in fs),
        "decisions": sum(a["counts"]["decisions"] for a in fs),
        "signed": sum(1 for a in fs if a.get("signature")),
        "sources": sorted({a["source"] for a in fs}),
        "replicas": sorted({a["service"]["replica"] for a in fs}),
        "span_s": (end - start).total_seconds() if fs else 0,
    }))
elif cmd == "gaps":
    # As the operator's log prints a gap's start (chrono's Display, without " UTC").
    fs = files(sys.argv[2], sys.argv[3])
    print(json.dumps([{"from": a["window_end"].replace("T", " ").rstrip("Z"),
                       "seconds": (parse(b["window_start"]) - parse(a["window_end"])).total_seconds()}
                      for a, b in zip(fs, fs[1:]) if b["window_start"] > a["window_end"]]))
elif cmd == "verify":
    key = open(sys.argv[3], "rb").read().split(b"\n")[0].strip()
    fs = files(sys.argv[2])
    if not fs:
        sys.exit(f"no statistics files in {sys.argv[2]}")
    for a in fs:
        body = {k: x for k, x in a.items() if k != "manifest_hash"}
        body["signature"] = None
        mac = hmac.new(key, b"janus-runtime-stats-v1\n" + canonical(body).encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(mac, a.get("signature") or ""):
            sys.exit(f"{a['service']['replica']} {a['window_start']}: signature {a.get('signature')} is not {mac}")
        if seal(dict(a))["manifest_hash"] != a["manifest_hash"]:
            sys.exit(f"{a['service']['replica']} {a['window_start']}: manifest hash does not recompute")
    print(f"{len(fs)} files verified")
elif cmd == "forge":
    a = json.load(open(sys.argv[2]))
    mode = sys.argv[4]
    if mode == "unsigned":
        a["signature"] = None
        a["source"] = "decision-service"
        a["counts"]["decisions"] = a["counts"]["events"] = 5000
        a["service"]["replica"] = "forged"
    elif mode == "badsig":
        a["service"]["replica"] = "forged-sig"
        a["source"] = "decision-service"
        a["signature"] = None
        body = {k: x for k, x in a.items() if k != "manifest_hash"}
        a["signature"] = hmac.new(b"not-the-statistics-key-0123", b"janus-runtime-stats-v1\n" + canonical(body).encode(),
                                  hashlib.sha256).hexdigest()
    elif mode == "stretch72":
        assert a["source"] == "simulation", a["source"]
        end = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        a["window_end"] = end.strftime("%Y-%m-%dT%H:%M:%SZ")
        a["window_start"] = (end - datetime.timedelta(hours=72)).strftime("%Y-%m-%dT%H:%M:%SZ")
        a["service"]["replica"] = "replay-72h"
    else:
        sys.exit(f"unknown mode {mode}")
    with open(sys.argv[3], "w") as f:
        json.dump(seal(a), f)
else:
    sys.exit(__doc__)
