"""`kb eval BENCH_DIR`: retrieval quality on a BEIR-layout test set.

`--json` prints exactly `ndcg@10`, `recall@10`, `recall@100`, `mrr@10`,
`queries` and `mode`. The index of the bench corpus is cached (see
`kb.evaluation`), so only the first run on a corpus embeds it.
"""
from __future__ import annotations

import sys
from pathlib import Path

from indexer.embedding import load_embedder

from .cli_args import non_negative
from .config import Settings
from .evaluation import evaluate, load_bench, stderr_progress
from .search import FUSIONS, MODES


def register(subparsers, common) -> None:
    p = subparsers.add_parser("eval", parents=[common],
                              help="在 BEIR 格式评测集上评测检索质量（nDCG@10、Recall@10/100、MRR@10）")
    p.add_argument("bench_dir", metavar="BENCH_DIR", help="含 corpus.jsonl、queries.jsonl、qrels/test.tsv 的文件夹")
    p.add_argument("--mode", choices=MODES, default="hybrid")
    p.add_argument("--fusion", choices=FUSIONS, help="混合检索的融合方式（默认取设置，combsum）")
    p.add_argument("--sentence-weight", type=non_negative("数"), metavar="W",
                   help="混合检索中最贴切句子的权重（默认取设置，1.0；0 为不用）")
    p.add_argument("--model", help="嵌入模型文件夹（默认 KB_MODEL 或内置模型）")
    p.add_argument("--cache", type=Path, help="评测索引缓存文件夹（默认 KB_EVAL_CACHE 或 ~/.cache/xieshang-kb/eval）")
    p.add_argument("--run-file", type=Path, help="另存排序结果（TREC 格式），可交给 score.py 核对")
    p.add_argument("--database", metavar="URL",
                   help="把评测语料存入这个 PostgreSQL 数据库（postgresql://…，新建的空库），在团队服务器的后端上评测")
    p.set_defaults(func=cmd_eval)


def cmd_eval(args) -> int:
    bench = load_bench(args.bench_dir)  # check the folder before the model takes seconds to load
    settings = Settings.load(args.home, model=args.model)
    embedder = load_embedder(settings.model)
    options = settings.searcher_options()
    if args.fusion:
        options["fusion"] = args.fusion
    if args.sentence_weight is not None:
        options["sentence_weight"] = args.sentence_weight
    report = evaluate(bench, embedder, mode=args.mode, cache_root=args.cache, searcher_options=options,
                      run_path=args.run_file, progress=None if args.json else stderr_progress("建立评测索引"),
                      database=args.database)
    for qid, reason in report.failed_queries.items():
        print(f"问题 {qid} 无法检索，按零分计：{reason}", file=sys.stderr)
    if args.json:
        from .cli import print_json

        print_json(report.as_json())
        return 0
    m = report.metrics
    print(f"评测集 {report.bench}（{report.queries} 个问题），模型 {report.model}，检索方式 {report.mode}"
          f"（融合 {report.settings['fusion']}，最贴切句子权重 {report.settings['sentence_weight']:g}）")
    print(f"nDCG@10 {m['ndcg@10']:.4f}  Recall@10 {m['recall@10']:.4f}  Recall@100 {m['recall@100']:.4f}  "
          f"MRR@10 {m['mrr@10']:.4f}")
    print(f"用时：建索引/读缓存 {report.seconds['index']} 秒，检索 {report.seconds['queries']} 秒")
    return 0
