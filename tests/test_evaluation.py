"""Retrieval evaluation: metrics by hand, labels files, relevance rules, RagIndex and the CLI."""

from __future__ import annotations

import doctest
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner
from langchain_core.documents import Document

from ollama_rag import ConfigError, EvaluationResult, LabelledQuestion, RagIndex
from ollama_rag import evaluation as evaluation_module
from ollama_rag.cli import cli, main
from ollama_rag.evaluation import evaluate, load_questions, question_metrics
from ollama_rag.testing import LocalOllama

pytestmark = pytest.mark.usefixtures("store_kind")

JA = (
    "富士山は日本で一番高い山で、標高は3776メートルです。山梨県と静岡県にまたがっています。\n\n"
    "東京から新幹線に乗ると、晴れた日には車窓から富士山が見えます。"
)
ZH = "长江是中国最长的河流，全长约6300公里。它流经青海、西藏、四川等十一个省区市。"
EN = "The bicycle was invented in the nineteenth century. Early models had no pedals at all."

# Five questions over JA/ZH/EN: four answerable (one with two answers), one not.
QUESTIONS = [
    {"id": "fuji", "question": "富士山の標高は何メートル？", "answer": "３７７６メートル"},
    {"question": "长江全长多少公里？", "source": "river.md", "start": 0, "end": 19},
    {"question": "When was the bicycle invented?", "answer": "nineteenth century"},
    {"question": "富士山はどこから見えますか？", "answers": ["新幹線", "山梨県"]},
    {"question": "月の裏側には何がある？", "answer": "クレーター"},
]


def doc(text: str, source: str = "a.md", start: int = 0, end: int | None = None) -> Document:
    end = start + len(text) if end is None else end
    return Document(
        page_content=text, metadata={"source": source, "start_index": start, "end_index": end}
    )


def ranks_of(question: dict[str, object], documents: list[Document]) -> tuple[int | None, ...]:
    result = evaluate(lambda qs, k: [documents for _ in qs], [question])
    return result.questions[0].label_ranks


L3, L4 = 1 / math.log2(3), 1 / math.log2(4)  # the discounts of positions 2 and 3


# ---------------------------------------------------------------- metrics, checked by hand


@pytest.mark.parametrize(
    ("label_ranks", "k", "expected"),
    [
        # first chunk relevant: everything is 1
        (
            [1],
            (1, 5),
            {"hit@1": 1, "hit@5": 1, "recall@1": 1, "recall@5": 1, "mrr@10": 1, "ndcg@10": 1},
        ),
        # third chunk: a hit at 5 only; MRR 1/3; nDCG = (1/log2 4) / 1 = 0.5
        (
            [3],
            (1, 5),
            {"hit@1": 0, "hit@5": 1, "recall@1": 0, "recall@5": 1, "mrr@10": 1 / 3, "ndcg@10": 0.5},
        ),
        # not retrieved
        (
            [None],
            (1, 5),
            {"hit@1": 0, "hit@5": 0, "recall@1": 0, "recall@5": 0, "mrr@10": 0, "ndcg@10": 0},
        ),
        # found at 12 (k=20 retrieves 20): a hit@20, but beyond MRR@10 and nDCG@10
        (
            [12],
            (1, 20),
            {"hit@1": 0, "hit@20": 1, "recall@1": 0, "recall@20": 1, "mrr@10": 0, "ndcg@10": 0},
        ),
        # two answers at 2 and 4: recall@1 0, MRR 1/2, nDCG (1/log2 3 + 1/log2 5) / (1 + 1/log2 3)
        (
            [2, 4],
            (1, 3, 5),
            {
                "hit@1": 0,
                "hit@3": 1,
                "hit@5": 1,
                "recall@1": 0,
                "recall@3": 0.5,
                "recall@5": 1,
                "mrr@10": 0.5,
                "ndcg@10": (0.6309297535714575 + 0.43067655807339306) / 1.6309297535714575,
            },
        ),
        # one answer found at 1, the other never: recall 1/2, nDCG 1 / (1 + 1/log2 3)
        (
            [1, None],
            (1,),
            {"hit@1": 1, "recall@1": 0.5, "mrr@10": 1, "ndcg@10": 1 / 1.6309297535714575},
        ),
        # one chunk holds both answers: binary gain 1 against an ideal of two chunks (documented)
        ([1, 1], (1,), {"hit@1": 1, "recall@1": 1, "mrr@10": 1, "ndcg@10": 1 / 1.6309297535714575}),
        # twelve labels at 1..12: the ideal assumes min(12, 10) = 10 chunks, so nDCG is 1
        (list(range(1, 13)), (1,), {"hit@1": 1, "recall@1": 1 / 12, "mrr@10": 1, "ndcg@10": 1}),
    ],
)
def test_question_metrics_match_hand_computed_values(
    label_ranks: list[int | None], k: tuple[int, ...], expected: dict[str, float]
) -> None:
    got = question_metrics(label_ranks, k=k)
    assert list(got) == list(expected)  # hit@k..., recall@k..., mrr@10, ndcg@10, in order
    assert got == pytest.approx(expected)


def test_evaluate_averages_over_questions_and_retrieves_in_batches() -> None:
    corpus = {
        "q1": [doc("x"), doc("the answer is 42")],  # rank 2
        "q2": [doc("42 here")],  # rank 1
        "q3": [doc("nothing")],  # miss
    }
    calls: list[tuple[list[str], int]] = []

    def retrieve(questions: Sequence[str], k: int) -> list[list[Document]]:
        calls.append((list(questions), k))
        return [corpus[q] for q in questions]

    labelled = [{"question": q, "answer": "42"} for q in corpus]
    result = evaluate(retrieve, labelled, k=(1, 5), batch_size=2, mode="dense")

    assert calls == [(["q1", "q2"], 10), (["q3"], 10)]  # max(k, 10) per question, 2 per call
    assert result.metrics == pytest.approx(
        {
            "hit@1": 1 / 3,
            "hit@5": 2 / 3,
            "recall@1": 1 / 3,
            "recall@5": 2 / 3,
            "mrr@10": (0.5 + 1) / 3,
            "ndcg@10": (L3 + 1) / 3,
        }
    )
    assert [q.rank for q in result.questions] == [2, 1, None]
    assert [q.question.question for q in result.misses()] == ["q3"]
    assert [q.question.question for q in result.misses(k=1)] == ["q1", "q3"]
    assert (result.count, result.mode, result.k, result.depth) == (3, "dense", (1, 5), 10)


def test_a_cutoff_above_ten_retrieves_that_many() -> None:
    seen: list[int] = []

    def retrieve(questions: Sequence[str], k: int) -> list[list[Document]]:
        seen.append(k)
        return [[doc("z")] * 11 + [doc("42")] for _ in questions]

    result = evaluate(retrieve, [{"question": "q", "answer": "42"}], k=20)
    assert seen == [20]
    assert result.metrics == {"hit@20": 1.0, "recall@20": 1.0, "mrr@10": 0.0, "ndcg@10": 0.0}


def test_retrieve_must_answer_every_question() -> None:
    with pytest.raises(ConfigError, match="returned 1 result lists for 2 questions"):
        evaluate(lambda qs, k: [[]], [{"question": "a", "answer": "x"}] * 2)


@pytest.mark.parametrize("k", [(), (0, 5), (1.5,), (True,)])
def test_bad_cutoffs_are_refused(k: tuple[object, ...]) -> None:
    with pytest.raises(ConfigError, match="k must be whole numbers"):
        evaluate(lambda qs, n: [[] for _ in qs], [{"question": "a", "answer": "x"}], k=k)  # type: ignore[arg-type]


# ---------------------------------------------------------------- what counts as relevant


@pytest.mark.parametrize(
    ("answer", "text"),
    [
        ("５月", "梅雨は5月から7月にかけて"),  # full-width digit (NFKC)
        ("5月から7月", "梅雨は５月から\n７月にかけて"),  # full-width and a line break
        ("FUJI", "Mount Fuji"),  # case
        ("ｶﾀｶﾅ", "カタカナ"),  # half-width kana (NFKC)
        ("3,776 m", "標高3,776m"),  # whitespace is ignored
    ],
)
def test_answers_match_after_nfkc_casefold_and_whitespace(answer: str, text: str) -> None:
    assert ranks_of({"question": "q", "answer": answer}, [doc(text)]) == (1,)


def test_an_answer_split_by_a_chunk_boundary_is_not_found() -> None:
    assert ranks_of({"question": "q", "answer": "3776"}, [doc("標高は37"), doc("76m")]) == (None,)


@pytest.mark.parametrize(
    ("chunk", "found"),
    [
        ((10, 20), False),  # ends where the span starts: touching, no overlap
        ((10, 21), True),  # one character of overlap
        ((50, 60), False),  # starts where the span ends: touching
        ((49, 60), True),
        ((0, 100), True),  # contains the span
        ((25, 30), True),  # inside the span
    ],
)
def test_span_labels_need_overlap_and_touching_is_not_enough(
    chunk: tuple[int, int], found: bool
) -> None:
    label = {"question": "q", "source": "a.md", "start": 20, "end": 50}
    got = ranks_of(label, [doc("text", "a.md", chunk[0], chunk[1])])
    assert got == ((1,) if found else (None,))


def test_source_labels_match_the_source_exactly() -> None:
    label = {"question": "q", "source": "a.md"}
    assert ranks_of(label, [doc("x", "b.md"), doc("y", "a.md")]) == (2,)
    assert ranks_of(label, [doc("x", "docs/a.md")]) == (None,)


def test_a_span_cannot_match_a_chunk_without_offsets() -> None:
    bare = Document(page_content="x", metadata={"source": "a.md"})
    assert ranks_of({"question": "q", "source": "a.md", "start": 0, "end": 5}, [bare]) == (None,)
    assert ranks_of({"question": "q", "source": "a.md"}, [bare]) == (1,)


def test_answer_with_source_needs_both() -> None:
    label = {"question": "q", "answer": "42", "source": "b.md"}
    documents = [doc("42", "a.md"), doc("no", "b.md"), doc("it is 42", "b.md")]
    assert ranks_of(label, documents) == (3,)


def test_each_answer_is_a_label_found_at_its_own_rank() -> None:
    label = {"question": "q", "answers": ["山梨", "静岡"]}
    documents = [doc("静岡県"), doc("何もない"), doc("山梨県と静岡県")]
    assert ranks_of(label, documents) == (3, 1)


# ---------------------------------------------------------------- labels files


def write(tmp_path: Path, text: str, name: str = "q.jsonl") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_jsonl_loads_answers_sources_spans_and_ids(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '\ufeff{"question": "a?", "answer": "x", "id": 7, "passage_id": "p1"}\n'
        "\n"
        '{"question": "b?", "answers": ["y", "z"]}\n'
        '{"question": "c?", "source": "s.md", "start": 3, "end": 9}\r\n'
        # U+2028 may stand unescaped in a JSON string; it does not end a line
        '{"question": "d\u2028e?", "answer": "w"}\n',
    )
    assert load_questions(path) == [
        LabelledQuestion("a?", ("x",), id="7"),
        LabelledQuestion("b?", ("y", "z")),
        LabelledQuestion("c?", (), "s.md", 3, 9),
        LabelledQuestion("d\u2028e?", ("w",)),
    ]


def test_a_json_list_is_accepted_and_its_records_keep_their_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[\n  {"question": "a?", "answer": "x"},\n\n  {"question": "b?"}\n]\n',
        "q.json",
    )
    with pytest.raises(ConfigError, match=r'q\.json, line 4: no "question"|line 4: neither'):
        load_questions(path)
    ok = write(tmp_path, '[{"question": "a?", "answer": "x"}]', "ok.json")
    assert load_questions(ok) == [LabelledQuestion("a?", ("x",))]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"answer": "x"}', 'line 2: no "question"; each record needs "question"'),
        ('{"question": "q?"}', 'line 2: neither "answer" nor "source" is given'),
        ('{"question": "  ", "answer": "x"}', 'line 2: "question" is empty'),
        ('{"question": "q?", "answer": " "}', "line 2: answer ' ' is empty"),
        (
            '{"question": "q?", "answer": 3776}',
            "line 2: answer 3776 is a int; write it as a string",
        ),
        ('{"question": "q?", "answer": "x", "answers": ["y"]}', 'line 2: give "answer"'),
        (
            '{"question": "q?", "source": "a.md", "start": 9, "end": 3}',
            r'line 2: "start" \(9\) is after "end" \(3\)',
        ),
        (
            '{"question": "q?", "source": "a.md", "start": 3, "end": 3}',
            'line 2: "start" .3. is equal',
        ),
        ('{"question": "q?", "source": "a.md", "start": 3}', 'line 2: give both "start" and "end"'),
        (
            '{"question": "q?", "answer": "x", "start": 0, "end": 3}',
            'line 2: "start"/"end" need a "source"',
        ),
        ('{"question": "q?", "source": "a.md", "start": -1, "end": 3}', 'line 2: "start" must be'),
        ('{"question": "q?", "answer": "x",}', r"line 2: not valid JSON \(Expecting property name"),
        ('["q?", "x"]', "line 2: expected a JSON object, got list"),
    ],
)
def test_a_bad_record_names_the_file_the_line_and_the_fix(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path, '{"question": "ok?", "answer": "x"}\n' + text + "\n")
    with pytest.raises(ConfigError, match=message) as caught:
        load_questions(path)
    assert str(caught.value).startswith(f"{path}, line 2: ")


def test_a_file_that_is_not_utf8_names_the_line_and_how_to_convert(tmp_path: Path) -> None:
    path = tmp_path / "sjis.jsonl"
    path.write_bytes(
        b'{"question": "a?", "answer": "x"}\n'
        + '{"question": "富士山は？", "answer": "山"}\n'.encode("shift_jis")
    )
    with pytest.raises(ConfigError, match=r"sjis\.jsonl, line 2: not UTF-8 .*iconv -f SHIFT_JIS"):
        load_questions(path)


def test_missing_empty_and_broken_list_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.jsonl: no such file"):
        load_questions(tmp_path / "nope.jsonl")
    with pytest.raises(ConfigError, match=r"empty\.jsonl: no labelled questions"):
        load_questions(write(tmp_path, "\n\n", "empty.jsonl"))
    with pytest.raises(ConfigError, match="no labelled questions"):
        load_questions(write(tmp_path, "[ ]", "empty.json"))
    broken = write(tmp_path, '[\n{"question": "a?", "answer": "x"}\n{"question": "b?"}]', "b.json")
    with pytest.raises(ConfigError, match=r"b\.json, line 3: not valid JSON \(expected ','"):
        load_questions(broken)


def test_questions_given_in_memory_are_checked_with_their_position() -> None:
    with pytest.raises(ConfigError, match=r"questions\[1\]: no \"question\""):
        evaluate(lambda qs, k: [], [{"question": "a", "answer": "x"}, {"answer": "y"}])
    with pytest.raises(ConfigError, match="not a single mapping"):
        evaluate(lambda qs, k: [], {"question": "a", "answer": "x"})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="no labelled questions"):
        evaluate(lambda qs, k: [], [])


def test_labelled_question_checks_itself() -> None:
    assert LabelledQuestion("q", "x").answers == ("x",)  # type: ignore[arg-type]
    assert LabelledQuestion("q", ["x", "y"]).answers == ("x", "y")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match='neither "answer" nor "source"'):
        LabelledQuestion("q")
    with pytest.raises(ConfigError, match=r'"start" \(5\) is after "end" \(2\)'):
        LabelledQuestion("q", source="a.md", start=5, end=2)


# ---------------------------------------------------------------- results: text, HTML, JSON


def sample_result(mode: str | None, found_at: int | None) -> EvaluationResult:
    documents = [doc("nothing")] * ((found_at or 11) - 1) + [doc("42 <b>")]
    return evaluate(
        lambda qs, k: [documents for _ in qs],
        [{"question": "what <is> it?", "answer": "42"}, {"question": "q2", "answer": "99"}],
        k=(1, 5),
        mode=mode,
    )


def test_str_is_an_aligned_table_naming_the_misses() -> None:
    text = str(sample_result("dense", 2))
    lines = text.splitlines()
    assert lines[0].startswith("2 questions, mode dense, top 10 retrieved, ")
    assert lines[1:8] == [
        "metric    value",
        "hit@1     0.000",
        "hit@5     0.500",
        "recall@1  0.000",
        "recall@5  0.500",
        "mrr@10    0.250",
        f"ndcg@10   {L3 / 2:.3f}",
    ]
    assert lines[8] == "1 without a relevant chunk in the top 10: result.misses()"


def test_html_repr_is_an_escaped_table() -> None:
    page = sample_result("hybrid", 1)._repr_html_()
    assert page.startswith("<table><caption>EvaluationResult: 2 questions, mode hybrid, 1 without")
    assert "<th style='text-align:left'>ndcg@10</th><td style='text-align:right'>0.500</td>" in page
    assert page.count("<tr>") == 7  # header + six metrics


def test_compare_puts_modes_side_by_side_and_marks_the_best() -> None:
    dense, hybrid = sample_result("dense", 3), sample_result("hybrid", 1)
    table = EvaluationResult.compare([dense, hybrid])
    assert str(table).splitlines()[:3] == [
        "metric     dense  hybrid",
        "questions      2       2",
        "hit@1      0.000   0.500",
    ]
    page = table._repr_html_()
    assert "<td style='text-align:right'><b>0.500</b></td>" in page  # hybrid's hit@1
    assert "<td style='text-align:right'>0.000</td>" in page
    assert table.to_dict()["hybrid"]["mrr@10"] == 0.5
    named = EvaluationResult.compare({"bge-m3": dense, "e5": dense})
    assert named.columns == ("bge-m3", "e5")
    assert EvaluationResult.compare([dense, dense]).columns == ("dense", "dense #2")


def test_to_dict_is_json_with_details_on_request() -> None:
    result = sample_result(None, 2)
    plain = json.loads(json.dumps(result.to_dict()))
    assert plain["metrics"]["mrr@10"] == 0.25
    assert (plain["count"], plain["mode"], plain["k"], "questions" in plain) == (
        2,
        None,
        [1, 5],
        False,
    )
    detailed = result.to_dict(details=True)["questions"]
    assert detailed[0] == {
        "id": None,
        "question": "what <is> it?",
        "rank": 2,
        "labels": ["42"],
        "label_ranks": [2],
        "retrieved": ["a.md:0-7", "a.md:0-6"],
    }
    assert detailed[1]["rank"] is None


def test_doctests() -> None:
    assert doctest.testmod(evaluation_module).failed == 0


# ---------------------------------------------------------------- RagIndex.evaluate, end to end


def build_index(path: Path | None, server: LocalOllama) -> RagIndex:
    index = RagIndex(path, model="bge-m3", base_url=server.url, chunk_size=40)
    index.add_texts([JA], source="fuji.md")
    index.add_texts([ZH], source="river.md")
    index.add_texts([EN], source="bike.md")
    return index


def test_index_evaluate_scores_answerable_and_unanswerable_questions(
    tmp_path: Path, ollama: LocalOllama
) -> None:
    labels = tmp_path / "questions.jsonl"
    labels.write_text("\n".join(json.dumps(q, ensure_ascii=False) for q in QUESTIONS), "utf-8")
    with build_index(None, ollama) as index:
        assert index.count() == 7
        result = index.evaluate(labels, k=(1, 3), mode="dense")
        assert index.evaluate(QUESTIONS, k=(1, 3)).metrics == result.metrics  # same, from a list

    # Per question: the first relevant chunk's rank (the 40-character chunks split EN so that
    # "nineteenth century" is in its second chunk); the Japanese question finds both answers.
    assert [q.rank for q in result.questions] == [1, 1, 2, 1, None]
    assert result.questions[3].label_ranks == (1, 3)
    assert result.questions[0].question.id == "fuji"
    assert [m.question.question for m in result.misses()] == ["月の裏側には何がある？"]
    # hit@1: 3 of 5; recall@1: (1 + 1 + 0 + 1/2 + 0) / 5; MRR: (1 + 1 + 1/2 + 1 + 0) / 5;
    # nDCG: (1 + 1 + 1/log2 3 + (1 + 1/log2 4) / (1 + 1/log2 3) + 0) / 5.
    assert result.metrics == pytest.approx(
        {
            "hit@1": 0.6,
            "hit@3": 0.8,
            "recall@1": 0.5,
            "recall@3": 0.8,
            "mrr@10": 0.7,
            "ndcg@10": (2 + L3 + (1 + L4) / (1 + L3)) / 5,
        }
    )
    assert (result.count, result.mode, result.depth) == (5, "dense", 10)
    assert result.questions[4].retrieved  # the miss shows what came back instead
    assert all(":" in cite for cite in result.questions[4].retrieved)


def test_index_evaluate_refuses_labels_for_sources_it_does_not_hold(ollama: LocalOllama) -> None:
    with build_index(None, ollama) as index:
        with pytest.raises(
            ConfigError, match=r"1 labelled source\(s\) are not in the index: 'fuji.txt'"
        ):
            index.evaluate([{"question": "富士山？", "source": "fuji.txt"}])
        # filter= restricts every search: nothing outside river.md can be found
        result = index.evaluate(QUESTIONS[:2], filter={"source": "river.md"})
    assert [q.rank for q in result.questions] == [None, 1]


# ---------------------------------------------------------------- the CLI


@pytest.fixture
def indexed(tmp_path: Path, ollama: LocalOllama) -> tuple[str, Path]:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "fuji.md").write_text(JA, encoding="utf-8")
    (docs / "river.md").write_text(ZH, encoding="utf-8")
    (docs / "bike.md").write_text(EN, encoding="utf-8")
    db = str(tmp_path / "db")
    done = CliRunner().invoke(
        cli, ["index", str(docs), "--db", db, "--model", "bge-m3", "--base-url", ollama.url]
    )
    assert done.exit_code == 0, done.output
    labels = tmp_path / "q.jsonl"
    labels.write_text("\n".join(json.dumps(q, ensure_ascii=False) for q in QUESTIONS), "utf-8")
    return db, labels


def test_cli_eval_prints_a_table_and_json(indexed: tuple[str, Path], ollama: LocalOllama) -> None:
    db, labels = indexed
    runner = CliRunner()
    url = ["--base-url", ollama.url]

    text = runner.invoke(cli, ["eval", str(labels), "--db", db, "--details", *url])
    assert text.exit_code == 0, text.output
    assert "5 questions, mode default, top 10 retrieved" in text.output
    assert "hit@10" in text.output
    assert "miss: 月の裏側には何がある？  (labels: クレーター)" in text.output

    out = runner.invoke(
        cli, ["eval", str(labels), "--db", db, "--json", "--k", "1,3", "--mode", "dense", *url]
    )
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert list(data["metrics"]) == ["hit@1", "hit@3", "recall@1", "recall@3", "mrr@10", "ndcg@10"]
    assert (data["count"], data["mode"], "questions" in data) == (5, "dense", False)
    assert 0.0 < data["metrics"]["hit@3"] < 1.0  # the unanswerable question is a miss

    detailed = json.loads(
        runner.invoke(cli, ["eval", str(labels), "--db", db, "--json", "--details", *url]).output
    )
    assert detailed["questions"][4]["rank"] is None
    assert detailed["questions"][0]["id"] == "fuji"


def test_cli_eval_refuses_bad_cutoffs(tmp_path: Path) -> None:
    labels = write(tmp_path, '{"question": "q?", "answer": "x"}')
    bad = CliRunner().invoke(cli, ["eval", str(labels), "--db", str(tmp_path), "--k", "1,x"])
    assert bad.exit_code == 2
    assert "'1,x' is not a list of whole numbers such as 1,5,10" in bad.output


def test_cli_eval_without_an_index_touches_nothing(tmp_path: Path, ollama: LocalOllama) -> None:
    labels = write(tmp_path, '{"question": "q?", "answer": "x"}')
    missing, empty = tmp_path / "no_db", tmp_path / "empty_db"
    empty.mkdir()
    for db in (missing, empty):
        got = CliRunner().invoke(
            cli, ["eval", str(labels), "--db", str(db), "--base-url", ollama.url]
        )
        assert got.exit_code == 1
        assert got.output.strip() == (
            f"Error: No index at {db} (collection 'default') — create it with: "
            f"ollama-rag index PATH --db {db} --model bge-m3"
        )
    assert not missing.exists()
    assert list(empty.iterdir()) == []


def test_cli_eval_names_a_collection_that_is_not_there(
    indexed: tuple[str, Path], ollama: LocalOllama
) -> None:
    db, labels = indexed
    got = CliRunner().invoke(
        cli, ["eval", str(labels), "--db", db, "--collection", "other", "--base-url", ollama.url]
    )
    assert got.exit_code == 1
    assert "(collection 'other'); the directory holds the index(es) 'default'" in got.output
    assert "pass --collection default to use it" in got.output
    assert f"ollama-rag index PATH --db {db} --collection other --model bge-m3" in got.output


def test_cli_eval_bad_file_is_one_line_naming_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    labels = write(tmp_path, '{"question": "a?", "answer": "x"}\n{"question": "b?"}\n')
    db = tmp_path / "db"
    monkeypatch.setattr(sys, "argv", ["ollama-rag", "eval", str(labels), "--db", str(db)])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        f'Error: {labels}, line 2: neither "answer" nor "source" is given; each record needs '
        '"question" and "answer" (or "answers": [...]) and/or "source" (with optional "start" '
        'and "end"), e.g. {"question": "富士山の高さは？", "answer": "3776"}'
    ]
    assert not db.exists()
