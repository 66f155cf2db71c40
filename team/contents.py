"""Read-only files for the app-only servers of members and experts.

Voila executes any notebook it is asked to render, so a member who could save a notebook
through the contents API could run code; with this manager nothing can be saved, renamed or
deleted, and the only notebook there is the app copied in by the spawner.
"""
from __future__ import annotations

from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from tornado import web

REFUSAL = "此账号只能使用协商研究助手，不能保存或修改文件"


class ReadOnlyContentsManager(AsyncLargeFileManager):
    """Files can be listed and read, never written."""

    async def save(self, model, path=""):
        raise web.HTTPError(403, REFUSAL)

    async def delete_file(self, path):
        raise web.HTTPError(403, REFUSAL)

    async def rename_file(self, old_path, new_path):
        raise web.HTTPError(403, REFUSAL)

    async def new(self, model=None, path=""):
        raise web.HTTPError(403, REFUSAL)

    async def new_untitled(self, path="", type="", ext=""):
        raise web.HTTPError(403, REFUSAL)

    async def copy(self, from_path, to_path=None):
        raise web.HTTPError(403, REFUSAL)

    async def create_checkpoint(self, path):
        raise web.HTTPError(403, REFUSAL)

    async def restore_checkpoint(self, checkpoint_id, path):
        raise web.HTTPError(403, REFUSAL)
