"""The output tables' schemas (pipeline/schema.py)."""

from pathlib import Path

from imagemend.pipeline import schema

REPO = Path(__file__).resolve().parents[2]


def test_schemas_are_documented_in_architecture_md():
    text = (REPO / "docs" / "ARCHITECTURE.md").read_text()
    assert schema.markdown(schema.METRICS_SCHEMA) in text
    assert schema.markdown(schema.ERRORS_SCHEMA) in text
