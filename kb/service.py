"""The knowledge-base service of a team server: one process that holds the model, the index
and the database, behind JupyterHub at /services/kb/.

Every request is identified by JupyterHub — the person's token (``Authorization: token …``)
or the hub's OAuth cookie with its XSRF check — and the role is the account's hub group
(`staff`, `member`, `expert`), looked up with the service's own token. Nothing in a request
names the user or the role; the domain services then check the role as they do locally.

JSON API under ``<prefix>api/``:

    GET  me                       the account, its role and what it may do
    GET  search?q=…&top=…         cited hits (also mode, type, issuer, date_from, date_to)
    GET  documents[?type=…]       the document list;  GET documents/ID  one document
    GET  topics                   consultation topics
    GET  notes?doc=ID             notes on a document;  POST notes  (experts and staff)
    POST notes/ID/replies         everyone signed in
    GET  audit                    staff only
    POST call/SERVICE/METHOD      the client's calls (`kb.remote`), to an allow-list of methods
    POST uploads                  staff: files to index (multipart);  GET index/JOB  progress
    POST exports                  a pack as docx/pdf/html/md (the file comes back in the reply)
    GET  ready                    no sign-in: 200 when the search files are ready, else 503 (for the hub / a balancer)
    POST cycle/exports            协商纪要 (docx/html/md) or the year's report (html/docx), likewise
    POST tasks/ID/reports         a member's 调研报告 file for their research task (multipart)

Run by the hub as ``python -m kb.service`` (see team/jupyterhub_config.py); it listens on the
address of JUPYTERHUB_SERVICE_URL.

Replicas (docs/team.md): several service processes may share one PostgreSQL database, each
with its own folder for the search files. Every couple of seconds a request compares the
generation the database says is published with the folder's; when the folder is behind, the
files are built from the database in the background (`kb.maintenance.catch_up`) and the next
search loads them — no restart. A replica whose folder has no generation yet answers 503
(「知识库正在准备检索文件…」) until its first build is done.
"""
from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlparse

from tornado import httpclient, ioloop, web
from jupyterhub.services.auth import HubOAuth, HubOAuthCallbackHandler, HubOAuthenticated, UserNotAllowed

from indexer.errors import DocumentNotFound, IndexLocked, IndexNotFound, InvalidQuery, KBError
from indexer.loaders import SUPPORTED_SUFFIXES

from . import wire
from .citations import Citation
from .errors import (InvalidNote, InvalidPackEdit, InvalidTopic, NoteNotFound, PackNotFound, PermissionDenied,
                     StaleEdit, TopicNotFound)
from .knowledge_base import KnowledgeBase
from .maintenance import catch_up
from .roles import ACTIONS, ROLES, User
from .storage import Database, Store
from .search import Hit, SearchFilters

log = logging.getLogger("kb.service")

ROLE_ORDER = ("staff", "expert", "member")  # an account in several groups acts with the widest role
ROLE_CACHE_SECONDS = 30.0
MAX_UPLOAD_BYTES = 200 * 1024 * 1024
GENERATION_CHECK_SECONDS = 2.0  # how often requests ask the database for a newer published generation
NOT_READY = "知识库正在准备检索文件…"

# What a client may call, per service object. Methods that read or write server paths
# (imports, exports to a folder, document moves) are not here: uploads and exports have
# their own endpoints, and the rest are staff's command-line work on the server.
CALLS = {
    "kb": {"search", "document", "documents", "info", "index_state", "audit_log", "any_document_matches"},
    "notes": {"add", "reply", "get", "find", "for_span", "topic_doc_ids", "review", "pending"},
    "topics": {"get", "list", "add", "edit", "set_step", "link", "unlink"},
    "packs": {"get", "exists", "history", "doc_ids", "draft", "add_hit", "add_span", "drop", "move", "reorder",
              "note", "mark_key"},
    "cycle": {"plan", "plans", "set_step", "add_task", "task", "my_tasks", "update_task", "menu", "sign_up",
              "confirm_signup", "speeches", "add_speech", "remove_speech", "minutes", "minutes_history",
              "draft_minutes", "edit_minutes", "proposals", "proposal", "instructions", "add_instruction", "assign",
              "set_status", "reviews", "add_review", "history", "topic_record", "resolve_proposal"},
}
# The only dataclasses a client may send as arguments.
ARGUMENT_TYPES = (SearchFilters, Hit, Citation)

STATUS_OF = [  # most specific first
    (PermissionDenied, 403), (DocumentNotFound, 404), (TopicNotFound, 404), (NoteNotFound, 404),
    (PackNotFound, 404), (IndexNotFound, 404), (StaleEdit, 409), (IndexLocked, 409),
    (InvalidQuery, 400), (InvalidNote, 400), (InvalidTopic, 400), (InvalidPackEdit, 400), (wire.WireError, 400),
    (KBError, 400),
]


def status_for(exc: BaseException) -> int:
    for cls, status in STATUS_OF:
        if isinstance(exc, cls):
            return status
    return 500


class Accounts:
    """An account's role, from its hub groups, asked of the hub with the service's own token
    (kept for a short while, so a changed group takes effect within ROLE_CACHE_SECONDS)."""

    def __init__(self, api_url: str, token: str, ttl: float = ROLE_CACHE_SECONDS):
        self.api_url, self.token, self.ttl = api_url.rstrip("/"), token, ttl
        self._cache: dict[str, tuple[float, str | None]] = {}

    async def role_of(self, name: str) -> str | None:
        cached = self._cache.get(name)
        if cached and time.monotonic() - cached[0] < self.ttl:
            return cached[1]
        client = httpclient.AsyncHTTPClient()
        response = await client.fetch(f"{self.api_url}/users/{quote(name, safe='')}",
                                      headers={"Authorization": f"token {self.token}"}, raise_error=False)
        if response.code != 200:
            log.warning("hub did not return account %s (HTTP %s)", name, response.code)
            return None
        groups = set(json.loads(response.body or b"{}").get("groups") or ())
        role = next((r for r in ROLE_ORDER if r in groups), None)
        self._cache[name] = (time.monotonic(), role)
        return role


@dataclass
class IndexJob:
    job_id: str
    user: str
    files: list[str]
    started: float = field(default_factory=time.time)
    done: float = 0.0
    total: int = 0
    current: str = ""
    finished: bool = False
    report: object = None
    error: dict | None = None

    def as_dict(self) -> dict:
        return {"job": self.job_id, "user": self.user, "files": self.files, "done": self.done, "total": self.total,
                "current": self.current, "finished": self.finished, "error": self.error,
                "report": wire.encode(self.report) if self.report is not None else None}


class Service:
    """What the handlers share: the knowledge base (model and index loaded once), the accounts,
    the indexing worker and its jobs."""

    def __init__(self, kb: KnowledgeBase, accounts: Accounts, *, allowed_sources: list[str] | None = None):
        self.kb, self.accounts = kb, accounts
        self.allowed_sources = [Path(p).expanduser().resolve() for p in (allowed_sources or [])]
        self.indexer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kb-index")
        self.jobs: dict[str, IndexJob] = {}
        self.builder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kb-build")
        self.building = None  # the Future of a running catch-up build
        self.published: int | None = None  # the generation the database names, as last read
        self.checked = float("-inf")

    # -- the published generation (replicas) ---------------------------------
    def local_generation(self) -> int:
        try:
            return int((self.kb.store.read_manifest() or {}).get("generation", 0))
        except KBError:
            return 0

    def follow_published(self, force: bool = False) -> None:
        """At most every GENERATION_CHECK_SECONDS (or now, with `force`): read the published
        generation from the database and, when this folder is behind it, start building it."""
        now = time.monotonic()
        if not force and now - self.checked < GENERATION_CHECK_SECONDS:
            return
        self.checked = now
        try:
            record = self.kb.store.published_generation()
        except Exception as exc:  # the database is away for a moment: keep serving what is loaded
            log.warning("could not read the published generation: %s", exc)
            return
        self.published = record["generation"] if record else None
        idle = self.building is None or self.building.done()
        if self.published and self.local_generation() < self.published and idle:
            self.building = self.builder.submit(self._catch_up)

    def _catch_up(self) -> None:
        db = Database(self.kb.home, create=False, url=self.kb.settings.database)  # this thread's own connection
        try:
            manifest = catch_up(Store(self.kb.home, db=db))
            if manifest:
                log.info("检索文件已更新到第 %s 代（%s 个段落）", manifest["generation"], manifest["counts"]["chunks"])
        except Exception:
            log.exception("building the published generation failed")
        finally:
            db.close()
            self.checked = float("-inf")  # look again at the next request

    @property
    def ready(self) -> bool:
        """Whether searches can be answered: the folder has a generation, or none is published yet."""
        return not self.published or self.local_generation() > 0

    def readiness(self) -> dict:
        return {"ready": self.ready, "generation": self.local_generation() or None, "published": self.published,
                "building": self.building is not None and not self.building.done()}

    def warm_up(self) -> None:
        """Load the model and the published index before the first request."""
        self.kb.embedder.embed_query("预热")
        try:
            self.kb.searcher
        except (IndexNotFound, KBError) as exc:
            log.info("no index yet: %s", exc)

    def upload_folder(self) -> Path:
        folder = Path(self.kb.home) / "uploads"
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        return folder

    def check_source(self, path: str) -> Path:
        """A server folder may be indexed only if it lies inside one of the allowed sources."""
        target = Path(path).expanduser().resolve()
        if not any(target == root or root in target.parents for root in self.allowed_sources):
            allowed = "、".join(str(p) for p in self.allowed_sources) or "（未设置）"
            raise PermissionDenied(f"不能索引服务器上的 {path}：它不在允许的来源文件夹内",
                                   hint=f"请上传文件；允许的来源文件夹：{allowed}")
        return target

    def start_index(self, user: User, paths: list[Path]) -> IndexJob:
        job = IndexJob(uuid.uuid4().hex[:12], user.name, [p.name for p in paths], total=len(paths))
        self.jobs[job.job_id] = job

        def progress(n: float, total: int, name: str) -> None:
            job.done, job.total, job.current = n, total, name

        def run() -> None:
            # its own connection to the database; the model is the service's
            base = KnowledgeBase(self.kb.home, settings=self.kb.settings, embedder=self.kb.embedder)
            try:
                job.report = base.for_user(user).index(paths, progress=progress, wait=600)
            except KBError as exc:
                job.error = {"error": str(exc), "hint": exc.hint, "status": status_for(exc)}
            except Exception as exc:  # reported to the person, logged for the office
                log.exception("indexing failed")
                job.error = {"error": f"索引失败：{exc}", "hint": "请联系管理员查看服务日志", "status": 500}
            finally:
                base.close()
                job.finished = True

        self.indexer.submit(run)
        return job


class APIHandler(HubOAuthenticated, web.RequestHandler):
    """A JSON endpoint: the account is identified in `prepare`, errors come back as JSON."""

    service: Service

    def initialize(self, service: Service):
        self.service = service

    def check_xsrf_cookie(self):  # cookie requests: the hub's XSRF check (in HubAuth); tokens need none
        return HubOAuthenticated.check_xsrf_cookie(self)

    async def prepare(self):
        self.service.follow_published()
        if not self.service.ready:
            self.set_header("Retry-After", "5")
            raise web.HTTPError(503, reason=NOT_READY)
        model = await self.hub_auth.get_user(self, sync=False)
        if not model:
            raise web.HTTPError(401, reason="未登录或登录已过期，请重新登录")
        try:
            self.check_hub_user(model)
        except UserNotAllowed:
            raise web.HTTPError(403, reason="此令牌不能访问知识库服务")
        if model.get("kind", "user") != "user":
            raise web.HTTPError(403, reason="知识库服务只接受个人账号的请求")
        role = await self.service.accounts.role_of(model["name"])
        if role is None:
            raise web.HTTPError(403, reason=f"账号 {model['name']} 尚未分配角色（工作人员、委员或专家），请联系工作人员")
        self.user = User(model["name"], role)
        self.kb = self.service.kb.for_user(self.user)

    def reply(self, payload, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(payload, ensure_ascii=False))

    def body(self) -> dict:
        if not self.request.body:
            return {}
        try:
            data = json.loads(self.request.body)
        except ValueError:
            raise KBError("请求不是有效的 JSON")
        if not isinstance(data, dict):
            raise KBError("请求应是一个 JSON 对象")
        return data

    def log_exception(self, typ, value, tb):
        if isinstance(value, (KBError, web.HTTPError)):
            return
        super().log_exception(typ, value, tb)

    def write_error(self, status_code: int, **kwargs):
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, KBError):
            status_code = status_for(exc)
            payload = {"error": str(exc), "hint": exc.hint, "kind": type(exc).__name__}
        elif isinstance(exc, web.HTTPError):
            payload = {"error": exc.reason or self._reason, "hint": ""}
        else:
            payload = {"error": "服务内部错误", "hint": "请联系管理员查看服务日志"}
        self.set_status(status_code)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps(payload, ensure_ascii=False))

    def _handle_request_exception(self, e):
        if isinstance(e, KBError):
            self.send_error(status_for(e), exc_info=(type(e), e, e.__traceback__))
            return
        super()._handle_request_exception(e)


class MeHandler(APIHandler):
    def get(self):
        self.reply({"name": self.user.name, "display_name": self.user.name, "role": self.user.role,
                    "role_label": self.user.role_label,
                    "may": sorted(a for a in ACTIONS if self.user.can(a))})


def _filters(handler: APIHandler) -> SearchFilters:
    types = [t for t in handler.get_arguments("type") if t]
    return SearchFilters(doc_types=types, issuer=handler.get_argument("issuer", None) or None,
                         date_from=handler.get_argument("date_from", None) or None,
                         date_to=handler.get_argument("date_to", None) or None)


class SearchHandler(APIHandler):
    def get(self):
        query = self.get_argument("q", "")
        try:
            top = int(self.get_argument("top", "10"))
        except ValueError:
            raise InvalidQuery("top 应是 1–100 的整数")
        if not 1 <= top <= 100:
            raise InvalidQuery("top 应是 1–100 的整数")
        hits = self.kb.search(query, top, self.get_argument("mode", "hybrid"), _filters(self))
        self.reply({"query": query, "weak": bool(hits) and all(h.weak for h in hits),
                    "hits": [h.as_dict() for h in hits]})


class DocumentsHandler(APIHandler):
    def get(self, doc_id: str | None = None):
        if doc_id:
            self.reply(wire.plain(self.kb.document(doc_id)))
            return
        docs = self.kb.documents(self.get_argument("type", None) or None,
                                 issuer=self.get_argument("issuer", None) or None)
        self.reply({"documents": [wire.plain(d) for d in docs]})


class TopicsHandler(APIHandler):
    def get(self, topic_id: str | None = None):
        if topic_id:
            self.reply(self.kb.topics.get(topic_id).as_dict())
        else:
            self.reply({"topics": [t.as_dict() for t in self.kb.topics.list()]})


class NotesHandler(APIHandler):
    def get(self):
        doc = self.get_argument("doc", None)
        notes = self.kb.notes.find(doc_id=doc or None)
        self.reply({"notes": [n.as_dict() for n in notes]})

    def post(self):
        data = self.body()
        note = self.kb.notes.add(str(data.get("doc") or data.get("doc_id") or ""), data.get("quote") or None,
                                 stance=str(data.get("stance") or "补充"), text=str(data.get("text") or ""))
        self.reply(note.as_dict(), 201)


class RepliesHandler(APIHandler):
    def post(self, note_id: str):
        reply = self.kb.notes.reply(note_id, str(self.body().get("text") or ""))
        self.reply(wire.plain(reply), 201)


class AuditHandler(APIHandler):
    def get(self):
        try:
            limit = int(self.get_argument("limit", "200"))
        except ValueError:
            raise KBError("limit 应是整数")
        entries = self.kb.audit_log(limit=limit, user=self.get_argument("user", None) or None,
                                    action=self.get_argument("action", None) or None)
        self.reply({"entries": [wire.plain(e) for e in entries]})


class CallHandler(APIHandler):
    """The client's method calls: arguments and results in `kb.wire` form."""

    def post(self, target: str, method: str):
        if method not in CALLS.get(target, ()):
            raise web.HTTPError(404, reason=f"没有这个操作：{target}.{method}")
        data = self.body()
        args = wire.decode(data.get("args") or [], allowed=ARGUMENT_TYPES)
        kwargs = wire.decode(data.get("kwargs") or {}, allowed=ARGUMENT_TYPES)
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise wire.WireError("参数格式不对")
        if target == "packs" and method == "add_hit":
            # the passage is taken from the document, never from the hit the client sent
            method, args = "add_span", _span_args(args, kwargs)
        owner = self.kb if target == "kb" else getattr(self.kb, target)
        result = getattr(owner, method)(*args, **kwargs)
        self.reply({"result": wire.encode(result)})


def _span_args(args: list, kwargs: dict) -> list:
    hit = kwargs.pop("hit", None) if len(args) < 2 else args[1]
    if not isinstance(hit, Hit):
        raise wire.WireError("add_hit 需要一条检索结果")
    topic = args[0] if args else kwargs.pop("topic_ref")
    rest = list(args[2:])
    return [topic, hit.doc_id, hit.start, hit.end, *rest]


class UploadHandler(APIHandler):
    """Staff add files by upload (or from an allowed source folder); indexing runs in the background."""

    def post(self):
        self.user.require("index")
        paths: list[Path] = []
        if self.request.files:
            folder = self.service.upload_folder()
            for item in self.request.files.get("file", []):
                name = Path(item["filename"].replace("\\", "/")).name
                if not name or name.startswith(".") or Path(name).suffix.lower() not in SUPPORTED_SUFFIXES:
                    raise KBError(f"不支持的文件：{name or '（无名）'}",
                                  hint="支持 " + "、".join(sorted(SUPPORTED_SUFFIXES)))
                target = folder / name
                target.write_bytes(item["body"])
                target.chmod(0o600)
                paths.append(target)
        else:
            for path in self.body().get("paths") or ():
                paths.append(self.service.check_source(str(path)))
        if not paths:
            raise KBError("没有要索引的文件", hint="请选择要上传的文件")
        job = self.service.start_index(self.user, paths)
        self.reply(job.as_dict(), 202)


class IndexJobHandler(APIHandler):
    def get(self, job_id: str):
        self.user.require("index")
        job = self.service.jobs.get(job_id)
        if job is None:
            raise web.HTTPError(404, reason="没有这个索引任务")
        self.reply(job.as_dict())


class ExportHandler(APIHandler):
    def post(self):
        data = self.body()
        with tempfile.TemporaryDirectory(prefix="kb-export-") as tmp:
            result = self.kb.packs.export(str(data.get("topic") or ""), str(data.get("format") or "docx"), tmp,
                                          version=data.get("version") or None)
            content = Path(result.path).read_bytes()
            result.path = Path(Path(result.path).name)
        self.reply({"result": wire.encode(result), "content": base64.b64encode(content).decode("ascii")})


class CycleExportHandler(APIHandler):
    """The minutes of a topic (``{"what": "minutes", "topic", "format", "version"}``) or the year's
    report (``{"what": "report", "year", "format", "on"}``); the file comes back in the reply."""

    def post(self):
        data = self.body()
        what, fmt = str(data.get("what") or "minutes"), str(data.get("format") or "docx")
        with tempfile.TemporaryDirectory(prefix="kb-export-") as tmp:
            if what == "minutes":
                result = self.kb.cycle.export_minutes(str(data.get("topic") or ""), fmt, tmp,
                                                      version=data.get("version") or None)
            elif what == "report":
                result = self.kb.cycle.export_report(data.get("year") or None, fmt, tmp, on=data.get("on") or None)
            else:
                raise KBError(f"不能导出“{what}”", hint="可选 minutes（协商纪要）或 report（年度报告）")
            content = Path(result.path).read_bytes()
            result.path = Path(Path(result.path).name)
        self.reply({"result": wire.encode(result), "content": base64.b64encode(content).decode("ascii")})


class TaskReportHandler(APIHandler):
    """A 调研报告 file for a research task (multipart ``file``, optional ``title`` and ``date``);
    `kb.cycle` checks that the account is on the task (or staff) and indexes it."""

    def post(self, task_id: str):
        files = self.request.files.get("file") or []
        if len(files) != 1:
            raise KBError("请上传一个调研报告文件", hint="每次上传一个文件")
        task = self.kb.cycle.attach_report(task_id, files[0]["filename"], content=files[0]["body"],
                                           title=self.get_body_argument("title", None) or None,
                                           date=self.get_body_argument("date", None) or None)
        self.reply({"result": wire.encode(task)}, 201)


class ReadyHandler(web.RequestHandler):
    """Whether this replica can answer searches; no sign-in, nothing about the contents."""

    def initialize(self, service: Service):
        self.service = service

    def get(self):
        self.service.follow_published(force=True)
        state = self.service.readiness()
        if not state["ready"]:
            state["error"] = NOT_READY
            self.set_header("Retry-After", "5")
        self.set_status(200 if state["ready"] else 503)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(state, ensure_ascii=False))


class IndexPage(HubOAuthenticated, web.RequestHandler):
    """A person who opens /services/kb/ in a browser: signed in through the hub, told where to go."""

    @web.authenticated
    def get(self):
        user = self.current_user
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps({"service": "协商研究助手知识库服务", "account": user["name"], "api": "api/"},
                               ensure_ascii=False))


def make_app(service: Service, prefix: str = "/services/kb/", cookie_secret: bytes | None = None) -> web.Application:
    prefix = "/" + prefix.strip("/") + "/"
    api = prefix + "api/"
    handlers = [
        (prefix + "oauth_callback", HubOAuthCallbackHandler),
        (prefix, IndexPage),
        (api + "ready", ReadyHandler, {"service": service}),
        (api + "me", MeHandler, {"service": service}),
        (api + "search", SearchHandler, {"service": service}),
        (api + "documents", DocumentsHandler, {"service": service}),
        (api + r"documents/([^/]+)", DocumentsHandler, {"service": service}),
        (api + "topics", TopicsHandler, {"service": service}),
        (api + r"topics/([^/]+)", TopicsHandler, {"service": service}),
        (api + "notes", NotesHandler, {"service": service}),
        (api + r"notes/([^/]+)/replies", RepliesHandler, {"service": service}),
        (api + "audit", AuditHandler, {"service": service}),
        (api + r"call/(\w+)/(\w+)", CallHandler, {"service": service}),
        (api + "uploads", UploadHandler, {"service": service}),
        (api + r"index/(\w+)", IndexJobHandler, {"service": service}),
        (api + "exports", ExportHandler, {"service": service}),
        (api + "cycle/exports", CycleExportHandler, {"service": service}),
        (api + r"tasks/([^/]+)/reports", TaskReportHandler, {"service": service}),
    ]
    return web.Application(handlers, cookie_secret=cookie_secret or os.urandom(32),
                           max_body_size=MAX_UPLOAD_BYTES, hub_auth=HubOAuth.instance())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kb.service", description="协商研究助手知识库服务（由 JupyterHub 启动）")
    parser.add_argument("--home", help="知识库文件夹（默认 KB_HOME）")
    parser.add_argument("--model", help="嵌入模型（默认 KB_MODEL 或设置）")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[kb.service %(asctime)s] %(message)s")
    url = urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:8765"))
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/kb/")
    kb = KnowledgeBase(args.home, model=args.model, create=True)
    accounts = Accounts(os.environ.get("JUPYTERHUB_API_URL", "http://127.0.0.1:8081/hub/api"),
                        os.environ.get("JUPYTERHUB_API_TOKEN", ""))
    service = Service(kb, accounts, allowed_sources=kb.settings.extra.get("allowed_sources"))
    service.follow_published(force=True)  # an empty folder starts building its files now
    service.warm_up()
    app = make_app(service, prefix)
    app.listen(url.port or 80, url.hostname or "127.0.0.1", xheaders=True)
    log.info("知识库服务已就绪：%s%s（知识库 %s）", url.geturl().rstrip("/"), prefix, kb.home)
    ioloop.IOLoop.current().start()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
