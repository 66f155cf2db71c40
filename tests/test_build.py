"""The indexing pipeline: incremental runs, bad files, crashes, locks and model changes."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from indexer.build import index_paths
from indexer.embedding import HashingEmbedder
from indexer.errors import IndexLocked, IndexMismatch
from indexer.keywords import Tokenizer
from kb.storage import Store
from kb.knowledge_base import KnowledgeBase

from .conftest import REPO


@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer()


def chunk_count(store):
    return store.conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]


def test_first_run_indexes_everything_second_run_embeds_nothing(mini_corpus, kb_home, embedder, tokenizer):
    store = Store(kb_home)
    first = index_paths(store, embedder, [mini_corpus], tokenizer=tokenizer)
    assert first.added == 3 and first.chunks_embedded > 3 and not first.skipped
    second = index_paths(store, embedder, [mini_corpus], tokenizer=tokenizer)
    assert (second.added, second.updated, second.unchanged, second.chunks_embedded) == (0, 0, 3, 0)
    manifest = json.loads((kb_home / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["model"] == "hashing:64" and manifest["dimension"] == 64
    assert manifest["counts"] == {"documents": 3, "chunks": chunk_count(store)}
    assert len(manifest["content_hashes"]) == 3


def test_changed_file_is_reembedded_and_deleted_file_removed(mini_corpus, kb_home, embedder, tokenizer):
    store = Store(kb_home)
    index_paths(store, embedder, [mini_corpus], tokenizer=tokenizer)
    case = mini_corpus / "南塘港案例.txt"
    case.write_text(case.read_text(encoding="utf-8") + "四、启示\n枢纽建设要久久为功。\n", encoding="utf-8")
    (mini_corpus / "茶产业讲话.md").unlink()
    report = index_paths(store, embedder, [mini_corpus], tokenizer=tokenizer)
    assert (report.updated, report.unchanged, report.removed) == (1, 1, 1)
    titles = {r[0] for r in store.conn.execute("SELECT title FROM documents")}
    assert titles == {"青溪市社区助餐服务办法", "南塘港公铁水联运模式"}
    assert store.read_manifest()["counts"]["chunks"] == chunk_count(store)


def test_sidecar_change_counts_as_a_change(mini_corpus, kb_home, embedder, tokenizer):
    store = Store(kb_home)
    index_paths(store, embedder, [mini_corpus], tokenizer=tokenizer)
    (mini_corpus / "南塘港案例.meta.yaml").write_text("region: 南塘县\n", encoding="utf-8")
    report = index_paths(store, embedder, [mini_corpus], tokenizer=tokenizer)
    assert report.updated == 1
    assert store.conn.execute("SELECT region FROM documents WHERE title LIKE '南塘港%'").fetchone()[0] == "南塘县"


def test_bad_files_are_skipped_with_reasons_and_the_rest_indexed(mini_corpus, kb_home, embedder, tokenizer):
    (mini_corpus / "empty.txt").write_bytes(b"")
    (mini_corpus / "junk.txt").write_bytes(os.urandom(3000) + b"\x00")
    (mini_corpus / "broken.docx").write_bytes(b"not a zip at all")
    (mini_corpus / "truncated.pdf").write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog")
    (mini_corpus / "sheet.xlsx").write_bytes(b"PK")
    report = index_paths(Store(kb_home), embedder, [mini_corpus], tokenizer=tokenizer)
    assert report.added == 3
    reasons = {os.path.basename(p): r for p, r in report.skipped}
    assert set(reasons) == {"empty.txt", "junk.txt", "broken.docx", "truncated.pdf", "sheet.xlsx"}
    assert "为空" in reasons["empty.txt"] and "二进制" in reasons["junk.txt"]
    assert "不支持" in reasons["sheet.xlsx"] and "PDF" in reasons["truncated.pdf"]


def test_folder_without_documents_is_reported(tmp_path, kb_home, embedder, tokenizer):
    empty = tmp_path / "nothing"
    empty.mkdir()
    report = index_paths(Store(kb_home), embedder, [empty], tokenizer=tokenizer)
    assert report.skipped and "没有可索引的文档" in report.skipped[0][1]


class ExplodingEmbedder(HashingEmbedder):
    """Fails on the n-th batch, like a process dying half-way through."""

    def __init__(self, fail_on_call):
        super().__init__(64)
        self.calls = 0
        self.fail_on_call = fail_on_call

    def embed_passages(self, texts, batch_size=32, show_progress=False):
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise RuntimeError("simulated crash")
        return super().embed_passages(texts)


def test_crash_half_way_keeps_previous_index_and_next_run_completes(mini_corpus, kb_home, tokenizer, monkeypatch):
    store = Store(kb_home)
    index_paths(store, HashingEmbedder(64), [mini_corpus], tokenizer=tokenizer)
    before = store.read_manifest()
    for n in range(3):
        (mini_corpus / f"新增{n}.txt").write_text(f"新增文件{n}\n第一条 多式联运第{n}项措施。\n第二条 冷链物流。", encoding="utf-8")
    monkeypatch.setattr("indexer.build.EMBED_BATCH_CHUNKS", 1)  # one commit per chunk
    with pytest.raises(RuntimeError):
        index_paths(store, ExplodingEmbedder(fail_on_call=2), [mini_corpus], tokenizer=tokenizer)
    assert store.read_manifest() == before  # the published index is untouched and loadable
    KnowledgeBase(kb_home, embedder=HashingEmbedder(64)).search("助餐补贴")
    report = index_paths(store, HashingEmbedder(64), [mini_corpus], tokenizer=tokenizer)
    new_chunks = store.conn.execute("SELECT COUNT(*) FROM chunks JOIN documents USING(doc_id) "
                                    "WHERE title LIKE '新增文件%'").fetchone()[0]
    assert report.added == 3 and report.unchanged == 3
    assert report.chunks_embedded == new_chunks - 1  # the chunk committed before the crash is not redone
    dupes = store.conn.execute(
        "SELECT doc_id, ordinal, COUNT(*) FROM chunks GROUP BY doc_id, ordinal HAVING COUNT(*) > 1").fetchall()
    assert dupes == []
    assert store.read_manifest()["counts"]["documents"] == 6


KILL_SCRIPT = """
import sys, time
from indexer.embedding import HashingEmbedder
from kb.knowledge_base import KnowledgeBase
class Slow(HashingEmbedder):
    def embed_passages(self, texts, batch_size=32, show_progress=False):
        print("embedding", flush=True)
        time.sleep(0.3)
        return super().embed_passages(texts)
import indexer.build as b
b.EMBED_BATCH_CHUNKS = 1
KnowledgeBase(sys.argv[1], embedder=Slow(64)).index([sys.argv[2]])
"""


def test_process_killed_mid_index_leaves_a_loadable_index(mini_corpus, kb_home, tmp_path):
    kb = KnowledgeBase(kb_home, embedder=HashingEmbedder(64))
    kb.index([mini_corpus])
    for n in range(12):
        (mini_corpus / f"批量{n}.txt").write_text(f"批量文件{n}\n长三角物流枢纽建设第{n}项任务。", encoding="utf-8")
    script = tmp_path / "slow_index.py"
    script.write_text(KILL_SCRIPT, encoding="utf-8")
    proc = subprocess.Popen([sys.executable, str(script), str(kb_home), str(mini_corpus)], cwd=REPO,
                            stdout=subprocess.PIPE, text=True)
    for _ in range(3):
        assert proc.stdout.readline().strip() == "embedding"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    survivor = KnowledgeBase(kb_home, embedder=HashingEmbedder(64))
    assert survivor.search("社区助餐补贴", top_k=3)  # the previous generation still answers
    report = survivor.index([mini_corpus])
    assert report.added + report.unchanged == 15 and report.added < 12
    assert survivor.store.read_manifest()["counts"]["documents"] == 15
    dupes = survivor.store.conn.execute(
        "SELECT doc_id, ordinal FROM chunks GROUP BY doc_id, ordinal HAVING COUNT(*) > 1").fetchall()
    assert dupes == []


def test_second_writer_is_refused_while_the_first_holds_the_lock(kb_home, mini_corpus, embedder, tokenizer):
    store = Store(kb_home)
    with store.write_lock():
        other = Store(kb_home)
        started = time.monotonic()
        with pytest.raises(IndexLocked) as info:
            index_paths(other, embedder, [mini_corpus], tokenizer=tokenizer, lock_wait=0.5)
        assert time.monotonic() - started >= 0.5
        assert "另一个进程" in info.value.user_message()
    assert index_paths(Store(kb_home), embedder, [mini_corpus], tokenizer=tokenizer).added == 3


def test_index_built_with_one_model_refuses_another(mini_corpus, kb_home, tokenizer):
    index_paths(Store(kb_home), HashingEmbedder(64), [mini_corpus], tokenizer=tokenizer)
    with pytest.raises(IndexMismatch) as info:
        index_paths(Store(kb_home), HashingEmbedder(32), [mini_corpus], tokenizer=tokenizer)
    assert "hashing:64" in str(info.value) and "--rebuild" in info.value.hint
    with pytest.raises(IndexMismatch):
        KnowledgeBase(kb_home, embedder=HashingEmbedder(32)).search("助餐")
    report = index_paths(Store(kb_home), HashingEmbedder(32), [mini_corpus], tokenizer=tokenizer, rebuild=True)
    assert report.added == 3
    assert KnowledgeBase(kb_home, embedder=HashingEmbedder(32)).search("助餐")


def test_every_chunk_gets_its_sentence_vectors(mini_corpus, kb_home, embedder, tokenizer):
    store = Store(kb_home)
    index_paths(store, embedder, [mini_corpus], tokenizer=tokenizer)
    assert store.count_without_sentences() == 0
    rows = store.conn.execute(
        "SELECT c.chunk_id, c.start, c.end, c.sentences, d.text FROM chunks c JOIN documents d USING(doc_id)").fetchall()
    multi = [r for r in rows if json.loads(r["sentences"])]
    assert multi and len(multi) < len(rows)  # one-sentence chunks store no extra vectors
    found = store.sentence_vectors([r["chunk_id"] for r in multi], embedder.dim)
    for r in multi:
        spans, vectors = found[r["chunk_id"]]
        assert len(spans) >= 2 and vectors.shape == (len(spans), embedder.dim)
        assert all(r["start"] <= s < e <= r["end"] for s, e in spans)
        title = store.conn.execute("SELECT title FROM chunks JOIN documents USING(doc_id) WHERE chunk_id=?",
                                   (r["chunk_id"],)).fetchone()[0]
        s, e = spans[0]
        expected = embedder.embed_passages([f"{title}\n{r['text'][s:e]}"])[0]
        assert float(vectors[0] @ expected) > 0.99  # 4-bit storage keeps the cosine (docs/search.md)


def _drop_sentence_columns(db_path):
    """Turn a knowledge base into one made before sentence vectors (and schema versions) existed."""
    import sqlite3
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA user_version=0")
    conn.execute("PRAGMA application_id=0")
    conn.execute("ALTER TABLE chunks DROP COLUMN sentences")
    conn.execute("ALTER TABLE chunks DROP COLUMN sentence_vectors")
    conn.commit()
    conn.close()


def test_knowledge_base_from_before_sentence_vectors_is_upgraded_in_place(mini_corpus, kb_home, embedder, tokenizer):
    store = Store(kb_home)
    index_paths(store, embedder, [mini_corpus], tokenizer=tokenizer)
    chunks = chunk_count(store)
    at_index = store.conn.execute("SELECT chunk_id, sentences, sentence_vectors FROM chunks").fetchall()
    store.close()
    _drop_sentence_columns(kb_home / "kb.sqlite")
    store = Store(kb_home)  # adds the columns back, empty
    assert store.count_without_sentences() == chunks
    KnowledgeBase(kb_home, embedder=embedder).search("助餐补贴")  # searching still works meanwhile
    report = index_paths(store, embedder, [mini_corpus], tokenizer=tokenizer)
    assert report.chunks_embedded == 0 and report.sentences_filled == chunks  # no file re-embedded
    assert store.count_without_sentences() == 0
    filled = store.conn.execute("SELECT chunk_id, sentences, sentence_vectors FROM chunks").fetchall()
    assert [tuple(r) for r in filled] == [tuple(r) for r in at_index]  # the same spans and vectors as at indexing


def test_interrupted_sentence_fill_resumes(mini_corpus, kb_home, tokenizer, monkeypatch):
    store = Store(kb_home)
    index_paths(store, HashingEmbedder(64), [mini_corpus], tokenizer=tokenizer)
    store.conn.execute("UPDATE chunks SET sentences=NULL, sentence_vectors=NULL")
    monkeypatch.setattr("indexer.build.EMBED_BATCH_CHUNKS", 2)
    with pytest.raises(RuntimeError):
        index_paths(store, ExplodingEmbedder(fail_on_call=3), [mini_corpus], tokenizer=tokenizer)
    left = store.count_without_sentences()
    assert 0 < left <= chunk_count(store) - 4  # two batches of two were committed before the crash
    report = index_paths(store, HashingEmbedder(64), [mini_corpus], tokenizer=tokenizer)
    assert report.sentences_filled == left and store.count_without_sentences() == 0
