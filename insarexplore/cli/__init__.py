"""The ``insarexplore`` command line: a thin layer over the library.

Every command parses its arguments and calls one or two library functions; nothing here holds
logic the Python API lacks. Heavy libraries are imported inside the command functions, so
``insarexplore --help`` answers at once. Errors on bad input print one clear line and exit 2
(``--debug`` or ``INSAREXPLORE_DEBUG=1`` show the traceback); Ctrl-C exits 130 and leaves the
workspace consistent, so running the same command again resumes (stores are written
atomically, pretraining checkpoints, embeddings are saved block by block).

Modules: ``data`` (synth, ingest), ``model`` (pretrain, embed, project), ``explore`` (labels,
suggest, scores, info), ``serve`` (serve, demo); ``_common`` holds the shared argument helpers.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from collections.abc import Sequence

from insarexplore.cli._common import EXIT_INTERRUPTED, EXIT_USAGE, PROG, say
from insarexplore.cli.data import add_ingest as ingest
from insarexplore.cli.data import add_synth as synth
from insarexplore.cli.explore import add_info as info
from insarexplore.cli.explore import add_labels as labels
from insarexplore.cli.explore import add_scores as scores
from insarexplore.cli.explore import add_suggest as suggest
from insarexplore.cli.model import add_embed as embed
from insarexplore.cli.model import add_pretrain as pretrain
from insarexplore.cli.model import add_project as project
from insarexplore.cli.serve import add_demo as demo
from insarexplore.cli.serve import add_serve as serve

__all__ = ["build_parser", "main"]

# bad input the user can fix: one line on stderr, exit status 2
_HANDLED = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, PermissionError)
_SYSTEM_ERRNOS = {errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.ENOENT,
                  errno.EIO, errno.ENOTDIR, errno.EISDIR, errno.EMFILE, errno.ENAMETOOLONG}  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (every sub-command with its help and examples)."""
    from insarexplore import __version__

    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Explore archives of Sentinel-1 interferograms: synthesise or ingest them, pretrain\n"
            "a self-supervised encoder, embed, project, and label them in a dashboard."
        ),
        epilog=(
            "start here:\n"
            "  insarexplore demo                 # synthetic workspace -> model -> dashboard\n"
            "  insarexplore COMMAND --help       # options and examples of one command"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for add in (
        demo,
        synth,
        ingest,
        pretrain,
        embed,
        project,
        serve,
        labels,
        suggest,
        scores,
        info,
    ):
        add(sub)
    return parser


EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a tool killed by it reports

_RESUME = "What was finished is saved; run the same command again to resume."
_AFTER_INTERRUPT = {
    "ingest": "An ingest adds all of its files or none: `insarexplore info` shows whether "
    "this one's were added; if not, run it again.",
    "labels": "An import records all of its labels or none, and an export replaces its files "
    "only once all are written: run it again.",
}


def _quiet_teardown() -> None:
    """After Ctrl-C, the data store's I/O tasks still pending in their event loop are torn
    down with the interpreter; their complaints (asyncio's "Task was destroyed but it is
    pending!", "Exception ignored ... Event loop is closed") say nothing to the user."""
    import logging

    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    sys.unraisablehook = lambda unraisable: None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 bad input, 130 interrupted)."""
    from insarexplore.errors import InSARError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    debug = bool(getattr(args, "debug", False) or os.environ.get("INSAREXPLORE_DEBUG"))
    try:
        status = int(args.func(args) or 0)
        sys.stdout.flush()  # here, so that a reader gone away is seen below, not at exit
        return status
    except KeyboardInterrupt:
        _quiet_teardown()
        say(f"\n{PROG} {args.command}: interrupted. {_AFTER_INTERRUPT.get(args.command, _RESUME)}")
        return EXIT_INTERRUPTED
    except (InSARError, *_HANDLED) as exc:
        if debug:
            raise
        say(f"{PROG} {args.command}: error: {exc}")
        return EXIT_USAGE
    except BrokenPipeError:
        # the reader went away (`insarexplore info ws | head -3`): stop quietly, as a shell
        # tool does; the output left unflushed goes nowhere instead of raising again at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except OSError as exc:
        # the machine, not the code: a read-only or full disk, a quota, a missing mount
        if debug or exc.errno not in _SYSTEM_ERRNOS:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        say(f"{PROG} {args.command}: error: {where}{exc.strerror or exc}")
        return EXIT_USAGE
    except MemoryError:
        if debug:
            raise
        say(f"{PROG} {args.command}: error: not enough memory (try smaller --size or batches)")
        return EXIT_USAGE
