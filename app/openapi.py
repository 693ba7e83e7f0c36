"""Corrections to the OpenAPI document Litestar generates, where it cannot say what the app does.

The document is a contract that clients and the API fuzzer (tests/test_fuzz.py) check
responses against, so it must be exact: request bodies refuse unknown fields, and some
responses come in several media types.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import msgspec
from litestar._openapi.schema_generation.plugins import StructSchemaPlugin
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import OpenAPIFormat, OpenAPIMediaType, OpenAPIType, Operation, Schema

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
