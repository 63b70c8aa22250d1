"""What every view shares: the app's state (the Yard, the authorize hook, the templates),
rendering a page, links that keep state in the URL, and reading a posted form."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from modelyard.client import Yard
from modelyard.errors import ModelyardError
from modelyard.ui import format as fmt
from modelyard.ui.auth import Action, Authorize

__all__ = ["UiState", "form", "href", "page", "state_of", "with_params"]

ParamValue = str | int | float | Sequence[str] | None


class CrossSiteError(ModelyardError):
    """A form posted from another site: actions are taken only from the UI's own pages."""

    http_status = 403


class UiState:
    """The project the UI shows, the hook that allows actions, and the templates."""

    def __init__(self, yard: Yard, authorize: Authorize,
                 identify: Callable[[Request], str | None] = lambda request: None) -> None:
        self.yard = yard
        self.authorize = authorize
        self.identify = identify  # who acts, for the alias history (None: the OS user)
        self.templates = Environment(
            loader=PackageLoader("modelyard.ui", "templates"),
            autoescape=select_autoescape(["html"]), undefined=StrictUndefined,
            trim_blocks=True, lstrip_blocks=True)
        self.templates.filters.update(num=fmt.number, when=fmt.when, size=fmt.size)
        self.templates.globals.update(href=href, with_params=with_params,
                                      duration=fmt.duration, asset_tag=asset_tag())

    def allow(self, request: Request, action: Action) -> None:
        """Refuse a cross-site post, then ask the authorize hook (which raises to refuse)."""
        origin = request.headers.get("origin")
        if origin and origin != "null" and urlsplit(origin).netloc != request.url.netloc:
            raise CrossSiteError(f"the {action} form was posted from {origin}, not from "
                                 "this UI; open the page here and submit it again")
        self.authorize(request, action)


def asset_tag(folder: Traversable | None = None) -> str:
    """A digest of the static files (those of ``folder``, default the package's), put in
    their links (``?v=``): a browser may then keep them (see ``app.CachedAssets``) and
    still fetches new ones after an upgrade."""
    digest = hashlib.sha256()
    where = folder if folder is not None else files("modelyard.ui").joinpath("static")
    for item in sorted(where.iterdir(), key=lambda entry: entry.name):
        if item.is_file():
            digest.update(item.name.encode() + b"\0" + item.read_bytes())
    return digest.hexdigest()[:12]


def state_of(request: Request) -> UiState:
    state: UiState = request.app.state.ui
    return state


def href(request: Request, path: str, **params: ParamValue) -> str:
    """A link inside the UI (under whatever prefix it is mounted at), with query params;
    params that are None or empty are left out, lists repeat the key."""
    base = str(request.scope.get("root_path", "")).rstrip("/")
    query = urlencode({k: v for k, v in params.items() if v not in (None, "", [], ())},
                      doseq=True)
    return f"{base}{path}" + (f"?{query}" if query else "")


def with_params(request: Request, **changes: ParamValue) -> str:
    """The current page's link with some query params changed (None removes one)."""
    params: dict[str, ParamValue] = {}
    for key in request.query_params:
        values = request.query_params.getlist(key)
        params[key] = values if len(values) > 1 else values[0]
    for key, value in changes.items():
        params[key.rstrip("_")] = value
    return href(request, request.url.path.removeprefix(
        str(request.scope.get("root_path", "")).rstrip("/")), **params)


def page(request: Request, template: str, *, status: int = 200, section: str = "",
         **context: Any) -> HTMLResponse:
    """``template`` rendered with ``context`` (plus the request and the active section)."""
    body = state_of(request).templates.get_template(template).render(
        request=request, section=section, **context)
    return HTMLResponse(body, status_code=status)


async def form(request: Request) -> Mapping[str, str]:
    """A posted ``application/x-www-form-urlencoded`` form (the UI's forms send no
    files), the last value of each field."""
    body = (await request.body()).decode("utf-8", errors="replace")
    return {k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()}
