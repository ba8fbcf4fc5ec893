"""Errors as a Ray user sees them: task exceptions, propagation, worker crashes and
retries, option and argument mistakes, and infeasible resource requests."""
from __future__ import annotations

import inspect
import threading

import pytest

import raylite as ray
from raylite import exceptions as rex


@pytest.fixture
def cluster(ray_start):
    yield


def _lines(path: str) -> list[str]:
    try:
        with open(path) as f:
            return f.read().split()
    except FileNotFoundError:
        return []


# ---- exceptions raised by tasks ---------------------------------------------------------

def test_task_exception_is_task_error_and_user_type(cluster):
    @ray.remote
    def boom():
        raise ValueError("boom-123")

    ref = boom.remote(); submit_line = inspect.currentframe().f_lineno  # noqa: E702
    with pytest.raises(ValueError) as info:
        ray.get(ref)
    err = info.value
    assert isinstance(err, rex.RayTaskError)
    assert isinstance(err, ValueError)
    assert isinstance(err, rex.RayError)
    assert isinstance(err.cause, ValueError)
    assert "boom-123" in str(err.cause)
    text = str(err)
    first_line = text.splitlines()[0]
    assert first_line.startswith("ray::") and "boom()" in first_line, text
    assert "pid=" in text
    # The remote traceback: the frame and the source line that raised.
    assert "Traceback" in text
    assert 'raise ValueError("boom-123")' in text
    assert "ValueError: boom-123" in text
    # The line that submitted the task.
    assert f"{__file__}:{submit_line}" in text, text


def test_user_defined_exception_type_is_catchable(cluster):
    class InsufficientFunds(Exception):
        def __init__(self, needed):
            super().__init__(f"need {needed} more")
            self.needed = needed

    @ray.remote
    def withdraw():
        raise InsufficientFunds(42)

    with pytest.raises(InsufficientFunds) as info:
        ray.get(withdraw.remote())
    assert isinstance(info.value, rex.RayTaskError)
    assert info.value.needed == 42
    assert "need 42 more" in str(info.value)


def test_exception_that_cannot_be_rebuilt_still_reports_the_error(cluster):
    """pickle rebuilds exceptions as cls(*args); one whose __init__ needs other
    arguments cannot be rebuilt. ray.get must still raise a raylite error with the
    remote message, not a pickling TypeError from the runtime."""
    class RangeError(Exception):
        def __init__(self, low, high):
            super().__init__(f"outside [{low}, {high}]")
            self.low, self.high = low, high

    @ray.remote
    def check():
        raise RangeError(1, 5)

    with pytest.raises(rex.RayError) as info:
        ray.get(check.remote())
    assert "outside [1, 5]" in str(info.value)


def test_exception_in_list_get_raises(cluster):
    @ray.remote
    def maybe(x):
        if x == 3:
            raise KeyError("three")
        return x

    with pytest.raises(KeyError):
        ray.get([maybe.remote(i) for i in range(5)])


def test_errors_propagate_through_dependent_tasks(cluster, tmp_path):
    ran = str(tmp_path / "ran")

    @ray.remote
    def boom():
        raise ZeroDivisionError("root cause")

    @ray.remote
    def step(x, marker):
        with open(marker, "a") as f:
            f.write("x\n")
        return x + 1

    ref = step.remote(step.remote(boom.remote(), ran), ran)
    with pytest.raises(ZeroDivisionError) as info:
        ray.get(ref)
    assert isinstance(info.value, rex.RayTaskError)
    assert "root cause" in str(info.value)
    assert _lines(ran) == [], "a task whose argument failed still ran"


def test_task_can_catch_error_of_task_it_waits_on(cluster):
    @ray.remote
    def boom():
        raise ValueError("inner")

    @ray.remote
    def outer():
        try:
            ray.get(boom.remote())
        except ValueError as err:
            return f"caught {isinstance(err, ray.exceptions.RayTaskError)}: {'inner' in str(err)}"
        return "not raised"

    assert ray.get(outer.remote()) == "caught True: True"


def test_wrong_number_of_returns_is_an_error(cluster):
    @ray.remote(num_returns=2)
    def one_value():
        return 1

    refs = one_value.remote()
    with pytest.raises(rex.RayTaskError):
        ray.get(refs[0])


# ---- worker crashes and retries ------------------------------------------------------------

@pytest.mark.parametrize("how", ["exit", "sigkill"])
def test_worker_crash_retried_then_worker_crashed_error(cluster, tmp_path, how):
    attempts = str(tmp_path / "attempts")

    @ray.remote(max_retries=2)
    def crash(path, how):
        import os as o
        import signal
        with open(path, "a") as f:
            f.write("x\n")
        if how == "exit":
            o._exit(1)
        o.kill(o.getpid(), signal.SIGKILL)

    with pytest.raises(rex.WorkerCrashedError):
        ray.get(crash.remote(attempts, how), timeout=60)
    assert len(_lines(attempts)) == 3  # first try + 2 retries


def test_worker_crash_without_retries(cluster, tmp_path):
    attempts = str(tmp_path / "attempts")

    @ray.remote(max_retries=0)
    def crash(path):
        import os as o
        with open(path, "a") as f:
            f.write("x\n")
        o._exit(3)

    with pytest.raises(rex.WorkerCrashedError):
        ray.get(crash.remote(attempts), timeout=60)
    assert len(_lines(attempts)) == 1


def test_worker_crash_retry_succeeds(cluster, tmp_path):
    attempts = str(tmp_path / "attempts")

    @ray.remote  # default max_retries=3
    def crash_once(path):
        import os as o
        with open(path, "a") as f:
            f.write("x\n")
        with open(path) as f:
            if len(f.read().split()) == 1:
                o._exit(1)
        return "survived"

    assert ray.get(crash_once.remote(attempts), timeout=60) == "survived"
    assert len(_lines(attempts)) == 2


def test_infinite_retries_outlast_crashes(cluster, tmp_path):
    attempts = str(tmp_path / "attempts")

    @ray.remote(max_retries=-1)
    def crash_twice(path):
        import os as o
        with open(path, "a") as f:
            f.write("x\n")
        with open(path) as f:
            if len(f.read().split()) < 3:
                o._exit(1)
        return "third time"

    assert ray.get(crash_twice.remote(attempts), timeout=60) == "third time"
    assert len(_lines(attempts)) == 3


def test_cluster_still_works_after_crashes(cluster):
    @ray.remote
    def ok(x):
        return x

    assert ray.get([ok.remote(i) for i in range(10)], timeout=60) == list(range(10))


# ---- option mistakes -------------------------------------------------------------------------

def test_unknown_option_at_decoration_raises_value_error():
    with pytest.raises(ValueError):
        @ray.remote(not_an_option=1)
        def f():
            return 1


def test_unknown_option_in_options_raises_value_error():
    @ray.remote
    def f():
        return 1

    with pytest.raises(ValueError):
        f.options(not_an_option=1)


@pytest.mark.parametrize("options", [
    {"num_cpus": "2"},
    {"num_gpus": "1"},
    {"num_returns": "2"},
    {"num_returns": 1.5},
    {"max_retries": "3"},
    {"retry_exceptions": "yes"},
    {"retry_exceptions": [ValueError, "KeyError"]},
    {"resources": ["custom"]},
    {"name": 5},
])
def test_wrong_option_type_raises_type_error(options):
    with pytest.raises(TypeError):
        @ray.remote(**options)
        def f():
            return 1

    @ray.remote
    def g():
        return 1

    with pytest.raises(TypeError):
        g.options(**options)


@pytest.mark.parametrize("options", [
    {"num_cpus": -1},
    {"num_returns": -1},
    {"max_retries": -2},
    {"resources": {"CPU": 1}},
    {"resources": {"GPU": 1}},
])
def test_bad_option_value_raises_value_error(options):
    with pytest.raises(ValueError):
        ray.remote(**options)(lambda: 1)


def test_calling_remote_function_directly_raises_type_error():
    @ray.remote
    def f():
        return 1

    with pytest.raises(TypeError):
        f()


# ---- argument mistakes --------------------------------------------------------------------

def test_unpicklable_argument_raises_type_error_at_remote_call(cluster, tmp_path):
    ran = str(tmp_path / "ran")

    @ray.remote
    def take(x, marker):
        open(marker, "w").close()
        return 1

    with pytest.raises(TypeError):
        take.remote(threading.Lock(), ran)
    with pytest.raises(TypeError):
        take.remote(1, marker=ran, extra=threading.Lock())
    with pytest.raises(TypeError):
        ray.put(threading.Lock())
    assert ray.get(take.remote(1, ran)) == 1  # the runtime is fine afterwards


def test_unpicklable_return_value_is_an_error_not_a_hang(cluster):
    @ray.remote
    def give_lock():
        import threading as th
        return th.Lock()

    with pytest.raises(rex.RayError):
        ray.get(give_lock.remote(), timeout=60)


class _UnpicklableError(Exception):
    def __init__(self):
        super().__init__("holds a lock")
        import threading as th
        self.lock = th.Lock()


def test_unpicklable_exception_gives_a_ray_error_cause_describing_it(cluster):
    # As Ray: still a RayTaskError, whose cause is a RayError naming the class, why it
    # could not be pickled, and the original traceback.
    @ray.remote
    def fail():
        raise _UnpicklableError()

    with pytest.raises(rex.RayTaskError) as info:
        ray.get(fail.remote(), timeout=60)
    cause = info.value.cause
    assert type(cause) is rex.RayError
    text = str(cause)
    assert "_UnpicklableError isn't serializable" in text
    assert "lock" in text and "raise _UnpicklableError()" in text


# ---- infeasible resources -------------------------------------------------------------------

def test_infeasible_task_warns_on_stderr_and_never_hangs(run_driver):
    result = run_driver("""
        import raylite as ray
        ray.init(num_cpus=1, num_gpus=0)

        @ray.remote
        def f():
            return 1

        ref = f.options(resources={"unobtainium": 1}).remote()
        ready, not_ready = ray.wait([ref], timeout=1.0)
        print("READY", len(ready), "NOT_READY", len(not_ready), flush=True)
        gpu_ref = f.options(num_gpus=1).remote()
        ready, not_ready = ray.wait([gpu_ref], timeout=1.0)
        print("GPU_READY", len(ready), flush=True)
        # A feasible task still runs while the infeasible ones wait.
        print("FEASIBLE", ray.get(f.remote(), timeout=30), flush=True)
        ray.shutdown()
        print("SHUTDOWN_DONE", flush=True)
    """, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "READY 0 NOT_READY 1" in result.stdout
    assert "GPU_READY 0" in result.stdout
    assert "FEASIBLE 1" in result.stdout
    assert "SHUTDOWN_DONE" in result.stdout
    warnings = [line for line in result.stderr.splitlines() if "unobtainium" in line]
    assert warnings, f"no warning naming the missing resource:\n{result.stderr}"
    assert any("GPU" in line for line in result.stderr.splitlines()
               if "unobtainium" not in line), result.stderr
