"""`nclkit ...` and `python -m nclkit ...`: the command line (nclkit.cli), started so that Ctrl-C while
PyTorch is still loading ends with one line and status 130, and a broken install with one line too."""
from __future__ import annotations

import os
import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Import the command line (seconds: it loads PyTorch) and run it."""
    try:
        from .cli import main as run
    except KeyboardInterrupt:
        print("nclkit: interrupted while starting", file=sys.stderr)
        return 130
    except ImportError as err:  # a dependency missing or broken: say which, not a traceback
        if os.environ.get("NCLKIT_DEBUG"):
            raise
        print(f"nclkit: cannot start: {err}; reinstall it: pip install --upgrade nclkit", file=sys.stderr)
        return 2
    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
