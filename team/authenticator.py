"""Accounts of the team server: NativeAuthenticator (sign up, then staff approve), plus demo accounts.

Passwords are kept only as bcrypt hashes in the hub's database (NativeAuthenticator's
`users_info` table). With `demo_password` set (KB_DEMO_PASSWORD), the three demo accounts exist,
are approved and have that password each time the hub starts; without it, demo accounts left
from an earlier demo are disabled, so a known password never stays usable.
"""
from __future__ import annotations

from nativeauthenticator import NativeAuthenticator
from traitlets import Unicode

DEMO_ACCOUNTS = {"demo-staff": "staff", "demo-member": "member", "demo-expert": "expert"}


class TeamAuthenticator(NativeAuthenticator):
    """NativeAuthenticator that keeps the demo accounts in step with `demo_password`."""

    demo_password = Unicode("", config=True, help="password of the demo accounts; empty: no demo accounts")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sync_demo_accounts()

    def sync_demo_accounts(self) -> None:
        if self.demo_password and not self.is_password_strong(self.demo_password):
            raise ValueError(f"KB_DEMO_PASSWORD 不能用：至少 {self.minimum_password_length} 位，且不能是常见密码")
        for name in DEMO_ACCOUNTS:
            info = self.get_user(name)
            if self.demo_password:
                if info is None:
                    self.create_user(name, self.demo_password, is_authorized=True)
                else:
                    self.change_password(name, self.demo_password)
                    info.is_authorized = True
                    self.db.commit()
            elif info is not None and info.is_authorized:
                info.is_authorized = False
                self.db.commit()
                self.log.info("KB_DEMO_PASSWORD 未设置：已停用演示账号 %s", name)
