"""`RemoteKnowledgeBase`: the team service (`kb.service`) seen through the methods of
`KnowledgeBase`, so the panels and notebooks work the same alone or in a team.

The person's hub token identifies them (JUPYTERHUB_API_TOKEN in a per-person server); the
service reads the account's role from the hub. The client never says who it is.
"""
from __future__ import annotations

import base64
import os
import time
from pathlib import Path
from typing import Any, Callable, Sequence
from urllib.parse import quote

import requests

import indexer.errors
from indexer.errors import KBError
from indexer.loaders import SUPPORTED_SUFFIXES

from . import errors as kb_errors
from . import wire
from .roles import User
from .search import Hit, SearchFilters
from .topics import Topic

SERVICE_URL_ENV = "KB_SERVICE_URL"
LOCAL_DIR_NAME = "协商研究助手"


class ServiceUnavailable(KBError):
    """The team service did not answer."""


def team_mode() -> bool:
    """True in a per-person server of the team (the hub's spawner sets KB_SERVICE_URL)."""
    return bool(os.environ.get(SERVICE_URL_ENV))


def _error_class(kind: str | None) -> type[KBError]:
    for module in (kb_errors, indexer.errors, wire):
        cls = getattr(module, kind or "", None)
        if isinstance(cls, type) and issubclass(cls, KBError):
            return cls
    return KBError


class RemoteKnowledgeBase:
    """Same methods as `KnowledgeBase` (search, document, documents, info, index_state,
    audit_log, index, notes, topics, packs); each call is one request to the service."""

    remote = True

    def __init__(self, url: str | None = None, token: str | None = None, *, home: str | os.PathLike | None = None,
                 timeout: float = 300.0, session: requests.Session | None = None):
        url = url or os.environ.get(SERVICE_URL_ENV)
        if not url:
            raise ServiceUnavailable("没有设置知识库服务地址", hint=f"团队服务器会设置 {SERVICE_URL_ENV}")
        self.url = url.rstrip("/") + "/"
        self.timeout = timeout
        self.http = session or requests.Session()
        token = token or os.environ.get("JUPYTERHUB_API_TOKEN")
        if token:
            self.http.headers["Authorization"] = f"token {token}"
        me = self._request("GET", "api/me")
        self.account = me
        self.user = User(me["name"], me["role"])
        # exports and files chosen for upload stay in the person's own folder
        self.home = Path(home or os.environ.get("KB_LOCAL_DIR") or Path.home() / LOCAL_DIR_NAME)
        self.notes = _RemoteService(self, "notes")
        self.topics = _RemoteService(self, "topics")
        self.packs = _RemotePacks(self, "packs")
        self.cycle = _RemoteCycle(self, "cycle")

    # -- transport ------------------------------------------------------------
    def _request(self, method: str, path: str, **kwargs) -> Any:
        try:
            response = self.http.request(method, self.url + path, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise ServiceUnavailable("无法连接知识库服务", hint="请稍后再试；如果一直这样，请联系管理员") from exc
        try:
            data = response.json()
        except ValueError:
            data = {}
        if response.status_code >= 400:
            message = data.get("error") or f"知识库服务返回错误（HTTP {response.status_code}）"
            raise _error_class(data.get("kind"))(message, hint=data.get("hint") or "")
        return data

    def call(self, target: str, method: str, *args, **kwargs) -> Any:
        payload = {"args": wire.encode([_ref(a) for a in args]),
                   "kwargs": wire.encode({k: _ref(v) for k, v in kwargs.items()})}
        return wire.decode(self._request("POST", f"api/call/{target}/{method}", json=payload)["result"])

    # -- the methods of KnowledgeBase --------------------------------------------
    def search(self, query: str, top_k: int | None = None, mode: str = "hybrid",
               filters: SearchFilters | None = None, **filter_fields) -> list[Hit]:
        if filter_fields:
            filters = SearchFilters(**filter_fields)
        return self.call("kb", "search", query, top_k, mode, filters)

    def document(self, doc_id: str):
        return self.call("kb", "document", doc_id)

    def documents(self, doc_type: str | None = None, **filters):
        return self.call("kb", "documents", doc_type, **filters)

    def info(self) -> dict:
        return self.call("kb", "info")

    def index_state(self) -> dict:
        return self.call("kb", "index_state")

    def audit_log(self, **filters):
        return self.call("kb", "audit_log", **filters)

    def any_document_matches(self, filters: SearchFilters) -> bool:
        return self.call("kb", "any_document_matches", filters)

    @property
    def store(self) -> "_RemoteStore":
        return _RemoteStore(self)

    def index(self, paths: Sequence[str | os.PathLike], *, rebuild: bool = False, wait: float = 0.0,
              progress: Callable[[float, int, str], None] | None = None, poll: float = 0.5):
        """Upload the files (folders: their supported files) and wait for the service to index them."""
        if rebuild:
            raise kb_errors.PermissionDenied("团队服务器上不能从应用重建索引", hint="请管理员在服务器上运行 kb index --rebuild")
        files = _files_of(paths)
        if not files:
            raise KBError("没有可以索引的文件", hint="支持 " + "、".join(sorted(SUPPORTED_SUFFIXES)))
        handles = [("file", (f.name, f.read_bytes())) for f in files]
        job = self._request("POST", "api/uploads", files=handles)
        while not job["finished"]:
            if progress:
                progress(float(job["done"]), int(job["total"]), job["current"])
            time.sleep(poll)
            job = self._request("GET", f"api/index/{job['job']}")
        if job["error"]:
            error = job["error"]
            raise (kb_errors.PermissionDenied if error.get("status") == 403 else KBError)(error["error"],
                                                                                         hint=error.get("hint") or "")
        return wire.decode(job["report"])

    def close(self) -> None:
        self.http.close()


class _RemoteStore:
    """The one read of the local store the command line makes: document titles by id."""

    def __init__(self, base: RemoteKnowledgeBase):
        self._base = base

    def titles(self) -> dict[str, str]:
        return {d.doc_id: d.title for d in self._base.documents()}


class _RemoteService:
    """`kb.notes`, `kb.topics`, `kb.packs` of the service: attribute access gives the remote method."""

    def __init__(self, base: RemoteKnowledgeBase, name: str):
        self._base, self._name = base, name

    def __getattr__(self, method: str):
        if method.startswith("_"):
            raise AttributeError(method)
        return lambda *args, **kwargs: self._base.call(self._name, method, *args, **kwargs)


class _RemotePacks(_RemoteService):
    def export(self, topic_ref, fmt: str, out: str | os.PathLike, *, version: int | None = None, **_ignored):
        """The service renders the pack; the file is written into `out` here."""
        return _download(self._base, "api/exports",
                         {"topic": _ref(topic_ref), "format": fmt, "version": version}, out)


class _RemoteCycle(_RemoteService):
    """`kb.cycle` of the service: exports come back as files written into `out` here, and a
    调研报告 goes up as an upload."""

    def _fetch(self, payload: dict, out: str | os.PathLike):
        return _download(self._base, "api/cycle/exports", payload, out)

    def export_minutes(self, ref, fmt: str, out: str | os.PathLike, version: int | None = None):
        return self._fetch({"what": "minutes", "topic": _ref(ref), "format": fmt, "version": version}, out)

    def export_report(self, year: int | None, fmt: str, out: str | os.PathLike, on: str | None = None):
        return self._fetch({"what": "report", "year": year, "format": fmt, "on": on}, out)

    def attach_report(self, task_id: str, source: str | os.PathLike, *, content: bytes | None = None,
                      title: str | None = None, date: str | None = None):
        """Upload the file (or `content` under the name of `source`) to the task."""
        name = Path(str(source)).name
        if content is None:
            try:
                content = Path(source).expanduser().read_bytes()
            except OSError as exc:
                raise KBError(f"无法读取调研报告文件 {source}（{exc.strerror or exc}）", hint="检查文件路径") from exc
        fields = {k: v for k, v in (("title", title), ("date", date)) if v}
        data = self._base._request("POST", f"api/tasks/{quote(str(task_id), safe='')}/reports",
                                   files=[("file", (name, bytes(content)))], data=fields)
        return wire.decode(data["result"])


def _download(base, path: str, payload: dict, out: str | os.PathLike):
    """POST an export request; the service renders the file, which is written into `out` here
    under the service's file name (the result's `path` then names the local file)."""
    data = base._request("POST", path, json=payload)
    result = wire.decode(data["result"])
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / Path(result.path).name
    target.write_bytes(base64.b64decode(data["content"]))
    result.path = target
    return result


def _ref(value):
    """Topics travel as their id: the service looks them up itself."""
    return value.topic_id if isinstance(value, Topic) else value


def _files_of(paths: Sequence[str | os.PathLike]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*")
                                if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES and not p.name.startswith(".")))
        elif path.is_file():
            files.append(path)
        else:
            raise KBError(f"找不到文件 {path}")
    return files
