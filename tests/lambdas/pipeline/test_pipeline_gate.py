"""The evaluation gate against moto S3: promote only a model that is not worse."""

from __future__ import annotations

import json

import pytest
from pipeline_support import BUCKET, manifest, put_training_output
from recsys_lambdas.pipeline import artifacts, gate
from recsys_lambdas.pipeline.artifacts import ArtifactError


def serve(s3, ndcg: float, version: str = "old") -> None:
    artifacts.write_serving_record(
        s3,
        BUCKET,
        {
            "modelDataUrl": "s3://b/old/model.tar.gz",
            "modelVersion": version,
            "manifest": manifest(ndcg, version),
        },
    )


def test_first_model_is_promoted_when_nothing_serves(pipeline_aws):
    url = put_training_output(
        pipeline_aws["s3"], "job-1", {"manifest.json": json.dumps(manifest(0.10, "new"))}
    )
    out = gate.evaluate(pipeline_aws["s3"], BUCKET, url, tolerance=0.0)
    assert out["promote"] is True
    assert out["reason"] == "no model serves yet"
    assert out["candidate"]["outputDataUrl"] == url.replace("model.tar.gz", "output.tar.gz")
    assert out["candidate"]["modelVersion"] == "new"
    assert out["candidate"]["manifest"]["offline_metrics"]["two_stage"]["NDCG@10"] == 0.10
    assert out["serving"] is None


@pytest.mark.parametrize(
    ("new", "old", "tolerance", "promote"),
    [
        (0.20, 0.10, 0.0, True),  # better
        (0.10, 0.10, 0.0, True),  # equal
        (0.096, 0.10, 0.005, True),  # worse, within tolerance
        (0.090, 0.10, 0.005, False),  # worse by more than the tolerance
    ],
)
def test_gate_compares_two_stage_ndcg_at_10_with_the_serving_model(
    pipeline_aws, new, old, tolerance, promote
):
    s3 = pipeline_aws["s3"]
    serve(s3, old)
    url = put_training_output(s3, "job-2", {"./manifest.json": json.dumps(manifest(new, "new"))})
    out = gate.evaluate(s3, BUCKET, url, tolerance=tolerance)
    assert out["promote"] is promote, out["reason"]
    assert out["serving_score"] == old and out["candidate_score"] == new
    assert out["serving"]["modelVersion"] == "old"


def test_candidate_without_the_metric_never_passes(pipeline_aws):
    s3 = pipeline_aws["s3"]
    bad = manifest(0.1)
    del bad["offline_metrics"]["two_stage"]
    url = put_training_output(s3, "job-3", {"manifest.json": json.dumps(bad)})
    with pytest.raises(
        ArtifactError,
        match=r"output\.tar\.gz: manifest has no offline_metrics\.two_stage\['NDCG@10'\]",
    ):
        gate.evaluate(s3, BUCKET, url, tolerance=0.0)


def test_missing_output_and_missing_manifest_are_named(pipeline_aws):
    s3 = pipeline_aws["s3"]
    with pytest.raises(
        ArtifactError,
        match=r"s3://recsys-test-artifacts/models/nope/output/output\.tar\.gz does not exist",
    ):
        gate.evaluate(s3, BUCKET, f"s3://{BUCKET}/models/nope/output/model.tar.gz", tolerance=0.0)
    url = put_training_output(s3, "job-4", {"batch/users.jsonl": ""})
    with pytest.raises(ArtifactError, match=r"holds no manifest\.json"):
        gate.evaluate(s3, BUCKET, url, tolerance=0.0)
    s3.put_object(Bucket=BUCKET, Key="models/job-5/output/output.tar.gz", Body=b"not a tarball")
    with pytest.raises(ArtifactError, match=r"not a tar\.gz archive"):
        gate.evaluate(s3, BUCKET, f"s3://{BUCKET}/models/job-5/output/model.tar.gz", tolerance=0.0)


def test_broken_serving_record_does_not_block_a_valid_candidate(pipeline_aws):
    s3 = pipeline_aws["s3"]
    artifacts.write_serving_record(
        s3, BUCKET, {"modelVersion": "old", "manifest": {"offline_metrics": {}}}
    )
    url = put_training_output(s3, "job-6", {"manifest.json": json.dumps(manifest(0.01))})
    out = gate.evaluate(s3, BUCKET, url, tolerance=0.0)
    assert out["promote"] is True and "no usable metric" in out["reason"]


def test_decide_rejects_out_of_range_metrics_and_negative_tolerance():
    with pytest.raises(ArtifactError, match=r"NDCG@10 = 1\.5 is not a number in \[0, 1\]"):
        gate.decide(manifest(1.5), None, 0.0)
    with pytest.raises(ValueError, match="tolerance must be >= 0"):
        gate.decide(manifest(0.1), None, -0.1)


def test_handler_reads_bucket_and_tolerance_from_the_environment(pipeline_aws, monkeypatch):
    s3 = pipeline_aws["s3"]
    serve(s3, 0.10)
    url = put_training_output(s3, "job-7", {"manifest.json": json.dumps(manifest(0.097))})
    monkeypatch.setenv(gate.ENV_ARTIFACTS_BUCKET, BUCKET)
    monkeypatch.setenv(gate.ENV_NDCG_TOLERANCE, "0.005")
    assert gate.handler({"modelDataUrl": url})["promote"] is True
    assert gate.handler({"modelDataUrl": url, "tolerance": 0.0})["promote"] is False
    with pytest.raises(ValueError, match="gate input needs modelDataUrl"):
        gate.handler({})


def test_output_data_url_is_the_sibling_of_model_tar_gz():
    assert (
        artifacts.output_data_url("s3://b/models/j/output/model.tar.gz")
        == "s3://b/models/j/output/output.tar.gz"
    )
    with pytest.raises(ArtifactError, match="expected a SageMaker"):
        artifacts.output_data_url("s3://b/models/j/output/other.tar.gz")
    with pytest.raises(ArtifactError, match="not an s3:// URI"):
        artifacts.output_data_url("https://b/model.tar.gz")


def test_a_missing_serving_record_is_known_from_a_listing_not_from_a_denied_get():
    """Without an effective s3:ListBucket, S3 answers GetObject of a missing key with 403; the
    record's absence is read from a ListObjectsV2 of that one key, so no GetObject is made."""
    import boto3
    from botocore.stub import Stubber

    s3 = boto3.client("s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    key = artifacts.SERVING_RECORD_KEY
    with Stubber(s3) as stub:
        stub.add_response(
            "list_objects_v2",
            {"KeyCount": 1, "Contents": [{"Key": key + ".bak"}]},
            {"Bucket": BUCKET, "Prefix": key, "MaxKeys": 1},
        )
        assert artifacts.read_serving_record(s3, BUCKET) is None
        stub.assert_no_pending_responses()
    with Stubber(s3) as stub:
        stub.add_response(
            "list_objects_v2", {"KeyCount": 0}, {"Bucket": BUCKET, "Prefix": key, "MaxKeys": 1}
        )
        stub.add_client_error("get_object", "AccessDenied", http_status_code=403)
        # never reaches the GetObject that would have been denied
        assert artifacts.read_serving_record(s3, BUCKET) is None
