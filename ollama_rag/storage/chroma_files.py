"""Chroma's files on disk, read without chromadb: a health check and a salvage for repair.

An embedded Chroma (1.5) keeps a collection in two places (docs/reliability.md has the
measurements behind every rule here):

- ``chroma.sqlite3``: the collection and its segments, every row's id, document and metadata
  (``embeddings``, ``embedding_metadata``), and a write-ahead log of recent writes with their
  vectors (``embeddings_queue``, purged once they reach the vector files);
- one folder per vector segment (named by the segment's id) holding an hnswlib index:
  ``header.bin`` (geometry and element count), ``data_level0.bin`` (per element: links, the
  L2-normalised vector, its label), ``length.bin`` (each vector's norm), ``link_lists.bin``
  (upper layers) and ``index_metadata.pickle`` (label ↔ id maps).

Chroma writes the vector files in place. A process killed while it does so (about 1 write in
50) leaves them damaged, and from then on every call on the collection fails, or the process
crashes. :func:`check` finds that from the files alone, without calling chromadb (whose loader
may crash on them); :func:`salvage` reads back every row, with its vector wherever one
survived, for :func:`ollama_rag.migration.repair` to rebuild the collection from.
"""

from __future__ import annotations

import contextlib
import pickle
import sqlite3
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ollama_rag.storage.base import StoredChunk, Vector
from ollama_rag.storage.schema import Metadata

__all__ = ["check", "salvage", "vector_folder"]

_HEADER = struct.Struct("<iQQQQQQiIQQQdQ")  # hnswlib's header.bin, persistence version 1
_HEADER_FIELDS = (
    "version",
    "offset_level0",
    "max_elements",
    "count",
    "element_size",
    "label_offset",
    "data_offset",
    "max_level",
    "entry_point",
    "max_m",
    "max_m0",
    "m",
    "mult",
    "ef_construction",
)
_FILES = ("header.bin", "data_level0.bin", "length.bin", "link_lists.bin")
_PICKLE = "index_metadata.pickle"
_DOCUMENT_KEY = "chroma:document"
# embeddings_queue operations that carry a vector.
_ADD, _UPDATE, _UPSERT, _DELETE = 0, 1, 2, 3
# Elements checked in data_level0.bin on every open (the newest and a fixed random sample).
_SAMPLE = 2000


@dataclass(frozen=True)
class _Collection:
    id: str
    dimension: int | None
    metadata_segment: str
    vector_segment: str
    vector_seq: int  # the log position the vector files were last saved at (0: never)


def _connect(directory: Path) -> sqlite3.Connection:
    # Only read here, but not opened read-only: a process killed mid-transaction leaves a hot
    # journal, which a read-only connection cannot roll back (it refuses to read instead).
    return sqlite3.connect(f"file:{directory / 'chroma.sqlite3'}?mode=rw", uri=True)


def _collection(db: sqlite3.Connection, name: str) -> _Collection | None:
    row = db.execute("SELECT id, dimension FROM collections WHERE name = ?", (name,)).fetchone()
    if row is None:
        return None
    segments = dict(db.execute("SELECT scope, id FROM segments WHERE collection = ?", (row[0],)))
    vector = segments["VECTOR"]
    seq = db.execute("SELECT seq_id FROM max_seq_id WHERE segment_id = ?", (vector,)).fetchone()
    return _Collection(row[0], row[1], segments["METADATA"], vector, int(seq[0]) if seq else 0)


def vector_folder(directory: str | Path, name: str) -> Path | None:
    """The folder of a collection's vector files (None: no such collection, or none saved yet)."""
    with contextlib.closing(_connect(Path(directory))) as db:
        found = _collection(db, name)
    if found is None:
        return None
    folder = Path(directory) / found.vector_segment
    return folder if folder.is_dir() else None


def _header(folder: Path) -> dict[str, Any]:
    raw = (folder / "header.bin").read_bytes()
    if len(raw) < _HEADER.size:
        msg = f"header.bin has {len(raw)} bytes of {_HEADER.size}"
        raise ValueError(msg)
    header = dict(zip(_HEADER_FIELDS, _HEADER.unpack_from(raw), strict=True))
    if header["version"] != 1:
        msg = f"header.bin is of version {header['version']}, not 1"
        raise ValueError(msg)
    return header


def _element_size(dimension: int, header: dict[str, Any] | None) -> tuple[int, int, int]:
    """(bytes per element, offset of the vector, offset of the label) in data_level0.bin."""
    if header is not None:
        return header["element_size"], header["data_offset"], header["label_offset"]
    links = 2 * 16 * 4 + 4  # max_neighbors 16, as the index creates its collections
    return links + 4 * dimension + 8, links, links + 4 * dimension


def check(directory: str | Path, name: str) -> str | None:
    """What is wrong with collection ``name``'s vector files, or None if they look whole.

    Reads only file sizes, the header, the id map and a sample of elements: milliseconds, also
    for large indexes.
    """
    directory = Path(directory)
    if not (directory / "chroma.sqlite3").is_file():
        return None
    with _connect(directory) as db:
        found = _collection(db, name)
        if found is None or found.dimension is None:
            return None  # no collection, or nothing ever written to it
        rows = db.execute(
            "SELECT count(*) FROM embeddings WHERE segment_id = ?", (found.metadata_segment,)
        ).fetchone()[0]
        pending = db.execute(
            "SELECT count(*) FROM embeddings_queue WHERE topic LIKE ? AND seq_id > ?",
            (f"%/{found.id}", found.vector_seq),
        ).fetchone()[0]
    folder = directory / found.vector_segment
    if found.vector_seq == 0:
        return None  # never saved: everything is still in the log, which Chroma replays
    if not folder.is_dir():
        return f"its vector folder {folder.name} is missing"
    missing = [f for f in (*_FILES, _PICKLE) if not (folder / f).is_file()]
    if missing:
        return f"{', '.join(missing)} missing from {folder.name}"
    raw = (folder / _PICKLE).read_bytes()
    if not raw.endswith(b"."):  # a pickle ends with its STOP opcode: this one was cut short
        return f"{_PICKLE} is truncated ({len(raw)} bytes)"
    try:
        ids = pickle.loads(raw)  # Chroma's own file, in the index's own folder
        known = len(ids["id_to_label"])
        added = int(ids["total_elements_added"])
    except Exception as err:  # any failure to read it is the damage being looked for
        return f"{_PICKLE} is unreadable ({type(err).__name__})"
    try:
        header = _header(folder)
    except ValueError as err:
        return str(err)
    size, data, label = _element_size(found.dimension, None)
    if (header["element_size"], header["data_offset"]) != (size, data):
        return "header.bin does not match the collection's dimension"
    count = header["count"]
    if added != count:
        return f"{_PICKLE} counts {added} elements, header.bin {count}"
    if (folder / "data_level0.bin").stat().st_size < count * size:
        return "data_level0.bin is shorter than its element count"
    if (folder / "length.bin").stat().st_size < count * 4:
        return "length.bin is shorter than its element count"
    if not _links_whole(folder / "link_lists.bin", count, header["max_m"]):
        return "link_lists.bin is shorter than its element count"
    if count and not _sample_whole(folder, count, size, data, label, found.dimension, added):
        return "data_level0.bin holds partly written elements"
    if abs(known - rows) > pending:
        return f"the vector files hold {known} rows and the database {rows}"
    return None


def _links_whole(path: Path, count: int, max_m: int) -> bool:
    raw = path.read_bytes()
    record = max_m * 4 + 4
    at = 0
    for _ in range(count):
        if at + 4 > len(raw):
            return False
        (size,) = struct.unpack_from("<I", raw, at)
        if size % record:
            return False
        at += 4 + size
    return at <= len(raw)


def _sample_whole(
    folder: Path, count: int, size: int, data: int, label: int, dimension: int, added: int
) -> bool:
    elements = np.memmap(folder / "data_level0.bin", dtype=np.uint8, mode="r", shape=(count, size))
    rng = np.random.default_rng(0)
    picked = np.unique(
        np.concatenate(
            [np.arange(max(0, count - _SAMPLE // 2), count), rng.integers(0, count, _SAMPLE // 2)]
        )
    )
    sample = np.asarray(elements[picked])
    labels = sample[:, label : label + 8].copy().view("<u8").ravel()
    vectors = sample[:, data : data + 4 * dimension].copy().view("<f4")
    norms = np.linalg.norm(vectors, axis=1)
    # Cosine space stores unit vectors; zeros or garbage mean an element half written.
    return bool(labels.min() >= 1 and labels.max() <= added and np.all(np.abs(norms - 1) < 1e-3))


def salvage(directory: str | Path, name: str, *, batch: int = 1000) -> Iterator[list[StoredChunk]]:
    """Every row of collection ``name`` with its vector where one survived (None elsewhere).

    Vectors come from the write-ahead log when still there (the newest), else from the vector
    files when their elements are whole and their labels can be mapped to ids (through the id
    map, or when that is lost, through the order rows were added in, used only if it accounts
    for every row exactly).
    """
    directory = Path(directory)
    with _connect(directory) as db:
        found = _collection(db, name)
        if found is None:
            return
        rows = _rows(db, found.metadata_segment)
        logged = _logged_vectors(db, found.id)
    stored = _stored_vectors(directory / found.vector_segment, found.dimension or 0, rows)
    for start in range(0, len(rows), batch):
        yield [
            StoredChunk(cid, text, metadata, logged.get(cid, stored.get(cid)))
            for cid, text, metadata in rows[start : start + batch]
        ]


def _rows(db: sqlite3.Connection, segment: str) -> list[tuple[str, str, Metadata]]:
    """``(id, document, metadata)`` of every row, in the order they were added."""
    found: dict[int, tuple[str, list[str], Metadata]] = {}
    for rowid, cid in db.execute(
        "SELECT id, embedding_id FROM embeddings WHERE segment_id = ? ORDER BY id", (segment,)
    ):
        found[rowid] = (cid, [""], {})
    values = (
        "SELECT m.id, m.key, m.string_value, m.int_value, m.float_value, m.bool_value "
        "FROM {table} m JOIN embeddings e ON e.id = m.id WHERE e.segment_id = ?"
    )
    for rowid, key, text, whole, real, flag in db.execute(
        values.format(table="embedding_metadata"), (segment,)
    ):
        row = found.get(rowid)
        if row is None:
            continue
        if key == _DOCUMENT_KEY:
            row[1][0] = text or ""
        elif not key.startswith("chroma:"):
            row[2][key] = _value(text, whole, real, flag)
    try:
        lists = db.execute(
            values.format(table="embedding_metadata_array") + " ORDER BY m.rowid", (segment,)
        ).fetchall()
    except sqlite3.OperationalError:  # a Chroma without list values
        lists = []
    for rowid, key, text, whole, real, flag in lists:
        row = found.get(rowid)
        if row is not None:
            row[2].setdefault(key, []).append(_value(text, whole, real, flag))
    return [(cid, document[0], metadata) for cid, document, metadata in found.values()]


def _value(text: str | None, whole: int | None, real: float | None, flag: int | None) -> Any:
    if flag is not None:
        return bool(flag)
    if whole is not None:
        return whole
    if real is not None:
        return real
    return text


def _logged_vectors(db: sqlite3.Connection, collection: str) -> dict[str, Vector]:
    """The newest vector of each id still in the write-ahead log."""
    vectors: dict[str, Vector] = {}
    for operation, cid, blob, encoding in db.execute(
        "SELECT operation, id, vector, encoding FROM embeddings_queue "
        "WHERE topic LIKE ? ORDER BY seq_id",
        (f"%/{collection}",),
    ):
        if operation == _DELETE:
            vectors.pop(cid, None)
        elif blob is not None and encoding == "FLOAT32":
            vectors[cid] = np.frombuffer(blob, dtype="<f4").copy()
    return vectors


def _stored_vectors(
    folder: Path, dimension: int, rows: list[tuple[str, str, Metadata]]
) -> dict[str, Vector]:
    """Vectors readable from the hnswlib files, by id (empty when they cannot be trusted)."""
    if not dimension or not (folder / "data_level0.bin").is_file():
        return {}
    try:
        header: dict[str, Any] | None = _header(folder)
    except (OSError, ValueError):
        header = None  # the geometry follows from the dimension
    size, data, label = _element_size(dimension, header)
    raw = np.fromfile(folder / "data_level0.bin", dtype=np.uint8)
    count = len(raw) // size
    if header is not None:
        count = min(count, header["count"])
    elements = raw[: count * size].reshape(count, size)
    labels = elements[:, label : label + 8].copy().view("<u8").ravel()
    vectors = elements[:, data : data + 4 * dimension].copy().view("<f4")
    deleted = (elements[:, 2] & 1).astype(bool)
    norms = np.linalg.norm(vectors, axis=1)
    whole = (labels >= 1) & (labels < 2**32) & (np.abs(norms - 1) < 1e-3)
    try:
        ids = pickle.loads((folder / _PICKLE).read_bytes())
        label_to_id: dict[int, str] = {int(k): str(v) for k, v in ids["label_to_id"].items()}
    except Exception:  # lost or damaged: labels were handed out in the order rows were added
        live = np.sort(labels[whole & ~deleted])
        numbered = len(set(labels.tolist())) == count == int(labels.max(initial=0))
        # Rows newer than the files' last save are the last ones added (still in the log).
        if not (bool(whole.all()) and numbered and len(live) <= len(rows)):
            return {}
        label_to_id = {int(lab): row[0] for lab, row in zip(live, rows, strict=False)}
    found: dict[str, Vector] = {}
    for k in np.nonzero(whole & ~deleted)[0]:
        cid = label_to_id.get(int(labels[k]))
        if cid is not None:
            found[cid] = vectors[k].copy()  # unit length: what cosine search needs
    return found
