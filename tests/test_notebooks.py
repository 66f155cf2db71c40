"""Every notebook runs end to end (nbclient) against a knowledge base built from the sample corpus.

The normal run uses the hashing embedder and a temporary KB_HOME; the slow run uses the
default model. After a notebook's own cells, a test-only cell (never saved) drives the app
the notebook displayed: log-in state, a search, the builder's topics.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from kb.config import DEFAULT_MODEL_DIR
from kb.knowledge_base import KnowledgeBase
from kb.widgets._common import kb_home_path

from .conftest import REPO

NOTEBOOKS = REPO / "notebooks"
ROLE_OF = {"app.ipynb": "staff", "检索.ipynb": "member", "调研资料汇编.ipynb": "staff", "专家论证.ipynb": "expert"}

PROBE = """
import json
_app = _
_state = {"logged_in": _app.logged_in, "role": _app.role, "tabs": list(_app.tabs.titles) if _app.tabs else []}
if _app.logged_in:
    _search = _app.panels["检索"]
    _state["hits"] = len(_search.search("老年助餐 补贴标准"))
    _state["search_status"] = _search.status_kind
    if "调研资料汇编" in _app.panels:
        _state["topics"] = len(_app.panels["调研资料汇编"].topic_select.options)
print("STATE " + json.dumps(_state, ensure_ascii=False))
"""


def build_kb(home: Path, model: str | None = None) -> None:
    kb = KnowledgeBase(home, model=model, user="测试员", role="staff")
    kb.index([REPO / "corpus"])
    kb.topics.import_yaml(REPO / "corpus" / "topics.yaml")
    kb.close()


@pytest.fixture(scope="module")
def corpus_kb(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("nb") / "kb_data"
    old = os.environ.get("KB_MODEL")
    os.environ["KB_MODEL"] = "hashing:64"
    try:
        build_kb(home)
    finally:
        if old is None:
            os.environ.pop("KB_MODEL", None)
        else:
            os.environ["KB_MODEL"] = old
    return home


def run_notebook(path: Path, env: dict[str, str], monkeypatch, timeout: int = 180) -> tuple[dict, list[dict]]:
    """Execute the notebook plus the probe cell; return the probe's state and all outputs."""
    for key, value in env.items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)
    nb = nbformat.read(path, as_version=4)
    own_cells = len(nb.cells)
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    # a scratch folder as working directory, like Voila's kernel that starts next to the notebook
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    outputs = [out for cell in nb.cells[:own_cells] if cell.cell_type == "code" for out in cell.outputs]
    probe = "".join(out.get("text", "") for out in nb.cells[-1].outputs if out.output_type == "stream")
    state = json.loads(probe.split("STATE ", 1)[1])
    return state, outputs


def assert_clean(outputs: list[dict]) -> None:
    assert not [o for o in outputs if o.output_type == "error"]
    stderr = "".join(o.get("text", "") for o in outputs if o.output_type == "stream" and o.get("name") == "stderr")
    assert "Traceback" not in stderr
    views = [o for o in outputs if o.output_type == "execute_result"
             and "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(views) == 1, "each notebook displays exactly one app widget"


def test_notebooks_are_committed_without_outputs():
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, path.name
                assert len(cell.source.splitlines()) <= 4, f"{path.name}: notebooks only compose widgets"
    assert {p.name for p in NOTEBOOKS.glob("*.ipynb")} == set(ROLE_OF)


@pytest.mark.parametrize("name", sorted(ROLE_OF))
def test_notebook_runs_logged_in(name, corpus_kb, monkeypatch):
    env = {"KB_HOME": str(corpus_kb), "KB_MODEL": "hashing:64", "KB_USER": "测试员", "KB_ROLE": ROLE_OF[name]}
    state, outputs = run_notebook(NOTEBOOKS / name, env, monkeypatch)
    assert_clean(outputs)
    assert state["logged_in"] and state["role"] == ROLE_OF[name]
    assert state["tabs"][0] == "检索"
    assert state["hits"] > 0 and state["search_status"] == "success"
    if name in ("app.ipynb", "调研资料汇编.ipynb"):
        assert state["topics"] == 4  # the sample corpus's topics


def test_app_notebook_starts_at_the_login_choice(corpus_kb, monkeypatch):
    env = {"KB_HOME": str(corpus_kb), "KB_MODEL": "hashing:64", "KB_USER": None, "KB_ROLE": None}
    state, outputs = run_notebook(NOTEBOOKS / "app.ipynb", env, monkeypatch)
    assert_clean(outputs)
    assert state == {"logged_in": False, "role": "", "tabs": []}


def test_relative_kb_home_is_taken_from_the_repository(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KB_HOME", "kb_data")
    assert kb_home_path() == REPO / "kb_data"
    monkeypatch.delenv("KB_HOME")
    assert kb_home_path() == REPO / "kb_data"
    assert kb_home_path(tmp_path / "x") == tmp_path / "x"


@pytest.mark.slow
def test_app_notebook_with_the_default_model(tmp_path, monkeypatch):
    if not (DEFAULT_MODEL_DIR / "config.json").exists():
        pytest.skip("default model not built (make setup builds it)")
    monkeypatch.delenv("KB_MODEL", raising=False)
    home = tmp_path / "kb_data"
    build_kb(home, model=str(DEFAULT_MODEL_DIR))
    env = {"KB_HOME": str(home), "KB_MODEL": None, "KB_USER": "测试员", "KB_ROLE": "staff"}
    state, outputs = run_notebook(NOTEBOOKS / "app.ipynb", env, monkeypatch, timeout=600)
    assert_clean(outputs)
    assert state["logged_in"] and state["hits"] > 0 and state["topics"] == 4
