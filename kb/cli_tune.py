"""`kb tune`: fine-tune the embedding model on the knowledge base's own passages (see `kb.tune`).

Staff only. Writes a new model folder (default: beside the model it starts from) and
never changes that model or the index; `kb index --rebuild --model DIR` puts it to use.
"""
from __future__ import annotations

import sys
import time

from .cli_args import int_between, non_negative
from .errors import PermissionDenied
from .tune import thesaurus_files, read_thesaurus, tune

# measured with `kb eval` on stard-mini (docs/search.md, `kb tune`)
BENCH_VERDICT = ("实测（在 stard 的 58,509 条法条上调整 25 分钟、113 步，模型带自己的相关度阈值）："
                 "stard 纯语义 nDCG@10 0.432 → 0.451，混合检索 0.486 → 0.485（不变）；"
                 "stard-mini 混合 0.731 → 0.741，纯语义 0.729 → 0.722。混合检索没有明确的提高，默认模型不变；"
                 "换模型前先用 kb eval 核对")
COSINE_DRIFT = 0.03  # unrelated passages' mean cosine moving more than this: the e5 thresholds no longer fit


def register(subparsers, common) -> None:
    p = subparsers.add_parser("tune", parents=[common],
                              help="用知识库自己的段落微调嵌入模型，写出新的模型文件夹（原模型不变；仅工作人员）")
    p.add_argument("--out", metavar="DIR", help="新模型文件夹（默认在原模型旁，名为 原名-tuned-时间）")
    p.add_argument("--max-minutes", type=non_negative("分钟数"), default=30.0, metavar="N",
                   help="训练最多用的分钟数（默认 30；到时停下并保存）")
    p.add_argument("--steps", type=int_between(1, 1_000_000), metavar="N", help="训练步数（给出时不看 --epochs）")
    p.add_argument("--epochs", type=non_negative("轮数"), default=1.0, metavar="N",
                   help="训练轮数（默认 1，可为小数）")
    p.add_argument("--batch-size", type=int_between(2, 1024), default=32, metavar="N",
                   help="每批样本数（默认 32；同一批的其他段落就是负例）")
    p.add_argument("--model", help="从哪个嵌入模型文件夹开始（默认 KB_MODEL 或内置模型）")
    p.add_argument("--no-onnx", action="store_true", help="不生成 int8 ONNX 副本（检索改用较慢的 PyTorch 后端）")
    p.set_defaults(func=cmd_tune)


def _progress(quiet: bool):
    if quiet:
        return None
    first: dict[str, float] = {}

    def report(done: int, total: int, loss: float) -> None:
        # the clock starts at the first step (loading and scoring the model come before it)
        now = time.monotonic()
        minutes = (now - first.setdefault("step", now)) / 60
        print(f"\r训练：第 {done}/{total} 步，损失 {loss:.3f}，已用 {minutes:.1f} 分钟", end="", file=sys.stderr,
              flush=True)
        if done >= total:
            print(file=sys.stderr)

    return report


def cmd_tune(args) -> int:
    from .cli import EXIT_OK, open_kb, print_json

    kb = open_kb(args)
    if not hasattr(kb, "store"):
        raise PermissionDenied("团队服务器上不能运行 kb tune",
                               hint="在服务器上不设 KB_SERVICE_URL，用 --home 指向团队知识库（KB_TEAM_HOME）运行")
    kb.user.require("index")
    say = None if args.json else (lambda msg: print(msg, file=sys.stderr))
    try:
        report = tune(kb.store.iter_passages(), kb.settings.model, args.out,
                      thesaurus=read_thesaurus(thesaurus_files(kb.home)), steps=args.steps, epochs=args.epochs,
                      max_minutes=args.max_minutes, batch_size=args.batch_size, onnx=not args.no_onnx,
                      log=say, progress=_progress(args.json))
    finally:
        kb.close()
    if args.json:
        print_json(report.as_dict())
        return EXIT_OK
    kinds = {"title": "标题↔段落", "heading": "小标题↔段落", "sentence": "句子↔段落", "thesaurus": "俗称↔正式用语"}
    pairs = "，".join(f"{kinds[k]} {n}" for k, n in report.pairs.items())
    stop = {"steps": "到达步数", "epochs": "完成轮数", "minutes": "到达时间上限"}[report.stopped_by]
    print(f"训练样本 {sum(report.pairs.values())} 对（{pairs}），来自 {report.passages} 个段落；"
          f"留出 {sum(report.held_out.values())} 对只用于对比")
    print(f"训练 {report.steps} 步（{report.epochs:g} 轮，每批 {report.batch_size}，{stop}），"
          f"用时 {report.minutes['training']:.1f} 分钟，共 {report.minutes['total']:.1f} 分钟；"
          f"每 1 万个段落训练一轮约 {report.minutes_per_10k_passages:.0f} 分钟")
    b, a = report.before, report.after
    if b:
        print(f"留出样本检索 Recall@1 {b['recall@1']:.3f} → {a['recall@1']:.3f}，"
              f"Recall@10 {b['recall@10']:.3f} → {a['recall@10']:.3f}"
              f"（{'提高' if report.improved else '没有提高'}）")
        print(f"留出样本余弦：对应段落 {b['cos_right']:.3f} → {a['cos_right']:.3f}，其他段落 {b['cos_other']:.3f} → "
              f"{a['cos_other']:.3f}")
    levels = report.calibration
    if levels:
        was, now = levels["base"], levels["tuned"]
        print(f"相关度阈值（余弦，门槛 / 可信）：{was['floor']:.2f} / {was['confident']:.2f} → "
              f"{now['floor']:.2f} / {now['confident']:.2f}，按留出样本的余弦换算，记录在新模型的 kb_model.json，检索时自动使用")
        if b and abs(a["cos_other"] - b["cos_other"]) > COSINE_DRIFT:
            print("注意：余弦整体移动了，阈值已随之换算；启用前仍请用 kb eval 核对")
    for note in report.notes:
        print(f"注意：{note}")
    print(f"新模型：{report.out}（原模型 {report.base_model} 未改动）")
    if report.improved:
        print(f"试用：kb eval 评测集 --model {report.out}；启用：kb index 文件夹 --rebuild --model {report.out}"
              f"（再在 settings.toml 写 model = \"{report.out}\"）")
    else:
        print("留出样本上没有变好：建议继续用原模型，不必重建索引。")
    print(BENCH_VERDICT)
    return EXIT_OK
