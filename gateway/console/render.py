"""What every console page shares: its template engine, who is signed in, and the
static files (our own, and the front-end packages `make install` put in node_modules).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Request, Router
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Template
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from gateway.frontdoor.keys import WRITE, ApiKey

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
NODE_MODULES = HERE / "node_modules"
# URL path under /console/vendor/ -> the folder of its npm package that holds it.
VENDOR = {
    "htmx": NODE_MODULES / "htmx.org" / "dist",
    "uplot": NODE_MODULES / "uplot" / "dist",
    "swagger-ui": NODE_MODULES / "swagger-ui-dist",
}
SECTIONS = [
    ("lists", "Lists"),
    ("jobs", "Jobs"),
    ("batches", "Batches"),
    ("live", "Live"),
    ("streams", "Streams"),
]


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    return TemplateConfig(directory=TEMPLATES, engine=JinjaTemplateEngine)


def missing_packages() -> list[str]:
    """Front-end packages that are not installed (`make install` installs them)."""
    return [name for name, folder in VENDOR.items() if not folder.is_dir()]


def asset_routers() -> list[Router]:
    routers = [create_static_files_router(
        path="/console/static", directories=[STATIC], include_in_schema=False,
        name="console-static",
    )]  # fmt: skip
    for name, folder in VENDOR.items():
        routers.append(create_static_files_router(
            path=f"/console/vendor/{name}", directories=[folder], include_in_schema=False,
            name=f"console-vendor-{name}",
        ))  # fmt: skip
    return routers


def page(request: Request[ApiKey, Any, Any], name: str, section: str, **context: Any) -> Template:
    """A console page: `name` under templates/, with who is signed in and may they write."""
    who: ApiKey = request.user
    return Template(
        template_name=name,
        context={
            "who": who, "can_write": who.allows(WRITE), "section": section,
            "sections": SECTIONS, **context,
        },
    )  # fmt: skip


def fragment(name: str, **context: Any) -> Template:
    """A part of a page, for htmx to swap in (no layout)."""
    return Template(template_name=name, context=context)
