// The "cuda" backend: host staging around the kernels of quant_kernels.cu, cache_kernels.cu,
// flashq_rows.cu and flashq_mma.cu. The Backend front (core/backend.h) checks inputs on the host
// (shapes, finiteness, the config) before any of this runs; inputs are then copied to the device
// and outputs back.
#include <algorithm>
#include <cstring>
#include <mutex>
#include <vector>

#include "core/kv_cache.h"
#include "cuda/cuda_backend.h"
#include "cuda/cuda_common.cuh"

namespace turbo {
namespace cuda {
namespace {

template <typename T>
void upload(DeviceBuffer& buf, const T* host, size_t count, cudaStream_t stream) {
  buf.reserve(std::max<size_t>(1, count * sizeof(T)));
  if (count)
    TURBO_CUDA_CHECK(
        cudaMemcpyAsync(buf.as<void>(), host, count * sizeof(T), cudaMemcpyHostToDevice, stream));
}

template <typename T>
void download(T* host, const DeviceBuffer& buf, size_t count, cudaStream_t stream) {
  if (count)
    TURBO_CUDA_CHECK(
        cudaMemcpyAsync(host, buf.as<void>(), count * sizeof(T), cudaMemcpyDeviceToHost, stream));
  TURBO_CUDA_CHECK(cudaStreamSynchronize(stream));
}

// A contiguous host copy of a (possibly strided) view.
std::vector<Half> gather(const ConstHalfTensor& t) {
  std::vector<Half> out(static_cast<size_t>(t.numel()));
  size_t i = 0;
  for (int64_t b = 0; b < t.batch(); ++b)
    for (int64_t h = 0; h < t.heads(); ++h)
      for (int64_t n = 0; n < t.tokens(); ++n) {
        std::memcpy(&out[i], t.row(b, h, n), static_cast<size_t>(t.dim()) * sizeof(Half));
        i += static_cast<size_t>(t.dim());
      }
  return out;
}

void scatter(const std::vector<Half>& src, const HalfTensor& t) {
  size_t i = 0;
  for (int64_t b = 0; b < t.batch(); ++b)
    for (int64_t h = 0; h < t.heads(); ++h)
      for (int64_t n = 0; n < t.tokens(); ++n) {
        std::memcpy(t.row(b, h, n), &src[i], static_cast<size_t>(t.dim()) * sizeof(Half));
        i += static_cast<size_t>(t.dim());
      }
}

// Query rows per CTA of the rows kernel: as many as fit next to the tile.
int choose_rows_per_cta(RowsParams p, int rows_total) {
  int r = std::max(1, std::min(rows_total, 64));
  for (;;) {
    p.rows_per_cta = r;
    if (rows_kernel_smem(p) <= 160 * 1024 || r <= 8) return r;
    r /= 2;
  }
}

// Scratch memory of one prefill/decode call, kept between calls.
struct Workspace {
  DeviceBuffer q_codes, k_codes, v_codes, q_scale, k_scale, v_scale, k_mean;
  DeviceBuffer run_o, run_ml, run_stats, row_stats, counters;
  DeviceBuffer q_in, k_in, v_in, o_out;
};

Workspace& thread_workspace() {
  thread_local Workspace ws;
  return ws;
}

void add_row_stats(const std::vector<RowStats>& rs, int64_t rows_per_head, AttentionStats* stats) {
  for (size_t r = 0; r < rs.size(); ++r) {
    AttentionStats& s = stats[static_cast<int64_t>(r) / rows_per_head];
    s.rows += 1;
    s.scored += rs[r].scored;
    s.zeroed += rs[r].zeroed;
    s.dropped_mass += rs[r].dropped;
  }
}

// The fields every attention kernel's params (MmaParams, RowsParams) name alike: the shape and
// the softmax knobs, filled here once for the prefill kernels and the decode.
template <typename Params>
void fill_attention_fields(Params& p, const AttentionConfig& cfg, int64_t B, int64_t Hq,
                           int64_t Hkv, int D, bool causal, cudaStream_t stream) {
  p.batch = static_cast<int>(B);
  p.hq = static_cast<int>(Hq);
  p.hkv = static_cast<int>(Hkv);
  p.group = static_cast<int>(Hq / Hkv);
  p.d = D;
  p.dp = padded_dim(D);
  p.causal = causal;
  p.tau = cfg.tau_for(D);
  p.sas = cfg.sas.params();
  p.p_quant = cfg.p_quant;
  p.sas_table = cached_sas_table(p.sas, stream);
  p.sas_table_count = sas_table_count(p.sas);
}

void prefill_impl(const AttentionConfig& cfg, const Half* q, const Half* k, const Half* v, Half* o,
                  int64_t B, int64_t Hq, int64_t Hkv, int64_t N, int D, cudaStream_t stream,
                  Workspace& ws, AttentionStats* stats) {
  if (N == 0 || B == 0 || Hq == 0) return;
  const QuantConfig& qc = cfg.quant;
  const int dp = padded_dim(D);
  const int64_t kv_rows = group_rows_for(qc.kv_gran, qc.bc, N);
  const int64_t q_rows = group_rows_for(qc.q_gran, qc.br, N);
  ws.q_codes.reserve(static_cast<size_t>(B * Hq * N * dp));
  ws.k_codes.reserve(static_cast<size_t>(B * Hkv * N * dp));
  ws.v_codes.reserve(static_cast<size_t>(B * Hkv * N * dp));
  ws.q_scale.reserve(sizeof(float) * static_cast<size_t>(B * Hq * N));
  ws.k_scale.reserve(sizeof(float) * static_cast<size_t>(B * Hkv * N));
  ws.v_scale.reserve(sizeof(float) * static_cast<size_t>(B * Hkv * N));
  const float* mean = nullptr;
  if (qc.k_smooth == KSmooth::kMean) {
    ws.k_mean.reserve(sizeof(float) * static_cast<size_t>(B * Hkv * D));
    launch_channel_mean(k, B * Hkv, N, N, D, ws.k_mean.as<float>(), stream);
    mean = ws.k_mean.as<float>();
  }
  launch_stage1(k, mean, B * Hkv, N, D, kv_rows, ws.k_codes.as<int8_t>(), dp, nullptr,
                ws.k_scale.as<float>(), stream);
  launch_stage1(v, nullptr, B * Hkv, N, D, kv_rows, ws.v_codes.as<int8_t>(), dp, nullptr,
                ws.v_scale.as<float>(), stream);
  launch_stage1(q, nullptr, B * Hq, N, D, q_rows, ws.q_codes.as<int8_t>(), dp, nullptr,
                ws.q_scale.as<float>(), stream);
  const bool want_stats = stats != nullptr;
  // The stage-1 codes and scales both prefill kernels read.
  auto fill_codes = [&](auto& p) {
    p.q_codes = ws.q_codes.as<int8_t>();
    p.q_scale = ws.q_scale.as<float>();
    p.k_codes = ws.k_codes.as<int8_t>();
    p.v_codes = ws.v_codes.as<int8_t>();
    p.k_scale = ws.k_scale.as<float>();
    p.v_scale = ws.v_scale.as<float>();
    p.bc = qc.bc;
    p.out = o;
  };

  if (mma_supports(cfg, D, want_stats)) {
    MmaParams p{};
    fill_attention_fields(p, cfg, B, Hq, Hkv, D, cfg.causal, stream);
    fill_codes(p);
    p.n = N;
    launch_mma_prefill(p, stream);
    return;
  }

  RowsParams p{};
  fill_attention_fields(p, cfg, B, Hq, Hkv, D, cfg.causal, stream);
  fill_codes(p);
  p.q_len = N;
  p.pos_offset = 0;
  p.want_stats = want_stats;
  p.source = TileSource::kPrefill;
  p.n_tiles = static_cast<int>((N + qc.bc - 1) / qc.bc);
  p.tile_cap = static_cast<int>(std::min<int64_t>(qc.bc, N));
  p.n_keys = N;
  p.k_token = p.v_token = kv_rows == 1;
  p.splits = 1;
  const int64_t rows = B * Hq * N;
  if (want_stats) {
    ws.row_stats.reserve(sizeof(RowStats) * static_cast<size_t>(rows));
    p.row_stats = ws.row_stats.as<RowStats>();
  }
  p.rows_per_cta = choose_rows_per_cta(p, static_cast<int>(p.group * N));
  launch_rows_kernel(p, stream);
  if (want_stats) {
    std::vector<RowStats> rs(static_cast<size_t>(rows));
    download(rs.data(), ws.row_stats, rs.size(), stream);
    add_row_stats(rs, N, stats);
  }
}

// ---- the compressed KV cache (SPEC 6) -------------------------------------------------------

// The decode-cache knobs of issue 9 (FP16 sink rows, an FP16 window, per-token stage-1 scales in
// the blocks, the fractional stage-2 step): the rows kernel reads such a cache, the decode kernel
// does not.
bool general_cache(const QuantConfig& qc) {
  return qc.sink > 0 || qc.window > 0 || qc.kv_scale == KvScale::kToken ||
         qc.s2_step == S2Step::kFloat;
}

class CudaKvCache final : public KvCache {
 public:
  explicit CudaKvCache(const KvCacheSpec& spec) : spec_(spec) {
    const QuantConfig& qc = spec.config.quant;
    bits_ = resolve_head_bits(spec);
    streams_ = static_cast<int64_t>(spec.batch) * spec.kv_heads;
    int64_t stride = 0;
    for (int h = 0; h < spec.kv_heads; ++h)
      for (bool is_k : {true, false}) stride = std::max(stride, layout(h, is_k).bytes());
    block_stride_ = (stride + 15) / 16 * 16;
    buf_cap_ = static_cast<int64_t>(qc.block) + qc.window;
    check_tiles_fit();
    upload(head_bits_, bits_.data(), bits_.size(), stream_);
    const size_t buf_rows = static_cast<size_t>(streams_ * buf_cap_ * spec.head_dim);
    if (qc.buffer == BufferMode::kInt8) {
      k_buf8_.reserve(buf_rows);
      v_buf8_.reserve(buf_rows);
      k_buf_s_.reserve(sizeof(float) * static_cast<size_t>(streams_ * buf_cap_));
      v_buf_s_.reserve(sizeof(float) * static_cast<size_t>(streams_ * buf_cap_));
    } else {
      k_buf_.reserve(buf_rows * sizeof(Half));
      v_buf_.reserve(buf_rows * sizeof(Half));
    }
    if (qc.sink > 0) {
      const size_t sink_rows = static_cast<size_t>(streams_ * qc.sink * spec.head_dim);
      k_sink_.reserve(sink_rows * sizeof(Half));
      v_sink_.reserve(sink_rows * sizeof(Half));
    }
    TURBO_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  const KvCacheSpec& spec() const override { return spec_; }
  int64_t length() const override { return length_; }

  BlockLayout layout(int64_t h, bool is_k) const {
    return cache_block_layout(spec_, bits_[static_cast<size_t>(h)], is_k);
  }

  // SPEC 8, counted from what is stored (the same count as the reference cache).
  KvBytes bytes() const override {
    return flashq_cache_bytes(spec_, bits_, n_blocks_, n_buf_, has_mean_, length_, n_sink_);
  }
  int head_bits(int kv_head) const override { return bits_.at(static_cast<size_t>(kv_head)); }

  void append_device(const Half* k, const Half* v, int64_t T, cudaStream_t stream) {
    const QuantConfig& qc = spec_.config.quant;
    const int d = spec_.head_dim;
    if (qc.k_smooth == KSmooth::kMean && !has_mean_ && T > 0) {
      k_mean_.reserve(sizeof(float) * static_cast<size_t>(streams_ * d));
      launch_channel_mean(k, streams_, T, T, d, k_mean_.as<float>(), stream);
      has_mean_ = true;
    }
    CacheAppendParams p{};
    p.k_in = k;
    p.v_in = v;
    p.t_in = T;
    p.streams = streams_;
    p.hkv = spec_.kv_heads;
    p.d = d;
    // The first `sink` tokens of each stream stay FP16 for good.
    int64_t t_sink = 0;
    if (n_sink_ < qc.sink && T > 0) {
      t_sink = std::min<int64_t>(T, qc.sink - n_sink_);
      const size_t row = sizeof(Half) * static_cast<size_t>(d);
      for (int is_k = 0; is_k < 2; ++is_k)
        TURBO_CUDA_CHECK(cudaMemcpy2DAsync((is_k ? k_sink_ : v_sink_).as<Half>() + n_sink_ * d,
                                           row * qc.sink, is_k ? k : v, row * T, row * t_sink,
                                           static_cast<size_t>(streams_), cudaMemcpyDeviceToDevice,
                                           stream));
      n_sink_ += t_sink;
    }
    // The buffer's rows and the input's rows after the sink, oldest first: every block of n_b of
    // them that has `window` newer rows after it is compressed, in one launch (SPEC 6 with the
    // window: the reference compresses the oldest block whenever the buffer reaches n_b + window
    // rows); then one launch writes the rows left over to the buffer ring (after the compression
    // has read the buffer's old rows: same stream).
    const int64_t n_b = qc.block;
    const int64_t rows = n_buf_ + (T - t_sink);
    const int64_t n_full = rows >= qc.window ? (rows - qc.window) / n_b : 0;
    int64_t t0 = t_sink;
    if (n_full > 0) {
      grow(n_blocks_ + n_full, stream);
      fill_cache_fields(p);
      p.t0 = t_sink;
      p.block_index = n_blocks_;
      p.n_full = n_full;
      const BlockLayout layouts[2] = {layout(0, true), layout(0, false)};
      launch_cache_compress(p, layouts, stream);
      n_blocks_ += n_full;
      const int64_t leaving = n_full * n_b;  // rows now in blocks
      t0 += std::max<int64_t>(0, leaving - n_buf_);
      buf_head_ = (buf_head_ + leaving) % buf_cap_;
      n_buf_ = std::max<int64_t>(0, n_buf_ - leaving);
    }
    fill_cache_fields(p);
    p.t0 = t0;
    launch_cache_append(p, static_cast<int>(T - t0), stream);
    n_buf_ += T - t0;
    length_ += T;
  }

  // Fills the cache fields of the rows kernel's params. Tiles as the reference's flashq_decode:
  // the sink rows (one tile), the blocks, the buffer (one tile of up to block + window - 1 rows).
  void fill(RowsParams& p) const {
    const QuantConfig& qc = spec_.config.quant;
    fill_cache_fields(p);
    p.source = TileSource::kCache;
    p.n_sink = static_cast<int>(n_sink_);
    p.sink_cap = qc.sink;
    p.k_sink = k_sink_.as<Half>();
    p.v_sink = v_sink_.as<Half>();
    p.buf_per_token = qc.kv_scale == KvScale::kToken || qc.window > 0;
    p.general_cache = general_cache(qc);
    p.n_blocks = static_cast<int>(n_blocks_);
    p.n_tiles = static_cast<int>((n_sink_ > 0 ? 1 : 0) + n_blocks_ + (n_buf_ > 0 ? 1 : 0));
    p.tile_cap = static_cast<int>(std::max<int64_t>({qc.block, n_sink_, n_buf_}));
  }

 private:
  // The cache's state as the append kernels (CacheAppendParams) and the attention kernels
  // (RowsParams) name it: the same fields in both, filled here once.
  template <typename Params>
  void fill_cache_fields(Params& p) const {
    const QuantConfig& qc = spec_.config.quant;
    p.n_b = qc.block;
    p.n_buf = static_cast<int>(n_buf_);
    p.buf_int8 = qc.buffer == BufferMode::kInt8;
    p.k_buf = k_buf_.as<Half>();
    p.v_buf = v_buf_.as<Half>();
    p.k_buf8 = k_buf8_.as<int8_t>();
    p.v_buf8 = v_buf8_.as<int8_t>();
    p.k_buf_s = k_buf_s_.as<float>();
    p.v_buf_s = v_buf_s_.as<float>();
    p.k_mean = has_mean_ ? k_mean_.as<float>() : nullptr;
    p.k_blocks = k_blocks_.as<uint8_t>();
    p.v_blocks = v_blocks_.as<uint8_t>();
    p.block_stride = block_stride_;
    p.block_cap = block_cap_;
    p.head_bits = head_bits_.as<int>();
    p.k_axis = static_cast<int>(qc.k_axis);
    p.v_axis = static_cast<int>(qc.v_axis);
    p.group_size = qc.group_size;
    p.frac_step = qc.s2_step == S2Step::kFloat ? 1 : 0;
    p.token_scales = qc.kv_scale == KvScale::kToken ? 1 : 0;
    p.buf_cap = static_cast<int>(buf_cap_);
    p.buf_head = static_cast<int>(buf_head_);
  }

  // The largest tile decode can meet (the sink rows, a block, a buffer of block + window - 1 rows)
  // must fit in the rows kernel's shared memory at its fewest query rows per CTA: refused here,
  // when the cache is made, rather than at the first decode.
  void check_tiles_fit() const {
    const QuantConfig& qc = spec_.config.quant;
    RowsParams p{};
    // (clamped so that an absurd sink or window still gives a positive int and a clear error)
    p.tile_cap = static_cast<int>(
        std::min<int64_t>(std::max<int64_t>({qc.block, qc.sink, buf_cap_ - 1}), 1 << 24));
    p.dp = padded_dim(spec_.head_dim);
    p.rows_per_cta = 8;
    p.want_stats = true;
    const size_t smem = rows_kernel_smem(p);
    TURBO_CHECK(smem <= kRowsMaxSmem,
                "cuda cache: a decode tile of "
                    << p.tile_cap << " tokens (block=" << qc.block << ", sink=" << qc.sink
                    << ", window=" << qc.window << ") at head_dim " << spec_.head_dim << " needs "
                    << smem / 1024 << " KiB of shared memory in the rows kernel, over its "
                    << kRowsMaxSmem / 1024 << " KiB; use a smaller sink or window, or ref");
  }

  void grow(int64_t blocks, cudaStream_t stream) {
    if (blocks <= block_cap_) return;
    const int64_t cap = std::max<int64_t>({16, blocks, 2 * block_cap_});
    for (DeviceBuffer* buf : {&k_blocks_, &v_blocks_}) {
      DeviceBuffer fresh(static_cast<size_t>(streams_ * cap * block_stride_));
      if (n_blocks_ > 0)
        TURBO_CUDA_CHECK(
            cudaMemcpy2DAsync(fresh.as<void>(), static_cast<size_t>(cap * block_stride_),
                              buf->as<void>(), static_cast<size_t>(block_cap_ * block_stride_),
                              static_cast<size_t>(n_blocks_ * block_stride_),
                              static_cast<size_t>(streams_), cudaMemcpyDeviceToDevice, stream));
      TURBO_CUDA_CHECK(cudaStreamSynchronize(stream));
      *buf = std::move(fresh);
    }
    block_cap_ = cap;
  }

  KvCacheSpec spec_;
  std::vector<int> bits_;
  int64_t streams_ = 0;
  int64_t length_ = 0, n_sink_ = 0, n_blocks_ = 0, n_buf_ = 0;
  int64_t buf_cap_ = 0, buf_head_ = 0;  // the buffer ring: block + window rows per stream
  int64_t block_stride_ = 0, block_cap_ = 0;
  bool has_mean_ = false;
  DeviceBuffer head_bits_, k_blocks_, v_blocks_, k_buf_, v_buf_, k_buf8_, v_buf8_, k_buf_s_,
      v_buf_s_, k_mean_, k_sink_, v_sink_;
  cudaStream_t stream_ = nullptr;  // the legacy default stream
};

const CudaKvCache& as_cuda(const KvCache& c) {
  const auto* p = dynamic_cast<const CudaKvCache*>(&c);
  TURBO_CHECK(p != nullptr, "cache was not created by the cuda backend's flashq method");
  return *p;
}

void decode_impl(const AttentionConfig& cfg, const Half* q, const CudaKvCache& cache, Half* o,
                 int64_t Hq, int64_t QL, cudaStream_t stream, Workspace& ws,
                 AttentionStats* stats) {
  const KvCacheSpec& spec = cache.spec();
  const int64_t B = spec.batch, Hkv = spec.kv_heads, L = cache.length();
  const int D = spec.head_dim;
  const int dp = padded_dim(D);
  RowsParams p{};
  fill_attention_fields(p, cfg, B, Hq, Hkv, D, /*causal=*/true, stream);
  p.q_len = QL;
  p.pos_offset = L - QL;
  p.want_stats = stats != nullptr;
  cache.fill(p);
  p.splits = cfg.splits;
  p.out = o;
  const int64_t rows = B * Hq * QL;
  if (p.splits > 1) {
    ws.run_o.reserve(sizeof(float) * static_cast<size_t>(rows * p.splits * dp));
    ws.run_ml.reserve(sizeof(float) * static_cast<size_t>(rows * p.splits * 2));
    p.run_o = ws.run_o.as<float>();
    p.run_ml = ws.run_ml.as<float>();
    if (p.want_stats) {
      ws.run_stats.reserve(sizeof(SasRunStats) * static_cast<size_t>(rows * p.splits));
      p.run_stats = ws.run_stats.as<SasRunStats>();
    }
  }
  if (p.want_stats) {
    ws.row_stats.reserve(sizeof(RowStats) * static_cast<size_t>(rows));
    p.row_stats = ws.row_stats.as<RowStats>();
  }
  const bool decode_kernel = decode_kernel_supports(p);
  if (decode_kernel && QL == 1) {
    p.q_half = q;  // stage 1 of the one-row query groups runs inside the decode kernel
  } else {
    const int64_t q_rows = group_rows_for(cfg.quant.q_gran, cfg.quant.br, QL);
    ws.q_codes.reserve(static_cast<size_t>(B * Hq * QL * dp));
    ws.q_scale.reserve(sizeof(float) * static_cast<size_t>(B * Hq * QL));
    launch_stage1(q, nullptr, B * Hq, QL, D, q_rows, ws.q_codes.as<int8_t>(), dp, nullptr,
                  ws.q_scale.as<float>(), stream);
    p.q_codes = ws.q_codes.as<int8_t>();
    p.q_scale = ws.q_scale.as<float>();
  }
  if (decode_kernel) {
    p.fused_merge = p.splits > 1 && decode_merge_fusable(p);
    if (p.fused_merge) {
      const size_t bytes = sizeof(int) * static_cast<size_t>(B * Hkv);
      if (ws.counters.bytes() < bytes) {  // zero once; the last CTA of a call resets its counter
        ws.counters.reserve(bytes);
        TURBO_CUDA_CHECK(cudaMemsetAsync(ws.counters.as<void>(), 0, ws.counters.bytes(), stream));
      }
      p.counters = ws.counters.as<int>();
    }
    launch_decode_kernel(p, stream);
    if (p.splits > 1 && !p.fused_merge) launch_merge_kernel(p, stream);
  } else {
    p.rows_per_cta = choose_rows_per_cta(p, static_cast<int>(p.group * QL));
    launch_rows_kernel(p, stream);
    if (p.splits > 1) launch_merge_kernel(p, stream);
  }
  if (p.want_stats) {
    std::vector<RowStats> rs(static_cast<size_t>(rows));
    download(rs.data(), ws.row_stats, rs.size(), stream);
    add_row_stats(rs, QL, stats);
  }
}

// What the cuda backend adds to AttentionConfig::validate.
Status cuda_supports(const AttentionConfig& config) {
  if (config.method != Method::kFlashQ)
    return Status::Fail("method " + enum_name(config.method) +
                        " is not implemented by the cuda backend; use ref");
  if (config.splits > 1024) return Status::Fail("splits must be <= 1024 on the cuda backend");
  // s2_step, kv_scale, sink and window: every value (decode on the rows kernel; prefill ignores
  // them, as the reference does). A sink or window too long for the rows kernel's shared memory
  // at the cache's head_dim is refused when the cache is created (CudaKvCache::check_tiles_fit).
  return Status::Ok();
}

void require_cuda_supports(const AttentionConfig& config) {
  Status s = config.validate();
  if (s.ok) s = cuda_supports(config);
  TURBO_CHECK(s.ok, s.message);
}

class CudaBackend final : public Backend {
 public:
  std::string name() const override { return "cuda"; }

 private:
  Status supports_impl(const AttentionConfig& config) const override {
    return cuda_supports(config);
  }

  void quantize_stage1_impl(const Half* x, int64_t n, int d, int64_t group_rows, int8_t* codes,
                            float* scales) override {
    if (n == 0) return;
    const int64_t groups = (n + group_rows - 1) / group_rows;
    upload(ws_.k_in, x, static_cast<size_t>(n * d), stream_);
    ws_.k_codes.reserve(static_cast<size_t>(n * d));
    ws_.k_scale.reserve(sizeof(float) * static_cast<size_t>(groups));
    launch_stage1(ws_.k_in.as<Half>(), nullptr, 1, n, d, group_rows, ws_.k_codes.as<int8_t>(), d,
                  ws_.k_scale.as<float>(), nullptr, stream_);
    download(codes, ws_.k_codes, static_cast<size_t>(n * d), stream_);
    download(scales, ws_.k_scale, static_cast<size_t>(groups), stream_);
  }

  void compress_block_impl(const int8_t* q, const BlockLayout& layout, uint8_t* block) override {
    upload(ws_.k_codes, q, static_cast<size_t>(layout.elements()), stream_);
    upload(ws_.v_codes, block, static_cast<size_t>(layout.bytes()),
           stream_);  // keeps the scale slot
    launch_compress_blocks(ws_.k_codes.as<int8_t>(), layout, 1, ws_.v_codes.as<uint8_t>(),
                           layout.bytes(), stream_);
    download(block, ws_.v_codes, static_cast<size_t>(layout.bytes()), stream_);
  }

  void decompress_block_impl(const uint8_t* block, const BlockLayout& layout, int8_t* q) override {
    upload(ws_.v_codes, block, static_cast<size_t>(layout.bytes()), stream_);
    ws_.k_codes.reserve(static_cast<size_t>(layout.elements()));
    launch_decompress_blocks(ws_.v_codes.as<uint8_t>(), layout, 1, layout.bytes(),
                             ws_.k_codes.as<int8_t>(), stream_);
    download(q, ws_.k_codes, static_cast<size_t>(layout.elements()), stream_);
  }

  void quantize_asym_impl(const Half* x, int64_t n_groups, int group_len, int bits,
                          ScaleStorage storage, uint8_t* codes, float* scales,
                          float* zeros) override {
    const int64_t n = n_groups * group_len;
    if (n_groups == 0) return;
    upload(ws_.k_in, x, static_cast<size_t>(n), stream_);
    ws_.k_codes.reserve(static_cast<size_t>(n));
    ws_.k_scale.reserve(sizeof(float) * static_cast<size_t>(n_groups));
    ws_.v_scale.reserve(sizeof(float) * static_cast<size_t>(n_groups));
    launch_quantize_asym(ws_.k_in.as<Half>(), n_groups, group_len, bits, storage,
                         ws_.k_codes.as<uint8_t>(), ws_.k_scale.as<float>(),
                         ws_.v_scale.as<float>(), stream_);
    download(codes, ws_.k_codes, static_cast<size_t>(n), stream_);
    download(scales, ws_.k_scale, static_cast<size_t>(n_groups), stream_);
    download(zeros, ws_.v_scale, static_cast<size_t>(n_groups), stream_);
  }

  void sas_impl(const Half* x, int64_t n, const SasConfig& config, float* out) override {
    if (n == 0) return;
    upload(ws_.k_in, x, static_cast<size_t>(n), stream_);
    ws_.k_scale.reserve(sizeof(float) * static_cast<size_t>(n));
    launch_sas(ws_.k_in.as<Half>(), n, config.params(), ws_.k_scale.as<float>(), stream_);
    download(out, ws_.k_scale, static_cast<size_t>(n), stream_);
  }

  void attention_prefill_impl(const AttentionConfig& config, const ConstHalfTensor& q,
                              const ConstHalfTensor& k, const ConstHalfTensor& v,
                              const HalfTensor& o, AttentionStats* stats) override {
    const std::vector<Half> qh = gather(q), kh = gather(k), vh = gather(v);
    upload(ws_.q_in, qh.data(), qh.size(), stream_);
    upload(ws_.k_in, kh.data(), kh.size(), stream_);
    upload(ws_.v_in, vh.data(), vh.size(), stream_);
    ws_.o_out.reserve(std::max<size_t>(1, qh.size() * sizeof(Half)));
    prefill_impl(config, ws_.q_in.as<Half>(), ws_.k_in.as<Half>(), ws_.v_in.as<Half>(),
                 ws_.o_out.as<Half>(), q.batch(), q.heads(), k.heads(), q.tokens(),
                 static_cast<int>(q.dim()), stream_, ws_, stats);
    std::vector<Half> oh(qh.size());
    download(oh.data(), ws_.o_out, oh.size(), stream_);
    scatter(oh, o);
  }

  std::unique_ptr<KvCache> create_cache_impl(const KvCacheSpec& spec) override {
    return std::make_unique<CudaKvCache>(spec);
  }

  void cache_append_impl(KvCache& cache_base, const ConstHalfTensor& k,
                         const ConstHalfTensor& v) override {
    auto& cache = const_cast<CudaKvCache&>(as_cuda(cache_base));
    const std::vector<Half> kh = gather(k), vh = gather(v);
    upload(ws_.k_in, kh.data(), kh.size(), stream_);
    upload(ws_.v_in, vh.data(), vh.size(), stream_);
    cache.append_device(ws_.k_in.as<Half>(), ws_.v_in.as<Half>(), k.tokens(), stream_);
    TURBO_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  void attention_decode_impl(const AttentionConfig& config, const ConstHalfTensor& q,
                             const KvCache& cache_base, const HalfTensor& o,
                             AttentionStats* stats) override {
    const CudaKvCache& cache = as_cuda(cache_base);
    const std::vector<Half> qh = gather(q);
    upload(ws_.q_in, qh.data(), qh.size(), stream_);
    ws_.o_out.reserve(std::max<size_t>(1, qh.size() * sizeof(Half)));
    decode_impl(config, ws_.q_in.as<Half>(), cache, ws_.o_out.as<Half>(), q.heads(), q.tokens(),
                stream_, ws_, stats);
    std::vector<Half> oh(qh.size());
    download(oh.data(), ws_.o_out, oh.size(), stream_);
    scatter(oh, o);
  }

 private:
  Workspace ws_;
  cudaStream_t stream_ = nullptr;
};

}  // namespace

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" error
    return 0;
  }
  return n;
}

const char* prefill_kernel_name(const AttentionConfig& config, bool want_stats) {
  return mma_supports(config, 64, want_stats) ? "mma" : "rows";
}

std::unique_ptr<Backend> make_cuda_backend() {
  TURBO_CHECK(cuda_device_count() > 0, "the cuda backend needs a CUDA device; none is visible");
  return std::make_unique<CudaBackend>();
}

void register_cuda_backend() {
  static std::once_flag once;
  std::call_once(once, [] { register_backend("cuda", [] { return make_cuda_backend(); }); });
}

void flashq_prefill_device(const AttentionConfig& config, const Half* q, const Half* k,
                           const Half* v, Half* o, int64_t batch, int64_t q_heads, int64_t kv_heads,
                           int64_t tokens, int head_dim, cudaStream_t stream,
                           AttentionStats* stats) {
  require_cuda_supports(config);
  // The Backend front's shape checks on views of the device pointers (never dereferenced here).
  const auto qv = ConstHalfTensor::contiguous(q, batch, q_heads, tokens, head_dim);
  const auto kv = ConstHalfTensor::contiguous(k, batch, kv_heads, tokens, head_dim);
  check_prefill_shapes(qv, kv, kv, HalfTensor::contiguous(o, batch, q_heads, tokens, head_dim));
  prefill_impl(config, q, k, v, o, batch, q_heads, kv_heads, tokens, head_dim, stream,
               thread_workspace(), stats);
}

void flashq_decode_device(const AttentionConfig& config, const Half* q, const KvCache& cache,
                          Half* o, int64_t q_heads, int64_t q_len, cudaStream_t stream,
                          AttentionStats* stats) {
  require_cuda_supports(config);
  const KvCacheSpec& spec = cache.spec();
  check_decode_shapes(config, cache,
                      ConstHalfTensor::contiguous(q, spec.batch, q_heads, q_len, spec.head_dim),
                      HalfTensor::contiguous(o, spec.batch, q_heads, q_len, spec.head_dim));
  decode_impl(config, q, as_cuda(cache), o, q_heads, q_len, stream, thread_workspace(), stats);
}

void flashq_cache_append_device(KvCache& cache, const Half* k, const Half* v, int64_t tokens,
                                cudaStream_t stream) {
  auto& c = const_cast<CudaKvCache&>(as_cuda(cache));
  const KvCacheSpec& spec = c.spec();
  check_append_shapes(
      spec, ConstHalfTensor::contiguous(k, spec.batch, spec.kv_heads, tokens, spec.head_dim),
      ConstHalfTensor::contiguous(v, spec.batch, spec.kv_heads, tokens, spec.head_dim));
  c.append_device(k, v, tokens, stream);
}

}  // namespace cuda
}  // namespace turbo
