"""The sagemaker/ source tarball, the container image lookup and the OpenAPI request models."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import pytest
from recsys_infra import images, openapi_models
from recsys_infra.config import ConfigError
from recsys_infra.source_bundle import build_code_bundle, build_source_tarball


def test_source_tarball_is_deterministic_and_holds_the_entry_points(tmp_path):
    cache = images.wheel_cache()
    a = build_code_bundle(images.SAGEMAKER_SOURCE_DIR, tmp_path / "a.tar.gz", "3.12", cache)
    b = build_code_bundle(images.SAGEMAKER_SOURCE_DIR, tmp_path / "b.tar.gz", "3.12", cache)
    assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()
    with tarfile.open(a, "r:gz") as tar:
        names = tar.getnames()
        assert {m.mtime for m in tar.getmembers()} == {315532800}
    assert {
        "train_retrieval.py",
        "train_ranker.py",
        "inference.py",
        "requirements.txt",
        "recsys/__init__.py",
    } <= set(names)
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    assert names == sorted(names)


def test_source_tarball_changes_with_the_sources(tmp_path):
    src = tmp_path / "src"
    (src / "__pycache__").mkdir(parents=True)
    (src / "train.py").write_text("print(1)\n")
    (src / "__pycache__" / "x.pyc").write_bytes(b"junk")
    first = build_source_tarball(src, tmp_path / "1.tar.gz").read_bytes()
    (src / "__pycache__" / "x.pyc").write_bytes(b"other junk")
    assert build_source_tarball(src, tmp_path / "2.tar.gz").read_bytes() == first
    (src / "train.py").write_text("print(2)\n")
    assert build_source_tarball(src, tmp_path / "3.tar.gz").read_bytes() != first
    with tarfile.open(fileobj=io.BytesIO(first), mode="r:gz") as tar:
        assert tar.getnames() == ["train.py"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_source_tarball(tmp_path / "missing", tmp_path / "x.tar.gz")


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1", "cn-north-1"])
@pytest.mark.parametrize("scope", ["training", "inference"])
def test_image_uri_matches_the_sagemaker_sdk(region, scope):
    from sagemaker.core import image_uris

    expected = image_uris.retrieve("sklearn", region=region, version="1.9-0", image_scope=scope)
    assert images.sklearn_image_uri(region, scope) == expected


def test_unknown_region_has_no_image():
    with pytest.raises(ConfigError, match="region: 'xx-nowhere-1' has no SageMaker scikit-learn"):
        images.sklearn_image_uri("xx-nowhere-1", "training")


def test_image_repository_arn():
    uri = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.9-0-cpu-py3"
    assert (
        images.image_repository_arn(uri)
        == "arn:aws:ecr:us-east-1:683313688378:repository/sagemaker-scikit-learn"
    )
    with pytest.raises(ValueError, match="not an ECR image URI"):
        images.image_repository_arn("python:3.11")


def test_openapi_schemas_are_inlined_for_api_gateway():
    doc = {
        "components": {
            "schemas": {
                "Id": {"type": "string", "minLength": 1, "example": "u1", "nullable": False},
                "Req": {
                    "type": "object",
                    "properties": {"userId": {"$ref": "#/components/schemas/Id"}},
                },
            }
        },
        "paths": {
            "/r": {
                "post": {
                    "parameters": [
                        {"name": "q", "in": "query", "required": True, "schema": {"type": "string"}}
                    ],
                    "requestBody": {
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Req"}}
                        }
                    },
                }
            }
        },
    }
    v = openapi_models.operation_validation(doc, "POST", "/r")
    assert v.required_parameters == {"method.request.querystring.q": True}
    assert v.body_schema["properties"]["userId"] == {"type": "string", "minLength": 1}
    assert v.body_schema["$schema"].endswith("draft-04/schema#")
    with pytest.raises(ValueError, match="has no GET /r"):
        openapi_models.operation_validation(doc, "GET", "/r")
    doc["components"]["schemas"]["Id"] = {"$ref": "#/components/schemas/Req"}
    with pytest.raises(ValueError, match="is cyclic"):
        openapi_models.operation_validation(doc, "POST", "/r")


def test_every_route_is_in_the_openapi_document():
    from recsys_lambdas import routes

    doc = openapi_models.load_openapi()
    assert doc is not None, "lambdas/recsys_lambdas/openapi.json is missing"
    for route in routes.ROUTES:
        v = openapi_models.operation_validation(doc, route.method, route.path)
        if route.method == "POST":
            assert v.body_schema and "$ref" not in json.dumps(v.body_schema)
