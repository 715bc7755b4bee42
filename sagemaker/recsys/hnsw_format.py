"""One HNSW index file for both hnswlib builds the project runs on.

Development installs ``hnswlib`` 0.8.0 (an sdist, compiled locally); the SageMaker containers,
which have no compiler, install ``chroma-hnswlib`` 0.7.6 (binary wheels of the same ``hnswlib``
module). The graph is the same, the file is not: chroma's ``saveIndex`` writes, right after the
level-0 block, one float per element (the vector lengths its cosine mode keeps; unused for the
``ip`` space this project uses), so neither library reads the other's file.

A model always stores the upstream (hnswlib 0.8.0) layout: under chroma-hnswlib, :func:`save`
removes that block and :func:`load` puts it back (as 1.0 lengths) in a temporary copy. The
header (``hnswalg.h`` ``saveIndex``) gives the block's place: 96 bytes of fields, then
``cur_element_count * size_data_per_element`` bytes of level-0 data.
"""

from __future__ import annotations

import os
import shutil
import struct
import tempfile
from pathlib import Path
from typing import BinaryIO, Tuple

import hnswlib

# offsetLevel0, max_elements, cur_element_count, size_data_per_element, label_offset, offsetData,
# maxlevel (int), enterpoint_node (uint), maxM, maxM0, M, mult (double), ef_construction
_HEADER = struct.Struct("<QQQQQQiIQQQdQ")
# chroma-hnswlib's Index has persistence methods upstream hnswlib lacks.
CHROMA = hasattr(hnswlib.Index, "persist_dirty")


def _level0_end(fh: BinaryIO, path: Path) -> Tuple[int, int]:
    """(offset where the level-0 block ends, element count) from the file's header."""
    head = fh.read(_HEADER.size)
    if len(head) != _HEADER.size:
        raise ValueError(f"{path}: not an hnswlib index file (shorter than its header)")
    fields = _HEADER.unpack(head)
    count, per_element = fields[2], fields[3]
    end = _HEADER.size + count * per_element
    if fields[0] != 0 or count > fields[1] or end > os.fstat(fh.fileno()).st_size:
        raise ValueError(f"{path}: not an hnswlib index file (inconsistent header)")
    return end, count


def _copy(src: BinaryIO, dst: BinaryIO, length: int) -> None:
    while length > 0:
        block = src.read(min(length, 1 << 22))
        if not block:
            raise ValueError("unexpected end of the index file")
        dst.write(block)
        length -= len(block)


def to_upstream(src: Path, dst: Path) -> None:
    """Write chroma-hnswlib's file ``src`` as hnswlib 0.8.0's layout to ``dst``."""
    with open(src, "rb") as fh, open(dst, "wb") as out:
        end, count = _level0_end(fh, Path(src))
        fh.seek(0)
        _copy(fh, out, end)
        fh.seek(end + 4 * count)
        shutil.copyfileobj(fh, out, 1 << 22)


def to_chroma(src: Path, dst: Path) -> None:
    """Write hnswlib 0.8.0's file ``src`` in chroma-hnswlib's layout (lengths 1.0) to ``dst``."""
    with open(src, "rb") as fh, open(dst, "wb") as out:
        end, count = _level0_end(fh, Path(src))
        fh.seek(0)
        _copy(fh, out, end)
        ones = struct.pack("<f", 1.0) * min(count, 1 << 16)
        left = count
        while left > 0:
            n = min(left, 1 << 16)
            out.write(ones[: 4 * n])
            left -= n
        shutil.copyfileobj(fh, out, 1 << 22)


def save(index: hnswlib.Index, path: Path) -> None:
    """``index.save_index(path)``, always in hnswlib 0.8.0's layout."""
    path = Path(path)
    if not CHROMA:
        index.save_index(str(path))
        return
    raw = path.with_name(path.name + ".chroma")
    index.save_index(str(raw))
    try:
        to_upstream(raw, path)
    finally:
        raw.unlink(missing_ok=True)


def load(index: hnswlib.Index, path: Path, max_elements: int) -> None:
    """``index.load_index(path, max_elements)`` of a file in hnswlib 0.8.0's layout."""
    if not CHROMA:
        index.load_index(str(path), max_elements=max_elements)
        return
    fd, tmp = tempfile.mkstemp(suffix=".hnsw")  # the model folder may be read-only
    os.close(fd)
    try:
        to_chroma(Path(path), Path(tmp))
        index.load_index(tmp, max_elements=max_elements)  # reads it all into memory
    finally:
        os.unlink(tmp)
