"""Named moments of indexing where a test can have the process killed for real.

`KB_FAILPOINT=NAME` makes the process SIGKILL itself when it reaches `reached(NAME)`:
no cleanup, no `finally`, exactly like a power cut or `kill -9`. The crash tests use it
to stop a run between two steps deterministically; unset, it costs one dict lookup."""
from __future__ import annotations

import os
import signal
import sys

POINTS = {
    "batch-stored": "a batch of chunks is committed; the rest of the file is not",
    "documents-stored": "every document is stored; nothing is published yet",
    "generation-written": "the new generation's folder is complete; manifest.json still names the old one",
    "manifest-published": "manifest.json names the new generation; retired rows are not purged yet",
}


def reached(name: str) -> None:
    if os.environ.get("KB_FAILPOINT") == name:
        print(f"failpoint {name}", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
