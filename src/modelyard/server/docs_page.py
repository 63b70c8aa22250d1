"""``GET /docs``: Swagger UI (from a CDN) over ``openapi.json``, on top of a plain listing.

The listing of the endpoints is written into the page itself, so the page is useful without
network access; when the Swagger UI script loads, it takes the listing's place.
"""

from __future__ import annotations

from html import escape
from typing import Any

__all__ = ["SWAGGER_UI", "docs_page"]

SWAGGER_UI = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5"
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} API</title>
<link rel="stylesheet" href="{cdn}/swagger-ui.css">
<style>
  body {{ margin: 0; font-family: system-ui, sans-serif; }}
  #endpoints {{ max-width: 60rem; margin: 2rem auto; padding: 0 1rem; }}
  #endpoints code {{ font-size: 0.95em; }}
  #endpoints td {{ padding: 0.25rem 0.75rem 0.25rem 0; vertical-align: top; }}
  .method {{ font-weight: bold; text-transform: uppercase; }}
</style>
</head>
<body>
<div id="swagger-ui"></div>
<section id="endpoints">
<h1>{title} {version}</h1>
<p>The interactive documentation could not be loaded (it comes from {cdn}).
The endpoints, described in full in <a href="openapi.json">openapi.json</a>:</p>
<table>
{rows}
</table>
</section>
<script src="{cdn}/swagger-ui-bundle.js" crossorigin="anonymous"></script>
<script>
  if (window.SwaggerUIBundle) {{
    document.getElementById("endpoints").hidden = true;
    window.ui = SwaggerUIBundle({{url: "openapi.json", dom_id: "#swagger-ui"}});
  }}
</script>
</body>
</html>
"""


def docs_page(spec: dict[str, Any]) -> str:
    """The HTML page for an OpenAPI document."""
    rows = []
    for path, item in spec.get("paths", {}).items():
        for method in _METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            rows.append(
                f'<tr><td class="method">{method}</td><td><code>{escape(path)}</code></td>'
                f'<td>{escape(str(operation.get("summary", "")))}</td></tr>')
    info = spec.get("info", {})
    return _PAGE.format(title=escape(str(info.get("title", "API"))),
                        version=escape(str(info.get("version", ""))), cdn=SWAGGER_UI,
                        rows="\n".join(rows))
