"""LocalOllama servers in processes of their own, driven over stdin/stdout.

An in-process LocalOllama would compute hash embeddings and encode JSON under the ingesting
process's GIL, so a benchmark would measure the two competing for one interpreter. Here each
server is a child ``python -m benchmarks._servers MODEL DIM CONTEXT SEED [SECOND]``: it starts
:class:`~ollama_rag.testing.LocalOllama`, prints its URL, then answers one JSON command per
line (``set_delay``, ``reset_counters``, ``stats``, ``drain``, ``stop``) until told to stop or
until its stdin closes (so a dead parent never leaves servers behind). With ``SECOND`` it also
serves a second hash model of that name (seed ``SEED + 1``: other vectors, another digest), the
model an index migrates to; its requests count in the same counters.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

__all__ = ["ServerProcess", "ServerStats", "running_servers"]

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class ServerStats:
    """One server's counters since its last reset."""

    busy_seconds: float
    requests: int
    inputs: int


def _child(
    model: str, dimension: int, context_length: int, seed: int, second: str | None = None
) -> None:
    """Serve one hash model (two with ``second``); commands on stdin, answers on stdout."""
    from ollama_rag.testing import HashEmbeddingModel, LocalOllama

    specs = {
        model: HashEmbeddingModel(dimension=dimension, context_length=context_length, seed=seed)
    }
    if second is not None:
        specs[second] = HashEmbeddingModel(
            dimension=dimension, context_length=context_length, seed=seed + 1
        )
    with LocalOllama(specs) as server:
        # Counters moved out of the server by "drain", which resets it and so drops the input
        # texts it recorded: they would otherwise pile up in this process on the long runs.
        carried = ServerStats(0.0, 0, 0)

        def current() -> ServerStats:
            return ServerStats(
                carried.busy_seconds + server.busy_seconds,
                carried.requests + sum(server.request_count(m) for m in specs),
                carried.inputs + sum(len(server.received(m)) for m in specs),
            )

        def answer(payload: dict[str, Any]) -> None:
            sys.stdout.write(json.dumps(payload) + "\n")
            sys.stdout.flush()

        answer({"url": server.url})
        for line in sys.stdin:
            command = json.loads(line)
            name = command.pop("command")
            try:
                result: ServerStats | None = None
                if name == "set_delay":
                    server.set_delay(**command)
                elif name == "reset_counters":
                    server.reset_counters()
                    carried = ServerStats(0.0, 0, 0)
                elif name == "stats":
                    result = current()
                elif name == "drain":
                    result = carried = current()
                    server.reset_counters()
                elif name == "stop":
                    answer({"ok": None})
                    return
                else:
                    msg = f"unknown command {name!r}"
                    raise ValueError(msg)
                answer({"ok": asdict(result) if result is not None else None})
            except Exception as err:  # reported to the parent, which raises it
                answer({"error": f"{type(err).__name__}: {err}"})


class ServerProcess:
    """A LocalOllama serving one hash model (``model``) in a child process.

    Servers built with the same ``dimension``, ``context_length`` and ``seed`` serve the same
    digest, so a RagIndex accepts them together as hosts. ``second_model`` names a second hash
    model served alongside (for migrations). The constructor returns at once; :meth:`wait_ready`
    waits for the URL (so several servers start concurrently).
    """

    def __init__(
        self,
        model: str,
        *,
        dimension: int,
        context_length: int = 8192,
        seed: int = 1,
        second_model: str | None = None,
    ) -> None:
        self.model = model
        self.second_model = second_model
        args = [model, str(dimension), str(context_length), str(seed)]
        if second_model is not None:
            args.append(second_model)
        self._process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks._servers", *args],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        self.url = ""

    @property
    def pid(self) -> int:
        return self._process.pid

    def _stdin(self) -> IO[str]:
        assert self._process.stdin is not None
        return self._process.stdin

    def _read(self) -> dict[str, Any]:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            code = self._process.wait()
            msg = f"LocalOllama child {self._process.pid} exited (status {code})"
            raise RuntimeError(msg)
        return json.loads(line)  # type: ignore[no-any-return]

    def wait_ready(self) -> str:
        """Block until the child reports its URL; returns it."""
        if not self.url:
            self.url = str(self._read()["url"])
        return self.url

    def _call(self, command: str, **kwargs: Any) -> Any:
        self.wait_ready()
        self._stdin().write(json.dumps({"command": command, **kwargs}) + "\n")
        self._stdin().flush()
        reply = self._read()
        if "error" in reply:
            msg = f"LocalOllama child failed {command!r}: {reply['error']}"
            raise RuntimeError(msg)
        return reply["ok"]

    def set_delay(
        self, *, per_request: float = 0.0, per_input: float = 0.0, slots: int = 1
    ) -> None:
        self._call("set_delay", per_request=per_request, per_input=per_input, slots=slots)

    def reset_counters(self) -> None:
        self._call("reset_counters")

    def stats(self) -> ServerStats:
        """Busy seconds, requests and inputs since the last reset."""
        return ServerStats(**self._call("stats"))

    def drain(self) -> ServerStats:
        """Like :meth:`stats`, but lets the server forget the input texts it recorded."""
        return ServerStats(**self._call("drain"))

    def close(self) -> None:
        """Stop the child (politely, then by terminate) and reap it."""
        if self._process.poll() is None:
            try:
                self._call("stop")
                self._process.wait(timeout=10)
            except (OSError, RuntimeError, ValueError, subprocess.TimeoutExpired):
                self._process.terminate()
                self._process.wait(timeout=10)
        for stream in (self._process.stdin, self._process.stdout):
            if stream is not None:
                stream.close()


@contextmanager
def running_servers(
    count: int,
    model: str,
    *,
    dimension: int,
    context_length: int = 8192,
    seed: int = 1,
    second_model: str | None = None,
) -> Iterator[list[ServerProcess]]:
    """Start ``count`` identical server processes (concurrently) and stop them on exit."""
    with ExitStack() as stack:
        servers = []
        for _ in range(count):
            server = ServerProcess(
                model,
                dimension=dimension,
                context_length=context_length,
                seed=seed,
                second_model=second_model,
            )
            stack.callback(server.close)
            servers.append(server)
        for server in servers:
            server.wait_ready()
        yield servers


if __name__ == "__main__":
    _child(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), *sys.argv[5:6])
