// Captured attention activations of a real model, stored in HDF5 (schema: datasets/README.md).
//
// File layout (schema_version 1), readable with plain h5py:
//   root attributes  model, model_sha256, text_source, turboattn_version, command (UTF-8 strings),
//                    rope_theta (f64), n_layers, n_heads, n_kv_heads, head_dim, schema_version
//                    (i32), n_tokens (i64), layers (i32 [n_present], ascending)
//   /tokens          int32 [N]
//   /layers/<L>/q    IEEE FP16 [n_heads, N, head_dim]      (post-RoPE)
//   /layers/<L>/k    IEEE FP16 [n_kv_heads, N, head_dim]   (post-RoPE)
//   /layers/<L>/v    IEEE FP16 [n_kv_heads, N, head_dim]
// Datasets are chunked [1, min(N, 256), head_dim] with shuffle + gzip + fletcher32, in the HDF5
// 1.10 file format (checksummed metadata); the file carries no timestamps, so the same inputs give
// a byte-identical file.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace turbo {
namespace data {

constexpr int kActivationSchemaVersion = 1;

struct ActivationMeta {
  std::string model, model_sha256, text_source, command, version;
  double rope_theta = 0;
  int n_layers = 0, n_heads = 0, n_kv_heads = 0, head_dim = 0;
  int64_t n_tokens = 0;
  std::vector<int> layers;  // layer indices present, ascending
};

class ActivationReader {
 public:
  // Opens and validates the schema; throws turbo::Error naming the file and what is wrong.
  explicit ActivationReader(const std::string& path);
  ~ActivationReader();
  ActivationReader(const ActivationReader&) = delete;
  ActivationReader& operator=(const ActivationReader&) = delete;

  const ActivationMeta& meta() const { return meta_; }
  const std::string& path() const { return path_; }
  std::vector<int32_t> tokens() const;
  // [1, H, n, D] FP16 of tokens [token_begin, token_end) (token_end < 0: to the end);
  // which = 'q', 'k' or 'v'. Non-finite values are rejected naming tensor, layer and head.
  HostTensor<Half> read(int layer, char which, int64_t token_begin = 0,
                        int64_t token_end = -1) const;
  // SHA-256 of the file bytes.
  std::string sha256() const;
  // Whether the file's metadata and every dataset's chunks carry checksums (verified on read; a
  // mismatch is an error naming the file and dataset). False for files of older writers, which
  // are read with a warning on stderr, once per file.
  bool checksummed() const { return checksummed_; }

 private:
  std::string path_;
  ActivationMeta meta_;
  int64_t file_ = -1;  // hid_t
  bool checksummed_ = false;
};

class ActivationWriter {
 public:
  // Refuses an existing `path` unless `force`. Writes `path + ".tmp"`, renamed to `path` by
  // close(); a writer destroyed before close() removes the temporary, so no partial file is left.
  ActivationWriter(const std::string& path, const ActivationMeta& meta, bool force);
  ~ActivationWriter();
  ActivationWriter(const ActivationWriter&) = delete;
  ActivationWriter& operator=(const ActivationWriter&) = delete;

  // tokens.size() must equal meta.n_tokens.
  void write_tokens(const std::vector<int32_t>& tokens);
  // q [1, n_heads, N, D], k and v [1, n_kv_heads, N, D]; `layer` must be one of meta.layers and
  // not written before. Non-finite values are rejected naming tensor, layer and head.
  void write_layer(int layer, const HostTensor<Half>& q, const HostTensor<Half>& k,
                   const HostTensor<Half>& v);
  // Checks that the tokens and every layer of meta.layers were written, then publishes the file.
  void close();

 private:
  void abandon() noexcept;
  std::string path_, tmp_path_;
  ActivationMeta meta_;
  int64_t file_ = -1;  // hid_t
  bool tokens_written_ = false;
  std::vector<int> written_;
};

}  // namespace data
}  // namespace turbo
