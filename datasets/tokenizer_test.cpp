#include "datasets/tokenizer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <limits>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "datasets/gguf.h"
#include "datasets/model_path.h"

namespace turbo {
namespace data {
namespace {

// The obvious BPE, written independently of the tokenizer: after every merge, rescan all
// adjacent pairs and merge the lowest-ranked one (leftmost on ties). Quadratic; the reference.
class NaiveBpe {
 public:
  explicit NaiveBpe(const GgufFile& g) {
    const auto& merges = g.get_string_array("tokenizer.ggml.merges");
    for (size_t i = 0; i < merges.size(); ++i) rank_.emplace(merges[i], static_cast<int>(i));
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable =
          (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const uint32_t cp = printable ? static_cast<uint32_t>(b) : static_cast<uint32_t>(256 + n++);
      std::string s;
      if (cp < 0x80) {
        s += static_cast<char>(cp);
      } else {
        s += static_cast<char>(0xC0 | (cp >> 6));
        s += static_cast<char>(0x80 | (cp & 0x3F));
      }
      alphabet_[b] = s;
    }
  }
  std::vector<std::string> symbols(const std::string& word) const {
    std::vector<std::string> sym;
    for (unsigned char b : word) sym.push_back(alphabet_[b]);
    while (sym.size() > 1) {
      int best = std::numeric_limits<int>::max();
      size_t at = 0;
      for (size_t k = 0; k + 1 < sym.size(); ++k) {
        auto it = rank_.find(sym[k] + " " + sym[k + 1]);
        if (it != rank_.end() && it->second < best) {
          best = it->second;
          at = k;
        }
      }
      if (best == std::numeric_limits<int>::max()) break;
      sym[at] += sym[at + 1];
      sym.erase(sym.begin() + static_cast<std::ptrdiff_t>(at) + 1);
    }
    return sym;
  }

 private:
  std::unordered_map<std::string, int> rank_;
  std::string alphabet_[256];
};

class TokenizerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    gguf_ = new GgufFile(default_model_path());
    tok_ = new Tokenizer(*gguf_);
  }
  static void TearDownTestSuite() {
    delete tok_;
    delete gguf_;
  }
  static GgufFile* gguf_;
  static Tokenizer* tok_;
};
GgufFile* TokenizerTest::gguf_ = nullptr;
Tokenizer* TokenizerTest::tok_ = nullptr;

// The heap-ordered merge gives exactly the rescan's tokens, on words built to have many equal
// ranks and overlapping candidates (repeated letters and syllables) and on random ones.
TEST_F(TokenizerTest, HeapBpeMatchesTheRescanReference) {
  const NaiveBpe naive(*gguf_);
  std::vector<std::string> words = {"a",
                                    "aaaa",
                                    "aaaaaaaaaaaaaaa",
                                    "banana",
                                    "abababab",
                                    "internationalization",
                                    "lllllll",
                                    "ThisIsACamelCaseIdentifierName",
                                    "zzzzzyzzzz"};
  std::mt19937 rng(7);
  const std::string letters = "aeioustrnlkbz";
  for (int w = 0; w < 300; ++w) {
    std::string s;
    const int len = 1 + static_cast<int>(rng() % 40);
    for (int i = 0; i < len; ++i) s += letters[rng() % letters.size()];
    words.push_back(s);
  }
  for (const std::string& w : words) {
    std::vector<int32_t> expect;
    for (const std::string& sym : naive.symbols(w)) {
      const auto& toks = gguf_->get_string_array("tokenizer.ggml.tokens");
      const auto it = std::find(toks.begin(), toks.end(), sym);
      ASSERT_NE(it, toks.end()) << sym;
      expect.push_back(static_cast<int32_t>(it - toks.begin()));
    }
    EXPECT_EQ(tok_->encode(w), expect) << w;
  }
}

// Issue 10 defect 11: a 40k-character word took 47 s (quadratic BPE). A hang guard, not a
// benchmark: the bound is two orders of magnitude above what the heap needs.
TEST_F(TokenizerTest, LongWordIsNotQuadratic) {
  std::string word;
  std::mt19937 rng(3);
  for (int i = 0; i < 40000; ++i) word += static_cast<char>('a' + rng() % 26);
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<int32_t> ids = tok_->encode(word);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(s, 5.0);
  EXPECT_EQ(tok_->decode(ids), word);
}

// Issue 10 defect 11: --max-tokens 16 tokenized the whole text. With a limit the result is a
// prefix of the full encoding, and longer than the limit exactly when the full one is.
TEST_F(TokenizerTest, LimitedEncodingIsAPrefix) {
  std::string text;
  for (int i = 0; i < 200; ++i)
    text += "Word " + std::to_string(i) + " of a sentence, with <|im_start|>special tokens. ";
  const std::vector<int32_t> full = tok_->encode(text);
  for (size_t limit : {size_t{0}, size_t{1}, size_t{16}, size_t{100}, full.size() - 1, full.size(),
                       full.size() + 5}) {
    const std::vector<int32_t> part = tok_->encode(text, limit);
    ASSERT_LE(part.size(), full.size());
    EXPECT_TRUE(std::equal(part.begin(), part.end(), full.begin())) << limit;
    EXPECT_EQ(part.size() > limit, full.size() > limit) << limit;
    if (full.size() > limit) {
      EXPECT_LT(part.size(), limit + 64) << limit;  // BPE stopped near the limit
    }
  }
  const std::vector<int32_t> m = tok_->encode_for_model(text, 16);
  const std::vector<int32_t> mf = tok_->encode_for_model(text);
  EXPECT_GT(m.size(), 16u);
  EXPECT_TRUE(std::equal(m.begin(), m.end(), mf.begin()));
}

// The same for SentencePiece BPE (Gemma 3): the limit is checked between the pieces that special
// tokens delimit, so the result is still a prefix and stops within a piece of the limit.
TEST(SpmTokenizer, LimitedEncodingIsAPrefix) {
  const GgufFile g(gemma_model_path());
  const Tokenizer tok(g);
  std::string text;
  for (int i = 0; i < 200; ++i)
    text += "Word " + std::to_string(i) + " of a sentence, with <start_of_turn>special tokens. ";
  const std::vector<int32_t> full = tok.encode(text);
  for (size_t limit : {size_t{0}, size_t{1}, size_t{16}, size_t{100}, full.size() - 1, full.size(),
                       full.size() + 5}) {
    const std::vector<int32_t> part = tok.encode(text, limit);
    ASSERT_LE(part.size(), full.size());
    EXPECT_TRUE(std::equal(part.begin(), part.end(), full.begin())) << limit;
    EXPECT_EQ(part.size() > limit, full.size() > limit) << limit;
    if (full.size() > limit) {
      EXPECT_LT(part.size(), limit + 64) << limit;
    }
  }
  const std::vector<int32_t> m = tok.encode_for_model(text, 16);
  const std::vector<int32_t> mf = tok.encode_for_model(text);
  ASSERT_EQ(mf[0], tok.bos_id());
  EXPECT_GT(m.size(), 16u);
  EXPECT_TRUE(std::equal(m.begin(), m.end(), mf.begin()));
}

}  // namespace
}  // namespace data
}  // namespace turbo
