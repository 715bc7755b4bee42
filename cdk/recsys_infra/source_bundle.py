"""A deterministic ``sourcedir.tar.gz`` of ``sagemaker/`` for the SageMaker framework container.

The scikit-learn framework image downloads ``sagemaker_submit_directory`` and unpacks it as a
tar.gz; CDK directory assets are zips, so the app builds the tarball itself and publishes it as a
file asset. Same sources -> same bytes -> same asset hash, so an unchanged ``sagemaker/`` never
triggers a new upload or a new SageMaker model.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

_EXCLUDED_DIRS = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
_EXCLUDED_SUFFIXES = (".pyc", ".pyo")
_FIXED_MTIME = 315532800  # 1980-01-01, the earliest time zip-based tools also accept


def _included(rel: Path) -> bool:
    return not (set(rel.parts) & _EXCLUDED_DIRS) and not rel.name.endswith(_EXCLUDED_SUFFIXES)


def build_source_tarball(source_dir: Path, out_file: Path) -> Path:
    """Write ``source_dir``'s files (sorted, fixed metadata) into ``out_file`` as tar.gz.

    Args:
        source_dir: The directory to pack (its contents land at the archive root).
        out_file: Where to write; parent directories are created.

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
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in files:
            data = path.read_bytes()
            info = tarfile.TarInfo(path.relative_to(source_dir).as_posix())
            info.size = len(data)
            info.mtime = _FIXED_MTIME
            info.mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
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
