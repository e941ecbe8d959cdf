"""Fetching data files over HTTP(S): streamed to a temp file, MD5-checked, then renamed.

Nothing partial is ever left behind: the temporary file lives in the target
directory, and is removed on any failure (network error, HTTP error, checksum
mismatch, interruption). Progress is shown with tqdm on stderr.

The URLs come from :mod:`oodscope.data.registry`. Setting the environment
variable ``OODSCOPE_MIRROR`` to a base URL makes every file come from
``$OODSCOPE_MIRROR/<filename>`` (EMNIST: ``$OODSCOPE_MIRROR/gzip.zip``) instead
of the official locations, e.g. for a local mirror or for tests.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import tempfile
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path
from typing import IO

from tqdm import tqdm

from oodscope.errors import DataError

TIMEOUT_S = 60.0
"""Socket timeout for every request, in seconds."""
CHUNK = 1 << 20
USER_AGENT = "oodscope-data/0.1 (+python urllib)"


def download_verified(urls: list[str], target: Path, md5: str) -> None:
    """Download ``target.name`` from the first of ``urls`` that yields the right MD5.

    Each URL is tried in order. On success the file appears atomically at
    ``target``; on failure nothing is left and DataError lists every attempt.
    """
    reasons: list[str] = []
    for url in urls:
        tmp: Path | None = None
        try:
            tmp = _temp_path(target.parent, target.name)
            got = _fetch(url, tmp, target.name)
            if got != md5:
                raise DataError(f"checksum mismatch: expected MD5 {md5}, got {got}")
            os.replace(tmp, target)
            return
        except (DataError, OSError, http.client.HTTPException, ValueError) as err:
            reasons.append(f"{url}: {err}")
        finally:
            _remove(tmp)
    raise DataError("; ".join(reasons) if reasons else "no download location known")


def download_zip_members(url: str, directory: Path, members: dict[str, tuple[str, str]]) -> None:
    """Download a zip archive and extract selected members, each MD5-checked.

    Args:
        url: Where the zip is.
        directory: Where the zip is stored temporarily and the members end up.
        members: Final file name -> (member path inside the zip, expected MD5).

    All members are extracted to temp files first and renamed only when every
    one matches its MD5; the zip is deleted in any case.
    """
    label = _url_basename(url) or "archive.zip"
    zip_tmp: Path | None = None
    extracted: dict[str, Path] = {}
    try:
        try:
            zip_tmp = _temp_path(directory, label)
            _fetch(url, zip_tmp, label)
        except (OSError, http.client.HTTPException, ValueError) as err:
            raise DataError(f"{url}: {err}") from err
        try:
            with zipfile.ZipFile(zip_tmp) as archive:
                names = set(archive.namelist())
                for final, (member, md5) in members.items():
                    if member not in names:
                        raise DataError(f"{url}: zip archive has no member {member}")
                    tmp = _temp_path(directory, final)
                    extracted[final] = tmp
                    with archive.open(member) as src, open(tmp, "wb") as dst:
                        got = _copy_hashing(src, dst, None)
                    if got != md5:
                        raise DataError(
                            f"{url}: member {member}: checksum mismatch: expected MD5 {md5}, got {got}"
                        )
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as err:
            raise DataError(f"{url}: cannot extract from zip archive ({err})") from err
        for final, tmp in extracted.items():
            os.replace(tmp, directory / final)
    finally:
        _remove(zip_tmp)
        for tmp in extracted.values():
            _remove(tmp)


def _fetch(url: str, dest: Path, label: str) -> str:
    """Stream ``url`` into ``dest`` (overwritten) and return its hex MD5."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        with (
            open(dest, "wb") as out,
            tqdm(
                total=total, unit="B", unit_scale=True, unit_divisor=1024,
                desc=label, file=sys.stderr, leave=False,
            ) as bar,
        ):
            digest = _copy_hashing(response, out, bar)
        if total is not None and dest.stat().st_size != total:
            raise DataError(f"incomplete download: {dest.stat().st_size} of {total} bytes")
    return digest


def _copy_hashing(src: IO[bytes], dst: IO[bytes], bar: tqdm | None) -> str:
    """Copy ``src`` to ``dst`` in chunks; return the MD5 of what was copied."""
    md5 = hashlib.md5(usedforsecurity=False)
    while chunk := src.read(CHUNK):
        md5.update(chunk)
        dst.write(chunk)
        if bar is not None:
            bar.update(len(chunk))
    return md5.hexdigest()


def _temp_path(directory: Path, name: str) -> Path:
    """A fresh, closed temp file in ``directory`` (same file system as the target)."""
    fd, path = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=directory)
    os.close(fd)
    return Path(path)


def _url_basename(url: str) -> str:
    """Last path segment of a URL."""
    return urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1]


def _remove(path: Path | None) -> None:
    """Delete ``path`` if it is set and still exists."""
    if path is None:
        return
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass
