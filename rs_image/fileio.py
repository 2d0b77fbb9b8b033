"""Atomic file writes: a crash or a kill never leaves a half-written file under the final name.

Everything this library writes that another run may read (checkpoints, configs, class lists, results,
re-encoded videos, caches) is written to a temporary file in the target's folder, flushed to disk and
renamed over the target (``os.replace``, atomic on POSIX and Windows).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
from pathlib import Path
from typing import IO, Iterator, List, Union

__all__ = ["atomic_path", "atomic_write", "atomic_copy", "remove_stale_temporaries", "TMP_MARK"]

PathLike = Union[str, os.PathLike]

TMP_MARK = ".tmp-"
"""Temporary files are ``.<stem>.tmp-<pid><suffix>`` next to their target (the suffix is kept, so that
writers choosing a format by extension, such as video muxers, still see it)."""


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """A temporary path next to ``path`` to write to; renamed over ``path`` when the block succeeds and
    removed when it raises. Parent folders are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}{TMP_MARK}{os.getpid()}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_write(path: PathLike, mode: str = "w", **open_kwargs) -> Iterator[IO]:
    """``open(path, mode)`` that only replaces ``path`` once the block succeeded and the data is on disk."""
    with atomic_path(path) as tmp:
        with open(tmp, mode, **open_kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())


def atomic_copy(source: PathLike, target: PathLike) -> None:
    """Give ``target`` the content of ``source``, atomically: a hard link where the file system allows it
    (no byte copied; safe because everything here replaces files with ``os.replace``, never in place, so
    the two names part when ``source`` is rewritten), else a copy."""
    with atomic_path(target) as tmp:
        try:
            os.link(source, tmp)
        except OSError:  # no hard links here (some network and object-store file systems)
            shutil.copyfile(source, tmp)


def _writer_alive(tmp: Path) -> bool:
    digits = "".join(itertools.takewhile(str.isdigit, tmp.name.split(TMP_MARK, 1)[1]))
    if not digits:
        return False
    try:
        os.kill(int(digits), 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # a live process of another user
    return True


def remove_stale_temporaries(folder: PathLike) -> List[Path]:
    """Delete the temporary files in ``folder`` whose writing process is gone (killed while writing);
    files of live writers, e.g. a parallel run, stay. Returns the removed files."""
    folder = Path(folder)
    removed = []
    if folder.is_dir():
        for p in folder.glob(f".*{TMP_MARK}*"):
            if p.is_file() and not _writer_alive(p):
                p.unlink(missing_ok=True)
                removed.append(p)
    return removed
