"""A stand-in for JupyterHub's REST API in the fast service tests: it answers the two calls
the knowledge-base service makes — who owns this token (GET /hub/api/user) and which groups an
account is in (GET /hub/api/users/NAME, with the service's own token). The slow tests run the
real hub (tests/team_server.py).

    python tests/hub_double.py PORT ACCOUNTS_JSON

ACCOUNTS_JSON maps a token to {"name": …, "groups": […], "scopes": […]}; the token "service"
is the service's own.
"""
from __future__ import annotations

import json
import sys

from tornado import ioloop, web

SERVICE_TOKEN = "service-token"


class Base(web.RequestHandler):
    def initialize(self, accounts):
        self.accounts = accounts

    def token(self) -> str:
        header = self.request.headers.get("Authorization", "")
        return header.split(" ", 1)[1] if " " in header else ""


class WhoAmI(Base):
    def get(self):
        account = self.accounts.get(self.token())
        if account is None:
            raise web.HTTPError(403)
        self.finish({"kind": "user", "name": account["name"], "admin": False,
                     "scopes": account.get("scopes", ["access:services!service=kb"])})


class UserModel(Base):
    def get(self, name):
        if self.token() != SERVICE_TOKEN:
            raise web.HTTPError(403)
        for account in self.accounts.values():
            if account["name"] == name:
                self.finish({"kind": "user", "name": name, "groups": account.get("groups", [])})
                return
        raise web.HTTPError(404)


def main() -> None:
    port, accounts = int(sys.argv[1]), json.loads(sys.argv[2])
    args = {"accounts": accounts}
    web.Application([(r"/hub/api/user", WhoAmI, args), (r"/hub/api/users/([^/]+)", UserModel, args)]).listen(
        port, "127.0.0.1")
    print("ready", flush=True)
    ioloop.IOLoop.current().start()


if __name__ == "__main__":
    main()
