"""A real Chroma server (``chroma run``, from the chromadb package) for server-mode tests."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["chroma_server"]

START_SECONDS = 60.0


@contextmanager
def chroma_server(path: str | Path) -> Iterator[int]:
    """Run ``chroma run --path PATH`` on a free local port until the block ends; yields the port.

    Connect with ``chromadb.HttpClient(host="127.0.0.1", port=port)`` and pass the client to
    ``RagIndex(client=...)``. The server is stopped (terminated, then reaped) on exit.

    Raises:
        RuntimeError: The ``chroma`` command is not installed next to this Python, or the
            server did not answer its heartbeat within a minute.
    """
    chroma = shutil.which("chroma", path=str(Path(sys.executable).parent))
    if chroma is None:
        msg = (
            "the chromadb package's `chroma` command is not installed next to this Python: "
            "install chromadb into this environment"
        )
        raise RuntimeError(msg)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    command = [chroma, "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    msg = f"chroma run --path {path} did not start on port {port}"
                    raise RuntimeError(msg) from None
                time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)
