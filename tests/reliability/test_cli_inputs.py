"""Hostile command-line values: one error line and exit status 2, never a traceback or a
15 TB allocation."""

from __future__ import annotations

import pytest

from insarexplore import cli


def _fails_cleanly(argv, capsys, *words):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    error_lines = [line for line in err.splitlines() if ": error:" in line]
    assert len(error_lines) == 1, err
    for word in words:
        assert word in error_lines[0], err
    return error_lines[0]


@pytest.mark.parametrize(
    "argv",
    [
        ["pretrain", "ws"],
        ["embed", "ws"],
        ["synth", "ws"],
        ["demo", "ws", "--no-serve"],
    ],
)
def test_unknown_device_is_refused(argv, capsys):
    _fails_cleanly([*argv, "--device", "toaster"], capsys, "--device", "toaster")


def test_cuda_on_a_machine_without_it_is_refused(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    _fails_cleanly(["pretrain", "ws", "--device", "cuda"], capsys, "cuda", "--device cpu")
    _fails_cleanly(["embed", "ws", "--device", "cuda:1"], capsys, "cuda")


def test_a_cuda_index_beyond_the_gpus_is_refused(capsys):
    import torch

    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    _fails_cleanly(["embed", "ws", "--device", f"cuda:{n + 7}"], capsys, "cuda")


def test_known_devices_parse():
    args = cli.build_parser().parse_args(["embed", "ws", "--device", "CPU"])
    assert args.device == "cpu"


@pytest.mark.parametrize(
    "argv",
    [
        ["pretrain", "ws", "--image-size", "100000"],
        ["synth", "ws", "--size", "100000"],
        ["pretrain", "ws", "--image-size", "0"],
        ["synth", "ws", "--size", "big"],
    ],
)
def test_sizes_are_bounded(argv, capsys):
    _fails_cleanly(argv, capsys, argv[2])


def test_sizes_within_bounds_parse():
    parser = cli.build_parser()
    assert parser.parse_args(["synth", "ws", "--size", "4096"]).size == 4096
    assert parser.parse_args(["pretrain", "ws", "--image-size", "224"]).image_size == 224
