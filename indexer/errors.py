"""Typed errors of the indexer. The CLI and widgets turn them into one readable line."""


class KBError(Exception):
    """Base of every expected problem; `hint` tells the user what to do next."""

    hint: str = ""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        if hint:
            self.hint = hint

    def user_message(self) -> str:
        text = str(self)
        return f"{text}（{self.hint}）" if self.hint else text


class LoadError(KBError):
    """A file could not be read into text (broken, empty, wrong encoding…)."""

    def __init__(self, path, reason: str, hint: str = ""):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}", hint)


class UnsupportedFormat(LoadError):
    """The file extension is not one we can read."""


class EmptyDocument(LoadError):
    """The file holds no text (empty file, scanned PDF without a text layer…)."""


class IndexMismatch(KBError):
    """The index on disk was built with another model, settings or schema."""


class IndexLocked(KBError):
    """Another process is writing the same knowledge base."""


class IndexNotFound(KBError):
    """No index has been built in this knowledge-base folder yet."""


class ModelNotAvailable(KBError):
    """The embedding model folder is missing or cannot be loaded."""


class DocumentNotFound(KBError):
    """No document with this id in the knowledge base."""


class InvalidQuery(KBError):
    """The query is empty, only stop words, or otherwise unusable."""


class IndexDamaged(KBError):
    """A published search file (manifest, vectors, keyword index) is unreadable or cut short."""
