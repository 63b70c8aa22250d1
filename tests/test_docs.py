"""The docs cannot rot: the README example runs, and every setting is documented."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _python_blocks(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown, flags=re.DOTALL)


def test_readme_quickstart_names_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    bash = re.findall(r"```bash\n(.*?)```", section, flags=re.DOTALL)[0]
    commands = [line.split("#")[0].strip() for line in bash.splitlines() if line.strip()]
    assert commands == ["make demo", "make test"]


@pytest.mark.slow
def test_readme_python_example_runs(tmp_path: Path) -> None:
    blocks = _python_blocks((ROOT / "README.md").read_text())
    assert blocks, "README has no python example"
    script = tmp_path / "example.py"
    script.write_text(blocks[0])
    out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert "tree-8" in out.stdout  # the best run by r2
    assert (tmp_path / "modelyard.toml").is_file()


def test_every_setting_is_documented() -> None:
    from modelyard.settings import Settings

    doc = (ROOT / "docs" / "configuration.md").read_text()
    for f in Settings.fields():
        assert f"`{f.metadata['toml']}`" in doc, f.name
        assert f"`{f.metadata['env']}`" in doc, f.name
        assert f.metadata["doc"], f"setting {f.name} has no doc line"
