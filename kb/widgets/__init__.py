"""ipywidgets panels of 协商研究助手; the notebooks in notebooks/ only compose these.

Import the panels from their modules or from here:
`from kb.widgets import ResearchApp, SearchPanel, DocumentViewer, BriefingBuilder, ExpertPanel, IndexingPanel`.
"""
from importlib import import_module

_EXPORTS = {
    "ResearchApp": "app", "SearchPanel": "search_panel", "DocumentViewer": "document_viewer",
    "BriefingBuilder": "briefing_builder", "ExpertPanel": "expert_panel", "IndexingPanel": "indexing_panel",
    "open_knowledge_base": "_common",
}


def __getattr__(name):  # lazy, so importing one panel does not load the others
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(name)


__all__ = list(_EXPORTS)
