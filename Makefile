# The two set-up commands: `make demo` and `make test`.  CMake does the building; this file
# names the jobs.  BUILD and PREFIX may be overridden: make install PREFIX=$HOME/.local
BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
VALGRIND_BUILD ?= build-valgrind
PREFIX ?= /usr/local
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: all deps test test-asan test-valgrind fuzz demo bench install clean

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

# Each fuzz/fuzz_*.c for FUZZ_SECONDS, in turn, with clang's libFuzzer + ASan + UBSan.  New
# inputs go to FUZZ_BUILD/corpus/NAME; the seeds in fuzz/corpus/NAME are read, never written.
# The first report stops the run and leaves the input in FUZZ_BUILD/crash-NAME-*.
FUZZERS = $(basename $(notdir $(wildcard fuzz/fuzz_*.c)))
fuzz: deps
	CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O2 -g" -DNB_FUZZ=ON >/dev/null
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target $(FUZZERS)
	set -e; for f in $(FUZZERS); do \
	  mkdir -p $(FUZZ_BUILD)/corpus/$$f; \
	  echo "fuzz: $$f for $(FUZZ_SECONDS) s"; \
	  ./$(FUZZ_BUILD)/$$f -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -print_final_stats=1 \
	    -artifact_prefix=$(FUZZ_BUILD)/crash-$$f- $(FUZZ_BUILD)/corpus/$$f fuzz/corpus/$$f; \
	done

# The portable build (no -march=native: valgrind does not decode AVX-512, and reports a CPU
# without it, so the kernels' run-time dispatch picks their AVX2 versions) with some of the
# suite under memcheck: tensors, convolution (the dispatched row copies), optimisers, the pool.
VALGRIND_TESTS ?= test_tensor test_conv test_optim test_parallel
test-valgrind:
	@sh tools/install-deps.sh valgrind
	cmake -S . -B $(VALGRIND_BUILD) -DCMAKE_BUILD_TYPE=Release -DNB_NATIVE=OFF >/dev/null
	cmake --build $(VALGRIND_BUILD) -j $(JOBS) --target $(VALGRIND_TESTS)
	for t in $(VALGRIND_TESTS); do \
	  valgrind -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,possible \
	    ./$(VALGRIND_BUILD)/$$t || exit 1; \
	done

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
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD) $(VALGRIND_BUILD)
