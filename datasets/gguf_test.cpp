#include "datasets/gguf.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/fp16.h"
#include "datasets/llama_model.h"
#include "datasets/model_path.h"
#include "datasets/sha256.h"

namespace turbo {
namespace data {
namespace {

// Builds small GGUF v3 images in memory.
class GgufBuilder {
 public:
  void kv_u32(const std::string& key, uint32_t v) {
    str(key);
    put<uint32_t>(4);
    put(v);
    ++n_kv_;
  }
  void kv_f32(const std::string& key, float v) {
    str(key);
    put<uint32_t>(6);
    put(v);
    ++n_kv_;
  }
  void kv_string(const std::string& key, const std::string& v) {
    str(key);
    put<uint32_t>(8);
    str(v);
    ++n_kv_;
  }
  // A tensor whose data is `data` (padded to 32 bytes in the data section).
  void tensor(const std::string& name, std::vector<uint64_t> ne, uint32_t type,
              std::vector<uint8_t> data) {
    while (data_.size() % 32) data_.push_back(0);  // align the start of each tensor
    str(name);
    put<uint32_t>(static_cast<uint32_t>(ne.size()));
    for (uint64_t d : ne) put(d);
    put(type);
    put<uint64_t>(data_.size());
    data_.insert(data_.end(), data.begin(), data.end());
    ++n_tensors_;
  }
  std::vector<uint8_t> build() const {
    std::vector<uint8_t> out = {'G', 'G', 'U', 'F'};
    auto app = [&](const void* p, size_t n) {
      out.insert(out.end(), static_cast<const uint8_t*>(p), static_cast<const uint8_t*>(p) + n);
    };
    const uint32_t version = 3;
    app(&version, 4);
    app(&n_tensors_, 8);
    app(&n_kv_, 8);
    out.insert(out.end(), kv_.begin(), kv_.end());
    out.insert(out.end(), infos_.begin(), infos_.end());
    while (out.size() % 32) out.push_back(0);
    out.insert(out.end(), data_.begin(), data_.end());
    return out;
  }
  size_t header_size() const { return 24 + kv_.size() + infos_.size(); }

 private:
  template <typename T>
  void put(T v) {
    std::vector<uint8_t>& dst = n_tensors_ || in_infos_ ? infos_ : kv_;
    const uint8_t* p = reinterpret_cast<const uint8_t*>(&v);
    dst.insert(dst.end(), p, p + sizeof(T));
  }
  void str(const std::string& s) {
    put<uint64_t>(s.size());
    std::vector<uint8_t>& dst = n_tensors_ || in_infos_ ? infos_ : kv_;
    dst.insert(dst.end(), s.begin(), s.end());
  }
  std::vector<uint8_t> kv_, infos_, data_;
  uint64_t n_kv_ = 0, n_tensors_ = 0;

 public:
  bool in_infos_ = false;  // set before the first tensor() call
};

std::vector<uint8_t> f32_bytes(const std::vector<float>& v) {
  std::vector<uint8_t> b(v.size() * 4);
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

// A Q4_1 block: d = 0.5, m = -1, codes 0..15 then 15..0.
std::vector<uint8_t> q4_1_block() {
  std::vector<uint8_t> b(20);
  const uint16_t d = float_to_half(0.5f).bits, m = float_to_half(-1.0f).bits;
  std::memcpy(b.data(), &d, 2);
  std::memcpy(b.data() + 2, &m, 2);
  for (int j = 0; j < 16; ++j) b[4 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  return b;
}

GgufBuilder valid_builder() {
  GgufBuilder g;
  g.kv_string("general.architecture", "llama");
  g.kv_u32("llama.block_count", 2);
  g.in_infos_ = true;
  g.tensor("norm", {4}, 0, f32_bytes({1.0f, -2.0f, 0.25f, 3.0f}));
  g.tensor("w", {32, 1}, 3, q4_1_block());
  return g;
}

TEST(Gguf, ParsesAValidImage) {
  const GgufFile f(valid_builder().build(), "valid");
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_int("llama.block_count"), 2);
  ASSERT_EQ(f.tensors().size(), 2u);
  EXPECT_EQ(f.dequantize("norm"), (std::vector<float>{1.0f, -2.0f, 0.25f, 3.0f}));
  const std::vector<float> w = f.dequantize("w");
  ASSERT_EQ(w.size(), 32u);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(w[j], 0.5f * j - 1.0f);
    EXPECT_EQ(w[j + 16], 0.5f * (15 - j) - 1.0f);
  }
  EXPECT_EQ(f.tensor("w").shape(), (std::vector<int64_t>{1, 32}));
  EXPECT_THROW(f.tensor("missing"), Error);
  EXPECT_THROW(f.get_string("llama.block_count"), Error);  // wrong type
}

void expect_error(std::vector<uint8_t> bytes, const std::string& fragment) {
  try {
    GgufFile f(std::move(bytes), "corrupt");
    for (const GgufTensorInfo& t : f.tensors()) f.dequantize(t.name);
    FAIL() << "expected an error containing '" << fragment << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(Gguf, WrongMagic) {
  std::vector<uint8_t> b = valid_builder().build();
  b[0] = 'X';
  expect_error(b, "not a GGUF file");
  expect_error({}, "not a GGUF file");
}

TEST(Gguf, EveryTruncationIsAnError) {
  const std::vector<uint8_t> b = valid_builder().build();
  for (size_t n = 0; n < b.size(); ++n) {
    std::vector<uint8_t> cut(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(n));
    EXPECT_THROW(
        {
          GgufFile f(std::move(cut), "truncated");
          for (const GgufTensorInfo& t : f.tensors()) f.dequantize(t.name);
        },
        Error)
        << "prefix of " << n << " bytes";
  }
}

TEST(Gguf, BadOffsetsAndCounts) {
  // Tensor offset beyond the file.
  GgufBuilder g;
  g.in_infos_ = true;
  g.tensor("w", {32, 4}, 3, q4_1_block());  // claims 4 blocks, holds 1
  expect_error(g.build(), "lies outside the file");

  // Misaligned offset: patch the offset field of the only tensor to 4.
  GgufBuilder h;
  h.in_infos_ = true;
  h.tensor("n", {4}, 0, f32_bytes({1, 2, 3, 4}));
  std::vector<uint8_t> b = h.build();
  const size_t off_pos = 24 + 8 + 1 + 4 + 8 + 4;  // counts, name, rank, ne[0], type
  b[off_pos] = 4;
  expect_error(b, "not aligned");

  // A huge tensor count.
  std::vector<uint8_t> c = valid_builder().build();
  const uint64_t huge = uint64_t{1} << 60;
  std::memcpy(c.data() + 8, &huge, 8);
  expect_error(c, "more than the file can hold");
}

TEST(Gguf, UnsupportedAndUnknownTypes) {
  GgufBuilder g;
  g.in_infos_ = true;
  g.tensor("k", {256}, 16, std::vector<uint8_t>(66, 0));  // IQ2_XXS: known, not dequantized here
  expect_error(g.build(), "IQ2_XXS");
  GgufBuilder h;
  h.in_infos_ = true;
  h.tensor("u", {4}, 77, std::vector<uint8_t>(16, 0));
  expect_error(h.build(), "unknown type 77");
  GgufBuilder r;
  r.in_infos_ = true;
  r.tensor("r", {16}, 3, std::vector<uint8_t>(20, 0));  // a Q4_1 row must be a multiple of 32
  expect_error(r.build(), "not a multiple of 32");
}

TEST(Gguf, MissingFileNamesFetchScript) {
  try {
    GgufFile f("/nonexistent/model.gguf");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("fetch_models.sh"), std::string::npos) << e.what();
  }
}

// Issue 10 defect 10: a NaN weight or an infinite float in the metadata is refused by name
// (before, ppl printed "perplexity -nan" and "top-1 100.00 %").
TEST(Gguf, NonFiniteWeightsAndMetadataAreRefused) {
  for (const float bad : {std::nanf(""), INFINITY, -INFINITY}) {
    GgufBuilder b;
    b.kv_f32("llama.rope.freq_base", bad);
    b.kv_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
    b.in_infos_ = true;
    std::vector<float> w = {1.0f, 2.0f, bad, 4.0f, 5.0f, 6.0f, 7.0f, 8.0f};
    std::vector<uint8_t> bytes(w.size() * 4);
    std::memcpy(bytes.data(), w.data(), bytes.size());
    b.tensor("blk.0.attn_norm.weight", {8}, 0, bytes);
    const GgufFile f(b.build(), "nan.gguf");
    EXPECT_FLOAT_EQ(static_cast<float>(f.get_float("llama.attention.layer_norm_rms_epsilon")),
                    1e-5f);
    try {
      f.get_float("llama.rope.freq_base");
      ADD_FAILURE() << "accepted " << bad;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("'llama.rope.freq_base'"), std::string::npos)
          << e.what();
      EXPECT_NE(std::string(e.what()).find("must be finite"), std::string::npos) << e.what();
    }
    try {
      f.dequantize("blk.0.attn_norm.weight");
      ADD_FAILURE() << "accepted a weight " << bad;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("'blk.0.attn_norm.weight'"), std::string::npos)
          << e.what();
      EXPECT_NE(std::string(e.what()).find("element 2"), std::string::npos) << e.what();
    }
  }
}

// Issue 10 defect 15: a directory as the model said "std::bad_alloc"; a FIFO blocked forever.
TEST(Gguf, DirectoryOrFifoAsModelIsNamed) {
  char tmpl[] = "/tmp/turbo_gguf_dir_XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  try {
    GgufFile f(dir);
    ADD_FAILURE() << "accepted a directory";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("is a directory"), std::string::npos) << e.what();
  }
  const std::string fifo = dir + "/model.gguf";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  try {
    GgufFile f(fifo);
    ADD_FAILURE() << "accepted a FIFO";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("FIFO"), std::string::npos) << e.what();
  }
}

// LlamaModel on a GGUF image written to a temporary file: the error names `fragment`.
void expect_model_error(const GgufBuilder& g, const std::string& fragment) {
  const std::string path = ::testing::TempDir() + "/model_error.gguf";
  const std::vector<uint8_t> bytes = g.build();
  FILE* f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  std::fwrite(bytes.data(), 1, bytes.size(), f);
  std::fclose(f);
  try {
    LlamaModel m(path);
    FAIL() << "expected an error naming '" << fragment << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

// The metadata of a one-head model with head_dim 512 (rope_freqs would hold 256 values).
GgufBuilder llama_header(const std::string& arch) {
  GgufBuilder g;
  g.kv_string("general.architecture", arch);
  for (const char* k : {"block_count", "attention.head_count", "attention.head_count_kv"})
    g.kv_u32(arch + "." + k, 1);
  for (const char* k : {"embedding_length", "feed_forward_length", "context_length"})
    g.kv_u32(arch + "." + k, 512);
  g.kv_u32(arch + ".attention.layer_norm_rms_epsilon", 0);
  return g;
}

TEST(ModelErrors, NameTheUnsupportedArchitecture) {
  expect_model_error(llama_header("qwen2"), "architecture 'qwen2'");
  expect_model_error(llama_header("qwen2"), "supported: llama, gemma3");
}

TEST(ModelErrors, NameTheUnsupportedRopeScaling) {
  GgufBuilder g = llama_header("llama");
  g.kv_string("llama.rope.scaling.type", "yarn");
  expect_model_error(g, "RoPE scaling type 'yarn' is not supported");
}

TEST(ModelErrors, NameTheTensorAndItsUnsupportedType) {
  GgufBuilder g = llama_header("llama");
  g.in_infos_ = true;
  g.tensor("rope_freqs.weight", {256}, 16, std::vector<uint8_t>(66, 0));  // IQ2_XXS
  expect_model_error(g, "tensor 'rope_freqs.weight' has type IQ2_XXS");
}

// Llama-3 RoPE scaling as a GGUF carries it (rope_freqs.weight: llama.cpp's converter turns
// rope_scaling {factor, low_freq_factor, high_freq_factor, original_max_position_embeddings}
// into one divisor per frequency) gives the inverse frequencies of Hugging Face's
// _compute_llama3_parameters, here for Llama 3.2's values.
TEST(RopeScaling, Llama3DivisorsGiveHuggingFaceFrequencies) {
  const double theta = 500000, factor = 32, low = 1, high = 4, old_ctx = 8192, pi = std::acos(-1.0);
  const int D = 64;
  std::vector<float> divisors;
  std::vector<double> hf;
  for (int j = 0; j < D / 2; ++j) {
    const double f = std::pow(theta, -2.0 * j / D), wavelen = 2 * pi / f;
    // The converter (convert_hf_to_gguf.py, LlamaModel.generate_extra_tensors).
    double div;
    if (wavelen < old_ctx / high) {
      div = 1;
    } else if (wavelen > old_ctx / low) {
      div = factor;
    } else {
      const double smooth = (old_ctx / wavelen - low) / (high - low);
      div = 1 / ((1 - smooth) / factor + smooth);
    }
    divisors.push_back(static_cast<float>(div));
    // transformers' modeling_rope_utils._compute_llama3_parameters.
    const double scaled = wavelen > old_ctx / low ? f / factor : f;
    const double smooth = (old_ctx / wavelen - low) / (high - low);
    const bool medium = !(wavelen < old_ctx / high) && !(wavelen > old_ctx / low);
    hf.push_back(medium ? (1 - smooth) * scaled / factor + smooth * scaled : scaled);
  }
  const std::vector<double> ours = rope_inv_freq(theta, D, divisors, 1.0);
  ASSERT_EQ(ours.size(), hf.size());
  int changed = 0;
  for (size_t j = 0; j < hf.size(); ++j) {
    EXPECT_NEAR(ours[j] / hf[j], 1.0, 1e-7) << "frequency " << j;  // divisors are FP32
    changed += std::fabs(hf[j] / std::pow(theta, -2.0 * j / D) - 1) > 1e-3;
  }
  EXPECT_GT(changed, 8);  // the scaling changes many frequencies: not a vacuous pass
  EXPECT_THROW(rope_inv_freq(theta, D, std::vector<float>(D / 2, -1.0f), 1.0), Error);
  EXPECT_THROW(rope_inv_freq(theta, D, std::vector<float>(3, 1.0f), 1.0), Error);
}

// The real model fetched by datasets/fetch_models.sh (CI runs it before the tests).
TEST(GgufModel, SmolLM2Metadata) {
  const std::string path = default_model_path();
  ASSERT_EQ(sha256_file(path), kDefaultModelSha256) << "run datasets/fetch_models.sh";
  const GgufFile f(path);
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_int("llama.block_count"), 30);
  EXPECT_EQ(f.get_int("llama.attention.head_count"), 9);
  EXPECT_EQ(f.get_int("llama.attention.head_count_kv"), 3);
  EXPECT_EQ(f.get_int("llama.embedding_length"), 576);
  EXPECT_EQ(f.tensors().size(), 272u);
  EXPECT_EQ(ggml_type_name(f.tensor("token_embd.weight").type), "Q8_0");
  EXPECT_EQ(ggml_type_name(f.tensor("blk.0.attn_q.weight").type), "Q4_1");
  for (const GgufTensorInfo& t : f.tensors()) {
    ASSERT_TRUE(ggml_type_supported(t.type)) << t.name;
    const std::vector<float> v = f.dequantize(t.name);
    double norm = 0;
    for (float x : v) {
      ASSERT_TRUE(std::isfinite(x)) << t.name;
      norm += static_cast<double>(x) * x;
    }
    EXPECT_GT(norm, 0.0) << t.name;
  }
}

TEST(GgufModel, Gemma3Metadata) {
  const std::string path = gemma_model_path();
  ASSERT_EQ(sha256_file(path), kGemmaModelSha256) << "run datasets/fetch_models.sh";
  const GgufFile f(path);
  EXPECT_EQ(f.get_string("general.architecture"), "gemma3");
  EXPECT_EQ(f.get_int("gemma3.block_count"), 18);
  EXPECT_EQ(f.get_int("gemma3.attention.head_count"), 4);
  EXPECT_EQ(f.get_int("gemma3.attention.head_count_kv"), 1);
  EXPECT_EQ(f.get_int("gemma3.attention.key_length"), 256);
  EXPECT_EQ(f.get_int("gemma3.attention.sliding_window"), 512);
  EXPECT_EQ(f.tensors().size(), 236u);
  EXPECT_EQ(ggml_type_name(f.tensor("blk.0.attn_output.weight").type), "Q4_K");
  EXPECT_EQ(ggml_type_name(f.tensor("blk.0.ffn_down.weight").type), "Q6_K");
  for (const GgufTensorInfo& t : f.tensors()) ASSERT_TRUE(ggml_type_supported(t.type)) << t.name;
}

}  // namespace
}  // namespace data
}  // namespace turbo
