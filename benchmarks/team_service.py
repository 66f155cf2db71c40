"""The team service against the one-person app, in one JSON object.

    python benchmarks/team_service.py --home KB [--clients 10] [--rounds 6] --json

* `person_rss_mb`: memory of a person's app kernel — the app built and one search made —
  alone (`local`: the kernel loads the model and the index) and on a team server (`team`:
  the kernel talks to the service). Each is measured in a fresh process (VmRSS).
* `search_ms`: hybrid search latency, p50/p95 — `direct` in this process, one query at a
  time; `service_1_client` through the knowledge-base service (HTTP, token check, JSON), one
  person asking; `service` with `--clients` people asking at once (the service answers one
  search at a time, so this includes waiting in line); `service_ratio_p50/p95` compares it
  with `direct`.

The service runs as a real process behind the hub stand-in of the tests (tests/hub_double.py),
which answers the hub's two API calls; everything else is the product's own code.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

QUERIES = ["老年助餐补贴标准", "助餐点食品安全", "乡村议事会议事规则", "村级议事协商程序", "茶叶区域公用品牌",
           "白茶品牌保护", "物流枢纽布局", "公铁水联运", "农村助餐服务", "冷链物流建设", "茶旅融合",
           "村务监督委员会", "送餐上门服务", "多式联运中心建设", "茶产业发展资金"]
SERVICE_TOKEN = "service-token"
TOKENS = {"tok-member": {"name": "bench-member", "groups": ["member"]}, SERVICE_TOKEN: {"name": "kb"}}

PERSON = r"""
import os, sys
sys.path.insert(0, {root!r})
from kb.widgets.app import ResearchApp
app = ResearchApp({home!r}, user="bench", role="member")
app.panels["检索"].kb.search("老年助餐补贴标准", 5)
for line in open("/proc/self/status"):
    if line.startswith("VmRSS"):
        print(int(line.split()[1]) / 1024)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentiles(values: list[float]) -> dict:
    values = sorted(values)
    return {"p50": round(statistics.median(values), 1), "p95": round(values[int(0.95 * (len(values) - 1))], 1),
            "n": len(values)}


def person_rss(home: Path, env: dict) -> float:
    out = subprocess.run([sys.executable, "-c", PERSON.format(root=str(ROOT), home=str(home))], env=env,
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    if out.returncode:
        raise SystemExit(f"app kernel failed: {out.stderr[-2000:]}")
    return round(float(out.stdout.strip().splitlines()[-1]), 1)


def wait_ready(url: str, token: str, seconds: float = 300) -> None:
    import requests

    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if requests.get(url, headers={"Authorization": f"token {token}"}, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{url} not ready")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", required=True, help="an indexed knowledge base (e.g. kb_data after make run)")
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=6, help="queries per client = rounds × len(QUERIES)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    import requests

    from kb.knowledge_base import KnowledgeBase

    home = Path(args.home)
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("KB_", "JUPYTERHUB_"))}
    if os.environ.get("KB_MODEL"):
        base_env["KB_MODEL"] = os.environ["KB_MODEL"]

    # direct, one query at a time, model and index already loaded
    kb = KnowledgeBase(home, create=False)
    kb.search(QUERIES[0], 10)
    direct = []
    for _ in range(args.rounds):
        for q in QUERIES:
            t = time.perf_counter()
            kb.search(q, 10)
            direct.append((time.perf_counter() - t) * 1000)
    kb.close()

    hub_port, port = free_port(), free_port()
    hub = subprocess.Popen([sys.executable, str(ROOT / "tests" / "hub_double.py"), str(hub_port), json.dumps(TOKENS)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = dict(base_env, KB_HOME=str(home), JUPYTERHUB_API_URL=f"http://127.0.0.1:{hub_port}/hub/api",
               JUPYTERHUB_API_TOKEN=SERVICE_TOKEN, JUPYTERHUB_SERVICE_NAME="kb", JUPYTERHUB_CLIENT_ID="service-kb",
               JUPYTERHUB_SERVICE_URL=f"http://127.0.0.1:{port}", JUPYTERHUB_SERVICE_PREFIX="/services/kb/")
    service = subprocess.Popen([sys.executable, "-m", "kb.service"], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/services/kb/"
    try:
        wait_ready(url + "api/me", "tok-member")

        def client(_n: int) -> list[float]:
            session = requests.Session()
            session.headers["Authorization"] = "token tok-member"
            times = []
            for _ in range(args.rounds):
                for q in QUERIES:
                    t = time.perf_counter()
                    response = session.get(url + "api/search", params={"q": q, "top": 10}, timeout=120)
                    response.raise_for_status()
                    times.append((time.perf_counter() - t) * 1000)
            return times

        one = client(0)  # a single person: the cost of HTTP, the token check and JSON
        with ThreadPoolExecutor(args.clients) as pool:
            through = [t for times in pool.map(client, range(args.clients)) for t in times]
        team_rss = person_rss(home, dict(base_env, KB_SERVICE_URL=url, JUPYTERHUB_API_TOKEN="tok-member",
                                         KB_LOCAL_DIR="/tmp"))
    finally:
        service.terminate()
        hub.terminate()
        service.wait(30)
        hub.wait(30)
    local_rss = person_rss(home, dict(base_env, KB_HOME=str(home)))

    d, s = percentiles(direct), percentiles(through)
    result = {"person_rss_mb": {"local": local_rss, "team": team_rss, "team_vs_local": round(team_rss / local_rss, 3)},
              "search_ms": {"direct": d, "service_1_client": percentiles(one), "service": s, "clients": args.clients,
                            "service_ratio_p50": round(s["p50"] / d["p50"], 2),
                            "service_ratio_p95": round(s["p95"] / d["p95"], 2)}}
    print(json.dumps(result, ensure_ascii=False, indent=None if args.json else 1))


if __name__ == "__main__":
    main()
