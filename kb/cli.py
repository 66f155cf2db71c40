"""`kb` command line. Expected problems print one line with a hint; exit codes:
0 done, 1 done but some files were skipped, 2 error.

Feature modules add their own sub-commands: each of `EXTENSIONS` has
`register(subparsers, common)` where `common` is the parent parser with the
shared options (--home, --json, --user, --role).
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from typing import Callable

from indexer.build import SENTENCE_STAGE
from indexer.errors import KBError
from indexer.metadata import DOC_TYPES

from .cli_args import (DOC_TYPE_HELP, MAX_TOP, ChineseArgumentParser, date_value, doc_type_value, int_between,
                       seconds_value, year_value)
from .errors import InvalidQuery, KnowledgeBaseExists, PermissionDenied
from .knowledge_base import KnowledgeBase
from .search import MODES, SearchFilters

EXIT_OK, EXIT_PARTIAL, EXIT_ERROR = 0, 1, 2
EXTENSIONS: tuple[str, ...] = ("kb.cli_notes", "kb.cli_eval", "kb.cli_topics", "kb.cli_tune", "kb.cli_cycle",
                                   "kb.cli_thesaurus")


def open_kb(args) -> KnowledgeBase:
    """The knowledge base the shared options name. Only commands that add material
    (`set_defaults(creates_kb=True)`) may create one where there is none.

    On a team server (KB_SERVICE_URL set) it is the team service, acting for the signed-in
    account (JUPYTERHUB_API_TOKEN): --user/--role/--home are refused there."""
    from .remote import RemoteKnowledgeBase, team_mode

    if team_mode():
        given = [flag for flag, value in (("--user", args.user), ("--role", args.role), ("--home", args.home)) if value]
        if given:
            raise PermissionDenied(f"团队服务器上不能用 {'、'.join(given)}：身份和知识库来自登录账号",
                                   hint="去掉这些选项再运行")
        return RemoteKnowledgeBase()
    return KnowledgeBase(args.home, model=getattr(args, "model", None), user=args.user, role=args.role,
                         create=getattr(args, "creates_kb", False))


def print_json(data) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=1, default=str))


def _progress_bar():
    from tqdm import tqdm

    bar = None
    stage = None

    def update(n: int, total: int, name: str) -> None:
        # files first, then (for a knowledge base from before sentence vectors) chunks
        nonlocal bar, stage
        kind = "chunks" if name == SENTENCE_STAGE else "files"
        if bar is None or kind != stage:
            if bar is not None:
                bar.close()
            stage = kind
            bar = tqdm(total=total, unit="段" if kind == "chunks" else "个文件", desc=name if kind == "chunks" else None,
                       file=sys.stderr, leave=False, dynamic_ncols=True)
        if kind == "files" and name:
            bar.set_postfix_str(name[:40])  # a big file also shows its chunks done / total
        bar.update(n - bar.n)
        if n == total:
            bar.close()

    return update


def cmd_index(args) -> int:
    kb = open_kb(args)
    report = kb.index(args.paths, rebuild=args.rebuild, wait=args.wait,
                      progress=None if args.json or args.quiet else _progress_bar())
    for path, reason in report.skipped:
        print(f"跳过：{path}：{reason}", file=sys.stderr)
    if args.json:
        print_json(report.as_dict())
    else:
        embedded = report.embedded_documents
        print(f"新增 {report.added} 篇，更新 {report.updated} 篇，未变 {report.unchanged} 篇，移除 {report.removed} 篇，"
              f"跳过 {len(report.skipped)} 个文件；嵌入 {report.chunks_embedded} 个段落，用时 {report.seconds:.1f} 秒")
        if report.sentences_filled:
            print(f"为此前索引的 {report.sentences_filled} 个段落补算了句向量（一次性）。")
        if not embedded and not report.removed and not report.sentences_filled:
            print("没有需要嵌入的新内容（nothing to embed）。")
    return EXIT_PARTIAL if report.skipped else EXIT_OK


def cmd_search(args) -> int:
    query = " ".join(args.query)  # `kb search 助餐 补贴` needs no quotes
    kb = open_kb(args)
    filters = SearchFilters(doc_types=args.type or [], issuer=args.issuer, level=args.level, region=args.region,
                            date_from=args.date_from, date_to=args.date_to, in_force_only=args.in_force,
                            tags=args.tag or [])
    hits = kb.search(query, top_k=args.top, mode=args.mode, filters=filters)
    if args.json:
        print_json([h.as_dict() for h in hits])
        return EXIT_OK
    if not hits:
        if not filters.is_empty() and not kb.any_document_matches(filters):
            print(f"筛选条件（{filters.describe()}）没有匹配任何文档。放宽或去掉筛选条件再试。")
        else:
            print(f"没有找到与“{query}”相关的材料。可以换个说法、减少筛选条件，或确认相关文件已索引。")
        return EXIT_OK
    if all(hit.weak for hit in hits):
        print(f"知识库里没有明确谈到“{query}”的材料，以下只是弱相关的结果：")
    for n, hit in enumerate(hits, start=1):
        weak = "（弱相关）" if hit.weak else ""
        print(f"[{n}] {hit.title} · {DOC_TYPES.get(hit.doc_type, hit.doc_type)} · {hit.label}{weak}  得分 {hit.score:.4f}")
        snippet = hit.text.replace("\n", " ")
        print(f"    {snippet[:160]}{'…' if len(snippet) > 160 else ''}")
        if hit.focus_text() and len(snippet) > 80:
            print(f"    最贴切的一句：{' '.join(hit.focus_text().split())}")
        print(f"    出处：{hit.citation.formatted()}  [doc_id {hit.doc_id}，字符 {hit.start}–{hit.end}]")
    return EXIT_OK


def cmd_info(args) -> int:
    info = open_kb(args).info()
    if args.json:
        print_json(info)
        return EXIT_OK
    print(f"知识库：{info['home']}（数据库格式版本 {info['schema_version']}）")
    print(f"文档 {info['documents']} 篇，段落 {info['chunks']} 个；占用 {info['index_size_mb']} MB")
    if info["generation"] is None:
        print("检索文件：尚未发布（运行 kb index 文件夹；若上次索引中断，再运行一次即可完成）")
    else:
        print(f"检索文件：第 {info['generation']} 代，{info['published_chunks']} 个段落，模型 {info['model']}"
              f"（{info['dimension']} 维，{info['dense_index']}），发布于 {info['updated']}")
    if info["rebuild_pending"]:
        print("注意：上次 kb index --rebuild 没有完成，检索仍用重建前的索引；再运行一次 kb index --rebuild 完成它")
    for doc_type, count in sorted(info["documents_by_type"].items()):
        print(f"  {DOC_TYPES.get(doc_type, doc_type)}：{count} 篇")
    return EXIT_OK


def cmd_show(args) -> int:
    doc = open_kb(args).document(args.doc_id)
    if args.json:
        print_json(doc.as_dict())
        return EXIT_OK
    print(doc.title)
    fields = [("类型", doc.type_label), ("发文机关", doc.issuer), ("文号", doc.doc_number), ("日期", doc.date),
              ("层级", doc.level_label), ("地区", doc.region), ("效力", doc.validity_label),
              ("替代文件", doc.replaced_by), ("标签", "、".join(doc.tags)), ("来源文件", doc.source)]
    for name, value in fields:
        if value:
            print(f"{name}：{value}")
    print(f"段落 {len(doc.chunks)} 个")
    print("-" * 40)
    print(doc.text)
    return EXIT_OK


def cmd_documents(args) -> int:
    date_from, date_to = args.date_from, args.date_to
    if args.year is not None:
        if date_from or date_to:
            raise InvalidQuery("--year 和 --date-from/--date-to 只能用一种", hint="按年份列出用 --year，按日期范围用后两者")
        date_from, date_to = f"{args.year:04d}-01-01", f"{args.year:04d}-12-31"
    filtered = bool(args.type or args.issuer or date_from or date_to)
    docs = open_kb(args).documents(doc_type=args.type, issuer=args.issuer, date_from=date_from, date_to=date_to)
    if args.json:
        print_json([d.as_dict(with_text=False) for d in docs])
        return EXIT_OK
    if not docs:
        print("没有符合条件的文档。放宽或去掉筛选条件再试。" if filtered else "知识库里还没有文档（用 kb index 文件夹 添加）。")
    for doc in docs:
        print(f"{doc.doc_id}  {doc.type_label}  {doc.date or '日期不详'}  {doc.title}")
    return EXIT_OK


def cmd_init(args) -> int:
    from .storage import DB_FILE

    home = _home(args)
    _cli_user(args).require("index")
    if (home / DB_FILE).exists():
        raise KnowledgeBaseExists(f"{home.resolve()} 里已有知识库，没有改动它",
                                  hint="直接使用它（kb info 查看概况），或用 --home 指定另一个文件夹")
    open_kb(args).close()
    if args.json:
        print_json({"home": str(home.resolve()), "created": True})
    else:
        print(f"已在 {home.resolve()} 建立空的知识库。下一步：kb index 文件夹 添加文件")
    return EXIT_OK


def cmd_doctor(args) -> int:
    from .maintenance import check

    kb_user = _cli_user(args)
    report = check(_home(args), repair=args.repair, user=kb_user)
    if args.json:
        print_json(report.as_dict())
    else:
        for line in report.facts:
            print(line)
        for line in report.repaired:
            print(f"已修复：{line}")
        for line in report.problems:
            print(f"问题：{line}", file=sys.stderr)
        if report.ok:
            print("检查完毕：数据库和检索文件完好。")
    return EXIT_OK if report.ok else EXIT_ERROR


def cmd_backup(args) -> int:
    from .maintenance import backup

    kb_user = _cli_user(args)
    kb_user.require("index")
    info = backup(_home(args), args.out, kb_user)
    if args.json:
        print_json(info)
    else:
        print(f"已备份到 {args.out}：文档 {info['documents']} 篇，段落 {info['chunks']} 个，检索文件第 {info['generation']} 代")
    return EXIT_OK


def cmd_migrate(args) -> int:
    from .maintenance import migrate_to_postgres

    kb_user = _cli_user(args)
    kb_user.require("index")
    info = migrate_to_postgres(_home(args), args.to, kb_user)
    if args.json:
        print_json(info)
    else:
        print(f"已迁移到 {info['database']}：文档 {info['documents']} 篇，段落 {info['chunks']} 个；"
              f"settings.toml 已指向它（kb.sqlite 留在原处，不再使用）")
    return EXIT_OK


def cmd_restore(args) -> int:
    from .maintenance import restore

    kb_user = _cli_user(args)
    kb_user.require("index")
    info = restore(args.backup, _home(args), kb_user, force=args.force)
    if args.json:
        print_json(info)
    else:
        print(f"已从 {args.backup} 恢复到 {_home(args)}：文档 {info['documents']} 篇（备份于 {info['created']}）")
    return EXIT_OK


def _home(args):
    from .config import resolve_home

    return resolve_home(args.home)


def _cli_user(args):
    from .config import Settings
    from .roles import User

    settings = Settings.load(args.home, user=args.user, role=args.role)
    return User(settings.user, settings.role)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)  # only a parent: its options join each command's
    common.add_argument("--home", help="知识库文件夹（默认 KB_HOME 或 ./kb_data）")
    common.add_argument("--json", action="store_true", help="以 JSON 输出")
    common.add_argument("--user", help="当前用户（默认 KB_USER）")
    common.add_argument("--role", help="角色 staff/member/expert（默认 KB_ROLE）")
    parser = ChineseArgumentParser(prog="kb", description="协商研究助手：政策法规、领导讲话、案例模式的检索与调研资料汇编")
    sub = parser.add_subparsers(dest="command", required=True, title="命令", metavar="命令")

    p = sub.add_parser("init", parents=[common], help="在 --home（或 KB_HOME）建立空的知识库；那里已有知识库时不动它")
    p.set_defaults(func=cmd_init, creates_kb=True)

    p = sub.add_parser("index", parents=[common], help="索引文件或文件夹（只嵌入新增或改动的文件）")
    p.add_argument("paths", nargs="+")
    p.add_argument("--rebuild", action="store_true", help="丢弃已有向量，全部重建（换模型时用）")
    p.add_argument("--wait", type=seconds_value, default=0.0, metavar="SECONDS", help="另一进程在索引时最多等待的秒数")
    p.add_argument("--model", help="嵌入模型文件夹（默认 KB_MODEL 或内置模型）")
    p.add_argument("--quiet", action="store_true", help="不显示进度条")
    p.set_defaults(func=cmd_index, creates_kb=True)

    p = sub.add_parser("search", parents=[common], help="检索（关键词+语义混合），结果带出处")
    p.add_argument("query", nargs="+", help="检索词；几个词不必加引号")
    p.add_argument("--type", action="append", type=doc_type_value, metavar="TYPE", help=DOC_TYPE_HELP + "；可重复")
    p.add_argument("--top", type=int_between(1, MAX_TOP), default=10, metavar="N", help=f"返回条数（1–{MAX_TOP}）")
    p.add_argument("--mode", choices=MODES, default="hybrid")
    p.add_argument("--issuer", help="发文机关（包含即可）")
    p.add_argument("--level", choices=["national", "provincial", "city", "county"])
    p.add_argument("--region")
    p.add_argument("--date-from", type=date_value, metavar="DATE", help="起始日期，如 2023-01-01 或 2023年1月1日")
    p.add_argument("--date-to", type=date_value, metavar="DATE", help="截止日期")
    p.add_argument("--in-force", action="store_true", help="只看现行有效的文件")
    p.add_argument("--tag", action="append", help="主题标签，可重复")
    p.add_argument("--model", help="嵌入模型文件夹")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("info", parents=[common], help="知识库概况")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("show", parents=[common], help="查看一篇文档")
    p.add_argument("doc_id")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("documents", aliases=["docs"], parents=[common], help="列出文档及其编号（doc_id）")
    p.add_argument("--type", type=doc_type_value, metavar="TYPE", help="只列这一类文档；" + DOC_TYPE_HELP)
    p.add_argument("--issuer", help="发文机关（包含即可）")
    p.add_argument("--year", type=year_value, help="只列这一年的文档")
    p.add_argument("--date-from", type=date_value, metavar="DATE", help="起始日期，如 2023-01-01 或 2023年1月1日")
    p.add_argument("--date-to", type=date_value, metavar="DATE", help="截止日期")
    p.set_defaults(func=cmd_documents)

    p = sub.add_parser("doctor", parents=[common], help="检查数据库与检索文件；--repair 从数据库重建检索文件")
    p.add_argument("--repair", action="store_true", help="检索文件损坏、缺失或落后于数据库时，从数据库重建")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("backup", parents=[common], help="备份知识库到一个新文件夹（他人可继续使用）")
    p.add_argument("out", metavar="OUT", help="备份写入的新文件夹")
    p.set_defaults(func=cmd_backup)

    p = sub.add_parser("restore", parents=[common], help="从 kb backup 的备份恢复知识库到 --home")
    p.add_argument("backup", metavar="BACKUP", help="kb backup 写出的文件夹")
    p.add_argument("--force", action="store_true", help="覆盖已有知识库（原文件移到 .before-restore-时间 文件夹）")
    p.set_defaults(func=cmd_restore)

    p = sub.add_parser("migrate", parents=[common], help="把单人使用的 SQLite 知识库迁移到 PostgreSQL")
    p.add_argument("--to", required=True, metavar="URL", help="空的 PostgreSQL 数据库，如 postgresql://kb@db:5432/kb")
    p.set_defaults(func=cmd_migrate)

    for module_name in EXTENSIONS:
        importlib.import_module(module_name).register(sub, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    handler: Callable = args.func
    try:
        return handler(args)
    except KBError as exc:
        print(f"错误：{exc.user_message()}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:  # `kb … | head`: the reader has gone; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:
        print("已中断；已保存的部分保留，再次运行会接着处理。", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
