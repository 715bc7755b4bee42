"""The SageMaker scikit-learn framework image the jobs and the endpoint run in, and the wheels
the code brings into it.

Written once, side by side: the image's framework version, Python, platform (glibc, machine)
and the packages it already holds, and the hash-pinned lock of the binary wheels the bundle
ships (the image has no compiler and, with network isolation, no network). Sources: the 1.9-0
image's Dockerfile, pyproject.toml and uv.lock in aws/deep-learning-containers
(``docker/sklearn/1.9-0/``); Amazon Linux 2023's glibc is 2.34. See docs/DEPLOY.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, FrozenSet, Optional, Tuple

from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import canonicalize_name, parse_wheel_filename


@dataclass(frozen=True)
class ImageFacts:
    """What a SageMaker framework image offers the code it runs.

    Attributes:
        framework_version: The image's version in the SageMaker SDK's table ("1.9-0").
        python_version: ``major.minor`` of the image's interpreter.
        glibc: The C library's version (manylinux wheels up to ``manylinux_<major>_<minor>`` run).
        machine: The CPU architecture of the image.
        pip_version: The pip that installs ``requirements.txt`` in the image.
        preinstalled: Packages already in the image's environment (name -> version).
    """

    framework_version: str
    python_version: str
    glibc: Tuple[int, int]
    machine: str
    pip_version: str
    preinstalled: Dict[str, str]

    def supported_tags(self, python_version: Optional[str] = None) -> FrozenSet[Tag]:
        """The wheel tags an interpreter of ``python_version`` (default: the image's) on this
        image's platform accepts: CPython ABI and abi3 tags, then ``py3-none-*`` tags."""
        major, minor = (int(x) for x in (python_version or self.python_version).split("."))
        platforms = [f"manylinux_{self.glibc[0]}_{m}_{self.machine}" for m in range(self.glibc[1], 4, -1)]
        legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
        platforms += [f"{legacy[m]}_{self.machine}" for m in legacy if m <= self.glibc[1]]
        tags = set(cpython_tags((major, minor), platforms=platforms))
        tags |= set(compatible_tags((major, minor), platforms=platforms))
        return frozenset(tags)


SKLEARN_IMAGE = ImageFacts(
    framework_version="1.9-0",
    python_version="3.12",
    glibc=(2, 34),  # Amazon Linux 2023
    machine="x86_64",
    pip_version="26.1.2",
    preinstalled={
        "numpy": "2.5.1",
        "scipy": "1.18.0",
        "scikit-learn": "1.9.0",
        "setuptools": "80.10.2",
    },
)


@dataclass(frozen=True)
class LockedWheel:
    """One wheel the bundle ships, pinned by file name and sha256.

    Attributes:
        name: The distribution name (as in ``requirements.txt``).
        version: Its exact version.
        filename: The wheel's file name on PyPI (its tags say where it installs).
        sha256: The file's sha256; a fetched file with another digest is refused.
        python_version: The interpreter the wheel is built for, or None for a pure wheel.
    """

    name: str
    version: str
    filename: str
    sha256: str
    python_version: Optional[str] = None

    @property
    def tags(self) -> FrozenSet[Tag]:
        """The tags in the file name."""
        return frozenset(parse_wheel_filename(self.filename)[3])


# The packages the code needs beyond the image: installed by requirements.txt in both containers.
# (Local development installs hnswlib==0.8.0 instead, see pyproject.toml; both provide the
# `hnswlib` module and read each other's index files.)
RUNTIME_REQUIREMENTS: Tuple[str, ...] = ("chroma-hnswlib",)
# Needed only to build the serving container's `pip install .` of the code directory (the
# container writes a setup.py there); with --no-index the isolated build env takes it from wheels/.
BUILD_REQUIREMENTS: Tuple[str, ...] = ("setuptools",)

WHEEL_LOCK: Tuple[LockedWheel, ...] = (
    LockedWheel(
        "chroma-hnswlib", "0.7.6",
        "chroma_hnswlib-0.7.6-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "822ede968d25a2c88823ca078a58f92c9b5c4142e38c7c8b4c48178894a0a3c5",
        python_version="3.12",
    ),
    # Python 3.11, for the container-parity test on the development interpreter.
    LockedWheel(
        "chroma-hnswlib", "0.7.6",
        "chroma_hnswlib-0.7.6-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "5c093f07a010b499c00a15bc9376036ee4800d335360570b14f7fe92badcdcf9",
        python_version="3.11",
    ),
    LockedWheel(
        "setuptools", "80.10.2",
        "setuptools-80.10.2-py3-none-any.whl",
        "95b30ddfb717250edb492926c92b5221f7ef3fbcc2b07579bcd4a27da21d0173",
    ),
)


class WheelLockError(ValueError):
    """The lock has no usable wheel for a required package on the target interpreter."""


def wheels_for(python_version: str, image: ImageFacts = SKLEARN_IMAGE,
               lock: Tuple[LockedWheel, ...] = WHEEL_LOCK) -> Tuple[LockedWheel, ...]:
    """The locked wheels a bundle for ``python_version`` on ``image``'s platform ships: one per
    required package (runtime and build), the first in the lock whose tags match.

    Raises:
        WheelLockError: A required package has no compatible wheel in the lock.
    """
    supported = image.supported_tags(python_version)
    chosen = []
    for name in RUNTIME_REQUIREMENTS + BUILD_REQUIREMENTS:
        match = next((w for w in lock if canonicalize_name(w.name) == canonicalize_name(name)
                      and w.tags & supported), None)
        if match is None:
            raise WheelLockError(
                f"the wheel lock has no {name} wheel for CPython {python_version} on "
                f"glibc {image.glibc[0]}.{image.glibc[1]} {image.machine} (recsys_infra.container.WHEEL_LOCK)"
            )
        chosen.append(match)
    return tuple(chosen)


__all__ = ["BUILD_REQUIREMENTS", "RUNTIME_REQUIREMENTS", "SKLEARN_IMAGE", "WHEEL_LOCK", "ImageFacts",
           "LockedWheel", "WheelLockError", "wheels_for"]
