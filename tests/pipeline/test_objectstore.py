"""`imagemend run` against real object-store servers on loopback: moto's S3 server and the GCS emulator.

The same archives and row-by-row checks as on local disk; the bucket is listed afterwards to show
that nothing was written outside the output prefix (the escaping tar member included).
"""

import pytest

from tests.support.archives import build_archive
from tests.support.checks import check_run
from tests.support.jobs import run_job

LAYOUTS = ["files", "tar", "parquet"]


def _run_and_check(store, layout):
    archive = build_archive(store, layout)
    bucket = store.path()
    before = set(store.fs.find(bucket))
    out = store.join("restored")
    summary = run_job(archive.input, out, storage_options=store.storage_options)
    check_run(archive, out, summary)
    new = set(store.fs.find(bucket)) - before
    assert new and all(p.startswith(store.path("restored") + "/") for p in new), sorted(new)
    assert not any("escape" in p for p in new)
    return summary


@pytest.mark.parametrize("layout", LAYOUTS)
def test_s3_end_to_end(s3_store, layout):
    _run_and_check(s3_store, layout)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_gcs_end_to_end(gcs_store, layout):
    _run_and_check(gcs_store, layout)


def test_gcs_input_to_s3_output_with_separate_options(gcs_store, s3_store):
    archive = build_archive(gcs_store, "tar")
    out = s3_store.join("from-gcs")
    summary = run_job(archive.input, out, input_storage_options=gcs_store.storage_options,
                  output_storage_options=s3_store.storage_options)
    archive.store = s3_store  # outputs are read back from S3
    check_run(archive, out, summary)
    again = run_job(archive.input, out, input_storage_options=gcs_store.storage_options,
                output_storage_options=s3_store.storage_options)
    assert again["counts"]["shards_skipped"] == archive.shards  # resume works on an object store too
