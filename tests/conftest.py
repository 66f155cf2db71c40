"""Shared fixtures: a tiny Chinese corpus written for the tests, and a fake embedder."""
from __future__ import annotations

from pathlib import Path

import pytest

from indexer.embedding import HashingEmbedder

REPO = Path(__file__).resolve().parent.parent
SHARED_BENCH = REPO.parent / "shared" / "bench"

REGULATION = """青溪市社区助餐服务办法
发文机关：青溪市人民政府
文号：青政发〔2023〕15号
发布日期：2023年6月12日
效力状态：现行有效
第一章 总则
第一条 为了规范本市社区老年助餐服务，保障老年人吃得上、吃得好，制定本办法。
第二条 本办法所称老年助餐服务，是指为六十周岁以上老年人提供的集中用餐和送餐上门服务。
第二章 补贴与监管
第三条 对八十周岁以上老年人每餐补贴三元，对低保老年人每餐补贴五元。
第四条 助餐点应当严格落实食品安全责任，每日留样四十八小时。
"""

SPEECH = """在全市茶产业发展大会上的讲话
讲话人：李文博
日期：2024年3月8日
同志们：今天我们召开全市茶产业发展大会，主题是打响青溪白茶区域公用品牌。

过去三年，全市茶园面积稳定在十二万亩，茶叶产值突破四十亿元。

下一步，要推进茶旅融合，建设数字茶园，让绿水青山持续转化为金山银山。
"""

CASE = """南塘港公铁水联运模式
一、背景
南塘港地处长三角腹地，内河航道通江达海。
二、做法
建设多式联运中心，开通至上海港的集装箱班列。
三、成效
物流成本下降百分之十二。
"""


def stop_process_group(process, timeout: float = 20) -> None:
    """Stop a server started with start_new_session=True, and everything it started."""
    import os
    import signal
    import subprocess

    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


def run_cli(capsys, *argv):
    """Run `kb ARGV` in-process: (exit code, stdout, stderr)."""
    from kb.cli import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def embedder():
    return HashingEmbedder(64)


@pytest.fixture
def mini_corpus(tmp_path) -> Path:
    """Three small documents of different types and encodings."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "助餐办法.txt").write_bytes(REGULATION.encode("gb18030"))
    (folder / "茶产业讲话.md").write_text("# " + SPEECH, encoding="utf-8")
    (folder / "南塘港案例.txt").write_text(CASE, encoding="utf-8")
    return folder


@pytest.fixture
def kb_home(tmp_path) -> Path:
    return tmp_path / "kb_data"


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    """Tests never read the developer's KB_* settings."""
    for var in ("KB_HOME", "KB_MODEL", "KB_USER", "KB_ROLE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("KB_MODEL", "hashing:64")
    yield
