"""JupyterHub configuration of the team server (`make team`, scripts/team.sh).

Everything comes from the environment, with defaults for one office machine:

| variable | default | what |
| --- | --- | --- |
| KB_TEAM_DIR | <repo>/team_data | state: hub database, cookie secret, proxy token, homes, the team knowledge base |
| KB_TEAM_HOME | $KB_TEAM_DIR/kb_data | the team knowledge base the kb service serves |
| KB_MODEL | models/multilingual-e5-small if built | embedding model of the kb service |
| KB_HUB_PORT | 8000 | the sign-in address http://127.0.0.1:PORT/ (the proxy) |
| KB_HUB_API_PORT | 8081 | the hub itself, loopback only |
| KB_PROXY_API_PORT | 8001 | the proxy's API, loopback only |
| KB_SERVICE_PORT | 8002 | the kb service, loopback only |
| KB_DATABASE_URL | the cluster in .team-pg/ | the team knowledge base's PostgreSQL database (scripts/team.sh starts .team-pg/ when unset) |
| KB_DEMO_PASSWORD | (none) | demo-staff, demo-member, demo-expert with this password |
| KB_STAFF_USERS | (none) | names put in the staff group at every start; their sign-up needs no approval |
| KB_SERVER_IDLE_SECONDS | 3600 | stop a person's server after this long without activity |
| KB_KERNEL_IDLE_SECONDS | 600 | cull an app kernel whose tab was closed after this long |
| KB_CULL_EVERY_SECONDS | 60 | how often both cullers look |
| KB_SPAWNER | shared | `shared`: every server as the hub's system user, homes in $KB_TEAM_DIR/homes; `system-users`: each person's server as their own system account in their home (hub as root) |

Staff approve accounts and assign groups without being hub admins: the `staff` group has a
role with `admin:users` (NativeAuthenticator's approval page, the admin page), `admin:groups`
and `admin:servers` (start/stop servers) — not `access:servers`, so no staff member can enter
another person's server, and only a hub admin can make someone an admin.
"""
import os
import secrets
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from team.authenticator import DEMO_ACCOUNTS, TeamAuthenticator  # noqa: E402
from team.spawner import SharedAccountSpawner, TeamSpawner  # noqa: E402

c = get_config()  # noqa: F821 (provided by JupyterHub when it reads this file)
os.umask(0o077)  # every file the hub, the proxy, the services and the servers create: 0600


def setting(name: str, default: str) -> str:
    return os.environ.get(name) or default


def secret_file(path: Path) -> Path:
    """A random secret kept in `path` (0600), made on first use."""
    if not path.exists():
        path.write_text(secrets.token_hex(32) + "\n")
    os.chmod(path, 0o600)
    return path


STATE = Path(setting("KB_TEAM_DIR", str(REPO / "team_data"))).resolve()
STATE.mkdir(parents=True, exist_ok=True)
os.chmod(STATE, 0o700)
TEAM_HOME = Path(setting("KB_TEAM_HOME", str(STATE / "kb_data")))
DEFAULT_MODEL = REPO / "models" / "multilingual-e5-small"
KB_MODEL = setting("KB_MODEL", str(DEFAULT_MODEL) if (DEFAULT_MODEL / "config.json").exists() else "")
HUB_PORT = int(setting("KB_HUB_PORT", "8000"))
HUB_API_PORT = int(setting("KB_HUB_API_PORT", "8081"))
PROXY_API_PORT = int(setting("KB_PROXY_API_PORT", "8001"))
SERVICE_PORT = int(setting("KB_SERVICE_PORT", "8002"))
SERVER_IDLE = int(setting("KB_SERVER_IDLE_SECONDS", "3600"))
KERNEL_IDLE = int(setting("KB_KERNEL_IDLE_SECONDS", "600"))
CULL_EVERY = int(setting("KB_CULL_EVERY_SECONDS", "60"))
DEMO_PASSWORD = os.environ.get("KB_DEMO_PASSWORD", "")
SPAWNER = setting("KB_SPAWNER", "shared")
STAFF_USERS = [name.strip() for name in os.environ.get("KB_STAFF_USERS", "").split(",") if name.strip()]
SERVICE_URL = f"http://127.0.0.1:{SERVICE_PORT}"
DATABASE_URL = os.environ.get("KB_DATABASE_URL", "")  # scripts/team.sh: the project's PostgreSQL, or yours

# --- the hub, the proxy and their state ----------------------------------------------------------
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = HUB_PORT
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = HUB_API_PORT
c.JupyterHub.db_url = f"sqlite:///{STATE / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(secret_file(STATE / "jupyterhub_cookie_secret"))
c.JupyterHub.pid_file = str(STATE / "jupyterhub.pid")
c.ConfigurableHTTPProxy.auth_token = secret_file(STATE / "proxy_token").read_text().strip()
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{PROXY_API_PORT}"
c.ConfigurableHTTPProxy.pid_file = str(STATE / "jupyterhub-proxy.pid")
c.ConfigurableHTTPProxy.command = [str(REPO / ".team-node" / "node_modules" / ".bin" / "configurable-http-proxy")]
c.JupyterHub.cleanup_servers = True  # stopping the hub stops every person's server
c.JupyterHub.template_paths = [str(REPO / "team" / "templates")]  # the sign-in page in Chinese

# --- accounts: sign up, approved by staff ---------------------------------------------------------
c.JupyterHub.authenticator_class = TeamAuthenticator
c.Authenticator.allow_all = True  # anyone staff approved may sign in; the group decides what they get
c.NativeAuthenticator.minimum_password_length = 8
c.NativeAuthenticator.check_common_password = True
c.NativeAuthenticator.allowed_failed_logins = 5
c.NativeAuthenticator.seconds_before_next_try = 600
c.TeamAuthenticator.demo_password = DEMO_PASSWORD
c.Authenticator.allowed_users = set(STAFF_USERS)  # pre-approved at sign-up (NativeAuthenticator)

groups = {"staff": set(STAFF_USERS), "member": set(), "expert": set()}
if DEMO_PASSWORD:
    for name, group in DEMO_ACCOUNTS.items():
        groups[group].add(name)
c.JupyterHub.load_groups = {name: {"users": sorted(users)} for name, users in groups.items()}

roles = [
    {"name": "staff", "description": "工作人员：审核账号、分配组、启停服务器",
     "scopes": ["admin-ui", "admin:users", "admin:groups", "admin:servers", "list:services"],
     "groups": ["staff"]},
    {"name": "idle-culler", "description": "stop servers idle for KB_SERVER_IDLE_SECONDS",
     "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
     "services": ["idle-culler"]},
]

# --- per-person servers ----------------------------------------------------------------------------
if SPAWNER not in ("shared", "system-users"):
    raise SystemExit(f"KB_SPAWNER={SPAWNER}：只能是 shared 或 system-users")
c.JupyterHub.spawner_class = SharedAccountSpawner if SPAWNER == "shared" else TeamSpawner
c.SharedAccountSpawner.home_dir_template = str(STATE / "homes" / "{username}")
c.TeamSpawner.app_notebook = str(REPO / "notebooks" / "app.ipynb")
c.TeamSpawner.notebooks_dir = str(REPO / "notebooks")
c.TeamSpawner.kb_service_url = f"{SERVICE_URL}/services/kb/"
c.TeamSpawner.kernel_idle_seconds = KERNEL_IDLE
c.TeamSpawner.kernel_cull_interval = min(CULL_EVERY, KERNEL_IDLE)
c.Spawner.cmd = [str(Path(sys.executable).parent / "jupyterhub-singleuser")]
c.Spawner.http_timeout = 120
c.Spawner.start_timeout = 120
# jupyterhub 5.5's default (the `server` role's scopes) plus calling the kb service
c.Spawner.server_token_scopes = ["users:activity!user", "access:servers!server", "access:services!service=kb"]

# --- services: the knowledge base and the idle culler ---------------------------------------------
c.JupyterHub.services = [
    {"name": "idle-culler",
     "command": [sys.executable, "-m", "jupyterhub_idle_culler", f"--timeout={SERVER_IDLE}",
                 f"--cull-every={min(CULL_EVERY, SERVER_IDLE)}"]},
    {"name": "kb",
     "command": [sys.executable, "-m", "kb.service"],
     "url": SERVICE_URL,
     "cwd": str(REPO),
     "display": False,  # no page of its own; the app talks to it
     "oauth_no_confirm": True,  # the office's own service: no "authorize access?" page
     "environment": {"KB_HOME": str(TEAM_HOME), **({"KB_MODEL": KB_MODEL} if KB_MODEL else {}),
                     **({"KB_DATABASE_URL": DATABASE_URL} if DATABASE_URL else {})}},
]
roles += [
    {"name": "kb-service", "description": "the kb service looks up a person's name and groups (role)",
     "scopes": ["list:users", "read:users:name", "read:users:groups", "list:groups", "read:groups"],
     "services": ["kb"]},
    {"name": "kb-user", "description": "use the knowledge base (every role)",
     "scopes": ["access:services!service=kb"], "groups": ["staff", "member", "expert"]},
]
c.JupyterHub.load_roles = roles
