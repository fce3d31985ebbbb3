#!/usr/bin/python3
"""ab.py: A/B comparison of two carrier binaries on one scenario of bench/suite.py, rounds
interleaved A, B, A, B, ... (benchmark helper, not a test; root; loopback only).

  bench/ab.py --a BIN_A --b BIN_B [--scenario accept-1|size-10m|...] [--rounds 3] --out DIR

Prints the median per binary of accepted msgs/s, CPU s per 1000 messages and time-to-250
p50/p99, and B/A ratios; rows go to DIR/runs.tsv (suite.py's columns, label A or B).
"""
import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import suite  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--a", required=True)
    ap.add_argument("--b", required=True)
    ap.add_argument("--scenario", default="accept-1")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--load", default=f"{suite.ROOT}/build/carrier-tls-load")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    sc = next(s for s in suite.THROUGHPUT if s[0] == a.scenario)
    os.makedirs(a.out, exist_ok=True)
    os.makedirs(suite.SUITE_ROOT, exist_ok=True)
    a.load = os.path.abspath(a.load)
    rows = {"A": [], "B": []}
    for r in range(a.rounds):
        for label, binary in (("A", a.a), ("B", a.b)):
            sink = suite.Sink()
            srv = suite.Carrier(os.path.abspath(binary), name=f"carrier-{label}")
            srv.label = label
            try:
                rows[label].append(suite.run_load(a, a.out, sc[0], srv, *sc[1:5], sink=sink))
            finally:
                srv.stop()
                sink.stop()

    def med(label, col):
        v = [float(x[col]) for x in rows[label] if x[col] not in ("-", "INCOMPLETE", "FAIL")]
        return statistics.median(v) if v else float("nan")
    print(f"{'':8} {'msgs/s':>8} {'CPU s/1000':>10} {'t250 p50':>9} {'t250 p99':>9}")
    for label in ("A", "B"):
        print(f"{label:8} {med(label, 'accept_mps'):>8.0f} {med(label, 'cpu_s_per_1000'):>10.3f} "
              f"{med(label, 't250_p50_ms'):>9.2f} {med(label, 't250_p99_ms'):>9.2f}")
    print(f"{'B / A':8} {med('B', 'accept_mps') / med('A', 'accept_mps'):>8.2f} "
          f"{med('B', 'cpu_s_per_1000') / med('A', 'cpu_s_per_1000'):>10.2f} "
          f"{med('B', 't250_p50_ms') / med('A', 't250_p50_ms'):>9.2f} "
          f"{med('B', 't250_p99_ms') / med('A', 't250_p99_ms'):>9.2f}")


if __name__ == "__main__":
    main()
