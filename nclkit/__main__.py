"""`nclkit ...` and `python -m nclkit ...`: the command line (nclkit.cli), started so that Ctrl-C while
PyTorch is still loading ends with one line and status 130, and a broken install with one line too."""
from __future__ import annotations

import os
import signal
import sys
import threading

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Import the command line (seconds: it loads PyTorch) and run it.

    Ctrl-C during the imports can surface as another error: a module it cut short, half imported,
    lacks a name the next import reads (numpy's `matrix`, ...). So a Ctrl-C is remembered as it
    arrives, and whatever the imports then raise, the command ends with the one interrupted line.
    """
    pressed: list[int] = []

    def on_ctrl_c(signum, frame):
        pressed.append(signum)
        raise KeyboardInterrupt

    ours = threading.current_thread() is threading.main_thread() \
        and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    if ours:
        signal.signal(signal.SIGINT, on_ctrl_c)
    try:
        from .cli import main as run
    except BaseException as err:
        if pressed or isinstance(err, KeyboardInterrupt):
            print("nclkit: interrupted while starting", file=sys.stderr)
            return 130
        if not isinstance(err, ImportError) or os.environ.get("NCLKIT_DEBUG"):
            raise
        # a dependency missing or broken: say which, not a traceback
        print(f"nclkit: cannot start: {err}; reinstall it: pip install --upgrade nclkit", file=sys.stderr)
        return 2
    finally:
        if ours:
            signal.signal(signal.SIGINT, signal.default_int_handler)
    if pressed:  # an import swallowed the interrupt
        print("nclkit: interrupted while starting", file=sys.stderr)
        return 130
    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
