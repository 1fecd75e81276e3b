"""benchmarks/run_all.py: discovery, one table, RESULTS.md blocks kept across --only runs."""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run_all():
    spec = importlib.util.spec_from_file_location("run_all", ROOT / "benchmarks" / "run_all.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _bench(directory: Path, area: str, body: str) -> None:
    (directory / f"bench_{area}.py").write_text(textwrap.dedent(body))


@pytest.fixture
def bench_dir(tmp_path: Path) -> Path:
    d = tmp_path / "benchmarks"
    d.mkdir()
    _bench(
        d,
        "alpha",
        """
        def run(quick=False):
            n = 10 if quick else 1000
            return [{"area": "alpha", "metric": "items per second", "value": float(n),
                     "unit": "1/s", "note": "quick" if quick else "full"}]
        """,
    )
    _bench(
        d,
        "beta",
        """
        def run(quick=False):
            return [{"area": "beta", "metric": "latency", "value": 0.25, "unit": "s", "note": ""},
                    {"area": "beta", "metric": "peak memory", "value": 1234.5, "unit": "MiB",
                     "note": "a|b"}]
        """,
    )
    return d


def test_runs_everything_and_writes_blocks(run_all, bench_dir, tmp_path, capsys):
    results = tmp_path / "RESULTS.md"
    rc = run_all.main(["--quick", "--dir", str(bench_dir), "--results", str(results)])
    assert rc == 0
    out = capsys.readouterr().out
    assert "items per second" in out and "latency" in out and "peak memory" in out
    text = results.read_text()
    assert "<!-- run_all:begin area=alpha -->" in text
    assert "<!-- run_all:begin area=beta -->" in text
    assert "| items per second | 10 | 1/s | quick |" in text
    assert "a\\|b" in text  # pipes inside cells are escaped
    assert "Measured on:" in text and "torch" in text


def test_only_keeps_other_areas_and_hand_text(run_all, bench_dir, tmp_path):
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\nHand-written quality table.\n")
    assert run_all.main(["--quick", "--dir", str(bench_dir), "--results", str(results)]) == 0
    before = results.read_text()
    beta_block = before[before.index("<!-- run_all:begin area=beta") :]
    assert (
        run_all.main(["--only", "alpha", "--dir", str(bench_dir), "--results", str(results)]) == 0
    )
    after = results.read_text()
    assert "Hand-written quality table." in after
    assert "| items per second | 1,000 | 1/s | full |" in after  # alpha replaced
    assert "| items per second | 10 |" not in after
    assert beta_block in after  # beta untouched
    assert after.count("<!-- run_all:begin area=alpha -->") == 1


def test_failing_benchmark_reported_and_others_kept(run_all, bench_dir, tmp_path, capsys):
    _bench(bench_dir, "broken", "def run(quick=False):\n    raise RuntimeError('no GPU')\n")
    results = tmp_path / "RESULTS.md"
    rc = run_all.main(["--quick", "--dir", str(bench_dir), "--results", str(results)])
    assert rc == 1
    assert "FAILED broken: RuntimeError: no GPU" in capsys.readouterr().err
    text = results.read_text()
    assert "area=alpha" in text and "area=broken" not in text


def test_unknown_area_is_an_error(run_all, bench_dir, tmp_path, capsys):
    rc = run_all.main(["--only", "nope", "--dir", str(bench_dir), "--results", str(tmp_path / "R")])
    assert rc == 2
    assert "unknown area(s) nope" in capsys.readouterr().err


def test_bad_rows_rejected(run_all, tmp_path, capsys):
    d = tmp_path / "b"
    d.mkdir()
    _bench(d, "bad", "def run(quick=False):\n    return [{'value': 1.0}]\n")
    assert run_all.main(["--dir", str(d), "--no-write"]) == 1
    assert "lacks ['metric']" in capsys.readouterr().err


def test_value_formatting(run_all):
    assert run_all._fmt_value(float("nan")) == "n/a"
    assert run_all._fmt_value(123456.7) == "123,457"
    assert run_all._fmt_value(0.5) == "0.5"
    assert run_all._fmt_value(2e-5) == "2e-05"


def test_machine_info_fields(run_all):
    info = run_all.machine_info()
    assert {"cpu", "cores", "memory", "torch", "gpu", "date"} <= set(info)
    assert info["date"].endswith("UTC")


def test_real_benchmarks_discoverable(run_all):
    """Every committed bench_*.py exposes run(quick)."""
    for area, path in run_all.discover().items():
        src = path.read_text()
        assert "def run(" in src, f"bench_{area}.py has no run()"
