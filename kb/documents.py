"""Documents as the kb layer sees them: metadata, text, and chunk provenance."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from indexer.metadata import DOC_TYPES, LEVELS, VALIDITY


@dataclass
class ChunkInfo:
    chunk_id: int
    ordinal: int
    label: str
    page: int | None
    start: int
    end: int
    content_hash: str


@dataclass
class Document:
    doc_id: str
    title: str
    doc_type: str
    source: str
    issuer: str | None = None
    doc_number: str | None = None
    date: str | None = None
    level: str | None = None
    region: str | None = None
    tags: list[str] = field(default_factory=list)
    validity: str = "in_force"
    replaced_by: str | None = None
    extra: dict = field(default_factory=dict)
    text: str = ""
    text_hash: str = ""
    pages: list = field(default_factory=list)
    encoding: str | None = None
    indexed_at: str | None = None
    chunks: list[ChunkInfo] = field(default_factory=list)

    @property
    def type_label(self) -> str:
        return DOC_TYPES.get(self.doc_type, self.doc_type)

    @property
    def level_label(self) -> str:
        return LEVELS.get(self.level or "", self.level or "")

    @property
    def validity_label(self) -> str:
        return VALIDITY.get(self.validity, self.validity)

    def as_dict(self, with_text: bool = True) -> dict:
        data = asdict(self)
        if not with_text:
            data.pop("text")
            data.pop("chunks")
        data["type_label"] = self.type_label
        return data


def document_from_row(row, chunks=()) -> Document:
    return Document(
        doc_id=row["doc_id"], title=row["title"], doc_type=row["doc_type"], source=row["source"],
        issuer=row["issuer"], doc_number=row["doc_number"], date=row["date"], level=row["level"],
        region=row["region"], tags=json.loads(row["tags"] or "[]"), validity=row["validity"],
        replaced_by=row["replaced_by"], extra=json.loads(row["extra"] or "{}"), text=row["text"],
        text_hash=row["text_hash"], pages=json.loads(row["pages"] or "[]"), encoding=row["encoding"],
        indexed_at=row["indexed_at"],
        chunks=[ChunkInfo(c["chunk_id"], c["ordinal"], c["label"], c["page"], c["start"], c["end"],
                          c["content_hash"]) for c in chunks])
