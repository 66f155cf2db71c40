"""Citations: how a quoted passage is attributed in results and exports."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from indexer.metadata import DOC_TYPES


@dataclass(frozen=True)
class Citation:
    doc_id: str
    title: str
    doc_type: str
    issuer: str | None
    doc_number: str | None
    date: str | None
    page: int | None
    label: str | None
    start: int
    end: int
    quote: str
    source: str | None = None
    validity: str | None = None

    def formatted(self) -> str:
        """《标题》（文号，发文机关，日期），第N页，第X条 — the form used in dossiers."""
        inner = "，".join(x for x in (self.doc_number, self.issuer, _chinese_date(self.date)) if x)
        parts = [f"《{self.title}》" + (f"（{inner}）" if inner else "")]
        if self.page:
            parts.append(f"第{self.page}页")
        if self.label:
            parts.append(self.label)
        text = "，".join(parts)
        if self.validity and self.validity != "in_force":
            text += "（" + {"amended": "已修订", "repealed": "已废止"}.get(self.validity, self.validity) + "）"
        return text

    @property
    def type_label(self) -> str:
        return DOC_TYPES.get(self.doc_type, self.doc_type)

    def as_dict(self) -> dict:
        data = asdict(self)
        data["formatted"] = self.formatted()
        return data


def _chinese_date(iso: str | None) -> str | None:
    if not iso:
        return None
    parts = iso.split("-")
    if not all(p.isdigit() for p in parts):
        return iso
    return "".join(f"{int(p)}{unit}" for p, unit in zip(parts, "年月日"))
