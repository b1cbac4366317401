#include "datasets/tokenizer.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <queue>

#include "core/config.h"
#include "core/error.h"
#include "datasets/unicode_tables.h"

namespace turbo {
namespace data {
namespace {

template <size_t N>
bool in_ranges(const unicode::CodeRange (&r)[N], uint32_t cp) {
  const unicode::CodeRange* it = std::upper_bound(
      r, r + N, cp, [](uint32_t c, const unicode::CodeRange& x) { return c < x.first; });
  return it != r && cp <= (it - 1)->last;
}

bool is_letter(uint32_t cp) {
  if (cp < 0x80) return (cp | 0x20) >= 'a' && (cp | 0x20) <= 'z';
  return in_ranges(unicode::kLetters, cp);
}
bool is_number(uint32_t cp) {
  if (cp < 0x80) return cp >= '0' && cp <= '9';
  return in_ranges(unicode::kNumbers, cp);
}
// Unicode White_Space (what \s matches in the Oniguruma / Rust regex engines with Unicode on).
bool is_space(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

struct CodePoint {
  uint32_t cp;
  size_t begin, end;  // byte range in the text
};

// Strict UTF-8 decoding; throws naming the byte offset of the first invalid sequence.
std::vector<CodePoint> decode_utf8(const std::string& s, size_t base) {
  std::vector<CodePoint> out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const uint8_t c = static_cast<uint8_t>(s[i]);
    uint32_t cp;
    int len;
    if (c < 0x80) {
      cp = c;
      len = 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
      cp = c & 0x1F;
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      cp = c & 0x0F;
      len = 3;
    } else if (c >= 0xF0 && c <= 0xF4) {
      cp = c & 0x07;
      len = 4;
    } else
      throw Error("text is not valid UTF-8 at byte " + std::to_string(base + i));
    TURBO_CHECK(i + len <= s.size(),
                "text is not valid UTF-8 at byte " << base + i << " (truncated sequence)");
    for (int k = 1; k < len; ++k) {
      const uint8_t cc = static_cast<uint8_t>(s[i + k]);
      TURBO_CHECK((cc & 0xC0) == 0x80, "text is not valid UTF-8 at byte " << base + i);
      cp = (cp << 6) | (cc & 0x3F);
    }
    TURBO_CHECK(!(len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) &&
                    !(len == 4 && (cp < 0x10000 || cp > 0x10FFFF)),
                "text is not valid UTF-8 at byte " << base + i << " (overlong or surrogate)");
    out.push_back({cp, i, i + len});
    i += len;
  }
  return out;
}

void append_utf8(uint32_t cp, std::string& s) {
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    s += static_cast<char>(0xE0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    s += static_cast<char>(0xF0 | (cp >> 18));
    s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// The GPT-2 regex on cps[lo, hi): appends [begin, end) index pairs of the matches.
void gpt2_split(const std::vector<CodePoint>& cps, size_t lo, size_t hi,
                std::vector<std::pair<size_t, size_t>>& words) {
  auto other = [&](size_t k) {
    const uint32_t c = cps[k].cp;
    return !is_space(c) && !is_letter(c) && !is_number(c);
  };
  size_t i = lo;
  while (i < hi) {
    const uint32_t c = cps[i].cp;
    size_t j = i;
    // 's|'t|'re|'ve|'m|'ll|'d
    if (c == '\'' && i + 1 < hi) {
      const uint32_t a = cps[i + 1].cp;
      const uint32_t b = i + 2 < hi ? cps[i + 2].cp : 0;
      if (a == 's' || a == 't' || a == 'm' || a == 'd')
        j = i + 2;
      else if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
        j = i + 3;
    }
    if (j == i) {
      // ' ?X+' for X in {\p{L}, \p{N}, [^\s\p{L}\p{N}]}, in that order of alternatives.
      const size_t s = (c == ' ' && i + 1 < hi) ? i + 1 : i;
      auto run = [&](auto pred) {
        if (!pred(s)) return false;
        if (s != i && cps[i].cp != ' ') return false;
        j = s;
        while (j < hi && pred(j)) ++j;
        return true;
      };
      auto letter = [&](size_t k) { return is_letter(cps[k].cp); };
      auto number = [&](size_t k) { return is_number(cps[k].cp); };
      if (!run(letter) && !run(number) && !run(other)) {
        // A leading space not followed by a class above, or other whitespace.
        if (is_space(c)) {
          size_t e = i;
          while (e < hi && is_space(cps[e].cp)) ++e;
          if (e == hi)
            j = e;  // \s+(?!\S) up to the end
          else if (e - i >= 2)
            j = e - 1;  // \s+(?!\S): leave the last one for the next word
          else
            j = e;  // \s+
        } else {
          j = i + 1;  // unreachable: every code point is space, letter, number or other
        }
      }
    }
    words.emplace_back(i, j);
    i = j;
  }
}

}  // namespace

Tokenizer::Tokenizer(const GgufFile& g) {
  const std::string model =
      g.has("tokenizer.ggml.model") ? g.get_string("tokenizer.ggml.model") : "";
  TURBO_CHECK(model == "gpt2" || model == "llama",
              "GGUF '" << g.path() << "' has tokenizer model '" << model
                       << "'; supported: byte-level BPE ('gpt2'), SentencePiece BPE ('llama')");
  spm_ = model == "llama";
  pre_ = g.has("tokenizer.ggml.pre") ? g.get_string("tokenizer.ggml.pre") : "default";
  // llama.cpp groups these pre-tokenizer names under one rule set: digits alone, then GPT-2.
  static const std::vector<std::string> kDigitSplit = {
      "smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva"};
  static const std::vector<std::string> kPlain = {"gpt-2", "default"};
  if (spm_) {
    // SentencePiece models have no pre-tokenizer; llama.cpp writes "default".
  } else if (std::find(kDigitSplit.begin(), kDigitSplit.end(), pre_) != kDigitSplit.end()) {
    split_digits_ = true;
  } else if (std::find(kPlain.begin(), kPlain.end(), pre_) == kPlain.end()) {
    throw Error("GGUF '" + g.path() + "': unsupported pre-tokenizer '" + pre_ +
                "'; supported: " + join(kDigitSplit) + ", " + join(kPlain));
  }
  tokens_ = g.get_string_array("tokenizer.ggml.tokens");
  TURBO_CHECK(!tokens_.empty(), "GGUF '" << g.path() << "' has an empty vocabulary");
  TURBO_CHECK(tokens_.size() < static_cast<size_t>(std::numeric_limits<int32_t>::max()),
              "vocabulary too large");
  for (size_t i = 0; i < tokens_.size(); ++i)
    token_ids_.emplace(tokens_[i], static_cast<int32_t>(i));
  if (spm_) {
    const GgufValue& sc = g.value("tokenizer.ggml.scores");
    TURBO_CHECK(sc.type == GgufValueType::kArray && sc.elem_type == GgufValueType::kF32 &&
                    sc.floats.size() == tokens_.size(),
                "GGUF '" << g.path() << "': tokenizer.ggml.scores must be " << tokens_.size()
                         << " f32 values, one per token");
    for (double v : sc.floats) {
      TURBO_CHECK(std::isfinite(v), "GGUF '" << g.path() << "': a tokenizer score is not finite");
      scores_.push_back(static_cast<float>(v));
    }
    add_space_prefix_ =
        g.has("tokenizer.ggml.add_space_prefix") && g.get_bool("tokenizer.ggml.add_space_prefix");
    byte_tokens_.assign(256, -1);
    for (int b = 0; b < 256; ++b) {
      char name[8];
      std::snprintf(name, sizeof(name), "<0x%02X>", b);
      auto it = token_ids_.find(name);
      if (it != token_ids_.end()) byte_tokens_[static_cast<size_t>(b)] = it->second;
    }
  }
  static const std::vector<std::string> kNoMerges;
  const std::vector<std::string>& merges =
      spm_ ? kNoMerges : g.get_string_array("tokenizer.ggml.merges");
  for (size_t i = 0; i < merges.size(); ++i) {
    TURBO_CHECK(
        merges[i].find(' ') != std::string::npos && merges[i].find(' ') == merges[i].rfind(' '),
        "GGUF '" << g.path() << "': merge " << i << " ('" << merges[i] << "') is not 'left right'");
    merge_rank_.emplace(merges[i], static_cast<int32_t>(i));
  }
  if (g.has("tokenizer.ggml.token_type")) {
    const std::vector<int64_t>& types = g.get_int_array("tokenizer.ggml.token_type");
    TURBO_CHECK(types.size() == tokens_.size(), "GGUF '" << g.path() << "': token_type has "
                                                         << types.size() << " entries for "
                                                         << tokens_.size() << " tokens");
    for (size_t i = 0; i < types.size(); ++i)
      if (types[i] == 3 || types[i] == 4) specials_.push_back(tokens_[i]);
    std::stable_sort(
        specials_.begin(), specials_.end(),
        [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  }
  auto id_key = [&](const char* key) -> int32_t {
    if (!g.has(key)) return -1;
    const int64_t id = g.get_int(key);
    TURBO_CHECK(
        id >= 0 && id < static_cast<int64_t>(tokens_.size()),
        "GGUF '" << g.path() << "': " << key << " = " << id << " is outside the vocabulary");
    return static_cast<int32_t>(id);
  };
  bos_id_ = id_key("tokenizer.ggml.bos_token_id");
  eos_id_ = id_key("tokenizer.ggml.eos_token_id");
  add_bos_ = g.has("tokenizer.ggml.add_bos_token") && g.get_bool("tokenizer.ggml.add_bos_token");
  add_eos_ = g.has("tokenizer.ggml.add_eos_token") && g.get_bool("tokenizer.ggml.add_eos_token");
  TURBO_CHECK(!add_bos_ || bos_id_ >= 0,
              "GGUF '" << g.path() << "' asks for BOS but has no bos_token_id");
  TURBO_CHECK(!add_eos_ || eos_id_ >= 0,
              "GGUF '" << g.path() << "' asks for EOS but has no eos_token_id");

  // GPT-2 bytes_to_unicode: printable Latin-1 bytes map to themselves, the rest to 256 + n.
  int n = 0;
  for (int b = 0; b < 256; ++b) {
    const bool printable =
        (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    const uint32_t cp = printable ? static_cast<uint32_t>(b) : static_cast<uint32_t>(256 + n++);
    append_utf8(cp, byte_to_unicode_[b]);
    unicode_to_byte_[cp] = static_cast<uint8_t>(b);
  }
}

std::string Tokenizer::join(const std::vector<std::string>& v) { return join_names(v); }

const std::string& Tokenizer::token(int32_t id) const {
  TURBO_CHECK(id >= 0 && id < vocab_size(),
              "token id " << id << " is outside the vocabulary of " << vocab_size());
  return tokens_[static_cast<size_t>(id)];
}

std::vector<std::string> Tokenizer::pre_tokenize(const std::string& text) const {
  const std::vector<CodePoint> cps = decode_utf8(text, 0);
  std::vector<std::pair<size_t, size_t>> words;
  size_t i = 0;
  while (i < cps.size()) {
    if (split_digits_ && is_number(cps[i].cp)) {
      words.emplace_back(i, i + 1);
      ++i;
      continue;
    }
    size_t j = i;
    while (j < cps.size() && !(split_digits_ && is_number(cps[j].cp))) ++j;
    gpt2_split(cps, i, j, words);
    i = j;
  }
  std::vector<std::string> out;
  out.reserve(words.size());
  for (const auto& w : words)
    out.push_back(text.substr(cps[w.first].begin, cps[w.second - 1].end - cps[w.first].begin));
  return out;
}

void Tokenizer::bpe_word(const std::string& word, std::vector<int32_t>& out) const {
  auto hit = cache_.find(word);
  if (hit != cache_.end()) {
    out.insert(out.end(), hit->second.begin(), hit->second.end());
    return;
  }
  // The symbols form a linked list; candidate merges wait in a min-heap ordered by (rank, position
  // of the left symbol), which is the "lowest rank first, leftmost on ties" order of a rescan
  // after every merge, at O(log n) per merge instead of O(n) (a 40k-byte word took 47 s). An entry
  // is stale once either of its symbols has changed: symbols only grow, so a length that differs
  // from the one recorded at push time, or an emptied symbol, says so.
  struct Symbol {
    std::string text;
    int prev, next;
  };
  struct Candidate {
    int32_t rank;
    int left, right;
    size_t left_len, right_len;
    bool operator<(const Candidate& o) const {  // std::priority_queue pops the largest
      return rank != o.rank ? rank > o.rank : left > o.left;
    }
  };
  const int n = static_cast<int>(word.size());
  std::vector<Symbol> sym(static_cast<size_t>(n));
  for (int k = 0; k < n; ++k)
    sym[static_cast<size_t>(k)] = {byte_to_unicode_[static_cast<unsigned char>(word[k])], k - 1,
                                   k + 1 < n ? k + 1 : -1};
  std::priority_queue<Candidate> heap;
  auto consider = [&](int l, int r) {
    if (l < 0 || r < 0) return;
    const Symbol &a = sym[static_cast<size_t>(l)], &b = sym[static_cast<size_t>(r)];
    auto it = merge_rank_.find(a.text + " " + b.text);
    if (it != merge_rank_.end()) heap.push({it->second, l, r, a.text.size(), b.text.size()});
  };
  for (int k = 0; k + 1 < n; ++k) consider(k, k + 1);
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    Symbol &a = sym[static_cast<size_t>(c.left)], &b = sym[static_cast<size_t>(c.right)];
    if (a.text.empty() || b.text.empty() || a.next != c.right || a.text.size() != c.left_len ||
        b.text.size() != c.right_len)
      continue;
    a.text += b.text;
    b.text.clear();
    a.next = b.next;
    if (b.next >= 0) sym[static_cast<size_t>(b.next)].prev = c.left;
    consider(a.prev, c.left);
    consider(c.left, a.next);
  }
  std::vector<int32_t> ids;
  for (int k = n > 0 ? 0 : -1; k >= 0; k = sym[static_cast<size_t>(k)].next) {
    const std::string& s = sym[static_cast<size_t>(k)].text;
    auto it = token_ids_.find(s);
    TURBO_CHECK(it != token_ids_.end(),
                "BPE symbol '" << s << "' of word '" << word << "' is not in the vocabulary");
    ids.push_back(it->second);
  }
  out.insert(out.end(), ids.begin(), ids.end());
  cache_.emplace(word, std::move(ids));
}

void Tokenizer::encode_plain(const std::string& text, std::vector<int32_t>& out,
                             size_t max_tokens) const {
  // Word boundaries come from the whole piece (the pre-tokenizer looks ahead); BPE, the costly
  // part, stops once the limit is passed.
  for (const std::string& w : pre_tokenize(text)) {
    if (out.size() > max_tokens) return;
    bpe_word(w, out);
  }
}

std::vector<int32_t> Tokenizer::encode(const std::string& text, size_t max_tokens) const {
  decode_utf8(text, 0);  // validate once, with byte offsets of the whole text
  std::vector<int32_t> out;
  size_t start = 0, i = 0;
  while (i < text.size() && out.size() <= max_tokens) {
    const std::string* match = nullptr;
    for (const std::string& s : specials_)
      if (!s.empty() && text.compare(i, s.size(), s) == 0) {
        match = &s;
        break;
      }
    if (!match) {
      ++i;
      continue;
    }
    if (i > start) {
      if (spm_)
        spm_encode(text.substr(start, i - start), start == 0, out);
      else
        encode_plain(text.substr(start, i - start), out, max_tokens);
    }
    if (out.size() > max_tokens) break;
    out.push_back(token_ids_.at(*match));
    i += match->size();
    start = i;
  }
  if (start < text.size() && out.size() <= max_tokens) {
    if (spm_)
      spm_encode(text.substr(start), start == 0, out);
    else
      encode_plain(text.substr(start), out, max_tokens);
  }
  return out;
}

void Tokenizer::spm_encode(const std::string& text, bool at_start,
                           std::vector<int32_t>& out) const {
  static const std::string kSpace = "\xE2\x96\x81";  // U+2581
  std::string s = add_space_prefix_ && at_start ? kSpace : "";
  for (char c : text) {
    if (c == ' ')
      s += kSpace;
    else
      s += c;
  }
  // Symbols: a doubly linked list of byte ranges, one UTF-8 character each to begin with.
  struct Symbol {
    size_t begin, len;
    int prev, next;
  };
  std::vector<Symbol> sym;
  for (const CodePoint& c : decode_utf8(s, 0))
    sym.push_back({c.begin, c.end - c.begin, static_cast<int>(sym.size()) - 1,
                   static_cast<int>(sym.size()) + 1});
  if (sym.empty()) return;
  sym.back().next = -1;
  // Candidate merges: highest score of the merged token first, then the leftmost.
  struct Bigram {
    float score;
    int left, right;
    size_t len;  // bytes of the merged text: stale when a side has changed since
  };
  auto worse = [](const Bigram& a, const Bigram& b) {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  };
  std::priority_queue<Bigram, std::vector<Bigram>, decltype(worse)> queue(worse);
  auto try_add = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const size_t len = sym[left].len + sym[right].len;
    auto it = token_ids_.find(s.substr(sym[left].begin, len));
    if (it == token_ids_.end()) return;
    queue.push({scores_[static_cast<size_t>(it->second)], left, right, len});
  };
  for (size_t i = 1; i < sym.size(); ++i) try_add(static_cast<int>(i) - 1, static_cast<int>(i));
  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& l = sym[static_cast<size_t>(b.left)];
    Symbol& r = sym[static_cast<size_t>(b.right)];
    if (l.len == 0 || r.len == 0 || l.len + r.len != b.len || l.next != b.right) continue;
    l.len += r.len;
    r.len = 0;
    l.next = r.next;
    if (r.next >= 0) sym[static_cast<size_t>(r.next)].prev = b.left;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }
  for (int i = 0; i >= 0; i = sym[static_cast<size_t>(i)].next) {
    const std::string piece =
        s.substr(sym[static_cast<size_t>(i)].begin, sym[static_cast<size_t>(i)].len);
    auto it = token_ids_.find(piece);
    if (it != token_ids_.end()) {
      out.push_back(it->second);
      continue;
    }
    for (unsigned char c : piece) {
      const int32_t id = byte_tokens_[c];
      TURBO_CHECK(id >= 0, "character '" << piece
                                         << "' is neither a token nor byte-encodable "
                                            "(the vocabulary has no <0x"
                                         << std::hex << int(c) << "> token)");
      out.push_back(id);
    }
  }
}

std::vector<int32_t> Tokenizer::encode_for_model(const std::string& text, size_t max_tokens) const {
  std::vector<int32_t> out;
  if (add_bos_) out.push_back(bos_id_);
  const size_t body_max = max_tokens - std::min(max_tokens, out.size());
  const std::vector<int32_t> body = encode(text, body_max);
  out.insert(out.end(), body.begin(), body.end());
  if (add_eos_ && body.size() <= body_max) out.push_back(eos_id_);
  return out;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  for (int32_t id : ids) {
    const std::string& t = token(id);
    if (std::find(specials_.begin(), specials_.end(), t) != specials_.end()) {
      out += t;
      continue;
    }
    if (spm_) {
      const auto byte = std::find(byte_tokens_.begin(), byte_tokens_.end(), id);
      if (byte != byte_tokens_.end()) {
        out += static_cast<char>(byte - byte_tokens_.begin());
        continue;
      }
      for (size_t k = 0; k < t.size(); ++k) {
        if (t.compare(k, 3, "\xE2\x96\x81") == 0) {
          out += ' ';
          k += 2;
        } else {
          out += t[k];
        }
      }
      continue;
    }
    for (const CodePoint& c : decode_utf8(t, 0)) {
      auto it = unicode_to_byte_.find(c.cp);
      TURBO_CHECK(it != unicode_to_byte_.end(),
                  "token " << id << " holds a character outside the byte alphabet");
      out += static_cast<char>(it->second);
    }
  }
  return out;
}

}  // namespace data
}  // namespace turbo
