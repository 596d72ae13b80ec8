# mk/http.mk - the http sink (sinks/http/), its test server and suite,
# its fuzz targets and its benchmark. Included by the Makefile.
#
# The sink links libcurl and jansson, and proto/frame.c (with buf.c and
# alloc.c, which it needs) to check msgpack payloads with the daemon's
# own bounded walker; they are built -fvisibility=hidden like the rest,
# so nothing of them is exported from http.so.

HTTP_PKGS := libcurl jansson
CFLAGS_http := $(shell pkg-config --cflags $(HTTP_PKGS))
LIBS_http := $(shell pkg-config --libs $(HTTP_PKGS))
HTTP_PROTO_OBJ := $(call obj,proto/frame.c proto/buf.c proto/alloc.c)

$(BUILD)/sinks/http.so: $(HTTP_PROTO_OBJ)

# The scripted test server (tests/tools/httpd.c), linked into the suite
# and the benchmark only (it needs jansson; the other suites do not).
HTTPD_OBJ := $(BUILD)/obj/tests/tools/httpd.o
CFLAGS_httpd := $(shell pkg-config --cflags jansson)
LIBS_check_http := $(LIBS_http)

# The suite also unit-tests the sink's pure parsers, so it links them.
HTTP_UNIT_OBJ := $(call obj,sinks/http/reply.c sinks/http/retry_after.c sinks/http/body.c)
CFLAGS_check_http := $(CFLAGS_http) -Isinks
$(BUILD)/tests/check_http: $(HTTPD_OBJ) $(HTTP_UNIT_OBJ)

# libFuzzer targets for the pure parsers (fuzz/README.md), built like
# the others by mk/fuzz.mk's rules (clang, BASE_CFLAGS, ASan + UBSan).
FUZZ_TARGETS += http_reply http_retry_after
FUZZ_HTTP_BINS := $(FUZZ_BUILD)/fuzz_http_reply $(FUZZ_BUILD)/fuzz_http_retry_after

fuzz-build: $(FUZZ_HTTP_BINS)

$(FUZZ_BUILD)/fuzz_http_reply: $(FUZZ_BUILD)/obj/fuzz/fuzz_http_reply.o \
		$(call fuzz_obj,sinks/http/reply.c sinks/http/body.c proto/frame.c \
		proto/buf.c proto/alloc.c)
	$(FUZZ_CC) $(FUZZ_SANFLAGS) -fsanitize=fuzzer -o $@ $^ $(LIBS_http)

$(FUZZ_BUILD)/fuzz_http_retry_after: $(FUZZ_BUILD)/obj/fuzz/fuzz_http_retry_after.o \
		$(call fuzz_obj,sinks/http/retry_after.c)
	$(FUZZ_CC) $(FUZZ_SANFLAGS) -fsanitize=fuzzer -o $@ $^ $(LIBS_http)

# The HTTP benchmark (bench/httpbench.c, bench/README.md "HTTP"): the
# test server, libbatchd, libcurl.
CFLAGS_httpbench := $(CFLAGS_http)
$(BUILD)/bench/httpbench: $(BUILD)/obj/bench/httpbench.o $(HTTPD_OBJ) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(MSGPACK_LIBS) $(LIBS_http) \
		$(shell pkg-config --libs libevent) -lm
