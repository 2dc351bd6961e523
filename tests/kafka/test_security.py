"""The Kafka security settings and the two client builders (no broker): what each protocol and
mechanism gives librdkafka and Faust/aiokafka, the validation, and secrets never shown."""

from __future__ import annotations

import pickle
import ssl
import subprocess
from pathlib import Path
from typing import Any

import faust
import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from streams.bridge.service import producer_config
from streams.dev.secure import SecurityMaterial
from streams.kafka.security import (
    SASL_MECHANISMS,
    ClientConfig,
    faust_broker_kwargs,
    librdkafka_config,
    librdkafka_log,
)
from streams.settings import Settings

PASSWORD = "pa55-w0rd-never-shown"
KEY_PASSWORD = "k3y-pa55-never-shown"


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> SecurityMaterial:
    """A CA, a client certificate and key, made like the secured local Kafka's."""
    m = SecurityMaterial(tmp_path_factory.mktemp("tls") / "security")
    m.ensure()
    return m


@pytest.fixture(scope="module")
def encrypted_key(material: SecurityMaterial, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("key") / "bridge.enc.key"
    subprocess.run(
        ["openssl", "pkey", "-in", str(material.key_file("bridge")), "-aes256", "-out", str(out),
         "-passout", f"pass:{KEY_PASSWORD}"],
        check=True,
    )  # fmt: skip
    return out


def sasl_env(protocol: str, mechanism: str, **extra: str) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": "b1:9093,b2:9093",
        "KAFKA_SECURITY_PROTOCOL": protocol,
        "KAFKA_SASL_MECHANISM": mechanism,
        "KAFKA_SASL_USERNAME": "bridge",
        "KAFKA_SASL_PASSWORD": PASSWORD,
        **extra,
    }


def aiokafka_kwargs(settings: Settings) -> dict[str, Any]:
    """What Faust hands aiokafka for these settings (its own mapping of the credentials)."""
    kwargs = faust_broker_kwargs(settings)
    return credentials_to_aiokafka_auth(kwargs.get("broker_credentials"))


def _wire(config: Any) -> dict[str, Any]:
    """A configuration without its logger (every one logs through `librdkafka_log`)."""
    assert config["logger"] is librdkafka_log
    return {k: v for k, v in config.items() if k != "logger"}


def test_plaintext_is_exactly_what_it_was() -> None:
    s = Settings.from_env({}, bootstrap_servers="a:1,b:2")
    assert _wire(librdkafka_config(s)) == {"bootstrap.servers": "a:1,b:2"}
    assert faust_broker_kwargs(s) == {"broker": "kafka://a:1;kafka://b:2"}
    assert aiokafka_kwargs(s) == {"security_protocol": "PLAINTEXT"}
    assert _wire(producer_config(s)) == {
        "bootstrap.servers": "a:1,b:2",
        "client.id": "voucherify-streams-bridge",
        "linger.ms": 0.0,
        "message.timeout.ms": 5000,
        "request.timeout.ms": 5000,
    }


@pytest.mark.parametrize("mechanism", SASL_MECHANISMS)
def test_sasl_plaintext(mechanism: str) -> None:
    s = Settings.from_env(sasl_env("SASL_PLAINTEXT", mechanism.lower()))
    assert _wire(librdkafka_config(s)) == {
        "bootstrap.servers": "b1:9093,b2:9093",
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": mechanism,
        "sasl.username": "bridge",
        "sasl.password": PASSWORD,
    }
    assert aiokafka_kwargs(s) == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": mechanism,
        "sasl_plain_username": "bridge",
        "sasl_plain_password": PASSWORD,
        "ssl_context": None,
    }


@pytest.mark.parametrize("mechanism", SASL_MECHANISMS)
@pytest.mark.parametrize("verify", [True, False])
def test_sasl_ssl(mechanism: str, verify: bool, material: SecurityMaterial) -> None:
    s = Settings.from_env(
        sasl_env(
            "SASL_SSL",
            mechanism,
            KAFKA_SSL_CA_FILE=str(material.ca_file),
            KAFKA_SSL_VERIFY_HOSTNAME=str(verify).lower(),
        )
    )
    assert _wire(librdkafka_config(s)) == {
        "bootstrap.servers": "b1:9093,b2:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": mechanism,
        "sasl.username": "bridge",
        "sasl.password": PASSWORD,
        "ssl.endpoint.identification.algorithm": "https" if verify else "none",
        "ssl.ca.location": str(material.ca_file),
    }
    kw = aiokafka_kwargs(s)
    context = kw.pop("ssl_context")
    assert kw == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": mechanism,
        "sasl_plain_username": "bridge",
        "sasl_plain_password": PASSWORD,
    }
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED  # the chain is always checked
    assert context.check_hostname is verify
    assert len(context.get_ca_certs()) == 1  # the given CA only


def test_mutual_tls_with_an_encrypted_key(material: SecurityMaterial, encrypted_key: Path) -> None:
    s = Settings.from_env(
        {
            "KAFKA_SECURITY_PROTOCOL": "SSL",
            "KAFKA_SSL_CA_FILE": str(material.ca_file),
            "KAFKA_SSL_CERT_FILE": str(material.cert_file("bridge")),
            "KAFKA_SSL_KEY_FILE": str(encrypted_key),
            "KAFKA_SSL_KEY_PASSWORD": KEY_PASSWORD,
        }
    )
    assert _wire(librdkafka_config(s)) == {
        "bootstrap.servers": "localhost:9092",
        "security.protocol": "SSL",
        "ssl.endpoint.identification.algorithm": "https",
        "ssl.ca.location": str(material.ca_file),
        "ssl.certificate.location": str(material.cert_file("bridge")),
        "ssl.key.location": str(encrypted_key),
        "ssl.key.password": KEY_PASSWORD,
    }
    credentials = faust_broker_kwargs(s)["broker_credentials"]
    assert isinstance(credentials, faust.SSLCredentials)
    assert aiokafka_kwargs(s)["security_protocol"] == "SSL"
    assert credentials.context.check_hostname  # the key was loaded with its password


def test_secrets_from_files(tmp_path: Path) -> None:
    (tmp_path / "user").write_text("worker\n")
    (tmp_path / "password").write_text(f"{PASSWORD}\n")
    s = Settings.from_env(
        {
            "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
            "KAFKA_SASL_USERNAME_FILE": str(tmp_path / "user"),
            "KAFKA_SASL_PASSWORD_FILE": str(tmp_path / "password"),
        }
    )
    config = librdkafka_config(s)
    assert (config["sasl.username"], config["sasl.password"]) == ("worker", PASSWORD)
    assert aiokafka_kwargs(s)["sasl_plain_password"] == PASSWORD
    (tmp_path / "password").write_text("rotated\n")  # read again whenever a client is built
    assert librdkafka_config(s)["sasl.password"] == "rotated"


def test_no_secret_in_any_repr(material: SecurityMaterial, encrypted_key: Path) -> None:
    s = Settings.from_env(
        {
            **sasl_env("SASL_SSL", "SCRAM-SHA-512"),
            "KAFKA_SSL_CA_FILE": str(material.ca_file),
            "KAFKA_SSL_CERT_FILE": str(material.cert_file("bridge")),
            "KAFKA_SSL_KEY_FILE": str(encrypted_key),
            "KAFKA_SSL_KEY_PASSWORD": KEY_PASSWORD,
        }
    )
    config = librdkafka_config(s, {"linger.ms": 5})
    kwargs = faust_broker_kwargs(s)
    shown = [
        repr(s),
        str(s),
        repr(config),
        str(config),
        f"{config}",
        "%s %r" % (config, config),  # noqa: UP031 - how a log line would show it
        repr([config]),
        repr(kwargs),
        str(kwargs),
        repr(kwargs["broker_credentials"]),
        repr(producer_config(s)),
    ]
    for text in shown:
        assert PASSWORD not in text and KEY_PASSWORD not in text, text
    assert "'sasl.password': '***'" in repr(config)
    assert "'ssl.key.password': '***'" in repr(config)
    assert "kafka_sasl_password=***" in repr(s) and "kafka_ssl_key_password=***" in repr(s)
    # Still what librdkafka needs, and pickled whole (not rebuilt item by item).
    assert config["sasl.password"] == PASSWORD
    assert pickle.loads(pickle.dumps(config)) == config


def test_a_client_config_is_built_here_only() -> None:
    s = Settings.from_env({}, bootstrap_servers="a:1")
    config = librdkafka_config(s, {"linger.ms": 5})
    with pytest.raises(TypeError, match="read-only"):
        config["security.protocol"] = "PLAINTEXT"
    with pytest.raises(TypeError, match="read-only"):
        config.update({"bootstrap.servers": "elsewhere:1"})
    for key in ("security.protocol", "sasl.password", "ssl.ca.location"):
        with pytest.raises(ValueError, match=key):
            librdkafka_config(s, {key: "x"})
        with pytest.raises(ValueError, match=key):
            librdkafka_config(config, defaults={key: "x"})
    with pytest.raises(TypeError, match="Settings or a ClientConfig"):
        librdkafka_config({"bootstrap.servers": "a:1"})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Settings or a ClientConfig"):
        librdkafka_config("a:1")  # type: ignore[arg-type]
    # Layers, lowest first: defaults, the source, each layer, then keyword overrides.
    layered = librdkafka_config(config, {"acks": 1}, defaults={"linger.ms": 9, "x": 1}, y=2)
    assert _wire(layered) == {"bootstrap.servers": "a:1", "linger.ms": 5, "x": 1, "acks": 1, "y": 2}
    assert isinstance(layered, ClientConfig)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "KAFKA_SECURITY_PROTOCOL: expected PLAINTEXT"),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "u"},
            "KAFKA_SASL_MECHANISM: KAFKA_SECURITY_PROTOCOL=SASL_SSL needs one of",
        ),
        (
            {**sasl_env("SASL_SSL", "OAUTHBEARER")},
            "OAUTHBEARER is not supported",
        ),
        ({**sasl_env("SASL_SSL", "GSSAPI")}, "GSSAPI is not supported"),
        ({**sasl_env("SASL_SSL", "SCRAM-SHA-1")}, "KAFKA_SASL_MECHANISM: expected PLAIN"),
        (
            {**sasl_env("SASL_SSL", "PLAIN"), "KAFKA_SASL_PASSWORD": ""},
            "needs KAFKA_SASL_PASSWORD",
        ),
        (
            {**sasl_env("SASL_SSL", "PLAIN"), "KAFKA_SASL_PASSWORD_FILE": "/etc/hostname"},
            "KAFKA_SASL_PASSWORD and KAFKA_SASL_PASSWORD_FILE are both set",
        ),
        (
            {
                **sasl_env("SASL_SSL", "PLAIN"),
                "KAFKA_SASL_PASSWORD": "",
                "KAFKA_SASL_PASSWORD_FILE": "/nonexistent/pw",
            },
            "KAFKA_SASL_PASSWORD_FILE: cannot read /nonexistent/pw",
        ),
        (
            {"KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": PASSWORD},
            "KAFKA_SASL_USERNAME(_FILE), KAFKA_SASL_PASSWORD(_FILE) set, but "
            "KAFKA_SECURITY_PROTOCOL=PLAINTEXT uses no SASL",
        ),
        (
            {**sasl_env("SASL_PLAINTEXT", "PLAIN"), "KAFKA_SSL_CA_FILE": "/etc/hostname"},
            "KAFKA_SSL_CA_FILE set, but KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT uses no TLS",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CERT_FILE": "/etc/hostname"},
            "KAFKA_SSL_CERT_FILE and KAFKA_SSL_KEY_FILE go together",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CA_FILE": "/nonexistent/ca.crt"},
            "KAFKA_SSL_CA_FILE: cannot read /nonexistent/ca.crt",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_KEY_PASSWORD": KEY_PASSWORD},
            "KAFKA_SSL_KEY_PASSWORD(_FILE) set without KAFKA_SSL_KEY_FILE",
        ),
    ],
)
def test_settings_that_do_not_fit_are_refused_clearly(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError) as info:
        Settings.from_env(env)
    assert message in str(info.value)
    assert PASSWORD not in str(info.value) and KEY_PASSWORD not in str(info.value)


def test_an_empty_password_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("\n")
    env = {**sasl_env("SASL_SSL", "PLAIN"), "KAFKA_SASL_PASSWORD": ""}
    with pytest.raises(ValueError, match=r"KAFKA_SASL_PASSWORD_FILE: .* is empty"):
        Settings.from_env({**env, "KAFKA_SASL_PASSWORD_FILE": str(tmp_path / "empty")})
