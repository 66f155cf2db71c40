"""How expert notes (论证意见) look on the page; shared by the viewer, the expert panel and the pack builder."""
from __future__ import annotations

import pandas as pd

from ._common import esc, shorten

from kb.annotations import STANCE_CSS, STANCES  # noqa: F401  (widgets import them from here)


def notes_for_document(kb, doc_id: str) -> list:
    return kb.notes.find(doc_id=doc_id)


def _when(value) -> str:
    return esc(str(value or "").replace("T", " ")[:16])


def _lines(text: str) -> str:
    return "<br>".join(esc(line) for line in (text or "").splitlines())


def note_html(note, *, show_quote: bool = True, title: str = "") -> str:
    """One note with its replies; every user-written string is escaped."""
    cls = f"xs-note xs-note-{STANCE_CSS.get(note.stance, 'other')}" + (" xs-note-orphan" if note.orphaned else "")
    status = ""
    if note.status != "anchored":
        status = f'<span class="xs-badge xs-badge-warn">{esc(note.status_label)}</span>'
    where = f'<div class="xs-note-meta">《{esc(shorten(title, 36))}》</div>' if title else ""
    quote = (f'<div class="xs-note-meta">引文：<span class="xs-quote">{esc(shorten(note.quote, 90))}</span></div>'
             if show_quote and note.quote else "")
    replies = "".join(
        f'<div class="xs-reply"><span class="xs-note-meta">↳ {esc(r.author)}（{esc(r.role_label)}）· {_when(r.created)}'
        f'</span><br>{_lines(r.text)}</div>' for r in note.replies)
    return (f'<div class="{cls}"><span class="xs-badge xs-stance-{STANCE_CSS.get(note.stance, "other")}">'
            f'{esc(note.stance)}</span>{status}'
            f'<span class="xs-note-meta">{esc(note.author)}（{esc(note.role_label)}）· {_when(note.created)}</span>'
            f'{where}{quote}<div>{_lines(note.text)}</div>{replies}</div>')


def notes_table(notes, titles: dict[str, str] | None = None) -> pd.DataFrame:
    """Notes as a table a user scans: stance, author, document, quote, note, replies, state."""
    titles = titles or {}
    rows = [{"立场": n.stance, "作者": n.author, "文档": shorten(titles.get(n.doc_id, n.doc_id), 20),
             "引文": shorten(n.quote, 30), "意见": shorten(n.text, 60), "回复": len(n.replies),
             "时间": str(n.created).replace("T", " ")[5:16],
             "定位": "" if n.status == "anchored" else n.status_label} for n in notes]
    return pd.DataFrame(rows, columns=["立场", "作者", "文档", "引文", "意见", "回复", "时间", "定位"])
