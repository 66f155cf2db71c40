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
import sys
from typing import Callable

from indexer.build import SENTENCE_STAGE
from indexer.errors import KBError
from indexer.metadata import DOC_TYPES

from .knowledge_base import KnowledgeBase
from .search import MODES, SearchFilters

EXIT_OK, EXIT_PARTIAL, EXIT_ERROR = 0, 1, 2
EXTENSIONS: tuple[str, ...] = ("kb.cli_notes", "kb.cli_eval", "kb.cli_topics")


def open_kb(args) -> KnowledgeBase:
    """The knowledge base the shared options name."""
    return KnowledgeBase(args.home, model=getattr(args, "model", None), user=args.user, role=args.role)


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
        if kind == "files":
            bar.set_postfix_str(name[:30])
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
    kb = open_kb(args)
    filters = SearchFilters(doc_types=args.type or [], issuer=args.issuer, level=args.level, region=args.region,
                            date_from=args.date_from, date_to=args.date_to, in_force_only=args.in_force,
                            tags=args.tag or [])
    hits = kb.search(args.query, top_k=args.top, mode=args.mode, filters=filters)
    if args.json:
        print_json([h.as_dict() for h in hits])
        return EXIT_OK
    if not hits:
        if not filters.is_empty() and not kb.searcher.allowed_chunks(filters):
            print(f"筛选条件（{filters.describe()}）没有匹配任何文档。放宽或去掉筛选条件再试。")
        else:
            print(f"没有找到与“{args.query}”相关的材料。可以换个说法、减少筛选条件，或确认相关文件已索引。")
        return EXIT_OK
    if all(hit.weak for hit in hits):
        print(f"知识库里没有明确谈到“{args.query}”的材料，以下只是弱相关的结果：")
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
    print(f"知识库：{info['home']}")
    print(f"文档 {info['documents']} 篇，段落 {info['chunks']} 个；模型 {info['model']}（{info['dimension']} 维，"
          f"{info['dense_index']}）；索引占用 {info['index_size_mb']} MB；更新于 {info['updated']}")
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


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--home", help="知识库文件夹（默认 KB_HOME 或 ./kb_data）")
    common.add_argument("--json", action="store_true", help="以 JSON 输出")
    common.add_argument("--user", help="当前用户（默认 KB_USER）")
    common.add_argument("--role", help="角色 staff/member/expert（默认 KB_ROLE）")
    parser = argparse.ArgumentParser(prog="kb", description="协商研究助手：政策法规、领导讲话、案例模式的检索与调研资料汇编")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("index", parents=[common], help="索引文件或文件夹（只嵌入新增或改动的文件）")
    p.add_argument("paths", nargs="+")
    p.add_argument("--rebuild", action="store_true", help="丢弃已有向量，全部重建（换模型时用）")
    p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS", help="另一进程在索引时最多等待的秒数")
    p.add_argument("--model", help="嵌入模型文件夹（默认 KB_MODEL 或内置模型）")
    p.add_argument("--quiet", action="store_true", help="不显示进度条")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("search", parents=[common], help="检索（关键词+语义混合），结果带出处")
    p.add_argument("query")
    p.add_argument("--type", action="append", choices=sorted(DOC_TYPES), help="文档类型，可重复")
    p.add_argument("--top", type=int, default=10, help="返回条数")
    p.add_argument("--mode", choices=MODES, default="hybrid")
    p.add_argument("--issuer", help="发文机关（包含即可）")
    p.add_argument("--level", choices=["national", "provincial", "city", "county"])
    p.add_argument("--region")
    p.add_argument("--date-from", help="起始日期 YYYY-MM-DD")
    p.add_argument("--date-to", help="截止日期 YYYY-MM-DD")
    p.add_argument("--in-force", action="store_true", help="只看现行有效的文件")
    p.add_argument("--tag", action="append", help="主题标签，可重复")
    p.add_argument("--model", help="嵌入模型文件夹")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("info", parents=[common], help="知识库概况")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("show", parents=[common], help="查看一篇文档")
    p.add_argument("doc_id")
    p.set_defaults(func=cmd_show)

    for module_name in EXTENSIONS:
        importlib.import_module(module_name).register(sub, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable = args.func
    try:
        return handler(args)
    except KBError as exc:
        print(f"错误：{exc.user_message()}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("已中断；已完成的部分保留，再次运行会接着处理。", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
