"""The team server (团队服务器): JupyterHub in front of the app, one server per person.

`jupyterhub_config.py` is the configuration `make team` starts the hub with; the modules here
are what it uses: `authenticator` (accounts approved by staff, the demo accounts),
`spawner` (what each role's server offers) and `contents` (read-only files for members and
experts).
"""
