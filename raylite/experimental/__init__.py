"""APIs Ray keeps under ``ray.experimental``: ``tqdm_ray`` (progress bars from tasks)."""
