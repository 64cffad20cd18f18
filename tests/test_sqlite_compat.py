"""ollama_rag.sqlite_compat, exercised in real subprocesses.

The swap edits ``sys.modules`` for the whole interpreter, so every test that may swap (or imports
chromadb) runs in a fresh ``sys.executable -c`` process. An old host is simulated the way it looks
to chromadb's import-time check: the stdlib module's ``sqlite_version_info`` is set to Ubuntu
20.04's (3, 31, 1) before anything else runs. Each child prints one JSON line, which the test reads.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from ollama_rag import sqlite_compat
from ollama_rag.errors import ConfigError, RagError, SqliteCompatError

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULT_MARK = "RESULT-JSON:"

SIMULATE_OLD_HOST = """
import sqlite3
sqlite3.sqlite_version_info = (3, 31, 1)
sqlite3.sqlite_version = "3.31.1"
"""

REPORT = """
import json as _json
print("RESULT-JSON:" + _json.dumps(out))
"""

needs_pysqlite3 = pytest.mark.skipif(
    importlib.util.find_spec("pysqlite3") is None,
    reason="pysqlite3-binary is a Linux-only dependency and is not installed here",
)
needs_new_host = pytest.mark.skipif(
    sqlite3.sqlite_version_info < sqlite_compat.MIN_SQLITE_VERSION,
    reason="this host's sqlite3 really is older than Chroma needs",
)


def run_child(
    code: str, tmp_path: Path, *, old_host: bool, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter and return the dict it assigned to ``out``."""
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("OLLAMA_", "CHROMA_"))}
    # The source tree wins over any installed copy, and nothing is written to the real home.
    child_env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])
    )
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    child_env["HOME"] = str(home)
    child_env["XDG_CACHE_HOME"] = str(home / ".cache")
    child_env.update(env or {})
    script = (SIMULATE_OLD_HOST if old_host else "") + textwrap.dedent(code) + REPORT
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, f"child failed ({proc.returncode}):\n{proc.stderr}"
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_MARK)]
    assert len(lines) == 1, proc.stdout + proc.stderr
    result: dict[str, Any] = json.loads(lines[0][len(RESULT_MARK) :])
    return result


# --- the problem and its fix ---------------------------------------------------------------------


def test_control_old_host_without_ensure_chromadb_refuses_to_import(tmp_path: Path) -> None:
    out = run_child(
        """
        try:
            import chromadb
        except RuntimeError as err:
            out = {"error": str(err)}
        else:
            out = {"error": None}
        """,
        tmp_path,
        old_host=True,
    )
    assert out["error"] is not None, "chromadb imported on a simulated 3.31.1 host"
    assert "unsupported version of sqlite3" in out["error"]
    assert "3.35.0" in out["error"]


@needs_pysqlite3
def test_old_host_ensure_swaps_in_pysqlite3_and_chromadb_imports(tmp_path: Path) -> None:
    out = run_child(
        """
        import sys, warnings
        stdlib = sys.modules["sqlite3"]
        from ollama_rag import sqlite_compat
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            backend = sqlite_compat.ensure()
        import chromadb
        import sqlite3 as bound
        out = {
            "backend": [backend.module, backend.version, list(backend.version_info),
                        backend.system_version, backend.swapped, backend.chromadb_imported_first],
            "warnings": [str(w.message) for w in caught],
            "bound": sys.modules["sqlite3"].__name__,
            "bound_is_pysqlite3": sys.modules["sqlite3"] is sys.modules["pysqlite3"],
            "dbapi2": sys.modules["sqlite3.dbapi2"].__name__,
            "bound_version_info": list(bound.sqlite_version_info),
            "sqlite_version": sqlite_compat.sqlite_version(),
            "current": sqlite_compat.current_backend().module,
            "stdlib_still_bound": sys.modules["sqlite3"] is stdlib,
            "chromadb": chromadb.__version__,
        }
        """,
        tmp_path,
        old_host=True,
    )
    module, version, version_info, system_version, swapped, chromadb_first = out["backend"]
    assert (module, swapped, chromadb_first) == ("pysqlite3", True, False)
    assert tuple(version_info) >= sqlite_compat.MIN_SQLITE_VERSION
    assert system_version == "3.31.1"
    assert out["warnings"] == []
    assert out["bound"] == "pysqlite3"
    assert out["bound_is_pysqlite3"]
    assert out["dbapi2"] == "pysqlite3.dbapi2"
    assert tuple(out["bound_version_info"]) >= sqlite_compat.MIN_SQLITE_VERSION
    assert out["sqlite_version"] == version
    assert out["current"] == "pysqlite3"
    assert not out["stdlib_still_bound"]
    assert out["chromadb"].startswith("1.")


@needs_pysqlite3
def test_swapped_setup_runs_a_real_persistent_chroma(tmp_path: Path) -> None:
    db = tmp_path / "chroma-db"
    out = run_child(
        f"""
        import sys
        from ollama_rag import sqlite_compat
        sqlite_compat.ensure()
        import chromadb
        client = chromadb.PersistentClient(path={str(db)!r})
        collection = client.create_collection("compat-check", embedding_function=None)
        collection.add(
            ids=["east", "north", "up"],
            embeddings=[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
            documents=["東へ", "向北", "up"],
            metadatas=[{{"lang": "ja"}}, {{"lang": "zh"}}, {{"lang": "en"}}],
        )
        hits = collection.query(query_embeddings=[[0.1, 0.9, 0.2]], n_results=3)
        filtered = collection.query(
            query_embeddings=[[0.1, 0.9, 0.2]], n_results=1, where={{"lang": "en"}}
        )
        count = collection.count()
        client.close()
        # The Python-side module (pysqlite3 now) can read the file Chroma's Rust core wrote.
        import sqlite3
        with sqlite3.connect({str(db / "chroma.sqlite3")!r}) as con:
            rows = con.execute("SELECT count(*) FROM embeddings").fetchone()[0]
        out = {{
            "bound": sys.modules["sqlite3"].__name__,
            "ids": hits["ids"][0],
            "documents": hits["documents"][0],
            "filtered": filtered["ids"][0],
            "count": count,
            "rows": rows,
        }}
        """,
        tmp_path,
        old_host=True,
    )
    assert out["bound"] == "pysqlite3"
    assert out["ids"] == ["north", "up", "east"]
    assert out["documents"][0] == "向北"
    assert out["filtered"] == ["up"]
    assert out["count"] == 3
    assert out["rows"] == 3
    assert (db / "chroma.sqlite3").is_file()


# --- no-op and idempotence -----------------------------------------------------------------------


@needs_new_host
def test_new_enough_host_ensure_is_a_no_op(tmp_path: Path) -> None:
    out = run_child(
        """
        import sys, sqlite3
        stdlib = sys.modules["sqlite3"]
        from ollama_rag import sqlite_compat
        first = sqlite_compat.ensure()
        second = sqlite_compat.ensure()
        out = {
            "first": [first.module, first.version, first.system_version, first.swapped],
            "same": first == second,
            "stdlib_still_bound": sys.modules["sqlite3"] is stdlib,
            "pysqlite3_loaded": "pysqlite3" in sys.modules,
            "chromadb_loaded": any(m.split(".")[0] == "chromadb" for m in sys.modules),
            "stdlib_version": sqlite3.sqlite_version,
        }
        """,
        tmp_path,
        old_host=False,
    )
    version = out["stdlib_version"]
    assert out["first"] == ["sqlite3", version, version, False]
    assert out["same"]
    assert out["stdlib_still_bound"]
    assert not out["pysqlite3_loaded"], "a no-op ensure() must not even import pysqlite3"
    assert not out["chromadb_loaded"]


@needs_new_host
def test_new_enough_host_in_process_reports_the_stdlib() -> None:
    backend = sqlite_compat.ensure()
    assert backend == sqlite_compat.current_backend()
    if not backend.swapped:  # another test file could have forced pysqlite3 in this worker
        assert backend.version == sqlite3.sqlite_version
        assert sqlite_compat.sqlite_version() == sqlite3.sqlite_version


@needs_pysqlite3
def test_ensure_is_idempotent_once_swapped(tmp_path: Path) -> None:
    out = run_child(
        """
        import sys
        from ollama_rag import sqlite_compat
        first = sqlite_compat.ensure()
        bound = sys.modules["sqlite3"]
        again = [
            sqlite_compat.ensure(),
            sqlite_compat.ensure(force=True),
            sqlite_compat.ensure_from_env(environ={"OLLAMA_RAG_PYSQLITE3": "1"}),
            sqlite_compat.ensure_from_env(environ={"OLLAMA_RAG_PYSQLITE3": "auto"}),
        ]
        out = {
            "first": first.module,
            "all_equal": all(b == first for b in again),
            "same_module": sys.modules["sqlite3"] is bound,
            "system_version": [b.system_version for b in again],
        }
        """,
        tmp_path,
        old_host=True,
    )
    assert out["first"] == "pysqlite3"
    assert out["all_equal"]
    assert out["same_module"]
    assert out["system_version"] == ["3.31.1"] * 4


# --- when nothing works --------------------------------------------------------------------------


def test_old_host_without_pysqlite3_raises_a_clear_error(tmp_path: Path) -> None:
    out = run_child(
        """
        import sys
        sys.modules["pysqlite3"] = None  # what a machine without pysqlite3-binary looks like
        from ollama_rag import sqlite_compat
        from ollama_rag.errors import RagError, SqliteCompatError
        try:
            sqlite_compat.ensure()
        except SqliteCompatError as err:
            out = {"message": str(err), "runtime": isinstance(err, RuntimeError),
                   "rag": isinstance(err, RagError)}
        else:
            out = {"message": None}
        out["bound"] = sys.modules["sqlite3"].__name__
        """,
        tmp_path,
        old_host=True,
    )
    message = out["message"]
    assert message is not None, "ensure() did not raise"
    assert out["runtime"]
    assert out["rag"]
    assert out["bound"] == "sqlite3", "a failed ensure() must leave sqlite3 alone"
    assert message.startswith("This Python's sqlite3 module links SQLite 3.31.1, ")
    for needle in (
        "requires SQLite >= 3.35.0",
        "pysqlite3 cannot be imported",
        "pip install pysqlite3-binary",
        "upgrade Python or its SQLite",
        "chromadb/chroma Docker image",
        "pip install chromadb-client",
    ):
        assert needle in message
    assert "chromadb was imported" not in message


@needs_pysqlite3
def test_pysqlite3_that_is_too_old_too_is_refused(tmp_path: Path) -> None:
    out = run_child(
        """
        import sys
        import pysqlite3
        pysqlite3.sqlite_version_info = (3, 30, 0)  # a source build against the old system lib
        pysqlite3.sqlite_version = "3.30.0"
        from ollama_rag import sqlite_compat
        from ollama_rag.errors import SqliteCompatError
        try:
            sqlite_compat.ensure()
        except SqliteCompatError as err:
            out = {"message": str(err)}
        else:
            out = {"message": None}
        out["bound"] = sys.modules["sqlite3"].__name__
        """,
        tmp_path,
        old_host=True,
    )
    assert out["message"] is not None
    assert "SQLite 3.31.1" in out["message"]
    assert "pysqlite3 links SQLite 3.30.0, which is too old as well" in out["message"]
    assert out["bound"] == "sqlite3"


def test_error_says_when_chromadb_was_imported_first(tmp_path: Path) -> None:
    out = run_child(
        """
        import sys, sqlite3
        import chromadb  # imported while the (real) sqlite3 still passed its check
        sqlite3.sqlite_version_info = (3, 31, 1)
        sqlite3.sqlite_version = "3.31.1"
        sys.modules["pysqlite3"] = None
        from ollama_rag import sqlite_compat
        from ollama_rag.errors import SqliteCompatError
        try:
            sqlite_compat.ensure()
        except SqliteCompatError as err:
            out = {"message": str(err)}
        else:
            out = {"message": None}
        """,
        tmp_path,
        old_host=False,
    )
    assert out["message"] is not None
    assert "SQLite 3.31.1" in out["message"]
    assert sqlite_compat.CHROMADB_FIRST_NOTE in out["message"]


@needs_pysqlite3
def test_late_ensure_warns_and_a_retried_chromadb_import_then_works(tmp_path: Path) -> None:
    out = run_child(
        """
        import sys, warnings
        try:
            import chromadb
        except RuntimeError:
            first_import = "failed"
        else:
            first_import = "worked"
        from ollama_rag import sqlite_compat
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            backend = sqlite_compat.ensure()
        import chromadb  # a failed import leaves submodules behind; the retry re-runs the check
        out = {
            "first_import": first_import,
            "backend": [backend.module, backend.chromadb_imported_first],
            "warnings": [(w.category.__name__, str(w.message)) for w in caught],
            "retry": chromadb.__version__,
        }
        """,
        tmp_path,
        old_host=True,
    )
    assert out["first_import"] == "failed"
    assert out["backend"] == ["pysqlite3", True]
    assert out["warnings"] == [["RuntimeWarning", sqlite_compat.CHROMADB_FIRST_NOTE]]
    assert out["retry"].startswith("1.")


@needs_new_host
def test_forcing_pysqlite3_when_it_is_missing_raises(tmp_path: Path) -> None:
    out = run_child(
        """
        import sys, sqlite3
        sys.modules["pysqlite3"] = None
        from ollama_rag import sqlite_compat
        from ollama_rag.errors import SqliteCompatError
        try:
            sqlite_compat.ensure(force=True)
        except SqliteCompatError as err:
            out = {"message": str(err)}
        else:
            out = {"message": None}
        out["stdlib_version"] = sqlite3.sqlite_version
        """,
        tmp_path,
        old_host=False,
    )
    message = out["message"]
    assert message is not None
    assert message.startswith(
        "pysqlite3 was requested (OLLAMA_RAG_PYSQLITE3=1 or ensure(force=True))"
    )
    assert f"The system sqlite3 (SQLite {out['stdlib_version']}) is new enough" in message
    assert "pip install pysqlite3-binary" in message


# --- the environment switch ----------------------------------------------------------------------

ENV_CHILD = """
import os, sys
from ollama_rag import sqlite_compat
before = set(sys.modules)
if {value!r} is not None:
    os.environ["OLLAMA_RAG_PYSQLITE3"] = {value!r}
result = sqlite_compat.ensure_from_env()
out = {{
    "result": None if result is None else result.module,
    "bound": sys.modules["sqlite3"].__name__ if "sqlite3" in sys.modules else None,
    "new_modules": sorted(set(sys.modules) - before),
}}
"""


@pytest.mark.parametrize(
    ("value", "old_host", "expected"),
    [
        pytest.param("1", False, "pysqlite3", id="1-forces-on-a-new-host", marks=needs_pysqlite3),
        pytest.param("1", True, "pysqlite3", id="1-on-an-old-host", marks=needs_pysqlite3),
        pytest.param(
            " Auto ", True, "pysqlite3", id="auto-swaps-on-an-old-host", marks=needs_pysqlite3
        ),
        pytest.param("auto", False, "sqlite3", id="auto-keeps-a-new-host", marks=needs_new_host),
    ],
)
def test_env_switch_on(tmp_path: Path, value: str, old_host: bool, expected: str) -> None:
    # The variable is set after `import ollama_rag`, so only the explicit call can act on it.
    out = run_child(ENV_CHILD.format(value=value), tmp_path, old_host=old_host)
    assert out["result"] == expected
    assert out["bound"] == expected
    assert not [
        m for m in out["new_modules"] if m.split(".")[0] in {"chromadb", "langchain_chroma"}
    ]


@pytest.mark.parametrize("value", [None, "", "0"], ids=["unset", "empty", "0"])
def test_env_switch_off_does_nothing_and_imports_nothing(tmp_path: Path, value: str | None) -> None:
    out = run_child(ENV_CHILD.format(value=value), tmp_path, old_host=True)
    assert out["result"] is None
    assert out["bound"] == "sqlite3"  # still the stdlib module, still "3.31.1": no swap
    assert out["new_modules"] == []


@needs_pysqlite3
def test_env_auto_set_before_import_lets_chromadb_import_on_an_old_host(tmp_path: Path) -> None:
    out = run_child(
        """
        import sys
        import ollama_rag.sqlite_compat as sqlite_compat
        # The package __init__ applies the variable itself; a second application is a no-op.
        result = sqlite_compat.ensure_from_env()
        import chromadb
        out = {"result": result.module, "bound": sys.modules["sqlite3"].__name__}
        """,
        tmp_path,
        old_host=True,
        env={"OLLAMA_RAG_PYSQLITE3": "auto"},
    )
    assert out == {"result": "pysqlite3", "bound": "pysqlite3"}


@pytest.mark.parametrize("value", ["yes", "2", "force"])
def test_env_switch_rejects_unknown_values(value: str) -> None:
    with pytest.raises(ConfigError) as info:
        sqlite_compat.ensure_from_env(environ={"OLLAMA_RAG_PYSQLITE3": value})
    assert str(info.value) == sqlite_compat.INVALID_ENV_MESSAGE.format(value=value)
    assert "use 1 (always use pysqlite3), auto" in str(info.value)


def test_error_classes() -> None:
    assert issubclass(SqliteCompatError, RagError)
    assert issubclass(SqliteCompatError, RuntimeError)
    assert sqlite_compat.MIN_SQLITE_VERSION == (3, 35, 0)
    assert sqlite_compat.ENV_VAR == "OLLAMA_RAG_PYSQLITE3"


def test_package_import_leaves_chromadb_unloaded_so_ensure_can_still_run(tmp_path: Path) -> None:
    # ensure() lives inside the package, so `import ollama_rag` must not pull in chromadb itself.
    out = run_child(
        """
        import sys
        import ollama_rag
        out = {"loaded": sorted(m for m in sys.modules
                                if m.split(".")[0] in {"chromadb", "langchain_chroma"})}
        """,
        tmp_path,
        old_host=True,
    )
    assert out["loaded"] == []
