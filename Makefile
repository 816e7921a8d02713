# The two set-up commands: `make demo` and `make test`.  CMake does the building; this file
# names the jobs.  BUILD and PREFIX may be overridden: make install PREFIX=$HOME/.local
BUILD ?= build
ASAN_BUILD ?= build-asan
PREFIX ?= /usr/local
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: all deps test test-asan demo bench install clean

all: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

deps:
	@sh tools/install-deps.sh

test: all
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

test-asan: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DNB_SANITIZE=ON >/dev/null
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --test-dir $(ASAN_BUILD) --output-on-failure -j $(JOBS)

# The course's MLP on Fashion-MNIST: Linear(784,64) ReLU Linear(64,64) ReLU Linear(64,10),
# cross-entropy, SGD lr 0.01 momentum 0.9, cosine over 10 epochs, batch 64.
demo: all
	@sh tools/install-deps.sh dataset-fashion-mnist
	./$(BUILD)/nabla train --model 784-64-64-10 --act relu --epochs 10 --batch 64 \
	  --optim sgd --lr 0.01 --momentum 0.9 --sched cosine --seed 0 --out runs/demo

bench: all
	sh bench/run.sh $(BUILD)

install: all
	cmake --install $(BUILD) --prefix $(PREFIX)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
