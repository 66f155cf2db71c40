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


class InvalidTopic(KBError):
    """A topic field has a value we cannot store (unknown format, step, bad year…)."""


class NoteNotFound(KBError):
    """No expert note (论证意见) with this id."""


class InvalidNote(KBError):
    """A note cannot be saved as given: empty text, unknown stance, a quote not in the document."""


class StorageError(KBError):
    """The knowledge base's database cannot be used as it is; nothing was changed."""


class KnowledgeBaseExists(KBError):
    """`kb init` where there already is a knowledge base; nothing was changed."""


class DatabaseDamaged(StorageError):
    """kb.sqlite is missing, empty, cut short, not a SQLite file, or not ours."""


class SchemaTooNew(StorageError):
    """kb.sqlite was written by a newer version of this program."""


class StaleEdit(KBError):
    """An edit was made on a version someone else has changed since; it was not applied."""


class BackupError(KBError):
    """A backup could not be written or restored."""


class PackNotFound(KBError):
    """The topic has no briefing pack (调研资料汇编) yet, or not this version."""


class InvalidPackEdit(KBError):
    """A pack edit that cannot be applied: unknown item or section, quote too long, duplicate…"""


class BenchError(KBError):
    """A bench folder is missing files, is malformed, or its ids do not match."""
