"""A deterministic ``sourcedir.tar.gz`` of ``sagemaker/`` for the SageMaker framework container.

The scikit-learn framework image unpacks ``sagemaker_submit_directory`` as a tar.gz; CDK
directory assets are zips, so the app builds the tarball itself and publishes it as a file asset.
Same sources -> same bytes -> same asset hash, so an unchanged ``sagemaker/`` never triggers a
new upload or a new SageMaker model.

The image has no compiler and the jobs run network-isolated, so the bundle carries the binary
wheels the code needs (``wheels/``, hash-checked against :data:`recsys_infra.container.WHEEL_LOCK`)
and a generated ``requirements.txt`` that installs them offline.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence, Union

from recsys_infra.container import (
    RUNTIME_REQUIREMENTS,
    SKLEARN_IMAGE,
    ImageFacts,
    LockedWheel,
    wheels_for,
)

_EXCLUDED_DIRS = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
_EXCLUDED_SUFFIXES = (".pyc", ".pyo")
_FIXED_MTIME = 315532800  # 1980-01-01, the earliest time zip-based tools also accept


def _included(rel: Path) -> bool:
    return not (set(rel.parts) & _EXCLUDED_DIRS) and not rel.name.endswith(_EXCLUDED_SUFFIXES)


def build_source_tarball(source_dir: Path, out_file: Path,
                         extra_files: Optional[Mapping[str, Union[bytes, Path]]] = None) -> Path:
    """Write ``source_dir``'s files (sorted, fixed metadata) into ``out_file`` as tar.gz.

    Args:
        source_dir: The directory to pack (its contents land at the archive root).
        out_file: Where to write; parent directories are created.
        extra_files: Archive name -> contents (bytes, or a file to copy) added to the archive;
            an extra file replaces a source file of the same name.

    Returns:
        ``out_file``. Its bytes depend only on file names, contents and executable bits.

    Raises:
        FileNotFoundError: ``source_dir`` does not exist or holds no files.
    """
    source_dir = Path(source_dir)
    if not source_dir.is_dir():
        raise FileNotFoundError(f"source directory {source_dir} does not exist")
    files = sorted(
        p for p in source_dir.rglob("*") if p.is_file() and _included(p.relative_to(source_dir))
    )
    if not files:
        raise FileNotFoundError(f"source directory {source_dir} holds no files to package")
    members: dict = {p.relative_to(source_dir).as_posix(): p for p in files}
    members.update(extra_files or {})
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(members):
            item = members[name]
            data = item if isinstance(item, bytes) else Path(item).read_bytes()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = _FIXED_MTIME
            executable = not isinstance(item, bytes) and Path(item).stat().st_mode & 0o111
            info.mode = 0o755 if executable and not name.endswith(".whl") else 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    # gzip writes the mtime and file name into its header: pin both.
    with (
        open(out_file, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz,
    ):
        gz.write(tar_bytes.getvalue())
    return out_file


class WheelError(RuntimeError):
    """A locked wheel could not be fetched, or its bytes do not match the lock."""


def sha256_of(path: Path) -> str:
    """The hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(wheel: LockedWheel, image: ImageFacts, dest: Path) -> None:
    """``pip download`` one locked wheel (by exact version, binary only, for its tags)."""
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
           "--no-deps", "--only-binary=:all:", "--dest", str(dest)]
    if wheel.python_version is not None:
        cmd += ["--python-version", wheel.python_version, "--implementation", "cp",
                "--platform", f"manylinux2014_{image.machine}"]
    cmd.append(f"{wheel.name}=={wheel.version}")
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise WheelError(f"pip download {wheel.name}=={wheel.version} failed: {tail[0]}")


def fetch_wheels(wheels: Iterable[LockedWheel], cache_dir: Path,
                 image: ImageFacts = SKLEARN_IMAGE) -> list:
    """Make sure every locked wheel is in ``cache_dir`` with the locked sha256.

    A cached file with the right digest is used as is (no network); a missing one is fetched
    from the package index with ``pip download``; a file whose digest differs is refused.

    Returns:
        The cached wheel files, in the order given.

    Raises:
        WheelError: A download failed, or a wheel's bytes do not match the lock.
    """
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for wheel in wheels:
        path = cache_dir / wheel.filename
        if not path.is_file():
            with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
                _download(wheel, image, Path(tmp))
                got = Path(tmp) / wheel.filename
                if not got.is_file():
                    found = ", ".join(sorted(p.name for p in Path(tmp).iterdir())) or "nothing"
                    raise WheelError(f"pip download {wheel.name}=={wheel.version} gave {found}, "
                                     f"not the locked {wheel.filename}")
                os.replace(got, path)
        digest = sha256_of(path)
        if digest != wheel.sha256:
            raise WheelError(f"{path}: sha256 {digest} does not match the lock's {wheel.sha256} "
                             "(delete the file to fetch it again)")
        paths.append(path)
    return paths


def container_requirements(wheels: Sequence[LockedWheel]) -> bytes:
    """The generated ``requirements.txt``: offline install of the bundled wheels only.

    No ``--hash`` pins: they switch pip to hash-checking mode for the whole command, and the
    serving container runs ``pip install . -r requirements.txt`` on the code directory, which
    pip then refuses ("cannot verify hashes ... directories"). The sha256 of every wheel is
    checked against the lock when the bundle is built instead.
    """
    runtime = {name.lower() for name in RUNTIME_REQUIREMENTS}
    lines = [
        "# Generated by recsys_infra.source_bundle from recsys_infra.container.WHEEL_LOCK; do not edit.",
        "# The container installs it with no network and no compiler: training runs",
        "# `pip install -r requirements.txt`, serving `pip install . -r requirements.txt`",
        "# (its build of `.` takes setuptools from wheels/ too). Wheel sha256s were checked at build.",
        "--no-index",
        "--find-links wheels",
        "--only-binary :all:",
    ]
    lines += [f"{w.name}=={w.version}" for w in wheels if w.name.lower() in runtime]
    return ("\n".join(lines) + "\n").encode()


def build_code_bundle(source_dir: Path, out_file: Path, python_version: str, cache_dir: Path,
                      image: ImageFacts = SKLEARN_IMAGE) -> Path:
    """``sourcedir.tar.gz`` for ``image`` run with CPython ``python_version``: ``source_dir``'s
    files, ``wheels/`` (from the lock, fetched into ``cache_dir`` when missing, sha256-checked)
    and the generated ``requirements.txt``. Byte-deterministic.

    Raises:
        recsys_infra.container.WheelLockError: The lock lacks a wheel for the target.
        WheelError: A wheel could not be fetched or does not match the lock.
        FileNotFoundError: ``source_dir`` is missing or empty.
    """
    wheels = wheels_for(python_version, image)
    extra: dict = {f"wheels/{w.filename}": p
                   for w, p in zip(wheels, fetch_wheels(wheels, cache_dir, image))}
    extra["requirements.txt"] = container_requirements(wheels)
    return build_source_tarball(source_dir, out_file, extra)



def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m recsys_infra.source_bundle CACHE_DIR``: fetch every locked wheel into
    ``CACHE_DIR`` (a no-op, offline, when all are there with the locked sha256)."""
    import argparse

    from recsys_infra.container import WHEEL_LOCK

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("cache_dir", type=Path)
    args = parser.parse_args(argv)
    try:
        paths = fetch_wheels(WHEEL_LOCK, args.cache_dir)
    except WheelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{len(paths)} locked wheels in {args.cache_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
