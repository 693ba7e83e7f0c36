"""The OpenAPI document's corrections, and the interactive docs served from the app itself.

The document is a contract that clients and the API fuzzer (tests/live/test_fuzz.py) check
responses against, so it must be exact: request bodies refuse unknown fields, and some
responses come in several media types.

Swagger UI at /schema loads its script, styles and icon from /schema/assets, out of the
swagger-ui-bundle-v2 package, never from a CDN (SPEC §5: the docs work offline), and is
started by app/static/docs.js: the page has nothing inline, so its CSP allows only files
of this origin, and it is never framed, like the console.
"""

from __future__ import annotations

import dataclasses
import html
from typing import TYPE_CHECKING, Any

import msgspec
import swagger_ui_bundle
from litestar import Request, Router, get
from litestar._openapi.schema_generation.plugins import StructSchemaPlugin
from litestar.exceptions import NotFoundException
from litestar.openapi import ResponseSpec
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import OpenAPIFormat, OpenAPIMediaType, OpenAPIType, Operation, Schema
from litestar.params import FromPath
from litestar.response import File

from app.static_files import static_url

if TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator
    from litestar.typing import FieldDefinition

BINARY = Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)
TEXT = Schema(type=OpenAPIType.STRING)
# The public pages answer errors as HTML for people, not problem documents.
HTML_PAGE = ResponseSpec(str, description="An HTML page saying what went wrong", media_type="text/html", generate_examples=False)


class StrictStructSchemaPlugin(StructSchemaPlugin):
    """Litestar's msgspec schemas, plus `additionalProperties: false` for Structs with
    `forbid_unknown_fields`, which answer 422 to an unknown field."""

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: SchemaCreator) -> Schema:
        schema = super().to_openapi_schema(field_definition, schema_creator)
        info = msgspec.inspect.type_info(field_definition.type_)
        if getattr(info, "forbid_unknown_fields", False):
            schema.additional_properties = False
        return schema


def media_types(status: int, content: dict[str, Schema], keep: bool = False) -> type[Operation]:
    """An operation class whose `status` response lists several media types (Litestar lists one).

    With `keep`, the media type Litestar documented (from the return type) stays beside them.
    """

    @dataclasses.dataclass
    class MultiMediaOperation(Operation):
        def __post_init__(self) -> None:
            response = (self.responses or {}).get(str(status))
            if response is not None and not isinstance(response, dict):
                extra = {name: OpenAPIMediaType(schema=schema) for name, schema in content.items()}
                response.content = {**(response.content or {}), **extra} if keep else extra

    return MultiMediaOperation


# --- the interactive docs, offline --------------------------------------------------

# The files Swagger UI's page needs, by name, with their media types: nothing else of
# the package (source maps, its demo page, the standalone layout's preset) is served.
SWAGGER_FILES = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}

# Only what the page uses: scripts and styles from this origin (nothing inline), the
# document and "Try it out" requests to this origin, and the data: images in Swagger UI's
# styles; no frame may hold it. Checked in Chromium with no violation (tests/browser/test_docs_browser.py).
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
DOCS_HEADERS = {"Content-Security-Policy": DOCS_CSP, "X-Content-Type-Options": "nosniff"}


def docs_router(path: str = "/schema") -> Router:
    """The router Litestar puts the docs on (OpenAPIConfig.openapi_router): every answer under it carries DOCS_HEADERS."""
    return Router(path, route_handlers=[], include_in_schema=False, response_headers=DOCS_HEADERS)


@get("/assets/{name:str}", include_in_schema=False, sync_to_thread=False)
def swagger_asset(name: FromPath[str]) -> File:
    """One of SWAGGER_FILES, from the installed package. Raises NotFoundException for anything else."""
    media_type = SWAGGER_FILES.get(name)
    if media_type is None:
        raise NotFoundException("no such file")
    return File(
        swagger_ui_bundle.swagger_ui_path / name,
        media_type=media_type,
        content_disposition_type="inline",
        headers={"Cache-Control": "public, max-age=86400"},
    )


class OfflineSwagger(SwaggerRenderPlugin):
    """Swagger UI at the OpenAPI path (/schema), its assets served beside it (/schema/assets)."""

    def __init__(self, openapi_path: str = "/schema") -> None:
        assets = f"{openapi_path}/assets"
        self.document_url = f"{openapi_path}/openapi.json"
        super().__init__(
            js_url=f"{assets}/swagger-ui-bundle.js",
            css_url=f"{assets}/swagger-ui.css",
            favicon=f"<link rel='icon' type='image/png' href='{assets}/favicon-32x32.png'>",
        )

    def render(self, request: Request, openapi_schema: dict[str, Any]) -> bytes:
        """The page without Litestar's inline script and style, which DOCS_CSP refuses:
        app/static/docs.js starts Swagger UI on the element, with the document's URL."""
        return (
            "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{html.escape(openapi_schema['info']['title'])}</title>{self.favicon}"
            f"<link rel='stylesheet' href='{self.css_url}'>"
            f"<script src='{self.js_url}' defer></script><script src='{static_url('docs.js')}' defer></script>"
            f"</head><body><div id='swagger-ui' data-document='{self.document_url}'></div></body></html>"
        ).encode()

    def receive_router(self, router: Router) -> None:
        # Not the base class's OAuth2 redirect page: the API has no OAuth2 flow, and the
        # page is an inline script, which DOCS_CSP refuses.
        router.register(swagger_asset)
