"""The console's routes: sign-in, the home redirect, and each section's pages.

Every page but the sign-in page needs a session (or a key); without one the front
door sends a browser to `/console/sign-in?next=<where it was>`.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Router, get
from litestar.params import QueryParameter
from litestar.response import Redirect, Template

from gateway.console import batches, jobs, lists, live, render, streams


def _safe_next(target: str | None) -> str:
    """Only a console path (no other site, no scheme-relative `//host`)."""
    if target and target.startswith("/console") and not target.startswith("//"):
        return target
    return "/console/lists"


@get("/sign-in", name="console-sign-in")
async def sign_in_page(
    next_: Annotated[str | None, QueryParameter(name="next", max_length=2000)] = None,
) -> Template:
    return render.fragment(
        "sign_in.html", next=_safe_next(next_), missing=render.missing_packages()
    )


@get(["/", ""], name="console-home")
async def home(request: Request[Any, Any, Any]) -> Redirect:
    return Redirect(path="/console/lists")


def router() -> Router:
    """The console under /console (pages are not part of the API's schema)."""
    return Router(
        path="/console",
        route_handlers=[
            sign_in_page,
            home,
            *lists.ROUTES,
            *jobs.ROUTES,
            *batches.ROUTES,
            *live.ROUTES,
            *streams.ROUTES,
        ],
        include_in_schema=False,
    )
