"""Briefing packs (调研资料汇编): the dossier staff compile for a consultation topic.

A pack has five sections — 政策法规, 领导讲话, 案例模式, 专家论证意见, 往期协商 — of
items, each a verbatim passage of a document (`document.text[start:end]`) with its
citation. `PackService.draft` fills the sections from searches built from the topic;
staff then add, drop, move, reorder, annotate and mark items, and every change saves a
new version.

One concept per module: `model` (the pack as data), `drafting` (searching and choosing
passages), `service` (`kb.packs`: versions, edits, export). Storage is `kb.storage.packs`,
the export formats `kb.exports`.
"""
from ..errors import InvalidPackEdit, PackNotFound
from .drafting import (DEFAULT_PER_SECTION, Relevance, core_title, draft_sections, item_from_hit, passage_span,
                       topic_queries)
from .model import (MAX_NOTE_CHARS, MAX_QUOTE_CHARS, SECTION_KEYS, SECTION_LABELS, SECTIONS, BriefingPack, PackItem,
                    PackSection, PackVersion, section_key)
from .service import DEFAULT_OFFICE, PackService

__all__ = ["DEFAULT_OFFICE", "DEFAULT_PER_SECTION", "MAX_NOTE_CHARS", "MAX_QUOTE_CHARS", "SECTIONS", "SECTION_KEYS",
           "SECTION_LABELS", "BriefingPack", "InvalidPackEdit", "PackItem", "PackNotFound", "PackSection",
           "PackService", "PackVersion", "Relevance", "core_title", "draft_sections", "item_from_hit",
           "passage_span", "section_key", "topic_queries"]
