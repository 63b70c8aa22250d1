"""The docs cannot rot: the Quickstart is two commands, and every setting is documented.

The Python examples of the README and docs/*.md run in tests/docs/test_examples.py.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_quickstart_names_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    bash = re.findall(r"```bash\n(.*?)```", section, flags=re.DOTALL)[0]
    commands = [line.split("#")[0].strip() for line in bash.splitlines() if line.strip()]
    assert commands == ["make demo", "make test"]


def test_every_setting_is_documented() -> None:
    from modelyard.settings import Settings

    doc = (ROOT / "docs" / "configuration.md").read_text()
    for f in Settings.fields():
        assert f"`{f.metadata['toml']}`" in doc, f.name
        assert f"`{f.metadata['env']}`" in doc, f.name
        assert f.metadata["doc"], f"setting {f.name} has no doc line"
