// Runs the toolkit's sage (sage_impl = authors) on one query head and its kv head of raw FP16
// rows and dumps the INT8 codes and scales it used with its outputs, for reference/sage_oracle.py
// (an independent NumPy implementation from the SageAttention authors' formulas).
//
//   sage_state_tool Q.f16 K.f16 V.f16 D CONFIG OUT_DIR L1,L2,...
//
// OUT_DIR/prefill.bin: causal prefill over all N rows. OUT_DIR/decode_<L>.bin: a cache built by
// appending rows 0 .. L-1 one at a time, decoded with query row L - 1. Each file, little-endian:
// int8 q_codes [n, D], float32 q_scale [n] (each row's group scale), int8 k_codes [L, D], float32
// k_scale [L] (each token's group scale), float32 k_mean [D], uint16 (FP16 bits) out [n, D].
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "core/backend.h"
#include "reference/baselines.h"
#include "reference/reference.h"
#include "reference/state_tool_io.h"

namespace {

void dump(const std::string& path, const turbo::ref::SageCodes& c,
          const std::vector<turbo::Half>& out) {
  std::ofstream f(path, std::ios::binary);
  TURBO_CHECK(f, "cannot write " << path);
  turbo::ref::put_raw(f, c.q8);
  turbo::ref::put_raw(f, c.q_scale);
  turbo::ref::put_raw(f, c.k8);
  turbo::ref::put_raw(f, c.k_scale);
  turbo::ref::put_raw(f, c.k_mean);
  turbo::ref::put_raw(f, out);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    TURBO_CHECK(argc == 8, "usage: sage_state_tool Q.f16 K.f16 V.f16 D CONFIG OUT_DIR L1,L2,...");
    const std::vector<turbo::Half> q = turbo::ref::read_fp16_rows(argv[1]),
                                   k = turbo::ref::read_fp16_rows(argv[2]),
                                   v = turbo::ref::read_fp16_rows(argv[3]);
    const int d = std::atoi(argv[4]);
    TURBO_CHECK(d > 0 && q.size() == k.size() && k.size() == v.size() && k.size() % d == 0,
                "Q/K/V sizes do not fit D");
    const int64_t n = static_cast<int64_t>(k.size()) / d;
    const turbo::AttentionConfig config = turbo::parse_attention_config(argv[5]);
    TURBO_CHECK(config.method == turbo::Method::kSage &&
                    config.quant.sage_impl == turbo::SageImpl::kAuthors,
                "CONFIG must be a sage_impl=authors config");
    const std::string out_dir = argv[6];
    std::vector<int64_t> lengths;
    std::stringstream ls(argv[7]);
    for (std::string item; std::getline(ls, item, ',');)
      lengths.push_back(std::atoll(item.c_str()));

    auto rows = [&](const std::vector<turbo::Half>& x, int64_t t0, int64_t t1) {
      return turbo::ConstHalfTensor::contiguous(x.data() + t0 * d, 1, 1, t1 - t0, d);
    };
    const std::unique_ptr<turbo::Backend> be = turbo::ref::make_reference_backend();
    {
      std::vector<turbo::Half> o(q.size());
      be->attention_prefill(config, rows(q, 0, n), rows(k, 0, n), rows(v, 0, n),
                            turbo::HalfTensor::contiguous(o.data(), 1, 1, n, d), nullptr);
      dump(out_dir + "/prefill.bin", turbo::ref::sage_codes(config, q.data(), n, k.data(), n, d),
           o);
    }
    turbo::KvCacheSpec spec;
    spec.config = config;
    spec.head_dim = d;
    auto cache = be->create_cache(spec);
    int64_t len = 0;
    for (const int64_t target : lengths) {
      TURBO_CHECK(target > len && target <= n, "lengths must be ascending, in [1, " << n << "]");
      for (; len < target; ++len)
        be->cache_append(*cache, rows(k, len, len + 1), rows(v, len, len + 1));
      std::vector<turbo::Half> o(static_cast<size_t>(d));
      be->attention_decode(config, rows(q, len - 1, len), *cache,
                           turbo::HalfTensor::contiguous(o.data(), 1, 1, 1, d), nullptr);
      dump(out_dir + "/decode_" + std::to_string(len) + ".bin",
           turbo::ref::sage_codes(config, q.data() + (len - 1) * d, 1, k.data(), len, d), o);
    }
  } catch (const std::exception& e) {
    std::cerr << "sage_state_tool: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
