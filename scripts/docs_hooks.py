"""MkDocs hooks: publish the schemas generated from the code (the HTTP API's, run.json's) beside the pages."""

from __future__ import annotations

import json

from mkdocs.structure.files import File


def on_files(files, config):
    """Add ``openapi.json`` and ``run-record.schema.json`` to the site's files, so that pages can link them."""
    from custseg.api import openapi_schema
    from custseg.record import json_schema

    files.append(File.generated(config, "openapi.json", content=json.dumps(openapi_schema(), indent=2)))
    files.append(File.generated(config, "run-record.schema.json", content=json.dumps(json_schema(), indent=2)))
    return files
