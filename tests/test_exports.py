"""Exports: Word, PDF, HTML and Markdown — content, stamps, earlier versions, expert notes and faults."""
import html
import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field

import pytest

from indexer.embedding import HashingEmbedder
from kb import exports
from kb.cli import main
from kb.errors import ExportError
from kb.knowledge_base import KnowledgeBase

from .conftest import REPO

CORPUS = REPO / "corpus"
HAS_SOFFICE = bool(shutil.which("soffice") or shutil.which("libreoffice"))


def open_kb(home, role="staff"):
    return KnowledgeBase(home, embedder=HashingEmbedder(64), model="hashing:64", user="王静", role=role)


@pytest.fixture
def kb(kb_home, mini_corpus):
    kb = open_kb(kb_home)
    kb.index([mini_corpus])
    kb.topics.add("社区老年助餐补贴", topic_id="zc", format="双月座谈", year=2025, lead="社会和法制委员会",
                  keywords=["助餐", "补贴", "老年人"], description="围绕补贴标准开展协商。")
    kb.packs.draft("zc")
    return kb


def docx_paragraphs(path):
    from docx import Document

    return [p.text for p in Document(str(path)).paragraphs]


def test_markdown_has_cover_contents_sections_quotes_and_sources(kb, tmp_path):
    result = kb.packs.export("zc", "md", tmp_path / "汇编.md")
    text = result.path.read_text(encoding="utf-8")
    assert result.format == "md" and result.version == 1 and result.items == kb.packs.get("zc").item_count
    for expected in ("# 社区老年助餐补贴", "## 调研资料汇编", "## 目录", "## 一、政策法规", "## 二、领导讲话",
                     "## 资料来源", "政协青溪市委员会办公室", "汇编第 1 版", "索引第 1 代", "模型 hashing:64",
                     "【材料不足】"):
        assert expected in text, expected
    for _, _, item in kb.packs.get("zc").items():
        for line in filter(str.strip, item.quote.split("\n")):
            assert exports._md(line.strip()) in text
        assert exports._md(item.citation.formatted()) in text


def test_html_is_self_contained_escaped_and_printable(kb, tmp_path):
    kb.topics.edit("zc", description="<script>alert(1)</script> & 补贴")
    kb.packs.note("zc", "1.1", "<b>重点</b>")
    text = kb.packs.export("zc", "html", tmp_path / "汇编.html").path.read_text(encoding="utf-8")
    assert "<script>" not in text and "&lt;script&gt;" in text and "&lt;b&gt;重点&lt;/b&gt;" in text
    assert "@media print" in text and "@page" in text and "<link" not in text and "src=" not in text
    assert 'name="kb-stamp"' in text and "汇编第 2 版" in text
    for _, _, item in kb.packs.get("zc").items():
        assert html.escape(item.quote) in text


def test_word_file_reads_back_with_quotes_citations_toc_and_stamp(kb, tmp_path):
    kb.packs.mark_key("zc", "1.1")
    path = kb.packs.export("zc", "docx", tmp_path / "汇编.docx").path
    paragraphs = docx_paragraphs(path)
    body = "\n".join(paragraphs)
    assert "调研资料汇编" in paragraphs and "社区老年助餐补贴" in paragraphs and "目　　录" in paragraphs
    assert "一、政策法规" in paragraphs and "资料来源" in paragraphs and "编辑说明" in paragraphs
    pack = kb.packs.get("zc")
    for s_no, pos, item in pack.items():
        for line in filter(str.strip, item.quote.split("\n")):
            assert line in paragraphs
        assert f"出处：{item.citation.formatted()}" in paragraphs
    assert f"1．★{pack.sections[0].items[0].heading}" in paragraphs
    from docx import Document

    document = Document(str(path))
    xml = document.element.xml
    assert 'TOC \\o "1-2"' in xml and "PAGE" in document.sections[0].footer._element.xml
    assert "汇编第 2 版" in document.core_properties.comments and "索引第 1 代" in document.core_properties.comments
    assert "第2版" in paragraphs and "索引第 1 代" not in body  # the stamp is for staff, in the file's properties
    assert document.settings.element.xml.count("updateFields") == 1


def test_expert_notes_appear_under_their_passage(kb, tmp_path):
    item = kb.packs.get("zc").sections[0].items[0]

    @dataclass
    class Reply:
        author: str
        role_label: str
        text: str

    @dataclass
    class Note:
        author: str
        role_label: str
        stance: str
        text: str
        created: str
        status: str = "anchored"
        replies: list = field(default_factory=list)

    def notes_for(doc_id, start, end):
        if doc_id == item.doc_id and start == item.start:
            return [Note("郑伟", "专家", "质疑", "补贴标准偏低，建议分档。", "2025-04-25T10:00:00",
                         replies=[Reply("王静", "工作人员", "已转民政局。")])]
        return []

    for fmt in ("md", "html", "docx"):
        path = kb.packs.export("zc", fmt, tmp_path / f"n.{fmt}", notes_for=notes_for).path
        text = "\n".join(docx_paragraphs(path)) if fmt == "docx" else path.read_text(encoding="utf-8")
        assert "【质疑】郑伟（专家），2025-04-25" in text and "补贴标准偏低，建议分档。" in text, fmt
        assert "已转民政局。" in text and text.count("补贴标准偏低") == 1


def test_notes_from_the_annotations_module_are_used_when_present(kb, tmp_path):
    if not hasattr(kb, "notes") or not hasattr(kb.notes, "for_span"):
        pytest.skip("kb.annotations not present")
    item = kb.packs.get("zc").sections[0].items[0]
    expert = KnowledgeBase(kb.home, embedder=kb.embedder, user="郑伟", role="expert")
    note = expert.notes.add(item.doc_id, item.quote[:12], stance="补充", text="建议同时测算财政承受能力。")
    text = kb.packs.export("zc", "md", tmp_path / "pending.md").path.read_text(encoding="utf-8")
    assert "建议同时测算财政承受能力。" not in text  # a note reaches the pack once staff accepted it
    kb.notes.review(note.note_id, "accepted")
    text = kb.packs.export("zc", "md", tmp_path / "n.md").path.read_text(encoding="utf-8")
    assert "【补充】郑伟" in text and "建议同时测算财政承受能力。" in text


def test_an_earlier_version_exports_as_it_was(kb, tmp_path):
    first = kb.packs.get("zc").sections[0].items[0]
    kb.packs.drop("zc", first.item_id)
    latest = kb.packs.export("zc", "md", tmp_path / "latest.md").path.read_text(encoding="utf-8")
    old = kb.packs.export("zc", "md", tmp_path / "v1.md", version=1).path.read_text(encoding="utf-8")
    marker = exports._md(first.citation.formatted())
    assert marker in old and marker not in latest
    assert "汇编第 1 版" in old and "汇编第 2 版" in latest


def test_export_into_a_folder_names_the_file(kb, tmp_path):
    result = kb.packs.export("zc", "md", tmp_path)
    assert result.path.parent == tmp_path and result.path.name == "社区老年助餐补贴_调研资料汇编_第1版.md"


def test_control_characters_and_very_long_items_do_not_break_word(kb, tmp_path):
    kb.packs.note("zc", "1.1", "按语\x07带\x0b控制\x1f字符")
    folder = tmp_path / "long"
    folder.mkdir()
    (folder / "长篇调研报告.txt").write_text("关于社区老年助餐的调研报告\n" + "助餐补贴标准需要提高。" * 500,
                                          encoding="utf-8")
    kb.index([folder])
    doc = next(d for d in kb.documents() if d.title == "关于社区老年助餐的调研报告")
    kb.packs.add_span("zc", doc.doc_id, 14, 14 + 4000, section="case")
    path = kb.packs.export("zc", "docx", tmp_path / "x.docx").path
    paragraphs = docx_paragraphs(path)
    assert "编者按：按语带控制字符" in paragraphs
    assert any(len(p) == 4000 for p in paragraphs)
    html_text = kb.packs.export("zc", "html", tmp_path / "x.html").path.read_text(encoding="utf-8")
    assert "\x07" not in html_text and "overflow-wrap: anywhere" in html_text


BIDI = "\u202e\u202a\u202b\u202c\u202d\u2066\u2067\u2068\u2069\u200e\u200f\u061c"


def test_bidi_controls_reach_no_export_and_no_file_name(kb, kb_home, tmp_path):
    """U+202E and its kin make text read other than it is (“gpj.exe” shown as “exe.jpg”); users'
    text loses them in every format and in the file name the export chooses."""
    import zipfile

    kb.topics.edit("zc", title="社区\u202e老年\u2066助餐补贴", description="说明\u202dcod.exe\u200f")
    kb.packs.note("zc", "1.1", "按语\u202e反向\u061c")
    item = kb.packs.get("zc").sections[0].items[0]

    @dataclass
    class Note:
        author: str = "郑\u202e伟"
        role_label: str = "专家"
        stance: str = "质\u200f疑"
        text: str = "意见\u2067倒排\u2069"
        created: str = "2025-04-25T10:00:00"
        replies: list = field(default_factory=list)

    def notes_for(doc_id, start, end):
        return [Note()] if (doc_id, start) == (item.doc_id, item.start) else []

    sly = KnowledgeBase(kb_home, embedder=HashingEmbedder(64), model="hashing:64", user="王\u202e静", role="staff")
    sly.packs.mark_key("zc", "1.1")  # the pack version and the export are signed with this name
    for fmt in ("md", "html", "docx"):
        folder = tmp_path / fmt
        folder.mkdir()
        result = sly.packs.export("zc", fmt, folder, notes_for=notes_for, office="政协\u202e办公室")
        assert not any(c in result.path.name for c in BIDI), result.path.name
        assert result.path.name.startswith("社区老年助餐补贴_调研资料汇编")
        if fmt == "docx":
            with zipfile.ZipFile(result.path) as z:
                text = "".join(z.read(n).decode("utf-8") for n in z.namelist() if n.endswith(".xml"))
        else:
            text = result.path.read_text(encoding="utf-8")
        assert not any(c in text for c in BIDI), fmt
        for visible in ("社区老年助餐补贴", "按语反向", "意见倒排", "郑伟", "政协办公室", "说明cod.exe"):
            assert visible in text, (fmt, visible)


def test_empty_pack_unknown_format_and_unknown_topic(kb, tmp_path):
    tmp_path = tmp_path / "out"
    tmp_path.mkdir()
    pack = kb.packs.get("zc")
    for _, _, item in list(pack.items()):
        kb.packs.drop("zc", item.item_id)
    with pytest.raises(ExportError, match="没有任何条目"):
        kb.packs.export("zc", "docx", tmp_path / "empty.docx")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ExportError, match="不支持的导出格式"):
        kb.packs.export("zc", "odt", tmp_path / "x.odt", version=1)
    from kb.errors import TopicNotFound

    with pytest.raises(TopicNotFound):
        kb.packs.export("没有这个议题", "md", tmp_path / "x.md")


def test_unwritable_target_gives_a_message_and_no_partial_file(kb, tmp_path):
    tmp_path = tmp_path / "out"
    tmp_path.mkdir()
    blocker = tmp_path / "a-file"
    blocker.write_text("x", encoding="utf-8")
    with pytest.raises(ExportError, match="无法写入"):
        kb.packs.export("zc", "docx", blocker / "汇编.docx")
    target = tmp_path / "汇编.docx"
    target.write_bytes(b"previous export")

    def broken(dossier, path, fonts=None, toc_pages=None):
        path.write_bytes(b"half a file")
        raise OSError(28, "No space left on device")

    real = exports.write_docx
    exports.write_docx = broken
    try:
        with pytest.raises(ExportError, match="No space left on device"):
            kb.packs.export("zc", "docx", target)
    finally:
        exports.write_docx = real
    assert target.read_bytes() == b"previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "汇编.docx"]


def test_pdf_without_libreoffice_says_what_to_install(kb, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("KB_SOFFICE", raising=False)
    monkeypatch.setattr(exports, "soffice_path", lambda: (_ for _ in ()).throw(
        ExportError("导出 PDF 需要 LibreOffice，本机未找到 soffice 命令", hint="运行 scripts/system_deps.sh")))
    with pytest.raises(ExportError, match="LibreOffice") as err:
        kb.packs.export("zc", "pdf", tmp_path / "x.pdf")
    assert "system_deps.sh" in err.value.user_message()
    assert not (tmp_path / "x.pdf").exists() and not list(tmp_path.glob(".*part"))


def test_soffice_lookup_names_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("KB_SOFFICE", raising=False)
    monkeypatch.setattr(exports.Path, "exists", lambda self: False)
    with pytest.raises(ExportError) as err:
        exports.soffice_path()
    assert "scripts/system_deps.sh" in err.value.user_message()


def test_cli_pack_commands(kb, kb_home, tmp_path, capsys):
    home = ["--home", str(kb_home), "--user", "王静", "--role", "staff"]
    assert main(["pack", "show", "zc", "--json", *home]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["version"] == 1 and [s["key"] for s in data["sections"]] == ["policy", "speech", "case", "expert",
                                                                              "minutes"]
    first = data["sections"][0]["items"][0]
    assert main(["pack", "note", "zc", "1.1", "先读这一条", *home]) == 0
    assert main(["pack", "key", "zc", first["item_id"], *home]) == 0
    assert main(["pack", "add", "zc", "--search", "多式联运", "--type", "case", "--note", "外地经验", *home]) == 0
    assert main(["pack", "move", "zc", "3.1", "--section", "policy", "--position", "2", *home]) == 0
    capsys.readouterr()
    assert main(["pack", "show", "zc", "--full", *home]) == 0
    out = capsys.readouterr().out
    assert "编者按：先读这一条" in out and "★" in out and "（手工）" in out and "出处：" in out
    assert main(["pack", "history", "zc", *home]) == 0
    assert "第 5 版" in capsys.readouterr().out
    assert main(["pack", "drop", "zc", "1.2", *home]) == 0
    assert main(["pack", "export", "zc", "--format", "md", "--out", str(tmp_path / "a.md"), "--version", "1",
                 "--json", *home]) == 0
    capsys.readouterr()
    assert main(["pack", "export", "zc", "--format", "docx", "--out", str(tmp_path / "b.docx"), *home]) == 0
    assert "已导出第 6 版" in capsys.readouterr().out and (tmp_path / "b.docx").exists()
    code = main(["pack", "drop", "zc", "9.9", *home])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("错误：汇编里没有条目") and len(err.strip().splitlines()) == 1
    code = main(["pack", "draft", "zc", "--home", str(kb_home), "--role", "member", "--user", "李"])
    assert code == 2 and "不能编辑调研资料汇编" in capsys.readouterr().err
    assert main(["pack", "draft", "zc", *home]) == 0
    assert "已起草" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.skipif(not HAS_SOFFICE, reason="LibreOffice not installed")
@pytest.mark.skipif(not (CORPUS / "topics.yaml").exists(), reason="sample corpus not present")
def test_pdf_and_word_of_a_sample_pack_keep_the_chinese_text(tmp_path):
    from pypdf import PdfReader

    kb = open_kb(tmp_path / "kb")
    kb.index([CORPUS])
    kb.topics.import_yaml(CORPUS / "topics.yaml")
    topic = kb.topics.list()[0]
    pack = kb.packs.draft(topic)
    result = kb.packs.export(topic, "pdf", tmp_path / "汇编.pdf")
    reader = PdfReader(str(result.path))
    assert result.pages == len(reader.pages) >= 5
    text = "".join((p.extract_text() or "") for p in reader.pages)
    text = text.replace("\n", "").replace(" ", "").replace("\u3000", "")
    assert topic.title.replace(" ", "") in text and "调研资料汇编" in text and "目录" in text
    item = pack.sections[0].items[0]
    assert item.quote.split("\n")[-1].replace(" ", "").replace("\u3000", "")[:20] in text
    fonts = set()
    for page in reader.pages:
        for font in (page["/Resources"].get("/Font") or {}).values():
            font = font.get_object()
            descriptor = font.get("/FontDescriptor")
            if descriptor is not None:
                descriptor = descriptor.get_object()
                assert any(k in descriptor for k in ("/FontFile", "/FontFile2", "/FontFile3")), font
                fonts.add(str(font["/BaseFont"]))
    assert any("CJK" in f for f in fonts)
    toc_page = reader.pages[1].extract_text()
    assert "政策法规" in toc_page and any(ch.isdigit() for ch in toc_page)

    word = kb.packs.export(topic, "docx", tmp_path / "汇编.docx").path
    assert item.quote.split("\n")[0] in docx_paragraphs(word)
    profile = (tmp_path / "lo").resolve().as_uri()
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    subprocess.run([soffice, "--headless", f"-env:UserInstallation={profile}", "--convert-to", "txt:Text",
                    "--outdir", str(tmp_path), str(word)], check=True, capture_output=True, timeout=180,
                   env={**os.environ, "HOME": str(tmp_path)})
    converted = (tmp_path / "汇编.txt").read_text(encoding="utf-8-sig")
    assert topic.title in converted and item.quote.split("\n")[0] in converted
