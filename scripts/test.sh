#!/usr/bin/env bash
# The whole test suite: installs nclkit with its test and notebook extras, then runs the unit tests
# and every notebook under nbval in quick mode. `.ci/run` runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet --disable-pip-version-check -e ".[test,notebooks]"
# The inline backend, not Agg: the notebooks' kernels then put every figure into the cell outputs, where
# notebooks/conftest.py checks that each cell that draws produced one (the unit tests pin Agg themselves).
export NCLKIT_QUICK=1 MPLBACKEND=module://matplotlib_inline.backend_inline PYTHONHASHSEED=0
set +e
python -m pytest tests notebooks --nbval-lax --durations=15 -p no:cacheprovider "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
    echo "pytest collected no tests: that is a failure here, not a pass" >&2
    exit 1
fi
exit "$rc"
