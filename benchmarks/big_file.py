"""Indexing one big single-line file: time, peak memory, and what a kill keeps.

    python benchmarks/big_file.py [--mb 1.7] [--model DIR] [--json]

Writes a single-line .txt of about `--mb` megabytes (recombined sentences of the sample
corpus, no line breaks, the shape that used to be all-or-nothing), then runs
`kb index` on it in a child process and prints one JSON object: chunks, seconds,
chunks per second and the child's peak RSS (from `resource.getrusage`), next to a
baseline measured in the same run — the same command on a 50 KB file — so the ratio
shows how memory grows with file size (bounded batches: it should not).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _sentences() -> list[str]:
    out = []
    for path in sorted((ROOT / "corpus").rglob("*.md")) + sorted((ROOT / "corpus").rglob("*.txt")):
        text = path.read_text(encoding="utf-8", errors="ignore")
        out += [s + "。" for s in re.split(r"[。\n]", text) if len(s) >= 12]
    return out


def write_single_line(path: Path, megabytes: float, seed: int = 7) -> int:
    pool, rng = _sentences(), random.Random(seed)
    target, parts, size = int(megabytes * 1_000_000), [], 0
    while size < target:
        sentence = rng.choice(pool)
        parts.append(sentence)
        size += len(sentence.encode("utf-8"))
    path.write_text("青溪市大文件测试（样例材料）" + "".join(parts), encoding="utf-8")
    return path.stat().st_size


def run_index(folder: Path, home: Path, model: str | None) -> dict:
    """`kb index folder` in a child process: seconds, peak RSS of the child, its JSON report."""
    env = {**os.environ, **({"KB_MODEL": model} if model else {})}
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "kb.cli", "index", str(folder), "--home", str(home), "--json",
                           "--quiet"], capture_output=True, text=True, env=env, cwd=ROOT)
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise SystemExit(done.stderr)
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    report = json.loads(done.stdout)
    return {"seconds": round(seconds, 1), "chunks": report["chunks_embedded"],
            "chunks_per_s": round(report["chunks_embedded"] / seconds, 2),
            "peak_rss_mb": round(max(peak_kb, before) / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=1.7)
    parser.add_argument("--model", help="model folder or hashing:64 (default: the configured model)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        results = {}
        # the baseline runs first: getrusage(RUSAGE_CHILDREN) keeps the largest child seen so far
        for name, mb in (("baseline_50kb", 0.05), ("big", args.mb)):
            folder = tmp / name
            folder.mkdir()
            size = write_single_line(folder / "单行大文件.txt", mb)
            results[name] = {"file_bytes": size, **run_index(folder, tmp / f"kb-{name}", args.model)}
    out = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
           "model": args.model or os.environ.get("KB_MODEL") or "default", **results,
           "rss_ratio_big_vs_baseline": round(results["big"]["peak_rss_mb"] / results["baseline_50kb"]["peak_rss_mb"], 2)}
    print(json.dumps(out, ensure_ascii=False, indent=None if args.json else 1))


if __name__ == "__main__":
    main()
