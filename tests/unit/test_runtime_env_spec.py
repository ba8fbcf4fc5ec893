"""runtime_env validation, merging and the RuntimeEnv class (pure logic)."""
from __future__ import annotations

import os
import pickle

import pytest

import raylite as ray
from raylite.exceptions import UnsupportedOptionError
from raylite.options import ActorOptions, TaskOptions
from raylite.runtime_env import RuntimeEnv, spec


def test_env_vars_must_be_str_to_str():
    assert spec.normalize({"env_vars": {"A": "1"}}) == {"env_vars": {"A": "1"}}
    with pytest.raises(TypeError, match="value 1 is of type"):
        spec.normalize({"env_vars": {"A": 1}})
    with pytest.raises(TypeError, match="key 1 is of type"):
        spec.normalize({"env_vars": {1: "a"}})
    with pytest.raises(TypeError, match="Dict\\[str, str\\], got"):
        spec.normalize({"env_vars": ["A=1"]})


@pytest.mark.parametrize("key", ["pip", "uv", "conda", "container", "image_uri",
                                 "py_executable", "worker_process_setup_hook"])
def test_ray_keys_raylite_lacks_are_refused_by_name(key):
    with pytest.raises(UnsupportedOptionError, match=key) as info:
        spec.normalize({key: ["x"]})
    assert info.value.option == f"runtime_env['{key}']"


def test_unknown_key_is_a_value_error_naming_it():
    with pytest.raises(ValueError, match="'colour'"):
        spec.normalize({"colour": "blue"})


def test_none_values_are_dropped_and_non_dicts_refused():
    assert spec.normalize({"working_dir": None, "env_vars": None}) == {}
    assert spec.normalize(None) == {}
    with pytest.raises(TypeError):
        spec.normalize(["env_vars"])


def test_working_dir_checks(tmp_path):
    assert spec.normalize({"working_dir": str(tmp_path)}) == {"working_dir": str(tmp_path)}
    with pytest.raises(TypeError, match="must be a string"):
        spec.normalize({"working_dir": 3})
    with pytest.raises(ValueError, match="is not a valid path"):
        spec.normalize({"working_dir": str(tmp_path / "missing")})
    for uri in ("s3://bucket/x.zip", "https://example.com/x.zip", "gcs://other.zip"):
        with pytest.raises(UnsupportedOptionError, match="remote URIs"):
            spec.normalize({"working_dir": uri})
    archive = tmp_path / "code.zip"
    archive.write_bytes(b"PK")
    with pytest.raises(UnsupportedOptionError, match="zip files"):
        spec.normalize({"working_dir": str(archive)})
    package = "gcs://_ray_pkg_" + "a" * 32 + ".zip"   # one raylite uploaded
    assert spec.normalize({"working_dir": package}) == {"working_dir": package}


def test_working_dir_relative_path_becomes_absolute(tmp_path, monkeypatch):
    (tmp_path / "code").mkdir()
    monkeypatch.chdir(tmp_path)
    assert spec.normalize({"working_dir": "code"}) == {"working_dir": str(tmp_path / "code")}


def test_py_modules_checks(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "one.py").write_text("")
    given = [str(tmp_path / "pkg"), str(tmp_path / "one.py")]
    assert spec.normalize({"py_modules": given}) == {"py_modules": given}
    with pytest.raises(TypeError, match="list of strings"):
        spec.normalize({"py_modules": str(tmp_path / "pkg")})
    with pytest.raises(ValueError, match="not a valid path"):
        spec.normalize({"py_modules": [str(tmp_path / "nope")]})
    with pytest.raises(UnsupportedOptionError, match="wheels"):
        spec.normalize({"py_modules": ["x-1.0-py3-none-any.whl"]})
    # A module object stands for its package directory (or its file).
    assert spec.normalize({"py_modules": [spec]})["py_modules"] == [spec.__file__]
    import raylite.runtime_env as package
    assert spec.normalize({"py_modules": [package]})["py_modules"] == \
        [os.path.dirname(package.__file__)]


def test_config_and_excludes():
    assert spec.normalize({"config": {"setup_timeout_seconds": 10, "eager_install": False},
                           "excludes": ["*.log"]})["excludes"] == ["*.log"]
    with pytest.raises(ValueError):
        spec.normalize({"config": {"setup_timeout_seconds": 0}})
    with pytest.raises(ValueError, match="colour"):
        spec.normalize({"config": {"colour": 1}})
    with pytest.raises(TypeError):
        spec.normalize({"excludes": "*.log"})


def test_merge_overrides_per_key_and_env_vars_per_variable():
    # Ray's documented example of inheritance.
    parent = {"working_dir": "gcs://p", "env_vars": {"A": "a", "B": "b"}}
    child = {"py_modules": ["gcs://m"], "env_vars": {"B": "new", "C": "c"}}
    assert spec.merge(parent, child) == {"working_dir": "gcs://p", "py_modules": ["gcs://m"],
                                         "env_vars": {"A": "a", "B": "new", "C": "c"}}
    assert spec.merge(parent, {"working_dir": "gcs://q"}) == \
        {"working_dir": "gcs://q", "env_vars": {"A": "a", "B": "b"}}
    assert spec.merge({}, child) is child and spec.merge(parent, {}) is parent
    assert parent == {"working_dir": "gcs://p", "env_vars": {"A": "a", "B": "b"}}  # untouched


def test_encode_is_canonical():
    assert spec.encode({}) == ""
    a = spec.encode({"working_dir": "w", "env_vars": {"B": "2", "A": "1"}})
    b = spec.encode({"env_vars": {"A": "1", "B": "2"}, "working_dir": "w"})
    assert a == b == '{"env_vars":{"A":"1","B":"2"},"working_dir":"w"}'
    assert spec.decode(a) == {"env_vars": {"A": "1", "B": "2"}, "working_dir": "w"}
    assert spec.decode("") == {}


def test_runtime_env_class():
    env = RuntimeEnv(env_vars={"A": "1"})
    assert isinstance(env, dict) and env == {"env_vars": {"A": "1"}}
    assert env.env_vars() == {"A": "1"} and env.working_dir() == "" and env.py_modules() == []
    assert RuntimeEnv.deserialize(env.serialize()) == env
    assert pickle.loads(pickle.dumps(env)) == env
    assert type(pickle.loads(pickle.dumps(env))) is RuntimeEnv
    assert ray.runtime_env.RuntimeEnv is RuntimeEnv
    with pytest.raises(UnsupportedOptionError, match="pip"):
        RuntimeEnv(pip=["requests"])
    with pytest.raises(TypeError):
        RuntimeEnv(env_vars={"A": 1})
    with pytest.raises(ValueError, match="colour"):
        RuntimeEnv(colour="blue")


def test_runtime_env_config():
    from raylite.runtime_env import RuntimeEnvConfig
    config = RuntimeEnvConfig(setup_timeout_seconds=30)
    assert config == {"setup_timeout_seconds": 30, "eager_install": True, "log_files": []}
    assert RuntimeEnv(config=config)["config"] == config
    with pytest.raises(ValueError):
        RuntimeEnvConfig(setup_timeout_seconds=0)


def test_options_accept_runtime_env_and_check_it():
    options = TaskOptions.build({"runtime_env": RuntimeEnv(env_vars={"A": "1"})})
    assert options.runtime_env == {"env_vars": {"A": "1"}}
    assert ActorOptions.build({"runtime_env": {"env_vars": {"A": "1"}}}).runtime_env == \
        {"env_vars": {"A": "1"}}
    with pytest.raises(UnsupportedOptionError, match="conda"):
        TaskOptions.build({"runtime_env": {"conda": "env"}})
    with pytest.raises(TypeError):
        ActorOptions.build({"runtime_env": {"env_vars": {"A": 2}}})


def test_init_refuses_a_bad_runtime_env_before_starting(monkeypatch):
    import raylite.cluster

    def forbidden(*args, **kwargs):
        raise AssertionError("init started a cluster before checking runtime_env")
    monkeypatch.setattr(raylite.cluster, "start_embedded_cluster", forbidden)
    monkeypatch.setattr(raylite.cluster, "connect_cluster", forbidden)
    for name in ("RAY_ADDRESS", "RAYLITE_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(UnsupportedOptionError, match="container"):
        ray.init(runtime_env={"container": {"image": "x"}})
    with pytest.raises(ValueError, match="not a valid path"):
        ray.init(runtime_env={"working_dir": "/no/such/directory/here"})
    with pytest.raises(TypeError):
        ray.init(runtime_env={"env_vars": {"A": 1}})
    assert not ray.is_initialized()
