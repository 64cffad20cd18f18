r"""Find the files to load: :func:`discover` walks files and folders in a fixed order.

The walk follows symlinks without looping or repeating a file, skips :data:`DEFAULT_EXCLUDE`
and what ``exclude=`` adds, and yields a :class:`FileEntry` for every file whose relative path
matches ``glob=``, whatever its suffix (:func:`~ollama_rag.loading.classify` then says whether it
can be read). What it finds but cannot index — pipes, sockets, devices, broken links, symlink
loops, a second path to a file already found, folders it cannot list — is yielded too, with the
reason in :attr:`FileEntry.skip_reason` or :attr:`FileEntry.error`, so that it can be reported.

File names that are not valid UTF-8 get a source name with each undecodable byte written as
``\xNN`` (:func:`escape_name`); :func:`unescape_name` turns it back.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import re
import stat
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ollama_rag.errors import ConfigError, DocumentLoadError

__all__ = [
    "DEFAULT_EXCLUDE",
    "MISSING_PATH_MESSAGE",
    "NAME_CLASH_MESSAGE",
    "NOT_A_FILE_MESSAGE",
    "UNLISTABLE_MESSAGE",
    "UNREADABLE_MESSAGE",
    "FileEntry",
    "discover",
    "escape_name",
    "unescape_name",
]

DEFAULT_EXCLUDE: tuple[str, ...] = (".*", "__pycache__", "node_modules", "venv", "*~", "~$*")
"""Always excluded when walking a folder: hidden files and folders (``.git``, ``.venv``, …),
caches, installed packages, editor backups and Office lock files. ``exclude=`` adds to these."""

MISSING_PATH_MESSAGE = "{path}: does not exist — check the path (relative paths start at {cwd})"
NOT_A_FILE_MESSAGE = "{path}: is neither a regular file nor a folder — pass a file or a folder"
UNREADABLE_MESSAGE = "{source}: cannot be read ({reason}) — check that it exists and is readable"
UNLISTABLE_MESSAGE = (
    "{source}/: the folder cannot be listed ({reason}) — its files were not indexed; "
    "check that it is readable (chmod u+rx), or leave it out with exclude="
)
NAME_CLASH_MESSAGE = (
    "{source}: this name is not valid UTF-8, and written with \\x escapes it is the name of "
    "another file in {root} — rename one of the two"
)


@dataclass(frozen=True)
class FileEntry:
    r"""One file (or other entry) found by :func:`discover`.

    Attributes:
        path: The file's absolute, resolved path (for an entry that is skipped or failed, the
            path it was found at).
        source: Its path relative to the folder it was found in, with ``/`` separators; the
            bare file name for a file given directly. Bytes that are not valid UTF-8 are
            written as ``\xNN`` (:func:`escape_name`).
        root: The absolute POSIX path of that folder (the parent folder for a direct file),
            escaped the same way.
        skip_reason: Why the entry is not indexed, if it is not on purpose: a named pipe,
            socket or device, a broken symlink, a symlink loop, a second path to a file or
            folder found under another name. None for a file to read.
        error: Why the entry could not be read, if it could not (a folder that cannot be
            listed, a name that clashes once escaped): a message ending with the fix.
    """

    path: Path
    source: str
    root: str
    skip_reason: str | None = None
    error: str | None = None


def escape_name(name: str) -> str:
    r"""Return a file name or path as valid Unicode: undecodable bytes become ``\xNN``.

    On POSIX systems file names are bytes, and Python hands over those that are not valid
    UTF-8 with lone surrogates in place of the bad bytes, which no index can store. The name is
    turned back into its bytes and decoded with ``backslashreplace``, so every other character
    stays as it is.

    >>> escape_name(os.fsdecode(b"caf\xe9.txt"))
    'caf\\xe9.txt'
    >>> escape_name("日本語.txt")
    '日本語.txt'
    """
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(name).decode("utf-8", "backslashreplace")
    return name


_ESCAPED_BYTE = re.compile(r"\\x([89a-f][0-9a-f])")


def unescape_name(name: str) -> str:
    r"""Undo :func:`escape_name`: the name as the operating system spells it.

    Only ``\x80`` to ``\xff`` are unescaped, the bytes :func:`escape_name` can produce; a name
    that really contains such a backslash sequence cannot be told apart (:func:`discover`
    reports the clash if both exist in one folder).

    >>> unescape_name("caf\\xe9.txt") == os.fsdecode(b"caf\xe9.txt")
    True
    """
    if "\\x" not in name:
        return name
    parts = _ESCAPED_BYTE.split(name)
    raw = b"".join(
        bytes([int(part, 16)]) if i % 2 else part.encode("utf-8", "surrogateescape")
        for i, part in enumerate(parts)
    )
    return os.fsdecode(raw)


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
    then says whether it can be read, so unsupported files get reported.

    Symlinks are followed, to files and folders, inside or outside the folder. A file (or
    folder) reached by several paths is indexed once, under the path that involves no symlink
    if there is one, else under the first path in walk order; the other paths are yielded with
    ``skip_reason`` "same file as …". A link to a folder that contains it is a loop, and
    yielded as such. Entries that are not files or folders (named pipes, sockets, devices) and
    broken links are yielded with a ``skip_reason`` and never opened; folders that cannot be
    listed are yielded with an ``error``.

    Args:
        paths: A file or folder, or several.
        glob: Pattern for paths relative to each folder: ``*`` and ``?`` stay within one path
            part, ``**`` crosses folders, ``**/`` also matches no folder at all.
        exclude: Extra patterns on top of :data:`DEFAULT_EXCLUDE`. A pattern without ``/``
            matches a file or folder name at any depth (``"drafts"``, ``"*.min.html"``); one
            with ``/`` matches the whole relative path (``"docs/old/**"``). An excluded folder
            is not entered, and excluded entries are not yielded at all.

    Returns:
        An iterator of :class:`FileEntry`.

    Raises:
        DocumentLoadError: At the call, if a path does not exist or is not a file or folder;
            when iterated, if a folder given in ``paths`` cannot be listed.
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
            msg = MISSING_PATH_MESSAGE.format(path=escape_name(str(path)), cwd=Path.cwd())
            raise DocumentLoadError(msg, source=escape_name(str(path)))
        if not (path.is_file() or path.is_dir()):
            msg = NOT_A_FILE_MESSAGE.format(path=escape_name(str(path)))
            raise DocumentLoadError(msg, source=escape_name(str(path)))
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
    walk = _Walk(matcher)
    for number, root in enumerate(roots):
        walk.add_root(number, root)
    walk.follow_links()
    yield from walk.entries()


@dataclass
class _Found:
    """An entry the walk found, with what deciding between duplicates needs."""

    order: tuple[int, tuple[str, ...]]  # root number, path parts: the depth-first sorted order
    entry: FileEntry
    real: Path | None = None  # a readable file's real path; None for a skipped entry
    direct: bool = False  # reached without following a symlink


@dataclass(frozen=True)
class _Link:
    """A symlink to a folder, followed after every root has been walked."""

    number: int
    root: str
    rel: str
    path: Path
    parent: Path  # the real folder the link is in


class _Walk:
    """One :func:`discover` run: roots first, then the folder links found in them.

    Walking every root before following any folder link means a folder inside a root is always
    reached directly first, so its files keep their own names, whatever links point at them.
    """

    def __init__(self, matcher: _PathMatcher) -> None:
        self.matcher = matcher
        self.found: list[_Found] = []
        self.walked: dict[Path, str] = {}  # real folder -> how it was reached, for messages
        self.links: list[_Link] = []

    def add_root(self, number: int, root: Path) -> None:
        real = root.resolve()
        if not root.is_dir():
            parent = escape_name(root.absolute().parent.resolve().as_posix())
            entry = FileEntry(real, escape_name(root.name), parent)
            self.found.append(_Found((number, (entry.source,)), entry, real, direct=True))
            return
        if real in self.walked:
            return  # a folder given twice, or inside another one given: walked already
        self.walked[real] = escape_name(real.as_posix())
        try:
            top = _sorted_entries(real)
        except OSError as err:
            msg = UNREADABLE_MESSAGE.format(source=escape_name(str(root)), reason=_why(err))
            raise DocumentLoadError(msg, source=escape_name(str(root))) from err
        self._walk(number, escape_name(real.as_posix()), "", real, top, direct=True)

    def follow_links(self) -> None:
        # Links found while following are appended, and followed in turn.
        for link in self.links:
            try:
                real = link.path.resolve(strict=True)
            except (OSError, RuntimeError) as err:  # vanished meanwhile
                self._error(link.number, link.root, link.rel, link.path, _why(err), folder=True)
                continue
            if real in self.walked:
                where = self.walked[real]
                if link.parent.is_relative_to(real):
                    why = f"symlink loop: it points to {where}, a folder it is in"
                else:
                    why = f"same folder as {where}, indexed under that name"
                self._skip(link.number, link.root, link.rel, link.path, why)
                continue
            self.walked[real] = escape_name(link.rel)
            try:
                children = _sorted_entries(real)
            except OSError as err:
                self._error(link.number, link.root, link.rel, link.path, _why(err), folder=True)
                continue
            self._walk(link.number, link.root, link.rel + "/", real, children, direct=False)

    def entries(self) -> list[FileEntry]:
        """Every entry found, in walk order, each file once; repeats and clashes marked."""
        files = [f for f in self.found if f.real is not None]
        first_path: dict[Path, _Found] = {}
        for found in sorted(files, key=lambda f: (not f.direct, f.order)):
            assert found.real is not None
            first = first_path.setdefault(found.real, found)
            if first is not found:
                name = first.entry.source
                if first.entry.root != found.entry.root:
                    name = f"{first.entry.root}/{name}"
                why = f"same file as {name}, indexed under that name"
                found.entry = dataclasses.replace(found.entry, skip_reason=why)
                found.real = None
        names: set[tuple[str, str]] = set()
        for found in sorted(files, key=lambda f: f.order):
            if found.real is None:
                continue
            key = (found.entry.root, found.entry.source)
            if key in names:
                msg = NAME_CLASH_MESSAGE.format(source=key[1], root=key[0])
                found.entry = dataclasses.replace(found.entry, error=msg)
            names.add(key)
        return [f.entry for f in sorted(self.found, key=lambda f: f.order)]

    def _walk(
        self,
        number: int,
        root: str,
        prefix: str,
        folder: Path,
        top: list[os.DirEntry[str]],
        *,
        direct: bool,
    ) -> None:
        # A stack of iterators instead of recursion: deep trees cannot hit the recursion limit.
        stack: list[tuple[str, Path, Iterator[os.DirEntry[str]]]] = [(prefix, folder, iter(top))]
        while stack:
            prefix, folder, items = stack[-1]
            item = next(items, None)
            if item is None:
                stack.pop()
                continue
            rel = prefix + item.name
            if self.matcher.excluded(item.name, rel):
                continue
            kind, why = _kind(item)
            if kind == "dir":
                real = folder / item.name
                if real in self.walked:
                    continue  # a root given separately: its files are found under it
                self.walked[real] = escape_name(rel)
                try:
                    stack.append((rel + "/", real, iter(_sorted_entries(real))))
                except OSError as err:
                    self._error(number, root, rel, real, _why(err), folder=True)
            elif kind == "dir link":
                self.links.append(_Link(number, root, rel, Path(item.path), folder))
            elif not self.matcher.wanted(rel):
                continue
            elif kind == "file":
                real = folder / item.name
                entry = FileEntry(real, escape_name(rel), root)
                self.found.append(_Found(_order(number, entry), entry, real, direct=direct))
            elif kind == "file link":
                try:
                    real = Path(item.path).resolve(strict=True)
                except (OSError, RuntimeError) as err:  # the link changed since it was looked at
                    self._error(number, root, rel, Path(item.path), _why(err), folder=False)
                    continue
                entry = FileEntry(real, escape_name(rel), root)
                self.found.append(_Found(_order(number, entry), entry, real))
            elif kind == "error":
                self._error(number, root, rel, Path(item.path), why, folder=False)
            else:
                self._skip(number, root, rel, Path(item.path), why)

    def _skip(self, number: int, root: str, rel: str, path: Path, why: str | None) -> None:
        entry = FileEntry(path, escape_name(rel), root, skip_reason=why)
        self.found.append(_Found(_order(number, entry), entry))

    def _error(
        self, number: int, root: str, rel: str, path: Path, why: str | None, *, folder: bool
    ) -> None:
        source = escape_name(rel)
        template = UNLISTABLE_MESSAGE if folder else UNREADABLE_MESSAGE
        entry = FileEntry(path, source, root, error=template.format(source=source, reason=why))
        self.found.append(_Found(_order(number, entry), entry))


def _order(number: int, entry: FileEntry) -> tuple[int, tuple[str, ...]]:
    return number, tuple(entry.source.split("/"))


_SPECIAL = (
    (stat.S_ISFIFO, "named pipe (FIFO)"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
)


def _kind(item: os.DirEntry[str]) -> tuple[str, str | None]:
    """What an entry is, without opening it: a kind, and the reason for one not indexed.

    The kinds are ``"dir"``, ``"file"``, ``"dir link"``, ``"file link"``, ``"skip"`` (with the
    reason) and ``"error"`` (with the ``OSError`` text).
    """
    link = False
    try:
        link = item.is_symlink()
        if not link:
            if item.is_dir(follow_symlinks=False):
                return "dir", None
            if item.is_file(follow_symlinks=False):
                return "file", None
            mode = item.stat(follow_symlinks=False).st_mode
        else:
            mode = os.stat(item.path).st_mode
    except OSError as err:
        if not link:
            return "error", _why(err)
        return _broken_link(item, err)
    if stat.S_ISDIR(mode):
        return "dir link", None
    if stat.S_ISREG(mode):
        return "file link", None
    what = next((name for test, name in _SPECIAL if test(mode)), "special file")
    if link:
        return "skip", f"symlink to a {what}, not a regular file"
    return "skip", f"{what}, not a regular file"


def _broken_link(item: os.DirEntry[str], err: OSError) -> tuple[str, str | None]:
    if err.errno == errno.ELOOP:
        return "skip", "symlink loop: following it never reaches a file or folder"
    if err.errno in (errno.ENOENT, errno.ENOTDIR):
        try:
            target = escape_name(os.readlink(item.path))
        except OSError:
            target = "?"
        return "skip", f"broken symlink: its target {target} does not exist"
    return "error", _why(err)


def _why(err: OSError | RuntimeError) -> str:
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return str(err)


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
