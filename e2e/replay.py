"""Sends held-out events to a decision service, as a trading lane posts them: events of a
labelled event-car artifact whose first tradable day is on or after FROM, each stamped now (an
event is decided when it arrives), one request at a time.

  replay.py send PORT EVENT_CAR FROM COUNT ID_PREFIX
      COUNT events; prints how the service answered: {"sent": N, "by_source": {...}}.
  replay.py windows PORT RUNTIME_FILE EVENT_CAR FROM REQUEST...
      for a service reading its configuration from RUNTIME_FILE (`janus serve --runtime-file`):
      for each REQUEST in turn, names it in the file, waits until the service serves it and
      sends 3 events, so that the service's statistics hold one window per request.
"""
import datetime
import json
import os
import sys
import time
import urllib.request


def held_out(path, start, count):
    records = [r for r in json.load(open(path))["records"] if (r.get("d0") or "") >= start][:count]
    if len(records) < count:
        sys.exit(f"only {len(records)} held-out events from {start} in {path}")
    return records


def decide(port, record, prefix):
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    event = {"event_id": f"{prefix}-{record['event_id']}", "timestamp": now, "symbol": record["symbol"],
             "event_type": record["source_event_type"], "title": record["title"]}
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/decide", data=json.dumps({"event": event}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp)


def runtime(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/runtime", timeout=10) as resp:
        return json.load(resp)


cmd = sys.argv[1]
if cmd == "send":
    port, path, start, count, prefix = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6]
    by_source = {}
    for r in held_out(path, start, count):
        d = decide(port, r, prefix)
        by_source[d["source"]] = by_source.get(d["source"], 0) + 1
    print(json.dumps({"sent": count, "by_source": by_source}))
elif cmd == "windows":
    port, file, path, start, requests = sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6:]
    records = held_out(path, start, 3)
    data = json.load(open(file))
    for name in requests:
        data["promotionRequest"] = name
        with open(file + ".tmp", "w") as f:
            json.dump(data, f)
        os.replace(file + ".tmp", file)
        until = time.time() + 10
        while ((runtime(port).get("config") or {}).get("promotionRequest")) != name:
            if time.time() > until:
                sys.exit(f"the service never served {name}")
            time.sleep(0.02)
        for r in records:
            d = decide(port, r, name)
            if d["source"] not in ("model", "fallback"):
                sys.exit(f"{name}: not decided: {d}")
    print(f"{len(requests)} windows of 3 decisions")
else:
    sys.exit(__doc__)
