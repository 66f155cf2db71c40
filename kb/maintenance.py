"""Keeping a knowledge base sound: `kb doctor` (check, and rebuild the search files from the
database), `catch_up` (a service replica building the generation another one published),
`kb backup`, `kb restore`, and `kb migrate` (moving a one-person SQLite knowledge base into
PostgreSQL).

The database is the source of truth; the search files are derived from it. So a damaged
search file is repaired from the database, while a damaged database is restored from
a backup — never replaced by an empty one.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from indexer.errors import IndexDamaged, IndexMismatch, IndexNotFound, KBError
from indexer.keywords import KeywordIndex, Tokenizer
from indexer.store import MANIFEST, IndexFiles, make_private

from .errors import BackupError, StorageError
from .roles import User
from .storage import DB_FILE, SCHEMA_VERSION, Database, PostgresDatabase, Store, check_backup_file
from .storage import audit as audit_rows

BACKUP_INFO = "backup.json"
PG_DUMP_FILE = "kb.pgdump"  # the database of a PostgreSQL knowledge base, as pg_dump wrote it
_KEPT_FILES = ("settings.toml", "userdict.txt", "thesaurus.tsv")


@dataclass
class Checkup:
    """What `kb doctor` found: problems (each one line, with what to do) and plain facts."""

    problems: list[str] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    repairable: bool = False  # the database is sound and the search files can be rebuilt from it

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict:
        return {"ok": self.ok, "problems": self.problems, "facts": self.facts, "repaired": self.repaired}


def check(home: str | os.PathLike, *, repair: bool = False, user: User | None = None) -> Checkup:
    """Check the database and the published search files of `home`; with `repair`, rebuild the
    search files from the database when they are damaged, missing or behind it."""
    home = Path(home)
    report = Checkup()
    try:
        db = Database(home, create=False)
    except StorageError as exc:
        report.problems.append(exc.user_message())
        return report
    try:
        store = Store(home, db=db)
        _check_database(db, store, report)
        if report.problems:
            return report
        report.repairable = True
        stale = _check_files(store, report)
        if repair and (stale or report.problems):
            _repair(store, user, report)
    finally:
        db.close()
    return report


def _check_database(db: Database, store: Store, report: Checkup) -> None:
    problems = db.integrity_problems()
    if problems:
        report.problems.append(f"{db.path} 内部损坏：{problems[0]}（用 kb restore 从备份恢复）")
        return
    counts = store.counts()
    report.facts.append(f"数据库 {db.path}：格式版本 {SCHEMA_VERSION}，文档 {counts['documents']} 篇，段落 {counts['chunks']} 个")
    older = store.chunks_in_older_form()
    if older:
        report.facts.append(f"{older} 个段落仍按旧格式存储（照常可用；kb index --rebuild 重写为紧凑格式，约省三分之二空间）")
    coarse = store.chunks_with_coarse_sentences()
    if coarse:
        report.facts.append(f"{coarse} 个段落的句向量是较粗的早期紧凑格式（照常可用；kb index --rebuild 重写后"
                            "“最贴切的一句”排序更准）")
    for problem in audit_rows.chain_problems(db.conn):  # an edited or deleted audit row
        report.problems.append(f"{problem}（操作记录只能追加；从备份核对，kb restore 可恢复）")
    if store.rebuild_pending():
        report.problems.append("有一次 kb index --rebuild 没有完成（再运行一次 kb index --rebuild 完成它）")
    unfinished = store.unfinished_documents()
    if unfinished:
        report.problems.append(f"{len(unfinished)} 篇文档的索引中途停止（{unfinished[0]} 等；再运行 kb index 会接着处理）")


def _check_files(store: Store, report: Checkup) -> bool:
    """Problems with the search files; True when they should be rebuilt from the database."""
    import faiss

    try:
        manifest, index, _ = store.load_published()
    except IndexNotFound:
        if store.counts()["chunks"]:
            report.problems.append("数据库里有文档，但还没有发布检索文件（kb doctor --repair 从数据库生成）")
            return True
        report.facts.append("知识库还是空的")
        return False
    except (IndexDamaged, IndexMismatch) as exc:
        report.problems.append(exc.user_message())
        return True
    problems = store.files.verify()
    report.problems += [f"{p}（kb doctor --repair 从数据库重建检索文件）" for p in problems]
    ids = faiss.vector_to_array(index.id_map).tolist() if index.ntotal else []
    if len(ids) != manifest["counts"]["chunks"]:
        report.problems.append(f"向量索引有 {len(ids)} 个段落，清单记录 {manifest['counts']['chunks']} 个（kb doctor --repair）")
    missing = store.published_chunk_ids_missing(ids)
    if missing:
        report.problems.append(f"已发布的检索文件有 {len(missing)} 个段落在数据库里找不到（kb doctor --repair）")
    live = store.publishable_chunk_count()
    behind = live != len(ids) or bool(missing)
    if behind and not missing:
        report.facts.append(f"数据库里有 {live} 个可发布的段落，检索文件里 {len(ids)} 个：有尚未发布的改动")
    report.facts.append(f"检索文件：第 {manifest['generation']} 代，{len(ids)} 个段落，模型 {manifest.get('model')}")
    return bool(problems) or behind


def _repair(store: Store, user: User | None, report: Checkup) -> None:
    model, dim = store.get_setting("model"), store.get_setting("dim")
    if not model or not dim:
        report.problems.append("数据库里没有记录嵌入模型，无法重建检索文件（运行 kb index --rebuild）")
        return
    tokenizer = Tokenizer(extra_dicts=[store.home / "userdict.txt"])
    with store.write_lock(wait=60):
        manifest = store.publish(model, int(dim), tokenizer.fingerprint, KeywordIndex.build)
    store.db.write(lambda conn: audit_rows.record(conn, user or User("doctor", "staff"), "kb.repair", "kb", None,
                                                  generation=manifest["generation"]), what="审计记录")
    report.repaired.append(f"已从数据库重建检索文件：第 {manifest['generation']} 代，{manifest['counts']['chunks']} 个段落")
    report.problems.clear()


def catch_up(store: Store, wait: float = 600.0) -> dict | None:
    """Build this folder's copy of the generation the database says is published, when the folder
    is behind it: a replica with its own folder, after another replica published (a shared folder
    is never behind). The manifest built, or None when nothing was to do."""
    record = store.published_generation()
    if record is None or _local_generation(store) >= record["generation"]:
        return None
    tokenizer = Tokenizer(extra_dicts=[store.home / "userdict.txt"])
    with store.write_lock(wait=wait):
        record = store.published_generation()
        if _local_generation(store) >= record["generation"]:
            return None  # built meanwhile, or published here
        return store.publish(record["model"], int(record["dimension"]), tokenizer.fingerprint, KeywordIndex.build,
                             copy_of=record)


def _local_generation(store: Store) -> int:
    try:
        return int((store.read_manifest() or {}).get("generation", 0))
    except (IndexDamaged, IndexMismatch):
        return 0


# -- backup and restore --------------------------------------------------------
def backup(home: str | os.PathLike, out: str | os.PathLike, user: User) -> dict:
    """Copy the knowledge base into the new folder `out` while others keep working.

    The database goes through SQLite's online backup API; the published generation, its
    manifest and the settings are copied beside it under the indexing lock, so the copy's
    search files match its database."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise BackupError(f"备份文件夹 {out} 已存在且不是空的", hint="换一个新的文件夹名")
    db = Database(home, create=False)
    store = Store(home, db=db)
    try:
        out.mkdir(parents=True, exist_ok=True, mode=0o700)
        with store.write_lock(wait=600):
            db.backup_to(out / (PG_DUMP_FILE if db.backend == "postgresql" else DB_FILE))
            manifest = store.read_manifest()
            if manifest:
                shutil.copytree(store.home / manifest["index_dir"], out / manifest["index_dir"])
                shutil.copy2(store.home / MANIFEST, out / MANIFEST)
        for name in _KEPT_FILES:
            if (store.home / name).exists():
                shutil.copy2(store.home / name, out / name)
        info = {"created": time.strftime("%Y-%m-%dT%H:%M:%S"), "source": str(Path(home).resolve()),
                "by": user.name, "schema_version": db.schema_version, "backend": db.backend, **store.counts(),
                "generation": (manifest or {}).get("generation")}
        (out / BACKUP_INFO).write_text(json.dumps(info, ensure_ascii=False, indent=1), encoding="utf-8")
        make_private(out)
        db.write(lambda conn: audit_rows.record(conn, user, "kb.backup", "kb", None, out=str(out)), what="审计记录")
        return info
    finally:
        db.close()


def restore(backup_dir: str | os.PathLike, home: str | os.PathLike, user: User, *, force: bool = False) -> dict:
    """Make `home` a copy of the backup in `backup_dir`; with `force`, the knowledge base that was
    in `home` is moved aside into `home/.before-restore-<time>/`, never deleted."""
    src, home = Path(backup_dir), Path(home)
    info_path = src / BACKUP_INFO
    archive = src / PG_DUMP_FILE
    if not ((src / DB_FILE).exists() or archive.exists()) or not info_path.exists():
        raise BackupError(f"{src} 不是 kb backup 写出的备份（缺少 {DB_FILE} 或 {BACKUP_INFO}）",
                          hint="指定 kb backup 生成的文件夹")
    # a damaged or newer backup is refused before anything moves
    problems = [] if archive.exists() else check_backup_file(src / DB_FILE)
    if problems:
        raise BackupError(f"备份 {src / DB_FILE} 不能使用：{problems[0]}", hint="换一份备份")
    existing = [p for p in home.iterdir() if not p.name.startswith(".before-restore-")] if home.is_dir() else []
    if existing and not force:
        raise BackupError(f"{home} 里已经有知识库文件", hint="加 --force 覆盖（原有文件会移到 .before-restore-时间 文件夹，不会删除）")
    # a PostgreSQL knowledge base: its rows go into an empty database, checked before anything moves
    target = _restore_target(src) if archive.exists() else None
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    if existing:
        aside = home / f".before-restore-{time.strftime('%Y%m%d%H%M%S')}"
        aside.mkdir(mode=0o700)
        for path in existing:
            os.replace(path, aside / path.name)
    for path in src.iterdir():
        if path.name in (BACKUP_INFO, PG_DUMP_FILE):
            continue
        if path.is_dir():
            shutil.copytree(path, home / path.name)
        else:
            shutil.copy2(path, home / path.name)
    for path in home.iterdir():
        if not path.name.startswith(".before-restore-"):
            path.chmod(0o600) if path.is_file() else make_private(path)
    if target is not None:
        target.restore_from(archive)
        target.close()
        _set_database_setting(home, target.url)
    db = Database(home, create=False)
    try:
        IndexFiles(home).published() if (home / MANIFEST).exists() else None
        db.write(lambda conn: audit_rows.record(conn, user, "kb.restore", "kb", None, source=str(src.resolve())),
                 what="审计记录")
    finally:
        db.close()
    return json.loads(info_path.read_text(encoding="utf-8"))


def _restore_target(src: Path):
    """The empty PostgreSQL database a PostgreSQL backup is restored into: KB_DATABASE_URL, else the
    one the backup's settings name; refused (before anything moves) when it already holds a knowledge base."""
    from .config import database_url

    url = database_url(src)
    if not url:
        raise BackupError(f"{src} 是 PostgreSQL 知识库的备份，但没有指明恢复到哪个数据库",
                          hint="用 KB_DATABASE_URL 指定一个新建的空数据库")
    target = PostgresDatabase(src, url=url)
    if target.filled_tables():
        target.close()
        raise BackupError(f"{target.path} 里已经有知识库的数据，没有改动它",
                          hint="恢复到一个新建的空数据库（用 KB_DATABASE_URL 指定它）")
    return target


# -- moving to PostgreSQL --------------------------------------------------------
def migrate_to_postgres(home: str | os.PathLike, url: str, user: User) -> dict:
    """Copy the SQLite knowledge base in `home` into the empty PostgreSQL database `url` — every
    table, in one transaction — then name the database in `home/settings.toml`.

    The search files stay in the folder and keep pointing at the same chunk ids, so searches
    give the same results. `kb.sqlite` is left where it is, no longer used."""
    from .config import is_postgres

    home = Path(home)
    if not is_postgres(url):
        raise StorageError(f"{url} 不是 PostgreSQL 数据库地址", hint="形如 postgresql://用户@主机:5432/数据库名")
    source = Database(home, create=False, url="")  # the folder's kb.sqlite, whatever settings.toml says
    target = None
    try:
        target = PostgresDatabase(home, url=url)
        filled = target.filled_tables()
        if filled:
            raise StorageError(f"目标数据库 {target.path} 里已经有知识库的数据（{'、'.join(filled)}），没有改动它",
                               hint="迁移到一个新建的空数据库")
        copied = target.copy_from(source, then=lambda conn, rows: audit_rows.record(
            conn, user, "kb.migrate", "kb", None, to=target.path, rows=rows))
        counts = Store(home, db=target).counts()
    finally:
        source.close()
        if target is not None:
            target.close()
    _set_database_setting(home, url)
    return {"database": target.path, "rows": copied, **counts}


def _set_database_setting(home: Path, url: str) -> None:
    """`database = "url"` at the top of settings.toml (top-level keys must come before any [table])."""
    path = home / "settings.toml"
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    kept = [line for line in lines if not line.replace(" ", "").startswith("database=")]
    path.write_text("\n".join([f"database = {json.dumps(url)}", *kept]) + "\n", encoding="utf-8")
    path.chmod(0o600)


__all__ = ["Checkup", "check", "catch_up", "backup", "restore", "migrate_to_postgres", "KBError"]
