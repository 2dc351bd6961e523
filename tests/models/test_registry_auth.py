"""Schema Registry auth: the settings and their validation, the one client builder, secrets never
shown, and the errors of a registry that refuses the credentials or whose certificate is not
trusted; then the codec against a real enforcing server (the `secured_registry` fixture: the
session's registry behind nginx, with TLS, basic auth, a bearer token and a read-only user)."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext
from support.nginx import USER, SecuredRegistry, write_secret

from streams.models import DecodeError, parse_webhook
from streams.models.serializers.avro import AvroCodec, get_codec
from streams.models.serializers.registry import (
    DEFAULT_CLIENT_CONFIG,
    RegistryAuthError,
    RegistryConfig,
    RegistryUnavailable,
    SchemaRegistrationError,
    SchemaRegistry,
    client_config,
    new_client,
)
from streams.settings import Settings

PASSWORD = "pa55-w0rd-never-shown"
TOKEN = "t0ken-never-shown"
URL = "https://registry.example:8443/apis/ccompat/v7"


def _settings(**env: str) -> Settings:
    return Settings.from_env({"SCHEMA_REGISTRY_URL": URL, **env})


# --- the settings ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {
                "SCHEMA_REGISTRY_PASSWORD": PASSWORD,
                "SCHEMA_REGISTRY_PASSWORD_FILE": "/etc/hostname",
            },
            "SCHEMA_REGISTRY_PASSWORD and SCHEMA_REGISTRY_PASSWORD_FILE are both set",
        ),
        (
            {"SCHEMA_REGISTRY_TOKEN": TOKEN, "SCHEMA_REGISTRY_TOKEN_FILE": "/etc/hostname"},
            "SCHEMA_REGISTRY_TOKEN and SCHEMA_REGISTRY_TOKEN_FILE are both set",
        ),
        (
            {
                "SCHEMA_REGISTRY_USERNAME": "u",
                "SCHEMA_REGISTRY_PASSWORD": PASSWORD,
                "SCHEMA_REGISTRY_TOKEN": TOKEN,
            },
            "use basic auth or a bearer token, not both",
        ),
        (
            {"SCHEMA_REGISTRY_PASSWORD": PASSWORD},
            "SCHEMA_REGISTRY_PASSWORD(_FILE) set without SCHEMA_REGISTRY_USERNAME(_FILE)",
        ),
        (
            {"SCHEMA_REGISTRY_USERNAME": "u"},
            "SCHEMA_REGISTRY_USERNAME(_FILE) set without SCHEMA_REGISTRY_PASSWORD(_FILE)",
        ),
        (
            {"SCHEMA_REGISTRY_URL": "", "SCHEMA_REGISTRY_TOKEN": TOKEN},
            "SCHEMA_REGISTRY_TOKEN(_FILE) set, but SCHEMA_REGISTRY_URL is not",
        ),
        (
            {
                "SCHEMA_REGISTRY_URL": f"https://u:{PASSWORD}@registry.example/",
                "SCHEMA_REGISTRY_TOKEN": TOKEN,
            },
            "SCHEMA_REGISTRY_URL holds a user and password, and",
        ),
        (
            {"SCHEMA_REGISTRY_URL": "http://registry.example/", "SCHEMA_REGISTRY_CA_FILE": "/x"},
            "SCHEMA_REGISTRY_CA_FILE set, but SCHEMA_REGISTRY_URL is not https:// (http)",
        ),
        (
            {"SCHEMA_REGISTRY_USERNAME": "u", "SCHEMA_REGISTRY_PASSWORD_FILE": "/nonexistent/pw"},
            "SCHEMA_REGISTRY_PASSWORD_FILE: cannot read /nonexistent/pw",
        ),
        (
            {"SCHEMA_REGISTRY_TOKEN_FILE": "/nonexistent/token"},
            "SCHEMA_REGISTRY_TOKEN_FILE: cannot read /nonexistent/token",
        ),
        (
            {"SCHEMA_REGISTRY_CA_FILE": "/nonexistent/ca.crt"},
            "SCHEMA_REGISTRY_CA_FILE: cannot read /nonexistent/ca.crt",
        ),
        (
            {"SCHEMA_REGISTRY_CA_FILE": "/etc/hostname"},
            "SCHEMA_REGISTRY_CA_FILE: /etc/hostname holds no PEM certificate",
        ),
        (
            {"SCHEMA_REGISTRY_USERNAME": "a:b", "SCHEMA_REGISTRY_PASSWORD": PASSWORD},
            "SCHEMA_REGISTRY_USERNAME(_FILE): a user name cannot hold ':'",
        ),
    ],
)
def test_settings_that_do_not_fit_are_refused_clearly(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError) as info:
        _settings(**env)
    assert message in str(info.value)
    assert PASSWORD not in str(info.value) and TOKEN not in str(info.value)


def test_an_empty_token_file_is_refused(tmp_path: Path) -> None:
    empty = write_secret(tmp_path / "token", "")
    with pytest.raises(ValueError, match=r"SCHEMA_REGISTRY_TOKEN_FILE: .* is empty"):
        _settings(SCHEMA_REGISTRY_TOKEN_FILE=str(empty))


# --- the client builder ---------------------------------------------------------------------


def _wire(config: RegistryConfig) -> dict[str, Any]:
    """A configuration without the client defaults (DEFAULT_CLIENT_CONFIG)."""
    return {k: v for k, v in config.items() if k not in DEFAULT_CLIENT_CONFIG}


def test_no_auth_is_the_url_alone() -> None:
    assert _wire(client_config(_settings())) == {"url": URL}


def test_basic_auth_from_files_read_whenever_a_client_is_built(tmp_path: Path) -> None:
    user = write_secret(tmp_path / "user", "bridge")
    password = write_secret(tmp_path / "password", PASSWORD)
    s = _settings(
        SCHEMA_REGISTRY_USERNAME_FILE=str(user), SCHEMA_REGISTRY_PASSWORD_FILE=str(password)
    )
    assert _wire(client_config(s)) == {"url": URL, "basic.auth.user.info": f"bridge:{PASSWORD}"}
    write_secret(password, "rotated")
    assert client_config(s)["basic.auth.user.info"] == "bridge:rotated"
    assert new_client(s).config()["basic.auth.user.info"] == "bridge:rotated"


def test_a_bearer_token_and_a_ca_file(secured_ca: Path) -> None:
    s = _settings(SCHEMA_REGISTRY_TOKEN=TOKEN, SCHEMA_REGISTRY_CA_FILE=str(secured_ca))
    assert _wire(client_config(s)) == {
        "url": URL,
        "bearer.auth.credentials.source": "STATIC_TOKEN",
        "bearer.auth.token": TOKEN,
        # confluent-kafka insists on a Confluent Cloud logical cluster: none, an empty header.
        "bearer.auth.logical.cluster": "",
        "ssl.ca.location": str(secured_ca),
    }
    new_client(s)  # confluent-kafka takes it as it is


def test_no_secret_in_any_repr(caplog: pytest.LogCaptureFixture) -> None:
    basic = _settings(SCHEMA_REGISTRY_USERNAME="bridge", SCHEMA_REGISTRY_PASSWORD=PASSWORD)
    bearer = _settings(SCHEMA_REGISTRY_TOKEN=TOKEN)
    in_url = _settings(SCHEMA_REGISTRY_URL=f"https://bridge:{PASSWORD}@registry.example:8443/x")
    shown: list[str] = []
    for s in (basic, bearer, in_url):
        config = client_config(s)
        client = new_client(s)
        shown += [repr(s), str(s), repr(config), str(config), f"{config}", repr([config])]
        shown += [repr(client), repr(client.config()), repr(vars(client))]
        with caplog.at_level(logging.INFO):
            logging.getLogger("test").info("config %s %r", config, config)
    shown.append(caplog.text)
    for text in shown:
        assert PASSWORD not in text and TOKEN not in text, text
    assert "'basic.auth.user.info': '***'" in repr(client_config(basic))
    assert "'bearer.auth.token': '***'" in repr(client_config(bearer))
    assert "schema_registry_password=***" in repr(basic)
    assert "schema_registry_url='https://***@registry.example:8443/x'" in repr(in_url)


def test_every_component_builds_its_client_from_the_settings() -> None:
    """The bridge, the worker, replay, the operator tools and the demo get their codec from
    `get_codec(settings)`, whose client `new_client(settings)` builds: nothing in streams/
    makes a SchemaRegistryClient or a codec of its own."""
    streams = Path(__file__).resolve().parents[2] / "streams"
    builders = {streams / "models" / "serializers" / name for name in ("registry.py", "avro.py")}
    for path in set(streams.rglob("*.py")) - builders:
        text = path.read_text(encoding="utf-8")
        for made in ("SchemaRegistryClient", "AvroCodec(", "new_client("):
            assert made not in text, (path, made)


def test_the_codec_is_cached_per_credentials() -> None:
    a = get_codec(_settings(SCHEMA_REGISTRY_USERNAME="u", SCHEMA_REGISTRY_PASSWORD="one"))
    assert get_codec(_settings(SCHEMA_REGISTRY_USERNAME="u", SCHEMA_REGISTRY_PASSWORD="one")) is a
    assert (
        get_codec(_settings(SCHEMA_REGISTRY_USERNAME="u", SCHEMA_REGISTRY_PASSWORD="two")) is not a
    )


# --- the errors, on a client that answers as told --------------------------------------------


class Refusing:
    """A registry client whose every call fails with `error`, configured like `settings`'."""

    def __init__(self, settings: Settings, error: BaseException) -> None:
        self._config = client_config(settings)
        self.error = error

    def config(self) -> RegistryConfig:
        return self._config

    def __getattr__(self, name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            raise self.error

        return call


def _unverified(code: int, message: str) -> Exception:
    """What httpx raises for a certificate that did not verify: the ssl error as its cause."""
    cause = ssl.SSLCertVerificationError(1, f"[SSL: CERTIFICATE_VERIFY_FAILED] {message}")
    cause.verify_code, cause.verify_message = code, message
    error = ConnectionError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    error.__cause__ = cause
    return error


BASIC = {"SCHEMA_REGISTRY_USERNAME": "bridge", "SCHEMA_REGISTRY_PASSWORD": PASSWORD}
WHERE = f"schema registry at {URL}"


@pytest.mark.parametrize(
    ("env", "error", "message"),
    [
        (
            BASIC,
            SchemaRegistryError(401, -1, "Unknown Schema Registry Error: b'<html>401</html>'"),
            f"{WHERE} refused the credentials (HTTP 401): check SCHEMA_REGISTRY_USERNAME(_FILE) "
            "and SCHEMA_REGISTRY_PASSWORD(_FILE)",
        ),
        (
            {"SCHEMA_REGISTRY_TOKEN": TOKEN},
            SchemaRegistryError(401, 40101, "Unauthorized"),
            f"{WHERE} refused the bearer token (HTTP 401): check SCHEMA_REGISTRY_TOKEN(_FILE)",
        ),
        (
            {},
            SchemaRegistryError(401, 40101, "Unauthorized"),
            f"{WHERE} requires credentials (HTTP 401): set SCHEMA_REGISTRY_USERNAME and",
        ),
        (
            BASIC,
            SchemaRegistryError(403, 40301, "User is denied operation Write on Subject"),
            f"{WHERE} denied registering a schema under s-value (HTTP 403): the credentials may "
            "not do that; grant it in the registry",
        ),
        (
            {},
            _unverified(20, "unable to get local issuer certificate"),
            f"{WHERE}: TLS certificate not trusted (unable to get local issuer certificate): set "
            "SCHEMA_REGISTRY_CA_FILE to the CA that signs it",
        ),
        (
            {},
            _unverified(62, "Hostname mismatch, certificate is not valid for 'registry.example'."),
            f"{WHERE}: TLS certificate names another host (Hostname mismatch",
        ),
    ],
)
def test_a_refusal_is_its_own_clear_error(
    env: dict[str, str], error: BaseException, message: str
) -> None:
    sr = SchemaRegistry(Refusing(_settings(**env), error))
    with pytest.raises(RegistryAuthError) as refused:
        sr.register("s-value", '{"type":"record","name":"x.R","fields":[]}')
    assert message in str(refused.value)
    assert not isinstance(refused.value, (SchemaRegistrationError, RegistryUnavailable))
    assert PASSWORD not in str(refused.value) and TOKEN not in str(refused.value)
    # Reading a writer schema: the record is not at fault (never a DecodeError, never skipped).
    with pytest.raises(RegistryAuthError) as reading:
        sr.schema_text(7)
    assert not isinstance(reading.value, DecodeError)


def test_a_server_error_is_still_unavailability() -> None:
    sr = SchemaRegistry(Refusing(_settings(**BASIC), SchemaRegistryError(503, -1, "busy")))
    with pytest.raises(RegistryUnavailable):
        sr.register("s-value", '{"type":"record","name":"x.R","fields":[]}')


# --- against the real enforcing server ------------------------------------------------------


@pytest.fixture(scope="module")
def secured_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA file (the throwaway CA's kind) without starting anything."""
    from streams.dev.secure import SecurityMaterial

    material = SecurityMaterial(tmp_path_factory.mktemp("ca") / "security")
    material.ensure()
    return material.ca_file


def _codec(secured: SecuredRegistry, block: str, where: Path, **kw: Any) -> AvroCodec:
    return AvroCodec(settings=Settings.from_env({}, **secured.client_settings(block, where, **kw)))


@pytest.mark.registry
@pytest.mark.parametrize("block", ["basic", "bearer"])
def test_register_and_decode_through_tls_and_auth(
    secured_registry: SecuredRegistry,
    block: str,
    tmp_path: Path,
    unique: str,
    example_payload: dict[str, Any],
) -> None:
    codec = _codec(secured_registry, block, tmp_path)
    topic = f"t{unique}.in"
    datum = parse_webhook(example_payload)
    data = codec.encode("CustomerDeleted", datum, topic=topic)
    assert data[0] == 0
    # Another process decodes through the same server (fetching the writer schema by id).
    assert _codec(secured_registry, block, tmp_path).decode(data) == ("CustomerDeleted", datum)
    # So does confluent-kafka's own deserializer, given the same client configuration.
    settings = Settings.from_env({}, **secured_registry.client_settings(block, tmp_path))
    deserialize = AvroDeserializer(new_client(settings))
    got = deserialize(data, SerializationContext(topic, MessageField.VALUE))
    assert got["data"]["customer"]["id"] == datum["data"]["customer"]["id"]


@pytest.mark.registry
def test_wrong_or_missing_credentials(secured_registry: SecuredRegistry, tmp_path: Path) -> None:
    wrong = _codec(secured_registry, "basic", tmp_path / "a", password="not-the-password")
    with pytest.raises(RegistryAuthError) as refused:
        wrong.register("CustomerDeleted", "t.refused")
    message = str(refused.value)
    assert message == (
        f"schema registry at {secured_registry.url('basic')} refused the credentials (HTTP 401): "
        "check SCHEMA_REGISTRY_USERNAME(_FILE) and SCHEMA_REGISTRY_PASSWORD(_FILE)"
    )
    assert "not-the-password" not in message and secured_registry.password not in message
    token = _codec(secured_registry, "bearer", tmp_path / "b", token="not-the-token")
    with pytest.raises(RegistryAuthError, match=r"refused the bearer token \(HTTP 401\)"):
        token.register("CustomerDeleted", "t.refused")
    anonymous = AvroCodec(
        settings=Settings.from_env(
            {},
            schema_registry_url=secured_registry.url("basic"),
            schema_registry_ca_file=str(secured_registry.ca_file),
        )
    )
    with pytest.raises(RegistryAuthError, match=r"requires credentials \(HTTP 401\)"):
        anonymous.decode(b"\x00\x00\x00\x00\x01\x00")


@pytest.mark.registry
def test_a_fixed_password_file_is_read_again(
    secured_registry: SecuredRegistry, tmp_path: Path, unique: str
) -> None:
    codec = _codec(secured_registry, "basic", tmp_path, password="stale")
    with pytest.raises(RegistryAuthError):
        codec.register("DeadLetter", f"t{unique}.dl")
    write_secret(tmp_path / "password", secured_registry.password)  # the operator fixes it
    assert codec.register("DeadLetter", f"t{unique}.dl")[0] == 0


@pytest.mark.registry
def test_a_user_not_allowed_to_write_is_told_so(
    secured_registry: SecuredRegistry, tmp_path: Path, unique: str
) -> None:
    codec = _codec(secured_registry, "readonly", tmp_path)
    with pytest.raises(RegistryAuthError) as denied:
        codec.register("CustomerDeleted", f"t{unique}.ro")
    message = str(denied.value)
    assert "(HTTP 403)" in message and f"t{unique}.ro-value" in message
    assert "refused the credentials" not in message  # they were accepted: 403 is not 401


@pytest.mark.registry
def test_an_untrusted_certificate_is_a_clear_error(
    secured_registry: SecuredRegistry, tmp_path: Path, secured_ca: Path
) -> None:
    without = _codec(secured_registry, "basic", tmp_path, ca=False)
    with pytest.raises(RegistryAuthError) as untrusted:
        without.register("CustomerDeleted", "t.tls")
    assert str(untrusted.value).startswith(
        f"schema registry at {secured_registry.url('basic')}: TLS certificate not trusted ("
    )
    assert str(untrusted.value).endswith("set SCHEMA_REGISTRY_CA_FILE to the CA that signs it")
    settings = Settings.from_env(
        {},
        **{
            **secured_registry.client_settings("basic", tmp_path),
            "schema_registry_ca_file": str(secured_ca),  # another throwaway CA
        },
    )
    with pytest.raises(RegistryAuthError, match=r"SCHEMA_REGISTRY_CA_FILE \(.*\) is not the CA"):
        AvroCodec(settings=settings).register("CustomerDeleted", "t.tls")


@pytest.mark.registry
def test_credentials_in_the_url_work_and_are_never_logged(
    secured_registry: SecuredRegistry, unique: str, caplog: pytest.LogCaptureFixture
) -> None:
    def codec(password: str) -> AvroCodec:
        url = secured_registry.url("basic").replace(
            "https://", f"https://{USER}:{quote(password)}@"
        )
        ca = str(secured_registry.ca_file)
        return AvroCodec(
            settings=Settings.from_env({}, schema_registry_url=url, schema_registry_ca_file=ca)
        )

    with caplog.at_level(logging.DEBUG):
        assert codec(secured_registry.password).register("DeadLetter", f"t{unique}.u")[0] == 0
        with pytest.raises(RegistryAuthError) as refused:
            codec("wrong-in-the-url").register("DeadLetter", f"t{unique}.u")
    assert str(refused.value).endswith(
        "refused the credentials (HTTP 401): check the user and password in SCHEMA_REGISTRY_URL"
    )
    assert "HTTP Request: GET https://127.0.0.1:" in caplog.text  # the HTTP client logs URLs
    assert secured_registry.password not in caplog.text + str(refused.value)
    assert "wrong-in-the-url" not in caplog.text + str(refused.value)
