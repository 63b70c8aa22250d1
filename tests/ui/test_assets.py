"""The static files: linked by a digest of their content, and only then kept by the
browser (so an upgrade's new files are fetched, and a page load is one request)."""

from __future__ import annotations

import re
from pathlib import Path

import modelyard
from modelyard.ui import ui_app
from modelyard.ui.pages import asset_tag
from tests.ui.support import client


def test_assets_are_linked_by_digest_and_cached_only_when_asked_for_by_it(
        tmp_path: Path) -> None:
    yard = modelyard.connect(f"sqlite:///{tmp_path / 'store.db'}",
                             artifact_uri=(tmp_path / "artifacts").as_uri(), capture_git=False)
    try:
        with client(ui_app(yard)) as web:
            html = web.get("/runs").text
            links = re.findall(r'"(/static/[^"?]+)\?v=([0-9a-f]+)"', html)
            assert {path for path, _ in links} == {
                "/static/ui.css", "/static/ui.js", "/static/favicon.svg"}
            assert {tag for _, tag in links} == {asset_tag()}
            kept = web.get("/static/ui.css", params={"v": asset_tag()})
            assert kept.status_code == 200 and "max-age=86400" in kept.headers["cache-control"]
            plain = web.get("/static/ui.css")
            assert plain.status_code == 200 and "cache-control" not in plain.headers
            assert web.get("/static/missing.css", params={"v": "x"}).status_code == 404
    finally:
        yard.close()


def test_the_digest_follows_the_files_content(tmp_path: Path) -> None:
    (tmp_path / "ui.css").write_text("body { color: black }")
    (tmp_path / "ui.js").write_text("void 0;")
    first = asset_tag(tmp_path)
    assert re.fullmatch(r"[0-9a-f]{12}", first) and asset_tag(tmp_path) == first
    (tmp_path / "ui.css").write_text("body { color: navy }")
    assert asset_tag(tmp_path) != first
    assert asset_tag() != first  # the package's own files
