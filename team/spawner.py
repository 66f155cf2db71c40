"""What each person's server offers, by hub group (staff / member / expert).

- members (委员) and experts (专家): the Voila app only. JupyterLab, the language server and
  terminals are switched off, the kernels accept only the widget messages the app needs (as
  Voila's own standalone server does: no `execute_request`, so no code), and files are
  read-only (`team.contents`), so no notebook of one's own can be rendered either.
- staff (工作人员): the same app at the same address, plus JupyterLab with the notebooks.
- no group: the server is refused with a message saying whom to ask.

Each start copies the app notebook into the person's home, so an update of the product
reaches everyone at their next start. Kernels of closed tabs are culled after
`kernel_idle_seconds`; the hub's idle culler stops whole servers.

Two ways to run the servers (KB_SPAWNER in team/jupyterhub_config.py):
`SharedAccountSpawner` (default: demo, tests, a single-account machine) runs every server as
the hub's own system user with homes under the state folder; `TeamSpawner` runs each person's
server as their own system account in their own home, so a kernel cannot read the service's
files or anyone else's (the hub then runs as root).
"""
from __future__ import annotations

import os
import pwd
import shutil
from pathlib import Path

from jupyterhub.spawner import LocalProcessSpawner, SimpleLocalProcessSpawner
from tornado import web
from traitlets import Integer, Unicode

ROLE_ORDER = ("staff", "expert", "member")  # someone in several groups gets the first
ROLE_NAMES = {"staff": "工作人员", "expert": "专家", "member": "委员"}
APP_URL = "/voila/render/app.ipynb"
NO_ROLE = "您的账号已通过审核，但还没有分配身份（工作人员、委员或专家）。请联系政协办公室的工作人员在管理页面把您加入相应的组。"
# the messages voila's standalone server lets through to a kernel: widgets work, code does not run
WIDGET_MESSAGES = ("comm_open", "comm_close", "comm_msg", "comm_info_request", "kernel_info_request",
                   "shutdown_request")
APP_ONLY_OFF = ("jupyterlab", "jupyter_lsp", "jupyter_server_terminals", "notebook", "nbclassic")


def team_role(group_names) -> str | None:
    """The role a person works in, from their hub groups; None when they are in none of ours."""
    names = set(group_names)
    return next((role for role in ROLE_ORDER if role in names), None)


class TeamSpawner(LocalProcessSpawner):
    """Per-role arguments and environment, the app copied in; each server runs as the person's system account."""

    app_notebook = Unicode("", config=True, help="the app notebook copied into every home as app.ipynb")
    notebooks_dir = Unicode("", config=True, help="notebooks copied (once) into staff homes")
    kb_service_url = Unicode("", config=True, help="internal URL of the kb service (KB_SERVICE_URL: the app's team mode)")
    kernel_idle_seconds = Integer(600, config=True, help="cull a kernel with no open tab after this long idle")
    kernel_cull_interval = Integer(60, config=True, help="how often to look for idle kernels")

    @property
    def team_role(self) -> str | None:
        return team_role(group.name for group in self.user.groups)

    async def start(self):
        role = self.team_role
        if role is None:
            refusal = web.HTTPError(403, NO_ROLE)
            refusal.jupyterhub_message = NO_ROLE  # the hub shows only messages marked for users
            raise refusal
        self.default_url = APP_URL
        self.prepare_home(role)
        return await super().start()

    def home_path(self) -> Path:
        try:
            return Path(pwd.getpwnam(self.user.name).pw_dir)
        except KeyError:
            problem = web.HTTPError(500, f"服务器上没有名为 {self.user.name} 的系统账号，请联系管理员")
            problem.jupyterhub_message = problem.log_message
            raise problem from None

    def hand_over(self, path: Path) -> None:
        """Make a file the hub wrote into a home the person's own."""
        account = pwd.getpwnam(self.user.name)
        os.chown(path, account.pw_uid, account.pw_gid)

    def prepare_home(self, role: str) -> None:
        home = self.home_path()
        if not home.is_dir():
            raise web.HTTPError(500, f"{self.user.name} 的主目录 {home} 不存在")
        copies = [(Path(self.app_notebook), home / "app.ipynb")] if self.app_notebook else []
        if role == "staff" and self.notebooks_dir:
            copies += [(notebook, home / notebook.name) for notebook in Path(self.notebooks_dir).glob("*.ipynb")
                       if not (home / notebook.name).exists()]
        for source, target in copies:
            target.unlink(missing_ok=True)
            shutil.copyfile(source, target)
            self.hand_over(target)
        if role == "staff":
            self.settle_jupyterlab(home)

    def settle_jupyterlab(self, home: Path) -> None:
        """The office is offline: JupyterLab should not ask on first start whether to fetch news."""
        folder = home / ".jupyter" / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
        settings = folder / "notification.jupyterlab-settings"
        if settings.exists():
            return
        path = home
        for part in folder.relative_to(home).parts:
            path = path / part
            if not path.exists():
                path.mkdir()
                self.hand_over(path)
        settings.write_text('{"fetchNews": "false", "checkForUpdates": false}\n', encoding="utf-8")
        self.hand_over(settings)

    def get_args(self):
        args = super().get_args()
        args += [
            f"--MappingKernelManager.cull_idle_timeout={self.kernel_idle_seconds}",
            f"--MappingKernelManager.cull_interval={self.kernel_cull_interval}",
            "--MappingKernelManager.cull_connected=False",
            "--VoilaConfiguration.show_tracebacks=False",
        ]
        if self.runs_as_root():
            args.append("--ServerApp.allow_root=True")
        if self.team_role == "staff":  # JupyterLab, offline: no news feed, no update check
            args += ["--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
        else:
            args += [f"--ServerApp.jpserver_extensions={name}=False" for name in APP_ONLY_OFF]
            args += ["--ServerApp.terminals_enabled=False",
                     "--ServerApp.contents_manager_class=team.contents.ReadOnlyContentsManager"]
            args += [f"--MappingKernelManager.allowed_message_types={kind}" for kind in WIDGET_MESSAGES]
        return args

    def runs_as_root(self) -> bool:
        return pwd.getpwnam(self.user.name).pw_uid == 0

    def get_env(self):
        env = super().get_env()
        role = self.team_role or ""
        env.update(KB_USER=self.user.name, KB_ROLE=role)
        # the server imports team.contents; the kernel finds kb through the editable install
        repo = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [repo, env.get("PYTHONPATH")]))
        env["KB_SERVICE_URL"] = self.kb_service_url
        return env


class SharedAccountSpawner(TeamSpawner, SimpleLocalProcessSpawner):
    """Every server as the hub's own system user, homes under `home_dir_template` (no isolation)."""

    def home_path(self) -> Path:
        home = Path(self.home_dir)
        home.mkdir(parents=True, exist_ok=True)
        os.chmod(home, 0o700)
        return home

    def hand_over(self, path: Path) -> None:
        pass

    def runs_as_root(self) -> bool:
        return os.geteuid() == 0  # a test machine or a container
