from pathlib import Path

import pytest

from indexer.errors import EmptyDocument, LoadError, UnsupportedFormat
from indexer.loaders import load_file, normalise

from .conftest import REGULATION

NOTO = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")


def write_docx(path: Path, paragraphs, title=None):
    import docx

    document = docx.Document()
    if title:
        document.core_properties.title = title
    for text in paragraphs:
        document.add_paragraph(text)
    document.save(str(path))


def write_pdf(path: Path, pages):
    fpdf = pytest.importorskip("fpdf")
    if not NOTO.exists():
        pytest.fail("fonts-noto-cjk is missing: run make setup (scripts/system_deps.sh installs it)")
    pdf = fpdf.FPDF()
    pdf.add_font("noto", fname=str(NOTO))
    pdf.set_font("noto", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    pdf.output(str(path))


def test_utf8_and_gb18030_text_read_the_same(tmp_path):
    utf8 = tmp_path / "a.txt"
    gbk = tmp_path / "b.txt"
    utf8.write_text(REGULATION, encoding="utf-8")
    gbk.write_bytes(REGULATION.encode("gb18030"))
    a, b = load_file(utf8), load_file(gbk)
    assert a.text == b.text
    assert b.encoding == "gb18030" and a.encoding == "utf-8"
    assert "第三条 对八十周岁以上老年人每餐补贴三元" in b.text


def test_utf8_bom_and_crlf_are_normalised(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes("\ufeff标题\r\n\r\n\r\n\u3000\u3000正文第一段。\r\n".encode("utf-8"))
    assert load_file(path).text == "标题\n\n正文第一段。"


def test_markdown_heading_marks_are_dropped(tmp_path):
    path = tmp_path / "x.md"
    path.write_text("# 标题\n\n## 第一章 总则\n\n**第一条** 内容。", encoding="utf-8")
    assert load_file(path).text == "标题\n\n第一章 总则\n\n第一条 内容。"


def test_docx_paragraphs_and_title(tmp_path):
    path = tmp_path / "d.docx"
    write_docx(path, ["青溪市茶产业促进条例", "第一条 为了促进茶产业发展，制定本条例。"], title="茶产业促进条例")
    loaded = load_file(path)
    assert "第一条 为了促进茶产业发展" in loaded.text
    assert loaded.properties["title"] == "茶产业促进条例"


def test_pdf_keeps_page_numbers(tmp_path):
    path = tmp_path / "p.pdf"
    write_pdf(path, ["第一条 第一页的内容。", "第二条 第二页的内容。"])
    loaded = load_file(path)
    assert [p[0] for p in loaded.pages] == [1, 2]
    number, start, end = loaded.pages[1]
    assert "第二页" in loaded.text[start:end]
    assert "\x00" not in loaded.text


def test_html_keeps_article_body_only(tmp_path):
    path = tmp_path / "h.html"
    path.write_text("<html><head><title>物流通知</title><script>var x=1;</script></head><body>"
                    "<nav>首页 | 政务公开</nav><div class='article'><h1>关于物流枢纽的通知</h1>"
                    "<div class='info'>浏览次数：<span>1,286</span> 字号：[<a href='#'>大</a> <a href='#'>小</a>]</div>"
                    "<p>各县区：</p><p>加快<a href='#'>建设</a>多式联运中心。</p>"
                    "<div class='tools'><a>【打印本页】</a><a>【关闭窗口】</a></div></div>"
                    "<footer>版权所有</footer></body></html>",
                    encoding="utf-8")
    loaded = load_file(path)
    assert "加快建设多式联运中心。" in loaded.text
    assert "首页" not in loaded.text and "版权所有" not in loaded.text and "var x" not in loaded.text
    assert "1,286" not in loaded.text and "字号" not in loaded.text and "打印本页" not in loaded.text
    assert loaded.properties["title"] == "关于物流枢纽的通知"  # the article heading beats <title>


def test_html_without_heading_uses_page_title_without_site_suffix(tmp_path):
    path = tmp_path / "t.html"
    path.write_text("<html><head><title>关于冷链物流的通知_政策文件_青溪市人民政府</title></head>"
                    "<body><p>加快冷链物流发展。</p></body></html>", encoding="utf-8")
    assert load_file(path).properties["title"] == "关于冷链物流的通知"


@pytest.mark.parametrize("name,content,error,reason", [
    ("empty.txt", b"", EmptyDocument, "文件为空"),
    ("blank.md", b"   \n\n  ", EmptyDocument, "文件为空"),
    ("junk.txt", bytes(range(256)) * 20, LoadError, "二进制"),
    ("table.xls", b"whatever", UnsupportedFormat, "不支持的文件格式 .xls"),
    ("broken.docx", b"PK\x03\x04 not really a zip", LoadError, "Word 文件损坏"),
])
def test_bad_files_raise_clear_errors(tmp_path, name, content, error, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(error) as info:
        load_file(path)
    message = str(info.value)
    assert name in message and reason in message


def test_truncated_pdf_is_reported(tmp_path):
    good = tmp_path / "good.pdf"
    write_pdf(good, ["第一条 内容。" * 50, "第二条 内容。" * 50])
    broken = tmp_path / "truncated.pdf"
    broken.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    with pytest.raises(LoadError) as info:
        load_file(broken)
    assert "truncated.pdf" in str(info.value)


def test_undecodable_text_names_the_problem(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes("caf\xe9 ".encode("latin-1") * 50 + b"\x81\x20\x81")
    with pytest.raises(LoadError) as info:
        load_file(path)
    assert "latin.txt" in str(info.value)


def test_normalise_is_idempotent():
    text = "  第一行  \n\n\n\n第二行\u200b\r\n"
    assert normalise(normalise(text)) == normalise(text) == "第一行\n\n第二行"
