"""The notebooks run top to bottom in a real Jupyter kernel against LocalOllama.

Every notebook in ``notebooks/`` needs an entry in ``EXPECTED``: what its outputs must show
(HTML tables, printed lines, a plot, a progress bar). A notebook's cell tagged ``parameters``
(papermill's convention) can be overridden: the entry's ``parameters`` run right after it, which
points notebooks written for a real Ollama's ``bge-m3`` at LocalOllama's real multilingual model.
"""

from __future__ import annotations

import importlib.util
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from ollama_rag.testing import LocalOllama

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
WIDGET = "application/vnd.jupyter.widget-view+json"
WIDGETS_INSTALLED = importlib.util.find_spec("ipywidgets") is not None
# Notebooks take 10 to 30 s each (most of it importing the package and embedding with the real
# model); this bound catches one that grew by an order of magnitude, not a busy machine.
SECONDS = 90


@dataclass(frozen=True)
class Expect:
    """What a notebook's executed outputs must show.

    Attributes:
        html: Strings that some ``text/html`` output holds.
        text: Strings that the printed output (streams and ``text/plain``) holds.
        mime: MIME types that some output carries (``image/png`` for a plot).
        parameters: Code run after the cell tagged ``parameters``.
        progress: The notebook shows a progress bar: a widget when ipywidgets (the
            ``[notebook]`` extra) is installed, else text.
    """

    html: tuple[str, ...] = ()
    text: tuple[str, ...] = ()
    mime: tuple[str, ...] = ()
    parameters: str = ""
    progress: bool = False


EXPECTED: dict[str, Expect] = {
    "quickstart.ipynb": Expect(
        html=("<caption>RagIndex</caption>", "bge-m3:latest"),
        text=("This index was built with embedding model bge-m3:latest", "fuji.md"),
    ),
    "japanese_long_text.ipynb": Expect(
        parameters='MODEL = "use-multilingual"',
        html=(
            "<caption>RagIndex</caption>",
            "<caption>IndexManifest</caption>",
            "use-multilingual:latest",
            "<caption>SearchResults: 3 results</caption>",
            "<th>found by</th>",
            "washi.md",
            "曇徴",
        ),
        text=("chunks stored", "each equal to text[start_index:end_index]", "【紙をつくる技術は"),
    ),
    "choosing_a_model.ipynb": Expect(
        parameters='MODELS = ["use-multilingual", "bge-m3", "nomic-embed-text", "not-pulled"]',
        html=("mrr@10</th>", "use-multilingual · dense", "bge-m3 · hybrid"),
        text=("36 labelled questions", "skipped not-pulled", "ollama pull not-pulled", "best:"),
        mime=("image/png",),
        progress=True,
    ),
    # qwen2.5 is LocalOllama's ExtractiveChatModel: each answer quotes the best-matching sentence
    # of what was retrieved, with its label, so a wrong retrieval or a lost citation changes it.
    "chat_app.ipynb": Expect(
        parameters='MODEL = "use-multilingual"\nCHAT_MODEL = "qwen2.5"',
        html=(
            "<caption>SearchResults: 3 results</caption>",
            "ja_fuji.md",
            "<caption>Sources of the answer</caption>",
            "ja_railways.md",
            "✓",  # the answer cites [1]
        ),
        text=(
            "→ 最後の大きな噴火は1707年の「宝永大噴火」で、このときは江戸の町にも火山灰が"
            "降り積もったという記録が残っている。[ja_fuji.md]\n",
            "→ 唐代的陆羽走访了许多产茶地区，写成了世界上第一部茶学专著《茶经》，"
            "系统地记录了茶树的种植、茶叶的采制以及煮茶和饮茶的方法。[zh_tea.md]\n",
            "qwen2.5:latest",  # both models loaded (ollama ps)
            "use-multilingual:latest",
            "因此黄河的水总是浑浊发黄，它也是世界上含沙量最大的河流之一。[zh_rivers.md]\n"
            "(40 pieces)",  # streamed, one token at a time
            "東京の新橋と横浜のあいだ約29キロを蒸気機関車が結んだ。[1]\n",
            # the follow-ups, read with the history: Mount Fuji only
            "A: こうした歴史が評価され、富士山は2013年に「富士山―信仰の対象と芸術の源泉」として"
            "ユネスコの世界文化遺産（World Heritage）に登録された。[ja_fuji.md]\n",
            "A: 一般の人が登れるのは、山小屋が営業する7月上旬から9月上旬ごろまでの約2か月に"
            "限られる。[ja_fuji.md]\n",
            "6 messages of history",
            # the same follow-up alone: Mount Fuji and washoku
            "に登録された。[ja_fuji.md] 2013年12月、「和食；日本人の伝統的な食文化」が"
            "ユネスコの無形文化遺産に登録された。[ja_washoku.md]\n",
            "长江全长约6300公里，是中国第一长河，也是亚洲最长的河流，在世界上仅次于尼罗河和"
            "亚马孙河，位居第三。[zh_rivers.md]\n",  # astream
            "I don't know: the context does not say.",  # what the documents do not answer
        ),
    ),
}


def run(notebook: Any, cwd: Path) -> list[Any]:
    """Execute ``notebook`` in a fresh python3 kernel started in ``cwd``; return its outputs."""
    NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    ).execute()
    return [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]


def printed(outputs: list[Any]) -> str:
    """Everything a reader sees as text: streams and the ``text/plain`` of results."""
    return "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in outputs)


def with_parameters(notebook: Any, code: str) -> None:
    """Insert ``code`` after the cell tagged ``parameters``, as papermill does."""
    at = next(
        (
            n
            for n, cell in enumerate(notebook.cells)
            if "parameters" in cell.get("metadata", {}).get("tags", [])
        ),
        None,
    )
    assert at is not None, "the notebook has no cell tagged 'parameters' to override"
    notebook.cells.insert(at + 1, nbformat.v4.new_code_cell(code))


def test_there_is_a_quickstart_notebook() -> None:
    assert "quickstart.ipynb" in [p.name for p in NOTEBOOKS]


def test_every_notebook_has_expectations() -> None:
    names = [p.name for p in NOTEBOOKS]
    assert [n for n in names if n not in EXPECTED] == [], "add an entry to EXPECTED"
    assert [n for n in EXPECTED if n not in names] == [], "an entry names no notebook"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executes(
    path: Path, ollama: LocalOllama, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expect = EXPECTED.get(path.name)
    if expect is None:
        pytest.fail(f"{path.name} has no entry in EXPECTED: say what its outputs must show")
    monkeypatch.setenv("OLLAMA_HOST", ollama.url)
    notebook = nbformat.read(path, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), (
        "commit notebooks without outputs"
    )
    if expect.parameters:
        with_parameters(notebook, expect.parameters)
    # Notebooks open data/... relative to their folder, as they do when a user runs them.
    if (NOTEBOOK_DIR / "data").is_dir():
        shutil.copytree(NOTEBOOK_DIR / "data", tmp_path / "data")
    started = time.perf_counter()
    outputs = run(notebook, tmp_path)
    seconds = time.perf_counter() - started
    errors = [f"{o.ename}: {o.evalue}" for o in outputs if o.output_type == "error"]
    assert errors == []
    html = "".join(o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {}))
    assert [s for s in expect.html if s not in html] == [], "missing from the HTML outputs"
    text = printed(outputs)
    assert [s for s in expect.text if s not in text] == [], "missing from the printed outputs"
    mimes = {m for o in outputs for m in o.get("data", {})}
    assert [m for m in expect.mime if m not in mimes] == []
    if expect.progress:
        assert (WIDGET in mimes) == WIDGETS_INSTALLED, "a widget exactly with ipywidgets"
        if not WIDGETS_INSTALLED:
            assert "%|" in text, "text progress bars without ipywidgets"
    assert seconds < SECONDS, f"{path.name} took {seconds:.0f} s; keep notebooks quick"


PROGRESS_CELL = """\
from ollama_rag.progress import progress_bar

with progress_bar(3, True, unit="file", desc="files") as bar:
    bar.update(3)
"""
# What a kernel without the [notebook] extra sees: ``import ipywidgets`` fails.
HIDE_WIDGETS = 'import sys\nsys.modules["ipywidgets"] = None'


@pytest.mark.slow
@pytest.mark.parametrize("widgets", [True, False], ids=["ipywidgets", "no-ipywidgets"])
def test_progress_bars_are_widgets_with_the_notebook_extra(tmp_path: Path, widgets: bool) -> None:
    if widgets and not WIDGETS_INSTALLED:
        pytest.skip("ipywidgets is not installed (pip install -e '.[notebook]')")
    cells = [PROGRESS_CELL] if widgets else [HIDE_WIDGETS, PROGRESS_CELL]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    outputs = run(notebook, tmp_path)
    assert [o for o in outputs if o.output_type == "error"] == []
    mimes = {m for o in outputs for m in o.get("data", {})}
    stderr = "".join(o.text for o in outputs if o.output_type == "stream" and o.name == "stderr")
    if widgets:
        assert WIDGET in mimes
        assert "ipywidgets" not in stderr
    else:
        assert WIDGET not in mimes
        assert "files: 100%|" in stderr
        assert "3/3" in stderr
        assert "pip install 'ollama-rag[notebook]'" in stderr  # the hint names the extra
        assert "IProgress not found" not in stderr  # instead of tqdm's own
