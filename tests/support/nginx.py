"""The tests' Schema Registry behind a real enforcing server: Debian's nginx as a TLS-terminating,
authenticating reverse proxy in front of the session's Apicurio Registry.

One nginx process (its own prefix, config, pid file, logs and temp dirs under `root`; listening
on free ports of 127.0.0.1 only), with a certificate of a throwaway CA made by the secured local
Kafka's generator (streams.dev.secure: CN=localhost, SAN localhost and 127.0.0.1) and three
server blocks over one upstream:

- `basic`: HTTP basic auth (an htpasswd made with `openssl passwd -apr1`);
- `bearer`: `Authorization: Bearer <token>` required (an nginx `map` of the header);
- `readonly`: basic auth, and only GET and HEAD: any write is 403 (a user the registry knows
  but does not let register schemas).

Every block answers 401 with `WWW-Authenticate` when the credentials are missing or wrong, and
strips the client's `Authorization` header before proxying.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from streams.dev.ports import free_port
from streams.dev.process import Child
from streams.dev.secure import SecurityMaterial

#: The user of the `basic` and `readonly` blocks.
USER = "registry-user"


class NginxError(RuntimeError):
    """nginx is missing, or did not start (the message carries its error log's tail)."""


def find_nginx() -> str:
    """The nginx binary (Debian puts it in /usr/sbin, off a non-root user's PATH)."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise NginxError("nginx is not installed (Debian: apt-get install nginx; ./dev test does)")
    return found


@dataclass
class SecuredRegistry:
    """nginx in front of the registry at `upstream` (a SCHEMA_REGISTRY_URL): see the module."""

    root: Path
    upstream: str
    password: str = field(default_factory=lambda: secrets.token_urlsafe(18), repr=False)
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    ports: dict[str, int] = field(default_factory=dict)
    child: Child | None = None

    @property
    def material(self) -> SecurityMaterial:
        return SecurityMaterial(self.root / "security")

    @property
    def ca_file(self) -> Path:
        """The throwaway CA that signs the server's certificate (SCHEMA_REGISTRY_CA_FILE)."""
        return self.material.ca_file

    @property
    def error_log(self) -> Path:
        return self.root / "logs" / "error.log"

    @property
    def access_log(self) -> Path:
        return self.root / "logs" / "access.log"

    def url(self, block: str) -> str:
        """The SCHEMA_REGISTRY_URL of one server block: https, the upstream's path."""
        return f"https://127.0.0.1:{self.ports[block]}{urlsplit(self.upstream).path}"

    def client_settings(
        self,
        block: str,
        where: Path,
        *,
        password: str | None = None,
        token: str | None = None,
        ca: bool = True,
    ) -> dict[str, Any]:
        """Settings (keyword arguments of `Settings.with_`) of a client of server block `block`:
        its URL, the CA file unless not `ca`, and the block's credentials in a file under
        `where` (`password_file` or `token_file`): the right ones unless `password` or `token`
        say otherwise."""
        out: dict[str, Any] = {"schema_registry_url": self.url(block)}
        if ca:
            out["schema_registry_ca_file"] = str(self.ca_file)
        if block == "bearer":
            value = self.token if token is None else token
            out["schema_registry_token_file"] = str(write_secret(where / "token", value))
        else:
            value = self.password if password is None else password
            out["schema_registry_username"] = USER
            out["schema_registry_password_file"] = str(write_secret(where / "password", value))
        return out

    # --- start/stop ---
    def start(self, timeout: float = 30.0) -> SecuredRegistry:
        nginx = find_nginx()
        self.material.ensure()  # the CA and a server certificate for localhost/127.0.0.1
        for sub in ("logs", "temp", "conf"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.root / "conf" / "htpasswd").write_text(f"{USER}:{_apr1(self.password)}\n")
        self.ports = {block: free_port() for block in ("basic", "bearer", "readonly")}
        conf = self.root / "conf" / "nginx.conf"
        conf.write_text(self._config(), encoding="utf-8")
        test = subprocess.run(
            [nginx, "-t", "-q", "-p", str(self.root), "-c", str(conf), "-e", str(self.error_log)],
            capture_output=True,
            text=True,
        )
        if test.returncode != 0:
            raise NginxError(f"nginx refused its configuration: {test.stderr.strip()[-2000:]}")
        argv = [nginx, "-p", str(self.root), "-c", str(conf), "-e", str(self.error_log)]
        self.child = Child("nginx", argv, self.root / "logs" / "stdout.log").start()
        deadline = time.monotonic() + timeout
        while not all(_listening(port) for port in self.ports.values()):
            if not self.child.alive or time.monotonic() > deadline:
                self.stop()
                raise NginxError(f"nginx did not start: {self._log_tail()}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop(timeout=10)  # SIGTERM: nginx's fast shutdown

    def _log_tail(self) -> str:
        try:
            return self.error_log.read_text(errors="replace")[-2000:]
        except OSError:
            return "(no error log)"

    def _config(self) -> str:
        up = urlsplit(self.upstream)
        m = self.material
        temp = self.root / "temp"
        tls = f"""
        ssl_certificate {m.cert_file("broker")};
        ssl_certificate_key {m.key_file("broker")};
        ssl_protocols TLSv1.2 TLSv1.3;"""
        proxy = f"""
            proxy_pass {up.scheme}://registry;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Authorization "";
            proxy_set_header Host $http_host;"""
        basic = f"""
        auth_basic "schema registry";
        auth_basic_user_file {self.root / "conf" / "htpasswd"};"""
        # As root, the workers would switch to nobody, who cannot read the 0700 temp dirs.
        user = "user root;" if _is_root() else ""
        return f"""# written by tests/support/nginx.py
{user}
daemon off;
master_process on;
worker_processes 1;
pid {self.root / "nginx.pid"};
error_log {self.error_log} notice;

events {{
    worker_connections 256;
}}

http {{
    access_log {self.access_log};
    client_body_temp_path {temp / "body"};
    proxy_temp_path {temp / "proxy"};
    fastcgi_temp_path {temp / "fastcgi"};
    uwsgi_temp_path {temp / "uwsgi"};
    scgi_temp_path {temp / "scgi"};
    client_max_body_size 4m;

    map $http_authorization $bearer_ok {{
        default 0;
        "Bearer {self.token}" 1;
    }}

    upstream registry {{
        server {up.hostname}:{up.port or (443 if up.scheme == "https" else 80)};
        keepalive 8;
    }}

    server {{
        listen 127.0.0.1:{self.ports["basic"]} ssl;{tls}{basic}
        location / {{{proxy}
        }}
    }}

    server {{
        listen 127.0.0.1:{self.ports["bearer"]} ssl;{tls}
        location / {{
            if ($bearer_ok = 0) {{
                add_header WWW-Authenticate 'Bearer realm="schema registry"' always;
                return 401;
            }}{proxy}
        }}
    }}

    server {{
        listen 127.0.0.1:{self.ports["readonly"]} ssl;{tls}{basic}
        location / {{
            limit_except GET HEAD {{
                deny all;
            }}{proxy}
        }}
    }}
}}
"""


def write_secret(path: Path, value: str) -> Path:
    """A credentials file (mode 0600), as a secret mount would hold it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(value + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


def _apr1(password: str) -> str:
    """An htpasswd hash of `password` (Apache's MD5 scheme, which nginx reads), by openssl."""
    done = subprocess.run(
        ["openssl", "passwd", "-apr1", "-stdin"],
        input=password,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def _is_root() -> bool:
    return os.geteuid() == 0


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False
