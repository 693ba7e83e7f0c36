"""The OpenAPI document's corrections, and the interactive docs served from the app itself.

The document is a contract that clients and the API fuzzer (tests/test_fuzz.py) check
responses against, so it must be exact: request bodies refuse unknown fields, and some
responses come in several media types.

Swagger UI at /schema loads its script, styles and icon from /schema/assets, out of the
swagger-ui-bundle-v2 package, never from a CDN (SPEC §5: the docs work offline).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import msgspec
import swagger_ui_bundle
from litestar import Router, get
from litestar._openapi.schema_generation.plugins import StructSchemaPlugin
from litestar.exceptions import NotFoundException
from litestar.openapi import ResponseSpec
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import OpenAPIFormat, OpenAPIMediaType, OpenAPIType, Operation, Schema
from litestar.params import FromPath
from litestar.response import File

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
# the package (source maps, its demo page) is served.
SWAGGER_FILES = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui-standalone-preset.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}


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
        super().__init__(
            js_url=f"{assets}/swagger-ui-bundle.js",
            css_url=f"{assets}/swagger-ui.css",
            standalone_preset_js_url=f"{assets}/swagger-ui-standalone-preset.js",
            favicon=f"<link rel='icon' type='image/png' href='{assets}/favicon-32x32.png'>",
        )

    def receive_router(self, router: Router) -> None:
        super().receive_router(router)
        router.register(swagger_asset)
