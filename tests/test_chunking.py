from indexer.chunking import chunk_text, content_hash, sentence_spans

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


def test_sentences_of_a_chunk_skip_the_article_number_and_fragments():
    text = "第五条 个体工商户的债务，个人经营的，以个人财产承担；家庭经营的，以家庭财产承担。\n见附表。农村承包经营户的债务由农户承担。"
    spans = sentence_spans(text, 0, len(text))
    assert [text[s:e] for s, e in spans] == [
        "个体工商户的债务，个人经营的，以个人财产承担；", "家庭经营的，以家庭财产承担。", "农村承包经营户的债务由农户承担。"]
    one = "第一条 为了加强管理，制定本规定。"
    assert sentence_spans(one, 0, len(one)) == []  # one sentence: the chunk vector says it all


def test_sentence_offsets_are_absolute_within_the_document():
    text = "前言一段。\n第九条 老年助餐点每餐补贴三元。补贴按月结算，年底审计。"
    start = text.index("第九条")
    spans = sentence_spans(text, start, len(text))
    assert [text[s:e] for s, e in spans] == ["老年助餐点每餐补贴三元。", "补贴按月结算，年底审计。"]


def test_articles_numbered_above_one_thousand_are_their_own_chunks():
    text = "第九百九十九条 前一条。\n第一千条 本条。\n第一千零八十七条 离婚时，夫妻的共同财产由双方协议处理。"
    labels = [c.label for c in chunk_text(text)]
    assert labels == ["第九百九十九条", "第一千条", "第一千零八十七条"]


def test_a_heading_line_is_its_own_sentence_but_a_lead_in_stays_with_its_first_item():
    text = "二、普惠补助的边际效益\n每餐补助一元覆盖全部老人。\n理事会行使下列职权：\n（一）制定交易规则；\n（二）审议工作报告"
    pieces = [text[s:e] for s, e in sentence_spans(text, 0, len(text))]
    assert pieces == ["二、普惠补助的边际效益", "每餐补助一元覆盖全部老人。", "理事会行使下列职权：\n（一）制定交易规则；",
                      "（二）审议工作报告"]
