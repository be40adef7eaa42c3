"""The documentation site: MkDocs in strict mode (a broken link or reference fails), offline."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import PROJECT


def test_the_site_builds_in_strict_mode(tmp_path):
    site = tmp_path / "site"
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert built.returncode == 0, built.stderr[-3000:]
    # The Python API reference comes from the docstrings.
    reference = (site / "python-api" / "index.html").read_text(encoding="utf-8")
    for name in ("custseg.runs.Run", "custseg.runs.Stages", "custseg.runs.Model", "custseg.pipeline.compare"):
        assert name in reference, name
    # The HTTP API page links the OpenAPI schema, generated from the code.
    schema = json.loads((site / "openapi.json").read_text(encoding="utf-8"))
    assert {"/v1/assign", "/v1/segments", "/healthz"} <= set(schema["paths"])
    assert 'href="../openapi.json"' in (site / "http-api" / "index.html").read_text(encoding="utf-8")
    # The run record's JSON Schema is published from the code too, and its page links it.
    from custseg.record import json_schema

    assert json.loads((site / "run-record.schema.json").read_text(encoding="utf-8")) == json_schema()
    assert 'href="../run-record.schema.json"' in (site / "run-record" / "index.html").read_text(encoding="utf-8")
