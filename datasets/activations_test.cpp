#include "datasets/activations.h"

#include <gtest/gtest.h>
#include <hdf5.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <random>
#include <string>

#include "core/error.h"
#include "core/error_test_util.h"

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

// Rewrites attributes or links of a written file with the plain HDF5 API.
template <typename F>
void edit_file(const std::string& path, F edit) {
  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  edit(f);
  H5Fclose(f);
}

// Issue 10 defect 14: an empty `layers` attribute gave a header-only CSV marked complete.
TEST(Activations, EmptyLayerListIsRefused) {
  const std::string p = temp_path("empty_layers");
  write_file(p, small_meta(), true);
  edit_file(p, [](hid_t f) {
    ASSERT_GE(H5Adelete(f, "layers"), 0);
    const hsize_t zero = 0;
    const hid_t sp = H5Screate_simple(1, &zero, nullptr);
    const hid_t a = H5Acreate2(f, "layers", H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Aclose(a);
    H5Sclose(sp);
  });
  const std::string e = error_of([&] { ActivationReader r(p); });
  EXPECT_NE(e.find("lists no layer"), std::string::npos) << e;
}

// Issue 10 defect 3: a soft link /layers/1/q -> /layers/3/q was read silently.
TEST(Activations, SoftLinksAreRefused) {
  const std::string p = temp_path("soft_link");
  write_file(p, small_meta(), true);
  edit_file(p, [](hid_t f) {
    ASSERT_GE(H5Ldelete(f, "/layers/1/q", H5P_DEFAULT), 0);
    ASSERT_GE(H5Lcreate_soft("/layers/3/q", f, "/layers/1/q", H5P_DEFAULT, H5P_DEFAULT), 0);
  });
  const std::string e = error_of([&] { ActivationReader r(p); });
  EXPECT_NE(e.find("/layers/1/q is a soft or external link"), std::string::npos) << e;
}

// Issue 10 defect 3: a chunk missing from the index read as zeros with exit 0.
TEST(Activations, MissingChunkIsAnErrorNotZeros) {
  const std::string p = temp_path("missing_chunk");
  const ActivationMeta m = small_meta();
  write_file(p, m, true);
  edit_file(p, [&](hid_t f) {
    // Replace /layers/1/k by a dataset of the right shape, type and chunks holding only the
    // first chunk of each head (tokens 256.. never written: unallocated).
    ASSERT_GE(H5Ldelete(f, "/layers/1/k", H5P_DEFAULT), 0);
    const hsize_t dims[3] = {2, 300, 16}, chunk[3] = {1, 256, 16};
    const hid_t sp = H5Screate_simple(3, dims, nullptr);
    const hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 3, chunk);
    const hid_t half = H5Tcopy(H5T_IEEE_F32LE);
    H5Tset_fields(half, 15, 10, 5, 0, 10);
    H5Tset_size(half, 2);
    H5Tset_ebias(half, 15);
    const hid_t ds = H5Dcreate2(f, "/layers/1/k", half, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    ASSERT_GE(ds, 0);
    const hsize_t start[3] = {0, 0, 0}, count[3] = {2, 256, 16};
    H5Sselect_hyperslab(sp, H5S_SELECT_SET, start, nullptr, count, nullptr);
    const hid_t ms = H5Screate_simple(3, count, nullptr);
    std::vector<uint16_t> ones(2 * 256 * 16, 0x3C00);  // 1.0
    ASSERT_GE(H5Dwrite(ds, half, ms, sp, H5P_DEFAULT, ones.data()), 0);
    H5Sclose(ms);
    H5Dclose(ds);
    H5Tclose(half);
    H5Pclose(dcpl);
    H5Sclose(sp);
  });
  const ActivationReader r(p);
  EXPECT_NO_THROW(r.read(3, 'k'));
  const std::string e = error_of([&] { r.read(1, 'k'); });
  EXPECT_NE(e.find("stores 2 chunks, its shape needs 4"), std::string::npos) << e;
}

// Issue 10 defect 3: one flipped bit in a chunk dimension ([1, 256, 16] -> [1, 256, 2097168])
// crashed H5Dread. Every read now either succeeds on an intact dataset or names the problem; in
// the checksummed format the object header's checksum catches it.
TEST(Activations, FlippedChunkDimensionIsAnErrorNotACrash) {
  const std::string p = temp_path("flipped_chunk");
  const ActivationMeta m = small_meta();
  write_file(p, m, true);
  std::string bytes = file_bytes(p);
  // Layout message (version 4, chunked, dimension sizes encoded in 2 bytes): the chunk dimensions
  // as 2-byte little-endian integers, then the element size: 1, 256, 16, 2.
  const std::string pattern("\x01\x00\x00\x01\x10\x00\x02\x00", 8);
  const size_t at = bytes.find(pattern);
  ASSERT_NE(at, std::string::npos) << "no chunked layout message found";
  bytes[at + 5] = static_cast<char>(bytes[at + 5] | 0x20);  // 16 -> 16 + 2^13
  {
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f << bytes;
  }
  int errors = 0;
  try {
    const ActivationReader r(p);
    for (int l : m.layers)
      for (char c : {'q', 'k', 'v'}) {
        const std::string e = error_of([&] { r.read(l, c); });
        if (!e.empty()) {
          ++errors;
          EXPECT_NE(e.find("checksum mismatch"), std::string::npos) << e;
        }
      }
  } catch (const Error& e) {
    ++errors;  // refused at open: as good
    EXPECT_NE(std::string(e.what()).find("checksum mismatch"), std::string::npos) << e.what();
  }
  EXPECT_GE(errors, 1);
}

// ---- checksums (issue 10 defect 3) ------------------------------------------------------------

void write_bytes(const std::string& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f << bytes;
}

// Byte ranges [addr, addr + size) of the stored chunks of one dataset.
std::vector<std::pair<uint64_t, uint64_t>> chunk_ranges(const std::string& path,
                                                        const std::string& name) {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  const hid_t ds = H5Dopen2(f, name.c_str(), H5P_DEFAULT);
  const hid_t sp = H5Dget_space(ds);
  hsize_t n = 0;
  H5Dget_num_chunks(ds, sp, &n);
  for (hsize_t i = 0; i < n; ++i) {
    hsize_t off[3];
    unsigned mask;
    haddr_t addr;
    hsize_t size;
    H5Dget_chunk_info(ds, sp, i, off, &mask, &addr, &size);
    out.emplace_back(addr, size);
  }
  H5Sclose(sp);
  H5Dclose(ds);
  H5Fclose(f);
  return out;
}

TEST(Activations, WrittenFilesCarryChecksums) {
  const std::string p = temp_path("checksums");
  const ActivationMeta m = small_meta();
  write_file(p, m, true);
  const ActivationReader r(p);
  EXPECT_TRUE(r.checksummed());
  const hid_t f = H5Fopen(p.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  H5F_info2_t info;
  ASSERT_GE(H5Fget_info2(f, &info), 0);
  EXPECT_GE(info.super.version, 2u);  // superblock v2+: checksummed metadata
  for (const char* name : {"/tokens", "/layers/1/q", "/layers/1/k", "/layers/3/v"}) {
    const hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
    const hid_t dcpl = H5Dget_create_plist(ds);
    unsigned flags = 0, config = 0;
    size_t nv = 0;
    EXPECT_GE(H5Pget_filter_by_id2(dcpl, H5Z_FILTER_FLETCHER32, &flags, &nv, nullptr, 0, nullptr,
                                   &config),
              0)
        << name;
    H5Pclose(dcpl);
    H5Dclose(ds);
  }
  H5Fclose(f);
}

// One flipped bit in the stored (compressed) data of a chunk: a clear error naming the file, the
// dataset and the checksum, never zeros or garbage values.
TEST(Activations, FlippedBitInChunkDataIsAChecksumError) {
  const std::string p = temp_path("flipped_data");
  const ActivationMeta m = small_meta();
  write_file(p, m, true);
  const std::string good = file_bytes(p);
  for (const char* name : {"/layers/1/k", "/layers/3/q", "/tokens"}) {
    const auto chunks = chunk_ranges(p, name);
    ASSERT_FALSE(chunks.empty()) << name;
    for (size_t c = 0; c < chunks.size(); c += 3) {
      for (uint64_t at : {chunks[c].first, chunks[c].first + chunks[c].second / 2,
                          chunks[c].first + chunks[c].second - 1}) {
        std::string bad = good;
        bad[at] = static_cast<char>(bad[at] ^ 0x04);
        write_bytes(p, bad);
        const ActivationReader r(p);
        const std::string e = error_of([&] {
          if (std::string(name) == "/tokens")
            r.tokens();
          else
            r.read(name[8] - '0', name[10]);
        });
        EXPECT_NE(e.find(p), std::string::npos) << e;
        EXPECT_NE(e.find(name), std::string::npos) << e;
        EXPECT_NE(e.find("checksum mismatch: the file is corrupt"), std::string::npos) << e;
      }
    }
  }
}

// A single flipped bit anywhere outside the chunk data (superblock, object headers with their
// attributes, chunk indexes, heaps): the reader either refuses the file with an error or returns
// exactly what was written (every attribute, the tokens, every tensor). Before the strings were
// fixed-length, a flip in the global heap crashed H5Aread.
TEST(Activations, EveryMetadataBitFlipIsAnErrorOrHarmless) {
  const std::string p = temp_path("flip_meta"), q = temp_path("flip_meta_bad");
  ActivationMeta m = small_meta();
  m.n_tokens = 24;
  m.n_heads = 2;
  m.n_kv_heads = 1;
  m.head_dim = 8;
  const Written w = write_file(p, m, true);
  const std::string good = file_bytes(p);
  std::vector<bool> data(good.size(), false);
  for (const char* name : {"/tokens", "/layers/1/q", "/layers/1/k", "/layers/1/v", "/layers/3/q",
                           "/layers/3/k", "/layers/3/v"})
    for (const auto& c : chunk_ranges(p, name))
      for (uint64_t i = c.first; i < c.first + c.second; ++i) data[i] = true;
  const ActivationReader orig(p);
  int refused = 0, harmless = 0, strings_changed = 0, metadata_bytes = 0;
  for (size_t at = 0; at < good.size(); ++at) {
    if (data[at]) continue;
    ++metadata_bytes;
    std::string bad = good;
    bad[at] = static_cast<char>(bad[at] ^ 0x10);
    write_bytes(q, bad);
    try {
      const ActivationReader r(q);
      const ActivationMeta& a = r.meta();
      const ActivationMeta& b = orig.meta();
      EXPECT_TRUE(a.n_layers == b.n_layers && a.n_heads == b.n_heads &&
                  a.n_kv_heads == b.n_kv_heads && a.head_dim == b.head_dim &&
                  a.n_tokens == b.n_tokens && a.layers == b.layers &&
                  std::memcmp(&a.rope_theta, &b.rope_theta, sizeof(double)) == 0)
          << "byte " << at << ": numeric attributes changed silently";
      EXPECT_EQ(r.tokens(), w.tokens) << "byte " << at;
      for (int i = 0; i < 2; ++i) {
        const int l = m.layers[i];
        const HostTensor<Half> tq = r.read(l, 'q'), tk = r.read(l, 'k'), tv = r.read(l, 'v');
        EXPECT_EQ(std::memcmp(tq.storage.data(), w.q[i].storage.data(), tq.storage.size() * 2), 0)
            << "byte " << at;
        EXPECT_EQ(std::memcmp(tk.storage.data(), w.k[i].storage.data(), tk.storage.size() * 2), 0)
            << "byte " << at;
        EXPECT_EQ(std::memcmp(tv.storage.data(), w.v[i].storage.data(), tv.storage.size() * 2), 0)
            << "byte " << at;
      }
      if (a.model != b.model || a.model_sha256 != b.model_sha256 ||
          a.text_source != b.text_source || a.version != b.version || a.command != b.command)
        ++strings_changed;
      else
        ++harmless;
    } catch (const Error&) {
      ++refused;
    }
  }
  std::printf("%d metadata bytes flipped: %d refused, %d read unchanged\n", metadata_bytes, refused,
              harmless);
  EXPECT_EQ(strings_changed, 0);
  EXPECT_GT(refused, metadata_bytes / 2);
}

// A file without checksums (an older turboattn, or another writer) is still read, and says so.
TEST(Activations, FileWithoutChecksumsIsReadWithOneWarning) {
  const std::string p = temp_path("no_checksums");
  const ActivationMeta m = small_meta();
  const Written w = write_file(p, m, true);
  edit_file(p, [&](hid_t f) {  // /tokens again, chunked + gzip, no fletcher32
    ASSERT_GE(H5Ldelete(f, "/tokens", H5P_DEFAULT), 0);
    const hsize_t n = static_cast<hsize_t>(m.n_tokens);
    const hid_t sp = H5Screate_simple(1, &n, nullptr);
    const hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 1, &n);
    H5Pset_deflate(dcpl, 6);
    const hid_t ds = H5Dcreate2(f, "/tokens", H5T_STD_I32LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    ASSERT_GE(ds, 0);
    ASSERT_GE(H5Dwrite(ds, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, w.tokens.data()), 0);
    H5Dclose(ds);
    H5Pclose(dcpl);
    H5Sclose(sp);
  });
  ::testing::internal::CaptureStderr();
  {
    const ActivationReader r(p);
    EXPECT_FALSE(r.checksummed());
    EXPECT_EQ(r.tokens(), w.tokens);
    expect_same_bits(r.read(1, 'k'), w.k[1]);
  }
  const ActivationReader again(p);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("warning: '" + p + "' was written without checksums"), std::string::npos)
      << err;
  EXPECT_EQ(err.find("warning"), err.rfind("warning")) << "warned more than once: " << err;
}

// Issue 10 defect 15: a FIFO as --data blocked forever; a directory gave an HDF5 message.
TEST(Activations, FifoOrDirectoryIsNamed) {
  const std::string dir = ::testing::TempDir() + "/turbo_act_dir";
  ::mkdir(dir.c_str(), 0700);
  EXPECT_NE(error_of([&] { ActivationReader r(dir); }).find("is a directory"), std::string::npos);
  const std::string fifo = dir + "/fifo.h5";
  ::unlink(fifo.c_str());
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_NE(error_of([&] { ActivationReader r(fifo); }).find("FIFO"), std::string::npos);
}

}  // namespace
}  // namespace data
}  // namespace turbo
