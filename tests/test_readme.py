"""The README's code must run as written."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_data_model_snippet_runs():
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "README has no python example"
    namespace: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    assert namespace["x"].shape == (2, 4, 64, 64)
    assert namespace["patches"].sizes["sample"] == 8
    assert namespace["png"].startswith(b"\x89PNG")


def test_readme_states_the_two_commands_and_ci_uses_the_test_one():
    text = (ROOT / "README.md").read_text()
    assert "make demo" in text and "make test" in text
    assert "make test" in (ROOT / ".ci" / "run").read_text()
