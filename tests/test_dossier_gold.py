"""The dossier yardstick (tests/data/dossier_gold.yaml) and its scoring (benchmarks/dossier.py).

The yardstick must stay true to the corpus: every quote verbatim, once, in the file it names, as
the loader reads it; and the scoring must count what it says it counts.
"""
from __future__ import annotations

import csv
import importlib.util
import sys
from functools import lru_cache
from pathlib import Path

import pytest
import yaml

from indexer.loaders import load_file
from kb.briefing.model import BriefingPack, PackItem

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "corpus"
GOLD = REPO / "tests" / "data" / "dossier_gold.yaml"


def _benchmark():
    spec = importlib.util.spec_from_file_location("dossier_benchmark", REPO / "benchmarks" / "dossier.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


dossier = _benchmark()


@lru_cache(maxsize=None)
def _text(file: str) -> str:
    return load_file(CORPUS / file).text


@lru_cache(maxsize=None)
def _doc_types(folder: str) -> dict[str, str]:
    with (CORPUS / folder / "metadata.csv").open(encoding="utf-8") as fh:
        return {row["file"]: row["doc_type"] for row in csv.DictReader(fh)}


GOLD_TOPICS = dossier.load_gold(GOLD)


def test_gold_has_every_sample_topic_with_its_folder():
    topics = {t["id"]: t for t in yaml.safe_load((CORPUS / "topics.yaml").read_text(encoding="utf-8"))["topics"]}
    assert set(GOLD_TOPICS) == set(topics)
    for topic_id, gold in GOLD_TOPICS.items():
        assert gold.folder == topics[topic_id]["folder"]
        for p in gold.must + gold.boilerplate:
            assert p.file.startswith(gold.folder), (topic_id, p.file)


@pytest.mark.parametrize("topic_id", sorted(GOLD_TOPICS))
def test_gold_topic_is_broad(topic_id):
    gold = GOLD_TOPICS[topic_id]
    assert len(gold.must) >= 10
    assert {p.section for p in gold.must} == set(dossier.SECTION_KEYS)  # every section has must-haves
    quoted = {(p.file, p.quote) for p in gold.must + gold.boilerplate}
    assert len(quoted) == len(gold.must) + len(gold.boilerplate), "an entry is listed twice"
    # every document of the folder has its boilerplate (header or provenance, notice…) listed
    documents = set(_doc_types(gold.folder))
    assert {p.file.removeprefix(gold.folder) for p in gold.boilerplate} == documents


@pytest.mark.parametrize("topic_id", sorted(GOLD_TOPICS))
def test_every_quote_occurs_verbatim_once_in_its_file(topic_id):
    gold = GOLD_TOPICS[topic_id]
    problems = []
    for p in gold.must + gold.boilerplate:
        if not (CORPUS / p.file).exists():
            problems.append(f"{p.file}: no such file")
        elif _text(p.file).count(p.quote) != 1:
            problems.append(f"{p.file}: {p.quote!r} occurs {_text(p.file).count(p.quote)} times")
    for p in gold.must:
        folder, name = p.file.split("/", 1)
        if not 10 <= len(p.quote) <= 30:
            problems.append(f"{p.quote!r}: {len(p.quote)} characters, not 10–30")
        doc_type = _doc_types(folder + "/").get(name)
        if p.section != doc_type:
            problems.append(f"{p.quote!r}: section {p.section}, but the document is {doc_type}")
        if not p.note:
            problems.append(f"{p.quote!r}: no note")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("topic_id", sorted(GOLD_TOPICS))
def test_no_must_have_sits_on_a_boilerplate_line(topic_id):
    gold = GOLD_TOPICS[topic_id]
    for must in gold.must:
        text = _text(must.file)
        at = text.index(must.quote)
        line = text[text.rfind("\n", 0, at) + 1:text.find("\n", at) if "\n" in text[at:] else len(text)]
        for p in gold.boilerplate:
            if p.file == must.file:
                assert not any(part and part in line for part in p.quote.split("\n")), (must.quote, p.quote)


def test_load_gold_names_the_bad_entry(tmp_path):
    bad = tmp_path / "gold.yaml"
    bad.write_text("topics:\n  t:\n    must:\n      - {section: law, file: a.txt, quote: 第一条}\n", encoding="utf-8")
    with pytest.raises(ValueError, match="t must #1"):
        dossier.load_gold(bad)


# -- scoring a hand-made pack -------------------------------------------------------------------
REG = "样例/助餐办法.pdf"
SPEECH = "样例/市长讲话.md"
GOLD_TINY = dossier.GoldTopic("t", "样例/", must=(
    dossier.GoldPassage(REG, "每餐补助6元", section="policy", note="第二十二条"),
    dossier.GoldPassage(REG, "日供餐能力不少于1500份", section="policy", note="第八条"),
    dossier.GoldPassage(SPEECH, "补农村的短板", section="speech", note="第一"),
), boilerplate=(
    dossier.GoldPassage(SPEECH, "同志们：", kind="salutation"),
    dossier.GoldPassage(REG, "各县（区）人民政府，市政府各部门：", kind="addressee"),
    dossier.GoldPassage(REG, "青溪市人民政府\n2024年3月18日", kind="signature"),
))


def _item(n: int, file: str, quote: str, doc_type: str) -> PackItem:
    return PackItem(item_id=f"i{n}", doc_id=f"d{n}", start=0, end=len(quote), quote=quote, title="标题",
                    doc_type=doc_type, source=f"/data/corpus/{file}")


def _pack(**sections) -> BriefingPack:
    pack = BriefingPack(topic_id="t", topic={})
    for section in pack.sections:
        section.items = sections.get(section.key, [])
    return pack


def test_score_counts_a_must_have_only_in_its_section_and_its_file():
    pack = _pack(
        # a PDF line break and a full-width space inside the quote still match
        policy=[_item(1, REG, "第二十二条\u3000就餐补助实行分类分档：（一）特困人员每餐补\n助6元；", "policy"),
                # the right words, but quoted from another document: not the passage wanted
                _item(2, "样例/别的办法.txt", "第八条 中央厨房具备集中加工能力，日供餐能力不少于1500份", "policy")],
        case=[_item(3, SPEECH, "第一，补农村的短板。截至去年底，城市社区覆盖率78%，农村只有41%。", "speech")])
    score = dossier.score_pack(pack, GOLD_TINY)
    assert (score["must"], score["found"], score["recall"]) == (3, 1, 0.333)
    assert (score["found_any_section"], score["recall_any_section"]) == (2, 0.667)
    assert score["by_section"]["policy"] == {"must": 2, "found": 1, "items": 2}
    assert score["by_section"]["speech"] == {"must": 1, "found": 0, "items": 0}
    missed = {m["quote"]: m["found_in"] for m in score["missed"]}
    assert missed == {"日供餐能力不少于1500份": [], "补农村的短板": ["case"]}
    assert score["items"] == 3 and score["items_per_section"]["case"] == 1
    assert score["on_target_items"] == 2
    assert score["boilerplate_included"] == 0 and score["filler_items"] == 0


def test_score_counts_boilerplate_and_filler_items():
    pack = _pack(
        policy=[_item(1, REG, "各县（区）人民政府，市政府各部门：\n第一章 总则", "policy"),
                _item(2, REG, "第三十二条 本办法自2024年5月1日起施行。\n青溪市人民政府\n2024年3月18日", "policy")],
        speech=[_item(3, SPEECH, "同志们：\n\n今天我们开会。第一，补农村的短板，年底前农村覆盖率要达到55%以上。", "speech")])
    score = dossier.score_pack(pack, GOLD_TINY)
    assert score["boilerplate_included"] == 3
    assert score["boilerplate_by_kind"] == {"addressee": 1, "signature": 1, "salutation": 1}
    assert {b["kind"]: b["sections"] for b in score["included_boilerplate"]}["salutation"] == ["speech"]
    # the addressee item has only a heading left; the other two say something besides their boilerplate
    assert score["filler_items"] == 1
    assert score["found"] == 1  # the speech passage


def test_score_takes_a_plain_mapping_and_totals_are_micro_averaged():
    one = dossier.score_pack({"policy": [_item(1, REG, "每餐补助6元", "policy")]}, GOLD_TINY)
    empty = dossier.score_pack({}, dossier.GoldTopic("u", "样例/", must=GOLD_TINY.must[:1], boilerplate=()))
    assert one["found"] == 1 and empty["found"] == 0 and empty["items"] == 0
    total = dossier.totals({"t": one, "u": empty, "skipped": {"skipped": "not in the yardstick"}})
    assert (total["topics"], total["must"], total["found"], total["recall"]) == (2, 4, 1, 0.25)


def test_benchmark_drafts_a_copy_and_its_trace_follows_the_drafting(tmp_path, capsys):
    """End to end on the sample corpus with the fake embedder: the folder given is left as it was,
    every topic is scored, and the trace of where must-haves are lost follows the drafting (it runs
    the drafting's own `screen_section`; every stage it records must be one `STAGES` explains)."""
    import hashlib
    import json

    from kb.knowledge_base import KnowledgeBase

    home = tmp_path / "kb"
    kb = KnowledgeBase(home)
    kb.index([CORPUS])
    kb.topics.import_yaml(CORPUS / "topics.yaml")
    kb.close()
    before = hashlib.sha1((home / "kb.sqlite").read_bytes()).hexdigest()
    assert dossier.main(["--home", str(home), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert hashlib.sha1((home / "kb.sqlite").read_bytes()).hexdigest() == before
    assert set(result["topics"]) == set(GOLD_TOPICS)
    for topic_id, row in result["topics"].items():
        assert row["trace_matches_draft"], topic_id
        assert row["items"] == sum(row["items_per_section"].values())
        assert {m["stage"] for m in row["missed"]} <= set(dossier.STAGES)
        assert not row["included_boilerplate"], (topic_id, row["included_boilerplate"])
    assert result["totals"]["must"] == sum(len(t.must) for t in GOLD_TOPICS.values())
