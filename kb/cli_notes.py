"""`kb note …` (expert notes anchored to passages) and `kb audit` (who changed what, when)."""
from __future__ import annotations

import argparse
import os

from .annotations import STANCES, Annotation
from .audit import ACTION_LABELS, TARGET_LABELS, action_label
from .cli import EXIT_ERROR, EXIT_OK, open_kb, print_json
from .cli_args import int_between
from .config import Settings
from .errors import InvalidNote, InvalidQuery
from .knowledge_base import KnowledgeBase
from .roles import ROLES


def _review_line(note: Annotation) -> str:
    """待审, or the decision with who took it and when (and why, when a reason was given)."""
    if note.review == "pending" or not note.reviewed_by:
        return note.review_label
    when = (note.reviewed_at or "").replace("T", " ")[:16]
    return f"{note.review_label}（{note.reviewed_by}，{when}）" + (f"：{note.review_reason}" if note.review_reason else "")


def _print_note(note: Annotation, title: str | None = None) -> None:
    print(f"[{note.note_id}] {note.stance} · {note.author}（{note.role_label}） · {note.created} · {note.status_label}")
    print(f"  审核：{_review_line(note)}")
    where = f"{title}（{note.doc_id}）" if title else note.doc_id
    print(f"  文档：{where}，字符 {note.start}–{note.end}")
    print(f"  引文：“{note.quote}”")
    if note.original_quote and note.original_quote != note.quote:
        print(f"  原引文：“{note.original_quote}”")
    if note.anchor_info:
        print(f"  锚定：{note.anchor_info}")
    print(f"  意见：{note.text}")
    for reply in note.replies:
        print(f"    ↳ {reply.author}（{reply.role_label}） {reply.created}：{reply.text}")


def _open_as_author(args) -> KnowledgeBase:
    """The knowledge base, refusing to write under the default user name: a note or reply
    saved without --user or KB_USER would be signed 「staff」 whatever its role."""
    kb = open_kb(args)
    if not (args.user or os.environ.get("KB_USER")) and kb.settings.user == Settings.user:
        raise InvalidNote("没有指定作者姓名，论证意见不能署名为默认的“staff”",
                          hint="用 --user 姓名 或环境变量 KB_USER 指定作者")
    return kb


def cmd_note_add(args) -> int:
    kb = _open_as_author(args)
    note = kb.notes.add(args.doc_id, args.quote, stance=args.stance, text=args.text, start=args.start,
                        end=args.end, before=args.before or "", after=args.after or "")
    if args.json:
        print_json(note.as_dict())
        return EXIT_OK
    print(f"已保存论证意见 {note.note_id}（{note.stance}，字符 {note.start}–{note.end}）")
    if note.anchor_info:
        print(f"注意：{note.anchor_info}")
    return EXIT_OK


def cmd_note_reply(args) -> int:
    reply = _open_as_author(args).notes.reply(args.note_id, args.text)
    if args.json:
        print_json(reply.__dict__)
    else:
        print(f"已回复 {reply.parent_id}（回复编号 {reply.note_id}）")
    return EXIT_OK


def cmd_note_list(args) -> int:
    kb = open_kb(args)
    kb.user.require("read")
    if args.pending:
        kb.user.require("review_notes")
    notes = kb.notes.find(doc_id=args.doc, author=args.author, stance=args.stance, topic=args.topic,
                          orphaned=True if args.orphaned else None, review="pending" if args.pending else None)
    if args.json:
        print_json([n.as_dict() for n in notes])
        return EXIT_OK
    if not notes:
        print("没有符合条件的论证意见。")
        return EXIT_OK
    titles = kb.store.titles()
    for note in notes:
        _print_note(note, titles.get(note.doc_id))
    orphaned = sum(n.orphaned for n in notes)
    pending = sum(n.review == "pending" for n in notes)
    print(f"共 {len(notes)} 条" + (f"，其中 {orphaned} 条原文已改动、未能定位" if orphaned else "")
          + (f"，{pending} 条待审" if pending and not args.pending else ""))
    return EXIT_OK


def cmd_note_review(args) -> int:
    if not (args.accept or args.internal):
        raise InvalidNote("没有给出审核结论", hint="加 --accept（采纳入汇编）或 --internal（仅内部参考）")
    kb = open_kb(args)
    note = kb.notes.review(args.note_id, "accepted" if args.accept else "internal", reason=args.reason or "")
    if args.json:
        print_json(note.as_dict())
    else:
        print(f"已审核论证意见 {note.note_id}：{_review_line(note)}")
    return EXIT_OK


def cmd_note_show(args) -> int:
    kb = open_kb(args)
    kb.user.require("read")
    note = kb.notes.get(args.note_id)
    if args.json:
        print_json(note.as_dict())
    else:
        _print_note(note, kb.store.titles().get(note.doc_id))
    return EXIT_OK


def cmd_note_export(args) -> int:
    count = open_kb(args).notes.export(args.out, args.format)
    if args.json:
        print_json({"notes": count, "out": args.out, "format": args.format})
    else:
        print(f"已导出 {count} 条论证意见到 {args.out}")
    return EXIT_OK


def cmd_note_import(args) -> int:
    report = open_kb(args).notes.import_file(args.file)
    if args.json:
        print_json(report.as_dict())
    else:
        print(f"导入 {report.imported} 条，已存在 {report.already_present} 条，有问题 {len(report.problems)} 条")
        for row, reason in report.problems:
            print(f"  第 {row} 条：{reason}")
    return EXIT_ERROR if report.problems and not report.imported else EXIT_OK


def cmd_audit(args) -> int:
    if args.action and args.action not in ACTION_LABELS:
        raise InvalidQuery(f"未知的操作“{args.action}”", hint="可选：" + "、".join(sorted(ACTION_LABELS)))
    kb = open_kb(args)
    kb.user.require("read")
    entries = kb.audit_log(user=args.user_filter, target_type=args.type, target_id=args.target, action=args.action,
                           limit=args.limit)
    if args.json:
        print_json([e.__dict__ for e in entries])
        return EXIT_OK
    if not entries:
        print("审计日志中没有符合条件的记录。")
        return EXIT_OK
    for e in entries:
        what = action_label(e.action)
        target = f" {TARGET_LABELS.get(e.target_type, e.target_type)}" + (f" {e.target_id}" if e.target_id else "")
        detail = "，".join(f"{k}={v}" for k, v in e.detail.items() if not isinstance(v, (list, dict)))
        print(f"{e.at}  {e.user}（{ROLES.get(e.role, e.role)}）  {what}{target}" + (f"  {detail}" if detail else ""))
    return EXIT_OK


def register(subparsers, common: argparse.ArgumentParser) -> None:
    """Add `kb note …` and `kb audit` to the `kb` command."""
    note = subparsers.add_parser("note", help="专家论证意见：锚定到原文的批注、回复、导出导入")
    sub = note.add_subparsers(dest="note_command", required=True)

    p = sub.add_parser("add", parents=[common], help="在文档的一段原文上写论证意见（专家、工作人员）")
    p.add_argument("doc_id")
    p.add_argument("--quote", help="原文中的一段原话（锚点）")
    p.add_argument("--stance", required=True, help="论证立场：" + " / ".join(STANCES))
    p.add_argument("--text", required=True, help="意见内容")
    p.add_argument("--start", type=int_between(0), help="引文起始字符位置（可选，引文重复出现时用）")
    p.add_argument("--end", type=int_between(1), help="引文结束字符位置")
    p.add_argument("--before", help="引文前面的几个字，引文重复出现时用来选定位置")
    p.add_argument("--after", help="引文后面的几个字")
    p.set_defaults(func=cmd_note_add)

    p = sub.add_parser("reply", parents=[common], help="回复一条论证意见（所有角色）")
    p.add_argument("note_id")
    p.add_argument("--text", required=True)
    p.set_defaults(func=cmd_note_reply)

    p = sub.add_parser("list", parents=[common], help="按文档、作者、立场、议题、审核状态列出论证意见")
    p.add_argument("--doc", help="文档编号 doc_id")
    p.add_argument("--author")
    p.add_argument("--stance", help=" / ".join(STANCES))
    p.add_argument("--topic", help="协商议题（其调研资料汇编或关键词涉及的文档）")
    p.add_argument("--orphaned", action="store_true", help="只看原文改动后未能定位的意见")
    p.add_argument("--pending", action="store_true", help="只看待审的意见（工作人员）")
    p.set_defaults(func=cmd_note_list)

    p = sub.add_parser("review", parents=[common], help="审核一条论证意见：采纳入汇编或仅内部参考（工作人员）")
    p.add_argument("note_id")
    decision = p.add_mutually_exclusive_group()
    decision.add_argument("--accept", action="store_true", help="采纳入汇编：委员可见，导出时收入汇编")
    decision.add_argument("--internal", action="store_true", help="仅内部参考：委员不可见，不进入汇编")
    p.add_argument("--reason", help="审核说明（可选）")
    p.set_defaults(func=cmd_note_review)

    p = sub.add_parser("show", parents=[common], help="查看一条论证意见及其回复")
    p.add_argument("note_id")
    p.set_defaults(func=cmd_note_show)

    p = sub.add_parser("export", parents=[common], help="导出论证意见（JSON 或 Excel 可打开的 CSV）")
    p.add_argument("--format", choices=["json", "csv"], default="json")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_note_export)

    p = sub.add_parser("import", parents=[common], help="导入 kb note export 生成的文件（已有的编号跳过）")
    p.add_argument("file")
    p.set_defaults(func=cmd_note_import)

    p = subparsers.add_parser("audit", parents=[common], help="审计日志：谁在何时改了文档、汇编、论证意见")
    p.add_argument("--by", dest="user_filter", metavar="USER", help="只看某个用户的操作")
    p.add_argument("--type", help="对象类型：documents、document、note、pack、topic …")
    p.add_argument("--target", help="对象编号")
    p.add_argument("--action", help="只看某种操作，如 note.add、document.index、pack.export")
    p.add_argument("--limit", type=int_between(1), default=200, help="最多显示条数（默认 200）")
    p.set_defaults(func=cmd_audit)
