"""What a secured local Kafka (`voucherify-streams kafka start --secure`) runs with.

Generated once per node (or per cluster, shared by its nodes), under `<state>/security/`:

- `tls/`: a local CA (`ca.crt`, `ca.key`), the brokers' certificate (CN=localhost, SAN
  DNS:localhost and IP:127.0.0.1) in a PKCS12 keystore, and a client certificate and key per user
  (CN=<user>), for the mutual-TLS listener; all made with `openssl` (EC P-256 keys).
- `secrets/` (mode 0700, files 0600): a random password per user and the keystore's.

The users are `admin` (a super user: creates ACLs, and the brokers talk to each other as it) and
one per role of `streams.kafka.acls` (`bridge`, `worker`, `reader`, `operator`), each with
SCRAM-SHA-512 and SCRAM-SHA-256 credentials written into the cluster metadata when the storage
is formatted (`kafka-storage format --add-scram`), and PLAIN ones in the broker's JAAS config.
Nobody but `admin` may do anything until `voucherify-streams kafka acls` grants it: the KRaft
`StandardAuthorizer` runs with `allow.everyone.if.no.acl.found=false`.

Listeners of a node: `CLIENT` (SASL_SSL: clients, and the brokers between them as `admin`
over SCRAM-SHA-512), `MTLS` (SSL with a required client certificate, the principal taken from
its CN: `User:bridge` for CN=bridge) and `CONTROLLER` (PLAINTEXT on 127.0.0.1: KRaft's own
traffic, whose principal is `User:ANONYMOUS`, a super user as KRaft requires for it).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

#: The super user, and the users of the roles (streams.kafka.acls.ROLES).
ADMIN = "admin"
USERS = (ADMIN, "bridge", "worker", "reader", "operator")
SCRAM = ("SCRAM-SHA-512", "SCRAM-SHA-256")
MECHANISMS = (*SCRAM, "PLAIN")
#: Client certificates' CN -> principal name (CN=bridge is User:bridge).
PRINCIPAL_MAPPING = "RULE:^CN=([^,]+)$/$1/,DEFAULT"
DAYS = 3650


class MaterialError(RuntimeError):
    """openssl failed (or is missing)."""


class SecurityMaterial:
    """The certificates and passwords under `root` (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def tls(self) -> Path:
        return self.root / "tls"

    @property
    def secrets(self) -> Path:
        return self.root / "secrets"

    @property
    def ca_file(self) -> Path:
        return self.tls / "ca.crt"

    @property
    def keystore(self) -> Path:
        return self.tls / "broker.p12"

    def cert_file(self, user: str) -> Path:
        return self.tls / f"{user}.crt"

    def key_file(self, user: str) -> Path:
        return self.tls / f"{user}.key"

    def password_file(self, user: str) -> Path:
        return self.secrets / f"{user}.password"

    def password(self, user: str) -> str:
        return self.password_file(user).read_text(encoding="utf-8").strip()

    @property
    def keystore_password(self) -> str:
        return (self.secrets / "keystore.password").read_text(encoding="utf-8").strip()

    @property
    def complete(self) -> bool:
        return (self.root / "complete").exists()

    # --- generation ---
    def ensure(self) -> bool:
        """Generate everything once (in a scratch dir, then renamed into place); False when
        it was there already."""
        if self.complete:
            return False
        self.root.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".security-", dir=self.root.parent))
        try:
            _generate(SecurityMaterial(scratch))
            if self.complete:  # another process was quicker: theirs is used
                return False
            shutil.rmtree(self.root, ignore_errors=True)
            scratch.rename(self.root)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return True

    # --- what the broker is given ---
    def scram_arguments(self) -> list[str]:
        """`kafka-storage format` arguments adding every user's SCRAM credentials."""
        out = []
        for user in USERS:
            for mechanism in SCRAM:
                out += ["--add-scram", f"{mechanism}=[name={user},password={self.password(user)}]"]
        return out

    def broker_properties(self) -> list[str]:
        """server.properties lines of security (the listeners themselves are the node's)."""
        admin = self.password(ADMIN)
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule required"
        plain_users = " ".join(f'user_{u}="{self.password(u)}"' for u in USERS)
        return [
            f"sasl.enabled.mechanisms={','.join(MECHANISMS)}",
            "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512",
            # The brokers authenticate to each other as admin on the CLIENT listener.
            f'listener.name.client.scram-sha-512.sasl.jaas.config={scram} username="{ADMIN}" '
            f'password="{admin}";',
            f"listener.name.client.scram-sha-256.sasl.jaas.config={scram};",
            "listener.name.client.plain.sasl.jaas.config="
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'username="{ADMIN}" password="{admin}" {plain_users};',
            "ssl.keystore.type=PKCS12",
            f"ssl.keystore.location={self.keystore}",
            f"ssl.keystore.password={self.keystore_password}",
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={self.ca_file}",
            "listener.name.mtls.ssl.client.auth=required",
            f"ssl.principal.mapping.rules={PRINCIPAL_MAPPING}",
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found=false",
            # KRaft: brokers and controllers talk over the PLAINTEXT controller listener, as
            # User:ANONYMOUS, which must be a super user; that listener is on 127.0.0.1 only.
            f"super.users=User:{ADMIN};User:ANONYMOUS",
        ]

    def client_env(self, bootstrap: str, user: str = ADMIN, mechanism: str = SCRAM[0]) -> dict:
        """The client settings (env vars) of `user` on the SASL_SSL listener: file paths, never
        a password."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": mechanism,
            "KAFKA_SASL_USERNAME": user,
            "KAFKA_SASL_PASSWORD_FILE": str(self.password_file(user)),
            "KAFKA_SSL_CA_FILE": str(self.ca_file),
        }

    def mtls_env(self, bootstrap: str, user: str) -> dict:
        """The client settings of `user` on the mutual-TLS listener (its certificate)."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "KAFKA_SECURITY_PROTOCOL": "SSL",
            "KAFKA_SSL_CA_FILE": str(self.ca_file),
            "KAFKA_SSL_CERT_FILE": str(self.cert_file(user)),
            "KAFKA_SSL_KEY_FILE": str(self.key_file(user)),
        }


def _generate(m: SecurityMaterial) -> None:
    m.tls.mkdir(parents=True)
    m.secrets.mkdir(mode=0o700, parents=True)
    for user in USERS:
        _write_secret(m.password_file(user), secrets.token_urlsafe(24))
    _write_secret(m.secrets / "keystore.password", secrets.token_urlsafe(24))
    openssl = _openssl()
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    ca_key = m.tls / "ca.key"
    openssl(
        "req", "-x509", "-new", *ec, "-keyout", str(ca_key), "-out", str(m.ca_file),
        "-days", str(DAYS), "-subj", "/CN=voucherify-streams local CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    serial = 1

    def issue(name: str, cn: str, extensions: list[str]) -> None:
        nonlocal serial
        serial += 1
        csr, ext = m.tls / f"{name}.csr", m.tls / f"{name}.ext"
        ext.write_text("\n".join(extensions) + "\n", encoding="utf-8")
        openssl(
            "req", "-new", *ec, "-keyout", str(m.key_file(name)), "-out", str(csr),
            "-subj", f"/CN={cn}",
        )  # fmt: skip
        openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(m.ca_file), "-CAkey", str(ca_key),
            "-set_serial", str(serial), "-days", str(DAYS), "-out", str(m.cert_file(name)),
            "-extfile", str(ext),
        )  # fmt: skip
        csr.unlink()
        ext.unlink()
        os.chmod(m.key_file(name), 0o600)

    issue(
        "broker",
        "localhost",
        [
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "keyUsage=critical,digitalSignature",
            "extendedKeyUsage=serverAuth,clientAuth",
        ],
    )
    for user in USERS:
        issue(user, user, ["keyUsage=critical,digitalSignature", "extendedKeyUsage=clientAuth"])
    openssl(
        "pkcs12", "-export", "-in", str(m.cert_file("broker")), "-inkey",
        str(m.key_file("broker")), "-certfile", str(m.ca_file), "-name", "broker",
        "-out", str(m.keystore), "-passout", f"file:{m.secrets / 'keystore.password'}",
    )  # fmt: skip
    os.chmod(ca_key, 0o600)
    os.chmod(m.keystore, 0o600)
    (m.root / "complete").write_text("", encoding="utf-8")


def _write_secret(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(value + "\n")


def _openssl() -> Callable[..., None]:
    binary = shutil.which("openssl")
    if binary is None:
        raise MaterialError("openssl is not on PATH: the secured local Kafka needs it")

    def run(*args: str) -> None:
        done = subprocess.run(
            [binary, *args], capture_output=True, text=True, stdin=subprocess.DEVNULL
        )
        if done.returncode != 0:
            raise MaterialError(f"openssl {args[0]} failed: {done.stderr.strip()[-1000:]}")

    return run
