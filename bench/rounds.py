"""Records the verification rounds of several branches (bench/run.sh cluster).

    python3 bench/rounds.py --from K --count C PORT [PORT ...]

Polls each branch's GET /supervisor/ every 50 ms and, for each branch, keeps
the time of every round it finishes from round K on, until every branch has
C of them. Prints one JSON object: {"rounds": [[ms, ...] per branch],
"behind": [rounds completed by branches that did not get there]}. Exits 1
when a branch does not answer or the deadline (--timeout seconds) passes.
"""
import argparse
import json
import sys
import time
import urllib.request


def status(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/supervisor/", timeout=10) as r:
        return json.load(r)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--from", dest="first", type=int, default=3)
    ap.add_argument("--count", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("ports", nargs="+", type=int)
    a = ap.parse_args()
    seen = {p: {} for p in a.ports}
    deadline = time.monotonic() + a.timeout
    while time.monotonic() < deadline:
        for p in a.ports:
            s = status(p)
            k = s["rounds_completed"]
            if k >= a.first and k not in seen[p] and len(seen[p]) < a.count:
                seen[p][k] = s["last_round_ms"]
        if all(len(v) >= a.count for v in seen.values()):
            print(json.dumps({"rounds": [list(seen[p].values()) for p in a.ports]}))
            return 0
        time.sleep(0.05)
    behind = [len(v) for v in seen.values()]
    print(f"rounds.py: rounds recorded per branch {behind}, wanted {a.count}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
