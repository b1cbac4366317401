#include "datasets/activations.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <random>
#include <string>

#include "core/error.h"

namespace turbo {
namespace data {
namespace {

std::string temp_path(const std::string& name) {
  return ::testing::TempDir() + "/turbo_act_" + name + ".h5";
}

bool file_exists(const std::string& p) { return std::ifstream(p).good(); }

std::string file_bytes(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

ActivationMeta small_meta() {
  ActivationMeta m;
  m.model = "test-model";
  m.model_sha256 = std::string(64, '0');
  m.text_source = "synthetic";
  m.command = "activations_test";
  m.version = "0.0.0";
  m.rope_theta = 100000.0;
  m.n_layers = 4;
  m.n_heads = 6;
  m.n_kv_heads = 2;
  m.head_dim = 16;
  m.n_tokens = 300;  // more than one 256-token chunk
  m.layers = {3, 1};
  return m;
}

HostTensor<Half> random_tensor(int64_t h, int64_t n, int64_t d, uint32_t seed) {
  HostTensor<Half> t(1, h, n, d);
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 3.0f);
  for (Half& x : t.storage) x = to_half(dist(rng));
  return t;
}

struct Written {
  std::vector<int32_t> tokens;
  HostTensor<Half> q[2], k[2], v[2];
};

Written write_file(const std::string& path, const ActivationMeta& m, bool force = false) {
  Written w;
  for (int64_t i = 0; i < m.n_tokens; ++i) w.tokens.push_back(static_cast<int32_t>(i * 37 % 49152));
  ActivationWriter writer(path, m, force);
  writer.write_tokens(w.tokens);
  for (int i = 0; i < 2; ++i) {
    w.q[i] = random_tensor(m.n_heads, m.n_tokens, m.head_dim, 10 + i);
    w.k[i] = random_tensor(m.n_kv_heads, m.n_tokens, m.head_dim, 20 + i);
    w.v[i] = random_tensor(m.n_kv_heads, m.n_tokens, m.head_dim, 30 + i);
    writer.write_layer(m.layers[i], w.q[i], w.k[i], w.v[i]);
  }
  writer.close();
  return w;
}

void expect_same_bits(const HostTensor<Half>& a, const HostTensor<Half>& b) {
  ASSERT_EQ(a.storage.size(), b.storage.size());
  for (size_t i = 0; i < a.storage.size(); ++i)
    ASSERT_EQ(a.storage[i].bits, b.storage[i].bits) << i;
}

TEST(Activations, RoundTripIsBitExact) {
  const std::string path = temp_path("roundtrip");
  std::remove(path.c_str());
  const ActivationMeta m = small_meta();
  const Written w = write_file(path, m);
  EXPECT_FALSE(file_exists(path + ".tmp"));

  ActivationReader r(path);
  EXPECT_EQ(r.meta().model, m.model);
  EXPECT_EQ(r.meta().command, m.command);
  EXPECT_EQ(r.meta().rope_theta, m.rope_theta);
  EXPECT_EQ(r.meta().n_heads, 6);
  EXPECT_EQ(r.meta().n_kv_heads, 2);
  EXPECT_EQ(r.meta().n_tokens, 300);
  EXPECT_EQ(r.meta().layers, (std::vector<int>{1, 3}));  // ascending
  EXPECT_EQ(r.tokens(), w.tokens);
  // m.layers = {3, 1}: q[0] went to layer 3.
  expect_same_bits(r.read(3, 'q'), w.q[0]);
  expect_same_bits(r.read(3, 'k'), w.k[0]);
  expect_same_bits(r.read(1, 'v'), w.v[1]);

  // A token window equals the slice of the whole.
  const HostTensor<Half> part = r.read(1, 'k', 250, 290);
  ASSERT_EQ(part.h, 2);
  ASSERT_EQ(part.n, 40);
  for (int64_t h = 0; h < 2; ++h)
    for (int64_t n = 0; n < 40; ++n)
      for (int64_t d = 0; d < 16; ++d)
        ASSERT_EQ(part.view().row(0, h, n)[d].bits, w.k[1].view().row(0, h, 250 + n)[d].bits);
  EXPECT_EQ(r.sha256().size(), 64u);
}

TEST(Activations, SameInputsGiveIdenticalBytes) {
  const std::string a = temp_path("det_a"), b = temp_path("det_b");
  std::remove(a.c_str());
  std::remove(b.c_str());
  write_file(a, small_meta());
  write_file(b, small_meta());
  const std::string ba = file_bytes(a);
  EXPECT_GT(ba.size(), 1000u);
  EXPECT_EQ(ba, file_bytes(b));
  EXPECT_EQ(ActivationReader(a).sha256(), ActivationReader(b).sha256());
}

TEST(Activations, RefusesExistingFileUnlessForced) {
  const std::string path = temp_path("exists");
  std::remove(path.c_str());
  write_file(path, small_meta());
  const std::string before = file_bytes(path);
  try {
    ActivationWriter w(path, small_meta(), false);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--force"), std::string::npos) << e.what();
  }
  EXPECT_EQ(file_bytes(path), before);
  ActivationMeta m = small_meta();
  m.text_source = "forced";
  write_file(path, m, /*force=*/true);
  EXPECT_EQ(ActivationReader(path).meta().text_source, "forced");
}

TEST(Activations, AbandonedWriterLeavesNoFile) {
  const std::string path = temp_path("abandon");
  std::remove(path.c_str());
  {
    ActivationWriter w(path, small_meta(), false);
    w.write_tokens(std::vector<int32_t>(300, 1));
    EXPECT_THROW(w.close(), Error);  // layers missing
  }
  EXPECT_FALSE(file_exists(path));
  EXPECT_FALSE(file_exists(path + ".tmp"));
  { ActivationWriter w(path, small_meta(), false); }  // destroyed without close()
  EXPECT_FALSE(file_exists(path));
  EXPECT_FALSE(file_exists(path + ".tmp"));
}

TEST(Activations, RejectsNonFiniteNamingLayerAndHead) {
  const std::string path = temp_path("nonfinite");
  std::remove(path.c_str());
  const ActivationMeta m = small_meta();
  ActivationWriter w(path, m, false);
  w.write_tokens(std::vector<int32_t>(300, 1));
  HostTensor<Half> q = random_tensor(6, 300, 16, 1), k = random_tensor(2, 300, 16, 2),
                   v = random_tensor(2, 300, 16, 3);
  k.view().row(0, 1, 7)[3] = to_half(INFINITY);
  try {
    w.write_layer(3, q, k, v);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("K (layer 3)"), std::string::npos) << msg;
    EXPECT_NE(msg.find("head 1"), std::string::npos) << msg;
  }
}

TEST(Activations, RejectsBadShapesAndLayers) {
  const std::string path = temp_path("shapes");
  std::remove(path.c_str());
  ActivationWriter w(path, small_meta(), false);
  EXPECT_THROW(w.write_tokens(std::vector<int32_t>(299, 1)), Error);
  HostTensor<Half> q = random_tensor(6, 300, 16, 1), k = random_tensor(2, 300, 16, 2);
  HostTensor<Half> bad = random_tensor(3, 300, 16, 3);
  EXPECT_THROW(w.write_layer(3, q, k, bad), Error);
  EXPECT_THROW(w.write_layer(2, q, k, k), Error);  // not in meta.layers
}

TEST(Activations, ReaderErrorsAreClear) {
  try {
    ActivationReader r("/nonexistent/dir/file.h5");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("does not exist"), std::string::npos) << e.what();
  }
  const std::string junk = temp_path("junk");
  std::ofstream(junk) << "not an hdf5 file";
  EXPECT_THROW(ActivationReader r(junk), Error);

  // A truncated copy of a valid file.
  const std::string good = temp_path("good"), cut = temp_path("cut");
  std::remove(good.c_str());
  write_file(good, small_meta());
  const std::string bytes = file_bytes(good);
  std::ofstream(cut, std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  EXPECT_THROW(
      {
        ActivationReader r(cut);
        for (int l : r.meta().layers)
          for (char c : {'q', 'k', 'v'}) r.read(l, c);
      },
      Error);

  ActivationReader r(good);
  EXPECT_THROW(r.read(0, 'q'), Error);  // layer absent
  EXPECT_THROW(r.read(1, 'x'), Error);  // bad tensor
  EXPECT_THROW(r.read(1, 'q', 10, 5), Error);
  EXPECT_THROW(r.read(1, 'q', 0, 301), Error);
}

}  // namespace
}  // namespace data
}  // namespace turbo
