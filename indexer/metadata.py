"""Document metadata: what the file says about itself, overridden by sidecars.

Order (later wins): inferred from text → header lines (发文机关：… 文号：…) →
folder `metadata.csv` row → `NAME.meta.yaml` sidecar.
"""
from __future__ import annotations

import csv
import re
from datetime import date
from pathlib import Path

import yaml

from .errors import LoadError

DOC_TYPES = {
    "policy": "政策法规",
    "speech": "领导讲话",
    "case": "案例模式",
    "expert": "专家论证",
    "minutes": "协商纪要",
    "research": "调研报告",
    "other": "其他",
}
DOC_TYPE_BY_LABEL = {label: key for key, label in DOC_TYPES.items()}
LEVELS = {"national": "国家", "provincial": "省级", "city": "市级", "county": "县区"}
VALIDITY = {"in_force": "现行有效", "amended": "已修订", "repealed": "已废止"}
VALIDITY_BY_LABEL = {"现行有效": "in_force", "有效": "in_force", "已修订": "amended", "已修改": "amended",
                     "已废止": "repealed", "失效": "repealed", "已失效": "repealed"}

FIELDS = ("title", "doc_type", "issuer", "doc_number", "date", "level", "region", "tags", "validity", "replaced_by")

# 文号: 机关代字 + 〔年份〕 + 序号 + 号, e.g. 青政发〔2023〕15号; brackets vary in the wild.
DOC_NUMBER_RE = re.compile(r"[\u4e00-\u9fa5]{1,12}[〔\[［【(（]\s*(?:19|20)\d{2}\s*[〕\]］】)）]\s*第?\d{1,4}\s*号")
_DATE_RE = re.compile(r"((?:19|20)\d{2})\s*[年\-/.]\s*(\d{1,2})\s*[月\-/.]\s*(\d{1,2})\s*日?")
_MONTH_RE = re.compile(r"((?:19|20)\d{2})\s*年\s*(\d{1,2})\s*月")
_HEADER_RE = re.compile(r"^([\u4e00-\u9fa5]{2,6})[：:]\s*(.+)$")
_HEADER_KEYS = {
    "发文机关": "issuer", "发布机关": "issuer", "制发机关": "issuer", "来源": "issuer", "单位": "issuer",
    "文号": "doc_number", "发文字号": "doc_number", "纪要文号": "doc_number",
    "发布日期": "date", "成文日期": "date", "印发日期": "date", "日期": "date", "时间": "date",
    "效力状态": "validity", "时效性": "validity",
    "替代文件": "replaced_by", "被替代为": "replaced_by",
    "讲话人": "speaker", "场合": "occasion", "论证专家": "experts", "协商形式": "consultation_format",
    "论证立场": "stance", "地点": "place",
    "主题词": "tags", "关键词": "tags", "地区": "region",
}


def normalise_doc_number(value: str) -> str:
    """Unify the brackets of a 文号 so 青政发[2023]15号 matches 青政发〔2023〕15号."""
    value = re.sub(r"\s+", "", value)
    value = re.sub(r"[\[［【(（]((?:19|20)\d{2})[\]］】)）]", r"〔\1〕", value)
    return value.replace("〔第", "〔")


def parse_date(value) -> str | None:
    """ISO date from 2023年6月12日 / 2023-06-12 / a `date`; 2024年10月 gives “2024-10”; None when unparsable."""
    if isinstance(value, date):
        return value.isoformat()
    match = _DATE_RE.search(str(value or ""))
    if not match:
        month = _MONTH_RE.search(str(value or ""))
        if month and 1 <= int(month.group(2)) <= 12:
            return f"{int(month.group(1)):04d}-{int(month.group(2)):02d}"
        return None
    year, month, day = (int(g) for g in match.groups())
    try:
        return date(year, month, day).isoformat()
    except ValueError:
        return None


def _header_lines(text: str, limit: int = 15) -> list[str]:
    return [line for line in text.split("\n")[:limit] if line.strip()]


def infer_doc_type(title: str, text: str, header: dict) -> str:
    head = title + "\n" + text[:300]
    if "纪要" in title:
        return "minutes"
    if "调研报告" in title:
        return "research"
    if "论证" in title or "专家意见" in title or "experts" in header:
        return "expert"
    if "讲话" in title or "致辞" in title or "speaker" in header:
        return "speech"
    if any(word in title for word in ("案例", "模式", "经验", "做法")):
        return "case"
    if header.get("doc_number") or re.search(r"(?m)^第[一二三四五六七八九十百]+条", text):
        return "policy"
    if any(word in title for word in ("办法", "条例", "规定", "意见", "方案", "通知", "细则", "规划", "计划", "规则")):
        return "policy"
    return "other" if "纪要" not in head else "minutes"


def infer_level(issuer: str) -> str | None:
    if not issuer:
        return None
    if any(word in issuer for word in ("国务院", "中共中央", "全国", "国家", "部")) and "省" not in issuer and "市" not in issuer:
        return "national"
    if "省" in issuer:
        return "provincial"
    if "县" in issuer or "区" in issuer:
        return "county"
    if "市" in issuer:
        return "city"
    return None


def from_text(text: str, properties: dict, path: Path) -> dict:
    """What the document says about itself: title, header lines, 文号, date, type."""
    lines = _header_lines(text)
    header: dict = {}
    for line in lines:
        match = _HEADER_RE.match(line.strip())
        if match and match.group(1) in _HEADER_KEYS:
            header.setdefault(_HEADER_KEYS[match.group(1)], match.group(2).strip())
    title = properties.get("title") or ""
    if not title or title.lower() in ("untitled", "无标题"):
        title = next((l.strip() for l in lines if not _HEADER_RE.match(l.strip()) and not l.startswith("【")), "")
    title = title or properties.get("heading") or path.stem
    meta: dict = {"title": title[:200]}
    head_text = "\n".join(lines)
    # Without a 文号： line, only a line that is nothing but a 文号 counts: one cited in the text is another document's.
    standalone = next((l.strip() for l in lines if DOC_NUMBER_RE.fullmatch(l.strip())), None)
    number = header.get("doc_number") or standalone
    if number:
        meta["doc_number"] = normalise_doc_number(number)
    meta["date"] = parse_date(header.get("date")) or parse_date(head_text) or parse_date(text[-200:])
    if header.get("issuer"):
        meta["issuer"] = header["issuer"]
    elif header.get("speaker"):
        meta["issuer"] = header["speaker"]
    if header.get("validity"):
        meta["validity"] = VALIDITY_BY_LABEL.get(header["validity"], "in_force")
    if header.get("replaced_by"):
        meta["replaced_by"] = header["replaced_by"]
    if header.get("tags"):
        meta["tags"] = [t for t in re.split(r"[;；,，、\s]+", header["tags"]) if t]
    if header.get("region"):
        meta["region"] = header["region"]
    meta["doc_type"] = infer_doc_type(meta["title"], text, header)
    level = infer_level(meta.get("issuer", ""))
    if level:
        meta["level"] = level
    extra = {k: v for k, v in header.items()
             if k in ("speaker", "occasion", "experts", "consultation_format", "stance", "place")}
    if extra:
        meta["extra"] = extra
    return meta


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.stem + ".meta.yaml")


def read_sidecar(path: Path) -> dict:
    """`NAME.meta.yaml` next to `NAME.ext`; a broken sidecar is an error naming it."""
    side = sidecar_path(path)
    if not side.exists():
        return {}
    try:
        data = yaml.safe_load(side.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise LoadError(side, f"元数据文件格式错误（{type(exc).__name__}）", hint="检查 YAML 缩进与冒号") from exc
    if not isinstance(data, dict):
        raise LoadError(side, "元数据文件应为“键: 值”形式")
    return clean(data)


def read_folder_csv(folder: Path) -> dict[str, dict]:
    """`metadata.csv` rows keyed by file name (column `file`)."""
    table = folder / "metadata.csv"
    if not table.exists():
        return {}
    try:
        with table.open(encoding="utf-8-sig", newline="") as fh:
            rows = list(csv.DictReader(fh))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise LoadError(table, f"metadata.csv 无法读取（{type(exc).__name__}）", hint="另存为 UTF-8 编码的 CSV") from exc
    return {row["file"].strip(): clean(row) for row in rows if row.get("file")}


def clean(values: dict) -> dict:
    """Keep known fields, normalise their shapes (tags list, ISO date, type keys)."""
    out: dict = {}
    for key in FIELDS:
        value = values.get(key)
        if value in (None, ""):
            continue
        if key == "tags":
            value = value if isinstance(value, list) else [t for t in re.split(r"[;；,，、]+", str(value)) if t.strip()]
            value = [str(t).strip() for t in value]
        elif key == "date":
            value = parse_date(value)
        elif key == "doc_type":
            value = DOC_TYPE_BY_LABEL.get(str(value), str(value))
            if value not in DOC_TYPES:
                value = "other"
        elif key == "validity":
            value = VALIDITY_BY_LABEL.get(str(value), str(value))
        elif key == "doc_number":
            value = normalise_doc_number(str(value))
        else:
            value = str(value).strip()
        if value:
            out[key] = value
    return out


def merge(*layers: dict) -> dict:
    merged: dict = {"validity": "in_force", "tags": []}
    for layer in layers:
        merged.update({k: v for k, v in layer.items() if v not in (None, "", [])})
    return merged
