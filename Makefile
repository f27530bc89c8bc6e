# lua-ws build.  `make` builds ws/core.so for Lua 5.4, and next to it
# ws/testing.so, the helpers only the specs load (require "ws.testing"; the
# rockspec never installs it); LUA=lua5.1|lua5.3|luajit builds for another
# Lua.  `make test` installs what is missing and runs
# luacheck plus the specs on every supported Lua.

LUA ?= lua5.4
PKG_lua5.1 = lua5.1
PKG_lua5.3 = lua5.3
PKG_lua5.4 = lua5.4
PKG_luajit = luajit
LUA_PKG = $(or $(PKG_$(LUA)),$(LUA))

VARIANT ?= dev
BUILD = build/$(LUA)-$(VARIANT)
OUT ?= $(if $(filter dev,$(VARIANT)),$(if $(filter lua5.4,$(LUA)),ws/core.so,$(BUILD)/ws/core.so),$(BUILD)/ws/core.so)
TEST_OUT = $(dir $(OUT))testing.so

CC ?= cc
OPT_dev = -O2 -g
OPT_sanitize = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
OPT_valgrind = -O1 -g -DWS_NO_IN_PLACE_STRINGS
OPT_poll = -O2 -g -DWS_LOOP_USE_POLL
OPT_coverage = -O0 -g --coverage
OPT_coverage-poll = $(OPT_coverage) -DWS_LOOP_USE_POLL
OPTFLAGS = $(OPT_$(VARIANT))
WARNINGS = -Wall -Wextra -Werror -Wshadow -Wmissing-prototypes -Wstrict-prototypes
CPPFLAGS += -D_POSIX_C_SOURCE=200809L -Icsrc
CFLAGS_ALL = -std=c99 -fPIC $(WARNINGS) $(OPTFLAGS) $(CFLAGS) \
	$(shell pkg-config --cflags $(LUA_PKG) 2>/dev/null)
LDLIBS = -lhiredis -lssl -lcrypto -lz -pthread
# macOS loads Lua modules as bundles resolved against the host's Lua.
LDSHARED_Darwin = -bundle -undefined dynamic_lookup
LDSHARED = $(or $(LDSHARED_$(shell uname -s)),-shared)

SRC = $(sort $(wildcard csrc/core/*.c csrc/io/*.c csrc/lua/*.c))
OBJ = $(patsubst csrc/%.c,$(BUILD)/obj/%.o,$(SRC))
TEST_SRC = $(sort $(wildcard csrc/testing/*.c))
# ws.testing has its own copy of the UTF-8 validators (utf8_with): Lua
# loads each module with local symbols.
TEST_OBJ = $(patsubst csrc/%.c,$(BUILD)/obj/%.o,$(TEST_SRC)) $(BUILD)/obj/core/utf8.o
DEP = $(OBJ:.o=.d) $(TEST_OBJ:.o=.d)

.PHONY: FORCE all test sanitize valgrind lint deps demo clean rock-check fuzz fuzz-ci bench coverage docs

all: $(OUT) $(TEST_OUT)

# `luarocks make` in a checkout writes ws/core.so too (for LuaRocks' default
# Lua, 5.1 on Debian), newer than our objects.  The stamp beside $(OUT)
# records what linked it (Lua, variant, flags) and the module's checksum;
# when either differs the stamp is marked stale and $(OUT) is relinked.
STAMP = $(dir $(OUT)).$(notdir $(OUT)).stamp
BUILD_ID = $(LUA) $(VARIANT) $(CC) $(CFLAGS_ALL) $(LDFLAGS) $(LDLIBS)
stamp_of = printf '%s\n%s\n' '$(BUILD_ID)' "$$(cksum 2>/dev/null <$(1))"

$(STAMP): FORCE
	@mkdir -p $(dir $@)
	@$(call stamp_of,$(OUT)) | cmp -s - $@ || echo stale >$@

$(OUT): $(OBJ) $(STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(LDSHARED) $(OPTFLAGS) -o $@ $(OBJ) $(LDFLAGS) $(LDLIBS)
	@$(call stamp_of,$@) >$(STAMP) && touch -r $(STAMP) $@

FORCE:

# Relinked with $(OUT), so both always come from the same build.
$(TEST_OUT): $(TEST_OBJ) $(OUT)
	@mkdir -p $(dir $@)
	$(CC) $(LDSHARED) $(OPTFLAGS) -o $@ $(TEST_OBJ) $(LDFLAGS)

$(BUILD)/obj/%.o: csrc/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS_ALL) -MMD -MP -c -o $@ $<

-include $(DEP)

deps:
	@bash scripts/deps.sh

test: deps
	@bash scripts/test.sh

sanitize: deps
	@bash scripts/test.sh --sanitize

valgrind: deps
	@bash scripts/test.sh --valgrind

lint: deps
	@bash scripts/lint.sh

rock-check: deps
	@bash scripts/rock_check.sh

coverage: deps
	@bash scripts/coverage.sh

docs: deps
	@bash scripts/docs.sh

demo: deps all
	@LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='./?.so;;' $(LUA) examples/chat/server.lua $(DEMO_ARGS)

bench:
	@bash scripts/bench.sh

fuzz fuzz-ci:
	@bash scripts/fuzz.sh $(if $(filter fuzz-ci,$@),--ci)

clean:
	rm -rf build ws
