"""Evolution strategies (Salimans et al. 2017, "Evolution Strategies as a Scalable
Alternative to Reinforcement Learning") on raylite or Ray.

Read the modules in this order:

- ``noise.py``      the shared Gaussian noise table (created once, ``ray.put`` once)
- ``es_math.py``    centered ranks, mirrored-sampling gradient estimate, Adam
- ``obs_stats.py``  running observation mean/std, merged from worker summaries
- ``policy.py``     MLP policy built from ``raylite.tensor``
- ``rollout.py``    gymnasium environment construction and episode loops
- ``worker.py``     the worker actor: evaluates batches of perturbations
- ``trainer.py``    the driver loop: dispatch, update, evaluation, fault tolerance
- ``checkpoint.py`` / ``report.py``  saving state, CSV log and learning-curve plot
- ``cli.py``        ``python -m examples.es`` command line
"""
