"""Errors of the kb layer; all share `KBError` with the indexer's."""
from indexer.errors import (DocumentNotFound, EmptyDocument, IndexLocked, IndexMismatch,  # noqa: F401
                            IndexNotFound, InvalidQuery, KBError, LoadError, ModelNotAvailable,
                            UnsupportedFormat)


class PermissionDenied(KBError):
    """The current role may not take this action."""


class TopicNotFound(KBError):
    """No consultation topic with this id or title."""


class ExportError(KBError):
    """An export could not be written."""
