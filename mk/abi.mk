# mk/abi.mk - the sink ABI compatibility test (tests/check_abi.c),
# included by the Makefile.
#
# tests/sinks/v1_echo.c is built against the frozen version-1 header in
# tests/sinks/abi_v1/: -iquote puts that directory before every -I (the
# daemon/ one included) for its #include "batchd_sink.h".
CFLAGS_v1_echo := -iquote tests/sinks/abi_v1
