"""Fusion of the dense and lexical rankings, and its calibration on the index's own text."""

from __future__ import annotations

import pytest

from ollama_rag import RagIndex
from ollama_rag.fusion import Calibration, fuse, priors_from, pseudo_queries
from ollama_rag.testing import LocalOllama


def ids(fused: list) -> list[str]:  # type: ignore[type-arg]
    return [f.id for f in fused]


def test_a_peaked_side_outweighs_a_flat_one() -> None:
    # Dense: flat (no candidate stands out). Lexical: "b" stands far above the rest.
    dense = [("a", 0.51), ("c", 0.50), ("b", 0.49), ("d", 0.48)]
    lexical = [("b", 20.0), ("a", 2.0), ("c", 1.9), ("e", 1.8)]
    fused, weights = fuse(dense, lexical)
    assert ids(fused)[0] == "b"
    assert weights.lexical > weights.dense
    assert weights.dense + weights.lexical == pytest.approx(1.0)
    # Reversed peaks: the dense side wins.
    fused, weights = fuse([("x", 0.9), ("a", 0.2), ("c", 0.19)], [("a", 3.0), ("c", 2.9)])
    assert ids(fused)[0] == "x"
    assert weights.dense > weights.lexical


def test_priors_scale_the_peaks() -> None:
    dense = [("a", 0.9), ("b", 0.5), ("c", 0.45)]
    lexical = [("b", 9.0), ("a", 5.0), ("c", 4.5)]
    assert ids(fuse(dense, lexical, priors=(100.0, 1.0))[0])[0] == "a"
    assert ids(fuse(dense, lexical, priors=(1.0, 100.0))[0])[0] == "b"


def test_one_empty_side_leaves_the_other_as_it_is() -> None:
    fused, weights = fuse([], [("a", 3.0), ("b", 1.0)])
    assert ids(fused) == ["a", "b"]
    assert (weights.dense, weights.lexical) == (0.0, 1.0)
    assert [f.lexical_rank for f in fused] == [0, 1]
    fused, weights = fuse([("a", 0.3)], [])
    assert ids(fused) == ["a"]
    assert fused[0].dense_rank == 0
    assert fused[0].lexical_rank is None


def test_ties_go_to_the_better_dense_rank() -> None:
    # Equal scores everywhere: no peaks, min-max gives 1.0 to all; dense order decides.
    fused, _ = fuse([("b", 0.5), ("a", 0.5)], [("a", 1.0), ("b", 1.0)])
    assert ids(fused) == ["b", "a"]


def test_pseudo_queries_drop_half_of_a_sentence() -> None:
    texts = [
        ("c1", "富士山は日本で一番高い山です。標高は3776メートルあります。"),
        ("c2", "短い。"),  # no sentence of 8 characters or more: skipped
        ("c3", "琵琶湖は滋賀県にある日本最大の湖で、京都の水源です。"),
    ]
    made = pseudo_queries(texts, count=10, seed=1)
    assert len(made) == 2
    for query, sentence in made:
        assert len(query) == len(sentence) // 2
        it = iter(sentence)
        assert all(ch in it for ch in query)  # characters kept in order
    assert pseudo_queries(texts, count=10, seed=1) == made  # repeatable
    assert len(pseudo_queries(texts, count=1, seed=1)) == 1


def test_priors_are_odds_of_success() -> None:
    weak, strong = priors_from(0.45, 0.97, 200)
    assert strong / weak > 20  # a nearly perfect side dominates a weak one
    even = priors_from(0.85, 0.88, 200)
    assert 0.5 < even[0] / even[1] < 1.0  # two good sides are weighted about evenly


def test_a_calibration_round_trips_through_the_manifest_text() -> None:
    calibration = Calibration(0.4555, 0.972, 200, 381)
    text = calibration.to_text()
    assert text.startswith("peak-minmax/1 ")
    assert Calibration.from_text(text) == Calibration(0.4555, 0.972, 200, 381)
    assert Calibration.from_text("") is None
    assert Calibration.from_text("rrf/1 k=60") is None
    assert Calibration.from_text("peak-minmax/1 dense_mrr=x") is None


SENTENCES = [
    "富士山は日本で一番高い山で、標高は3776メートルです。",
    "琵琶湖は滋賀県にある日本最大の湖として知られています。",
    "長江は中国で最も長い川で、上海の近くで海に注ぎます。",
    "新幹線は東京と大阪を約二時間半で結ぶ高速鉄道です。",
    "味噌汁は大豆から作る味噌を溶かした日本の汁物です。",
    "将棋は二人で指す盤上の遊戯で、取った駒を使えます。",
]


def test_an_index_calibrates_itself_and_records_it(tmp_path: object, ollama: LocalOllama) -> None:
    texts = [f"{s}第{i}項の説明はここまでです。" for i in range(8) for s in SENTENCES]
    with RagIndex(model="bge-m3", base_url=ollama.url) as index:
        index.add_texts(texts[:10])
        assert index.manifest.fusion == ""  # 10 chunks: too few to measure
        assert index.searcher.priors == (1.0, 1.0)
        index.add_texts(texts[10:])
        recorded = Calibration.from_text(index.manifest.fusion)
        assert recorded is not None
        assert recorded.chunks == 48
        assert recorded.queries >= 20
        assert 0.0 <= recorded.dense_mrr <= 1.0
        assert recorded.lexical_mrr > 0.5  # half of a sentence still finds it lexically
        assert index.searcher.priors == recorded.priors
        again = index.calibrate()
        assert again == recorded  # seeded: the same pseudo-queries, the same figures
