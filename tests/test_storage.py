"""The storage layer with real processes: damaged files, kills at every step, schema versions,
file modes, backups. Each test first reproduces a way the store used to lose or hide data."""
from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from kb.knowledge_base import KnowledgeBase
from kb.storage import SCHEMA_VERSION

from .conftest import REPO

QUERIES = ("助餐补贴", "茶产业", "多式联运")


def kb(home: Path, *args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """`kb ARGS --home HOME` in its own process, with the fake embedder."""
    full_env = {**os.environ, "KB_MODEL": "hashing:64"}
    full_env.pop("KB_FAILPOINT", None)  # only a test's own `env` sets one
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "kb.cli", *args, "--home", str(home)], capture_output=True,
                          text=True, env=full_env, cwd=REPO, timeout=timeout)


def results(home: Path) -> dict[str, list[tuple[str, str]]]:
    """What a reader sees: (doc_id, passage) of the top hits of each query, from a fresh process."""
    out = {}
    for query in QUERIES:
        done = kb(home, "search", query, "--json", "--top", "5")
        assert done.returncode == 0, done.stderr
        out[query] = [(h["doc_id"], h["text"]) for h in json.loads(done.stdout)]
    return out


def one_error_line(done: subprocess.CompletedProcess) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert len(lines) == 1 and lines[0].startswith("错误：") and "Traceback" not in done.stderr, done.stderr
    return lines[0]


def big_regulation(articles: int = 400) -> str:
    body = "\n".join(f"第{n}条 第{n}项助餐服务措施：社区食堂每餐补贴{n % 7 + 1}元，送餐上门由街道统筹安排。"
                     for n in range(1, articles + 1))
    return f"青溪市助餐服务实施细则（样例）\n发文机关：青溪市民政局\n{body}\n"


@pytest.fixture
def indexed(mini_corpus, kb_home) -> Path:
    done = kb(kb_home, "index", str(mini_corpus), "--quiet")
    assert done.returncode == 0, done.stderr
    return kb_home


# -- 2. a damaged database is reported, never papered over ------------------------------
@pytest.mark.parametrize("damage", ["empty", "header", "cut", "foreign", "missing"])
def test_damaged_database_is_reported_in_one_line_and_left_as_it_is(indexed, damage):
    db = indexed / "kb.sqlite"
    subprocess.run([sys.executable, "-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]);"
                    "c.execute('PRAGMA wal_checkpoint(TRUNCATE)'); c.close()", str(db)], check=True)
    size = db.stat().st_size
    if damage == "empty":
        os.truncate(db, 0)
    elif damage == "header":
        with db.open("r+b") as fh:
            fh.write(b"\x00" * 50)
    elif damage == "cut":
        os.truncate(db, size // 2)
    elif damage == "foreign":
        db.unlink()
        conn = sqlite3.connect(db)
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, amount REAL)")
        conn.commit()
        conn.close()
    else:
        db.unlink()
    before = db.read_bytes() if db.exists() else None
    for command in (["info"], ["note", "list"], ["topic", "list"], ["search", "助餐"]):
        line = one_error_line(kb(indexed, *command))
        assert "kb.sqlite" in line
    assert (db.read_bytes() if db.exists() else None) == before  # nothing created or rewritten in its place
    assert kb(indexed, "doctor").returncode == 2


def test_fresh_folder_is_not_a_knowledge_base_until_something_is_indexed(kb_home, mini_corpus):
    line = one_error_line(kb(kb_home, "info"))
    assert "还没有知识库" in line and not (kb_home / "kb.sqlite").exists()
    assert kb(kb_home, "index", str(mini_corpus), "--quiet").returncode == 0


@pytest.mark.parametrize("damage", ["manifest-garbage", "manifest-schema", "faiss-cut", "faiss-missing", "bm25-cut"])
def test_damaged_search_files_give_one_line_and_doctor_repairs_them_from_the_database(indexed, damage):
    expected = results(indexed)
    manifest_path = indexed / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    folder = indexed / manifest["index_dir"]
    if damage == "manifest-garbage":
        manifest_path.write_text('{"schema_version": 1, "generat', encoding="utf-8")
    elif damage == "manifest-schema":
        manifest_path.write_text(json.dumps({**manifest, "schema_version": 99}), encoding="utf-8")
    elif damage == "faiss-cut":
        os.truncate(folder / "vectors.faiss", (folder / "vectors.faiss").stat().st_size // 2)
    elif damage == "faiss-missing":
        (folder / "vectors.faiss").unlink()
    else:
        victim = max((p for p in (folder / "bm25").iterdir() if p.is_file()), key=lambda p: p.stat().st_size)
        os.truncate(victim, victim.stat().st_size // 2)
    damaged = manifest_path.read_bytes()
    line = one_error_line(kb(indexed, "search", "助餐"))
    assert "manifest.json" in line or manifest["index_dir"] in line
    if damage.startswith("manifest"):
        one_error_line(kb(indexed, "info"))
        one_error_line(kb(indexed, "index", str(indexed.parent / "corpus"), "--quiet"))
        assert manifest_path.read_bytes() == damaged  # `kb index` refused; it did not rewrite it
    assert kb(indexed, "doctor").returncode == 2
    repaired = kb(indexed, "doctor", "--repair")
    assert repaired.returncode == 0, repaired.stderr
    assert kb(indexed, "doctor").returncode == 0
    assert results(indexed) == expected


def test_newer_database_schema_is_refused_and_older_one_migrated_with_a_backup(indexed):
    db = indexed / "kb.sqlite"
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    line = one_error_line(kb(indexed, "info"))
    assert f"格式版本 {SCHEMA_VERSION + 1}" in line and "升级" in line
    one_error_line(kb(indexed, "index", str(indexed.parent / "corpus"), "--quiet"))
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1  # untouched
    conn.execute("PRAGMA user_version=1")  # as written by the version before this one
    conn.commit()
    conn.close()
    assert kb(indexed, "info").returncode == 0
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()
    backups = list(indexed.glob("kb.sqlite.before-v*"))
    assert len(backups) == 1 and sqlite3.connect(backups[0]).execute("PRAGMA user_version").fetchone()[0] == 1


def test_files_the_knowledge_base_writes_are_private(indexed, tmp_path):
    assert stat.S_IMODE(indexed.stat().st_mode) == 0o700
    for path in indexed.rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), f"{path} is {oct(mode)}"
    done = kb(indexed, "backup", str(tmp_path / "bk"))
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE((tmp_path / "bk" / "kb.sqlite").stat().st_mode) == 0o600


# -- 3 and 4. kill -9 at every step of a run and of a rebuild ----------------------------
def _change_corpus(corpus: Path) -> None:
    (corpus / "助餐办法.txt").write_bytes((corpus / "助餐办法.txt").read_bytes().replace(
        "每餐补贴三元".encode("gb18030"), "每餐补贴四元".encode("gb18030")))
    (corpus / "南塘港案例.txt").unlink()
    (corpus / "助餐细则.txt").write_text(big_regulation(), encoding="utf-8")


@pytest.mark.parametrize("rebuild", [False, True], ids=["run", "rebuild"])
@pytest.mark.parametrize("point", ["batch-stored", "documents-stored", "generation-written"])
def test_killed_at_any_step_readers_keep_the_previous_state_and_the_next_run_completes(
        indexed, mini_corpus, point, rebuild):
    before = results(indexed)
    if not rebuild:
        _change_corpus(mini_corpus)
    args = ["index", str(mini_corpus), "--quiet"] + (["--rebuild"] if rebuild else [])
    killed = kb(indexed, *args, env={"KB_FAILPOINT": point})
    assert killed.returncode == -9 and f"failpoint {point}" in killed.stderr
    assert results(indexed) == before  # search, from a new process, sees the previous generation
    doc_id = before["助餐补贴"][0][0]
    assert kb(indexed, "show", doc_id).returncode == 0
    assert kb(indexed, "note", "add", doc_id, "--quote", "老年助餐", "--stance", "支持", "--text", "赞同",
              "--user", "林专家", "--role", "expert").returncode == 0
    finished = kb(indexed, *args)
    assert finished.returncode == 0, finished.stderr
    assert kb(indexed, "doctor").returncode == 0
    fresh = indexed.parent / "fresh"
    assert kb(fresh, "index", str(mini_corpus), "--quiet").returncode == 0
    assert results(indexed) == results(fresh)


def test_killed_right_after_publishing_every_published_chunk_has_its_row(indexed, mini_corpus):
    _change_corpus(mini_corpus)
    killed = kb(indexed, "index", str(mini_corpus), "--quiet", env={"KB_FAILPOINT": "manifest-published"})
    assert killed.returncode == -9
    assert kb(indexed, "doctor").returncode == 0  # the new generation points only at rows that exist
    passages = [text for _, text in results(indexed)["助餐补贴"]]
    assert any("四元" in text for text in passages) and not any("三元" in text for text in passages)
    assert kb(indexed, "index", str(mini_corpus), "--quiet").returncode == 0
    fresh = indexed.parent / "fresh"
    assert kb(fresh, "index", str(mini_corpus), "--quiet").returncode == 0
    assert results(indexed) == results(fresh)


def test_notes_written_during_a_rebuild_are_all_kept(indexed, mini_corpus):
    (mini_corpus / "助餐细则.txt").write_text(big_regulation(1500), encoding="utf-8")
    assert kb(indexed, "index", str(mini_corpus), "--quiet").returncode == 0
    doc_id = json.loads(kb(indexed, "search", "助餐补贴", "--json").stdout)[0]["doc_id"]
    env = {**os.environ, "KB_MODEL": "hashing:64"}
    rebuild = subprocess.Popen([sys.executable, "-m", "kb.cli", "index", str(mini_corpus), "--rebuild", "--quiet",
                                "--home", str(indexed)], env=env, cwd=REPO, stderr=subprocess.PIPE, text=True)
    script = ("import subprocess, sys\n"
              "fails = 0\n"
              "for n in range(25):\n"
              "    done = subprocess.run([sys.executable, '-m', 'kb.cli', 'note', 'add', sys.argv[1], '--quote', '老年助餐',"
              " '--stance', '补充', '--text', f'{sys.argv[3]}的第{n}条意见', '--user', sys.argv[3], '--role', 'expert',"
              " '--home', sys.argv[2]], capture_output=True, text=True)\n"
              "    fails += done.returncode != 0\n"
              "    if done.returncode: print(done.stderr, file=sys.stderr)\n"
              "sys.exit(fails)\n")
    writers = [subprocess.Popen([sys.executable, "-c", script, doc_id, str(indexed), f"专家{w}"], env=env, cwd=REPO,
                                stderr=subprocess.PIPE, text=True) for w in range(4)]
    outcomes = [(w.wait(timeout=600), w.stderr.read()) for w in writers]
    assert rebuild.wait(timeout=600) == 0, rebuild.stderr.read()
    assert all(code == 0 for code, _ in outcomes), outcomes
    notes = json.loads(kb(indexed, "note", "list", "--json").stdout)
    assert len([n for n in notes if n["author"].startswith("专家")]) == 100
    assert all(n["status"] != "orphaned" for n in notes)


# -- 5. one big file streams ---------------------------------------------------------------
def test_big_single_file_is_stored_in_batches_and_resumed_after_a_kill(kb_home, tmp_path):
    folder = tmp_path / "big"
    folder.mkdir()
    (folder / "细则.txt").write_text(big_regulation(900), encoding="utf-8")
    killed = kb(kb_home, "index", str(folder), "--quiet", env={"KB_FAILPOINT": "batch-stored"})
    assert killed.returncode == -9
    base = KnowledgeBase(kb_home)
    stored = base.store.counts()["chunks"]
    assert 0 < stored < 900 and base.store.unfinished_documents()
    base.close()
    done = kb(kb_home, "index", str(folder), "--json", "--quiet")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    total = KnowledgeBase(kb_home).store.counts()["chunks"]
    assert report["chunks_embedded"] == total - stored  # the batch kept before the kill is not redone
    assert kb(kb_home, "doctor").returncode == 0


def test_progress_moves_within_a_big_file(kb_home, tmp_path, embedder):
    folder = tmp_path / "big"
    folder.mkdir()
    (folder / "细则.txt").write_text(big_regulation(900), encoding="utf-8")
    seen = []
    KnowledgeBase(kb_home, embedder=embedder).index([folder], progress=lambda n, total, name: seen.append(n))
    within = [n for n in seen if 0 < n < 1]
    assert len(within) >= 2 and within == sorted(within)


# -- backup and restore ------------------------------------------------------------------
def test_backup_while_notes_are_written_then_restore_searches_identically(indexed, tmp_path):
    doc_id = json.loads(kb(indexed, "search", "助餐补贴", "--json").stdout)[0]["doc_id"]
    env = {**os.environ, "KB_MODEL": "hashing:64"}
    writer = subprocess.Popen(
        [sys.executable, "-c", "import subprocess, sys\nfor n in range(15):\n    subprocess.run([sys.executable, '-m',"
         " 'kb.cli', 'note', 'add', sys.argv[1], '--quote', '老年助餐', '--stance', '支持', '--text', f'意见{n}',"
         " '--user', '林专家', '--role', 'expert', '--home', sys.argv[2]], check=True, capture_output=True)",
         doc_id, str(indexed)], env=env, cwd=REPO)
    done = kb(indexed, "backup", str(tmp_path / "bk"))
    assert writer.wait(timeout=300) == 0
    assert done.returncode == 0, done.stderr
    one_error_line(kb(indexed, "backup", str(tmp_path / "bk")))  # never over an existing backup
    restored = tmp_path / "restored"
    assert kb(restored, "restore", str(tmp_path / "bk")).returncode == 0, "restore into a new folder"
    assert results(restored) == results(indexed)
    assert kb(restored, "doctor").returncode == 0
    one_error_line(kb(indexed, "restore", str(tmp_path / "bk")))  # an existing knowledge base needs --force
    forced = kb(indexed, "restore", str(tmp_path / "bk"), "--force")
    assert forced.returncode == 0, forced.stderr
    assert list(indexed.glob(".before-restore-*/kb.sqlite"))  # the replaced one was moved aside, not deleted


# -- small defects found on the way ----------------------------------------------------------
def test_broken_pipe_prints_no_traceback(kb_home, tmp_path):
    folder = tmp_path / "big"
    folder.mkdir()
    (folder / "细则.txt").write_text(big_regulation(3000), encoding="utf-8")  # far more than a pipe buffer
    assert kb(kb_home, "index", str(folder), "--quiet").returncode == 0
    doc_id = kb(kb_home, "documents").stdout.split()[0]
    done = subprocess.run(f"{sys.executable} -m kb.cli show {doc_id} --home {kb_home} | head -1", shell=True,
                          capture_output=True, text=True, env={**os.environ, "KB_MODEL": "hashing:64"}, cwd=REPO)
    assert done.stdout.startswith("青溪市助餐服务实施细则") and done.stdout.count("\n") == 1
    assert done.stderr == ""


def test_nul_byte_past_the_first_4kb_is_refused(kb_home, tmp_path):
    folder = tmp_path / "nul"
    folder.mkdir()
    (folder / "坏文件.txt").write_bytes(("第一条 正文。\n" * 800).encode("utf-8") + b"\x00\x01" + "尾部".encode("utf-8"))
    done = kb(kb_home, "index", str(folder), "--quiet")
    assert done.returncode == 1 and "空字符" in done.stderr


def test_info_after_a_crash_before_the_first_publish_says_what_to_do(kb_home, mini_corpus):
    kb(kb_home, "index", str(mini_corpus), "--quiet", env={"KB_FAILPOINT": "documents-stored"})
    done = kb(kb_home, "info")
    assert done.returncode == 0 and "None" not in done.stdout and "尚未发布" in done.stdout


def test_a_big_file_is_embedded_and_committed_in_bounded_batches(kb_home, tmp_path, embedder, monkeypatch):
    from kb.storage import Store

    folder = tmp_path / "big"
    folder.mkdir()
    (folder / "单行.txt").write_text("青溪市单行大文件（样例）" + "社区食堂每餐补贴三元，送餐上门由街道统筹安排。" * 4000,
                                    encoding="utf-8")
    committed = []
    original = Store.store_pieces
    monkeypatch.setattr(Store, "store_pieces",
                        lambda self, pieces: (committed.append(sum(p.hi - p.lo for p in pieces)), original(self, pieces)))
    base = KnowledgeBase(kb_home, embedder=embedder)
    report = index_paths_with_batch(base, folder, 64)
    assert report.chunks_embedded == sum(committed) == base.store.counts()["chunks"] > 2 * 64
    assert max(committed) <= 64 and len(committed) >= report.chunks_embedded // 64


def index_paths_with_batch(base: KnowledgeBase, folder: Path, batch: int):
    from indexer.build import index_paths

    return index_paths(base.store, base.embedder, [folder], tokenizer=base.tokenizer, batch_chunks=batch)


def test_processes_opening_a_new_knowledge_base_at_once_all_succeed(kb_home):
    code = "import sys; from kb.storage import Database; Database(sys.argv[1]).close()"
    procs = [subprocess.Popen([sys.executable, "-c", code, str(kb_home)], cwd=REPO, stderr=subprocess.PIPE, text=True)
             for _ in range(8)]
    assert [(p.wait(timeout=120), p.stderr.read()) for p in procs] == [(0, "")] * 8
    conn = sqlite3.connect(kb_home / "kb.sqlite")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_restore_leaves_the_backup_unchanged_and_refuses_a_damaged_one(indexed, tmp_path):
    backup_dir = tmp_path / "bk"
    assert kb(indexed, "backup", str(backup_dir)).returncode == 0
    conn = sqlite3.connect(backup_dir / "kb.sqlite")
    conn.execute("PRAGMA user_version=1")  # a backup written by the version before
    conn.commit()
    conn.close()
    before = {p.name: p.read_bytes() for p in backup_dir.rglob("*") if p.is_file()}
    assert kb(tmp_path / "restored", "restore", str(backup_dir)).returncode == 0
    assert {p.name: p.read_bytes() for p in backup_dir.rglob("*") if p.is_file()} == before
    assert results(tmp_path / "restored") == results(indexed)  # the restored copy was migrated, not the backup
    with (backup_dir / "kb.sqlite").open("r+b") as fh:
        fh.write(b"garbage" * 10)
    line = one_error_line(kb(tmp_path / "again", "restore", str(backup_dir)))
    assert "不能使用" in line and not (tmp_path / "again" / "kb.sqlite").exists()
