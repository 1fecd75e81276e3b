"""Paired comparison of two quality-benchmark runs on validation (the same label draws).

``bench_quality.py`` writes one JSON per configuration under benchmarks/out; every run of the
same data and seed count uses the same draws, so two configurations' ``ssl`` scores pair up
draw by draw. This prints the mean difference, its standard error and the paired t-test p-value,
on validation only (choices are made there).

    python benchmarks/compare_quality.py out/quality-A.json out/quality-B.json [--kind phase]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from insarexplore.explore.protocol import paired, summarise  # noqa: E402


def compare(a: Path, b: Path, kind: str, name: str = "ssl") -> dict:
    ra, rb = (json.loads(Path(p).read_text())[kind] for p in (a, b))
    if ra.get("draws_hash") != rb.get("draws_hash"):
        raise ValueError("the two runs did not use the same label draws: they cannot be paired")
    va, vb = ra["val"][name], rb["val"][name]
    return {"a": summarise(va), "b": summarise(vb), **paired(va, vb)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("a", type=Path, help="results JSON of configuration A (benchmarks/out)")
    p.add_argument("b", type=Path, help="results JSON of configuration B, same draws")
    p.add_argument("--kind", default="phase", help="phase or rgb (phase)")
    p.add_argument("--name", default="ssl", help="representation to compare (ssl)")
    args = p.parse_args(argv)
    for f in (args.a, args.b):
        if not f.is_file():
            print(f"error: {f}: no such results file", file=sys.stderr)
            return 2
    try:
        c = compare(args.a, args.b, args.kind, args.name)
    except KeyError as e:
        print(f"error: no {e} in the results (run bench_quality.py for that kind)", file=sys.stderr)
        return 2
    except ValueError as e:
        print(f"error: {args.a.name} and {args.b.name}: {e}", file=sys.stderr)
        return 2
    print(f"A {args.a.name}: {c['a']}")
    print(f"B {args.b.name}: {c['b']}")
    print(
        f"A - B: {c['diff']:+.4f} +- {c['se']:.4f} (paired t-test p {c['p']:.2g}, n {c['n']:.0f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
