"""Run every ``benchmarks/bench_*.py``, print one table, and update ``benchmarks/RESULTS.md``.

Each benchmark module exposes ``run(quick: bool = False) -> list[dict]`` returning rows
``{"area", "metric", "value", "unit", "note"}``. This script runs them all (or ``--only`` some),
prints every figure in one table, and rewrites the machine-generated blocks of RESULTS.md: one
block per area, each stamped with the machine it was measured on. Blocks of areas that were not
run this time, and any hand-written text outside the blocks, are kept as they are.

    python benchmarks/run_all.py                 # everything, full sizes
    python benchmarks/run_all.py --quick         # small sizes, minutes instead of hours
    python benchmarks/run_all.py --only ssl --only explore
    python benchmarks/run_all.py --list
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.util
import math
import os
import platform
import re
import sys
import time
import traceback
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import ModuleType

__all__ = [
    "discover",
    "machine_info",
    "format_table",
    "render_area_block",
    "update_results",
    "run_benchmarks",
    "main",
]

HERE = Path(__file__).resolve().parent
DEFAULT_RESULTS = HERE / "RESULTS.md"
BEGIN = "<!-- run_all:begin area={area} -->"
END = "<!-- run_all:end area={area} -->"
_BLOCK_RE = re.compile(
    r"<!-- run_all:begin area=(?P<area>[\w.-]+) -->\n.*?<!-- run_all:end area=(?P=area) -->\n?",
    re.DOTALL,
)
_HEADER = """# Benchmark results

Figures produced by `python benchmarks/run_all.py` (one table per area). Each block says the
machine it was measured on; blocks are replaced only when their area is run again, so areas
measured on different machines or days can sit side by side. Text outside the marked blocks is
written by hand and kept as it is.
"""


def discover(directory: Path = HERE) -> dict[str, Path]:
    """Map area name -> benchmark file for every ``bench_<area>.py`` in ``directory``."""
    return {p.stem[len("bench_") :]: p for p in sorted(directory.glob("bench_*.py"))}


def _load(path: Path) -> ModuleType:
    """Import a benchmark file by path (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"_insarexplore_bench_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import benchmark file {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, "run", None)):
        raise AttributeError(f"{path.name} has no run(quick) function")
    return module


def _read_first(path: str, key: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if line.startswith(key):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def machine_info() -> dict[str, str]:
    """Describe this machine: CPU model, cores, memory, Python, torch and GPU, date (UTC)."""
    cpu = _read_first("/proc/cpuinfo", "model name") or platform.processor() or platform.machine()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count() or 0
    mem_kb = _read_first("/proc/meminfo", "MemTotal")
    if mem_kb:
        memory = f"{int(mem_kb.split()[0]) / 2**20:.1f} GiB"
    else:
        memory = "unknown"
    info = {
        "cpu": cpu,
        "cores": f"{usable} usable of {os.cpu_count()}",
        "memory": memory,
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "torch": "not installed",
        "gpu": "none",
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        if torch.cuda.is_available():
            names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            info["gpu"] = f"{len(names)} x {names[0]}" if len(set(names)) == 1 else ", ".join(names)
    except ImportError:
        pass
    return info


def _machine_line(info: dict[str, str]) -> str:
    return (
        f"{info['cpu']}, {info['cores']} cores, {info['memory']}; GPU: {info['gpu']}; "
        f"torch {info['torch']}, Python {info['python']}; {info['date']}"
    )


def _fmt_value(value: object) -> str:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(v):
        return "n/a"
    if v != 0 and (abs(v) >= 1e7 or abs(v) < 1e-3):
        return f"{v:.3g}"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.3g}"


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def format_table(rows: Sequence[dict], *, with_area: bool = True, markdown: bool = False) -> str:
    """Format benchmark rows as a plain-text (or markdown) table."""
    cols = (["area"] if with_area else []) + ["metric", "value", "unit", "note"]
    body = [
        [_fmt_value(r.get(c, "")) if c == "value" else _cell(r.get(c, "")) for c in cols]
        for r in rows
    ]
    if markdown:
        lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in body]
        return "\n".join(lines)
    widths = [max([len(c)] + [len(row[i]) for row in body]) for i, c in enumerate(cols)]
    fmt = "  ".join(f"{{:{'>' if c == 'value' else '<'}{w}}}" for c, w in zip(cols, widths))
    lines = [fmt.format(*cols), "  ".join("-" * w for w in widths)]
    lines += [fmt.format(*row) for row in body]
    return "\n".join(lines)


def render_area_block(area: str, rows: Sequence[dict], info: dict[str, str], *, quick: bool) -> str:
    """The machine-generated markdown block of one area, between its begin/end markers."""
    mode = "quick sizes (`--quick`)" if quick else "full sizes"
    return (
        f"{BEGIN.format(area=area)}\n"
        f"## {area}\n\n"
        f"Measured on: {_machine_line(info)}; {mode}.\n\n"
        f"{format_table(rows, with_area=False, markdown=True)}\n"
        f"{END.format(area=area)}\n"
    )


def update_results(text: str, blocks: dict[str, str]) -> str:
    """Replace or add each area's block in RESULTS.md text, keeping everything else."""
    if not text.strip():
        text = _HEADER
    seen: set[str] = set()

    def _swap(match: re.Match[str]) -> str:
        area = match.group("area")
        if area in blocks:
            seen.add(area)
            return blocks[area]
        return match.group(0)

    text = _BLOCK_RE.sub(_swap, text)
    new = [blocks[a] for a in sorted(blocks) if a not in seen]
    if new:
        text = text.rstrip("\n") + "\n\n" + "\n".join(new)
    return text if text.endswith("\n") else text + "\n"


def _check_rows(rows: object, area: str) -> list[dict]:
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise TypeError(f"bench_{area}.run() must return a list of dicts, got {type(rows)}")
    for r in rows:
        missing = {"metric", "value"} - set(r)
        if missing:
            raise KeyError(f"bench_{area}.run() row {r} lacks {sorted(missing)}")
        r.setdefault("area", area)
        r.setdefault("unit", "")
        r.setdefault("note", "")
    return rows


def run_benchmarks(
    areas: Iterable[str], files: dict[str, Path], *, quick: bool
) -> tuple[dict[str, list[dict]], dict[str, str]]:
    """Run each area's ``run(quick)``; return (rows per area, error per failed area)."""
    results: dict[str, list[dict]] = {}
    errors: dict[str, str] = {}
    for area in areas:
        print(f"[run_all] {area} ...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        try:
            module = _load(files[area])
            results[area] = _check_rows(module.run(quick=quick), area)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # one broken benchmark must not hide the others
            traceback.print_exc()
            errors[area] = f"{type(exc).__name__}: {exc}"
        elapsed = time.perf_counter() - start
        print(f"[run_all] {area} done in {elapsed:.1f} s", file=sys.stderr, flush=True)
    return results, errors


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run all insarexplore benchmarks and update benchmarks/RESULTS.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  python benchmarks/run_all.py --quick\n"
        "  python benchmarks/run_all.py --only synthetic --only ssl",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes (CI smoke run)")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="AREA",
        help="run only this area (repeatable, or comma-separated); others keep their rows",
    )
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="RESULTS.md path")
    parser.add_argument("--no-write", action="store_true", help="print only, do not update")
    parser.add_argument("--list", action="store_true", help="list the areas and exit")
    parser.add_argument("--dir", type=Path, default=HERE, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    files = discover(args.dir)
    if args.list:
        print("\n".join(files) if files else "(no benchmarks/bench_*.py found)")
        return 0
    only = [a.strip() for item in args.only for a in item.split(",") if a.strip()]
    unknown = [a for a in only if a not in files]
    if unknown:
        known = ", ".join(files) or "none"
        print(f"error: unknown area(s) {', '.join(unknown)}; known: {known}", file=sys.stderr)
        return 2
    areas = only or list(files)
    if not areas:
        print(f"error: no bench_*.py files in {args.dir}", file=sys.stderr)
        return 2

    info = machine_info()
    results, errors = run_benchmarks(areas, files, quick=args.quick)
    rows = [r for area in areas for r in results.get(area, [])]
    print(f"\nMachine: {_machine_line(info)}\n")
    print(format_table(rows) if rows else "(no figures)")
    for area, err in errors.items():
        print(f"FAILED {area}: {err}", file=sys.stderr)

    if not args.no_write and results:
        path: Path = args.results
        old = path.read_text(encoding="utf-8") if path.exists() else ""
        blocks = {a: render_area_block(a, r, info, quick=args.quick) for a, r in results.items()}
        tmp = path.with_suffix(".md.tmp")
        tmp.write_text(update_results(old, blocks), encoding="utf-8")
        tmp.replace(path)
        print(f"\nupdated {path} ({', '.join(sorted(blocks))})", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
