#!/usr/bin/env python3
"""Independent market-model event study (plain Python, no numpy, none of janus's code) for the
real-data labelling test. Reads a dataset directory (prices.csv, indices.csv, universe.csv,
events-10k.csv, labeling-10k.json) and prints, per event, d0, the OLS fit and the CAR over the
event window, or why it has none, as JSON:

    python3 tests/market_model_reference.py tests/fixtures/us-gafam \
        > tests/fixtures/us-gafam/expected-car.json

The rules (docs/methodology.md section 1): the trading calendar is the index file's dates;
returns are close-to-close between consecutive calendar days (none when either close is
missing); d0 is the first calendar day on or after the first session open after the timestamp
(exchange time), and none when that day is before the calendar or after it; the estimation
window is positions [d0 - buffer - L, d0 - buffer), without days where either return is missing
and, unless exclude_other_events is false, without days inside the event window of another
event of the same stock; OLS two-pass; AR = r - (alpha + beta r_m); CAR = sum over d0 .. d0+H-1.
Both variants are printed: "exclude" (the configuration's default) and "classic"."""
import csv
import datetime as dt
import json
import math
import os
import sys
from zoneinfo import ZoneInfo


def main(root):
    with open(os.path.join(root, "labeling-10k.json")) as f:
        cfg = json.load(f)
    L, B = cfg["estimation_window"], cfg["buffer"]
    H, min_obs = cfg["event_window"], cfg["min_observations"]
    tz = ZoneInfo(cfg["timezone"])
    open_h, open_m = map(int, cfg["session_open"].split(":"))

    index_of = {}
    with open(os.path.join(root, "universe.csv"), newline="") as f:
        for row in csv.DictReader(f):
            index_of[row["symbol"]] = row["index"]
    index_close = {}
    with open(os.path.join(root, "indices.csv"), newline="") as f:
        for row in csv.DictReader(f):
            index_close.setdefault(row["index"], {})[row["date"]] = float(row["close"])
    calendar = sorted({d for series in index_close.values() for d in series})
    pos = {d: i for i, d in enumerate(calendar)}
    closes = {}
    with open(os.path.join(root, "prices.csv"), newline="") as f:
        for row in csv.DictReader(f):
            closes.setdefault(row["symbol"], {})[row["date"]] = float(row["close"])

    def returns(series):
        out = [math.nan] * len(calendar)
        for i in range(1, len(calendar)):
            a, b = series.get(calendar[i - 1]), series.get(calendar[i])
            if a is not None and b is not None:
                out[i] = b / a - 1.0
        return out

    stock_r = {s: returns(c) for s, c in closes.items()}
    index_r = {i: returns(c) for i, c in index_close.items()}

    with open(os.path.join(root, "events-10k.csv"), newline="") as f:
        events = list(csv.DictReader(f))

    def d0_of(ts):
        local = dt.datetime.fromisoformat(ts).astimezone(tz)
        first = local.date()
        if (local.hour, local.minute, local.second, local.microsecond) >= (open_h, open_m, 0, 0):
            first += dt.timedelta(days=1)
        if first.isoformat() < calendar[0]:
            return None
        for i, d in enumerate(calendar):
            if d >= first.isoformat():
                return i
        return None

    d0s = [d0_of(e["timestamp"]) for e in events]
    windows = {}
    for e, d in zip(events, d0s):
        if d is not None:
            windows.setdefault(e["symbol"], set()).update(range(d, min(d + H, len(calendar))))

    def study(k, exclude):
        e, d = events[k], d0s[k]
        if e["symbol"] not in index_of:
            return {"reason": "unknown_symbol"}
        if d is None or d + H > len(calendar):
            return {"reason": "outside_calendar"}
        r, m = stock_r[e["symbol"]], index_r[index_of[e["symbol"]]]
        end = max(d - B, 0)
        start = max(end - L, 0)
        skip = windows.get(e["symbol"], set()) if exclude else set()
        xs, ys = [], []
        for t in range(start, end):
            if t in skip or math.isnan(r[t]) or math.isnan(m[t]):
                continue
            xs.append(m[t])
            ys.append(r[t])
        if len(xs) < min_obs:
            return {"reason": "insufficient_history", "d0": calendar[d]}
        n = len(xs)
        mx, my = sum(xs) / n, sum(ys) / n
        sxx = sum((x - mx) ** 2 for x in xs)
        sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
        beta = sxy / sxx
        alpha = my - beta * mx
        car = 0.0
        for t in range(d, d + H):
            if math.isnan(r[t]) or math.isnan(m[t]):
                return {"reason": "missing_prices", "d0": calendar[d]}
            car += r[t] - (alpha + beta * m[t])
        return {"d0": calendar[d], "alpha": alpha, "beta": beta, "observations": n, "car": car}

    out = {
        variant: {e["event_id"]: study(k, exclude) for k, e in enumerate(events)}
        for variant, exclude in (("exclude", True), ("classic", False))
    }
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    print()


if __name__ == "__main__":
    main(sys.argv[1])
