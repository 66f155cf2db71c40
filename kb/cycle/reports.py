"""The 调研报告 files members attach to their research tasks: where they are kept and how they
become documents of the knowledge base.

A report is kept at ``<home>/uploads/调研报告/<task>/<file name>`` — the folder the app's staff
uploads use, one subfolder per task — with a sidecar ``NAME.meta.yaml`` that declares it a
调研报告 (doc type ``research``) and names its author, date and topic, so indexing it like any
other file makes it a document of that type. A document's id follows from its path
(`indexer.build.doc_id_for`), so the reports of a task are the topic's 调研报告 links whose
document lies in the task's folder: no table besides `topic_links` is needed.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import yaml

from indexer.build import doc_id_for
from indexer.loaders import SUPPORTED_SUFFIXES
from indexer.metadata import DOC_TYPES, sidecar_path

from ..textsafety import strip_bidi
from .model import InvalidCycleEdit

REPORT_FOLDER = Path("uploads") / "调研报告"
MAX_REPORT_BYTES = 50 * 1024 * 1024
# A file name's bytes, leaving room for the sidecar's suffix within the usual 255-byte limit.
MAX_NAME_BYTES = 200
MAX_TITLE_CHARS = 200
SIDECAR_SUFFIX = ".meta.yaml"
_CONTROLS = re.compile(r"[\x00-\x1f\x7f]")


def task_folder(home: str | Path, task_id: str) -> Path:
    """The folder of one task's reports (the task id made safe as a folder name)."""
    safe = re.sub(r"[^\w.-]", "_", str(task_id)).strip(".") or "task"
    return Path(home) / REPORT_FOLDER / safe


def check_file_name(name: str) -> str:
    """The file's own name (no folders from a browser or a client, no bidi controls, no spaces
    at either end), of a format we index."""
    if _CONTROLS.search(str(name)):
        raise InvalidCycleEdit(f"文件名“{_CONTROLS.sub('?', str(name))}”含有控制字符，不能用作调研报告",
                               hint="把文件改成普通的名字再上传，如 东湖区助餐点调研报告.docx")
    base = Path(strip_bidi(name).replace("\\", "/")).name.strip()
    if not base or base.startswith((".", "_")) or base.lower().endswith(SIDECAR_SUFFIX):
        raise InvalidCycleEdit(f"文件名“{strip_bidi(name)}”不能用作调研报告", hint="换一个以文字开头的文件名，如 东湖区助餐点调研报告.docx")
    if len(base.encode("utf-8")) > MAX_NAME_BYTES:
        raise InvalidCycleEdit(f"文件名过长（{len(base)} 字）：{base[:20]}…", hint="文件名不超过 60 个汉字")
    if Path(base).suffix.lower() not in SUPPORTED_SUFFIXES:
        raise InvalidCycleEdit(f"调研报告《{base}》的格式不支持",
                               hint="支持 " + "、".join(sorted(SUPPORTED_SUFFIXES)))
    return base


def check_size(name: str, size: int) -> None:
    """Refuse an empty file, or one over `MAX_REPORT_BYTES` (checked before a file is read)."""
    if not size:
        raise InvalidCycleEdit(f"调研报告《{name}》是空文件", hint="选择写好的报告文件")
    if size > MAX_REPORT_BYTES:
        raise InvalidCycleEdit(f"调研报告《{name}》过大（{size / 1e6:.1f} MB）",
                               hint=f"不超过 {MAX_REPORT_BYTES // (1024 * 1024)} MB")


def check_title(title: str | None) -> str | None:
    """A title given by hand: bidi controls dropped, at most `MAX_TITLE_CHARS`; empty is None."""
    text = strip_bidi(title or "").strip()
    if len(text) > MAX_TITLE_CHARS:
        raise InvalidCycleEdit(f"报告标题过长（{len(text)} 字）", hint=f"不超过 {MAX_TITLE_CHARS} 字")
    return text or None


def same_file(folders, content: bytes, name: str) -> str | None:
    """The name of a report, other than `name`, already kept in `folders` with these very bytes."""
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if (path.is_file() and path.name != name and not path.name.startswith((".", "_"))
                    and not path.name.endswith(SIDECAR_SUFFIX) and path.stat().st_size == len(content)
                    and path.read_bytes() == content):
                return path.name
    return None


def clash(folder: Path, name: str) -> str | None:
    """Another report of the task whose file shares `name`'s stem (and so its sidecar
    ``STEM.meta.yaml``, which makes it a 调研报告): 报告.md beside 报告.txt."""
    if not folder.is_dir():
        return None
    stem = Path(name).stem
    return next((p.name for p in sorted(folder.iterdir()) if p.is_file() and p.name != name
                 and not p.name.endswith(SIDECAR_SUFFIX) and p.stem == stem), None)


def author_of(path: Path) -> str | None:
    """Who attached the report kept at `path` (its sidecar's issuer); None when there is none."""
    try:
        meta = yaml.safe_load(sidecar_path(path).read_text(encoding="utf-8")) if path.exists() else None
    except (OSError, yaml.YAMLError):
        return None
    if not isinstance(meta, dict):
        return None
    return str(meta.get("issuer") or "") or None


def _previous(path: Path) -> Path:
    return path.with_name(f".{path.name}.previous")


def save_report(folder: Path, name: str, content: bytes, *, author: str, date: str, topic: str, task: str,
                title: str | None = None) -> Path:
    """Write the file and its sidecar; a file of the same name on the task is replaced (a new
    version of the same report keeps its document id). The version replaced is set aside until
    `keep_report` (the new one was indexed) or `remove_report` (it was not: the old one comes back)."""
    check_size(name, len(content))
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    target = folder / name
    for path in (target, sidecar_path(target)):
        if path.exists():
            os.replace(path, _previous(path))
    target.write_bytes(content)
    meta = {"doc_type": DOC_TYPES["research"], "issuer": author, "date": date, "tags": [topic, task]}
    if title:
        meta["title"] = title
    sidecar_path(target).write_text(yaml.safe_dump(meta, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return target


def remove_report(path: Path) -> None:
    """Take back a file that could not be indexed (and its sidecar); the version it replaced, if
    any, is put back."""
    for p in (path, sidecar_path(path)):
        if _previous(p).exists():
            os.replace(_previous(p), p)
        else:
            p.unlink(missing_ok=True)


def keep_report(path: Path) -> None:
    """The new version was indexed: the one it replaced goes."""
    for p in (path, sidecar_path(path)):
        _previous(p).unlink(missing_ok=True)


def doc_id_of(path: Path) -> str:
    return doc_id_for(str(Path(path).resolve()))


def files_of(folder: Path) -> dict[str, str]:
    """doc id → file name of the reports kept in a task's folder."""
    if not folder.is_dir():
        return {}
    return {doc_id_of(p): p.name for p in sorted(folder.iterdir())
            if p.is_file() and not p.name.endswith(SIDECAR_SUFFIX) and not p.name.startswith((".", "_"))}
