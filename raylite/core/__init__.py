"""The core worker that lives in every driver and worker process."""
