"""What members receive (issue 14): cover titles broken at phrase boundaries, no technical
stamp on any page (it is in the file's properties), sources named by title and 文号, and an
editor's note (编者按) on the same page as its passage."""
import random
import re
import shutil
from dataclasses import replace

import pytest
import yaml

from indexer.embedding import HashingEmbedder
from kb import exports
from kb.exports import _em, title_lines
from kb.knowledge_base import KnowledgeBase

from .conftest import REPO

HAS_SOFFICE = bool(shutil.which("soffice") or shutil.which("libreoffice"))
SAMPLE_TITLES = [t["title"] for t in yaml.safe_load((REPO / "corpus" / "topics.yaml").read_text(encoding="utf-8"))
                 ["topics"]] if (REPO / "corpus" / "topics.yaml").exists() else []
MADE_UP_TITLES = [
    "乡村振兴",
    "社区老年助餐补贴",
    "关于加快发展老年助餐服务的指导意见",
    "长三角与青溪市之间物流通道建设情况的专题调研报告",
    "发展社区老年食堂　破解居家老人助餐难题",
    "AI赋能政务服务提质增效的若干问题研究和建议汇编",
    "关于进一步加强和改进新时代城乡社区协商工作推动基层治理体系和治理能力现代化的若干意见",
    "青溪市人民政府办公室关于印发青溪市加快建设长三角物流枢纽城市推进物流降本增效若干政策措施的通知",
]
# Technical words no member should read on a page (they belong in the file's properties).
STAMP_WORDS = ("multilingual-e5", "hashing", "索引第", "模型", "staff", "导出于", ".md", ".txt")


def flat(text):
    return re.sub(r"\s+", "", text or "")


# -- cover titles -------------------------------------------------------------------------
def test_the_sample_titles_are_broken_after_the_quoted_phrase():
    assert title_lines("2025年“推进老年助餐服务提质扩面”双月座谈会") == ["2025年“推进老年助餐服务提质扩面”", "双月座谈会"]
    assert title_lines("“打响青溪茶区域公用品牌”市长与政协委员面对面协商") == [
        "“打响青溪茶区域公用品牌”", "市长与政协委员面对面协商"]
    assert title_lines("“建设长三角物流枢纽城市”常委会专题协商") == ["“建设长三角物流枢纽城市”", "常委会专题协商"]
    assert title_lines("“深化乡村议事会建设”界别协商") == ["“深化乡村议事会建设”界别协商"]


@pytest.mark.parametrize("title", SAMPLE_TITLES + MADE_UP_TITLES)
@pytest.mark.parametrize("max_em", [12, 18])
def test_title_lines_are_balanced_and_never_leave_a_character_or_two_alone(title, max_em):
    lines = title_lines(title, max_em)
    assert "".join(lines) == title.replace("\u3000", "") or "\u3000".join(lines) == title
    assert all(_em(line) <= max_em for line in lines), lines
    if len(lines) > 1:
        assert all(len(line) > 2 for line in lines), lines
        widths = [_em(line) for line in lines]
        assert min(widths) >= max(widths) / 4, lines
        assert len(lines) <= -(-_em(title) // max_em) + 1, lines  # no more lines than needed, but one
    for line in lines:
        assert line[0] not in "”」》），、：" and line[-1] not in "“「《（", lines
    for line, following in zip(lines, lines[1:]):
        assert not (line[-1].isdigit() and (following[0].isdigit() or following[0] in "年月日")), lines  # 2025年


def test_title_breaks_prefer_phrase_boundaries():
    assert title_lines("关于加快发展老年助餐服务的指导意见", 13) == ["关于加快发展老年助餐服务", "的指导意见"]
    assert title_lines("长三角与青溪市之间物流通道建设情况的专题调研报告", 16)[0] == "长三角与青溪市之间"
    assert title_lines("发展社区老年食堂　破解居家老人助餐难题", 12) == ["发展社区老年食堂", "破解居家老人助餐难题"]


# -- Word: cover, 编辑说明, properties, sources, 编者按 -------------------------------------
@pytest.fixture
def kb(kb_home, mini_corpus):
    kb = KnowledgeBase(kb_home, embedder=HashingEmbedder(64), model="hashing:64", user="王静", role="staff")
    kb.index([mini_corpus])
    kb.topics.add("2025年“推进老年助餐服务提质扩面”双月座谈会", topic_id="zc", format="双月座谈", year=2025,
                  lead="社会和法制委员会", keywords=["助餐", "补贴", "老年人"], description="围绕补贴标准开展协商。")
    kb.packs.draft("zc")
    kb.packs.note("zc", "1.1", "补贴标准是本次协商的重点，请结合各县实际阅读。")
    return kb


def test_word_shows_the_version_and_keeps_the_stamp_in_its_properties(kb, tmp_path):
    from docx import Document

    document = Document(str(kb.packs.export("zc", "docx", tmp_path / "汇编.docx").path))
    texts = [p.text for p in document.paragraphs]
    body = "\n".join(texts)
    for word in STAMP_WORDS:
        assert word not in body, word
    cover = texts[:texts.index("目　　录")]
    assert "2025年“推进老年助餐服务提质扩面”\n双月座谈会" in cover and "第2版" in cover
    assert any(t.startswith("版本：第2版，") for t in texts)
    props = document.core_properties
    assert "汇编第 2 版" in props.comments and "索引第 1 代" in props.comments and "模型 hashing:64" in props.comments
    assert "索引第1代" in props.keywords and "模型 hashing:64" in props.keywords and "助餐" in props.keywords


def test_html_and_markdown_keep_the_stamp_out_of_sight(kb, tmp_path):
    page = kb.packs.export("zc", "html", tmp_path / "汇编.html").path.read_text(encoding="utf-8")
    assert "2025年“推进老年助餐服务提质扩面”<br>双月座谈会" in page and "<div>第2版</div>" in page
    assert "索引第 1 代" in re.search(r'<meta name="kb-stamp" content="([^"]*)"', page)[1]
    visible = re.sub(r"<[^>]+>", "", re.sub(r"<(head|style)>.*?</\1>", "", page, flags=re.S))
    markdown = kb.packs.export("zc", "md", tmp_path / "汇编.md").path.read_text(encoding="utf-8")
    assert "第2版" in markdown and "索引第 1 代" in re.search(r"<!--(.*?)-->", markdown)[1]
    for text in (visible, re.sub(r"<!--.*?-->", "", markdown)):
        for word in STAMP_WORDS:
            assert word not in text, word


def test_sources_and_citations_name_title_and_doc_number_not_files(kb, tmp_path):
    documents = {d.doc_id: d for d in kb.documents()}
    for doc_id in set(documents) - kb.packs.get("zc").doc_ids():
        kb.packs.add_span("zc", doc_id, 0, 30, section="case")
    pack = kb.packs.get("zc")
    assert pack.doc_ids() == set(documents) and any(d.doc_number for d in documents.values())
    for fmt in ("docx", "md", "html"):
        path = kb.packs.export("zc", fmt, tmp_path / f"汇编.{fmt}").path
        if fmt == "docx":
            texts = [p.text for p in __import__("docx").Document(str(path)).paragraphs]
            sources = texts[len(texts) - texts[::-1].index("资料来源"):]
            assert len(sources) == len(pack.doc_ids())
            for doc_id, line in zip(dict.fromkeys(i.doc_id for _, _, i in pack.items()), sources):
                doc = documents[doc_id]
                assert line.startswith(f"{sources.index(line) + 1}. 《{doc.title}》"), line
                assert not doc.doc_number or doc.doc_number in line, line
                assert not doc.issuer or doc.issuer in line, line
            text = "\n".join(texts)
        else:
            text = path.read_text(encoding="utf-8")
        for document in documents.values():
            assert document.source.rsplit("/", 1)[-1] not in text, (fmt, document.source)
        assert ".txt" not in text and ".md" not in text, fmt


def _effective(paragraph, name):
    value = getattr(paragraph.paragraph_format, name)
    style = paragraph.style
    while value is None and style is not None:
        value, style = getattr(style.paragraph_format, name), style.base_style
    return bool(value)


def test_word_chains_the_editors_note_to_its_passage(kb, tmp_path):
    from docx import Document

    paragraphs = Document(str(kb.packs.export("zc", "docx", tmp_path / "汇编.docx").path)).paragraphs
    heading = next(n for n, p in enumerate(paragraphs) if p.style.name == "Heading 2")
    note = next(n for n, p in enumerate(paragraphs) if p.text.startswith("编者按："))
    assert heading < note and paragraphs[note - 1].text.startswith("出处：")
    for p in paragraphs[heading:note]:  # heading, quotation, citation: each keeps with the next
        assert _effective(p, "keep_with_next"), p.text
    assert _effective(paragraphs[note], "keep_together")


# -- PDF ----------------------------------------------------------------------------------
needs_soffice = pytest.mark.skipif(not HAS_SOFFICE, reason="LibreOffice not installed")


@pytest.mark.slow
@needs_soffice
def test_pdf_pages_show_no_stamp_and_its_properties_do(kb, tmp_path):
    from pypdf import PdfReader

    result = kb.packs.export("zc", "pdf", tmp_path / "汇编.pdf")
    reader = PdfReader(str(result.path))
    text = "".join(page.extract_text() or "" for page in reader.pages)
    for word in STAMP_WORDS + ("（staff）",):
        assert word not in text, word
    assert "第2版" in flat(reader.pages[0].extract_text()) and "双月座谈会" in flat(reader.pages[0].extract_text())
    meta = reader.metadata
    assert "索引第 1 代" in meta.subject and "模型 hashing:64" in meta.subject and "汇编第 2 版" in meta.subject
    assert "模型 hashing:64" in meta["/Keywords"] and meta.creator == "协商研究助手"
    assert meta.title.startswith("2025年“推进老年助餐服务提质扩面”双月座谈会")


@pytest.mark.slow
@needs_soffice
def test_pdf_keeps_each_editors_note_on_the_page_of_its_passage(kb, tmp_path):
    """Forty items of uneven length, each with a note: without keeping them together some
    notes fall to the top of the next page, away from their passage."""
    from pypdf import PdfReader

    dossier = exports.build_dossier(kb.packs.get("zc"), office="政协青溪市委员会办公室", notes_for=None,
                                    index_now={}, user="王静（staff）")
    dossier.stamp["model"] = "multilingual-e5-small@onnx-int8"
    base = dossier.sections[0].items[0]
    rnd = random.Random(14)
    items = []
    for n in range(1, 41):
        items.append(replace(base, ref=f"1.{n}", number=n, heading=f"《测试材料》第{n}条",
                             quote="老年助餐补贴标准需要随物价适时调整。" * rnd.randint(2, 14),
                             citation=f"《测试材料》（青政发〔2024〕{n}号），第{n}条",
                             editor_note=f"请结合第{n:02d}条阅读，" + "关注补贴标准的测算依据和财政承受能力。" * rnd.randint(1, 4)
                             + f"（按{n:02d}完）", notes=[], item_id=f"t{n:02d}"))
    dossier.sections = [replace(dossier.sections[0], items=items, thin_note="")]
    path = tmp_path / "notes.pdf"
    exports.write_pdf(dossier, path)
    reader = PdfReader(str(path))
    pages = [flat(page.extract_text()) for page in reader.pages]
    for n in range(1, 41):
        cited = [p for p, text in enumerate(pages) if f"〔2024〕{n}号），第{n}条" in text]
        starts = [p for p, text in enumerate(pages) if f"编者按：请结合第{n:02d}条阅读" in text]
        ends = [p for p, text in enumerate(pages) if f"（按{n:02d}完）" in text]
        assert cited and cited == starts == ends, (n, cited, starts, ends)
    text = "".join(pages)
    for word in STAMP_WORDS + ("（staff）",):
        assert word not in text, word
    assert "multilingual-e5-small@onnx-int8" in reader.metadata.subject
