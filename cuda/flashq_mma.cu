#include "cuda/cuda_common.cuh"
namespace turbo {
namespace cuda {
bool mma_supports(const AttentionConfig&, int, bool) { return false; }
void launch_mma_prefill(const MmaParams&, cudaStream_t) { TURBO_CHECK(false, "mma prefill not built"); }
}  // namespace cuda
}  // namespace turbo
