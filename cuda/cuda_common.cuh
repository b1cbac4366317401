// Shared device-side plumbing of the cuda backend: error checks, an owning device buffer, the
// params structs of the kernels and their launchers (defined in the .cu files).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "core/backend.h"
#include "core/flashq.h"
#include "core/kv_layout.h"
#include "core/sas.h"
#include "core/sas_stats.h"

#define TURBO_CUDA_CHECK(expr)                                                                     \
  do {                                                                                             \
    const cudaError_t turbo_err_ = (expr);                                                         \
    TURBO_CHECK(turbo_err_ == cudaSuccess, "CUDA error " << cudaGetErrorName(turbo_err_) << " ("   \
                                                         << cudaGetErrorString(turbo_err_)         \
                                                         << ") at " << __FILE__ << ":" << __LINE__ \
                                                         << ": " #expr);                           \
  } while (0)

#define TURBO_CUDA_LAUNCH_CHECK() TURBO_CUDA_CHECK(cudaGetLastError())

namespace turbo {
namespace cuda {

// Owning device allocation (cudaMalloc), grown on demand, never shrunk.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes) { reserve(bytes); }
  ~DeviceBuffer() { release(); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(o.ptr_), bytes_(o.bytes_) {
    o.ptr_ = nullptr;
    o.bytes_ = 0;
  }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      release();
      ptr_ = o.ptr_;
      bytes_ = o.bytes_;
      o.ptr_ = nullptr;
      o.bytes_ = 0;
    }
    return *this;
  }
  // Ensures at least `bytes` (contents are not kept).
  void reserve(size_t bytes) {
    if (bytes <= bytes_) return;
    release();
    TURBO_CUDA_CHECK(cudaMalloc(&ptr_, bytes));
    bytes_ = bytes;
  }
  void release() {
    if (ptr_) cudaFree(ptr_);
    ptr_ = nullptr;
    bytes_ = 0;
  }
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }
  size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// Padded channel count of the quantized buffers: codes beyond d are 0 and add 0 to every dot
// product, so one kernel instance serves every d up to the padded size.
inline int padded_dim(int d) { return d <= 64 ? 64 : (d <= 128 ? 128 : 256); }

// ---- stage 1 (SPEC 1) ----------------------------------------------------------------------

// Stage 1 of `heads` independent [n, d] slices of contiguous FP16 rows x (slice stride n * d),
// groups of group_rows rows from row 0 of each slice. `mean` (optional, [heads, d]) is
// subtracted in FP32 first (k_smooth). codes [heads, n, code_stride] (channels >= d written 0);
// group_scales [heads, ceil(n / group_rows)] (optional); row_scales [heads, n] (optional): the
// scale of each row's group.
void launch_stage1(const Half* x, const float* mean, int64_t heads, int64_t n, int d,
                   int64_t group_rows, int8_t* codes, int code_stride, float* group_scales,
                   float* row_scales, cudaStream_t stream);

// Per-channel mean of SPEC 1 (exact int64 sum of k * 2^24) over tokens [0, n) of each of `heads`
// contiguous [n_total, d] slices: mean [heads, d].
void launch_channel_mean(const Half* k, int64_t heads, int64_t n_total, int64_t n, int d,
                         float* mean, cudaStream_t stream);

// ---- stage 2 and the direct quantizer (SPEC 2, 3), SAS (SPEC 4) ---------------------------

void launch_compress_blocks(const int8_t* q, const BlockLayout& layout, int64_t n_blocks,
                            uint8_t* blocks, int64_t block_stride, cudaStream_t stream);
void launch_decompress_blocks(const uint8_t* blocks, const BlockLayout& layout, int64_t n_blocks,
                              int64_t block_stride, int8_t* q, cudaStream_t stream);
void launch_quantize_asym(const Half* x, int64_t n_groups, int group_len, int bits,
                          ScaleStorage storage, uint8_t* codes, float* scales, float* zeros,
                          cudaStream_t stream);
void launch_sas(const Half* x, int64_t n, const SasParams& p, float* out, cudaStream_t stream);

// The SAS memo table of sas_table.cuh: its entry count (0 when it does not apply: fp32
// precision or exp_mode = exact), and the kernel that fills it from core sas_eval.
int sas_table_count(const SasParams& p);
void launch_sas_table(const SasParams& p, uint16_t* table, int count, cudaStream_t stream);

// A filled table for `p`, cached per thread (rebuilt when the SAS knobs change); null when
// sas_table_count(p) == 0.
const uint16_t* cached_sas_table(const SasParams& p, cudaStream_t stream);

// The P-code table of (sas, p_quant) (core fill_p_code_table, filled on the host: count + 1
// entries, count = sas_table_count(sas), padded to 16 bytes), cached per thread; only where core
// p_code_table_applies(sas, mode). Used by the mma prefill and the decode kernel.
const uint8_t* cached_p_code_table(const SasParams& sas, PQuant mode, cudaStream_t stream);

// ---- KV cache append (SPEC 6) ---------------------------------------------------------------

struct CacheAppendParams {
  const Half* k_in;  // [streams, t_in, d] rows of this append
  const Half* v_in;
  int64_t t_in;
  int64_t t0;  // first input row of this chunk
  int64_t streams;
  int hkv, d, n_b, n_buf;
  // The buffer is a ring of buf_cap = n_b + window rows per stream; its oldest row sits at slot
  // buf_head (always 0 when window = 0: a block of n_b rows leaves at once).
  int buf_cap, buf_head;
  bool buf_int8;
  Half* k_buf;  // [streams, buf_cap, d]
  Half* v_buf;
  int8_t* k_buf8;  // [streams, buf_cap, d]
  int8_t* v_buf8;
  float* k_buf_s;  // [streams, buf_cap]
  float* v_buf_s;
  const float* k_mean;  // [streams, d] or null
  // Compression of the call's n_full full blocks into blocks [block_index, block_index + n_full):
  // block j holds the rows [j * n_b, (j + 1) * n_b) of the buffer's n_buf rows (oldest first)
  // followed by the input rows from t0 on; a row r < n_buf is buffer row r, in ring slot
  // (buf_head + r) % buf_cap, a row r >= n_buf the input row t0 + r - n_buf.
  uint8_t* k_blocks;
  uint8_t* v_blocks;
  int64_t block_stride, block_cap, block_index, n_full;
  const int* head_bits;
  int k_axis, v_axis, group_size;
  int frac_step, token_scales;  // BlockLayout's: s2_step = float, kv_scale = token
};
// Appends `rows` input rows [t0, t0 + rows) as buffer rows [n_buf, n_buf + rows) (ring slots
// (buf_head + n_buf + j) % buf_cap).
void launch_cache_append(const CacheAppendParams& p, int rows, cudaStream_t stream);
// Compresses the n_full full blocks of every stream (K and V), from the input rows and the n_buf
// buffer rows. `layouts[0]` / `layouts[1]`: K's / V's block layout (bits aside: each head's own).
void launch_cache_compress(const CacheAppendParams& p, const BlockLayout layouts[2],
                           cudaStream_t stream);

// ---- FlashQ attention (SPEC 5, 6) -----------------------------------------------------------

// Per-row AttentionStats contribution (rows = 1 each).
struct RowStats {
  double dropped;  // dropped / (alive + dropped), 0 when empty
  long long scored;
  long long zeroed;
};

// Where the KV tiles of the row kernel come from.
enum class TileSource : int { kPrefill = 0, kCache = 1 };

// Everything the row kernel ("rows": one warp per query row) and the split-K merge read.
struct RowsParams {
  // Query rows: codes [B * Hq, q_len, dp], scale per row [B * Hq, q_len].
  const int8_t* q_codes;
  const float* q_scale;
  int64_t q_len;
  int batch, hq, hkv, group;
  int d, dp;
  int64_t pos_offset;  // absolute position of query row 0
  bool causal;
  float tau;
  SasParams sas;
  PQuant p_quant;
  bool want_stats;
  const uint16_t* sas_table;  // sas_table.cuh, or null
  int sas_table_count;

  TileSource source;
  int n_tiles;
  int tile_cap;  // largest tile (tokens): shared memory is sized by it

  // kPrefill: tile t holds tokens [t * bc, min(n_keys, (t + 1) * bc)).
  int bc;
  int64_t n_keys;
  const int8_t* k_codes;  // [B * Hkv, n_keys, dp]
  const int8_t* v_codes;
  const float* k_scale;  // per token [B * Hkv, n_keys]
  const float* v_scale;
  bool k_token, v_token;  // stage-1 group of one token (per-token scales when the tile has > 1)

  // kCache, tiles in the reference's order: the FP16 sink rows (one tile, when n_sink > 0), the
  // blocks [B * Hkv][block_cap] of `block_stride` bytes for K and for V, then the buffer (one
  // tile).
  int n_sink;          // sink rows held (<= sink_cap); stage 1 per token at attention
  int sink_cap;        // the sink knob: rows per stream of k_sink / v_sink
  const Half* k_sink;  // [B * Hkv, sink_cap, d]
  const Half* v_sink;
  const uint8_t* k_blocks;
  const uint8_t* v_blocks;
  int64_t block_stride;
  int64_t block_cap;
  int n_blocks;
  int n_b;
  const int* head_bits;  // [Hkv]
  int k_axis, v_axis, group_size;
  int frac_step, token_scales;  // BlockLayout's: s2_step = float, kv_scale = token
  int n_buf;
  int buf_cap, buf_head;  // the buffer ring (CacheAppendParams): row j at slot (buf_head + j) % cap
  bool buf_int8;
  bool buf_per_token;  // fp16 buffer: stage 1 per token (kv_scale = token or window > 0)
  // Sink rows, a window, per-token block scales or the fractional stage-2 step: a cache that only
  // the rows kernel reads.
  bool general_cache;
  const Half* k_buf;  // fp16 buffer [B * Hkv, buf_cap, d]
  const Half* v_buf;
  const int8_t* k_buf8;  // int8 buffer [B * Hkv, buf_cap, d] and scales [B * Hkv, buf_cap]
  const int8_t* v_buf8;
  const float* k_buf_s;
  const float* v_buf_s;
  const float* k_mean;  // [B * Hkv, d] or null

  // Work split and outputs.
  int splits;
  int rows_per_cta;        // query rows (of one kv group) per CTA
  Half* out;               // [B, Hq, q_len, d] (written when splits == 1)
  float* run_o;            // [rows, splits, dp]   (splits > 1)
  float* run_ml;           // [rows, splits, 2]
  SasRunStats* run_stats;  // [rows, splits]   (want_stats)
  RowStats* row_stats;     // [rows]              (want_stats)

  // Decode kernel only (flashq_decode.cu).
  const Half* q_half;  // q_len == 1: FP16 query rows [B, Hq, 1, d], quantized in the kernel
  bool fused_merge;    // splits > 1: the last CTA of each (batch, kv head) merges the runs
  int* counters;       // [B * Hkv] finished runs, zero between calls (fused_merge)
};

// Dynamic shared memory cap of the rows kernel: below the 227 KiB opt-in limit of sm_80/sm_90,
// leaving room for its static shared memory.
constexpr size_t kRowsMaxSmem = 200 * 1024;
size_t rows_kernel_smem(const RowsParams& p);
void launch_rows_kernel(const RowsParams& p, cudaStream_t stream);
void launch_merge_kernel(const RowsParams& p, cudaStream_t stream);

// The decode kernel (flashq_decode.cu): every query row of a GQA group in one CTA, packed
// stage-2 unpacking, the merge fused into the last run. decode_kernel_supports says which
// configurations it covers (the rest run on the rows kernel); TURBO_DECODE_KERNEL=rows in the
// environment turns it off (tuning comparisons).
bool decode_kernel_supports(const RowsParams& p);
bool decode_merge_fusable(const RowsParams& p);
void launch_decode_kernel(const RowsParams& p, cudaStream_t stream);

// The INT8 tensor-core prefill kernel (the fast path); see flashq_mma.cu for what it covers.
struct MmaParams {
  const int8_t* q_codes;  // [B * Hq, N, dp]
  const float* q_scale;   // [B * Hq, N]
  const int8_t* k_codes;  // [B * Hkv, N, dp]
  const int8_t* v_codes;
  const float* k_scale;  // per token [B * Hkv, N]
  const float* v_scale;
  Half* out;  // [B, Hq, N, d]
  int64_t n;
  int batch, hq, hkv, group;
  int d, dp, bc;
  bool causal;
  float tau;
  SasParams sas;
  PQuant p_quant;
  const uint16_t* sas_table;  // sas_table.cuh, or null
  int sas_table_count;
};
bool mma_supports(const AttentionConfig& config, int d, bool want_stats);
void launch_mma_prefill(const MmaParams& p, cudaStream_t stream);

}  // namespace cuda
}  // namespace turbo
