"""`kb topic …` (consultation topics) and `kb pack …` (briefing packs: draft, show, edit, export)."""
from __future__ import annotations

import argparse

from .briefing import SECTIONS, BriefingPack, InvalidPackEdit
from .cli import EXIT_OK, open_kb, print_json
from .cli_args import DOC_TYPE_HELP, MAX_TOP, doc_type_value, int_between, year_value
from .exports import FORMATS
from .roles import ROLES
from .search import SearchFilters
from .topics import FORMATS as TOPIC_FORMATS
from .topics import STEPS, Topic

SNIPPET = 70


# -- topics ----------------------------------------------------------------------------
def _print_topic(topic: Topic) -> None:
    print(f"{topic.title}")
    print(f"编号：{topic.topic_id}")
    print(f"版本：{topic.version}（{topic.updated_at.replace('T', ' ')}，{topic.updated_by}）")
    rows = [("协商形式", topic.format), ("年度", topic.year), ("牵头单位", topic.lead),
            ("参与界别", "、".join(topic.sectors)), ("关键词", "、".join(topic.keywords)),
            ("议题说明", topic.description)]
    for label, value in rows:
        if value:
            print(f"{label}：{value}")
    print("八步工作法：")
    for number, name in enumerate(STEPS, start=1):
        mark = "▶" if number == topic.step else ("✓" if number < topic.step else " ")
        date = topic.step_dates.get(number, "")
        print(f"  {mark} {number}. {name}{('  ' + date) if date else ''}")
    if topic.links:
        print("关联记录：")
        for link in topic.links:
            what = f"《{link.title}》" if link.title else ""
            doc = f" [doc_id {link.doc_id}]" if link.doc_id else ""
            extra = "，".join(x for x in (link.date, link.author, link.text) if x)
            print(f"  #{link.link_id} {link.kind_label}：{what}{doc}{('  ' + extra) if extra else ''}")


def cmd_topic_add(args) -> int:
    topic = open_kb(args).topics.add(args.title, format=args.format, year=args.year, lead=args.lead,
                                     sectors=args.sectors or (), keywords=args.keywords or (),
                                     description=args.description or "", step=args.step or 1,
                                     topic_id=args.id)
    if args.json:
        print_json(topic.as_dict())
    else:
        print(f"已添加议题 {topic.topic_id}：{topic.title}")
    return EXIT_OK


def cmd_topic_list(args) -> int:
    kb = open_kb(args)
    topics = kb.topics.list(year=args.year)
    if args.json:
        print_json([t.as_dict() for t in topics])
        return EXIT_OK
    if not topics:
        print("还没有议题。用 kb topic add 添加，或 kb topic import corpus/topics.yaml 导入样例议题。")
        return EXIT_OK
    for topic in topics:
        packed = "已有汇编" if kb.packs.exists(topic) else "未起草汇编"
        print(f"{topic.topic_id}  {topic.title}  · {topic.format} · {topic.year or ''} · "
              f"第{topic.step}步 {topic.step_name} · {packed}")
    return EXIT_OK


def cmd_topic_show(args) -> int:
    topic = open_kb(args).topics.get(args.topic)
    if args.json:
        print_json(topic.as_dict())
    else:
        _print_topic(topic)
    return EXIT_OK


def cmd_topic_edit(args) -> int:
    # One edit, one transaction: only the options given are changed, so parallel edits of other fields stay.
    topic = open_kb(args).topics.edit(args.topic, expected_version=args.version, step_date=args.step_date,
                                      title=args.title, format=args.format, year=args.year, lead=args.lead,
                                      sectors=args.sectors, keywords=args.keywords,
                                      description=args.description, step=args.step)
    if args.json:
        print_json(topic.as_dict())
    else:
        print(f"已更新议题 {topic.topic_id}：{topic.title}（第{topic.step}步 {topic.step_name}，第 {topic.version} 版）")
    return EXIT_OK


def cmd_topic_link(args) -> int:
    link = open_kb(args).topics.link(args.topic, args.kind, doc_id=args.doc, title=args.title, text=args.text or "",
                                     date=args.date, author=args.author)
    if args.json:
        print_json(link.__dict__)
    else:
        print(f"已关联 #{link.link_id} {link.kind_label}：{link.title or link.text}")
    return EXIT_OK


def cmd_topic_unlink(args) -> int:
    open_kb(args).topics.unlink(args.topic, args.link_id)
    if not args.json:
        print(f"已删除关联记录 #{args.link_id}")
    else:
        print_json({"removed": args.link_id})
    return EXIT_OK


def cmd_topic_import(args) -> int:
    report = open_kb(args).topics.import_yaml(args.file)
    if args.json:
        print_json(report.as_dict())
        return EXIT_OK
    print(f"新增 {len(report.added)} 个议题，更新 {len(report.updated)} 个，未变 {len(report.unchanged)} 个")
    for name in report.unresolved:
        print(f"注意：知识库中没有找到往期纪要“{name}”，索引后再导入一次即可关联")
    return EXIT_OK


# -- packs -------------------------------------------------------------------------------
def _one_line(text: str, limit: int = SNIPPET) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit] + "…"


def print_pack(pack: BriefingPack, full: bool = False) -> None:
    state = pack.index_state
    print(f"调研资料汇编：{pack.title}")
    print(f"第 {pack.version} 版（{pack.created_at.replace('T', ' ')}，{pack.created_by}）：{pack.change}")
    print(f"依据索引第 {state.get('generation')} 代（{state.get('updated')}，模型 {state.get('model')}）；"
          f"共 {pack.item_count} 条")
    for s_no, section in enumerate(pack.sections, start=1):
        print(f"\n{'一二三四五'[s_no - 1]}、{section.label}（{len(section.items)} 条）")
        if section.note:
            print(f"  【材料不足】{section.note}")
        for pos, item in enumerate(section.items, start=1):
            star = "★" if item.key else " "
            hand = "（手工）" if item.origin == "manual" else ""
            print(f"  {s_no}.{pos} [{item.item_id}] {star}{item.heading}{hand}")
            if item.status_note:
                print(f"       【{item.status_note}】")
            print(f"       “{item.quote if full else _one_line(item.quote)}”")
            if full:
                print(f"       出处：{item.citation.formatted()}  [doc_id {item.doc_id}，字符 {item.start}–{item.end}]")
            if item.note:
                print(f"       编者按：{item.note}")


def _show_result(args, pack: BriefingPack, message: str) -> int:
    if args.json:
        print_json(pack.as_dict())
    else:
        print(message)
        print(f"（第 {pack.version} 版：{pack.change}）")
    return EXIT_OK


def cmd_pack_draft(args) -> int:
    kb = open_kb(args)
    pack = kb.packs.draft(args.topic, per_section=args.per_section, keep_manual=not args.fresh,
                          expected_version=args.version)
    if args.json:
        print_json(pack.as_dict())
        return EXIT_OK
    print(f"已起草《{pack.title}》调研资料汇编第 {pack.version} 版，共 {pack.item_count} 条：")
    for section in pack.sections:
        flag = f"  【材料不足】{section.note}" if section.note else ""
        print(f"  {section.label}：{len(section.items)} 条{flag}")
    print(f"查看：kb pack show {pack.topic_id}    导出：kb pack export {pack.topic_id} --format docx --out 汇编.docx")
    return EXIT_OK


def print_outside_notes(notes: list, titles: dict[str, str]) -> None:
    """Notes on the topic's documents whose passage is in no item: staff may pull the passage in."""
    if not notes:
        return
    print(f"\n未收入汇编的段落上的论证意见（{len(notes)} 条；用 kb pack add 议题 --from-note 编号 加入汇编）")
    for note in notes:
        print(f"  [{note.note_id}] {note.review_label} · {note.stance} · {note.author}（{note.role_label}）"
              f" · 《{titles.get(note.doc_id, note.doc_id)}》")
        print(f"       “{_one_line(note.quote)}”")
        print(f"       意见：{_one_line(note.text)}")


def cmd_pack_show(args) -> int:
    kb = open_kb(args)
    pack = kb.packs.get(args.topic, args.version)
    outside = kb.packs.outside_notes(pack)
    if args.json:
        print_json(dict(pack.as_dict(), outside_notes=[n.as_dict() for n in outside]))
    else:
        print_pack(pack, full=args.full)
        print_outside_notes(outside, kb.store.titles())
    return EXIT_OK


def cmd_pack_history(args) -> int:
    versions = open_kb(args).packs.history(args.topic)
    if args.json:
        print_json([v.as_dict() for v in versions])
        return EXIT_OK
    for v in versions:
        print(f"第 {v.version} 版  {v.created_at.replace('T', ' ')}  {v.user}（{ROLES.get(v.role, v.role)}）  {v.change}")
    return EXIT_OK


def cmd_pack_export(args) -> int:
    kb = open_kb(args)
    result = kb.packs.export(args.topic, args.format, args.out, version=args.version, office=args.office)
    if args.json:
        print_json(result.as_dict())
    else:
        pages = f"，{result.pages} 页" if result.pages else ""
        print(f"已导出第 {result.version} 版（{result.items} 条{pages}）：{result.path}（用时 {result.seconds:.1f} 秒）")
    return EXIT_OK


def cmd_pack_add(args) -> int:
    kb = open_kb(args)
    if args.from_note:
        pack = kb.packs.add_note_passage(args.topic, args.from_note, args.section, position=args.position,
                                         expected_version=args.version)
    elif args.doc:
        if args.start is None or args.end is None:
            raise InvalidPackEdit("按文档添加需要给出字符范围", hint="加 --start 和 --end（检索结果里的“字符 a–b”）")
        pack = kb.packs.add_span(args.topic, args.doc, args.start, args.end, args.section, note=args.note or "",
                                 key=args.key, position=args.position, expected_version=args.version)
    elif args.search:
        hits = kb.search(args.search, top_k=max(args.pick, 10),
                         filters=SearchFilters(doc_types=args.type or []))
        if len(hits) < args.pick:
            raise InvalidPackEdit(f"检索“{args.search}”只有 {len(hits)} 条结果，没有第 {args.pick} 条",
                                  hint="先用 kb search 查看结果，再用 --pick 选择序号")
        pack = kb.packs.add_hit(args.topic, hits[args.pick - 1], args.section, note=args.note or "", key=args.key,
                                position=args.position, expected_version=args.version)
    else:
        raise InvalidPackEdit("没有说明添加哪段材料",
                              hint="用 --search 检索词 --pick 序号，--doc 文档编号 --start --end，或 --from-note 论证意见编号")
    return _show_result(args, pack, "已添加。")


def cmd_pack_drop(args) -> int:
    pack = open_kb(args).packs.drop(args.topic, args.item, expected_version=args.version)
    return _show_result(args, pack, "已删除。")


def cmd_pack_move(args) -> int:
    pack = open_kb(args).packs.move(args.topic, args.item, section=args.section, position=args.position,
                                    expected_version=args.version)
    return _show_result(args, pack, "已移动。")


def cmd_pack_note(args) -> int:
    pack = open_kb(args).packs.note(args.topic, args.item, args.text, expected_version=args.version)
    return _show_result(args, pack, "已保存编者按。" if args.text.strip() else "已删除编者按。")


def cmd_pack_key(args) -> int:
    pack = open_kb(args).packs.mark_key(args.topic, args.item, key=not args.off, expected_version=args.version)
    return _show_result(args, pack, "已取消重点阅读标记。" if args.off else "已标为重点阅读。")


# -- parsers ------------------------------------------------------------------------------
def _list_arg(value: str) -> list[str]:
    return [v.strip() for v in value.replace("，", ",").replace("、", ",").split(",") if v.strip()]


def register(subparsers, common: argparse.ArgumentParser) -> None:
    """Add `kb topic …` and `kb pack …`."""
    topic = subparsers.add_parser("topic", help="协商议题：添加、查看、修改、导入").add_subparsers(
        dest="topic_command", required=True)

    def topic_fields(p) -> None:
        p.add_argument("--format", help="协商形式：" + "、".join(TOPIC_FORMATS))
        p.add_argument("--year", help="年度，如 2025")
        p.add_argument("--lead", help="牵头的专委会或界别")
        p.add_argument("--sectors", type=_list_arg, help="参与界别，逗号或顿号分隔")
        p.add_argument("--keywords", type=_list_arg, help="关键词，逗号或顿号分隔")
        p.add_argument("--description", help="议题说明")
        p.add_argument("--step", help="八步工作法的当前步骤（1–8 或步骤名称）")

    p = topic.add_parser("add", parents=[common], help="添加议题")
    p.add_argument("title")
    p.add_argument("--id", help="议题编号（默认由标题生成）")
    topic_fields(p)
    p.set_defaults(func=cmd_topic_add, creates_kb=True)

    p = topic.add_parser("list", parents=[common], help="列出议题")
    p.add_argument("--year", type=year_value)
    p.set_defaults(func=cmd_topic_list)

    p = topic.add_parser("show", parents=[common], help="查看议题（编号或完整标题）")
    p.add_argument("topic")
    p.set_defaults(func=cmd_topic_show)

    p = topic.add_parser("edit", parents=[common], help="修改议题；--step 推进到某一步并记录日期")
    p.add_argument("topic")
    p.add_argument("--title")
    topic_fields(p)
    p.add_argument("--step-date", help="该步骤的日期（默认今天）")
    p.add_argument("--version", type=int_between(1), help="所改的版本（kb topic show 显示）；议题已被别人改过时不修改并报错")
    p.set_defaults(func=cmd_topic_edit)

    p = topic.add_parser("link", parents=[common], help="关联往期协商纪要、领导批示或回头看记录")
    p.add_argument("topic")
    p.add_argument("--kind", required=True, help="consultation（往期协商及纪要）/ instruction（领导批示）/ "
                                                  "followup（回头看）")
    p.add_argument("--doc", help="知识库中的文档编号（doc_id）")
    p.add_argument("--title")
    p.add_argument("--text", help="批示或回头看的内容")
    p.add_argument("--date")
    p.add_argument("--author", help="批示领导或记录人")
    p.set_defaults(func=cmd_topic_link)

    p = topic.add_parser("unlink", parents=[common], help="删除一条关联记录")
    p.add_argument("topic")
    p.add_argument("link_id", type=int_between(1))
    p.set_defaults(func=cmd_topic_unlink)

    p = topic.add_parser("import", parents=[common], help="从 YAML 导入议题（可重复运行）")
    p.add_argument("file")
    p.set_defaults(func=cmd_topic_import, creates_kb=True)

    pack = subparsers.add_parser("pack", help="调研资料汇编：起草、查看、编辑、导出").add_subparsers(
        dest="pack_command", required=True)
    section_help = "部分：" + "、".join(f"{k}（{label}）" for k, label in SECTIONS)

    def edited_version(p) -> None:
        p.add_argument("--version", type=int_between(0), metavar="N",
                       help="所依据的汇编版本（还没有汇编时为 0）：有人已保存更新的版本时拒绝修改，不覆盖他人的改动")

    p = pack.add_parser("draft", parents=[common], help="按议题自动起草（已有汇编时重新起草，保留手工修改）")
    p.add_argument("topic")
    p.add_argument("--per-section", type=int_between(1, 50), default=6, help="每部分最多条数（1–50，默认 6）")
    p.add_argument("--fresh", action="store_true", help="重新起草时不保留手工加入、标重点、写了编者按的条目")
    edited_version(p)
    p.set_defaults(func=cmd_pack_draft)

    p = pack.add_parser("show", parents=[common], help="查看汇编（默认最新版）")
    p.add_argument("topic")
    p.add_argument("--version", type=int_between(1))
    p.add_argument("--full", action="store_true", help="显示完整摘录和出处")
    p.set_defaults(func=cmd_pack_show)

    p = pack.add_parser("history", parents=[common], help="汇编的各个版本：谁、何时、改了什么")
    p.add_argument("topic")
    p.set_defaults(func=cmd_pack_history)

    p = pack.add_parser("export", parents=[common], help="导出为 docx / pdf / html / md")
    p.add_argument("topic")
    p.add_argument("--format", choices=FORMATS, required=True)
    p.add_argument("--out", required=True, help="输出文件（或文件夹）")
    p.add_argument("--version", type=int_between(1), help="导出某个历史版本")
    p.add_argument("--office", help="编印单位（默认取 settings.toml 的 office）")
    p.set_defaults(func=cmd_pack_export)

    p = pack.add_parser("add", parents=[common], help="添加材料：检索结果中的一条，或文档中的一段")
    p.add_argument("topic")
    p.add_argument("--search", help="检索词")
    p.add_argument("--pick", type=int_between(1, MAX_TOP), default=1, help="取第几条检索结果（默认 1）")
    p.add_argument("--type", action="append", type=doc_type_value, metavar="TYPE",
                   help="检索的" + DOC_TYPE_HELP + "；可重复")
    p.add_argument("--doc", help="文档编号（doc_id）")
    p.add_argument("--start", type=int_between(0))
    p.add_argument("--end", type=int_between(1))
    p.add_argument("--from-note", metavar="NOTE_ID", help="论证意见所指的段落（kb pack show 列出的未收入汇编的意见）")
    p.add_argument("--section", help=section_help)
    p.add_argument("--position", type=int_between(1), help="放在该部分第几条（从 1 起，默认最后）")
    p.add_argument("--note", help="编者按")
    p.add_argument("--key", action="store_true", help="标为重点阅读")
    edited_version(p)
    p.set_defaults(func=cmd_pack_add)

    p = pack.add_parser("drop", parents=[common], help="删除条目（写“部分.序号”如 2.3，或条目编号）")
    p.add_argument("topic")
    p.add_argument("item")
    edited_version(p)
    p.set_defaults(func=cmd_pack_drop)

    p = pack.add_parser("move", parents=[common], help="移动条目到其他部分或位置")
    p.add_argument("topic")
    p.add_argument("item")
    p.add_argument("--section", help=section_help)
    p.add_argument("--position", type=int_between(1), help="目标位置（从 1 起）")
    edited_version(p)
    p.set_defaults(func=cmd_pack_move)

    p = pack.add_parser("note", parents=[common], help="写编者按（空文本即删除）")
    p.add_argument("topic")
    p.add_argument("item")
    p.add_argument("text")
    edited_version(p)
    p.set_defaults(func=cmd_pack_note)

    p = pack.add_parser("key", parents=[common], help="标为重点阅读（--off 取消）")
    p.add_argument("topic")
    p.add_argument("item")
    p.add_argument("--off", action="store_true")
    edited_version(p)
    p.set_defaults(func=cmd_pack_key)
