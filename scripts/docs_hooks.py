"""MkDocs hooks: publish the HTTP API's OpenAPI schema, generated from the code, beside the pages."""

from __future__ import annotations

import json

from mkdocs.structure.files import File


def on_files(files, config):
    """Add ``openapi.json`` (`custseg.api.openapi_schema`) to the site's files, so that pages can link it."""
    from custseg.api import openapi_schema

    files.append(File.generated(config, "openapi.json", content=json.dumps(openapi_schema(), indent=2)))
    return files
