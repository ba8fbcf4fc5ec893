"""Internal failures print one clear line; the traceback goes to the process's log file.

asyncio's default handler prints an unretrieved task exception as a multi-line dump
(a gRPC error's repr alone spans several lines). The core worker's loop uses this
handler instead: one line on stderr naming the failure and where the detail is.
"""
from __future__ import annotations

import os
import sys
import time
import traceback


def one_line(err: BaseException) -> str:
    """``Type: first line of the message`` (gRPC errors: code and details)."""
    details = getattr(err, "details", None)
    code = getattr(err, "code", None)
    if callable(details) and callable(code):
        try:
            text = f"{code().name}: {details()}"
        except Exception:
            text = str(err)
    else:
        text = str(err)
    first = text.strip().splitlines()[0] if text.strip() else ""
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


def install_loop_handler(loop, log_dir: str) -> None:
    """Report exceptions nobody retrieved on ``loop`` as one line (details in a file
    under ``log_dir``)."""
    path = os.path.join(log_dir, f"errors-{os.getpid()}.log")

    def handler(loop, context) -> None:
        err = context.get("exception")
        message = context.get("message") or "unexpected error"
        detail = "".join(traceback.format_exception(err)) if err is not None else ""
        where = ""
        try:
            with open(path, "a") as f:
                f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n{detail}\n")
            where = f" (details in {path})"
        except OSError:
            pass
        summary = one_line(err) if err is not None else ""
        try:
            if sys.__stderr__ is not None:
                sys.__stderr__.write(f"raylite: {message}: {summary}{where}\n")
        except Exception:
            pass

    loop.set_exception_handler(handler)
