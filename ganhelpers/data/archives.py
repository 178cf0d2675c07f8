"""Safe extraction of dataset archives: only regular files and folders, permission bits masked,
links, absolute paths and ``..`` refused before anything is written, the total size capped, and a
completion marker written last (an extraction cut short is done again; a damaged archive deleted)."""


from __future__ import annotations

import gzip
import json
import logging
import os
import shutil
import tarfile
import zlib
from pathlib import Path

log = logging.getLogger(__name__)


def _record_path(data_dir: Path, fname: str) -> Path:
    return data_dir / f".{fname}.sha256"


class ArchiveError(OSError):
    """An archive that is refused (unsafe member, over the size cap) or damaged."""


class DamagedArchive(ArchiveError):
    """An archive that cannot be read to its end (truncated or corrupt)."""


def marker_path(archive_name: str, dest) -> Path:
    """The completion marker :func:`extract` writes last: ``dest/.extracted-<archive name>``."""
    return Path(dest) / f".extracted-{archive_name}"


def is_extracted(archive_name: str, dest) -> bool:
    """Whether ``archive_name`` was extracted into ``dest`` to the end (its marker exists)."""
    return marker_path(archive_name, dest).is_file()


def _member_parts(member: tarfile.TarInfo, archive) -> tuple[str, ...]:
    """The member's path components, refusing absolute paths, '..' and anything but files and folders."""
    name = member.name
    if "\0" in name or name.startswith("/") or os.path.isabs(name) or ".." in Path(name).parts:
        raise ArchiveError(f"{archive} holds an unsafe path {name!r}; refusing to extract")
    if member.issym() or member.islnk():
        raise ArchiveError(f"{archive} holds a link {name!r}; refusing to extract")
    if not (member.isdir() or (member.isreg() and not member.issparse())):
        kind = {tarfile.CHRTYPE: "character device", tarfile.BLKTYPE: "block device",
                tarfile.FIFOTYPE: "FIFO"}.get(member.type, f"special member (type {member.type!r})")
        raise ArchiveError(f"{archive} holds a {kind} {name!r}: only regular files and folders are extracted; "
                           "refusing to extract")
    return tuple(part for part in Path(name).parts if part not in ("", "."))


def _check_tree(archive, members, parts, marker_name: str) -> None:
    """Refuse, before anything is written, an archive whose members cannot form one tree (a file
    ``a`` and then ``a/b``, or a file twice as file and folder) or that carries a completion marker
    of its own (which would make an extraction cut short look finished)."""
    files, folders = set(), set()
    for member, names in zip(members, parts, strict=True):
        if names and names[0].startswith(".extracted-") or (names and names[-1] == marker_name):
            raise ArchiveError(f"{archive} holds {member.name!r}, a name ganhelpers keeps for its completion "
                               "markers; refusing to extract")
        for i in range(1, len(names)):
            if names[:i] in files:
                raise ArchiveError(f"{archive} holds {'/'.join(names[:i])!r} as a file and also {member.name!r} "
                                   "inside it; refusing to extract")
            folders.add(names[:i])
        if member.isdir():
            if names in files:
                raise ArchiveError(f"{archive} holds {member.name!r} as a file and as a folder; refusing to extract")
            folders.add(names)
        elif names in folders:
            raise ArchiveError(f"{archive} holds {member.name!r} as a folder and as a file; refusing to extract")
        else:
            files.add(names)


def _file_mode(mode: int) -> int:
    """Like Python's tarfile 'data' filter: no setuid/setgid/sticky, no group/other write, owner rw,
    exec for group/other only when the owner has it."""
    mode = (mode & 0o755) | 0o600
    return mode if mode & 0o100 else mode & ~0o111


def extract(archive, dest, max_bytes: int | None = None, delete_damaged: bool = False) -> Path:
    """Extract a .tar/.tgz/.tar.bz2/.tar.xz into ``dest`` safely; returns ``dest``.

    Only regular files and folders are written (links, devices, FIFOs refuse the whole archive, as
    do absolute paths and '..'); permission bits are masked as by Python's 'data' filter and no
    owner is set. Folders that already exist under ``dest`` (also symlinks the user made, e.g. to
    another disk) are used as they are. The members' total size must stay under ``max_bytes``
    (default: 100 times the archive's size, at least 64 MiB; loaders pass about twice their
    dataset's size). The marker :func:`marker_path` is written last: without it the extraction did
    not finish (see :func:`is_extracted`). A truncated or corrupt archive raises
    :class:`DamagedArchive`, after deleting the archive (and its recorded hash) if ``delete_damaged``.
    """
    archive, dest = Path(archive), Path(dest)
    cap = max_bytes if max_bytes is not None else max(100 * archive.stat().st_size, 64 << 20)
    marker = marker_path(archive.name, dest)
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()  # reads the archive to its end: a damaged one fails here
            parts = [_member_parts(m, archive) for m in members]
            _check_tree(archive, members, parts, marker.name)
            total = sum(m.size for m in members if m.isreg())
            if total > cap:
                raise ArchiveError(f"{archive} would extract to {total:,} bytes, over the {cap:,}-byte cap for it "
                                   "(a decompression bomb, or the wrong file); refusing to extract")
            dest.mkdir(parents=True, exist_ok=True)
            marker.unlink(missing_ok=True)
            folders = []
            for member, names in zip(members, parts, strict=True):
                target = dest.joinpath(*names) if names else dest
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    folders.append((target, (member.mode & 0o755) | 0o700))
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
                with os.fdopen(fd, "wb") as out, tar.extractfile(member) as src:
                    shutil.copyfileobj(src, out, 1 << 20)
                os.chmod(target, _file_mode(member.mode))
                os.utime(target, (member.mtime, member.mtime))
            for folder, mode in reversed(folders):  # last, so a read-only folder did not block its files
                os.chmod(folder, mode)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as err:
        msg = f"{archive} is damaged ({type(err).__name__}: {err})"
        if delete_damaged:
            archive.unlink(missing_ok=True)
            _record_path(archive.parent, archive.name).unlink(missing_ok=True)
            raise DamagedArchive(f"{msg}: deleted it; download it again (call with download=True)") from err
        raise DamagedArchive(f"{msg}: delete it and download it again") from err
    from ..experiment import atomic_write

    atomic_write(marker, json.dumps({"archive": archive.name, "archive_bytes": archive.stat().st_size,
                                     "extracted_bytes": total, "members": len(members)}) + "\n")
    return dest
