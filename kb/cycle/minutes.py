"""Drafting the 协商纪要 from what was said: the consultation's facts, then the proposals grouped
by theme, each traced to the member or expert who made it and to the policy passage it builds on.

Nothing is written here that nobody said: a proposal is a sentence (or a span staff marked) of a
speech, verbatim; its passage is a verbatim span of an indexed policy found by searching with
the proposal's own words. Facts are the topic's recorded fields, as label and value.
"""
from __future__ import annotations

import hashlib
import re
from typing import Callable

from ..exports import _chinese_date
from .model import MinutesItem, MinutesTheme, Speech

OTHER_THEME = "其他意见建议"
# A sentence that asks for something: the speakers' own way of making a proposal.
_PROPOSING = re.compile(r"建议|应当|应该|呼吁|希望|要把|要加快|要建立|必须|亟需|可以借鉴|可借鉴")
_SENTENCE = re.compile(r"[^。！？；\n]+[。！？；]?")
MAX_QUOTE = 200  # characters of the cited passage kept (a verbatim prefix of the best sentence or passage)


def sentences(text: str) -> list[str]:
    """The sentences of `text` as they stand in it (stripped of surrounding white space)."""
    return [s.strip() for s in _SENTENCE.findall(text or "") if len(s.strip()) >= 4]


def proposal_spans(speech: Speech) -> list[tuple[str, str]]:
    """(text, theme) of each proposal in a speech: those staff marked, else its proposing sentences."""
    if speech.proposals:
        return [(p["text"], p.get("theme") or speech.theme or OTHER_THEME) for p in speech.proposals]
    return [(s, speech.theme or OTHER_THEME) for s in sentences(speech.text) if _PROPOSING.search(s)]


def proposal_id(topic_id: str, text: str) -> str:
    """Stable across redrafts, so instructions and handling stay attached to the same proposal."""
    return "p-" + hashlib.sha1(f"{topic_id}\n{text}".encode("utf-8")).hexdigest()[:10]


def cite(text: str, search: Callable | None) -> dict:
    """The policy passage a proposal builds on: the best non-weak policy hit for its own words."""
    if search is None:
        return {}
    try:
        hits = search(text, 5, doc_types=["policy"])
    except Exception:  # noqa: BLE001 - no index yet: the proposal stands without a passage
        return {}
    hit = next((h for h in hits if not h.weak), None)
    if hit is None:
        return {}
    focus = hit.focus_text()
    if focus and len(focus.strip()) >= 16:  # a heading alone (（七）建立补助机制。) says nothing: quote the passage
        start = hit.focus[0]
        quote = focus
    else:
        start, quote = hit.start, hit.text
    quote = quote.strip()[:MAX_QUOTE]
    offset = (focus or hit.text).find(quote)
    start += max(offset, 0)
    return {"doc_id": hit.doc_id, "title": hit.title, "formatted": hit.citation.formatted(), "quote": quote,
            "start": start, "end": start + len(quote), "label": hit.label}


def draft_themes(topic_id: str, speeches: list[Speech], search: Callable | None,
                 keep: dict[str, tuple[MinutesItem, str]] | None = None) -> list[MinutesTheme]:
    """Proposals by theme, themes in the order they first come up. `keep` holds the items of the
    previous version (proposal id → item and theme): staff's edits and regrouping stay."""
    themes: dict[str, MinutesTheme] = {}
    seen: set[str] = set()
    for speech in speeches:
        for text, theme in proposal_spans(speech):
            pid = proposal_id(topic_id, text)
            if pid in seen:
                continue
            seen.add(pid)
            kept = (keep or {}).get(pid)
            if kept is not None:
                item, theme = kept
            else:
                item = MinutesItem(pid, text, speech.speaker, speech.speaker_role, speech.affiliation,
                                   speech.speech_id, cite(text, search))
            themes.setdefault(theme, MinutesTheme(theme)).items.append(item)
    return list(themes.values())


def facts(topic, plan, speeches: list[Speech], given: list[list[str]] | None = None) -> list[list[str]]:
    """The consultation's facts as label and value: the topic's fields, the meeting date, who spoke;
    facts staff wrote in an earlier version (地点, 主持…) are kept."""
    out = [["协商议题", topic.title], ["协商形式", topic.format]]
    if plan.meeting_date:
        out.append(["时间", _chinese_date(plan.meeting_date)])
    if topic.lead:
        out.append(["牵头单位", topic.lead])
    if topic.sectors:
        out.append(["参与界别", "、".join(topic.sectors)])
    research = [t for t in plan.tasks if t.kind in ("visit", "trip")]
    if research:
        out.append(["会前调研", "；".join(f"{t.date or ''} {t.title}".strip() for t in research)])
    speakers = [s.speaker for s in speeches if s.speaker_role == "member"]
    experts = [s.speaker for s in speeches if s.speaker_role == "expert"]
    if speakers:
        out.append(["委员发言", "、".join(speakers)])
    if experts:
        out.append(["专家发言", "、".join(experts)])
    labels = {label for label, _ in out}
    out += [list(f) for f in given or [] if f[0] not in labels]
    return out
