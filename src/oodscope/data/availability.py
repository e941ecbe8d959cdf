"""Making sure a registered data set's files are present and intact.

Files already on disk are checked (size and MD5) every time and are never
modified or deleted. Missing files are downloaded when allowed (see
:mod:`oodscope.data.download`); otherwise, and whenever a download fails, a
DataError says which files (with MD5) are expected and in which directory to
put them by hand.
"""

from __future__ import annotations

from pathlib import Path

from oodscope.data.checksum import verify_file
from oodscope.data.download import download_verified, download_zip_members
from oodscope.data.registry import DatasetSpec, FileSpec
from oodscope.errors import DataError


def ensure_files(spec: DatasetSpec, root: Path, split: str, download: bool) -> Path | None:
    """Return ``root/spec.folder`` once the files ``split`` needs are there and verified.

    Raises:
        DataError: an existing file fails its checksum, or files are missing and
            ``download`` is False or the download failed.
    """
    if spec.folder is None:
        return None
    directory = root / spec.folder
    needed = [spec.files[name] for name in spec.splits[split]]
    missing = [f for f in needed if not (directory / f.name).is_file()]
    for f in needed:
        if f not in missing:
            verify_file(directory / f.name, f.md5, f.size)
    if not missing:
        return directory
    if not download:
        raise DataError(
            _manual_help(spec, directory, f"{spec.name}: missing {_names(missing)} and download=False.")
        )
    try:
        directory.mkdir(parents=True, exist_ok=True)
        _download(spec, directory, missing)
    except (DataError, OSError) as err:
        raise DataError(
            _manual_help(spec, directory, f"{spec.name}: download of {_names(missing)} failed: {err}")
        ) from err
    return directory


def _download(spec: DatasetSpec, directory: Path, missing: list[FileSpec]) -> None:
    """Fetch the missing files, from the zip archive or file by file."""
    zip_url = spec.zip_url()
    if zip_url is not None and spec.zip_source is not None:
        # The zip is large: take every file of the data set that is absent, not only this split's.
        absent = [f for f in spec.files.values() if not (directory / f.name).is_file()]
        members = {f.name: (spec.zip_source.members[f.name], f.md5) for f in absent}
        download_zip_members(zip_url, directory, members)
        return
    for f in missing:
        download_verified(spec.file_urls(f.name), directory / f.name, f.md5)


def _names(files: list[FileSpec]) -> str:
    """Comma-separated file names."""
    return ", ".join(f.name for f in files)


def _manual_help(spec: DatasetSpec, directory: Path, headline: str) -> str:
    """Error text: what went wrong, the expected files with MD5s, and where to put them."""
    lines = [headline, f"Put these files into {directory} by hand:"]
    width = max(len(name) for name in spec.files)
    for f in spec.files.values():
        size = f", {f.size} bytes" if f.size is not None else ""
        lines.append(f"  {f.name:<{width}}  MD5 {f.md5}{size}")
    if spec.zip_source is not None:
        lines.append(f"(members of {spec.zip_source.url}, folder gzip/)")
    elif spec.base_urls:
        lines.append(f"(official source: {spec.base_urls[0]})")
    return "\n".join(lines)
