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

std::vector<double> rope_inv_freq(double theta, int head_dim,
                                  const std::vector<float>& freq_factors, double linear) {
  TURBO_CHECK(theta > 0 && std::isfinite(theta), "RoPE base " << theta << " is not positive");
  TURBO_CHECK(linear > 0 && std::isfinite(linear),
              "RoPE scaling factor " << linear << " is not positive");
  TURBO_CHECK(freq_factors.empty() || freq_factors.size() == static_cast<size_t>(head_dim / 2),
              "rope_freqs has " << freq_factors.size()
                                << " values, expected head_dim / 2 = " << head_dim / 2);
  std::vector<double> f(static_cast<size_t>(head_dim / 2));
  for (size_t j = 0; j < f.size(); ++j) {
    const double div = freq_factors.empty() ? 1.0 : static_cast<double>(freq_factors[j]);
    TURBO_CHECK(div > 0 && std::isfinite(div),
                "rope_freqs value " << j << " (" << div << ") is not positive");
    f[j] = std::pow(theta, -2.0 * static_cast<double>(j) / static_cast<double>(head_dim)) /
           (div * linear);
  }
  return f;
}

LlamaModel::LlamaModel(const std::string& gguf_path) : path_(gguf_path) {
  const GgufFile g(gguf_path);
  const std::string arch = g.get_string("general.architecture");
  TURBO_CHECK(arch == "llama" || arch == "gemma3",
              "model '" << gguf_path << "' has architecture '" << arch
                        << "', which the forward pass does not support; supported: llama, gemma3");
  const bool gemma = arch == "gemma3";
  const std::string a = arch + ".";
  sha256_ = sha256_file(gguf_path);
  cfg_.name = g.has("general.name") ? g.get_string("general.name") : gguf_path;
  cfg_.arch = arch;
  cfg_.n_layers = static_cast<int>(g.get_int(a + "block_count"));
  cfg_.n_heads = static_cast<int>(g.get_int(a + "attention.head_count"));
  cfg_.n_kv_heads = g.has(a + "attention.head_count_kv")
                        ? static_cast<int>(g.get_int(a + "attention.head_count_kv"))
                        : cfg_.n_heads;
  cfg_.d_model = static_cast<int>(g.get_int(a + "embedding_length"));
  cfg_.d_ff = static_cast<int>(g.get_int(a + "feed_forward_length"));
  cfg_.n_ctx = g.get_int(a + "context_length");
  cfg_.rope_theta = g.has(a + "rope.freq_base") ? g.get_float(a + "rope.freq_base") : 10000.0;
  cfg_.rms_eps = static_cast<float>(g.get_float(a + "attention.layer_norm_rms_epsilon"));
  TURBO_CHECK(cfg_.n_layers > 0 && cfg_.n_heads > 0 && cfg_.n_kv_heads > 0 &&
                  cfg_.n_heads % cfg_.n_kv_heads == 0 && cfg_.d_model > 0 && cfg_.d_ff > 0,
              "model '" << gguf_path << "' has inconsistent head counts");
  // head_dim: attention.key_length when given (Gemma 3: 256, not d_model / n_heads = 160).
  if (g.has(a + "attention.key_length")) {
    cfg_.head_dim = static_cast<int>(g.get_int(a + "attention.key_length"));
    TURBO_CHECK(!g.has(a + "attention.value_length") ||
                    g.get_int(a + "attention.value_length") == cfg_.head_dim,
                "model '" << gguf_path << "': value_length != key_length is not supported");
  } else {
    TURBO_CHECK(cfg_.d_model % cfg_.n_heads == 0,
                "model '" << gguf_path << "': d_model is not a multiple of the head count");
    cfg_.head_dim = cfg_.d_model / cfg_.n_heads;
  }
  TURBO_CHECK(cfg_.head_dim > 0 && cfg_.head_dim % 2 == 0, "head_dim must be even for RoPE");
  if (g.has(a + "rope.dimension_count"))
    TURBO_CHECK(g.get_int(a + "rope.dimension_count") == cfg_.head_dim,
                "partial RoPE (rope.dimension_count != head_dim) is not supported");

  // RoPE scaling: linear divides every frequency; Llama-3 scaling arrives as rope_freqs.weight
  // (the converter's per-pair divisors; llama.cpp writes no scaling type for it).
  double linear = 1.0;
  if (g.has(a + "rope.scaling.type")) {
    const std::string type = g.get_string(a + "rope.scaling.type");
    if (type == "linear") {
      linear = g.get_float(a + "rope.scaling.factor");
      TURBO_CHECK(linear > 0, "model '" << gguf_path << "': " << a << "rope.scaling.factor is "
                                        << linear << "; it must be positive");
    } else {
      TURBO_CHECK(type == "none", "model '" << gguf_path << "': RoPE scaling type '" << type
                                            << "' is not supported; supported: none, linear, "
                                               "llama3 (as the rope_freqs.weight tensor)");
    }
  }
  std::vector<float> freq_factors;
  if (g.has_tensor("rope_freqs.weight"))
    freq_factors = load(g, "rope_freqs.weight", {cfg_.head_dim / 2});
  if (gemma) {
    // Gemma 3 27B scales queries by 1 / sqrt(d_model / n_heads) instead of 1 / sqrt(head_dim)
    // (query_pre_attn_scalar; llama.cpp tells the sizes apart by their 62 layers).
    TURBO_CHECK(cfg_.n_layers != 62, "model '" << gguf_path
                                               << "': Gemma 3 27B's query scaling "
                                                  "(query_pre_attn_scalar = d_model / n_heads) "
                                                  "is not supported");
    const int64_t window = g.get_int(a + "attention.sliding_window");
    TURBO_CHECK(window > 0, "model '" << gguf_path << "': sliding_window " << window);
    const double theta_swa =
        g.has(a + "rope.freq_base_swa") ? g.get_float(a + "rope.freq_base_swa") : 10000.0;
    TURBO_CHECK(theta_swa > 0, "model '" << gguf_path << "': " << a << "rope.freq_base_swa is "
                                         << theta_swa << "; it must be positive");
    for (int l = 0; l < cfg_.n_layers; ++l) {
      const bool global = (l + 1) % 6 == 0;
      cfg_.layer_window.push_back(global ? 0 : window);
      cfg_.layer_rope_theta.push_back(global ? cfg_.rope_theta : theta_swa);
    }
    cfg_.embed_scale = static_cast<float>(std::sqrt(static_cast<double>(cfg_.d_model)));
    if (g.has(a + "final_logit_softcapping"))
      cfg_.logit_softcap = static_cast<float>(g.get_float(a + "final_logit_softcapping"));
    gelu_ = true;
  } else {
    cfg_.layer_window.assign(static_cast<size_t>(cfg_.n_layers), 0);
    cfg_.layer_rope_theta.assign(static_cast<size_t>(cfg_.n_layers), cfg_.rope_theta);
  }
  TURBO_CHECK(cfg_.rope_theta > 0, "model '" << gguf_path << "': " << a << "rope.freq_base is "
                                             << cfg_.rope_theta << "; it must be positive");
  TURBO_CHECK(cfg_.rms_eps > 0, "model '" << gguf_path << "': " << a
                                          << "attention.layer_norm_rms_epsilon is " << cfg_.rms_eps
                                          << "; it must be positive");
  tokenizer_ = std::make_unique<Tokenizer>(g);
  cfg_.vocab = tokenizer_->vocab_size();

  const int64_t d = cfg_.d_model, ff = cfg_.d_ff, D = cfg_.head_dim;
  const int64_t q_out = static_cast<int64_t>(cfg_.n_heads) * D,
                kv_out = static_cast<int64_t>(cfg_.n_kv_heads) * D;
  tok_embd_ = load(g, "token_embd.weight", {d, cfg_.vocab});
  output_norm_ = load(g, "output_norm.weight", {d});
  if (g.has_tensor("output.weight")) output_ = load(g, "output.weight", {d, cfg_.vocab});
  // Q/K rows: llama GGUFs are permuted for adjacent-pair RoPE (undone here); Gemma's are not.
  auto qk = [&](const std::string& name, int heads, int64_t out) {
    std::vector<float> w = load(g, name, {d, out});
    return gemma ? w : unpermute_rows(w, heads, cfg_.head_dim, d);
  };
  layers_.resize(static_cast<size_t>(cfg_.n_layers));
  for (int l = 0; l < cfg_.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    for (const char* b : {"attn_q.bias", "attn_k.bias", "attn_v.bias", "attn_output.bias"})
      TURBO_CHECK(!g.has_tensor(p + b),
                  "tensor '" << p << b << "': attention biases are not supported");
    Layer& L = layers_[static_cast<size_t>(l)];
    L.attn_norm = load(g, p + "attn_norm.weight", {d});
    L.wq = qk(p + "attn_q.weight", cfg_.n_heads, q_out);
    L.wk = qk(p + "attn_k.weight", cfg_.n_kv_heads, kv_out);
    L.wv = load(g, p + "attn_v.weight", {d, kv_out});
    L.wo = load(g, p + "attn_output.weight", {q_out, d});
    L.ffn_norm = load(g, p + "ffn_norm.weight", {d});
    L.w_gate = load(g, p + "ffn_gate.weight", {d, ff});
    L.w_up = load(g, p + "ffn_up.weight", {d, ff});
    L.w_down = load(g, p + "ffn_down.weight", {ff, d});
    if (gemma) {
      // Gemma's RMSNorm multiplies by (1 + w); llama.cpp's converter stores 1 + w in the GGUF
      // (every *norm.weight), so the stored values are the multipliers, as for llama.
      L.q_norm = load(g, p + "attn_q_norm.weight", {D});
      L.k_norm = load(g, p + "attn_k_norm.weight", {D});
      L.post_attn_norm = load(g, p + "post_attention_norm.weight", {d});
      L.post_ffn_norm = load(g, p + "post_ffw_norm.weight", {d});
    }
    const double theta = cfg_.layer_rope_theta[static_cast<size_t>(l)];
    // HF applies Llama-3 / linear RoPE scaling to the full-attention layers' base only.
    const bool scaled = cfg_.layer_window[static_cast<size_t>(l)] == 0;
    std::vector<double> f = rope_inv_freq(
        theta, cfg_.head_dim, scaled ? freq_factors : std::vector<float>{}, scaled ? linear : 1.0);
    auto it = std::find(inv_freq_.begin(), inv_freq_.end(), f);
    L.rope = static_cast<int>(it - inv_freq_.begin());
    if (it == inv_freq_.end()) inv_freq_.push_back(std::move(f));
  }
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
  for (int64_t t = 0; t < n; ++t) {
    const float* e = &tok_embd_[static_cast<size_t>(tokens[t]) * d];
    for (int64_t c = 0; c < d; ++c)
      x[t * d + c] = cfg_.embed_scale == 1.0f ? e[c] : e[c] * cfg_.embed_scale;
  }
  std::vector<float> qf(static_cast<size_t>(n * Hq * D)), kf(static_cast<size_t>(n * Hkv * D)),
      vf(kf.size()), o(qf.size()), gate(static_cast<size_t>(n * ff)), up(gate.size());
  HostTensor<Half> q16(1, Hq, n, D), k16(1, Hkv, n, D), v16(1, Hkv, n, D);

  // RoPE angles of the chunk's positions for each RoPE base, FP64.
  std::vector<std::vector<double>> cosv(inv_freq_.size()), sinv(inv_freq_.size());
  for (size_t r = 0; r < inv_freq_.size(); ++r) {
    cosv[r].resize(static_cast<size_t>(n * D / 2));
    sinv[r].resize(cosv[r].size());
    for (int64_t t = 0; t < n; ++t)
      for (int64_t j = 0; j < D / 2; ++j) {
        const double ang = static_cast<double>(pos0 + t) * inv_freq_[r][static_cast<size_t>(j)];
        cosv[r][t * (D / 2) + j] = std::cos(ang);
        sinv[r][t * (D / 2) + j] = std::sin(ang);
      }
  }
  // Rotates (x_j, x_{j + D/2}) of each head in FP64 and rounds once to FP16 (rotate_half order).
  auto rope_to_half = [&](const std::vector<float>& src, int64_t heads, int rope,
                          HostTensor<Half>& dst) {
    const std::vector<double>& cs = cosv[static_cast<size_t>(rope)];
    const std::vector<double>& sn = sinv[static_cast<size_t>(rope)];
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < n; ++t)
      for (int64_t hh = 0; hh < heads; ++hh) {
        const float* r = &src[(t * heads + hh) * D];
        Half* out = dst.view().row(0, hh, t);
        for (int64_t j = 0; j < D / 2; ++j) {
          const double c = cs[t * (D / 2) + j], s = sn[t * (D / 2) + j];
          const double a = r[j], b = r[j + D / 2];
          out[j] = Half{detail::double_to_half_bits_host(a * c - b * s)};
          out[j + D / 2] = Half{detail::double_to_half_bits_host(b * c + a * s)};
        }
      }
  };
  // y = RMSNorm(y) * w in place (Gemma's per-head Q/K norms and post-norms).
  auto norm_in_place = [&](std::vector<float>& y, int64_t rows, int64_t width,
                           const std::vector<float>& w) {
    std::vector<float> in(y);
    rms_norm(in.data(), rows, width, w.data(), cfg_.rms_eps, y.data());
  };

  for (int l = 0; l < n_layers_run; ++l) {
    const Layer& L = layers_[static_cast<size_t>(l)];
    rms_norm(x.data(), n, d, L.attn_norm.data(), cfg_.rms_eps, h.data());
    matmul(h.data(), n, d, L.wq.data(), Hq * D, qf.data());
    matmul(h.data(), n, d, L.wk.data(), Hkv * D, kf.data());
    matmul(h.data(), n, d, L.wv.data(), Hkv * D, vf.data());
    if (!L.q_norm.empty()) {
      norm_in_place(qf, n * Hq, D, L.q_norm);
      norm_in_place(kf, n * Hkv, D, L.k_norm);
    }
    rope_to_half(qf, Hq, L.rope, q16);
    rope_to_half(kf, Hkv, L.rope, k16);
    for (int64_t t = 0; t < n; ++t)
      for (int64_t hh = 0; hh < Hkv; ++hh)
        for (int64_t c = 0; c < D; ++c)
          v16.view().row(0, hh, t)[c] = to_half(vf[(t * Hkv + hh) * D + c]);
    attention.attend(l, pos0, cfg_.layer_window[static_cast<size_t>(l)], q16, k16, v16, o.data());
    if (l == n_layers_run - 1 && !logits) break;  // only this layer's Q/K/V were wanted
    matmul(o.data(), n, Hq * D, L.wo.data(), d, tmp.data());
    if (!L.post_attn_norm.empty()) norm_in_place(tmp, n, d, L.post_attn_norm);
    for (size_t i = 0; i < x.size(); ++i) x[i] += tmp[i];
    rms_norm(x.data(), n, d, L.ffn_norm.data(), cfg_.rms_eps, h.data());
    matmul(h.data(), n, d, L.w_gate.data(), ff, gate.data());
    matmul(h.data(), n, d, L.w_up.data(), ff, up.data());
    if (gelu_) {
      // GELU, tanh form (HF gelu_pytorch_tanh), in FP64, rounded once: GELU(gate) * up.
      const double k0 = std::sqrt(2.0 / 3.14159265358979323846);
      for (size_t i = 0; i < gate.size(); ++i) {
        const double gv = gate[i];
        const double act = 0.5 * gv * (1.0 + std::tanh(k0 * (gv + 0.044715 * gv * gv * gv)));
        gate[i] = static_cast<float>(act) * up[i];
      }
    } else {
      for (size_t i = 0; i < gate.size(); ++i) {
        const float gv = gate[i];
        gate[i] = gv / (1.0f + std::exp(-gv)) * up[i];  // SiLU(gate) * up
      }
    }
    matmul(gate.data(), n, ff, L.w_down.data(), d, tmp.data());
    if (!L.post_ffn_norm.empty()) norm_in_place(tmp, n, d, L.post_ffn_norm);
    for (size_t i = 0; i < x.size(); ++i) x[i] += tmp[i];
  }
  if (!logits) return;
  const int64_t rows = n - logits_begin;
  logits->resize(static_cast<size_t>(rows * cfg_.vocab));
  if (rows == 0) return;
  rms_norm(x.data() + logits_begin * d, rows, d, output_norm_.data(), cfg_.rms_eps, h.data());
  matmul(h.data(), rows, d, output_.empty() ? tok_embd_.data() : output_.data(), cfg_.vocab,
         logits->data());
  if (cfg_.logit_softcap > 0.0f) {
    const double cap = cfg_.logit_softcap;
    for (float& v : *logits) v = static_cast<float>(cap * std::tanh(static_cast<double>(v) / cap));
  }
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

// The Backend interface has no attention window: refuse a window that binds.
void check_window_unbound(int layer, int64_t window, int64_t context) {
  TURBO_CHECK(window <= 0 || context <= window,
              "layer " << layer << " attends over a sliding window of " << window
                       << " keys, but the context reaches " << context
                       << " tokens; the backend interface has no window, so a method runs on a "
                          "sliding-window layer only while the window does not bind (at most "
                       << window << " tokens, e.g. --max-tokens " << window << ")");
}

// Tokens [begin, end) of a [1, H, L, D] view.
ConstHalfTensor token_slice(const ConstHalfTensor& t, int64_t begin, int64_t end) {
  ConstHalfTensor s = t;
  s.data = t.row(0, 0, begin);
  s.shape[2] = end - begin;
  return s;
}

}  // namespace

void ExactAttentionHook::attend(int layer, int64_t pos0, int64_t window, const HostTensor<Half>& q,
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
  const int64_t n = q.n, L = pos0 + n;
  if (window <= 0 || L <= window) {
    exact_attention(q.view(), K.view(), V.view(), 0.0f, o);
    return;
  }
  // Queries at p < window see keys [0, p]: one causal call; each later query p sees exactly
  // (p - window, p]: one call each.
  const int64_t head = std::max<int64_t>(0, std::min(n, window - pos0));
  const int64_t row = q.h * q.d;
  if (head > 0)
    exact_attention(token_slice(q.view(), 0, head), token_slice(K.view(), 0, pos0 + head),
                    token_slice(V.view(), 0, pos0 + head), 0.0f, o);
#pragma omp parallel for schedule(dynamic)
  for (int64_t t = head; t < n; ++t) {
    const int64_t p = pos0 + t;
    exact_attention(token_slice(q.view(), t, t + 1), token_slice(K.view(), p - window + 1, p + 1),
                    token_slice(V.view(), p - window + 1, p + 1), 0.0f, o + t * row);
  }
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

void BackendPrefillHook::attend(int layer, int64_t pos0, int64_t window, const HostTensor<Half>& q,
                                const HostTensor<Half>& k, const HostTensor<Half>& v, float* o) {
  TURBO_CHECK(pos0 == 0, "prefill attention runs the whole window in one call (got a chunk at "
                             << pos0 << ")");
  check_window_unbound(layer, window, q.n);
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

void BackendDecodeHook::attend(int layer, int64_t pos0, int64_t window, const HostTensor<Half>& q,
                               const HostTensor<Half>& k, const HostTensor<Half>& v, float* o) {
  check_layer(layer, caches_.size());
  check_window_unbound(layer, window, pos0 + q.n);
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

void ProgressHook::attend(int layer, int64_t pos0, int64_t window, const HostTensor<Half>& q,
                          const HostTensor<Half>& k, const HostTensor<Half>& v, float* o) {
  inner_.attend(layer, pos0, window, q, k, v, o);
  progress_.update(
      ++done_, label_ + ", position " + std::to_string(pos0) + ", layer " + std::to_string(layer));
}

}  // namespace data
}  // namespace turbo
