"""raylite.options: names declared once, validated at decoration and .options() time
(unknown names -> ValueError, wrong types -> TypeError), and the resource requests
built from them. No cluster is needed: validation happens before any submission."""
from __future__ import annotations

import pytest

import raylite as ray
from raylite import options as opts


# ---- names ----------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["task", "actor", "method"])
def test_unknown_option_raises_value_error(kind):
    with pytest.raises(ValueError) as info:
        opts.validate({"no_such_option": 1}, kind)
    assert "no_such_option" in str(info.value)


@pytest.mark.parametrize("options", [
    {"num_cpus": 1}, {"num_cpus": 0.5}, {"num_cpus": 0}, {"num_gpus": 1}, {"num_gpus": 0.25},
    {"resources": {"custom": 2}}, {"memory": 1 << 20}, {"name": "t"}, {"num_returns": 0},
    {"num_returns": 3}, {"max_retries": -1}, {"max_retries": 0}, {"retry_exceptions": True},
    {"retry_exceptions": [ValueError, KeyError]}, {"retry_exceptions": (OSError,)},
    {"scheduling_strategy": "SPREAD"}, {"scheduling_strategy": "DEFAULT"}, {"max_calls": 1},
    {"runtime_env": {}}, {"accelerator_type": None},
])
def test_valid_task_options_pass(options):
    assert opts.validate(dict(options), "task") == options


@pytest.mark.parametrize("options", [
    {"max_restarts": -1}, {"max_task_retries": 2}, {"max_concurrency": 4}, {"lifetime": "detached"},
    {"lifetime": None}, {"namespace": "ns"}, {"get_if_exists": True}, {"name": "a"},
    {"max_pending_calls": -1}, {"num_cpus": 0},
])
def test_valid_actor_options_pass(options):
    assert opts.validate(dict(options), "actor") == options


def test_task_only_options_are_rejected_for_actors_and_vice_versa():
    with pytest.raises(ValueError):
        opts.validate({"num_returns": 2}, "actor")
    with pytest.raises(ValueError):
        opts.validate({"max_restarts": 1}, "task")
    with pytest.raises(ValueError):
        opts.validate({"num_cpus": 1}, "method")
    assert opts.validate({"num_returns": 2}, "method") == {"num_returns": 2}


# ---- types and values -------------------------------------------------------------------------

@pytest.mark.parametrize("options", [
    {"num_cpus": "1"}, {"num_cpus": True}, {"num_cpus": [1]}, {"num_gpus": "1"},
    {"memory": "1GB"}, {"num_returns": "2"}, {"num_returns": 2.0}, {"num_returns": True},
    {"max_retries": 1.5}, {"max_retries": "3"}, {"retry_exceptions": "ValueError"},
    {"retry_exceptions": [ValueError, 3]}, {"retry_exceptions": [int]}, {"resources": "custom"},
    {"resources": [("custom", 1)]}, {"resources": {"custom": "1"}}, {"resources": {1: 1}},
    {"name": 3},
])
def test_wrong_types_raise_type_error(options):
    with pytest.raises(TypeError):
        opts.validate(dict(options), "task")


@pytest.mark.parametrize("options", [
    {"num_cpus": -1}, {"num_gpus": -0.5}, {"num_gpus": 1.5}, {"memory": -1},
    {"num_returns": -1}, {"max_retries": -2}, {"resources": {"CPU": 1}},
    {"resources": {"GPU": 1}}, {"resources": {"custom": -1}}, {"scheduling_strategy": "NOPE"},
    {"num_returns": "dynamic"},
])
def test_bad_values_raise_value_error(options):
    with pytest.raises(ValueError):
        opts.validate(dict(options), "task")


@pytest.mark.parametrize("options", [
    {"lifetime": "forever"}, {"max_concurrency": 0}, {"max_restarts": -2},
])
def test_bad_actor_values_raise_value_error(options):
    with pytest.raises(ValueError):
        opts.validate(dict(options), "actor")


def test_defaults_match_ray():
    assert opts.TASK_DEFAULTS["num_cpus"] == 1
    assert opts.TASK_DEFAULTS["num_returns"] == 1
    assert opts.TASK_DEFAULTS["max_retries"] == 3
    assert opts.TASK_DEFAULTS["retry_exceptions"] is False
    assert opts.ACTOR_DEFAULTS["max_restarts"] == 0
    assert opts.ACTOR_DEFAULTS["max_task_retries"] == 0


# ---- resource requests ---------------------------------------------------------------------

def test_resource_request_defaults_to_one_cpu():
    assert opts.resource_request({}, 1) == {"CPU": 1.0}
    assert opts.resource_request({"num_cpus": None}, 1) == {"CPU": 1.0}


def test_resource_request_zero_cpus_is_empty():
    assert opts.resource_request({"num_cpus": 0}, 1) == {}


def test_resource_request_collects_everything():
    request = opts.resource_request({"num_cpus": 2, "num_gpus": 0.5, "memory": 100,
                                     "resources": {"custom": 3, "zero": 0}}, 1)
    assert request == {"CPU": 2.0, "GPU": 0.5, "memory": 100.0, "custom": 3.0}


# ---- the public decorator -------------------------------------------------------------------

def test_decorator_validates_without_a_cluster():
    assert not ray.is_initialized()
    with pytest.raises(ValueError):
        ray.remote(bogus=1)(lambda: 1)
    with pytest.raises(TypeError):
        ray.remote(num_cpus="x")(lambda: 1)


def test_options_validates_and_copies():
    @ray.remote(num_cpus=1)
    def f():
        return 1

    g = f.options(num_cpus=2, name="g")
    assert g is not f
    assert f._options == {"num_cpus": 1}
    assert g._options == {"num_cpus": 2, "name": "g"}
    with pytest.raises(ValueError):
        f.options(bogus=1)
    with pytest.raises(TypeError):
        f.options(num_returns="1")
    with pytest.raises(ValueError):
        f.options(resources={"CPU": 2})


def test_remote_on_non_callable_raises_type_error():
    with pytest.raises(TypeError):
        ray.remote(3)
    with pytest.raises(TypeError):
        ray.remote(num_cpus=1)(3)


def test_remote_function_cannot_be_called_directly():
    @ray.remote
    def f():
        return 1
    with pytest.raises(TypeError):
        f()


def test_method_decorator_validates():
    @ray.method(num_returns=2)
    def m(self):
        return 1, 2
    assert m.__raylite_method_options__ == {"num_returns": 2}
    with pytest.raises(ValueError):
        ray.method(bogus=1)
    with pytest.raises(TypeError):
        ray.method(num_returns="2")


def test_actor_class_options_validated():
    with pytest.raises(ValueError):
        @ray.remote(num_returns=2)
        class A:
            pass

    @ray.remote
    class B:
        pass

    with pytest.raises(ValueError):
        B.options(bogus=1)
    with pytest.raises(ValueError):
        B.options(lifetime="forever")
