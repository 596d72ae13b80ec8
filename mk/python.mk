# The Python client (clients/python): its unittest suite runs against the
# real daemon and sinks of $(BUILD). `make python-test`; .ci/run runs it
# as its own stage. Needs python3 and python3-msgpack.
.PHONY: python-test
python-test: check-build
	BUILD=$(BUILD) bash clients/python/run_tests.sh
