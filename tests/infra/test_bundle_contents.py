"""The SageMaker container bundle (``sourcedir.tar.gz``) holds exactly what the containers need.

Every file of the bundle the app publishes (``recsys_infra.images.source_tarball()``) must match
one pattern of an explicit allow-list; anything else (a ``local/`` folder, tests, caches, editor
files, a stray subpackage) fails the test, and so does a missing entry point. Extending the
bundle on purpose means extending :data:`ALLOWED` here, in review.
"""

from __future__ import annotations

import fnmatch
import shutil
import tarfile
from pathlib import Path, PurePosixPath
from typing import Iterable, List

import pytest
from recsys_infra import images
from recsys_infra.container import SKLEARN_IMAGE
from recsys_infra.source_bundle import build_code_bundle

# Patterns over archive names; "*" never crosses a "/" (see _matches).
ALLOWED = (
    "train_retrieval.py",
    "train_ranker.py",
    "inference.py",
    "requirements.txt",
    "recsys/*.py",
    "wheels/*.whl",
)
ENTRY_POINTS = ("train_retrieval.py", "train_ranker.py", "inference.py", "requirements.txt",
                "recsys/__init__.py")


def _matches(name: str, pattern: str) -> bool:
    """Whole-name glob match, part by part, so ``recsys/*.py`` does not match ``recsys/a/b.py``."""
    parts, wanted = PurePosixPath(name).parts, PurePosixPath(pattern).parts
    return len(parts) == len(wanted) and all(
        fnmatch.fnmatchcase(part, pat) for part, pat in zip(parts, wanted))


def disallowed(names: Iterable[str]) -> List[str]:
    """The archive names no pattern of :data:`ALLOWED` accepts."""
    return sorted(n for n in names if not any(_matches(n, p) for p in ALLOWED))


def missing_entry_points(names: Iterable[str]) -> List[str]:
    """The entry points (and the package root) absent from the archive."""
    present = set(names)
    return [n for n in ENTRY_POINTS if n not in present]


def _bundle_of(src: Path, out: Path) -> Path:
    """The bundle the app would build from ``src`` (wheels from the cache, generated requirements)."""
    return build_code_bundle(src, out, SKLEARN_IMAGE.python_version, images.wheel_cache())


def _members(tarball: Path) -> List[tarfile.TarInfo]:
    with tarfile.open(tarball, "r:gz") as tar:
        return tar.getmembers()


@pytest.fixture(scope="module")
def bundle_members() -> List[tarfile.TarInfo]:
    """The members of the bundle exactly as the CDK app builds it."""
    return _members(images.source_tarball())


def test_bundle_holds_only_allowed_files(bundle_members):
    names = [m.name for m in bundle_members]
    assert disallowed(names) == [], "files outside the bundle allow-list"
    assert missing_entry_points(names) == []


def test_bundle_members_are_plain_files(bundle_members):
    """No directories, links or devices: what SageMaker unpacks is only the listed files."""
    odd = [m.name for m in bundle_members if not m.isfile()]
    assert odd == []
    assert not any(m.name.startswith("/") or ".." in PurePosixPath(m.name).parts
                   for m in bundle_members)


def test_bundle_ships_every_module_of_the_ml_package(bundle_members):
    """Each ``sagemaker/recsys/*.py`` is in the bundle (a module left out fails at import time
    in the container), and no subpackage sits beside them (the local stack lives in tools/)."""
    on_disk = {f"recsys/{p.name}" for p in (images.SAGEMAKER_SOURCE_DIR / "recsys").glob("*.py")}
    bundled = {m.name for m in bundle_members if m.name.startswith("recsys/")}
    assert on_disk <= bundled
    subdirs = [p.name for p in (images.SAGEMAKER_SOURCE_DIR / "recsys").iterdir()
               if p.is_dir() and p.name != "__pycache__"]
    assert subdirs == []


@pytest.mark.parametrize("name", [
    "recsys/local/stack.py",
    "local/cli.py",
    "tests/test_model.py",
    "recsys/tests/test_x.py",
    "recsys/__pycache__/model.cpython-311.pyc",
    ".pytest_cache/v/cache/lastfailed",
    "recsys/.model.py.swp",
    "recsys/model.pyc",
    "conftest.py",
    "wheels/hnswlib-0.8.0.tar.gz",
    "wheels/sub/x.whl",
    "recsys/catalogue.json",
    "train_retrieval.py.orig",
])
def test_allow_list_rejects(name):
    assert disallowed([name]) == [name]


@pytest.mark.parametrize("name", [
    "train_retrieval.py", "train_ranker.py", "inference.py", "requirements.txt",
    "recsys/__init__.py", "recsys/model.py",
    "wheels/hnswlib-0.8.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
])
def test_allow_list_accepts(name):
    assert disallowed([name]) == []


def test_missing_entry_points_are_reported():
    assert missing_entry_points(["recsys/__init__.py", "inference.py"]) == [
        "train_retrieval.py", "train_ranker.py", "requirements.txt"]


@pytest.mark.parametrize("gone", ["train_retrieval.py", "train_ranker.py", "inference.py"])
def test_a_missing_entry_point_is_reported(tmp_path, gone):
    """A bundle built from a copy of ``sagemaker/`` without one entry point fails the check."""
    src = tmp_path / "sagemaker"
    shutil.copytree(images.SAGEMAKER_SOURCE_DIR, src,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (src / gone).unlink()
    names = [m.name for m in _members(_bundle_of(src, tmp_path / "b.tar.gz"))]
    assert missing_entry_points(names) == [gone]


def test_a_stray_folder_in_sagemaker_is_caught(tmp_path):
    """The old layout (``sagemaker/recsys/local/``) and a tests folder would be flagged."""
    src = tmp_path / "sagemaker"
    shutil.copytree(images.SAGEMAKER_SOURCE_DIR, src,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (src / "recsys" / "local").mkdir()
    (src / "recsys" / "local" / "stack.py").write_text("import moto\n")
    (src / "tests").mkdir()
    (src / "tests" / "test_x.py").write_text("")
    names = [m.name for m in _members(_bundle_of(src, tmp_path / "b.tar.gz"))]
    assert disallowed(names) == ["recsys/local/stack.py", "tests/test_x.py"]
    assert missing_entry_points(names) == []
