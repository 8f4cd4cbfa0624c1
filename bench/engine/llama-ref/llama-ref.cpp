// Reference tokens/s of llama.cpp itself, for bench/engine/run.sh.
//
// The llama.cpp sources vendored in the llama-cpp-sys-2 crate (what the engine links) do not
// include llama.cpp's `llama-bench` tool, so this is a minimal driver on the same public API
// (llama.h), measuring the way llama-bench does:
//
//   pp  one prompt of N random tokens decoded from an empty KV cache, in n_batch chunks, only the
//       last token's logits requested; tokens/s = N / wall time of the decodes
//   tg  N single-token decodes of random tokens, one after the other, after `depth` untimed
//       prompt tokens (0 = from an empty cache, as llama-bench's tg); tokens/s = N / wall time
//
// Each test is run once untimed (warm-up), then `reps` times; the KV cache is cleared before
// every run. No sampling, no detokenisation: only llama_decode and llama_synchronize are timed.
// The context is created with llama.cpp's defaults (as the engine does) except n_ctx, n_batch,
// n_ubatch and the thread counts, which are given on the command line.
//
// Output: one JSON object on stdout (see `print_json`). Logs from llama.cpp go to stderr at
// warning level and above.
//
// Usage: llama-ref -m MODEL.gguf [-p 512] [-n 128] [-d DEPTH]... [-t THREADS] [-r 5]
//                  [-c 2048] [-b 512] [-ub 512] [--seed 1]

#include "llama.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

struct Args {
    std::string model;
    int n_prompt = 512;
    int n_gen = 128;
    std::vector<int> depths;  // tg depths; default {0}
    int threads = 0;          // 0 = hardware concurrency
    int reps = 5;
    int n_ctx = 2048;
    int n_batch = 512;
    int n_ubatch = 512;
    unsigned seed = 1;
};

struct Test {
    std::string name;  // "pp" or "tg"
    int n_prompt = 0;
    int n_gen = 0;
    int depth = 0;
    std::vector<int64_t> samples_ns;
};

[[noreturn]] void usage(const char* msg) {
    std::fprintf(stderr, "llama-ref: %s\n", msg);
    std::fprintf(stderr,
                 "usage: llama-ref -m MODEL.gguf [-p N] [-n N] [-d DEPTH]... [-t THREADS] [-r REPS]"
                 " [-c N_CTX] [-b N_BATCH] [-ub N_UBATCH] [--seed N]\n");
    std::exit(2);
}

int to_int(const char* s, const char* flag) {
    char* end = nullptr;
    long v = std::strtol(s, &end, 10);
    if (end == s || *end != '\0' || v < 0 || v > 1000000) {
        usage((std::string("bad value for ") + flag).c_str());
    }
    return static_cast<int>(v);
}

Args parse(int argc, char** argv) {
    Args a;
    for (int i = 1; i < argc; i++) {
        std::string f = argv[i];
        if (i + 1 >= argc) usage(("missing value after " + f).c_str());
        const char* v = argv[++i];
        if (f == "-m") a.model = v;
        else if (f == "-p") a.n_prompt = to_int(v, "-p");
        else if (f == "-n") a.n_gen = to_int(v, "-n");
        else if (f == "-d") a.depths.push_back(to_int(v, "-d"));
        else if (f == "-t") a.threads = to_int(v, "-t");
        else if (f == "-r") a.reps = to_int(v, "-r");
        else if (f == "-c") a.n_ctx = to_int(v, "-c");
        else if (f == "-b") a.n_batch = to_int(v, "-b");
        else if (f == "-ub") a.n_ubatch = to_int(v, "-ub");
        else if (f == "--seed") a.seed = static_cast<unsigned>(to_int(v, "--seed"));
        else usage(("unknown option " + f).c_str());
    }
    if (a.model.empty()) usage("-m is required");
    if (a.depths.empty()) a.depths.push_back(0);
    if (a.threads == 0) a.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    if (a.reps == 0 || a.n_batch == 0 || a.n_ubatch == 0) usage("-r, -b and -ub must be positive");
    for (int d : a.depths) {
        if (d + std::max(a.n_prompt, a.n_gen) > a.n_ctx) usage("depth + tokens exceed -c");
    }
    return a;
}

void log_cb(ggml_log_level level, const char* text, void*) {
    static ggml_log_level last = GGML_LOG_LEVEL_NONE;
    if (level != GGML_LOG_LEVEL_CONT) last = level;
    if (last >= GGML_LOG_LEVEL_WARN) std::fputs(text, stderr);
}

class Runner {
  public:
    Runner(llama_context* ctx, const llama_vocab* vocab, int n_batch, unsigned seed)
        : ctx_(ctx), vocab_(vocab), n_batch_(n_batch), rng_(seed) {
        n_vocab_ = llama_vocab_n_tokens(vocab);
    }

    void clear() { llama_memory_clear(llama_get_memory(ctx_), false); }

    // Decodes n random tokens in n_batch chunks (the first is BOS if the model wants one and the
    // cache is empty), then waits for the computation to finish.
    void prompt(int n, bool first) {
        std::vector<llama_token> tokens(static_cast<size_t>(n));
        for (auto& t : tokens) t = random_token();
        if (first && n > 0 && llama_vocab_get_add_bos(vocab_)) tokens[0] = llama_vocab_bos(vocab_);
        for (int i = 0; i < n; i += n_batch_) {
            int len = std::min(n_batch_, n - i);
            check(llama_decode(ctx_, llama_batch_get_one(tokens.data() + i, len)));
        }
        llama_synchronize(ctx_);
    }

    // n single-token decodes, each waited for (as a generation loop must before sampling).
    void gen(int n, bool first) {
        llama_token t = first && llama_vocab_get_add_bos(vocab_) ? llama_vocab_bos(vocab_) : random_token();
        for (int i = 0; i < n; i++) {
            check(llama_decode(ctx_, llama_batch_get_one(&t, 1)));
            llama_synchronize(ctx_);
            t = random_token();
        }
    }

  private:
    llama_token random_token() { return static_cast<llama_token>(rng_() % static_cast<unsigned>(n_vocab_)); }

    static void check(int32_t rc) {
        if (rc != 0) {
            std::fprintf(stderr, "llama-ref: llama_decode failed (%d)\n", rc);
            std::exit(1);
        }
    }

    llama_context* ctx_;
    const llama_vocab* vocab_;
    int n_batch_;
    int32_t n_vocab_ = 0;
    std::mt19937 rng_;
};

int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

// One run of a test from an empty cache; returns the timed part in ns.
int64_t run_once(Runner& r, const Test& t) {
    r.clear();
    if (t.name == "pp") {
        int64_t start = now_ns();
        r.prompt(t.n_prompt, true);
        return now_ns() - start;
    }
    if (t.depth > 0) r.prompt(t.depth, true);
    int64_t start = now_ns();
    r.gen(t.n_gen, t.depth == 0);
    return now_ns() - start;
}

void print_json(const Args& a, const std::vector<Test>& tests) {
    std::printf("{\n  \"model\": \"%s\",\n", a.model.c_str());  // a path; no quotes expected
    std::printf("  \"n_threads\": %d, \"n_ctx\": %d, \"n_batch\": %d, \"n_ubatch\": %d, \"reps\": %d,\n",
                a.threads, a.n_ctx, a.n_batch, a.n_ubatch, a.reps);
    std::string info = llama_print_system_info();
    while (!info.empty() && (info.back() == ' ' || info.back() == '|')) info.pop_back();
    std::printf("  \"system_info\": \"%s\",\n  \"tests\": [\n", info.c_str());
    for (size_t i = 0; i < tests.size(); i++) {
        const Test& t = tests[i];
        int n = t.name == "pp" ? t.n_prompt : t.n_gen;
        std::printf("    {\"name\": \"%s\", \"n_prompt\": %d, \"n_gen\": %d, \"n_depth\": %d, \"samples_ns\": [",
                    t.name.c_str(), t.n_prompt, t.n_gen, t.depth);
        for (size_t j = 0; j < t.samples_ns.size(); j++) {
            std::printf("%s%lld", j ? ", " : "", static_cast<long long>(t.samples_ns[j]));
        }
        std::printf("], \"samples_ts\": [");
        for (size_t j = 0; j < t.samples_ns.size(); j++) {
            std::printf("%s%.3f", j ? ", " : "", 1e9 * n / static_cast<double>(t.samples_ns[j]));
        }
        std::printf("]}%s\n", i + 1 < tests.size() ? "," : "");
    }
    std::printf("  ]\n}\n");
}

}  // namespace

int main(int argc, char** argv) {
    Args a = parse(argc, argv);
    llama_log_set(log_cb, nullptr);
    llama_backend_init();

    llama_model_params mp = llama_model_default_params();
    llama_model* model = llama_model_load_from_file(a.model.c_str(), mp);
    if (!model) {
        std::fprintf(stderr, "llama-ref: cannot load %s\n", a.model.c_str());
        return 1;
    }
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = static_cast<uint32_t>(a.n_ctx);
    cp.n_batch = static_cast<uint32_t>(a.n_batch);
    cp.n_ubatch = static_cast<uint32_t>(a.n_ubatch);
    cp.n_seq_max = 1;
    cp.n_threads = a.threads;
    cp.n_threads_batch = a.threads;
    llama_context* ctx = llama_init_from_model(model, cp);
    if (!ctx) {
        std::fprintf(stderr, "llama-ref: cannot create a context\n");
        return 1;
    }

    std::vector<Test> tests;
    if (a.n_prompt > 0) tests.push_back({"pp", a.n_prompt, 0, 0, {}});
    if (a.n_gen > 0) {
        for (int d : a.depths) tests.push_back({"tg", 0, a.n_gen, d, {}});
    }

    Runner r(ctx, llama_model_get_vocab(model), a.n_batch, a.seed);
    for (Test& t : tests) {
        run_once(r, t);  // warm-up
        for (int i = 0; i < a.reps; i++) t.samples_ns.push_back(run_once(r, t));
        std::fprintf(stderr, "llama-ref: %s%d @ d%d done\n", t.name.c_str(), t.name == "pp" ? t.n_prompt : t.n_gen,
                     t.depth);
    }
    print_json(a, tests);

    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
