"""``ray.experimental.tqdm_ray``: bars updated inside tasks and actors are drawn on the
driver (one per remote bar), never printed there as raw state lines."""
from __future__ import annotations

from raylite.experimental.tqdm_ray import MAGIC


def test_bars_from_a_task_and_an_actor_are_drawn_on_the_driver(run_driver):
    result = run_driver("""
        import raylite as ray
        from raylite.experimental.tqdm_ray import tqdm

        @ray.remote
        def work(n):
            total = 0
            for i in tqdm(range(n), desc="task-bar", flush_interval_s=0):
                total += i
            return total

        @ray.remote
        class Crunch:
            def run(self, n):
                bar = tqdm(desc="actor-bar", total=n, flush_interval_s=0)
                for _ in range(n):
                    bar.update(1)
                bar.close()
                return n

        print(ray.get(work.remote(5)), ray.get(Crunch.remote().run.remote(7)))
        import time; time.sleep(0.5)   # let the last forwarded lines arrive
        ray.shutdown()
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-2:] == ["10", "7"], result.stdout
    assert MAGIC not in result.stdout and MAGIC not in result.stderr
    drawn = result.stderr.replace("\r", "\n")
    assert "task-bar" in drawn and "5/5" in drawn, drawn
    assert "actor-bar" in drawn and "7/7" in drawn, drawn
    # Drawn by the driver itself, not forwarded worker output "(work pid=...) ...".
    assert not [line for line in drawn.splitlines() if "-bar" in line and "pid=" in line]


def test_a_bar_on_the_driver_draws_itself(run_driver):
    result = run_driver("""
        from raylite.experimental.tqdm_ray import tqdm
        bar = tqdm(desc="local-bar", total=3, flush_interval_s=0)
        bar.update(3)
        bar.close()
    """)
    assert result.returncode == 0, result.stderr
    assert "local-bar" in result.stderr and "3/3" in result.stderr.replace("\r", "\n")
