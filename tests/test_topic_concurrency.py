"""Topic edits from many processes at once: none is lost, the audit log tells the whole story,
and an edit made on an old version is refused."""
import json
import os
import subprocess
import sys

import pytest

from kb.errors import StaleEdit
from kb.knowledge_base import KnowledgeBase

from .conftest import REPO, run_cli

TOPIC = "zc"
ROUNDS = 10
FIELDS = ("lead", "description", "keywords", "sectors", "year", "title")
STAFF = {"user": "王静", "role": "staff"}


def _value(field: str, n: int):
    """The value round `n` gives `field`, as stored (and as passed on the command line)."""
    return {"lead": f"第{n}届牵头委员会", "description": f"第{n}轮修改的议题说明。",
            "keywords": [f"助餐{n}", f"补贴{n}"], "sectors": [f"界别{n}"], "year": 2010 + n,
            "title": f"社区老年助餐补贴（第{n}稿）"}[field]


def _arg(value) -> str:
    return "、".join(value) if isinstance(value, list) else str(value)


@pytest.fixture
def home(kb_home):
    base = KnowledgeBase(kb_home, **STAFF)
    base.topics.add("社区老年助餐补贴", topic_id=TOPIC, format="双月座谈", year=2009, lead="社会和法制委员会")
    base.close()
    return kb_home


def _edit_process(home, field: str, value) -> subprocess.Popen:
    env = {**os.environ, "KB_MODEL": "hashing:64", "KB_USER": STAFF["user"], "KB_ROLE": STAFF["role"]}
    return subprocess.Popen(
        [sys.executable, "-m", "kb.cli", "topic", "edit", TOPIC, "--home", str(home), f"--{field}", _arg(value)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_parallel_edits_of_one_topic_are_all_kept_and_audited(home):
    start = KnowledgeBase(home, **STAFF).topics.get(TOPIC).as_dict()
    for n in range(1, ROUNDS + 1):
        procs = [_edit_process(home, field, _value(field, n)) for field in FIELDS]
        for field, proc in zip(FIELDS, procs):
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, f"round {n}, --{field}: {err}"

    base = KnowledgeBase(home, **STAFF)
    topic = base.topics.get(TOPIC).as_dict()
    assert {f: topic[f] for f in FIELDS} == {f: _value(f, ROUNDS) for f in FIELDS}  # 60 of 60 kept
    assert topic["version"] == 1 + ROUNDS * len(FIELDS) and topic["updated_by"] == STAFF["user"]

    edits = base.audit_log(target_type="topic", target_id=TOPIC, action="topic.edit", limit=None)
    assert len(edits) == ROUNDS * len(FIELDS)
    state = {f: start[f] for f in FIELDS}
    for entry in sorted(edits, key=lambda e: e.id):
        for field, (old, new) in entry.detail["changes"].items():
            assert state[field] == old, f"audit entry {entry.id} changed {field} from a value it no longer had"
            state[field] = new
    assert state == {f: topic[f] for f in FIELDS}


def test_edit_on_an_old_version_is_refused_and_changes_nothing(home, capsys):
    cli = ["--home", str(home), "--user", STAFF["user"], "--role", STAFF["role"]]
    assert run_cli(capsys, "topic", "edit", TOPIC, "--lead", "农业和农村委员会", "--version", "1", *cli)[0] == 0
    code, out, _ = run_cli(capsys, "topic", "show", TOPIC, *cli)
    assert code == 0 and "版本：2" in out

    code, out, err = run_cli(capsys, "topic", "edit", TOPIC, "--lead", "人口资源环境委员会", "--version", "1", *cli)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"该议题已被 {STAFF['user']} 于" in err and "请刷新后再改" in err
    base = KnowledgeBase(home, **STAFF)
    topic = base.topics.get(TOPIC)
    assert topic.lead == "农业和农村委员会" and topic.version == 2
    assert len(base.audit_log(target_type="topic", action="topic.edit")) == 1

    with pytest.raises(StaleEdit, match="请刷新后再改"):
        base.topics.set_step(TOPIC, 3, expected_version=1)
    assert base.topics.get(TOPIC).step == 1
    moved = base.topics.set_step(TOPIC, 3, date="2025-04-01", expected_version=2)
    assert moved.step == 3 and moved.version == 3
    code, out, _ = run_cli(capsys, "topic", "show", TOPIC, "--json", *cli)
    assert json.loads(out)["version"] == 3
