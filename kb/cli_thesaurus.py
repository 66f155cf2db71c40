"""`kb thesaurus list|add|remove|show`: the lay-to-official thesaurus (检索词表) of a knowledge base.

`list` gives the size of each built-in field and the knowledge base's own entries (`--all`
every entry); `add` / `remove` edit the own entries in `<home>/thesaurus.tsv` (staff, audited);
`show QUERY` prints what search makes of a query: its words, the lay expressions found and the
official terms added, with their weight.
"""
from __future__ import annotations

from . import thesaurus
from .errors import KBError
from .search import THESAURUS_MIN_SHARE, THESAURUS_WEIGHT, make_plan


def register(subparsers, common) -> None:
    p = subparsers.add_parser("thesaurus", parents=[common], help="检索词表：日常说法 → 规范用语（list/add/remove/show）")
    sub = p.add_subparsers(dest="thesaurus_command", required=True, title="命令", metavar="命令")

    q = sub.add_parser("list", parents=[common], help="各领域内置词条数和本知识库自己的词条（--all 列出全部）")
    q.add_argument("--all", action="store_true", help="也列出全部内置词条")
    q.add_argument("--field", choices=sorted(thesaurus.FIELDS), help="只列这一领域的内置词条")
    q.set_defaults(func=cmd_list)

    q = sub.add_parser("add", parents=[common], help="添加或修改本知识库的词条：日常说法 规范用语…（工作人员）")
    q.add_argument("lay", metavar="LAY", help="日常说法，如 门口摆摊")
    q.add_argument("terms", nargs="+", metavar="TERM", help="规范用语，如 占道经营 市容管理；写 - 停用同名内置词条")
    q.set_defaults(func=cmd_add)

    q = sub.add_parser("remove", parents=[common], help="删除本知识库的一个词条（工作人员）")
    q.add_argument("lay", metavar="LAY")
    q.set_defaults(func=cmd_remove)

    q = sub.add_parser("show", parents=[common], help="显示一个检索词会被如何扩展")
    q.add_argument("query", nargs="+", metavar="QUERY")
    q.set_defaults(func=cmd_show)


def _local_kb(args):
    from .cli import open_kb

    kb = open_kb(args)
    if getattr(kb, "remote", False):
        raise KBError("团队服务器上的检索词表由服务器上的知识库文件夹维护",
                      hint="请管理员在服务器上编辑 thesaurus.tsv")
    return kb


def cmd_list(args) -> int:
    from .cli import print_json

    kb = _local_kb(args)
    table = thesaurus.load(kb.home)
    by_field = table.by_field()
    own = by_field.get(thesaurus.OWN_FIELD, [])
    shown = [e for key, entries in by_field.items() if key != thesaurus.OWN_FIELD and (args.all or args.field == key)
             for e in entries]
    if args.json:
        print_json({"fields": {key: len(by_field.get(key, [])) for key in thesaurus.FIELDS}, "total": len(table),
                    "own": [e.as_dict() for e in own], "entries": [e.as_dict() for e in shown],
                    "switched_off": sorted(table.switched_off)})
        return 0
    print(f"检索词表共 {len(table)} 条：")
    for key, label in thesaurus.FIELDS.items():
        print(f"  {label}（{key}）：{len(by_field.get(key, []))} 条")
    for entry in shown:
        print(f"{entry.lay}\t→ {' '.join(entry.terms)}\t[{entry.field_label}]")
    print(f"本知识库自己的词条（{thesaurus.own_file(kb.home)}）：{len(own)} 条")
    for entry in own:
        print(f"  {entry.lay} → {' '.join(entry.terms)}")
    for lay in sorted(table.switched_off):
        print(f"  已停用内置词条：{lay}")
    return 0


def cmd_add(args) -> int:
    kb = _local_kb(args)
    entry = thesaurus.add_entry(kb.home, kb.db, kb.user, args.lay, args.terms)
    if args.json:
        from .cli import print_json

        print_json(entry.as_dict())
    elif entry.terms == (thesaurus.SWITCHED_OFF,):
        print(f"已停用内置词条“{entry.lay}”")
    else:
        print(f"已保存：{entry.lay} → {' '.join(entry.terms)}（下一次检索起生效）")
    return 0


def cmd_remove(args) -> int:
    kb = _local_kb(args)
    entry = thesaurus.remove_entry(kb.home, kb.db, kb.user, args.lay)
    if args.json:
        from .cli import print_json

        print_json(entry.as_dict())
    else:
        print(f"已删除本知识库的词条：{entry.lay}")
    return 0


def cmd_show(args) -> int:
    query = " ".join(args.query)
    kb = _local_kb(args)
    plan = make_plan(query, kb.tokenizer, thesaurus.load(kb.home), thesaurus_weight=THESAURUS_WEIGHT)
    if args.json:
        from .cli import print_json

        print_json({**plan.as_dict(), "dense_text": plan.dense_text()})
        return 0
    words = [t for t in plan.keyword_tokens if t[:1] not in ("\u00b7", "\u00a7")]
    print(f"检索词：{plan.text}（{'问句' if plan.kind == 'question' else '关键词'}）")
    print(f"关键词：{' '.join(words)}")
    if plan.lay_matches and plan.official_weight > 0:
        print(f"词表匹配：{'、'.join(plan.lay_matches)}（占问句 {plan.lay_share:.0%}）")
        print(f"补充规范用语（权重 {plan.official_weight:g}，原词为 1）：{' '.join(plan.official_terms)}")
    elif plan.lay_matches:
        print(f"词表匹配：{'、'.join(plan.lay_matches)}，但只占问句的 {plan.lay_share:.0%}"
              f"（不到 {THESAURUS_MIN_SHARE:.0%}），按原话检索，不补充：{' '.join(plan.official_terms)}")
    else:
        print("词表没有匹配的日常说法，检索词不扩展。")
    return 0
