// datasets_oracle_tool: prints what the C++ readers produce, for the Python oracle scripts
// (datasets/*_oracle.py) to compare against independent implementations.
//
//   datasets_oracle_tool tensors <gguf>            name, type, SHA-256 of the FP32 dequantization
//   datasets_oracle_tool dump <gguf> <name> <out>  the FP32 dequantization as raw little-endian
//   datasets_oracle_tool tokenize <gguf> <text> [--for-model]
//                                                  token ids, one per line (no BOS/EOS; with
//                                                  --for-model, BOS/EOS as the model's metadata
//                                                  asks)
//   datasets_oracle_tool logits <gguf> <ids> <out> [--emulate-q8]
//                                                  FP32 logits [n, vocab] of the ids (one per
//                                                  line) with ground-truth attention; optionally
//                                                  with llama.cpp's 8-bit activation rounding
#include <cstdio>
#include <exception>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "core/error.h"
#include "datasets/gguf.h"
#include "datasets/llama_model.h"
#include "datasets/sha256.h"
#include "datasets/tokenizer.h"

namespace {

int usage() {
  std::cerr << "usage: datasets_oracle_tool tensors <gguf>\n"
               "       datasets_oracle_tool dump <gguf> <tensor> <out.f32>\n"
               "       datasets_oracle_tool tokenize <gguf> <text file> [--for-model]\n"
               "       datasets_oracle_tool logits <gguf> <ids file> <out.f32> [--emulate-q8]\n";
  return 2;
}

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw turbo::Error("cannot read text file '" + path + "'");
  std::ostringstream os;
  os << f.rdbuf();
  return os.str();
}

}  // namespace

int main(int argc, char** argv) {
  using namespace turbo::data;
  if (argc < 3) return usage();
  const std::string cmd = argv[1];
  try {
    if (cmd == "logits" && (argc == 5 || (argc == 6 && std::string(argv[5]) == "--emulate-q8"))) {
      LlamaModel model(argv[2]);
      model.set_emulate_q8_activations(argc == 6);
      std::vector<int32_t> ids;
      std::istringstream in(read_text(argv[3]));
      for (int64_t id; in >> id;) ids.push_back(static_cast<int32_t>(id));
      ExactAttentionHook attention(model.config().n_layers);
      std::vector<float> logits;
      model.forward(ids.data(), static_cast<int64_t>(ids.size()), 0, attention, &logits);
      std::ofstream out(argv[4], std::ios::binary);
      out.write(reinterpret_cast<const char*>(logits.data()),
                static_cast<std::streamsize>(logits.size() * 4));
      if (!out) throw turbo::Error(std::string("cannot write '") + argv[4] + "'");
      return 0;
    }
    GgufFile g(argv[2]);
    if (cmd == "tensors" && argc == 3) {
      for (const GgufTensorInfo& t : g.tensors()) {
        const std::vector<float> v = g.dequantize(t.name);
        std::cout << t.name << '\t' << ggml_type_name(t.type) << '\t'
                  << sha256_hex(v.data(), v.size() * sizeof(float)) << '\n';
      }
    } else if (cmd == "dump" && argc == 5) {
      const std::vector<float> v = g.dequantize(argv[3]);
      std::ofstream out(argv[4], std::ios::binary);
      out.write(reinterpret_cast<const char*>(v.data()),
                static_cast<std::streamsize>(v.size() * 4));
      if (!out) throw turbo::Error(std::string("cannot write '") + argv[4] + "'");
    } else if (cmd == "tokenize" &&
               (argc == 4 || (argc == 5 && std::string(argv[4]) == "--for-model"))) {
      const Tokenizer tok(g);
      const std::string text = read_text(argv[3]);
      for (int32_t id : argc == 5 ? tok.encode_for_model(text) : tok.encode(text))
        std::cout << id << '\n';
    } else {
      return usage();
    }
  } catch (const std::exception& e) {
    std::cerr << "datasets_oracle_tool: error: " << e.what() << '\n';
    return 1;
  }
  return 0;
}
