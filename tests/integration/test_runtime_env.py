"""runtime_env on a real cluster: env_vars, working_dir and py_modules on init, tasks
and actors, inheritance and override, the errors, and setup failures.

Outputs compared by hand with Ray 2.60 (same script, `import ray`): the job env is seen
by tasks and actors, a task's env_vars merge over the job's (its own win), the
working_dir is the cwd and importable, get_runtime_env_string is sorted compact JSON.
"""
from __future__ import annotations

import os
import shutil
import textwrap

import pytest

import raylite as ray
from raylite import exceptions as rex
from raylite.runtime_env import RuntimeEnv

JOB_ENV_VARS = {"RT_A": "job", "RT_B": "job"}


def _write(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """A working_dir (a module, a data file, a .git folder) and py_modules sources."""
    root = tmp_path_factory.mktemp("rtenv")
    wd = os.path.join(root, "wd")
    _write(os.path.join(wd, "rt_helper_mod.py"), "VALUE = 42\n")
    _write(os.path.join(wd, "data", "note.txt"), "hello from the working_dir\n")
    _write(os.path.join(wd, ".git", "HEAD"), "ref: refs/heads/main\n")
    _write(os.path.join(root, "mods", "rt_pkg", "__init__.py"), "NAME = 'package'\n")
    _write(os.path.join(root, "mods", "rt_pkg", "sub.py"), "DEEP = 'sub'\n")
    _write(os.path.join(root, "mods", "rt_single.py"), "NAME = 'single'\n")
    return str(root)


@pytest.fixture(scope="module", autouse=True)
def cluster(tree):
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, runtime_env={"env_vars": JOB_ENV_VARS,
                                      "working_dir": os.path.join(tree, "wd")})
    try:
        yield
    finally:
        ray.shutdown()


@ray.remote
def probe():
    import rt_helper_mod
    with open(os.path.join("data", "note.txt")) as f:
        note = f.read().strip()
    return {"A": os.environ.get("RT_A"), "B": os.environ.get("RT_B"),
            "C": os.environ.get("RT_C"), "value": rt_helper_mod.VALUE, "note": note,
            "cwd": os.path.basename(os.getcwd()), "git": os.path.exists(".git"),
            "pid": os.getpid()}


@ray.remote
class EnvActor:
    def env(self, name):
        return os.environ.get(name)

    def cwd_module(self):
        import rt_helper_mod
        return rt_helper_mod.VALUE, os.path.basename(os.getcwd())


def test_job_env_reaches_tasks():
    out = ray.get(probe.remote(), timeout=60)
    assert (out["A"], out["B"], out["C"]) == ("job", "job", None)
    assert out["value"] == 42 and out["note"] == "hello from the working_dir"
    assert out["cwd"].startswith("_ray_pkg_")
    assert out["git"] is False          # .git is never packed


def test_task_env_vars_merge_over_the_job_env():
    out = ray.get(probe.options(runtime_env={"env_vars": {"RT_B": "task", "RT_C": "c"}})
                  .remote(), timeout=60)
    assert (out["A"], out["B"], out["C"]) == ("job", "task", "c")
    assert out["value"] == 42            # working_dir inherited from the job


def test_workers_of_different_envs_are_different_processes():
    plain = {ray.get(probe.remote(), timeout=60)["pid"] for _ in range(3)}
    other = probe.options(runtime_env={"env_vars": {"RT_C": "other"}})
    theirs = {ray.get(other.remote(), timeout=60)["pid"] for _ in range(3)}
    assert not plain & theirs


def test_decorator_runtime_env_and_nested_inheritance():
    @ray.remote(runtime_env={"env_vars": {"RT_C": "decorated"}})
    def outer():
        # A child task without its own runtime_env inherits its parent's.
        return os.environ.get("RT_C"), ray.get(probe.remote())["C"]

    assert ray.get(outer.remote(), timeout=60) == ("decorated", "decorated")


def test_actor_env_vars_override_and_working_dir():
    actor = EnvActor.options(runtime_env={"env_vars": {"RT_A": "actor"}}).remote()
    assert ray.get(actor.env.remote("RT_A"), timeout=60) == "actor"
    assert ray.get(actor.env.remote("RT_B"), timeout=60) == "job"
    value, cwd = ray.get(actor.cwd_module.remote(), timeout=60)
    assert value == 42 and cwd.startswith("_ray_pkg_")
    plain = EnvActor.remote()
    assert ray.get(plain.env.remote("RT_A"), timeout=60) == "job"


def test_task_working_dir_overrides_the_jobs(tmp_path):
    _write(str(tmp_path / "other" / "data" / "note.txt"), "other dir\n")
    _write(str(tmp_path / "other" / "rt_helper_mod.py"), "VALUE = 7\n")
    out = ray.get(probe.options(runtime_env={"working_dir": str(tmp_path / "other")}).remote(),
                  timeout=60)
    assert out["note"] == "other dir" and out["value"] == 7
    assert out["A"] == "job"             # env_vars still inherited


def test_py_modules_package_and_single_file(tree):
    @ray.remote
    def use_modules():
        import rt_pkg
        import rt_pkg.sub
        import rt_single
        return rt_pkg.NAME, rt_pkg.sub.DEEP, rt_single.NAME

    env = {"py_modules": [os.path.join(tree, "mods", "rt_pkg"),
                          os.path.join(tree, "mods", "rt_single.py")]}
    assert ray.get(use_modules.options(runtime_env=env).remote(), timeout=60) == \
        ("package", "sub", "single")


def test_runtime_env_class_and_runtime_context():
    env = RuntimeEnv(env_vars={"RT_C": "class"})
    assert isinstance(env, dict)

    @ray.remote
    def context():
        ctx = ray.get_runtime_context()
        return dict(ctx.runtime_env), ctx.get_runtime_env_string(), os.environ.get("RT_C")

    seen, text, value = ray.get(context.options(runtime_env=env).remote(), timeout=60)
    assert value == "class"
    assert seen["env_vars"] == {"RT_A": "job", "RT_B": "job", "RT_C": "class"}
    assert seen["working_dir"].startswith("gcs://_ray_pkg_")
    assert text.startswith('{"env_vars":{"RT_A":"job","RT_B":"job","RT_C":"class"},'
                           '"working_dir":"gcs://_ray_pkg_')
    driver = ray.get_runtime_context().runtime_env
    assert driver["env_vars"] == JOB_ENV_VARS and driver["working_dir"] == seen["working_dir"]


@pytest.mark.parametrize("key,value,error", [
    ("pip", ["requests"], rex.UnsupportedOptionError),
    ("conda", "myenv", rex.UnsupportedOptionError),
    ("container", {"image": "x"}, rex.UnsupportedOptionError),
    ("uv", ["requests"], rex.UnsupportedOptionError),
    ("image_uri", "docker.io/x", rex.UnsupportedOptionError),
    ("no_such_key", 1, ValueError),
])
def test_unsupported_and_unknown_keys_name_the_key(key, value, error):
    with pytest.raises(error, match=key):
        probe.options(runtime_env={key: value})
    with pytest.raises(error, match=key):
        EnvActor.options(runtime_env={key: value})


def test_bad_values_raise_like_ray():
    with pytest.raises(TypeError, match="Dict\\[str, str\\]"):
        probe.options(runtime_env={"env_vars": {"X": 1}})
    with pytest.raises(ValueError, match="is not a valid path"):
        probe.options(runtime_env={"working_dir": "/no/such/dir/anywhere"})
    with pytest.raises(rex.UnsupportedOptionError, match="working_dir"):
        probe.options(runtime_env={"working_dir": "s3://bucket/code.zip"})


def test_missing_package_fails_with_runtime_env_setup_error():
    missing = "gcs://_ray_pkg_" + "0" * 32 + ".zip"
    ref = probe.options(runtime_env={"working_dir": missing}).remote()
    with pytest.raises(rex.RuntimeEnvSetupError, match="not in the GCS"):
        ray.get(ref, timeout=60)
    actor = EnvActor.options(runtime_env={"py_modules": [missing]}).remote()
    with pytest.raises(rex.ActorDiedError, match="runtime_env"):
        ray.get(actor.env.remote("RT_A"), timeout=60)


def test_vanished_working_dir_fails_at_submission(tmp_path):
    gone = tmp_path / "gone"
    _write(str(gone / "x.py"), "X = 1\n")
    task = probe.options(runtime_env={"working_dir": str(gone)})
    shutil.rmtree(gone)
    with pytest.raises(rex.RuntimeEnvSetupError, match="gone"):
        task.remote()


def test_driver_without_job_env(run_driver, tmp_path):
    """A task's own env applies to it only; default tasks keep the default env."""
    script = textwrap.dedent("""
        import os
        import raylite as ray
        ray.init(num_cpus=1)

        @ray.remote(runtime_env={"env_vars": {"RT_ONLY": "yes"}})
        def with_env():
            return os.environ.get("RT_ONLY")

        @ray.remote
        def without():
            return os.environ.get("RT_ONLY")

        print(ray.get(with_env.remote()), ray.get(without.remote()),
              ray.get_runtime_context().get_runtime_env_string())
    """)
    proc = run_driver(script, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["yes", "None", "{}"]


def test_working_dir_reaches_another_node(local_cluster, tmp_path):
    """A joined node downloads the package from the GCS and unpacks it in its own
    session directory; the task there imports from it and reads a relative file."""
    _write(str(tmp_path / "code" / "rt_far_mod.py"), "WHERE = 'far'\n")
    _write(str(tmp_path / "code" / "far.txt"), "far file\n")
    cluster = local_cluster()
    cluster.start_head(num_cpus=1)
    node_b = cluster.add_node("node_b", num_cpus=1)
    lines = cluster.run_driver(textwrap.dedent(f"""
        import os, time
        import raylite as ray
        ray.init(address="auto", runtime_env={{"working_dir": {str(tmp_path / "code")!r},
                                               "env_vars": {{"RT_FAR": "1"}}}})
        deadline = time.monotonic() + 30
        while len([n for n in ray.nodes() if n["Alive"]]) < 2:
            assert time.monotonic() < deadline, ray.nodes()
            time.sleep(0.05)

        @ray.remote(resources={{"node_b": 0.01}})
        def far():
            import rt_far_mod
            return (ray.get_runtime_context().get_node_id(), rt_far_mod.WHERE,
                    open("far.txt").read().strip(), os.environ["RT_FAR"])
        print("FAR", *ray.get(far.remote(), timeout=60))
    """), timeout=120)
    assert [line for line in lines if line.startswith("FAR")] == \
        [f"FAR {node_b.node_id} far far file 1"]


def test_task_env_with_local_paths_travels_as_packages_into_nested_tasks(tmp_path):
    """A remote function with a task-level working_dir, called from inside another task,
    carries its package (not this machine's path) with it."""
    _write(str(tmp_path / "nested" / "rt_nested_mod.py"), "N = 'nested'\n")

    @ray.remote(runtime_env={"working_dir": str(tmp_path / "nested")})
    def inner():
        import rt_nested_mod
        return rt_nested_mod.N, os.path.basename(os.getcwd())

    @ray.remote
    def outer():
        return inner._options.runtime_env["working_dir"], ray.get(inner.remote())

    where, (value, cwd) = ray.get(outer.remote(), timeout=60)
    assert where.startswith("gcs://_ray_pkg_") and value == "nested"
    assert cwd == where[len("gcs://"):-len(".zip")]
