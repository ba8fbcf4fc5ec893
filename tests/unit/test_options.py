"""raylite.options: TaskOptions/ActorOptions/MethodOptions declared once, validated at
decoration and .options() time (unknown names -> ValueError, wrong types -> TypeError,
unimplemented options -> UnsupportedOptionError), and the resource requests built from
them. No cluster is needed: validation happens before any submission."""
from __future__ import annotations

import pytest

import raylite as ray
from raylite.options import ActorOptions, MethodOptions, TaskOptions

_CLASSES = {"task": TaskOptions, "actor": ActorOptions, "method": MethodOptions}


def build(options, kind="task"):
    return _CLASSES[kind].build(dict(options))


def given(obj, options) -> bool:
    return all(getattr(obj, k) == v for k, v in options.items())


# ---- names ----------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["task", "actor", "method"])
def test_unknown_option_raises_value_error(kind):
    with pytest.raises(ValueError) as info:
        build({"no_such_option": 1}, kind)
    assert "no_such_option" in str(info.value)


@pytest.mark.parametrize("options", [
    {"num_cpus": 1}, {"num_cpus": 0.5}, {"num_cpus": 0}, {"num_gpus": 1}, {"num_gpus": 0.25},
    {"resources": {"custom": 2}}, {"memory": 1 << 20}, {"name": "t"}, {"num_returns": 0},
    {"num_returns": 3}, {"max_retries": -1}, {"max_retries": 0}, {"retry_exceptions": True},
    {"retry_exceptions": [ValueError, KeyError]}, {"retry_exceptions": (OSError,)},
    {"scheduling_strategy": "SPREAD"}, {"scheduling_strategy": "DEFAULT"}, {"max_calls": None},
    {"runtime_env": {}}, {"runtime_env": None}, {"accelerator_type": None},
    {"enable_task_events": False}, {"label_selector": {}},
])
def test_valid_task_options_pass(options):
    assert given(build(options, "task"), options)


@pytest.mark.parametrize("options", [
    {"max_restarts": -1}, {"max_task_retries": 2}, {"max_concurrency": 4}, {"lifetime": "detached"},
    {"lifetime": None}, {"namespace": "ns"}, {"get_if_exists": True}, {"name": "a"},
    {"max_pending_calls": -1}, {"num_cpus": 0}, {"concurrency_groups": None},
    {"object_store_memory": None}, {"enable_task_events": False},
])
def test_valid_actor_options_pass(options):
    assert given(build(options, "actor"), options)


def test_task_only_options_are_rejected_for_actors_and_vice_versa():
    with pytest.raises(ValueError):
        build({"num_returns": 2}, "actor")
    with pytest.raises(ValueError):
        build({"max_restarts": 1}, "task")
    with pytest.raises(ValueError):
        build({"num_cpus": 1}, "method")
    assert build({"num_returns": 2}, "method") == MethodOptions(num_returns=2)


# ---- types and values -------------------------------------------------------------------------

@pytest.mark.parametrize("options", [
    {"num_cpus": "1"}, {"num_cpus": True}, {"num_cpus": [1]}, {"num_gpus": "1"},
    {"memory": "1GB"}, {"num_returns": "2"}, {"num_returns": 2.0}, {"num_returns": True},
    {"max_retries": 1.5}, {"max_retries": "3"}, {"retry_exceptions": "ValueError"},
    {"retry_exceptions": [ValueError, 3]}, {"retry_exceptions": [int]}, {"resources": "custom"},
    {"resources": [("custom", 1)]}, {"resources": {"custom": "1"}}, {"resources": {1: 1}},
    {"name": 3}, {"enable_task_events": "no"}, {"max_calls": "1"},
])
def test_wrong_types_raise_type_error(options):
    with pytest.raises(TypeError):
        build(options, "task")


@pytest.mark.parametrize("options", [
    {"num_cpus": -1}, {"num_gpus": -0.5}, {"num_gpus": 1.5}, {"memory": -1},
    {"num_returns": -1}, {"max_retries": -2}, {"resources": {"CPU": 1}},
    {"resources": {"GPU": 1}}, {"resources": {"custom": -1}}, {"scheduling_strategy": "NOPE"},
    {"max_calls": -1},
    {"_generator_backpressure_num_objects": -2},
])
def test_bad_values_raise_value_error(options):
    with pytest.raises(ValueError):
        build(options, "task")


@pytest.mark.parametrize("options", [
    {"lifetime": "forever"}, {"max_concurrency": 0}, {"max_restarts": -2},
    {"max_pending_calls": -2},
])
def test_bad_actor_values_raise_value_error(options):
    with pytest.raises(ValueError):
        build(options, "actor")


@pytest.mark.parametrize("options", [
    {"max_task_retries": "1"}, {"num_returns": 1.0}, {"retry_exceptions": "yes"},
    {"enable_task_events": 1},
])
def test_bad_method_types_raise_type_error(options):
    with pytest.raises(TypeError):
        build(options, "method")


def test_defaults_match_ray():
    task = TaskOptions()
    assert (task.num_cpus, task.num_gpus, task.num_returns) == (1, 0, 1)
    assert task.max_retries == 3
    assert task.retry_exceptions is False
    assert task.enable_task_events is True
    actor = ActorOptions()
    assert actor.num_cpus is None  # 1 CPU to place, 0 while running
    assert (actor.max_restarts, actor.max_task_retries, actor.max_pending_calls) == (0, 0, -1)
    assert actor.max_concurrency is None and actor.lifetime is None
    assert actor.get_if_exists is False


def test_max_calls_zero_means_no_limit_as_in_ray():
    assert TaskOptions.build({"max_calls": 0}).max_calls is None


def test_none_stands_for_the_default():
    task = TaskOptions.build({"num_returns": None, "max_retries": None, "num_gpus": None,
                              "retry_exceptions": None})
    assert (task.num_returns, task.max_retries, task.num_gpus, task.retry_exceptions) == (1, 3, 0, False)
    base = TaskOptions.build({"max_retries": 0})
    assert TaskOptions.build({"max_retries": None}, base).max_retries == 3
    actor = ActorOptions.build({"max_restarts": None, "max_pending_calls": None})
    assert (actor.max_restarts, actor.max_pending_calls) == (0, -1)


def test_options_are_frozen():
    with pytest.raises(AttributeError):
        TaskOptions().num_cpus = 2


def test_options_override_keeps_the_rest():
    base = TaskOptions.build({"num_cpus": 2, "name": "a"})
    child = TaskOptions.build({"max_retries": 0}, base)
    assert (child.num_cpus, child.name, child.max_retries) == (2, "a", 0)
    assert base.max_retries == 3


def test_generator_options_are_accepted():
    for value in ("dynamic", "streaming"):
        assert TaskOptions.build({"num_returns": value}).num_returns == value
        assert MethodOptions.build({"num_returns": value}).num_returns == value
    options = TaskOptions.build({"_generator_backpressure_num_objects": 2})
    assert options._generator_backpressure_num_objects == 2
    method = MethodOptions.build({"_generator_backpressure_num_objects": -1})
    assert method._generator_backpressure_num_objects == -1


# ---- resource requests ---------------------------------------------------------------------

def test_typed_resource_requests():
    assert TaskOptions().resource_request() == {"CPU": 1.0}
    assert TaskOptions(num_cpus=0, num_gpus=1).resource_request() == {"GPU": 1.0}
    actor = ActorOptions(resources={"custom": 1})
    assert actor.placement_request() == {"CPU": 1.0, "custom": 1.0}
    assert actor.running_request() == {"custom": 1.0}
    assert ActorOptions(num_cpus=2).running_request() == {"CPU": 2.0}


def test_as_dict_is_shallow_and_complete():
    from raylite.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    strategy = NodeAffinitySchedulingStrategy("ab" * 14)
    as_dict = ActorOptions(scheduling_strategy=strategy).as_dict()
    assert as_dict["scheduling_strategy"] is strategy
    assert as_dict["max_restarts"] == 0 and "namespace" in as_dict


def test_actor_placement_defaults_to_one_cpu_and_running_to_none():
    assert ActorOptions().placement_request() == {"CPU": 1.0}
    assert ActorOptions.build({"num_cpus": None}).placement_request() == {"CPU": 1.0}
    assert ActorOptions().running_request() == {}


def test_resource_request_zero_cpus_is_empty():
    assert ActorOptions(num_cpus=0).placement_request() == {}
    assert TaskOptions(num_cpus=0).resource_request() == {}


def test_resource_request_collects_everything():
    request = TaskOptions(num_cpus=2, num_gpus=0.5, memory=100,
                          resources={"custom": 3, "zero": 0}).resource_request()
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
    assert (f._options.num_cpus, f._options.name) == (1, None)
    assert (g._options.num_cpus, g._options.name) == (2, "g")
    assert g._resources == {"CPU": 2.0}
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
    assert m.__raylite_method_options__ == MethodOptions(num_returns=2)
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
