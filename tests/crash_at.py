"""Run nclkit and stop dead at a chosen moment, for tests that then kill the process (SIGKILL).

    python tests/crash_at.py POINT MARKER -- nclkit arguments ...
    python tests/crash_at.py POINT MARKER -- course '{"manifest": ..., "epochs": 2, ...}'

At POINT the process creates the file MARKER and sleeps; the test waits for MARKER and kills it, so the
kill lands exactly there. Counts are within this process. POINT is one of:

    step:N          before the N-th training step changes the weights
    validate:N      at the start of the N-th validation
    save:NAME:N     halfway through writing NAME (last.pt or best.pt) for the N-th time
    forge:N         while making forgery N (1-based) of forged/
    png:N           halfway through writing the N-th PNG file
"""
import io
import json
import os
import sys
import time


def _stop(marker: str) -> None:
    with open(marker, "w") as fh:
        fh.write(str(os.getpid()))
    time.sleep(600)
    raise SystemExit("crash_at: never killed")


def _counter(n: int):
    calls = [0]

    def tick() -> bool:
        calls[0] += 1
        return calls[0] == n
    return tick


def _write_half(data: bytes, target) -> None:
    """Half of `data` into `target` (an open file or a path), flushed to the OS: a write cut short."""
    if hasattr(target, "write"):
        target.write(data[: len(data) // 2])
        target.flush()
    else:
        with open(target, "wb") as fh:
            fh.write(data[: len(data) // 2])


def install(point: str, marker: str) -> None:
    kind, *args = point.split(":")
    if kind == "step":
        from nclkit.engine import trainer

        tick, real = _counter(int(args[0])), trainer._check_finite_loss

        def check(*a, **k):
            if tick():
                _stop(marker)
            return real(*a, **k)
        trainer._check_finite_loss = check
    elif kind == "validate":
        from nclkit.engine import trainer

        tick, real = _counter(int(args[0])), trainer._validate

        def validate(*a, **k):
            if tick():
                _stop(marker)
            return real(*a, **k)
        trainer._validate = validate
    elif kind == "save":
        import torch

        name, tick, real = args[0] + ".tmp", _counter(int(args[1])), torch.save

        def save(obj, f, *a, **k):
            if str(getattr(f, "name", f)).endswith(name) and tick():
                buf = io.BytesIO()
                real(obj, buf, *a, **k)
                _write_half(buf.getvalue(), f)
                _stop(marker)
            return real(obj, f, *a, **k)
        torch.save = save
    elif kind == "forge":
        from nclkit.data import forge

        tick, real = _counter(int(args[0])), forge.forge_one

        def forge_one(*a, **k):
            if tick():
                _stop(marker)
            return real(*a, **k)
        forge.forge_one = forge_one
    elif kind == "png":
        from PIL import Image

        tick, real = _counter(int(args[0])), Image.Image.save

        def save(self, fp, format=None, **params):
            if str(getattr(fp, "name", fp)).split(".tmp")[0].endswith(".png") and tick():
                buf = io.BytesIO()
                real(self, buf, "PNG", **params)
                _write_half(buf.getvalue(), fp)
                _stop(marker)
            return real(self, fp, format, **params)
        Image.Image.save = save
    else:
        raise SystemExit(f"crash_at: unknown point {point!r}")


def main() -> int:
    point, marker, sep, *argv = sys.argv[1:]
    assert sep == "--", "usage: crash_at.py POINT MARKER -- ARGS"
    install(point, marker)
    if argv[0] == "course":
        from nclkit import course

        course.train_or_reuse(**json.loads(argv[1]))
        return 0
    from nclkit.cli import main as nclkit_main

    return nclkit_main(argv)


if __name__ == "__main__":
    sys.exit(main())
