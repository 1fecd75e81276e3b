"""Shared pieces of the command line: constants, argument types, sub-command builder."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from insarexplore._checks import check_unit, check_whole

PROG = "insarexplore"
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
DEFAULT_DEMO_DIR = "demo-workspace"
MAX_IMAGE_SIZE = 4096  # pixels per side: larger images would need terabytes, not a typo's fix


def say(message: str) -> None:
    """Progress notes go to stderr, so stdout stays clean for data (--json, CSV)."""
    print(message, file=sys.stderr, flush=True)


def open_workspace(path: str | Path, *, need_data: bool = False):  # -> Workspace
    from insarexplore.workspace import Workspace

    ws = Workspace.open(path)
    if need_data and not ws.has_data():
        raise ValueError(
            f"{ws.path}: the workspace has no data yet "
            "(add some with `insarexplore synth` or `insarexplore ingest`)"
        )
    return ws


def note_unembedded(ws: Any, model: str | None) -> None:
    """Say how many samples a command leaves out for having no embedding yet (after an
    ingest without `embed`), and how to add them."""
    from insarexplore.errors import WorkspaceError

    try:
        version = ws.resolve_model(model)
        n = int(ws.missing_embedding_ids(version).size) if ws.has_embeddings(version) else 0
    except (WorkspaceError, OSError, ValueError):
        return  # the command itself reports what is wrong
    if n:
        say(
            f"note: {n:,} samples have no embedding with {version} yet and are left out "
            f"(run `insarexplore embed {ws.path}`)"
        )


def bounded_int(upper: int, what: str = "a value") -> Callable[[str], int]:
    """An argparse type: a positive integer of at most ``upper``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}") from None
        if not 1 <= value <= upper:
            raise argparse.ArgumentTypeError(f"{what} must lie in 1..{upper}, got {text}")
        return value

    parse.__name__ = "bounded_int"
    return parse


image_size = bounded_int(MAX_IMAGE_SIZE, "an image size in pixels")


def positive_float(text: str) -> float:
    value = float(text)
    if not 0.0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def stretch_gain(text: str) -> float:
    """A gain of the embeddings' stretch: a number from 0.001 to 1000."""
    from insarexplore.names import STRETCH_GAINS as lo_hi

    value = float(text)
    if not lo_hi[0] <= value <= lo_hi[1]:
        raise argparse.ArgumentTypeError(
            f"must be a number from {lo_hi[0]:g} to {lo_hi[1]:g} (1: no stretch), got {text}"
        )
    return value


def _checked(check: Callable[..., Any], convert: type, *bounds: int) -> Callable[[str], Any]:
    """An argparse type: ``text`` converted, then held to the rule the Python API checks
    (:mod:`insarexplore._checks`), so the command line and the API agree."""

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            value = text
        try:
            return check("value", value, *bounds)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc).removeprefix("value: ")) from None

    return parse


def at_least(lower: int) -> Callable[[str], int]:
    """An argparse type: an integer of at least ``lower``."""
    return _checked(check_whole, int, lower)


non_negative_int = at_least(0)
positive_int = at_least(1)
#: A random seed: an integer from 0 to 2**32 - 1 (what numpy and torch accept).
seed_int = _checked(check_whole, int, 0, 2**32 - 1)
#: A number from 0 to 1 (UMAP's min_dist: at most its spread, 1).
unit_float = _checked(check_unit, float)


def non_negative_float(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1), got {text}")
    return value


def add_command(
    sub: Any,
    name: str,
    func: Callable[[argparse.Namespace], int | None],
    summary: str,
    examples: str,
    description: str | None = None,
) -> argparse.ArgumentParser:
    """A sub-command with its one-line summary, a description and an examples epilog."""
    parser = sub.add_parser(
        name,
        help=summary,
        description=description or summary,
        epilog="examples:\n" + examples.strip("\n"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show full tracebacks"
    )
    parser.set_defaults(func=func, command=name)
    return parser


_DEVICE = re.compile(r"^(cpu|mps|cuda(:\d+)?)$")


def device(text: str) -> str:
    """An argparse type: a torch device this machine has (cpu, cuda, cuda:N, mps)."""
    text = text.strip().lower()
    if not _DEVICE.match(text):
        raise argparse.ArgumentTypeError(f"unknown device {text!r}; use cpu, cuda, cuda:N or mps")
    if text == "cpu":
        return text
    import torch

    if text.startswith("cuda"):
        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError(
                f"{text}: this machine has no usable CUDA GPU (or torch was built without "
                "CUDA); use --device cpu"
            )
        index = int(text.split(":")[1]) if ":" in text else 0
        if index >= torch.cuda.device_count():
            raise argparse.ArgumentTypeError(
                f"{text}: there are only {torch.cuda.device_count()} CUDA device(s)"
            )
    elif not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise argparse.ArgumentTypeError("mps: not available on this machine; use --device cpu")
    return text


def add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        type=device,
        default=None,
        metavar="DEV",
        help="torch device: cpu, cuda, cuda:1, mps (default: best available)",
    )
