#!/usr/bin/env bash
# Run the Python client's tests (python3 -m unittest) against the real
# daemon, sinks and test sinks of $BUILD (default build/; `make
# check-build` first, or use `make python-test`). Extra arguments are
# test names (tests.test_async, tests.test_async.AsyncTest.test_cancel_is_safe).
# The last line is "N passed, N failed" (CI reads it); exit 1 on failure.
set -u
BUILD=${BUILD:-build}
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
export BATCHD_BIN=${BATCHD_BIN:-$top/$BUILD/batchd}
export BATCHD_SINK_DIR=${BATCHD_SINK_DIR:-$top/$BUILD/sinks}
export BATCHD_TEST_SINK_DIR=${BATCHD_TEST_SINK_DIR:-$top/$BUILD/tests/sinks}
export PYTHONDONTWRITEBYTECODE=1
# Against the sanitizer build, a daemon that leaks exits non-zero, which
# fails the test that stopped it (tests/daemon.py), as in tests/run.sh.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=23}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# The first interpreter that has msgpack: $PYTHON, python3 on the PATH
# (may be a pyenv shim without it), then Debian's.
py=
for cand in ${PYTHON:-} python3 /usr/bin/python3; do
    if "$cand" -c 'import msgpack' 2>/dev/null; then py=$cand; break; fi
done
if [ -z "$py" ]; then
    echo "python client tests: no python3 with msgpack (apt-get install python3-msgpack)"
    echo "0 passed, 1 failed"
    exit 1
fi

cd "$here" || exit 1
"$py" - "$@" <<'PY'
import sys
import unittest

names = sys.argv[1:]
loader = unittest.TestLoader()
try:
    suite = (loader.loadTestsFromNames(names) if names
             else loader.discover("tests", top_level_dir="."))
except Exception as e:   # a name that does not exist, a syntax error
    print("cannot load the tests: %r" % e)
    print("0 passed, 1 failed")
    sys.exit(1)
result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
# A test with failing subtests counts once.
bad = {getattr(t, "test_case", t).id() for t, _ in result.failures + result.errors}
bad |= {t.id() for t in result.unexpectedSuccesses}
passed = result.testsRun - len(bad)
print("=== python client: %s" % sys.version.split()[0])
print("%d passed, %d failed" % (passed, len(bad)))
sys.exit(1 if bad else 0)
PY
