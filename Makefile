# Entry points (README): `make demo` runs the main job end to end, `make test` passes the tests.
# Both work on a fresh Debian 12 machine as root: `setup` installs what is missing with apt-get.
BUILD ?= build
CC ?= gcc
JOBS ?= $(shell nproc)
DEMO_DIR ?= $(BUILD)/demo

.PHONY: all setup build test demo clean

all: build

setup:
	@./scripts/setup.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_C_COMPILER=$(CC) -DCMAKE_BUILD_TYPE=Release

build: setup $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

demo: build
	@./scripts/demo.sh $(BUILD)

clean:
	rm -rf $(BUILD)
