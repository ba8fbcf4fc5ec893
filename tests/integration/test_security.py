"""Secure by default: loopback only, every gRPC call authenticated, Redis password."""
from __future__ import annotations

import grpc
import pytest
import redis

import raylite as ray
from raylite.protocol import common_pb2, node_pb2_grpc, worker_pb2, worker_pb2_grpc
from raylite.protocol.channels import AuthedStub


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=1)
    yield ray.api.connection()
    ray.shutdown()


def _node(cluster):
    return next(iter(cluster.gcs.nodes().values()))


def test_everything_listens_on_loopback(cluster):
    assert ray.util.get_node_ip_address() == "127.0.0.1"
    node = _node(cluster)
    assert node.address.startswith("127.0.0.1:")
    assert cluster.gcs_address.startswith("127.0.0.1:")
    assert cluster.worker.address.tcp.startswith("127.0.0.1:")


def test_scheduler_rejects_calls_without_token(cluster):
    # Over its unix socket (plain: the 0700 directory authenticates the user) the token
    # decides; over TCP (below) a peer without it cannot even finish the TLS handshake.
    channel = grpc.insecure_channel(_node(cluster).uds)
    stub = node_pb2_grpc.NodeSchedulerStub(channel)
    with pytest.raises(grpc.RpcError) as info:
        stub.GetNodeInfo(common_pb2.Empty(), timeout=5)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    bad = AuthedStub(stub, "not-the-token")
    with pytest.raises(grpc.RpcError) as info:
        bad.GetNodeInfo(common_pb2.Empty(), timeout=5)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    good = AuthedStub(stub, cluster.worker.token)
    assert good.GetNodeInfo(common_pb2.Empty(), timeout=5).node_id == cluster.worker.node_id
    channel.close()


def test_worker_rejects_pickled_payloads_without_token(cluster):
    # A peer without the token cannot make a core worker unpickle anything.
    channel = grpc.insecure_channel(cluster.worker.address.uds)
    stub = worker_pb2_grpc.CoreWorkerStub(channel)
    with pytest.raises(grpc.RpcError) as info:
        stub.GetObject(worker_pb2.GetObjectRequest(id=b"x" * 20), timeout=5)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    responses = stub.PushTasks(iter([worker_pb2.PushRequest()]), timeout=5)
    with pytest.raises(grpc.RpcError) as info:
        list(responses)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    channel.close()


def test_redis_requires_password(cluster):
    host, port = cluster.gcs_address.rsplit(":", 1)
    client = redis.Redis(host=host, port=int(port))
    with pytest.raises(redis.exceptions.AuthenticationError):
        client.get("raylite:nodes")
    wrong = redis.Redis(host=host, port=int(port), password="wrong")
    with pytest.raises((redis.exceptions.AuthenticationError, redis.exceptions.ResponseError)):
        wrong.ping()
    assert cluster.gcs.ping()


def test_secrets_not_on_command_lines(cluster):
    import os
    token = cluster.worker.token
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        assert token.encode() not in cmd, f"cluster token visible in argv of pid {pid}"


def test_api_inside_a_task_sees_the_cluster(cluster):
    @ray.remote
    def inside():
        ray.init(ignore_reinit_error=True)   # a no-op in a worker, as in Ray
        return (ray.is_initialized(), ray.cluster_resources()["CPU"],
                ray.get_runtime_context().get_job_id())

    assert ray.get(inside.remote()) == (True, 1.0, ray.get_runtime_context().get_job_id())


# ---- per-user files ------------------------------------------------------------------
import json  # noqa: E402
import os  # noqa: E402
import stat  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def cli(args, env, timeout=60):
    return subprocess.run([sys.executable, "-m", "raylite.cli.main", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def _env(root, **extra):
    env = dict(os.environ, PYTHONPATH=REPO, RAYLITE_TMPDIR=str(root), **extra)
    env.pop("RAYLITE_TOKEN", None)
    env.pop("RAYLITE_GCS_PASSWORD", None)
    env.update(extra)
    return env


def test_session_files_are_private(cluster):
    session = cluster.session
    assert _mode(os.path.dirname(session.root)) == 0o700
    for path in (session.root, session.sockets, session.logs, session.redis_dir):
        assert _mode(path) == 0o700, path
    for name in os.listdir(session.logs):
        assert _mode(os.path.join(session.logs, name)) & 0o077 == 0, name
    for name in ("redis.conf", "redis.log"):
        assert _mode(os.path.join(session.redis_dir, name)) == 0o600, name
    aof = [n for n in os.listdir(session.redis_dir) if n.endswith(".aof")]
    assert aof and all(_mode(os.path.join(session.redis_dir, n)) == 0o600 for n in aof)


def test_default_root_is_per_user(monkeypatch, tmp_path):
    from raylite import session
    monkeypatch.delenv("RAYLITE_TMPDIR", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    assert session._default_root().endswith(f"raylite-{os.geteuid()}")
    runtime = tmp_path / "xdg"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    assert session._default_root() == str(runtime / "raylite")
    os.chmod(runtime, 0o755)   # not a private runtime dir: fall back to /tmp/raylite-<uid>
    assert session._default_root().endswith(f"raylite-{os.geteuid()}")


@pytest.mark.parametrize("squat", ["other-owner", "open-mode", "symlink", "file"])
def test_squatted_session_root_is_refused(tmp_path, squat):
    root = tmp_path / "run"
    if squat == "symlink":
        (tmp_path / "elsewhere").mkdir(mode=0o700)
        os.symlink(tmp_path / "elsewhere", root)
    elif squat == "file":
        root.write_text("")
    else:
        root.mkdir(mode=0o700)
        if squat == "open-mode":
            os.chmod(root, 0o777)
        elif os.geteuid() == 0:
            os.chown(root, 12345, 12345)
        else:
            pytest.skip("needs root to give a directory away")
    out = cli(["start", "--head", "--port", "0", "--num-cpus", "1"], _env(root))
    assert out.returncode != 0
    assert "refusing raylite directory" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    if squat != "file":
        assert not [p for p in os.listdir(root) if p.startswith("s-")]


# ---- a CLI cluster: token handling -----------------------------------------------------
@pytest.fixture(scope="module")
def cli_head(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli") / "run"
    env = _env(root)
    out = cli(["start", "--head", "--port", "0", "--num-cpus", "1"], env)
    assert out.returncode == 0, out.stdout + out.stderr
    yield env, out.stdout + out.stderr, root
    cli(["stop"], env)


def test_head_prints_token_file_not_token(cli_head):
    env, output, root = cli_head
    info = json.loads(open(os.path.join(root, "current_cluster")).read())
    assert info["token"] not in output
    assert _mode(os.path.join(root, "current_cluster")) == 0o600
    token_file = next(line for line in output.splitlines() if "--token-file=" in line) \
        .split("--token-file=")[1].split()[0]
    assert _mode(token_file) == 0o600
    assert open(token_file).read().strip() == info["token"]
    assert info["password"] != info["token"]
    for name in os.listdir(os.path.join(info["session"], "logs")):
        path = os.path.join(info["session"], "logs", name)
        assert _mode(path) & 0o077 == 0 and info["token"] not in open(path).read(), name


def test_token_on_the_command_line_is_refused(tmp_path):
    out = cli(["start", "--head", "--port", "0", "--token", "abc"], _env(tmp_path / "run"))
    assert out.returncode == 2
    assert "RAYLITE_TOKEN" in out.stderr and "--token-file" in out.stderr
    assert not (tmp_path / "run").exists()


def test_token_file_must_be_private(tmp_path, cli_head):
    env, output, root = cli_head
    loose = tmp_path / "token"
    loose.write_text("abc")
    os.chmod(loose, 0o644)
    info = json.loads(open(os.path.join(root, "current_cluster")).read())
    out = cli(["start", "--address", info["gcs_address"], "--token-file", str(loose)],
              _env(tmp_path / "run2"))
    assert out.returncode == 2 and "0644" in out.stderr, out.stderr


def test_joining_with_a_wrong_token_fails_fast(tmp_path, cli_head):
    env, output, root = cli_head
    info = json.loads(open(os.path.join(root, "current_cluster")).read())
    # Fails at once: a retry loop would run into the timeout (TimeoutExpired fails it).
    out = cli(["start", "--address", info["gcs_address"], "--num-cpus", "1"],
              _env(tmp_path / "run", RAYLITE_TOKEN="not-the-token"), timeout=15)
    assert out.returncode == 1
    assert "wrong cluster token" in out.stderr and "cannot reach" not in out.stderr, out.stderr
    out = cli(["status", "--address", info["gcs_address"]],
              _env(tmp_path / "run3", RAYLITE_TOKEN="not-the-token"))
    assert out.returncode == 1 and "wrong cluster token" in out.stderr, out.stderr


def _driver(code, env, timeout=60):
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_driver_with_a_wrong_token_gets_authentication_error(tmp_path, cli_head):
    env, output, root = cli_head
    info = json.loads(open(os.path.join(root, "current_cluster")).read())
    code = ("import raylite as ray\n"
            "try:\n"
            f"    ray.init(address={info['gcs_address']!r}, _token='wrong')\n"
            "except ray.exceptions.AuthenticationError as err:\n"
            "    print('AUTH', err)\n")
    out = _driver(code, _env(tmp_path / "d1"))
    assert "AUTH wrong cluster token" in out.stdout, out.stdout + out.stderr
    # Right Redis password, wrong token: the node scheduler refuses at once (no 30 s wait).
    code = code.replace("_token='wrong'", "")
    out = _driver(code, _env(tmp_path / "d2", RAYLITE_TOKEN="wrong",
                             RAYLITE_GCS_PASSWORD=info["password"]), timeout=20)
    assert "AUTH wrong cluster token" in out.stdout, out.stdout + out.stderr
    # And the right token works.
    good = _driver(f"import raylite as ray\nray.init(address={info['gcs_address']!r})\n"
                   "print(ray.get(ray.remote(lambda: 41 + 1).remote()))\n",
                   _env(tmp_path / "d3", RAYLITE_TOKEN=info["token"]))
    assert good.stdout.split() == ["42"], good.stdout + good.stderr


def test_symlinked_current_cluster_is_refused(tmp_path):
    root = tmp_path / "run"
    root.mkdir(mode=0o700)
    planted = tmp_path / "planted.json"
    planted.write_text(json.dumps({"gcs_address": "127.0.0.1:1", "token": "x"}))
    os.symlink(planted, root / "current_cluster")
    code = ("import raylite as ray\n"
            "try:\n"
            "    ray.init(address='auto')\n"
            "except PermissionError as err:\n"
            "    print('REFUSED', err)\n")
    out = _driver(code, _env(root))
    assert "REFUSED refusing raylite file" in out.stdout and "symlink" in out.stdout, \
        out.stdout + out.stderr


# ---- nothing unauthenticated is buffered ------------------------------------------------
def _scheduler_process(cluster):
    import psutil
    sched = next(p for p in cluster.procs if "raylite.scheduler" in " ".join(map(str, p.args)))
    return psutil.Process(sched.pid)


def _raw_call(target, size, method="/raylite.NodeScheduler/GetNodeInfo"):
    channel = grpc.insecure_channel(target, options=[("grpc.max_send_message_length", -1)])
    call = channel.unary_unary(method)   # raw bytes: no (de)serializer
    try:
        call(b"\0" * size, timeout=30)
        code = grpc.StatusCode.OK
    except grpc.RpcError as err:
        code = err.code()
    channel.close()
    return code


def test_large_unauthenticated_grpc_messages_are_not_buffered(cluster):
    from raylite.protocol.channels import MAX_MESSAGE
    proc = _scheduler_process(cluster)
    target = _node(cluster).uds   # plain gRPC: the token check is what refuses
    assert _raw_call(target, 1024) == grpc.StatusCode.UNAUTHENTICATED   # warm up
    before = proc.memory_info().rss
    codes = [_raw_call(target, 128 << 20) for _ in range(4)]
    codes.append(_raw_call(target, MAX_MESSAGE + (1 << 20)))
    codes.append(_raw_call(_node(cluster).address, 128 << 20))   # TCP: no TLS, no bytes
    grown = proc.memory_info().rss - before
    print(f"scheduler RSS growth after 4 x 128 MiB + 1 oversize + 1 TCP: {grown / 2**20:.1f} MiB")
    assert set(codes) <= {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.RESOURCE_EXHAUSTED,
                          grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED}, codes
    assert grown < 8 << 20, f"scheduler grew by {grown >> 20} MiB on unauthenticated input"
    assert ray.get(ray.remote(lambda: "still serving").remote()) == "still serving"


def _fast_socket(cluster):
    import glob
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = glob.glob(os.path.join(cluster.session.sockets, "*.sock.f"))
        if found:
            return found[0]
        ray.get(ray.remote(lambda: None).remote())
    raise AssertionError("no worker fast-path socket")


def _closed_within(sock, seconds) -> bool:
    sock.settimeout(seconds)
    try:
        while sock.recv(1024):
            pass
        return True
    except ConnectionResetError:
        return True
    except OSError:
        return False


def test_fast_path_refuses_a_huge_first_frame(cluster):
    import socket
    import struct
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(_fast_socket(cluster))
    sock.sendall(struct.pack("<I", (1 << 31) - 1) + b"\0" * 65536)
    assert _closed_within(sock, 10)
    sock.close()


def test_fast_path_closes_a_dripping_handshake(cluster):
    import socket
    import struct
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(_fast_socket(cluster))
    sock.sendall(struct.pack("<I", 64))
    started = time.monotonic()
    closed = False
    while time.monotonic() - started < 60:   # one byte a second: never completes the frame
        try:
            sock.send(b"x")
        except OSError:
            closed = True
            break
        if _closed_within(sock, 1.0):
            closed = True
            break
    sock.close()
    assert closed, "a pre-auth connection outlived the handshake deadline"
    assert ray.get(ray.remote(lambda: 7).remote()) == 7


def test_fast_path_with_a_wrong_token_is_closed(cluster):
    import socket

    from raylite.protocol.framing import encode
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(_fast_socket(cluster))
    sock.sendall(encode(b"0" * 32) + encode(worker_pb2.PushRequest().SerializeToString()))
    assert _closed_within(sock, 10)
    sock.close()


# ---- Redis: an ACL user without administrative commands -----------------------------------
def test_redis_dangerous_commands_are_denied(cluster):
    host, port = cluster.gcs_address.rsplit(":", 1)
    r = redis.Redis(host=host, port=int(port), username="raylite", password=cluster.gcs.password)
    assert r.execute_command("PING")
    for command in (("CONFIG", "SET", "dir", "/tmp"), ("CONFIG", "GET", "dir"), ("FLUSHALL",),
                    ("FLUSHDB",), ("SAVE",), ("BGSAVE",), ("SHUTDOWN", "NOSAVE"),
                    ("DEBUG", "SLEEP", "0"), ("MODULE", "LIST"), ("REPLICAOF", "NO", "ONE"),
                    ("SLAVEOF", "NO", "ONE"), ("ACL", "LIST"), ("MONITOR",)):
        with pytest.raises(redis.exceptions.NoPermissionError):
            r.execute_command(*command)
    assert r.exists("raylite:nodes") is not None and r.ping()


def test_redis_default_user_is_disabled(cluster):
    host, port = cluster.gcs_address.rsplit(":", 1)
    password = cluster.gcs.password
    as_default = redis.Redis(host=host, port=int(port), password=password)   # AUTH <password>
    with pytest.raises((redis.exceptions.AuthenticationError, redis.exceptions.ResponseError)):
        as_default.ping()
    assert password != cluster.worker.token
    with pytest.raises((redis.exceptions.AuthenticationError, redis.exceptions.ResponseError)):
        redis.Redis(host=host, port=int(port), username="raylite",
                    password=cluster.worker.token).ping()


# ---- integrity of what the GCS holds ---------------------------------------------------------
def _raw_redis(cluster):
    host, port = cluster.gcs_address.rsplit(":", 1)
    return redis.Redis(host=host, port=int(port), username="raylite", password=cluster.gcs.password)


def test_tampered_function_table_entry_is_refused(cluster, tmp_path):
    import pickle

    from raylite.core.function_manager import function_id_of
    from raylite.gcs import keys
    from raylite.serialization import dumps_code
    marker = tmp_path / "pwned"

    def innocent():
        return "innocent"

    remote = ray.remote(innocent)
    fid = function_id_of(dumps_code(remote._function))
    # Whoever can write Redis plants a pickle under the id the driver is about to use.
    evil = pickle.dumps((os.system, (f"touch {marker}",)))
    _raw_redis(cluster).set(keys.function_key(fid.hex()), evil)
    with pytest.raises(Exception) as info:
        ray.get(remote.remote(), timeout=60)
    assert "tampered" in str(info.value), info.value
    assert not marker.exists(), "a planted function table entry ran"
    assert ray.get(ray.remote(lambda: "ok").remote()) == "ok"



# ---- mutual authentication over TCP -----------------------------------------------------------
def _tls_channel(target, token):
    from raylite.protocol.channels import TLS_CHANNEL_OPTIONS
    from raylite.security.cluster_tls import derive
    return grpc.secure_channel(target, derive(token).channel_credentials(),
                               options=TLS_CHANNEL_OPTIONS)


def test_tcp_needs_the_clusters_tls_identity(cluster):
    target = _node(cluster).address
    token = cluster.worker.token
    for channel in (grpc.insecure_channel(target), _tls_channel(target, "not-the-token")):
        stub = AuthedStub(node_pb2_grpc.NodeSchedulerStub(channel), token)
        with pytest.raises(Exception) as info:
            stub.GetNodeInfo(common_pb2.Empty(), timeout=5)
        assert "UNAVAILABLE" in str(info.value) or "unreachable" in str(info.value).lower()
        channel.close()
    channel = _tls_channel(target, token)
    stub = AuthedStub(node_pb2_grpc.NodeSchedulerStub(channel), token)
    assert stub.GetNodeInfo(common_pb2.Empty(), timeout=5).node_id == cluster.worker.node_id
    channel.close()


def _fake_server(handshake_tls_token=None):
    """A listener that records whatever a client sends it; with a token, it speaks TLS
    with credentials derived from that (wrong) token."""
    import socket
    import ssl
    import tempfile
    import threading
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    received = bytearray()
    context = None
    if handshake_tls_token:
        from raylite.security.cluster_tls import derive
        creds = derive(handshake_tls_token)
        directory = tempfile.mkdtemp()
        key, cert = os.path.join(directory, "k"), os.path.join(directory, "c")
        open(key, "wb").write(creds.key_pem)
        open(cert, "wb").write(creds.cert_pem)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        context.set_alpn_protocols(["h2"])

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            try:
                if context is not None:
                    conn = context.wrap_socket(conn, server_side=True)
                conn.settimeout(3)
                while True:
                    data = conn.recv(65536)
                    if not data:
                        break
                    received.extend(data)
            except (OSError, ssl.SSLError):
                pass
            finally:
                conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return listener, received


@pytest.mark.parametrize("fake", ["plain", "tls-with-another-token"])
def test_client_sends_no_secret_to_a_fake_server(cluster, fake):
    from raylite.protocol.channels import sync_channel
    listener, received = _fake_server(None if fake == "plain" else "attacker-token")
    target = f"127.0.0.1:{listener.getsockname()[1]}"
    token = cluster.worker.token
    channel = sync_channel(target)
    stub = AuthedStub(worker_pb2_grpc.CoreWorkerStub(channel), token)
    with pytest.raises((grpc.RpcError, ray.exceptions.RayliteError)):
        stub.GetObject(worker_pb2.GetObjectRequest(id=b"x" * 20), timeout=3)
    channel.close()
    listener.close()
    time.sleep(0.2)
    assert token.encode() not in bytes(received)
    assert cluster.gcs.password.encode() not in bytes(received)


def test_unix_socket_outside_our_directories_is_refused(tmp_path):
    from raylite.protocol.channels import sync_channel
    from raylite.security.files import InsecurePathError
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    with pytest.raises(InsecurePathError):
        sync_channel(f"unix:{shared}/evil.sock")


def test_tampered_job_record_is_refused(cluster, tmp_path):
    # A Redis writer without the token re-points a job's sys.path at a directory with a
    # module of theirs; workers refuse the record instead of importing from it.
    evil_dir = tmp_path / "evil"
    evil_dir.mkdir()
    host, port = cluster.gcs_address.rsplit(":", 1)
    code = f"""
import redis
import raylite as ray
from raylite.gcs import keys
from raylite.gcs.records import JobRecord
ray.init(address={cluster.gcs_address!r})
r = redis.Redis(host={host!r}, port={port}, username="raylite", password={cluster.gcs.password!r})
job_id = ray.get_runtime_context().get_job_id()
record = JobRecord.from_bytes(r.hget(keys.JOBS, job_id))
assert record.extra.get("sig")
r.hset(keys.JOBS, job_id, record.replace(sys_path=[{str(evil_dir)!r}]).to_bytes())

@ray.remote
def sees_evil():
    import sys
    return {str(evil_dir)!r} in sys.path

try:
    print("RAN", ray.get(sees_evil.remote(), timeout=60))
except Exception as err:
    print("REFUSED", err)
"""
    out = _driver(code, dict(os.environ, PYTHONPATH=REPO, RAYLITE_TOKEN=cluster.worker.token))
    assert "REFUSED" in out.stdout and "signature" in out.stdout, out.stdout + out.stderr[-3000:]
    assert ray.get(ray.remote(lambda: "ok").remote()) == "ok"


# ---- a second local user ---------------------------------------------------------------------
ATTACKER = r'''
import glob, json, os, socket, sys
targets = json.loads(sys.argv[1])
os.setgroups([]); os.setgid(65534); os.setuid(65534)
results = {}
for path in targets["files"]:
    try:
        open(path, "rb").read(1)
        results[path] = "READ"
    except OSError as err:
        results[path] = type(err).__name__
for path in targets["sockets"]:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        results[path] = "CONNECTED"
    except OSError as err:
        results[path] = type(err).__name__
    s.close()
for path in targets["dirs"]:
    try:
        os.listdir(path)
        results[path] = "LISTED"
    except OSError as err:
        results[path] = type(err).__name__
    try:
        open(os.path.join(path, "planted"), "w").close()
        results[path + "/planted"] = "WROTE"
    except OSError as err:
        results[path + "/planted"] = type(err).__name__
print(json.dumps(results))
'''


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as a second user")
def test_second_local_user_reaches_no_file_socket_or_store(cluster):
    import glob
    session = cluster.session
    files = [p for p in glob.glob(os.path.join(session.root, "**", "*"), recursive=True)
             if os.path.isfile(p) and not p.endswith((".sock", ".sock.f"))]
    shm = glob.glob(session.shm_dir(cluster.worker.node_id) + "*")
    files += [p for d in shm for p in glob.glob(os.path.join(d, "*"))]
    sockets = glob.glob(os.path.join(session.sockets, "*")) + \
        glob.glob(os.path.join(session.redis_dir, "*.sock"))
    dirs = [os.path.dirname(session.root), session.root, session.sockets, session.logs,
            session.redis_dir] + shm
    assert files and sockets and shm
    out = subprocess.run([sys.executable, "-c", ATTACKER,
                          json.dumps({"files": files, "sockets": sockets, "dirs": dirs})],
                         capture_output=True, text=True, timeout=60, cwd="/")
    results = json.loads(out.stdout)
    breaches = {k: v for k, v in results.items() if v in ("READ", "CONNECTED", "LISTED", "WROTE")}
    assert breaches == {}, breaches
