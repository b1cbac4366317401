// Builds a kivi cache for one head from raw FP16 K/V rows and dumps what it holds at given
// lengths, for reference/kivi_oracle.py (an independent NumPy port of the KIVI authors' code).
//
//   kivi_state_tool K.f16 V.f16 D BITS GROUP RESIDUAL IMPL PREFILL OUT_DIR L1,L2,...
//
// The first PREFILL rows are appended in one call, then one row per call (a decode step each);
// after the append that makes the length L_i, OUT_DIR/state_<L_i>.bin receives, little-endian:
// int64 k_quant, int64 v_quant, uint8 k_codes [k_quant, D], uint8 v_codes [v_quant, D], float32
// k_scale, k_zero [k_quant / G, D], float32 v_scale, v_zero [v_quant, D / G], uint16 (FP16 bits)
// k_fp16 [L - k_quant, D], v_fp16 [L - v_quant, D].
#include <cstdio>
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

int main(int argc, char** argv) {
  try {
    TURBO_CHECK(argc == 11,
                "usage: kivi_state_tool K.f16 V.f16 D BITS GROUP RESIDUAL IMPL PREFILL "
                "OUT_DIR L1,L2,...");
    const std::vector<turbo::Half> k = turbo::ref::read_fp16_rows(argv[1]),
                                   v = turbo::ref::read_fp16_rows(argv[2]);
    const int d = std::atoi(argv[3]);
    TURBO_CHECK(d > 0 && k.size() == v.size() && k.size() % d == 0, "K/V sizes do not fit D");
    const int64_t T = static_cast<int64_t>(k.size()) / d;
    turbo::KvCacheSpec spec;
    spec.config = turbo::parse_attention_config(std::string("method=kivi,kv_bits=") + argv[4] +
                                                ",group_size=" + argv[5] + ",residual=" + argv[6] +
                                                ",kivi_impl=" + argv[7]);
    spec.head_dim = d;
    const int64_t prefill = std::atoll(argv[8]);
    const std::string out_dir = argv[9];
    std::vector<int64_t> lengths;
    std::stringstream ls(argv[10]);
    for (std::string item; std::getline(ls, item, ',');)
      lengths.push_back(std::atoll(item.c_str()));
    TURBO_CHECK(prefill >= 1 && prefill <= T, "PREFILL must be in [1, " << T << "]");

    const std::unique_ptr<turbo::Backend> be = turbo::ref::make_reference_backend();
    auto cache = be->create_cache(spec);
    auto rows = [&](const std::vector<turbo::Half>& x, int64_t t0, int64_t t1) {
      return turbo::ConstHalfTensor::contiguous(x.data() + t0 * d, 1, 1, t1 - t0, d);
    };
    be->cache_append(*cache, rows(k, 0, prefill), rows(v, 0, prefill));
    size_t next = 0;
    for (int64_t len = prefill; len <= T; ++len) {
      if (len > prefill) be->cache_append(*cache, rows(k, len - 1, len), rows(v, len - 1, len));
      while (next < lengths.size() && lengths[next] == len) {
        const turbo::ref::KiviStreamState s = turbo::ref::kivi_stream_state(*cache, 0, 0);
        std::ofstream f(out_dir + "/state_" + std::to_string(len) + ".bin", std::ios::binary);
        TURBO_CHECK(f, "cannot write into " << out_dir);
        f.write(reinterpret_cast<const char*>(&s.k_quant), 8);
        f.write(reinterpret_cast<const char*>(&s.v_quant), 8);
        for (const auto* c : {&s.k_codes, &s.v_codes}) turbo::ref::put_raw(f, *c);
        for (const auto* x : {&s.k_scale, &s.k_zero, &s.v_scale, &s.v_zero})
          turbo::ref::put_raw(f, *x);
        for (const auto* h : {&s.k_fp16, &s.v_fp16}) turbo::ref::put_raw(f, *h);
        ++next;
      }
    }
    TURBO_CHECK(next == lengths.size(), "lengths must be ascending, in [PREFILL, " << T << "]");
  } catch (const std::exception& e) {
    std::cerr << "kivi_state_tool: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
