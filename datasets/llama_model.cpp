#include "datasets/llama_model.h"

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/config.h"
#include "core/error.h"
#include "datasets/sha256.h"
#include "reference/reference.h"

namespace turbo {
namespace data {
namespace {

using RowMatF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

constexpr int64_t kOutBlock = 64;  // output features per parallel block of linear()

using ref::fix_eigen_blocking;  // fixed GEMM blocking: a capture is the same on every x86-64

std::vector<float> load(const GgufFile& g, const std::string& name, std::vector<int64_t> ne) {
  const GgufTensorInfo& t = g.tensor(name);
  TURBO_CHECK(
      t.ne == ne, "GGUF '" << g.path() << "': tensor '" << name << "' has shape [" << [&] {
        std::string s;
        for (int64_t d : t.ne) s += (s.empty() ? "" : ", ") + std::to_string(d);
        return s;
      }() << "] (ggml order), expected another for this model's metadata");
  return g.dequantize(name);
}

// Undo the converter's Q/K row permutation (see llama_model.h): rows of `heads` heads of D.
std::vector<float> unpermute_rows(const std::vector<float>& w, int heads, int D, int64_t in) {
  std::vector<float> out(w.size());
  for (int h = 0; h < heads; ++h)
    for (int j = 0; j < D / 2; ++j)
      for (int a = 0; a < 2; ++a) {
        const int64_t src = static_cast<int64_t>(h) * D + 2 * j + a;
        const int64_t dst = static_cast<int64_t>(h) * D + a * (D / 2) + j;
        std::memcpy(&out[static_cast<size_t>(dst * in)], &w[static_cast<size_t>(src * in)],
                    static_cast<size_t>(in) * sizeof(float));
      }
  return out;
}

void rms_norm(const float* x, int64_t n, int64_t d, const float* w, float eps, float* y) {
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < n; ++t) {
    const float* r = x + t * d;
    double ss = 0;
    for (int64_t c = 0; c < d; ++c) ss += static_cast<double>(r[c]) * r[c];
    const float scale = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(d) + eps));
    for (int64_t c = 0; c < d; ++c) y[t * d + c] = r[c] * scale * w[c];
  }
}

}  // namespace

void linear(const float* x, int64_t n, int64_t in, const float* w, int64_t out, float* y) {
  fix_eigen_blocking();
  const Eigen::Map<const RowMatF> X(x, n, in);
  const Eigen::Map<const RowMatF> W(w, out, in);
  Eigen::Map<RowMatF> Y(y, n, out);
  const int64_t blocks = (out + kOutBlock - 1) / kOutBlock;
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t o0 = b * kOutBlock, ob = std::min(kOutBlock, out - o0);
    Y.middleCols(o0, ob).noalias() = X * W.middleRows(o0, ob).transpose();
  }
}

void exact_attention(const ConstHalfTensor& q, const ConstHalfTensor& k, const ConstHalfTensor& v,
                     float tau, float* o) {
  TURBO_CHECK(q.batch() == 1 && k.batch() == 1 && v.batch() == 1, "exact_attention takes batch 1");
  const int64_t Hq = q.heads(), n = q.tokens(), D = q.dim();
  std::vector<double> out(static_cast<size_t>(Hq * n * D));
  ref::attention_fp64_decode(q, k, v, tau, out.data());
  for (int64_t h = 0; h < Hq; ++h)
    for (int64_t t = 0; t < n; ++t)
      for (int64_t c = 0; c < D; ++c)
        o[(t * Hq + h) * D + c] = static_cast<float>(out[static_cast<size_t>((h * n + t) * D + c)]);
}

// ---- the model ---------------------------------------------------------------------------------

LlamaModel::LlamaModel(const std::string& gguf_path) : path_(gguf_path) {
  const GgufFile g(gguf_path);
  const std::string arch = g.get_string("general.architecture");
  TURBO_CHECK(arch == "llama", "model '" << gguf_path << "' has architecture '" << arch
                                         << "'; the forward pass supports 'llama'");
  sha256_ = sha256_file(gguf_path);
  cfg_.name = g.has("general.name") ? g.get_string("general.name") : gguf_path;
  cfg_.n_layers = static_cast<int>(g.get_int("llama.block_count"));
  cfg_.n_heads = static_cast<int>(g.get_int("llama.attention.head_count"));
  cfg_.n_kv_heads = g.has("llama.attention.head_count_kv")
                        ? static_cast<int>(g.get_int("llama.attention.head_count_kv"))
                        : cfg_.n_heads;
  cfg_.d_model = static_cast<int>(g.get_int("llama.embedding_length"));
  cfg_.d_ff = static_cast<int>(g.get_int("llama.feed_forward_length"));
  cfg_.n_ctx = g.get_int("llama.context_length");
  cfg_.rope_theta = g.has("llama.rope.freq_base") ? g.get_float("llama.rope.freq_base") : 10000.0;
  cfg_.rms_eps = static_cast<float>(g.get_float("llama.attention.layer_norm_rms_epsilon"));
  TURBO_CHECK(cfg_.rope_theta > 0, "model '" << gguf_path << "': llama.rope.freq_base is "
                                             << cfg_.rope_theta << "; it must be positive");
  TURBO_CHECK(cfg_.rms_eps > 0, "model '" << gguf_path
                                          << "': llama.attention.layer_norm_rms_epsilon is "
                                          << cfg_.rms_eps << "; it must be positive");
  TURBO_CHECK(cfg_.n_layers > 0 && cfg_.n_heads > 0 && cfg_.n_kv_heads > 0 &&
                  cfg_.n_heads % cfg_.n_kv_heads == 0 && cfg_.d_model % cfg_.n_heads == 0,
              "model '" << gguf_path << "' has inconsistent head counts");
  cfg_.head_dim = cfg_.d_model / cfg_.n_heads;
  TURBO_CHECK(cfg_.head_dim % 2 == 0, "head_dim must be even for RoPE");
  if (g.has("llama.rope.dimension_count"))
    TURBO_CHECK(g.get_int("llama.rope.dimension_count") == cfg_.head_dim,
                "partial RoPE (rope.dimension_count != head_dim) is not supported");
  TURBO_CHECK(
      !g.has("llama.rope.scaling.type") || g.get_string("llama.rope.scaling.type") == "none",
      "RoPE scaling is not supported");
  tokenizer_ = std::make_unique<Tokenizer>(g);
  cfg_.vocab = tokenizer_->vocab_size();

  const int64_t d = cfg_.d_model, ff = cfg_.d_ff, D = cfg_.head_dim;
  const int64_t q_out = static_cast<int64_t>(cfg_.n_heads) * D,
                kv_out = static_cast<int64_t>(cfg_.n_kv_heads) * D;
  tok_embd_ = load(g, "token_embd.weight", {d, cfg_.vocab});
  output_norm_ = load(g, "output_norm.weight", {d});
  if (g.has_tensor("output.weight")) output_ = load(g, "output.weight", {d, cfg_.vocab});
  layers_.resize(static_cast<size_t>(cfg_.n_layers));
  for (int l = 0; l < cfg_.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    for (const char* b : {"attn_q.bias", "attn_k.bias", "attn_v.bias", "attn_output.bias"})
      TURBO_CHECK(!g.has_tensor(p + b),
                  "tensor '" << p << b << "': attention biases are not supported");
    Layer& L = layers_[static_cast<size_t>(l)];
    L.attn_norm = load(g, p + "attn_norm.weight", {d});
    L.wq = unpermute_rows(load(g, p + "attn_q.weight", {d, q_out}), cfg_.n_heads, cfg_.head_dim, d);
    L.wk = unpermute_rows(load(g, p + "attn_k.weight", {d, kv_out}), cfg_.n_kv_heads, cfg_.head_dim,
                          d);
    L.wv = load(g, p + "attn_v.weight", {d, kv_out});
    L.wo = load(g, p + "attn_output.weight", {q_out, d});
    L.ffn_norm = load(g, p + "ffn_norm.weight", {d});
    L.w_gate = load(g, p + "ffn_gate.weight", {d, ff});
    L.w_up = load(g, p + "ffn_up.weight", {d, ff});
    L.w_down = load(g, p + "ffn_down.weight", {ff, d});
  }
  inv_freq_.resize(static_cast<size_t>(D / 2));
  for (int64_t j = 0; j < D / 2; ++j)
    inv_freq_[static_cast<size_t>(j)] =
        std::pow(cfg_.rope_theta, -2.0 * static_cast<double>(j) / static_cast<double>(D));
}

void LlamaModel::forward(const int32_t* tokens, int64_t n, int64_t pos0, AttentionHook& attention,
                         std::vector<float>* logits, int n_layers_run, int64_t logits_begin) const {
  const int64_t d = cfg_.d_model, ff = cfg_.d_ff, D = cfg_.head_dim, Hq = cfg_.n_heads,
                Hkv = cfg_.n_kv_heads;
  if (n_layers_run < 0) n_layers_run = cfg_.n_layers;
  TURBO_CHECK(n_layers_run <= cfg_.n_layers,
              "asked for " << n_layers_run << " layers of " << cfg_.n_layers);
  TURBO_CHECK(!logits || n_layers_run == cfg_.n_layers, "logits need every layer");
  TURBO_CHECK(n > 0 && pos0 >= 0, "forward needs at least one token");
  TURBO_CHECK(logits_begin >= 0 && logits_begin <= n,
              "logits_begin " << logits_begin << " outside [0, " << n << "]");
  for (int64_t t = 0; t < n; ++t)
    TURBO_CHECK(
        tokens[t] >= 0 && tokens[t] < cfg_.vocab,
        "token id " << tokens[t] << " at position " << pos0 + t << " is outside the vocabulary");

  std::vector<float> x(static_cast<size_t>(n * d)), h(x.size()), tmp(x.size());
  for (int64_t t = 0; t < n; ++t)
    std::memcpy(&x[t * d], &tok_embd_[static_cast<size_t>(tokens[t]) * d], d * sizeof(float));
  std::vector<float> qf(static_cast<size_t>(n * Hq * D)), kf(static_cast<size_t>(n * Hkv * D)),
      vf(kf.size()), o(qf.size()), gate(static_cast<size_t>(n * ff)), up(gate.size());
  HostTensor<Half> q16(1, Hq, n, D), k16(1, Hkv, n, D), v16(1, Hkv, n, D);

  // RoPE angles of the chunk's positions, FP64.
  std::vector<double> cosv(static_cast<size_t>(n * D / 2)), sinv(cosv.size());
  for (int64_t t = 0; t < n; ++t)
    for (int64_t j = 0; j < D / 2; ++j) {
      const double a = static_cast<double>(pos0 + t) * inv_freq_[static_cast<size_t>(j)];
      cosv[t * (D / 2) + j] = std::cos(a);
      sinv[t * (D / 2) + j] = std::sin(a);
    }
  // Rotates (x_j, x_{j + D/2}) of each head in FP64 and rounds once to FP16 (rotate_half order).
  auto rope_to_half = [&](const std::vector<float>& src, int64_t heads, HostTensor<Half>& dst) {
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < n; ++t)
      for (int64_t hh = 0; hh < heads; ++hh) {
        const float* r = &src[(t * heads + hh) * D];
        Half* out = dst.view().row(0, hh, t);
        for (int64_t j = 0; j < D / 2; ++j) {
          const double c = cosv[t * (D / 2) + j], s = sinv[t * (D / 2) + j];
          const double a = r[j], b = r[j + D / 2];
          out[j] = Half{detail::double_to_half_bits_host(a * c - b * s)};
          out[j + D / 2] = Half{detail::double_to_half_bits_host(b * c + a * s)};
        }
      }
  };

  for (int l = 0; l < n_layers_run; ++l) {
    const Layer& L = layers_[static_cast<size_t>(l)];
    rms_norm(x.data(), n, d, L.attn_norm.data(), cfg_.rms_eps, h.data());
    matmul(h.data(), n, d, L.wq.data(), Hq * D, qf.data());
    matmul(h.data(), n, d, L.wk.data(), Hkv * D, kf.data());
    matmul(h.data(), n, d, L.wv.data(), Hkv * D, vf.data());
    rope_to_half(qf, Hq, q16);
    rope_to_half(kf, Hkv, k16);
    for (int64_t t = 0; t < n; ++t)
      for (int64_t hh = 0; hh < Hkv; ++hh)
        for (int64_t c = 0; c < D; ++c)
          v16.view().row(0, hh, t)[c] = to_half(vf[(t * Hkv + hh) * D + c]);
    attention.attend(l, pos0, q16, k16, v16, o.data());
    if (l == n_layers_run - 1 && !logits) break;  // only this layer's Q/K/V were wanted
    matmul(o.data(), n, Hq * D, L.wo.data(), d, tmp.data());
    for (size_t i = 0; i < x.size(); ++i) x[i] += tmp[i];
    rms_norm(x.data(), n, d, L.ffn_norm.data(), cfg_.rms_eps, h.data());
    matmul(h.data(), n, d, L.w_gate.data(), ff, gate.data());
    matmul(h.data(), n, d, L.w_up.data(), ff, up.data());
    for (size_t i = 0; i < gate.size(); ++i) {
      const float gv = gate[i];
      gate[i] = gv / (1.0f + std::exp(-gv)) * up[i];  // SiLU(gate) * up
    }
    matmul(gate.data(), n, ff, L.w_down.data(), d, tmp.data());
    for (size_t i = 0; i < x.size(); ++i) x[i] += tmp[i];
  }
  if (!logits) return;
  const int64_t rows = n - logits_begin;
  logits->resize(static_cast<size_t>(rows * cfg_.vocab));
  if (rows == 0) return;
  rms_norm(x.data() + logits_begin * d, rows, d, output_norm_.data(), cfg_.rms_eps, h.data());
  matmul(h.data(), rows, d, output_.empty() ? tok_embd_.data() : output_.data(), cfg_.vocab,
         logits->data());
}

void LlamaModel::matmul(const float* x, int64_t n, int64_t in, const float* w, int64_t out,
                        float* y) const {
  if (!emulate_q8_ || in % 32 != 0) {
    linear(x, n, in, w, out, y);
    return;
  }
  std::vector<float> xq(static_cast<size_t>(n * in));
  for (int64_t b = 0; b < n * in / 32; ++b) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b * 32 + j]));
    const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < 32; ++j)
      xq[static_cast<size_t>(b * 32 + j)] = std::round(x[b * 32 + j] * id) * d;
  }
  linear(xq.data(), n, in, w, out, y);
}

// ---- attention hooks -------------------------------------------------------------------------

namespace {

// Appends the rows of `add` [1, H, n, D] to `all` [1, H, L, D].
void append_tokens(HostTensor<Half>& all, const HostTensor<Half>& add) {
  if (all.storage.empty()) {
    all = add;
    return;
  }
  TURBO_CHECK(all.h == add.h && all.d == add.d, "K/V chunk shape changed between calls");
  HostTensor<Half> out(1, all.h, all.n + add.n, all.d);
  for (int64_t h = 0; h < all.h; ++h) {
    std::memcpy(out.view().row(0, h, 0), all.view().row(0, h, 0), all.n * all.d * sizeof(Half));
    std::memcpy(out.view().row(0, h, all.n), add.view().row(0, h, 0), add.n * add.d * sizeof(Half));
  }
  all = std::move(out);
}

void half_to_rows(const HostTensor<Half>& o16, float* o) {
  const int64_t H = o16.h, n = o16.n, D = o16.d;
  for (int64_t h = 0; h < H; ++h)
    for (int64_t t = 0; t < n; ++t)
      for (int64_t c = 0; c < D; ++c) o[(t * H + h) * D + c] = to_float(o16.view().row(0, h, t)[c]);
}

void check_layer(int layer, size_t n_layers) {
  TURBO_CHECK(layer >= 0 && static_cast<size_t>(layer) < n_layers,
              "layer " << layer << " out of range");
}

// SPEC "Conventions": a non-finite Q/K/V (e.g. an FP16 overflow) is an error naming the tensor,
// layer and head, before any backend sees it.
void check_qkv_finite(int layer, const HostTensor<Half>& q, const HostTensor<Half>& k,
                      const HostTensor<Half>& v) {
  const std::string what = "layer " + std::to_string(layer);
  check_finite(q.view(), ("Q (" + what + ")").c_str());
  check_finite(k.view(), ("K (" + what + ")").c_str());
  check_finite(v.view(), ("V (" + what + ")").c_str());
}

}  // namespace

void ExactAttentionHook::attend(int layer, int64_t pos0, const HostTensor<Half>& q,
                                const HostTensor<Half>& k, const HostTensor<Half>& v, float* o) {
  check_layer(layer, k_.size());
  HostTensor<Half>& K = k_[static_cast<size_t>(layer)];
  HostTensor<Half>& V = v_[static_cast<size_t>(layer)];
  TURBO_CHECK(pos0 == (K.storage.empty() ? 0 : K.n), "layer " << layer << ": chunk at position "
                                                              << pos0 << " does not follow the "
                                                              << K.n << " cached");
  check_qkv_finite(layer, q, k, v);
  append_tokens(K, k);
  append_tokens(V, v);
  exact_attention(q.view(), K.view(), V.view(), 0.0f, o);
}

BackendPrefillHook::BackendPrefillHook(Backend& backend, const AttentionConfig& config,
                                       int n_layers, int n_heads)
    : backend_(backend),
      config_(config),
      n_heads_(n_heads),
      stats_(static_cast<size_t>(n_layers) * n_heads) {
  const Status s = backend.supports(config);
  TURBO_CHECK(s.ok, "backend '" << backend.name() << "' cannot run " << config.to_string() << ": "
                                << s.message);
}

void BackendPrefillHook::attend(int layer, int64_t pos0, const HostTensor<Half>& q,
                                const HostTensor<Half>& k, const HostTensor<Half>& v, float* o) {
  TURBO_CHECK(pos0 == 0, "prefill attention runs the whole window in one call (got a chunk at "
                             << pos0 << ")");
  check_layer(layer, stats_.size() / static_cast<size_t>(n_heads_));
  check_qkv_finite(layer, q, k, v);
  HostTensor<Half> o16(1, q.h, q.n, q.d);
  backend_.attention_prefill(config_, q.view(), k.view(), v.view(), o16.view(),
                             &stats_[static_cast<size_t>(layer) * n_heads_]);
  half_to_rows(o16, o);
}

BackendDecodeHook::BackendDecodeHook(Backend& backend, const AttentionConfig& config, int n_layers,
                                     int n_heads, int n_kv_heads, int head_dim,
                                     std::vector<std::vector<int>> head_bits)
    : backend_(backend),
      config_(config),
      n_heads_(n_heads),
      n_kv_heads_(n_kv_heads),
      head_dim_(head_dim),
      head_bits_(std::move(head_bits)),
      caches_(static_cast<size_t>(n_layers)),
      stats_(static_cast<size_t>(n_layers) * n_heads) {
  const Status s = backend.supports(config);
  TURBO_CHECK(s.ok, "backend '" << backend.name() << "' cannot run " << config.to_string() << ": "
                                << s.message);
  TURBO_CHECK(head_bits_.empty() || head_bits_.size() == static_cast<size_t>(n_layers),
              "bit map has " << head_bits_.size() << " layers, the model " << n_layers);
  for (size_t l = 0; l < head_bits_.size(); ++l)
    TURBO_CHECK(head_bits_[l].size() == static_cast<size_t>(n_kv_heads),
                "bit map layer " << l << " has " << head_bits_[l].size() << " heads, the model "
                                 << n_kv_heads);
}

void BackendDecodeHook::attend(int layer, int64_t pos0, const HostTensor<Half>& q,
                               const HostTensor<Half>& k, const HostTensor<Half>& v, float* o) {
  check_layer(layer, caches_.size());
  check_qkv_finite(layer, q, k, v);
  std::unique_ptr<KvCache>& cache = caches_[static_cast<size_t>(layer)];
  if (!cache) {
    TURBO_CHECK(pos0 == 0, "decode: layer " << layer << " starts at position " << pos0);
    KvCacheSpec spec;
    spec.config = config_;
    spec.batch = 1;
    spec.kv_heads = n_kv_heads_;
    spec.head_dim = head_dim_;
    if (!head_bits_.empty()) spec.head_bits = head_bits_[static_cast<size_t>(layer)];
    cache = backend_.create_cache(spec);
  }
  TURBO_CHECK(cache->length() == pos0, "decode: layer " << layer << " holds " << cache->length()
                                                        << " tokens, chunk starts at " << pos0);
  backend_.cache_append(*cache, k.view(), v.view());
  HostTensor<Half> o16(1, q.h, q.n, q.d);
  backend_.attention_decode(config_, q.view(), *cache, o16.view(),
                            &stats_[static_cast<size_t>(layer) * n_heads_]);
  half_to_rows(o16, o);
}

KvBytes BackendDecodeHook::kv_bytes() const {
  KvBytes total;
  for (const auto& c : caches_) {
    if (c) total += c->bytes();
  }
  return total;
}

}  // namespace data
}  // namespace turbo
