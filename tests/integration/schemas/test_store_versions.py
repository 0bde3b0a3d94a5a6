"""S3's listing with versions (ETags), against moto's server."""

from __future__ import annotations

from schemas.store import S3Store


def test_s3_versions_change_with_the_content_and_page_past_1000(s3_bucket):
    import boto3

    store = S3Store(s3_bucket, "team", client=boto3.client("s3", region_name="us-east-1"))
    for k in range(1005):
        store.write_bytes(f"heartbeats/j-{k:04d}/progress.json", b'{"step": 1}')
    store.write_bytes("jobs/j-0000/spec.json", b"{}")
    versions = store.list_versions("heartbeats/")
    assert len(versions) == 1005 and all(k.startswith("heartbeats/") for k in versions)
    before = versions["heartbeats/j-0007/progress.json"]
    store.write_bytes("heartbeats/j-0007/progress.json", b'{"step": 2}')
    after = store.list_versions("heartbeats/")
    assert after["heartbeats/j-0007/progress.json"] != before
    assert after["heartbeats/j-0008/progress.json"] == versions["heartbeats/j-0008/progress.json"]
