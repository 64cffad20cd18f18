"""Find the files to load: :func:`discover` walks files and folders in a fixed order.

The walk follows symlinks without looping, skips :data:`DEFAULT_EXCLUDE` and what ``exclude=``
adds, and yields a :class:`FileEntry` for every file whose relative path matches ``glob=``,
whatever its suffix (:func:`~ollama_rag.loading.classify` then says whether it can be read).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ollama_rag.errors import ConfigError, DocumentLoadError

__all__ = [
    "DEFAULT_EXCLUDE",
    "MISSING_PATH_MESSAGE",
    "NOT_A_FILE_MESSAGE",
    "UNREADABLE_MESSAGE",
    "FileEntry",
    "discover",
]

DEFAULT_EXCLUDE: tuple[str, ...] = (".*", "__pycache__", "node_modules", "venv", "*~", "~$*")
"""Always excluded when walking a folder: hidden files and folders (``.git``, ``.venv``, …),
caches, installed packages, editor backups and Office lock files. ``exclude=`` adds to these."""

MISSING_PATH_MESSAGE = "{path}: does not exist — check the path (relative paths start at {cwd})"
NOT_A_FILE_MESSAGE = "{path}: is neither a regular file nor a folder — pass a file or a folder"
UNREADABLE_MESSAGE = "{source}: cannot be read ({reason}) — check that it exists and is readable"

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileEntry:
    """One file found by :func:`discover`.

    Attributes:
        path: The file's absolute, resolved path.
        source: Its path relative to the folder it was found in, with ``/`` separators; the
            bare file name for a file given directly.
        root: The absolute POSIX path of that folder (the parent folder for a direct file).
    """

    path: Path
    source: str
    root: str


def discover(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    glob: str = "**/*",
    exclude: str | Sequence[str] | None = None,
) -> Iterator[FileEntry]:
    """Find the files to load under ``paths``, in a fixed order.

    Folders are walked depth first with each folder's entries sorted by name, so the order is
    the same on every run. In folders every file whose relative path matches ``glob`` is
    yielded, whatever its suffix, and a file given directly is always yielded: :func:`classify`
    then says whether it can be read, so unsupported files get reported. Symlinks are followed,
    but a folder or file whose real path was already seen is skipped, so links cannot loop or
    repeat content.
    Sub-folders that cannot be listed are skipped with a logged warning.

    Args:
        paths: A file or folder, or several.
        glob: Pattern for paths relative to each folder: ``*`` and ``?`` stay within one path
            part, ``**`` crosses folders, ``**/`` also matches no folder at all.
        exclude: Extra patterns on top of :data:`DEFAULT_EXCLUDE`. A pattern without ``/``
            matches a file or folder name at any depth (``"drafts"``, ``"*.min.html"``); one
            with ``/`` matches the whole relative path (``"docs/old/**"``). An excluded folder
            is not entered.

    Returns:
        An iterator of :class:`FileEntry`, produced as the walk goes.

    Raises:
        DocumentLoadError: At the call, if a path does not exist or is not a file or folder.
        ConfigError: If ``glob`` is empty or absolute.
    """
    roots = _check_paths(paths)
    if not glob or glob.startswith("/"):
        msg = f"glob={glob!r} must be a non-empty relative pattern such as '**/*.md'"
        raise ConfigError(msg)
    matcher = _PathMatcher(glob, _exclude_patterns(exclude))
    return _discover(roots, matcher)


def _check_paths(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[Path]:
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    checked = []
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            msg = MISSING_PATH_MESSAGE.format(path=path, cwd=Path.cwd())
            raise DocumentLoadError(msg, source=str(path))
        if not (path.is_file() or path.is_dir()):
            msg = NOT_A_FILE_MESSAGE.format(path=path)
            raise DocumentLoadError(msg, source=str(path))
        checked.append(path)
    return checked


def _exclude_patterns(exclude: str | Sequence[str] | None) -> list[str]:
    if exclude is None:
        extra: list[str] = []
    elif isinstance(exclude, str):
        extra = [exclude]
    else:
        extra = list(exclude)
    return [*DEFAULT_EXCLUDE, *(p.rstrip("/") for p in extra if p.rstrip("/"))]


def _discover(roots: list[Path], matcher: _PathMatcher) -> Iterator[FileEntry]:
    seen_files: set[Path] = set()
    seen_dirs: set[Path] = set()
    for root in roots:
        if root.is_dir():
            yield from _walk(root, matcher, seen_dirs, seen_files)
            continue
        real = root.resolve()
        if real not in seen_files:
            seen_files.add(real)
            yield FileEntry(real, root.name, root.absolute().parent.resolve().as_posix())


def _walk(
    root: Path, matcher: _PathMatcher, seen_dirs: set[Path], seen_files: set[Path]
) -> Iterator[FileEntry]:
    real_root = root.resolve()
    if real_root in seen_dirs:
        return
    seen_dirs.add(real_root)
    root_posix = real_root.as_posix()
    try:
        top = _sorted_entries(real_root)
    except OSError as err:
        msg = UNREADABLE_MESSAGE.format(source=root, reason=err.strerror or err)
        raise DocumentLoadError(msg, source=str(root)) from err
    # A stack of iterators instead of recursion: deep trees cannot hit the recursion limit,
    # and popping in order keeps the walk depth first and sorted.
    stack: list[tuple[str, Iterator[os.DirEntry[str]]]] = [("", iter(top))]
    while stack:
        prefix, entries = stack[-1]
        item = next(entries, None)
        if item is None:
            stack.pop()
            continue
        rel = prefix + item.name
        kind = _entry_kind(item)
        if kind is None or matcher.excluded(item.name, rel):
            continue
        real = _real_path(item)
        if kind == "dir" and real is not None and real not in seen_dirs:
            seen_dirs.add(real)
            try:
                stack.append((rel + "/", iter(_sorted_entries(Path(item.path)))))
            except OSError as err:
                _log.warning("skipping folder %s: %s", item.path, err)
        elif kind == "file" and real is not None and real not in seen_files and matcher.wanted(rel):
            seen_files.add(real)
            yield FileEntry(real, rel, root_posix)


def _entry_kind(item: os.DirEntry[str]) -> str | None:
    """``"dir"`` or ``"file"`` (following symlinks); None for pipes, devices, broken links."""
    try:
        if item.is_dir():
            return "dir"
        return "file" if item.is_file() else None
    except OSError:
        return None


def _real_path(item: os.DirEntry[str]) -> Path | None:
    try:
        return Path(item.path).resolve()
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop, before Python 3.13
        return None


def _sorted_entries(folder: Path) -> list[os.DirEntry[str]]:
    with os.scandir(folder) as entries:
        return sorted(entries, key=lambda e: e.name)


class _PathMatcher:
    """Decides which relative paths a walk yields (``glob``) and skips (``exclude``)."""

    def __init__(self, glob: str, exclude: Sequence[str]) -> None:
        self._glob = _compile_glob(glob)
        self._names = [_compile_glob(p) for p in exclude if "/" not in p]
        self._paths = [_compile_glob(p) for p in exclude if "/" in p]

    def excluded(self, name: str, rel: str) -> bool:
        # Only the entry's own name is tested: its folders were tested on the way down.
        return any(p.fullmatch(name) for p in self._names) or any(
            p.fullmatch(rel) for p in self._paths
        )

    def wanted(self, rel: str) -> bool:
        # Unsupported suffixes are yielded too, so that add_files reports them as skipped
        # instead of leaving users to wonder where a file went.
        return self._glob.fullmatch(rel) is not None


def _compile_glob(pattern: str) -> re.Pattern[str]:
    try:
        return _glob_regex(pattern)
    except re.error as err:
        msg = f"{pattern!r} is not a valid glob pattern ({err}) — check its [...] brackets"
        raise ConfigError(msg) from err


def _glob_regex(pattern: str) -> re.Pattern[str]:
    r"""Compile a path glob: ``*``/``?`` stay within a part, ``**`` crosses ``/``.

    >>> [bool(_glob_regex(g).fullmatch("a/b.md")) for g in ("**/*.md", "*.md", "a/**")]
    [True, False, True]
    """
    out, i, n = [], 0, len(pattern)
    while i < n:
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("/**", i) and i + 3 == n:
            out.append("(?:/.*)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and (close := pattern.find("]", i + 2)) != -1:
            body = pattern[i + 1 : close].replace("\\", "\\\\").replace("[", "\\[")
            out.append("[^" + body[1:] + "]" if body[0] in "!^" else "[" + body + "]")
            i = close + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out), re.DOTALL)
