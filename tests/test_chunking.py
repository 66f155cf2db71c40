from indexer.chunking import chunk_text, content_hash

from .conftest import CASE, REGULATION, SPEECH


def test_articles_are_chunks_labelled_with_their_chapter():
    chunks = chunk_text(REGULATION)
    labels = [c.label for c in chunks]
    assert "第一章 总则 第一条" in labels
    assert "第二章 补贴与监管 第三条" in labels
    third = next(c for c in chunks if c.label.endswith("第三条"))
    assert REGULATION[third.start:third.end] == "第三条 对八十周岁以上老年人每餐补贴三元，对低保老年人每餐补贴五元。"


def test_every_chunk_is_an_exact_span():
    for text in (REGULATION, SPEECH, CASE):
        for chunk in chunk_text(text):
            span = text[chunk.start:chunk.end]
            assert span == span.strip() and span


def test_long_article_is_split_at_sentence_ends_and_keeps_its_label():
    body = "第一条 " + "助餐服务应当方便老年人就近用餐。" * 80
    text = "标题\n" + body + "\n第二条 附则。"
    chunks = chunk_text(text, max_chars=300)
    first = [c for c in chunks if c.label.startswith("第一条")]
    assert len(first) >= 4
    assert first[1].label == "第一条（续）"
    assert all(c.end - c.start <= 300 for c in first)
    assert all(text[c.start:c.end].endswith("。") for c in first[:-1])


def test_sections_of_case_material():
    labels = [c.label for c in chunk_text(CASE)]
    assert labels == ["第1段", "一、背景", "二、做法", "三、成效"]


def test_speech_paragraphs_are_packed_with_paragraph_labels():
    chunks = chunk_text(SPEECH, max_chars=60)
    assert len(chunks) >= 2
    assert all("段" in c.label for c in chunks)


def test_pages_are_assigned_from_offsets():
    text = "第一条 甲。\n第二条 乙。"
    pages = [(1, 0, 6), (2, 7, len(text))]
    assert [c.page for c in chunk_text(text, pages)] == [1, 2]


def test_content_hash_depends_only_on_text():
    assert content_hash("第一条") == content_hash("第一条") != content_hash("第二条")


def test_section_heading_running_into_its_text_is_cut_at_the_first_sentence():
    text = "标题\n（七）建立补助机制。各地要综合考虑经济发展水平。\n（八）加强监管。严格食品安全。"
    assert [c.label for c in chunk_text(text)] == ["第1段", "（七）建立补助机制", "（八）加强监管"]
