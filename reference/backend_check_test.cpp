// Tests of the harness every backend is checked with (backend_check.h): the reference passes
// against itself, and a backend that is wrong in one element, leaves one unwritten or declines a
// method is caught.
#include "reference/backend_check.h"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>

#include "reference/reference.h"

namespace turbo {
namespace check {
namespace {

// The reference, through the public entry points, with one fault switched on.
class FaultyBackend : public Backend {
 public:
  enum class Fault { kNone, kFlipOne, kSkipOne, kDeclineBaselines };
  explicit FaultyBackend(Fault f) : inner_(ref::make_reference_backend()), fault_(f) {}
  std::string name() const override { return "faulty"; }

 protected:
  Status supports_impl(const AttentionConfig& c) const override {
    if (fault_ == Fault::kDeclineBaselines && c.method != Method::kFlashQ)
      return Status::Fail("faulty: flashq only");
    return Status::Ok();
  }
  void quantize_stage1_impl(const Half* x, int64_t n, int d, int64_t g, int8_t* codes,
                            float* scales) override {
    inner_->quantize_stage1(x, n, d, g, codes, scales);
    if (fault_ == Fault::kFlipOne) codes[n * d - 1] ^= 1;
  }
  void compress_block_impl(const int8_t* q, const BlockLayout& l, uint8_t* block) override {
    inner_->compress_block(q, l, block);
  }
  void decompress_block_impl(const uint8_t* block, const BlockLayout& l, int8_t* q) override {
    inner_->decompress_block(block, l, q);
  }
  void quantize_asym_impl(const Half* x, int64_t groups, int len, int bits, ScaleStorage st,
                          uint8_t* codes, float* scales, float* zeros) override {
    inner_->quantize_asym(x, groups, len, bits, st, codes, scales, zeros);
  }
  void sas_impl(const Half* x, int64_t n, const SasConfig& c, float* out) override {
    inner_->sas(x, n, c, out);
  }
  void attention_prefill_impl(const AttentionConfig& c, const ConstHalfTensor& q,
                              const ConstHalfTensor& k, const ConstHalfTensor& v,
                              const HalfTensor& o, AttentionStats* stats) override {
    const Half keep = o.data[0];
    inner_->attention_prefill(c, q, k, v, o, stats);
    if (fault_ == Fault::kFlipOne) o.data[0].bits ^= 1;  // one ulp in one element
    if (fault_ == Fault::kSkipOne) o.data[0] = keep;     // one element never written
  }
  std::unique_ptr<KvCache> create_cache_impl(const KvCacheSpec& spec) override {
    return inner_->create_cache(spec);
  }
  void cache_append_impl(KvCache& cache, const ConstHalfTensor& k,
                         const ConstHalfTensor& v) override {
    inner_->cache_append(cache, k, v);
  }
  void attention_decode_impl(const AttentionConfig& c, const ConstHalfTensor& q,
                             const KvCache& cache, const HalfTensor& o,
                             AttentionStats* stats) override {
    inner_->attention_decode(c, q, cache, o, stats);
  }

 private:
  std::unique_ptr<Backend> inner_;
  Fault fault_;
};

struct Tally {
  std::map<std::string, int> ran, failed, declined;
};

Tally run_all(FaultyBackend::Fault fault, const std::string& only_op = "") {
  FaultyBackend test(fault);
  std::unique_ptr<Backend> ref = ref::make_reference_backend();
  Backends backends{test, *ref};
  Tally t;
  for (const Case& c : all_cases(/*quick=*/true)) {
    if (!only_op.empty() && c.op != only_op) continue;
    const CaseResult r = run_case(c, backends);
    if (r.unsupported) {
      ++t.declined[r.op];
      continue;
    }
    ++t.ran[r.op];
    t.failed[r.op] += !r.pass;
    if (fault == FaultyBackend::Fault::kNone) {
      EXPECT_TRUE(r.pass) << r.op << " " << r.vars << ": " << r.note;
      EXPECT_GT(r.compared, 0) << r.op << " " << r.vars;
      EXPECT_TRUE(r.nonzero) << r.op << " " << r.vars;
    }
  }
  return t;
}

TEST(BackendCheck, ReferenceAgainstItselfPassesEveryOp) {
  const Tally t = run_all(FaultyBackend::Fault::kNone);
  for (const char* op : {"quantize_stage1", "compress_block", "decompress_block", "quantize_asym",
                         "sas", "attention_prefill", "attention_decode"})
    EXPECT_GT(t.ran.count(op) ? t.ran.at(op) : 0, 0) << op;
  EXPECT_TRUE(t.declined.empty());
}

// One flipped bit fails every exact case it reaches; prefill's approximate cases may absorb an
// ulp, its exact ones may not.
TEST(BackendCheck, OneFlippedBitFails) {
  Tally t = run_all(FaultyBackend::Fault::kFlipOne, "quantize_stage1");
  EXPECT_EQ(t.failed["quantize_stage1"], t.ran["quantize_stage1"]);
  t = run_all(FaultyBackend::Fault::kFlipOne, "attention_prefill");
  EXPECT_GT(t.failed["attention_prefill"], t.ran["attention_prefill"] / 2);
}

TEST(BackendCheck, AnUnwrittenElementFails) {
  Tally t = run_all(FaultyBackend::Fault::kSkipOne, "attention_prefill");
  EXPECT_EQ(t.failed["attention_prefill"], t.ran["attention_prefill"]);
}

TEST(BackendCheck, DeclinedConfigsAreReportedNotRun) {
  Tally t = run_all(FaultyBackend::Fault::kDeclineBaselines, "attention_decode");
  EXPECT_GT(t.declined["attention_decode"], 0);
  EXPECT_GT(t.ran["attention_decode"], 0);
  EXPECT_EQ(t.failed["attention_decode"], 0);
}

}  // namespace
}  // namespace check
}  // namespace turbo
