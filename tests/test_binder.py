"""binder/: the environment resolves (offline, against the tested set) and postBuild runs clean."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"
PIP = [sys.executable, "-m", "pip"]


def binder_requirements() -> tuple[list[Requirement], list[str]]:
    reqs, options = [], []
    for line in (BINDER / "requirements.txt").read_text().splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            options.append(line)
        else:
            reqs.append(Requirement(line))
    return reqs, options


def project_requirements() -> list[Requirement]:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = meta["dependencies"] + meta["optional-dependencies"]["binder"]
    return [Requirement(d) for d in deps]


def _installed(name: str) -> Version | None:
    try:
        return Version(version(name))
    except PackageNotFoundError:
        return None


def test_requirements_are_cpu_torch_first_and_well_formed():
    reqs, options = binder_requirements()
    assert reqs[0].name == "torch", "torch must be installed first (CPU build)"
    assert str(reqs[0].specifier).startswith("=="), "pin torch so the CPU wheel is chosen"
    assert options == ["--extra-index-url https://download.pytorch.org/whl/cpu"]
    names = [r.name.lower().replace("_", "-") for r in reqs]
    assert len(names) == len(set(names)), "a package is listed twice"
    assert not [n for n in names if n.startswith("nvidia")], "no CUDA packages on Binder"
    assert "torchvision" not in names


def test_pins_agree_with_pyproject():
    """Every binder pin admits at least the installed version, which pyproject also admits."""
    pins = {r.name.lower().replace("_", "-"): r for r in binder_requirements()[0]}
    for req in project_requirements():
        pin = pins.get(req.name.lower().replace("_", "-"))
        have = _installed(req.name)
        if pin is None or have is None:
            continue
        assert req.specifier.contains(have, prereleases=True), f"{req} vs installed {have}"


def test_binder_set_is_the_tested_set():
    """Offline: pip finds every binder requirement already satisfied by this environment."""
    torch_pin = binder_requirements()[0][0]
    have = _installed("torch")
    if have is None or not torch_pin.specifier.contains(have):
        pytest.skip(f"this environment has torch {have}, not the Binder pin {torch_pin}")
    res = subprocess.run(
        [*PIP, "install", "--dry-run", "--no-index", "--no-deps", "-r", "binder/requirements.txt"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Would install" not in res.stdout, res.stdout


def test_package_with_binder_extra_resolves_offline(tmp_path):
    """`pip install .[binder]` (postBuild step 1) needs nothing beyond the installed set."""
    src = tmp_path / "src"
    (src / "insarexplore").mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    (src / "insarexplore" / "__init__.py").write_text("")
    res = subprocess.run(
        [*PIP, "install", "--dry-run", "--no-index", "--no-build-isolation", ".[binder]"],
        cwd=src,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    would = res.stdout.split("Would install", 1)[-1].split()
    assert would == ["insarexplore-0.1.0"], res.stdout[-2000:]


def test_environment_is_consistent():
    res = subprocess.run([*PIP, "check"], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_runtime_and_postbuild_files():
    runtime = (BINDER / "runtime.txt").read_text().strip()
    assert runtime.startswith("python-3.")
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    from packaging.specifiers import SpecifierSet

    assert SpecifierSet(requires).contains(runtime.removeprefix("python-") + ".0")
    post = BINDER / "postBuild"
    assert os.access(post, os.X_OK), "postBuild must be executable"
    subprocess.run(["bash", "-n", str(post)], check=True)


def test_proxy_entry_point_is_valid():
    """The check postBuild runs: entry point registered, config accepted by jupyter-server-proxy."""
    res = subprocess.run(
        [sys.executable, "-m", "insarexplore.app.proxy", "--check"],
        capture_output=True,
        text=True,
        env={**os.environ, "INSAREXPLORE_WORKSPACE": "/nonexistent/ws"},
    )
    assert res.returncode == 0, res.stderr
    assert "insarexplore.app.proxy:setup_proxy ok" in res.stdout
    assert "/nonexistent/ws: not built yet" in res.stdout


def test_setup_proxy_command_template():
    from insarexplore.app.proxy import setup_proxy

    cfg = setup_proxy()
    cmd = cfg["command"]
    assert cmd[:3] == [sys.executable, "-m", "insarexplore.cli"] and cmd[3] == "serve"
    assert cmd[cmd.index("--port") + 1] == "{port}"
    assert cmd[cmd.index("--prefix") + 1] == "{base_url}insarexplore"
    assert cmd[cmd.index("--address") + 1] == "127.0.0.1"
    assert cfg["absolute_url"] is True
    # the serve command accepts exactly these options
    from insarexplore import cli

    filled = [c.replace("{port}", "5999").replace("{base_url}", "/user/x/") for c in cmd[4:]]
    args = cli.build_parser().parse_args(["serve", *filled])
    assert args.prefix == "/user/x/insarexplore" and args.port == 5999


@pytest.mark.slow
def test_postbuild_runs_in_a_clean_home(tmp_path):
    """binder/postBuild from the repository root with an empty HOME: the demo workspace is built
    where notebook 1 and the server proxy look for it (the pip step is skipped: no network)."""
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "HOME": str(home),
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "INSAREXPLORE_SKIP_INSTALL": "1",
        "INSAREXPLORE_DEMO_ARGS": "--quick -n 64 --minutes 0.05",
        "OMP_NUM_THREADS": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "TQDM_DISABLE": "1",
    }
    res = subprocess.run(
        ["bash", str(BINDER / "postBuild")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "insarexplore.app.proxy:setup_proxy ok" in res.stdout
    from insarexplore.workspace import Workspace

    ws = Workspace.open(home / "demo-workspace")
    status = ws.status()
    assert status["data"]["samples"] > 0 and status["current_model"]
    assert status["embeddings"][status["current_model"]]["missing"] == 0
    kinds = {a["kind"] for a in status["artifacts"] if not a["stale"]}
    assert {"projection", "clusters", "anomaly"} <= kinds
    # the proxy finds it (same default location) and a second build is a no-op
    check = subprocess.run(
        [sys.executable, "-m", "insarexplore.app.proxy", "--check"],
        env={**env, "PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
    )
    assert f"{home / 'demo-workspace'}: exists" in check.stdout
    again = subprocess.run(["bash", str(BINDER / "postBuild")], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=600)  # fmt: skip
    assert again.returncode == 0 and "model: reusing" in again.stderr
