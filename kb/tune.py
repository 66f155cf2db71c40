"""`kb tune`: adapt the embedding model to a knowledge base's own text.

No questions are needed: training pairs are drawn from the passages themselves
(`draw_pairs`), each a short "query" and the passage it belongs to:

* ``title``    a document's title ↔ one of its passages (without the title);
* ``heading``  a section or chapter heading (from the chunk label) ↔ its passage
  without the heading line;
* ``sentence`` one sentence ↔ the rest of its passage (the inverse cloze task:
  the sentence is taken out, so the model must match on meaning, not on copied words);
* ``thesaurus`` a sentence holding an official term, rewritten with the everyday
  word (`kb/data/thesaurus/*.tsv`, lay<TAB>official terms; `synonyms.txt`; a knowledge
  base's own `thesaurus.tsv`) ↔ its passage.

`tune_model` fine-tunes a sentence-transformers folder on them with
MultipleNegativesRankingLoss (the other passages of a batch are the negatives),
with the model's own prompts (e5: ``query: `` / ``passage: ``), on the CPU within
a step and minute budget. The scale is 100 (e5's training temperature 0.01), so
the cosines stay near the range the search's relevance floor was calibrated on
(`kb.search.calibration_for`); what moves is carried over by `recalibrate`. Only
the top four encoder layers learn: the word-embedding table (96 M of e5-small's 118 M weights; most of its words never
occur in a knowledge base) and the lower layers stay frozen, so a step costs a
forward pass and a short backward pass, and passages are cut to 128 tokens while
training. Part of the passages is held out: their
pairs are scored before and after (recall@1/@10 of each anchor's passage among
the held-out passages).

The result is a new model folder beside the original (never changed), with the
int8 ONNX copy `indexer.model_setup` builds for speed, and a `kb_model.json` that
says what made it and records the model's relevance levels (`recalibrate`: the base
model's floor and confident cosines carried over by the held-out cosines, which
training moves), which the search reads instead of the levels of the e5 family.
Measured effect on real questions: docs/search.md (`kb tune`).
"""
from __future__ import annotations

import json
import math
import os
import random
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from indexer.build import embedding_text
from indexer.chunking import ARTICLE_LABEL_RE, sentence_spans
from indexer.embedding import recorded_calibration
from indexer.errors import KBError, ModelNotAvailable

from .search import DenseCalibration, calibration_for

REPO_ROOT = Path(__file__).resolve().parent.parent
THESAURUS_DIR = Path(__file__).resolve().parent / "data" / "thesaurus"
SYNONYMS_FILE = REPO_ROOT / "indexer" / "resources" / "synonyms.txt"

PAIR_KINDS = ("title", "heading", "sentence", "thesaurus")
PER_TITLE = 2  # a long regulation should not fill the batches with its title
PER_TERM = 2  # passages per thesaurus entry
MIN_ANCHOR_CHARS = 4
MIN_SENTENCE_CHARS = 8
MIN_REST_CHARS = 10
HOLDOUT_SHARE = 0.1
HOLDOUT_MAX_PAIRS = 300
TRAIN_MAX_TOKENS = 128  # training cost grows with length; 128 tokens hold ~150 Chinese characters
TRAIN_LAYERS = 4  # the top encoder layers that learn; the embeddings and the layers below stay as they are
SCALE = 100.0  # e5's temperature 0.01: cosines stay where the relevance floor expects them
LEARNING_RATE = 2e-5
WARMUP_SHARE = 0.1

_HEADING_NUMBER_RE = re.compile(
    r"^\s*(第[一二三四五六七八九十百千零〇两\d]+[章节编]|[一二三四五六七八九十]+、|（[一二三四五六七八九十]+）|\d+[．.、])\s*")
_NOT_HEADING_RE = re.compile(r"^(第[一二三四五六七八九十百千零〇两\d]+条(之[一二三四五六七八九十]+)?|第[\d–-]+段)$")
_TERM_SPLIT_RE = re.compile(r"[\t,，、;；|]+|\s+")


class TuneError(KBError):
    """The knowledge base or the options do not allow a useful tuning run."""


@dataclass(frozen=True)
class Pair:
    """One training example: a short text and the passage it should find."""

    anchor: str
    positive: str
    kind: str
    chunk_id: int


@dataclass
class TuneReport:
    """What a tuning run did, stamped with what made it."""

    base_model: str
    out: str
    passages: int
    pairs: dict[str, int]  # kind → training pairs
    held_out: dict[str, int]  # kind → held-out pairs
    steps: int
    epochs: float
    batch_size: int
    minutes: dict[str, float]  # training, total
    minutes_per_10k_passages: float  # one epoch of training, scaled
    before: dict[str, float]
    after: dict[str, float]
    stopped_by: str  # "steps" / "epochs" / "minutes"
    onnx: bool
    calibration: dict[str, dict[str, float]] = field(default_factory=dict)  # "base" / "tuned" → floor, confident
    notes: list[str] = field(default_factory=list)

    @property
    def improved(self) -> bool:
        """Held-out retrieval went up (recall@1, then recall@10 on a tie)."""
        key = (self.after.get("recall@1", 0), self.after.get("recall@10", 0))
        return key > (self.before.get("recall@1", 0), self.before.get("recall@10", 0))

    def as_dict(self) -> dict:
        return {**asdict(self), "improved": self.improved}


# -- training pairs ---------------------------------------------------------------
def _chars(text: str) -> int:
    return len(re.sub(r"\s", "", text))


def _body(passage: str) -> str:
    """The passage without its leading 第X条, as the indexer embeds it."""
    label = ARTICLE_LABEL_RE.match(passage)
    return passage[label.end():] if label and label.end() < len(passage) else passage


def _without(text: str, part: str) -> str:
    """`text` with the first occurrence of `part` (and the punctuation right after it) taken out."""
    at = text.find(part)
    if at < 0:
        return text.strip()
    rest = text[at + len(part):].lstrip("。；;，,：: \u3000")
    return (text[:at] + rest).strip()


def headings_of(label: str) -> list[str]:
    """Headings a chunk label carries, numbering stripped: “第四章　补助扶持 第十六条” → [“补助扶持”];
    article numbers and paragraph ranges (“第1–6段”) are not headings."""
    found = []
    for part in re.split(r"\s(?=第[一二三四五六七八九十百千零〇两\d–-]+[条段])|\s{2,}", label or ""):
        part = part.strip().rstrip("…").strip()
        if not part or _NOT_HEADING_RE.match(part):
            continue
        part = _HEADING_NUMBER_RE.sub("", part).strip("：:。 \u3000")
        if _chars(part) >= MIN_ANCHOR_CHARS:
            found.append(part)
    return found


def read_thesaurus(paths: Iterable[Path]) -> list[tuple[str, str]]:
    """(everyday word, official term) pairs from thesaurus files: ``lay<TAB>official terms`` (.tsv) or
    ``lay official…`` (synonyms.txt); ``#`` starts a comment. Missing files are skipped."""
    pairs: dict[tuple[str, str], None] = {}  # ordered, without repeats
    for path in paths:
        try:
            lines = Path(path).read_text(encoding="utf-8-sig").splitlines()
        except OSError:
            continue
        for line in lines:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            lay, _, rest = line.partition("\t") if "\t" in line else line.partition(" ")
            lay = lay.strip()
            for official in _TERM_SPLIT_RE.split(rest):
                official = official.strip()
                # one inside the other (老年人 / 老年) would give broken rewrites
                if lay and official and lay not in official and official not in lay:
                    pairs[(lay, official)] = None
    return list(pairs)


def thesaurus_files(home: str | os.PathLike | None = None) -> list[Path]:
    """The shipped thesaurus, the lay-word list of the keyword side, and a knowledge base's own
    (`thesaurus.tsv`, `synonyms.txt` in its folder)."""
    files = sorted(THESAURUS_DIR.glob("*.tsv")) + [SYNONYMS_FILE]
    if home is not None:
        files += [Path(home) / "thesaurus.tsv", Path(home) / "synonyms.txt"]
    return files


def draw_pairs(passages: Iterable[Sequence], thesaurus: Sequence[tuple[str, str]] = (), seed: int = 0) -> list[Pair]:
    """Training pairs from passages given as (chunk_id, doc_id, title, label, passage) rows
    (`Store.iter_passages`). Positives are embedded as the index embeds (title, newline, text);
    the anchor's own words are taken out of its positive. No empty pair, no pair twice."""
    rng = random.Random(seed)
    rows = [(int(r[0]), str(r[1]), str(r[2] or "").strip(), str(r[3] or ""), str(r[4] or "")) for r in passages]
    pairs: list[Pair] = []
    by_title: dict[str, list[tuple[int, str]]] = {}
    for chunk_id, _doc_id, title, label, passage in rows:
        body = _body(passage).strip()
        if _chars(body) < MIN_REST_CHARS:
            continue
        if _chars(title) >= MIN_ANCHOR_CHARS:
            by_title.setdefault(title, []).append((chunk_id, body))
        for heading in headings_of(label)[-1:]:  # the most specific one
            rest = _without(body, heading)
            if heading != title and _chars(rest) >= MIN_REST_CHARS:
                pairs.append(Pair(heading, embedding_text(title, rest), "heading", chunk_id))
        sentences = [body[s:e].strip() for s, e in sentence_spans(body, 0, len(body))]
        sentences = [s for s in sentences if _chars(s) >= MIN_SENTENCE_CHARS]
        if sentences:
            sentence = rng.choice(sentences)
            rest = _without(body, sentence)
            if _chars(rest) >= MIN_REST_CHARS:
                pairs.append(Pair(sentence, embedding_text(title, rest), "sentence", chunk_id))
    for title, members in by_title.items():
        for chunk_id, body in rng.sample(members, min(PER_TITLE, len(members))):
            pairs.append(Pair(title, body, "title", chunk_id))
    pairs += _thesaurus_pairs(rows, thesaurus, rng)
    seen: set[tuple[str, str]] = set()
    unique = []
    for pair in pairs:
        key = (pair.anchor, pair.positive)
        if pair.anchor.strip() and pair.positive.strip() and pair.anchor != pair.positive and key not in seen:
            seen.add(key)
            unique.append(pair)
    return unique


def _thesaurus_pairs(rows, thesaurus, rng) -> list[Pair]:
    """A sentence with the official term, reworded with the everyday one ↔ its whole passage."""
    pairs = []
    for lay, official in thesaurus:
        holding = [r for r in rows if official in r[4]]
        for chunk_id, _doc_id, title, _label, passage in rng.sample(holding, min(PER_TERM, len(holding))):
            body = _body(passage)
            spans = sentence_spans(body, 0, len(body)) or [(0, len(body))]
            sentence = next((body[s:e].strip() for s, e in spans if official in body[s:e]), "")
            if _chars(sentence) >= MIN_SENTENCE_CHARS:
                pairs.append(Pair(sentence.replace(official, lay), embedding_text(title, body.strip()), "thesaurus",
                                  chunk_id))
    return pairs


def split_pairs(pairs: Sequence[Pair], share: float = HOLDOUT_SHARE, max_pairs: int = HOLDOUT_MAX_PAIRS,
                seed: int = 0) -> tuple[list[Pair], list[Pair]]:
    """(training, held-out): every pair of a held-out passage is held out, so no held-out passage is trained on."""
    chunks = sorted({p.chunk_id for p in pairs})
    random.Random(seed).shuffle(chunks)
    per_chunk: dict[int, int] = {}
    for p in pairs:
        per_chunk[p.chunk_id] = per_chunk.get(p.chunk_id, 0) + 1
    held: set[int] = set()
    budget = min(max_pairs, math.ceil(len(pairs) * share))
    count = 0
    for chunk_id in chunks:
        if count >= budget:
            break
        held.add(chunk_id)
        count += per_chunk[chunk_id]
    return [p for p in pairs if p.chunk_id not in held], [p for p in pairs if p.chunk_id in held]


def batches(pairs: Sequence[Pair], batch_size: int, rng: random.Random) -> list[list[Pair]]:
    """Shuffled batches in which no anchor, positive or passage appears twice: with in-batch
    negatives, a repeated title or passage would count as its own negative."""
    pending = list(pairs)
    rng.shuffle(pending)
    out: list[list[Pair]] = []
    while pending:
        batch, keys, later = [], set(), []
        for pair in pending:
            mine = {("a", pair.anchor), ("p", pair.positive), ("c", pair.chunk_id)}
            if len(batch) < batch_size and not keys & mine:
                batch.append(pair)
                keys |= mine
            else:
                later.append(pair)
        if len(batch) < 2:  # what is left cannot form a batch with a negative
            break
        out.append(batch)
        pending = later
    return out


# -- the model ------------------------------------------------------------------------
def _prompts(model) -> tuple[str, str]:
    prompts = dict(getattr(model, "prompts", {}) or {})
    return prompts.get("query", ""), prompts.get("passage", "")


def held_out_scores(model, pairs: Sequence[Pair], batch_size: int = 32) -> dict[str, float]:
    """Recall@1, recall@10 and MRR@10 of each anchor's passage among the held-out passages, with the
    mean cosine of the right passage and of the others (to see the cosine range move)."""
    if not pairs:
        return {}
    query_prompt, passage_prompt = _prompts(model)
    positives = sorted({p.positive for p in pairs})
    index = {text: n for n, text in enumerate(positives)}
    encode = dict(batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    q = np.asarray(model.encode([query_prompt + p.anchor for p in pairs], **encode), dtype=np.float32)
    d = np.asarray(model.encode([passage_prompt + t for t in positives], **encode), dtype=np.float32)
    sims = q @ d.T
    target = np.array([index[p.positive] for p in pairs])
    right = sims[np.arange(len(pairs)), target]
    rank = (sims > right[:, None]).sum(axis=1)  # 0 = first
    others = (sims.sum(axis=1) - right) / max(1, len(positives) - 1)
    return {"recall@1": round(float((rank < 1).mean()), 4), "recall@10": round(float((rank < 10).mean()), 4),
            "mrr@10": round(float(np.where(rank < 10, 1.0 / (rank + 1), 0.0).mean()), 4),
            "cos_right": round(float(right.mean()), 4), "cos_other": round(float(others.mean()), 4),
            "pairs": len(pairs), "passages": len(positives)}


MIN_SPREAD = 0.02  # held-out right − other cosine below this: no scale to carry the levels over


def recalibrate(base: DenseCalibration, before: dict, after: dict) -> DenseCalibration:
    """The base model's relevance levels carried over to the tuned model.

    Training moves every cosine (on stard-mini: right passages 0.927 → 0.903, other passages
    0.851 → 0.770), so e5's floor 0.80 / confident 0.88 would cut most answers of a tuned model.
    Each level keeps its place relative to the held-out cosines — the mean of the other
    passages and of the right one — under the affine map taking (other, right) before to
    (other, right) after. Without a usable spread on both sides the base levels stay."""
    try:
        o0, r0 = float(before["cos_other"]), float(before["cos_right"])
        o1, r1 = float(after["cos_other"]), float(after["cos_right"])
    except (KeyError, TypeError, ValueError):
        return base
    if not (r0 - o0 >= MIN_SPREAD and r1 - o1 >= MIN_SPREAD):
        return base
    scale = (r1 - o1) / (r0 - o0)
    floor, confident = (round(min(1.0, max(-1.0, o1 + (level - o0) * scale)), 4)
                        for level in (base.floor, base.confident))
    return DenseCalibration(floor, confident) if floor < confident else base


def _levels(calibration: DenseCalibration) -> dict[str, float]:
    return {"floor": round(calibration.floor, 4), "confident": round(calibration.confident, 4)}


def _load(base: Path):
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ModelNotAvailable("未安装 sentence-transformers，无法调整模型", hint="运行 make setup") from exc
    if not (base / "modules.json").is_file():
        raise ModelNotAvailable(f"{base} 不是 sentence-transformers 模型文件夹，无法调整",
                                hint="用 --model 或 KB_MODEL 指定本地模型文件夹（默认 models/multilingual-e5-small）")
    try:
        return SentenceTransformer(str(base), device="cpu", local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelNotAvailable(f"无法加载嵌入模型 {base}：{exc}",
                                hint="运行 python -m indexer.model_setup --force 重新生成") from exc


def _freeze_lower(model, keep: int) -> list:
    """Freeze the embeddings and all but the top `keep` encoder layers; the parameters frozen here.

    On two CPU cores a step through all twelve layers of e5-small takes minutes; with the
    lower layers frozen, autograd keeps no activations below the first trainable layer and
    the backward pass runs through `keep` layers only."""
    auto = getattr(model[0], "auto_model", None)
    if auto is None:
        return []
    layers = getattr(getattr(auto, "encoder", None), "layer", None)
    trainable = {id(p) for layer in list(layers)[-keep:] for p in layer.parameters()} if layers is not None else \
        {id(p) for p in auto.parameters()} - {id(p) for p in auto.get_input_embeddings().parameters()}
    frozen = [p for p in auto.parameters() if p.requires_grad and id(p) not in trainable]
    for p in frozen:
        p.requires_grad_(False)
    return frozen


def _plan(pairs: Sequence[Pair], batch_size: int, steps: int | None, epochs: float,
          rng: random.Random) -> list[list[Pair]]:
    """The batches to train on: `steps` of them, else `epochs` passes over the pairs (reshuffled each pass)."""
    plan: list[list[Pair]] = []
    target = steps
    while True:
        epoch = batches(pairs, batch_size, rng)
        if not epoch:
            return []
        if target is None:
            target = max(1, round(epochs * len(epoch)))
        plan += epoch
        if len(plan) >= target:
            return plan[:target]


def train(model, pairs: Sequence[Pair], *, batch_size: int, steps: int | None = None, epochs: float = 1.0,
          max_minutes: float | None = None, seed: int = 0,
          progress: Callable[[int, int, float], None] | None = None) -> tuple[int, str, float]:
    """Fine-tune `model` in place with in-batch negatives; (steps done, what stopped it, seconds)."""
    import torch
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from transformers import get_linear_schedule_with_warmup

    torch.manual_seed(seed)
    rng = random.Random(seed)
    query_prompt, passage_prompt = _prompts(model)
    plan = _plan(pairs, batch_size, steps, epochs, rng)
    total = len(plan)
    if not plan:
        raise TuneError("训练样本不足以组成一批", hint="知识库里至少要有几十个段落；或减小 --batch-size")

    frozen = _freeze_lower(model, TRAIN_LAYERS)
    loss_fn = MultipleNegativesRankingLoss(model, scale=SCALE)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=LEARNING_RATE, weight_decay=0.01)
    schedule = get_linear_schedule_with_warmup(optimizer, max(1, int(total * WARMUP_SHARE)), total)
    saved_length = model.max_seq_length
    model.max_seq_length = min(saved_length or TRAIN_MAX_TOKENS, TRAIN_MAX_TOKENS)
    deadline = None if max_minutes is None else time.monotonic() + max_minutes * 60
    started = time.monotonic()
    stopped_by, done = ("steps" if steps else "epochs"), 0
    model.train()
    try:
        for batch in plan:
            anchors = model.preprocess([query_prompt + p.anchor for p in batch])
            positives = model.preprocess([passage_prompt + p.positive for p in batch])
            loss = loss_fn([anchors, positives], None)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            done += 1
            if progress:
                progress(done, total, float(loss.detach()))
            # stop before a step that would overrun the budget, judged by the mean step so far
            per_step = (time.monotonic() - started) / done
            if deadline is not None and done < total and time.monotonic() + per_step > deadline:
                stopped_by = "minutes"
                break
    finally:
        model.eval()
        model.max_seq_length = saved_length
        for p in frozen:
            p.requires_grad_(True)
    return done, stopped_by, time.monotonic() - started


def default_out(base: Path) -> Path:
    """A new folder beside the base model: the default model's name plus ``-tuned-`` and the time.
    The name keeps ``e5`` in it, so the model's family stays readable (its relevance levels come
    from its `kb_model.json`)."""
    return base.parent / f"{base.name}-tuned-{time.strftime('%Y%m%d-%H%M%S')}"


def _save(model, base: Path, out: Path, report_fields: dict, onnx: bool,
          calibration: dict[str, float]) -> tuple[bool, list[str]]:
    """Write the folder beside `out` and rename it into place; (ONNX built, notes). `calibration`
    (the relevance levels for this model) goes into `kb_model.json`, where the search reads it."""
    from indexer.model_setup import FORMAT_VERSION, MANIFEST_NAME

    notes: list[str] = []
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        model.save(str(tmp), create_model_card=False)
        _update_json(tmp / "tokenizer_config.json", tokenizer_class="PreTrainedTokenizerFast")
        built = False
        if onnx:
            try:
                from indexer.model_setup import export_onnx_int8

                export_onnx_int8(tmp)
                built = True
            except Exception as exc:  # noqa: BLE001 - the torch backend still works; say why
                notes.append(f"未能生成 int8 ONNX 副本（{type(exc).__name__}: {exc}），检索时用 PyTorch 后端（较慢）")
        base_manifest = _read_json(base / MANIFEST_NAME)
        manifest = {
            "format_version": FORMAT_VERSION,
            "model": out.name,
            "base": {"path": str(base), "model": base_manifest.get("model", base.name),
                     "source": base_manifest.get("source")},
            "tuned": report_fields,
            "calibration": calibration,
            "prompts": dict(getattr(model, "prompts", {}) or {}),
            "max_seq_length": model.max_seq_length,
            "files": sorted(p.relative_to(tmp).as_posix() for p in tmp.rglob("*") if p.is_file()),
        }
        if built:
            from indexer.embedding import ONNX_INT8_PATH

            manifest["onnx_int8"] = ONNX_INT8_PATH
        (tmp / MANIFEST_NAME).write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return built, notes


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _update_json(path: Path, **updates) -> None:
    data = _read_json(path)
    if data:
        data.update(updates)
        path.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")


def tune(passages: Iterable[Sequence], base: str | os.PathLike, out: str | os.PathLike | None = None, *,
         thesaurus: Sequence[tuple[str, str]] = (), steps: int | None = None, epochs: float = 1.0,
         max_minutes: float | None = None, batch_size: int = 32, onnx: bool = True, seed: int = 0,
         log: Callable[[str], None] | None = None,
         progress: Callable[[int, int, float], None] | None = None) -> TuneReport:
    """Draw pairs from `passages` (`Store.iter_passages` rows), fine-tune the model folder `base`, and
    write the result to `out` (a new folder; `base` is never changed)."""
    started = time.monotonic()
    say = log or (lambda _msg: None)
    base = Path(base).expanduser().resolve()
    out = Path(out).expanduser().resolve() if out else default_out(base)
    if out.exists():
        raise TuneError(f"{out} 已经存在，没有改动它", hint="用 --out 指定一个新的文件夹")
    if batch_size < 2:
        raise TuneError("--batch-size 至少为 2（同一批的其他段落就是负例）", hint="常用 16–64")
    rows = list(passages)
    pairs = draw_pairs(rows, thesaurus, seed=seed)
    train_pairs, held = split_pairs(pairs, seed=seed)
    if len(train_pairs) < 2:
        raise TuneError(f"知识库里只有 {len(rows)} 个段落，抽不出足够的训练样本",
                        hint="先用 kb index 添加材料（至少几十个段落）再调整模型")
    say(f"从 {len(rows)} 个段落抽取训练样本 {len(train_pairs)} 对，留出 {len(held)} 对用于对比")
    model = _load(base)
    say("用原模型对留出样本检索……")
    before = held_out_scores(model, held)
    say("开始训练……")
    done, stopped_by, seconds = train(model, train_pairs, batch_size=batch_size, steps=steps, epochs=epochs,
                                      max_minutes=max_minutes, seed=seed, progress=progress)
    say("用调整后的模型对留出样本检索……")
    after = held_out_scores(model, held)
    base_levels = calibration_for(base.name, recorded_calibration(base))
    tuned_levels = recalibrate(base_levels, before, after)
    per_step = seconds / max(1, done)
    steps_per_epoch = max(1.0, len(train_pairs) / batch_size)
    per_10k = per_step * steps_per_epoch / 60 * 10_000 / max(1, len(rows))
    fields = {"pairs": _count(train_pairs), "held_out": _count(held), "steps": done,
              "epochs": round(done / steps_per_epoch, 2), "batch_size": batch_size, "scale": SCALE,
              "learning_rate": LEARNING_RATE, "trained_layers": TRAIN_LAYERS, "max_tokens": TRAIN_MAX_TOKENS,
              "before": before, "after": after, "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    say("保存模型并生成 int8 ONNX 副本……" if onnx else "保存模型……")
    built, notes = _save(model, base, out, fields, onnx, calibration=_levels(tuned_levels))
    return TuneReport(base_model=str(base), out=str(out), passages=len(rows), pairs=_count(train_pairs),
                      held_out=_count(held), steps=done, epochs=fields["epochs"], batch_size=batch_size,
                      minutes={"training": round(seconds / 60, 2),
                               "total": round((time.monotonic() - started) / 60, 2)},
                      minutes_per_10k_passages=round(per_10k, 1), before=before, after=after, stopped_by=stopped_by,
                      onnx=built, notes=notes,
                      calibration={"base": _levels(base_levels), "tuned": _levels(tuned_levels)})


def _count(pairs: Sequence[Pair]) -> dict[str, int]:
    return {kind: n for kind in PAIR_KINDS if (n := sum(p.kind == kind for p in pairs))}
