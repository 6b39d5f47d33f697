"""Repository-wide pytest hooks for the notebooks under nbval: a patient output timeout, and per-notebook durations."""
from collections import defaultdict

_durations: dict[str, float] = defaultdict(float)


def pytest_runtest_logreport(report):
    if report.nodeid.split("::")[0].endswith(".ipynb"):
        _durations[report.nodeid.split("::")[0]] += report.duration


def pytest_terminal_summary(terminalreporter):
    if not _durations:
        return
    terminalreporter.section("notebook durations (nbval)")
    for path, seconds in sorted(_durations.items()):
        terminalreporter.write_line(f"{seconds:7.1f} s  {path}")
    terminalreporter.write_line(f"{sum(_durations.values()):7.1f} s  all notebooks")


def pytest_collection_modifyitems(items):
    # nbval waits only 5 s for a cell's output messages after the cell ends; a training cell on a
    # busy 2-core machine can take longer to flush them. Give it a minute (the cell timeout is separate).
    for item in items:
        if hasattr(item, "output_timeout"):
            item.output_timeout = 60
