// cuda backend vs the reference on the case list every backend is checked with
// (reference/backend_check.h: exact ops bit for bit, approximate ops within their bound; LABELS
// gpu). Without a CUDA device every backend test reports SKIPPED with the reason; CI has no GPU,
// so these run on the lent device through cuda/run_gpu.sh. The stage-2 knob tests are host-only.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <string>

#include "core/error_test_util.h"
#include "cuda/cuda_backend.h"
#include "cuda/stage2_channel.cuh"
#include "reference/backend_check.h"
#include "reference/reference.h"

namespace turbo {
namespace cuda {
namespace {

class CudaBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device visible (cudaGetDeviceCount = 0)";
    ref_ = ref::make_reference_backend();
    dev_ = make_cuda_backend();
  }
  // Runs every case of `op` (the quick list) that the cuda backend supports: each must pass
  // (no mismatch, within its bound, a nonzero reference, nothing left unwritten).
  void run_op(const std::string& op) {
    check::Backends backends{*dev_, *ref_};
    int ran = 0;
    for (const check::Case& c : check::all_cases(/*quick=*/true)) {
      if (c.op != op) continue;
      const check::CaseResult r = check::run_case(c, backends);
      if (r.unsupported) continue;  // another method: RejectsOtherMethods
      ++ran;
      EXPECT_TRUE(r.pass) << r.op << " " << r.vars << ": " << r.mismatches << " of " << r.compared
                          << " differ, " << r.outside << " outside the tolerance, error " << r.error
                          << " (bound " << r.bound << ") " << r.note;
    }
    EXPECT_GT(ran, 0);
  }
  std::unique_ptr<Backend> ref_, dev_;
};

TEST_F(CudaBackendTest, QuantizeStage1) { run_op("quantize_stage1"); }
TEST_F(CudaBackendTest, CompressBlock) { run_op("compress_block"); }
TEST_F(CudaBackendTest, DecompressBlock) { run_op("decompress_block"); }
TEST_F(CudaBackendTest, QuantizeAsym) { run_op("quantize_asym"); }
TEST_F(CudaBackendTest, SasExhaustive) { run_op("sas"); }
TEST_F(CudaBackendTest, PrefillMatchesReference) { run_op("attention_prefill"); }
TEST_F(CudaBackendTest, DecodeMatchesReference) { run_op("attention_decode"); }

TEST_F(CudaBackendTest, RejectsOtherMethods) {
  AttentionConfig c;
  c.method = Method::kKivi;
  EXPECT_FALSE(dev_->supports(c).ok);
  HostTensor<Half> q(1, 1, 4, 64), o(1, 1, 4, 64);
  EXPECT_THROW(dev_->attention_prefill(c, q.view(), q.view(), q.view(), o.view(), nullptr), Error);
}

// The design-space knobs of the decode cache are taken (decode on the rows kernel); a sink or a
// window whose tile cannot fit in the rows kernel's shared memory is refused when the cache is
// made, with the knobs named, and one that fits is not.
TEST_F(CudaBackendTest, CacheKnobsTakenAndOversizedTilesRefused) {
  const AttentionConfig c =
      parse_attention_config("method=flashq,s2_step=float,kv_scale=token,sink=4,window=100");
  EXPECT_TRUE(dev_->supports(c).ok) << dev_->supports(c).message;
  EXPECT_NO_THROW(dev_->create_cache({c, 1, 2, 128, {}}));
  for (const char* key : {"method=flashq,window=4000", "method=flashq,sink=5000"}) {
    const AttentionConfig big = parse_attention_config(key);
    EXPECT_TRUE(dev_->supports(big).ok);
    try {
      dev_->create_cache({big, 1, 2, 128, {}});
      ADD_FAILURE() << key << ": no error";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("shared memory"), std::string::npos) << msg;
      EXPECT_NE(msg.find(key + 14), std::string::npos) << msg;  // "window=4000" / "sink=5000"
    }
  }
}

TEST_F(CudaBackendTest, RejectsNonFinite) {
  AttentionConfig c;
  HostTensor<Half> q(1, 1, 4, 64), o(1, 1, 4, 64);
  q.storage[5] = Half{0x7c00};
  EXPECT_THROW(dev_->attention_prefill(c, q.view(), q.view(), q.view(), o.view(), nullptr), Error);
}

// The stage-2 tuning knobs (host side: no device needed, so these run in CI too). A bad value is an
// error naming the variable and what it accepts, never a silent default.
class Stage2KnobTest : public ::testing::Test {
 protected:
  void TearDown() override {
    unsetenv("TURBO_STAGE2_PATH");
    unsetenv("TURBO_STAGE2_RING");
  }
};

TEST_F(Stage2KnobTest, PathValuesAndBadOnes) {
  unsetenv("TURBO_STAGE2_PATH");
  EXPECT_EQ(stage2_path(Stage2Path::kRegister), Stage2Path::kRegister);
  EXPECT_EQ(stage2_path(Stage2Path::kScan), Stage2Path::kScan);
  setenv("TURBO_STAGE2_PATH", "scan", 1);
  EXPECT_EQ(stage2_path(Stage2Path::kRegister), Stage2Path::kScan);
  setenv("TURBO_STAGE2_PATH", "register", 1);
  EXPECT_EQ(stage2_path(Stage2Path::kScan), Stage2Path::kRegister);
  setenv("TURBO_STAGE2_PATH", "general", 1);
  EXPECT_EQ(stage2_path(Stage2Path::kScan), Stage2Path::kGeneral);
  for (const char* bad : {"", "Scan", "registers", "scan "}) {
    setenv("TURBO_STAGE2_PATH", bad, 1);
    const std::string e = error_of([] { stage2_path(Stage2Path::kScan); });
    EXPECT_NE(
        e.find(std::string("TURBO_STAGE2_PATH=") + bad + ": expected scan, register or general"),
        std::string::npos)
        << "'" << bad << "': " << e;
  }
}

TEST_F(Stage2KnobTest, RingDepthValuesAndBadOnes) {
  unsetenv("TURBO_STAGE2_RING");
  EXPECT_EQ(stage2_ring_depth(), 2);
  for (int depth : {2, 3, 4}) {
    setenv("TURBO_STAGE2_RING", std::to_string(depth).c_str(), 1);
    EXPECT_EQ(stage2_ring_depth(), depth);
  }
  for (const char* bad : {"", "1", "5", "22", "3x", "-2"}) {
    setenv("TURBO_STAGE2_RING", bad, 1);
    const std::string e = error_of([] { stage2_ring_depth(); });
    EXPECT_NE(e.find(std::string("TURBO_STAGE2_RING=") + bad + ": expected 2, 3 or 4"),
              std::string::npos)
        << "'" << bad << "': " << e;
  }
}

}  // namespace
}  // namespace cuda
}  // namespace turbo
