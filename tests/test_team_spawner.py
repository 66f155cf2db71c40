"""team/spawner.py without a hub: which role a person works in, and what their server is started with.

The real hub, proxy and browser are in tests/test_team_hub.py (slow).
"""
from __future__ import annotations

import asyncio
import json
import os
import pwd
from pathlib import Path
from types import SimpleNamespace

import pytest
from jupyterhub.objects import Hub
from tornado import web

from team.authenticator import DEMO_ACCOUNTS, TeamAuthenticator
from team.spawner import APP_URL, NO_ROLE, SharedAccountSpawner, TeamSpawner, team_role

from .conftest import REPO


def person(name: str, *groups: str):
    return SimpleNamespace(name=name, groups=[SimpleNamespace(name=g) for g in groups], url=f"/user/{name}/",
                           escaped_name=name, server=None)


def spawner(cls, tmp_path, name: str, *groups: str, **settings):
    if cls is SharedAccountSpawner:
        settings["home_dir_template"] = str(tmp_path / "{username}")
    return cls(user=person(name, *groups), hub=Hub(), app_notebook=str(REPO / "notebooks" / "app.ipynb"), notebooks_dir=str(REPO / "notebooks"),
               **settings)


def test_the_widest_group_decides_the_role():
    assert team_role(["member", "staff"]) == "staff"
    assert team_role(["expert", "member"]) == "expert"
    assert team_role(["member"]) == "member"
    assert team_role([]) is None and team_role(["other"]) is None
    assert sorted(DEMO_ACCOUNTS.values()) == ["expert", "member", "staff"]


def test_members_and_experts_get_the_app_only(tmp_path):
    for group in ("member", "expert"):
        args = spawner(SharedAccountSpawner, tmp_path, "li", group).get_args()
        assert "--ServerApp.jpserver_extensions=jupyterlab=False" in args
        assert "--ServerApp.terminals_enabled=False" in args
        assert "--ServerApp.contents_manager_class=team.contents.ReadOnlyContentsManager" in args
        allowed = [a.split("=", 1)[1] for a in args if a.startswith("--MappingKernelManager.allowed_message_types=")]
        assert "comm_msg" in allowed and "execute_request" not in allowed


def test_staff_keep_jupyterlab_and_every_server_culls_idle_kernels(tmp_path):
    args = spawner(SharedAccountSpawner, tmp_path, "wang", "staff", kernel_idle_seconds=42).get_args()
    assert not [a for a in args if "jpserver_extensions" in a or "allowed_message_types" in a]
    assert "--LabApp.news_url=None" in args  # offline: JupyterLab asks no one for news
    assert "--MappingKernelManager.cull_idle_timeout=42" in args
    assert "--MappingKernelManager.cull_connected=False" in args


def test_the_server_is_told_where_the_kb_service_is(tmp_path):
    env = spawner(SharedAccountSpawner, tmp_path, "li", "member",
                  kb_service_url="http://127.0.0.1:8002/services/kb/").get_env()
    assert env["KB_SERVICE_URL"] == "http://127.0.0.1:8002/services/kb/"
    assert (env["KB_USER"], env["KB_ROLE"]) == ("li", "member")
    assert "KB_HOME" not in env


def test_someone_in_no_group_is_refused_with_whom_to_ask(tmp_path):
    with pytest.raises(web.HTTPError) as refused:
        asyncio.run(spawner(SharedAccountSpawner, tmp_path, "zhao").start())
    assert refused.value.status_code == 403 and refused.value.jupyterhub_message == NO_ROLE
    assert not (tmp_path / "zhao").exists()


def test_homes_get_the_app_and_staff_the_notebooks(tmp_path):
    member = spawner(SharedAccountSpawner, tmp_path, "li", "member")
    member.prepare_home("member")
    assert sorted(p.name for p in (tmp_path / "li").iterdir()) == ["app.ipynb"]
    assert (tmp_path / "li").stat().st_mode & 0o777 == 0o700
    staff = spawner(SharedAccountSpawner, tmp_path, "wang", "staff")
    (tmp_path / "wang").mkdir()
    (tmp_path / "wang" / "检索.ipynb").write_text("my own edits")
    staff.prepare_home("staff")
    names = {p.name for p in (tmp_path / "wang").iterdir()}
    assert {p.name for p in (REPO / "notebooks").glob("*.ipynb")} <= names
    assert (tmp_path / "wang" / "检索.ipynb").read_text() == "my own edits"  # kept
    assert json.loads((tmp_path / "wang" / "app.ipynb").read_text())["cells"]  # refreshed every start
    lab_settings = tmp_path / "wang/.jupyter/lab/user-settings/@jupyterlab/apputils-extension"
    assert json.loads((lab_settings / "notification.jupyterlab-settings").read_text())["fetchNews"] == "false"
    assert not (tmp_path / "li" / ".jupyter").exists()


def test_with_system_accounts_the_copies_belong_to_the_person(tmp_path, monkeypatch):
    home = tmp_path / "home-li"
    home.mkdir()
    me = pwd.getpwuid(os.getuid())
    account = SimpleNamespace(pw_dir=str(home), pw_uid=me.pw_uid, pw_gid=me.pw_gid)
    monkeypatch.setattr(pwd, "getpwnam", lambda name: account if name == "li" else (_ for _ in ()).throw(KeyError(name)))
    chowned = []
    monkeypatch.setattr(os, "chown", lambda path, uid, gid: chowned.append((Path(path).name, uid, gid)))
    server = spawner(TeamSpawner, tmp_path, "li", "member")
    server.prepare_home("member")
    assert chowned == [("app.ipynb", me.pw_uid, me.pw_gid)]
    assert ("--ServerApp.allow_root=True" in server.get_args()) == (me.pw_uid == 0)
    with pytest.raises(web.HTTPError, match="系统账号"):
        spawner(TeamSpawner, tmp_path, "nobody-here", "member").prepare_home("member")


def test_the_default_url_is_the_app():
    assert APP_URL == "/voila/render/app.ipynb"


def test_demo_accounts_follow_the_demo_password():
    from jupyterhub import orm
    from nativeauthenticator.orm import UserInfo

    db = orm.new_session_factory("sqlite://")()
    TeamAuthenticator(db=db, demo_password="Qx-demo-2941", minimum_password_length=8)
    infos = {info.username: info for info in UserInfo.all_users(db)}
    assert sorted(infos) == sorted(DEMO_ACCOUNTS)
    assert all(i.is_authorized and i.is_valid_password("Qx-demo-2941") for i in infos.values())
    assert all(b"Qx-demo-2941" not in i.password for i in infos.values())  # a bcrypt hash only
    TeamAuthenticator(db=db, demo_password="Qx-other-7719", minimum_password_length=8)
    assert UserInfo.find(db, "demo-staff").is_valid_password("Qx-other-7719")
    TeamAuthenticator(db=db, demo_password="")  # started without KB_DEMO_PASSWORD: disabled
    assert not any(UserInfo.find(db, name).is_authorized for name in DEMO_ACCOUNTS)
    with pytest.raises(ValueError, match="KB_DEMO_PASSWORD"):
        TeamAuthenticator(db=orm.new_session_factory("sqlite://")(), demo_password="short",
                          minimum_password_length=8)
