// Tokenizers built from GGUF metadata: GPT-2 style byte-level BPE (tokenizer.ggml.model = "gpt2",
// SmolLM2, Llama 3) and SentencePiece-style BPE ("llama": Gemma 3, Llama 2).
//
// "gpt2": encoding as the Hugging Face `tokenizers` pipeline of such a model does it:
//  1. control / user-defined tokens (token_type 3 / 4, e.g. "<|im_start|>") found verbatim in the
//     text are emitted as themselves (longest match first);
//  2. pre-tokenization of the pieces between them: for `tokenizer.ggml.pre` = "smollm" (and the
//     other llama.cpp types that share its rules) every \p{N} code point is split off alone, then
//     the GPT-2 regex
//       's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//     cuts each part into words; "gpt-2" uses the regex alone;
//  3. each word's UTF-8 bytes are mapped to GPT-2's printable byte alphabet and merged with the
//     BPE merges, lowest rank first (leftmost on ties).
// \p{L}, \p{N} come from unicode_tables.h; \s is the Unicode White_Space property.
//
// "llama" (SentencePiece BPE, as llama.cpp's SPM tokenizer): step 1 as above, then on each piece
// between special tokens, with no pre-tokenizer: every ' ' becomes U+2581 ('▁'; one is prepended
// to the text when tokenizer.ggml.add_space_prefix is true), the piece is cut into UTF-8
// characters, and adjacent symbols are merged while some merge exists, always the pair whose
// concatenation is the vocabulary token of highest tokenizer.ggml.scores value (leftmost on
// ties); a final symbol that is not a token becomes its bytes' <0xXX> tokens (byte fallback).
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "datasets/gguf.h"

namespace turbo {
namespace data {

class Tokenizer {
 public:
  // Throws turbo::Error when the GGUF has no gpt2 or llama tokenizer or an unsupported
  // pre-tokenizer.
  explicit Tokenizer(const GgufFile& gguf);

  // Token ids of `text` (valid UTF-8, else an error naming the byte offset); no BOS/EOS. With a
  // `max_tokens`, BPE stops once more than that many ids are out: the result is a prefix of the
  // full encoding, longer than `max_tokens` exactly when the full one is (the text is validated
  // and pre-tokenized whole, so the prefix does not depend on the limit).
  std::vector<int32_t> encode(const std::string& text,
                              size_t max_tokens = static_cast<size_t>(-1)) const;
  // encode() plus BOS / EOS where the model's metadata asks for them
  // (tokenizer.ggml.add_bos_token / add_eos_token); EOS only when the text ended within the limit.
  std::vector<int32_t> encode_for_model(const std::string& text,
                                        size_t max_tokens = static_cast<size_t>(-1)) const;
  // The UTF-8 text of ids (special tokens as their text).
  std::string decode(const std::vector<int32_t>& ids) const;

  int vocab_size() const { return static_cast<int>(tokens_.size()); }
  const std::string& token(int32_t id) const;
  int32_t bos_id() const { return bos_id_; }
  int32_t eos_id() const { return eos_id_; }
  bool add_bos() const { return add_bos_; }
  bool add_eos() const { return add_eos_; }
  const std::string& pre_type() const { return pre_; }

  // The pre-tokenizer alone: the words of `text` (no special-token splitting), as UTF-8.
  std::vector<std::string> pre_tokenize(const std::string& text) const;

 private:
  void bpe_word(const std::string& word, std::vector<int32_t>& out) const;
  // SentencePiece BPE of one piece between special tokens; `at_start`: the text's beginning. The
  // piece is encoded whole (the caller checks the limit between pieces).
  void spm_encode(const std::string& text, bool at_start, std::vector<int32_t>& out) const;
  void encode_plain(const std::string& text, std::vector<int32_t>& out, size_t max_tokens) const;
  static std::string join(const std::vector<std::string>& v);

  bool spm_ = false;  // tokenizer.ggml.model "llama" (else "gpt2")
  bool add_space_prefix_ = false;
  std::vector<float> scores_;         // spm: tokenizer.ggml.scores
  std::vector<int32_t> byte_tokens_;  // spm: id of <0xXX> per byte
  std::vector<std::string> tokens_;
  std::unordered_map<std::string, int32_t> token_ids_;
  std::unordered_map<std::string, int32_t> merge_rank_;  // "left right" -> rank
  std::vector<std::string> specials_;                    // longest first
  std::string pre_;
  bool split_digits_ = false;
  int32_t bos_id_ = -1, eos_id_ = -1;
  bool add_bos_ = false, add_eos_ = false;
  std::string byte_to_unicode_[256];
  std::unordered_map<uint32_t, uint8_t> unicode_to_byte_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace data
}  // namespace turbo
