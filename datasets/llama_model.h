// Decoder forward pass of two GGUF architectures on FP32 weights dequantized once, whose
// attention goes through an AttentionHook so that the ground truth, the FP16 floor, FlashQ or any
// baseline of any Backend runs in every layer:
//  - "llama": RMSNorm, RoPE, GQA, SwiGLU, tied or separate output (SmolLM2, Llama 2/3);
//  - "gemma3": the same skeleton plus the embedding scale sqrt(d_model), per-head RMSNorm of Q and
//    K, post-attention and post-FFN RMSNorms, GeGLU (GELU, tanh form), MQA with head_dim 256,
//    sliding-window attention (keys (p - W, p] for the query at p) on 5 of every 6 layers with
//    their own RoPE base, and an optional final logit soft-cap.
//
// Numerics: FP32 activations and matmuls (Eigen, output features split in fixed blocks across
// OpenMP threads, so results do not depend on the thread count); RMSNorm sums in FP64; RoPE
// rotates in FP64 and rounds Q and K once to FP16; V is rounded once to FP16. Attention sees
// FP16 Q, K, V [1, H, n, D] and returns FP32 O.
//
// Channel order of Q and K: the Hugging Face order. GGUF's llama converter permutes the rows of
// attn_q / attn_k so that llama.cpp rotates adjacent pairs (2j, 2j + 1); the loader undoes that
// permutation (GGUF row 2j + a of a head is HF row a * D/2 + j), and RoPE rotates the pairs
// (j, j + D/2) with angle pos * theta^(-2j/D), as HF's rotate_half does. Scores are unchanged
// by the permutation; per-channel statistics are reported in the order HF users know. Gemma 3
// GGUFs are not permuted (llama.cpp rotates them as HF does), so their rows are used as stored.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/host/progress.h"
#include "core/tensor.h"
#include "datasets/gguf.h"
#include "datasets/tokenizer.h"

namespace turbo {
namespace data {

struct LlamaConfig {
  std::string name;  // general.name
  std::string arch;  // general.architecture: "llama" or "gemma3"
  int n_layers = 0;
  int n_heads = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
  int d_model = 0;
  int d_ff = 0;
  int vocab = 0;
  int64_t n_ctx = 0;      // trained context length
  double rope_theta = 0;  // RoPE base of the full-attention layers
  float rms_eps = 0;
  // Per layer: the attention window W (keys (p - W, p] for the query at p; 0: full causal) and
  // the RoPE base. Gemma 3: W = attention.sliding_window and base rope.freq_base_swa (10000 when
  // the GGUF does not say, as llama.cpp and HF's rope_local_base_freq) on every layer l with
  // (l + 1) % 6 != 0; full attention at rope.freq_base on the others.
  std::vector<int64_t> layer_window;
  std::vector<double> layer_rope_theta;
  float embed_scale = 1.0f;    // token embeddings are multiplied by this (Gemma: sqrt(d_model))
  float logit_softcap = 0.0f;  // > 0: logits = c * tanh(logits / c)
};

// RoPE inverse frequencies theta^(-2j/D) / scale_j, j < D/2, in FP64. `freq_factors` (empty: all
// 1) are the per-pair divisors a GGUF carries as rope_freqs.weight: the converter's encoding of
// Llama-3 RoPE scaling (rope_scaling type llama3: factor, low / high frequency factor, original
// context); `linear` divides every frequency (rope.scaling.type linear).
std::vector<double> rope_inv_freq(double theta, int head_dim,
                                  const std::vector<float>& freq_factors, double linear);

// Provides the attention of every layer. Calls arrive in layer order for consecutive position
// ranges: a whole window at pos0 = 0, or chunks pos0 = 0, n0, n0 + n1, ...
class AttentionHook {
 public:
  virtual ~AttentionHook() = default;
  // q [1, Hq, n, D], k and v [1, Hkv, n, D]: FP16 post-RoPE rows of positions [pos0, pos0 + n).
  // Writes o [n, Hq * D] (token-major, heads concatenated): causal attention of these n queries
  // over every key [0, pos0 + n) of this layer seen so far; with window > 0 the query at p sees
  // only the keys (p - window, p] (sliding-window layers). A hook that cannot honour a window
  // that binds (pos0 + n > window) throws.
  virtual void attend(int layer, int64_t pos0, int64_t window, const HostTensor<Half>& q,
                      const HostTensor<Half>& k, const HostTensor<Half>& v, float* o) = 0;
};

class LlamaModel {
 public:
  // Reads the GGUF, checks it is a supported model ("llama" or "gemma3"; any other architecture,
  // tensor type or RoPE scaling is an error naming it), dequantizes every weight to FP32.
  explicit LlamaModel(const std::string& gguf_path);

  const LlamaConfig& config() const { return cfg_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  const std::string& path() const { return path_; }
  const std::string& sha256() const { return sha256_; }

  // Oracle diagnostics only: round the input rows of every matmul to 8-bit blocks of 32 values
  // (d = amax / 127, q = roundf(x / d)), as llama.cpp does for its Q4_1 / Q8_0 weight matmuls
  // (quantize_row_q8_1 / q8_0), to show what of the llama.cpp comparison's gap that explains.
  void set_emulate_q8_activations(bool on) { emulate_q8_ = on; }

  // Runs tokens [pos0, pos0 + n) through the first `n_layers_run` layers (all when < 0).
  // When `logits` is not null (and all layers run), fills it with FP32 logits
  // [n - logits_begin, vocab] of the chunk's rows [logits_begin, n).
  void forward(const int32_t* tokens, int64_t n, int64_t pos0, AttentionHook& attention,
               std::vector<float>* logits, int n_layers_run = -1, int64_t logits_begin = 0) const;

 private:
  struct Layer {
    std::vector<float> attn_norm, wq, wk, wv, wo, ffn_norm, w_gate, w_up, w_down;
    std::vector<float> q_norm, k_norm, post_attn_norm, post_ffn_norm;  // Gemma 3 only
    int rope = 0;                                                      // index into inv_freq_
  };
  std::string path_, sha256_;
  LlamaConfig cfg_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::vector<float> tok_embd_, output_norm_, output_;  // output_ empty: tied to tok_embd_
  std::vector<Layer> layers_;
  std::vector<std::vector<double>> inv_freq_;  // per distinct RoPE base: rope_inv_freq()
  bool gelu_ = false;                          // GeGLU (Gemma) instead of SwiGLU
  bool emulate_q8_ = false;
  void matmul(const float* x, int64_t n, int64_t in, const float* w, int64_t out, float* y) const;
};

// Y [n, out] = X [n, in] * W^T with W [out, in] row-major (a GGUF weight). Output features are
// cut into fixed blocks of 64 shared among OpenMP threads: the result is thread-count independent.
void linear(const float* x, int64_t n, int64_t in, const float* w, int64_t out, float* y);

// Exact softmax attention in FP64 from FP16 inputs (SPEC 9): turbo::ref::attention_fp64_decode,
// laid out token-major for the model. q [1, Hq, n, D] are positions [L - n, L) of the keys k, v [1,
// Hkv, L, D] (causal). o [n, Hq * D] FP32 (rounded from FP64). tau <= 0: default_tau(D)
// (core/config.h).
void exact_attention(const ConstHalfTensor& q, const ConstHalfTensor& k, const ConstHalfTensor& v,
                     float tau, float* o);

// Ground-truth attention for the model: keeps each layer's FP16 K/V so chunked calls see the
// whole history; a window is applied exactly (each query over its own keys).
class ExactAttentionHook : public AttentionHook {
 public:
  explicit ExactAttentionHook(int n_layers) : k_(n_layers), v_(n_layers) {}
  void attend(int layer, int64_t pos0, int64_t window, const HostTensor<Half>& q,
              const HostTensor<Half>& k, const HostTensor<Half>& v, float* o) override;

 private:
  std::vector<HostTensor<Half>> k_, v_;
};

// A backend's prefill attention over the whole window in one call (pos0 must be 0). The Backend
// interface has no attention window: a sliding-window layer is run only while its window does
// not bind (n <= window, where it equals full causal attention); beyond, attend() throws.
class BackendPrefillHook : public AttentionHook {
 public:
  BackendPrefillHook(Backend& backend, const AttentionConfig& config, int n_layers, int n_heads);
  void attend(int layer, int64_t pos0, int64_t window, const HostTensor<Half>& q,
              const HostTensor<Half>& k, const HostTensor<Half>& v, float* o) override;
  // Per layer, per query head (index layer * Hq + h).
  const std::vector<AttentionStats>& stats() const { return stats_; }

 private:
  Backend& backend_;
  AttentionConfig config_;
  int n_heads_;
  std::vector<AttentionStats> stats_;
};

// A backend's compressed KV cache, teacher-forced: every chunk is appended to the layer's cache,
// then attention_decode runs its q_len = n queries. head_bits[layer] is the per-kv-head bit
// width (empty: from the config). Windows as for BackendPrefillHook: the cache may hold at most
// `window` tokens of a sliding-window layer.
class BackendDecodeHook : public AttentionHook {
 public:
  BackendDecodeHook(Backend& backend, const AttentionConfig& config, int n_layers, int n_heads,
                    int n_kv_heads, int head_dim, std::vector<std::vector<int>> head_bits = {});
  void attend(int layer, int64_t pos0, int64_t window, const HostTensor<Half>& q,
              const HostTensor<Half>& k, const HostTensor<Half>& v, float* o) override;
  const std::vector<AttentionStats>& stats() const { return stats_; }
  // Bytes held by every layer's cache, summed.
  KvBytes kv_bytes() const;

 private:
  Backend& backend_;
  AttentionConfig config_;
  int n_heads_, n_kv_heads_, head_dim_;
  std::vector<std::vector<int>> head_bits_;
  std::vector<std::unique_ptr<KvCache>> caches_;
  std::vector<AttentionStats> stats_;
};

// Attends through `inner`, then advances `progress` by one step per call (one layer of one
// forward; the count runs on across forwards), labelled "<label>, position <pos0>, layer <l>".
class ProgressHook : public AttentionHook {
 public:
  ProgressHook(AttentionHook& inner, Progress& progress, std::string label)
      : inner_(inner), progress_(progress), label_(std::move(label)) {}
  void attend(int layer, int64_t pos0, int64_t window, const HostTensor<Half>& q,
              const HostTensor<Half>& k, const HostTensor<Half>& v, float* o) override;

 private:
  AttentionHook& inner_;
  Progress& progress_;
  std::string label_;
  int64_t done_ = 0;
};

}  // namespace data
}  // namespace turbo
