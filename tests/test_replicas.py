"""Two or more `kb.service` processes (replicas) on one PostgreSQL database, each with its own
folder for the search files — as on several machines behind one hub.

Writes through both replicas at once lose nothing (notes, topic edits, pack edits) and an
edit made on an old version is refused; a generation published through one replica is
built from the database and answered by the others without a restart; a replica that
starts on an empty disk says it is not ready until its search files are built."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from indexer.store import IndexFiles
from kb.errors import StaleEdit
from kb.knowledge_base import KnowledgeBase
from kb.remote import RemoteKnowledgeBase

from .conftest import CASE, REGULATION, SPEECH
from .hub_double import SERVICE_TOKEN
from .pg_server import server
from .test_service import _wait, free_port

REPO = Path(__file__).resolve().parent.parent
ACCOUNTS = {
    "tok-staff": {"name": "王静", "groups": ["staff"]},
    "tok-staff2": {"name": "周敏", "groups": ["staff"]},
    "tok-expert": {"name": "林雪芬", "groups": ["expert"]},
    "tok-expert2": {"name": "陈立", "groups": ["expert"]},
}
WRITERS = ("tok-staff", "tok-staff2", "tok-expert", "tok-expert2")
NOT_READY = "知识库正在准备检索文件"


class Replica:
    """One `python -m kb.service` on its own folder and port, sharing the database."""

    def __init__(self, home: Path, database: str, hub_port: int):
        self.home, self.port = home, free_port()
        env = dict(os.environ, KB_HOME=str(home), KB_MODEL="hashing:64", KB_DATABASE_URL=database,
                   JUPYTERHUB_API_URL=f"http://127.0.0.1:{hub_port}/hub/api", JUPYTERHUB_API_TOKEN=SERVICE_TOKEN,
                   JUPYTERHUB_SERVICE_NAME="kb", JUPYTERHUB_CLIENT_ID="service-kb",
                   JUPYTERHUB_SERVICE_URL=f"http://127.0.0.1:{self.port}", JUPYTERHUB_SERVICE_PREFIX="/services/kb/",
                   JUPYTERHUB_BASE_URL="/")
        self.url = f"http://127.0.0.1:{self.port}/services/kb/"
        self.proc = subprocess.Popen([sys.executable, "-m", "kb.service"], cwd=REPO, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def ready(self) -> requests.Response:
        return requests.get(self.url + "api/ready", timeout=10)

    def wait_ready(self, seconds: float = 90) -> dict:
        deadline = time.time() + seconds
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(self.proc.stdout.read())
            try:
                answer = self.ready()
                if answer.status_code == 200:
                    return answer.json()
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.url} never became ready")

    def client(self, token: str) -> RemoteKnowledgeBase:
        return RemoteKnowledgeBase(self.url, token, home=self.home.parent / f"local-{token}")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A PostgreSQL knowledge base indexed from folder `a`, the hub double, and two replicas:
    one on folder `a`, one on the empty folder `b`."""
    root = tmp_path_factory.mktemp("replicas")
    database = server().new_database()
    corpus = root / "corpus"
    corpus.mkdir()
    (corpus / "助餐办法.txt").write_bytes(REGULATION.encode("gb18030"))
    (corpus / "茶产业讲话.md").write_text("# " + SPEECH, encoding="utf-8")
    (corpus / "南塘港案例.txt").write_text(CASE, encoding="utf-8")
    kb = KnowledgeBase(root / "a", model="hashing:64", database=database, user="王静", role="staff")
    kb.index([corpus])
    kb.topics.add("推进老年助餐服务提质扩面", year=2025, topic_id="zhucan")
    for query in ("老年助餐 补贴标准", "茶产业 品牌", "多式联运 集装箱班列"):
        kb.packs.add_hit("zhucan", kb.search(query, 1)[0])
    kb.close()

    hub_port = free_port()
    hub = subprocess.Popen([sys.executable, str(REPO / "tests" / "hub_double.py"), str(hub_port),
                            json.dumps({**ACCOUNTS, SERVICE_TOKEN: {"name": "kb-service"}})],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _wait(f"http://127.0.0.1:{hub_port}/hub/api/user", hub)
    started = [Replica(root / "a", database, hub_port), Replica(root / "b", database, hub_port)]
    try:
        for replica in started:
            replica.wait_ready()
        yield {"root": root, "database": database, "hub_port": hub_port, "replicas": started}
    finally:
        for replica in started:
            replica.stop()
        hub.terminate()
        hub.wait(10)


def _hits(replica: Replica, query: str) -> list:
    found = requests.get(replica.url + "api/search", params={"q": query, "top": 5},
                         headers={"Authorization": "token tok-staff"}, timeout=30).json()
    return [(h["doc_id"], h["start"], round(h["score"], 5)) for h in found["hits"]]


def test_notes_from_four_writers_through_two_replicas_are_all_kept(cluster):
    a, b = cluster["replicas"]
    doc_id = a.client("tok-staff").search("食品安全留样", 1)[0].doc_id

    def write(token: str) -> list[int]:
        replica = (a, b)[WRITERS.index(token) % 2]
        codes = []
        for n in range(25):
            answer = requests.post(replica.url + "api/notes", headers={"Authorization": f"token {token}"},
                                   json={"doc": doc_id, "quote": "每日留样四十八小时", "stance": "补充",
                                         "text": f"{token} 的第 {n} 条意见"}, timeout=60)
            codes.append(answer.status_code)
        return codes

    with ThreadPoolExecutor(4) as pool:
        codes = [c for batch in pool.map(write, WRITERS) for c in batch]
    assert codes == [201] * 100
    for replica in (a, b):  # both see all of them
        notes = replica.client("tok-staff").notes.find(doc_id=doc_id)
        assert len([n for n in notes if "条意见" in n.text]) == 100
        assert {n.author for n in notes} == {"王静", "周敏", "林雪芬", "陈立"}


def test_parallel_topic_edits_through_two_replicas_are_all_kept_and_stale_ones_refused(cluster):
    a, b = cluster["replicas"]
    before = a.client("tok-staff").topics.get("zhucan").version
    edits = [("lead", "社会和法制委员会"), ("description", "聚焦助餐点运营补贴。"), ("year", 2026),
             ("keywords", ["助餐", "补贴"]), ("sectors", ["社会福利"]), ("format", "常委会专题协商")]

    def edit(i: int):
        field, value = edits[i]
        replica, token = (a, b)[i % 2], ("tok-staff", "tok-staff2")[i // 2 % 2]
        return replica.client(token).topics.edit("zhucan", **{field: value})

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(edit, range(len(edits))))
    topic = b.client("tok-staff").topics.get("zhucan")
    assert topic.version == before + len(edits)  # none lost
    assert (topic.lead, topic.year, topic.format) == ("社会和法制委员会", 2026, "常委会专题协商")
    assert topic.keywords == ["助餐", "补贴"] and topic.sectors == ["社会福利"]

    # two people edit the version they both saw, one through each replica: one wins, one is told
    def stale(i: int):
        try:
            (a, b)[i].client(("tok-staff", "tok-staff2")[i]).topics.edit(
                "zhucan", expected_version=topic.version, lead=f"第{i}稿牵头单位")
            return "kept"
        except StaleEdit as exc:
            return str(exc)

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(stale, range(2)))
    assert outcomes.count("kept") == 1
    refused = next(o for o in outcomes if o != "kept")
    assert "已被" in refused and "请刷新后再改" in refused
    assert a.client("tok-staff").topics.get("zhucan").version == topic.version + 1


def test_pack_edits_through_two_replicas_at_once_are_all_kept(cluster):
    a, b = cluster["replicas"]
    pack = a.client("tok-staff").packs.get("zhucan")
    items = [item for _s, _p, item in pack.items()]
    assert len(items) >= 2

    def note(i: int):
        (a, b)[i % 2].client(("tok-staff", "tok-staff2")[i % 2]).packs.note(
            "zhucan", items[i].item_id, f"第{i}条：已核对原文")

    with ThreadPoolExecutor(len(items)) as pool:
        list(pool.map(note, range(len(items))))
    after = b.client("tok-staff").packs.get("zhucan")
    assert after.version == pack.version + len(items)
    notes = {item.item_id: item.note for _s, _p, item in after.items()}
    assert all(notes[item.item_id] == f"第{i}条：已核对原文" for i, item in enumerate(items))


def test_a_generation_published_through_one_replica_is_answered_by_the_other_without_restart(cluster, tmp_path):
    a, b = cluster["replicas"]
    query = "长者食堂 连锁运营"
    assert not any("长者食堂" in h.text for h in b.client("tok-staff").search(query, 3))
    upload = tmp_path / "社区食堂案例.txt"
    upload.write_text("社区长者食堂运营案例\n一、做法\n长者食堂引入社会餐饮企业连锁运营，中午供应十二种菜品。\n",
                      encoding="utf-8")
    report = a.client("tok-staff").index([upload])
    assert report.added == 1
    published = a.ready().json()["published"]
    deadline = time.time() + 60
    while b.ready().json()["generation"] != published and time.time() < deadline:
        time.sleep(0.3)
    assert b.ready().json()["generation"] == published
    hits = b.client("tok-staff").search(query, 3)
    assert hits and "长者食堂" in hits[0].text
    assert b.proc.poll() is None  # the same process, no restart
    assert IndexFiles(b.home).read_manifest()["generation"] == published
    assert _hits(a, query) == _hits(b, query)


def test_a_replica_on_an_empty_disk_answers_only_when_its_files_are_built(cluster):
    home = cluster["root"] / "c"
    files = IndexFiles(home)
    with files.write_lock():  # holds the replica's build back, so "not ready" can be seen
        replica = Replica(home, cluster["database"], cluster["hub_port"])
        try:
            deadline = time.time() + 60
            while True:
                try:
                    answer = replica.ready()
                    break
                except requests.RequestException:
                    assert time.time() < deadline and replica.proc.poll() is None
                    time.sleep(0.2)
            assert answer.status_code == 503 and NOT_READY in answer.json()["error"]
            refused = requests.get(replica.url + "api/search", params={"q": "老年助餐"},
                                   headers={"Authorization": "token tok-staff"}, timeout=30)
            assert refused.status_code == 503 and NOT_READY in refused.json()["error"]
        except BaseException:
            replica.stop()
            raise
    try:
        state = replica.wait_ready()
        assert state["generation"] == state["published"] == cluster["replicas"][0].ready().json()["published"]
        for query in ("老年助餐 补贴标准", "茶产业 品牌", "多式联运 集装箱班列"):
            assert _hits(replica, query) == _hits(cluster["replicas"][0], query)
    finally:
        replica.stop()


def test_a_publish_is_recorded_in_the_database_and_another_folder_builds_the_same_files(tmp_path, mini_corpus,
                                                                                       embedder):
    from kb.maintenance import catch_up
    from kb.storage import Database, Store

    database = server().new_database()
    kb = KnowledgeBase(tmp_path / "a", embedder=embedder, database=database, user="王静", role="staff")
    kb.index([mini_corpus])
    manifest = kb.store.read_manifest()
    record = kb.store.published_generation()
    assert {k: record[k] for k in ("generation", "model", "dimension", "counts", "files")} == \
        {k: manifest[k] for k in ("generation", "model", "dimension", "counts", "files")}
    assert "content_hashes" not in record and record["content_digest"]

    other = Store(tmp_path / "b", db=Database(tmp_path / "b", url=database))
    built = catch_up(other)
    assert built["generation"] == record["generation"] and built["files"] == record["files"]  # the same bytes
    assert catch_up(other) is None  # up to date: nothing to do
    (mini_corpus / "新增.txt").write_text("关于冷链物流园区建设的意见\n第一条 建设冷链物流园区。\n", encoding="utf-8")
    kb.index([mini_corpus])
    assert kb.store.published_generation()["generation"] == record["generation"] + 1
    assert catch_up(other)["generation"] == record["generation"] + 1
    other.close()
    kb.close()


def test_one_indexer_at_a_time_across_replicas_with_folders_of_their_own(tmp_path):
    from indexer.errors import IndexLocked
    from kb.storage import Database, Store

    database = server().new_database()
    one, two = (Store(tmp_path / name, db=Database(tmp_path / name, url=database)) for name in ("a", "b"))
    with one.write_lock():
        with pytest.raises(IndexLocked) as locked:
            with two.write_lock(wait=0.5):
                pass
        assert "另一台服务器" in str(locked.value)
    with two.write_lock():  # released with the first
        pass
    one.close()
    two.close()


def test_a_replica_replaces_a_half_built_folder_of_the_generation_it_builds(tmp_path, mini_corpus, embedder):
    from kb.maintenance import catch_up
    from kb.storage import Database, Store

    database = server().new_database()
    kb = KnowledgeBase(tmp_path / "a", embedder=embedder, database=database, user="王静", role="staff")
    kb.index([mini_corpus])
    generation = kb.store.published_generation()["generation"]
    leftover = tmp_path / "b" / f"index-{generation:06d}"  # a build killed before it published
    leftover.mkdir(parents=True)
    (leftover / "vectors.faiss").write_bytes(b"half")
    other = Store(tmp_path / "b", db=Database(tmp_path / "b", url=database))
    assert catch_up(other)["generation"] == generation  # the database's number, not one above
    assert other.files.verify() == []
    other.close()
    kb.close()
