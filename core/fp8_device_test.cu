// The device path of core/fp8.h (__nv_cvt_float_to_fp8 with __NV_SATFINITE / __NV_E4M3 and
// __nv_cvt_fp8_to_halfraw) against the host path, on every FP16 value, every code and 2^22
// random floats concentrated on the E4M3 range (LABELS gpu; skipped without a CUDA device).
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "core/fp16.h"
#include "core/fp8.h"

namespace turbo {
namespace {

__global__ void EncodeKernel(const float* x, uint8_t* codes, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) codes[i] = float_to_e4m3(x[i]);
}

__global__ void DecodeKernel(float* out) {
  const int c = threadIdx.x;
  out[c] = e4m3_to_float(static_cast<uint8_t>(c));
}

bool have_device() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

std::vector<uint8_t> encode_on_device(const std::vector<float>& x) {
  float* dx = nullptr;
  uint8_t* dc = nullptr;
  const int n = static_cast<int>(x.size());
  EXPECT_EQ(cudaMalloc(&dx, x.size() * sizeof(float)), cudaSuccess);
  EXPECT_EQ(cudaMalloc(&dc, x.size()), cudaSuccess);
  cudaMemcpy(dx, x.data(), x.size() * sizeof(float), cudaMemcpyHostToDevice);
  EncodeKernel<<<(n + 255) / 256, 256>>>(dx, dc, n);
  std::vector<uint8_t> codes(x.size(), 0xAA);
  EXPECT_EQ(cudaMemcpy(codes.data(), dc, x.size(), cudaMemcpyDeviceToHost), cudaSuccess);
  cudaFree(dx);
  cudaFree(dc);
  return codes;
}

TEST(Fp8Device, EncodeMatchesHost) {
  if (!have_device()) GTEST_SKIP() << "no CUDA device";
  std::vector<float> x;
  for (uint32_t h = 0; h < 0x10000; ++h) x.push_back(half_to_float(Half{static_cast<uint16_t>(h)}));
  std::mt19937 rng(7);
  for (int i = 0; i < (1 << 22); ++i) {
    uint32_t b = rng();
    b = (b & 0x807FFFFFu) | (static_cast<uint32_t>(127 - 12 + (i % 23)) << 23);
    float f;
    std::memcpy(&f, &b, 4);
    x.push_back(f);
  }
  const std::vector<uint8_t> dev = encode_on_device(x);
  int64_t mismatches = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const uint8_t host = float_to_e4m3(x[i]);
    if (dev[i] != host && !(std::isnan(x[i]) && (dev[i] & 0x7F) == 0x7F)) {
      if (mismatches < 5)
        ADD_FAILURE() << "x = " << x[i] << ": device " << int(dev[i]) << ", host " << int(host);
      ++mismatches;
    }
  }
  EXPECT_EQ(mismatches, 0) << "of " << x.size();
}

TEST(Fp8Device, DecodeMatchesHost) {
  if (!have_device()) GTEST_SKIP() << "no CUDA device";
  float* d = nullptr;
  ASSERT_EQ(cudaMalloc(&d, 256 * sizeof(float)), cudaSuccess);
  DecodeKernel<<<1, 256>>>(d);
  std::vector<float> dev(256);
  ASSERT_EQ(cudaMemcpy(dev.data(), d, 256 * sizeof(float), cudaMemcpyDeviceToHost), cudaSuccess);
  cudaFree(d);
  for (int c = 0; c < 256; ++c) {
    const float host = e4m3_to_float(static_cast<uint8_t>(c));
    if (std::isnan(host)) {
      EXPECT_TRUE(std::isnan(dev[c])) << c;
    } else {
      EXPECT_EQ(std::memcmp(&dev[c], &host, 4), 0)
          << "code " << c << ": " << dev[c] << " vs " << host;
    }
  }
}

}  // namespace
}  // namespace turbo
