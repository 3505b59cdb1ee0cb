"""Checked downloads: urllib into a temporary name, checksum, then an atomic rename.

A file is only ever visible under its final name once its SHA256 / MD5 matches, so an interrupted
or corrupted download never looks like data. Without a network the error is one line that says
which file to place where by hand.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DownloadError", "Resource", "download", "extract_members", "file_digest",
           "verify_checksum"]

_CHUNK = 1 << 20


class DownloadError(OSError):
    """A download that could not be made (no network, HTTP error, or every mirror failed)."""


@dataclass(frozen=True)
class Resource:
    """One remote file: its `filename`, the `urls` to try in order, and its checksum(s)."""

    filename: str
    urls: tuple[str, ...]
    md5: str | None = None  # hex digest of the file as served (the one published for MNIST etc.)
    sha256: str | None = None

    def __post_init__(self):
        if self.md5 is None and self.sha256 is None:
            raise ValueError(f"{self.filename}: a download needs an md5 or sha256 checksum")


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes (`sha256` or `md5`), read in 1 MiB chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _mismatch(path, md5: str | None, sha256: str | None) -> str | None:
    """None if the file matches every given checksum, else a description of the first mismatch."""
    for algo, want in (("sha256", sha256), ("md5", md5)):
        if want is not None:
            got = file_digest(path, algo)
            if got != want.lower():
                return f"{algo} {got}, expected {want.lower()}"
    return None


def verify_checksum(path: str | os.PathLike, md5: str | None = None,
                    sha256: str | None = None) -> None:
    """Raise ValueError (one line, naming the file) unless `path` matches the given checksums."""
    bad = _mismatch(path, md5, sha256)
    if bad is not None:
        raise ValueError(f"checksum mismatch for {path}: {bad}")


def _fetch(url: str, tmp: Path, timeout: float) -> None:
    """Copy `url` into `tmp` (urllib; file:// URLs work too)."""
    with urllib.request.urlopen(url, timeout=timeout) as r, open(tmp, "wb") as f:  # noqa: S310
        shutil.copyfileobj(r, f, _CHUNK)


def download(resource: Resource, folder: str | os.PathLike, *, timeout: float = 60.0) -> Path:
    """`resource` in `folder`, downloaded and checked if it is not there already (or is corrupt).

    Tries each URL in turn, writing to `<name>.part-<pid>` and renaming only after the checksum
    matches. Raises DownloadError (one line) when no URL gives a good file.
    """
    folder = Path(folder)
    dest = folder / resource.filename
    if dest.is_file() and _mismatch(dest, resource.md5, resource.sha256) is None:
        return dest
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"{resource.filename}.part-{os.getpid()}"
    errors = []
    for url in resource.urls:
        try:
            _fetch(url, tmp, timeout)
            bad = _mismatch(tmp, resource.md5, resource.sha256)
            if bad is None:
                os.replace(tmp, dest)
                return dest
            errors.append(f"{url}: checksum mismatch ({bad})")
        except (OSError, ValueError) as e:  # URLError is an OSError; bad URL a ValueError
            errors.append(f"{url}: {getattr(e, 'reason', None) or e}")
        finally:
            tmp.unlink(missing_ok=True)
    raise DownloadError(f"could not download {resource.filename} (no network?) - "
                        f"{'; '.join(errors)}; place the file in {folder} by hand")


def extract_members(archive: str | os.PathLike, members: dict[str, str],
                    folder: str | os.PathLike) -> None:
    """Extract only the regular files named in `members` (archive name -> file name in `folder`)
    from a tar archive, each via a temporary name and a rename; nothing else is written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:*") as tar:
        for m in tar.getmembers():
            if m.name not in members or not m.isfile():
                continue
            src = tar.extractfile(m)
            dest = folder / members[m.name]
            tmp = dest.with_name(f"{dest.name}.part-{os.getpid()}")
            try:
                with src, open(tmp, "wb") as f:
                    shutil.copyfileobj(src, f, _CHUNK)
                os.replace(tmp, dest)
            finally:
                tmp.unlink(missing_ok=True)
    missing = [n for n in members.values() if not (folder / n).is_file()]
    if missing:
        raise ValueError(f"{archive} lacks {', '.join(missing)}")
