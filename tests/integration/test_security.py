"""Security: Redis auth and TLS, Kafka security settings, secrets kept out of logs, no unpickling.

Redis runs here with ``requirepass``; TLS cannot be exercised end to end with
the embedded redis-server (built without TLS), so for ``rediss://`` we check that
the URL selects redis-py's SSL connection with the given CA file.
"""

from __future__ import annotations

import argparse
import ast
import logging
import time
from pathlib import Path

import pytest

from policy_store import (
    NoSnapshotError,
    Observation,
    PolicyReader,
    RedisPolicyStore,
    Settings,
    StoreUnavailableError,
    make_config,
)

pytestmark = pytest.mark.integration

PASSWORD = "s3cret-Pa55-word"
ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("policy_store", "producers", "stream_app")


@pytest.fixture(scope="module")
def secured_redis():
    from stream_app.dev.embedded import EmbeddedRedis

    server = EmbeddedRedis(password=PASSWORD).start()
    try:
        yield server
    finally:
        server.stop()


def _url_without_password(server) -> str:
    return f"redis://{server.host}:{server.port}/0"


def test_store_works_with_the_password_in_the_url(secured_redis, key_prefix):
    assert PASSWORD in secured_redis.url
    store = RedisPolicyStore.from_url(secured_redis.url, prefix=key_prefix)
    store.create(make_config(name="p", arms=["a", "b"], n_features=2))
    result = store.apply("p", [Observation("d1", "a", (1.0, 0.0), 0.5)])
    assert result.applied == 1
    assert store.read_state("p").arms["a"].n == 1
    assert PASSWORD not in store.url


def test_store_works_with_the_password_from_the_environment(secured_redis, key_prefix, monkeypatch):
    from stream_app.ops.cli._common import store_from

    monkeypatch.setenv("RL_COMMONS_REDIS_URL", _url_without_password(secured_redis))
    monkeypatch.setenv("RL_COMMONS_REDIS_PASSWORD", PASSWORD)
    monkeypatch.setenv("RL_COMMONS_KEY_PREFIX", key_prefix)
    store = store_from(argparse.Namespace())
    store.create(make_config(name="envp", arms=["a"], n_features=1))
    assert "envp" in store.list_policies()


@pytest.mark.parametrize("password", [None, "wrong-password"])
def test_missing_or_wrong_password_is_a_clear_error(secured_redis, key_prefix, password):
    auth = f":{password}@" if password else ""
    url = f"redis://{auth}{secured_redis.host}:{secured_redis.port}/0"
    store = RedisPolicyStore.from_url(url, prefix=key_prefix)
    with pytest.raises(StoreUnavailableError) as info:
        store.list_policies()
    message = str(info.value)
    assert "RL_COMMONS_REDIS_PASSWORD" in message or "RL_COMMONS_REDIS_URL" in message
    assert "credentials" in message
    assert PASSWORD not in message
    assert (password or PASSWORD) not in message


def test_reader_without_credentials_fails_open_and_logs_no_secret(
    secured_redis, key_prefix, caplog
):
    good = RedisPolicyStore.from_url(secured_redis.url, prefix=key_prefix)
    good.create(make_config(name="p", arms=["a", "b"], n_features=2))
    wrong = "not-the-" + PASSWORD
    bad = RedisPolicyStore.from_url(
        f"redis://:{wrong}@{secured_redis.host}:{secured_redis.port}/0", prefix=key_prefix
    )
    caplog.set_level(logging.DEBUG)
    with PolicyReader(bad, "p", poll_interval=0.02) as reader:
        time.sleep(0.2)
        with pytest.raises(NoSnapshotError):
            reader.select([1.0, 0.0])
        assert reader.refresh_errors > 1
    assert caplog.records, "refresh failures should be visible at debug level"
    assert wrong not in caplog.text and PASSWORD not in caplog.text


def test_rediss_url_selects_tls_with_the_given_ca(tmp_path):
    """TLS is configured in RL_COMMONS_REDIS_URL alone: rediss:// plus the CA as a query arg."""
    import redis

    ca = tmp_path / "ca.pem"
    ca.write_text("not used: the connection is lazy")
    url = f"rediss://:{PASSWORD}@redis.example:6380/0?ssl_ca_certs={ca}&ssl_cert_reqs=required"
    store = RedisPolicyStore.from_url(url, prefix="x")
    pool = store.client.connection_pool
    assert pool.connection_class is redis.SSLConnection
    assert pool.connection_kwargs["ssl_ca_certs"] == str(ca)
    assert pool.connection_kwargs["ssl_cert_reqs"] == "required"
    assert pool.connection_kwargs["password"] == PASSWORD
    assert PASSWORD not in store.url


# -- secrets never logged --------------------------------------------------------------------


def _secret_settings() -> Settings:
    return Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="proxy",
        kafka_sasl_password="kafka-" + PASSWORD,
        redis_password="redis-" + PASSWORD,
        dashboard_token="token-" + PASSWORD,
    )


def test_settings_repr_hides_secret_fields():
    s = _secret_settings()
    for text in (repr(s), str(s)):
        assert PASSWORD not in text
    assert s.kafka_sasl_password.get_secret_value() == "kafka-" + PASSWORD


def test_settings_repr_hides_a_password_inside_the_redis_url():
    s = Settings(redis_url=f"redis://:{PASSWORD}@127.0.0.1:6379/0")
    assert PASSWORD not in repr(s) and PASSWORD not in str(s)
    assert "127.0.0.1:6379" in repr(s)


# -- nothing read from Kafka or Redis is unpickled or evaluated ---------------------------------

_FORBIDDEN_MODULES = {"pickle", "cPickle", "marshal", "shelve", "dill", "cloudpickle", "jsonpickle"}
_FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__"}


def _sources() -> list[Path]:
    files = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]
    assert len(files) > 10, "package sources not found"
    return files


def _offences(path: Path, root: Path = ROOT) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        where = f"{path.relative_to(root)}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            found += [
                f"{where} imports {a.name}" for a in node.names if a.name in _FORBIDDEN_MODULES
            ]
        elif isinstance(node, ast.ImportFrom) and (node.module or "") in _FORBIDDEN_MODULES:
            found.append(f"{where} imports from {node.module}")
        elif isinstance(node, ast.Call):
            fn = node.func
            if isinstance(fn, ast.Name) and fn.id in _FORBIDDEN_CALLS:
                found.append(f"{where} calls {fn.id}()")
            if isinstance(fn, ast.Attribute):
                if fn.attr in {"load", "load_all"} and _name(fn.value) == "yaml":
                    found.append(f"{where} calls yaml.{fn.attr} (use yaml.safe_load)")
                if fn.attr in {"loads", "load"} and _name(fn.value) in _FORBIDDEN_MODULES:
                    found.append(f"{where} calls {_name(fn.value)}.{fn.attr}")
                if fn.attr == "load" and _name(fn.value) in {"np", "numpy"}:
                    if any(k.arg == "allow_pickle" for k in node.keywords):
                        found.append(f"{where} calls numpy.load with allow_pickle")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if node.value in {"pickle", "binary_pickle"}:  # e.g. a Faust serializer name
                found.append(f"{where} names the {node.value!r} serializer")
    return found


def _name(node: ast.AST) -> str | None:
    return node.id if isinstance(node, ast.Name) else None


def test_no_unpickling_or_evaluation_in_the_packages():
    offences = [o for path in _sources() for o in _offences(path)]
    assert offences == [], "\n".join(offences)


def test_the_scan_catches_what_it_looks_for(tmp_path):
    """The scanner is not vacuous: each forbidden pattern is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import pickle\nimport yaml\nimport numpy as np\n"
        "pickle.loads(b'')\nyaml.load('')\neval('1')\nexec('x=1')\n"
        "np.load('f', allow_pickle=True)\nvalue_serializer = 'pickle'\n"
    )
    found = _offences(bad, root=tmp_path)
    assert len(found) == 7, found


# -- Kafka security settings are passed through to the clients ----------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    """A self-signed certificate and key (openssl), standing in for a CA, cert and key."""
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")],
        check=True, capture_output=True,
    )  # fmt: skip
    return d / "cert.pem", d / "key.pem"


def test_sasl_ssl_settings_render_into_the_producer_config(monkeypatch, tls_files):
    from producers import producer_config

    cert, key = tls_files
    monkeypatch.setenv("RL_COMMONS_KAFKA_BOOTSTRAP", "broker-1:9093,broker-2:9093")
    monkeypatch.setenv("RL_COMMONS_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("RL_COMMONS_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("RL_COMMONS_KAFKA_SASL_USERNAME", "proxy")
    monkeypatch.setenv("RL_COMMONS_KAFKA_SASL_PASSWORD", "kafka-" + PASSWORD)
    monkeypatch.setenv("RL_COMMONS_KAFKA_SSL_CAFILE", str(cert))
    cfg = producer_config(Settings())
    assert cfg["bootstrap.servers"] == "broker-1:9093,broker-2:9093"
    assert cfg["security.protocol"] == "SASL_SSL"
    assert cfg["sasl.mechanism"] == "SCRAM-SHA-512"
    assert cfg["sasl.username"] == "proxy"
    assert cfg["sasl.password"] == "kafka-" + PASSWORD
    assert cfg["ssl.ca.location"] == str(cert)
    assert "ssl.key.location" not in cfg


def test_ssl_client_certificate_settings_render_without_sasl(tls_files):
    from producers import producer_config

    cert, key = tls_files
    s = Settings(
        kafka_security_protocol="SSL",
        kafka_ssl_cafile=str(cert),
        kafka_ssl_certfile=str(cert),
        kafka_ssl_keyfile=str(key),
        kafka_sasl_username="ignored",
        kafka_sasl_password="ignored-" + PASSWORD,
    )
    cfg = producer_config(s)
    assert cfg["security.protocol"] == "SSL"
    assert cfg["ssl.ca.location"] == str(cert)
    assert cfg["ssl.certificate.location"] == str(cert)
    assert cfg["ssl.key.location"] == str(key)
    assert not any(k.startswith("sasl.") for k in cfg)


@pytest.mark.parametrize("protocol", ["SSL", "SASL_SSL"])
def test_librdkafka_accepts_the_rendered_security_config(protocol, tls_files):
    """The rendered keys are real librdkafka settings: the client builds with them."""
    from producers import EventProducer

    cert, key = tls_files
    s = Settings(
        kafka_bootstrap="127.0.0.1:1",
        kafka_security_protocol=protocol,
        kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_sasl_username="proxy",
        kafka_sasl_password="kafka-" + PASSWORD,
        kafka_ssl_cafile=str(cert),
        kafka_ssl_certfile=str(cert),
        kafka_ssl_keyfile=str(key),
    )
    producer = EventProducer(s).start()  # raises ValueError naming the setting if refused
    try:
        assert PASSWORD not in repr(producer.describe())
    finally:
        producer.close(0)


def test_producer_never_logs_the_kafka_password(caplog, capfd):
    """A SASL producer that cannot connect reports errors, none of which shows the password."""
    from producers import EventProducer

    s = Settings(
        kafka_bootstrap="127.0.0.1:1",
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="PLAIN",
        kafka_sasl_username="proxy",
        kafka_sasl_password="kafka-" + PASSWORD,
    )
    caplog.set_level(logging.DEBUG)
    producer = EventProducer(s, poll_interval=0.02)
    try:
        assert producer.send("t.decisions", b"k", b"{}")
        deadline = time.monotonic() + 5
        while producer.metrics()["errors"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        metrics = producer.metrics()
    finally:
        producer.close(0)
    assert metrics["errors"] > 0, "the unreachable broker should have been reported"
    out, err = capfd.readouterr()
    for text in (caplog.text, out, err, repr(metrics), repr(producer.describe())):
        assert PASSWORD not in text
