// turboattn._core: the Python extension (nanobind). A thin layer over the Backend interface
// (core/backend.h) and the knob table (core/config.h): every op of every built backend, on host
// arrays passed through DLPack (NumPy, PyTorch CPU tensors, anything with __dlpack__), without
// copies; and, when the cuda backend is built, its attention and KV cache on CUDA device arrays
// (PyTorch CUDA tensors) in place, through cuda/device_api.h, on the stream the caller names. The
// Python package (turboattn/__init__.py) is the public front; this module checks shapes and dtypes,
// builds tensor views over the caller's memory and calls the backend.
//
// Configs travel as knob strings ("name=value,..."), parsed by parse_attention_config, so Python
// and the CLI read knobs through the same table. turbo::Error becomes turboattn.Error with the
// same message.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/unique_ptr.h>
#include <nanobind/stl/vector.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/config.h"
#include "eval/metrics.h"
#include "reference/reference.h"
#ifdef TURBO_HAVE_CUDA
#include "cuda/cuda_backend.h"
#include "cuda/device_api.h"
#endif

namespace nb = nanobind;

namespace turbo {
namespace py {
namespace {

// Inputs may be read-only (h5py, np.frombuffer); outputs must be writable.
using Array = nb::ndarray<nb::ro, nb::device::cpu>;
using OutArray = nb::ndarray<nb::device::cpu>;

constexpr nb::dlpack::dtype kF16{static_cast<uint8_t>(nb::dlpack::dtype_code::Float), 16, 1};
constexpr nb::dlpack::dtype kF32{static_cast<uint8_t>(nb::dlpack::dtype_code::Float), 32, 1};
constexpr nb::dlpack::dtype kF64{static_cast<uint8_t>(nb::dlpack::dtype_code::Float), 64, 1};
constexpr nb::dlpack::dtype kI8{static_cast<uint8_t>(nb::dlpack::dtype_code::Int), 8, 1};
constexpr nb::dlpack::dtype kU8{static_cast<uint8_t>(nb::dlpack::dtype_code::UInt), 8, 1};

std::string dtype_name(nb::dlpack::dtype t) {
  const char* code = "?";
  switch (static_cast<nb::dlpack::dtype_code>(t.code)) {
    case nb::dlpack::dtype_code::Float:
      code = "float";
      break;
    case nb::dlpack::dtype_code::Int:
      code = "int";
      break;
    case nb::dlpack::dtype_code::UInt:
      code = "uint";
      break;
    case nb::dlpack::dtype_code::Bfloat:
      code = "bfloat";
      break;
    default:
      break;
  }
  return code + std::to_string(t.bits);
}

template <typename A>
std::string shape_str(const A& a) {
  std::string s = "[";
  for (size_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
  return s + "]";
}

template <typename A>
void check_dtype(const A& a, nb::dlpack::dtype want, const char* what, const char* want_name) {
  TURBO_CHECK(a.dtype() == want,
              what << " must be " << want_name << ", got " << dtype_name(a.dtype()));
}

// A contiguous array of `n` elements of `want` (any shape).
template <typename T, typename A>
T* contiguous_data(const A& a, nb::dlpack::dtype want, const char* what, const char* want_name,
                   int64_t n) {
  check_dtype(a, want, what, want_name);
  int64_t expect = 1;
  for (size_t i = a.ndim(); i-- > 0;) {
    TURBO_CHECK(a.shape(i) == 1 || a.stride(i) == expect,
                what << " must be C-contiguous (shape " << shape_str(a) << ")");
    expect *= static_cast<int64_t>(a.shape(i));
  }
  TURBO_CHECK(static_cast<int64_t>(a.size()) == n, what << " must hold " << n << " elements, got "
                                                        << a.size() << " (shape " << shape_str(a)
                                                        << ")");
  return static_cast<T*>(a.data());
}

// A [B, H, N, D] FP16 view over the array's memory (any strides, the last one 1).
template <typename T, typename A>
Tensor4<T> half_view(const A& a, const char* what) {
  check_dtype(a, kF16, what, "float16");
  TURBO_CHECK(a.ndim() == 4,
              what << " must have 4 dimensions [B, H, N, D], got shape " << shape_str(a));
  TURBO_CHECK(a.shape(3) <= 1 || a.stride(3) == 1,
              what << " must have unit stride in its last dimension (D)");
  Tensor4<T> t;
  t.data = static_cast<T*>(a.data());
  for (int i = 0; i < 4; ++i) {
    t.shape[i] = static_cast<int64_t>(a.shape(static_cast<size_t>(i)));
    t.stride[i] = i == 3 ? 1 : static_cast<int64_t>(a.stride(static_cast<size_t>(i)));
    TURBO_CHECK(t.stride[i] >= 0, what << " has a negative stride");
  }
  return t;
}

AttentionConfig parsed_config(const std::string& key) {
  AttentionConfig c = parse_attention_config(key);
  const Status s = c.validate();
  TURBO_CHECK(s.ok, "invalid config: " << s.message);
  return c;
}

std::vector<nb::dict> stats_dicts(const std::vector<AttentionStats>& stats) {
  std::vector<nb::dict> out;
  for (const AttentionStats& s : stats) {
    nb::dict d;
    d["rows"] = s.rows;
    d["scored"] = s.scored;
    d["zeroed"] = s.zeroed;
    d["dropped_mass"] = s.dropped_mass;
    out.push_back(std::move(d));
  }
  return out;
}

nb::dict bytes_dict(const KvBytes& b) {
  nb::dict d;
  d["codes"] = b.codes;
  d["metadata"] = b.metadata;
  d["buffer"] = b.buffer;
  d["tokens"] = b.tokens;
  d["total"] = b.total();
  return d;
}

// The layout of one block; Backend::compress_block / decompress_block check it.
BlockLayout block_layout(int n_b, int d, int bits, const std::string& axis, int group_size) {
  BlockLayout l;
  l.n_b = n_b;
  l.d = d;
  l.bits = bits;
  l.axis = static_cast<int>(parse_enum<Stage2Axis>(axis, "axis"));
  l.group_size = group_size;
  return l;
}

// The spec of a cache made from Python: the config key and the shape (head_bits: the per-kv-head
// bit map of kv_bits=mixed, or empty).
KvCacheSpec cache_spec(const std::string& key, int batch, int kv_heads, int head_dim,
                       const std::vector<int>& head_bits) {
  KvCacheSpec spec;
  spec.config = parse_attention_config(key);
  spec.batch = batch;
  spec.kv_heads = kv_heads;
  spec.head_dim = head_dim;
  spec.head_bits = head_bits;
  return spec;
}

// One layer's compressed KV cache, owned together with the backend that made it.
struct PyKvCache {
  std::shared_ptr<Backend> backend;
  std::unique_ptr<KvCache> cache;
  AttentionConfig config;
};

// A backend as Python sees it; shared so that caches keep it alive.
struct PyBackend {
  std::shared_ptr<Backend> impl;

  std::string name() const { return impl->name(); }

  std::pair<bool, std::string> supports(const std::string& key) const {
    const Status s = impl->supports(parse_attention_config(key));
    return {s.ok, s.message};
  }

  void quantize_stage1(const Array& x, int64_t group_rows, const OutArray& codes,
                       const OutArray& scales) {
    TURBO_CHECK(x.ndim() == 2, "x must be [n, d], got shape " << shape_str(x));
    const int64_t n = static_cast<int64_t>(x.shape(0)), d = static_cast<int64_t>(x.shape(1));
    TURBO_CHECK(group_rows >= 1, "group_rows must be >= 1, got " << group_rows);
    const Half* xp = contiguous_data<const Half>(x, kF16, "x", "float16", n * d);
    int8_t* cp = contiguous_data<int8_t>(codes, kI8, "codes", "int8", n * d);
    float* sp = contiguous_data<float>(scales, kF32, "scales", "float32",
                                       (n + group_rows - 1) / group_rows);
    nb::gil_scoped_release release;
    impl->quantize_stage1(xp, n, static_cast<int>(d), group_rows, cp, sp);
  }

  void compress_block(const Array& q, int bits, const std::string& axis, int group_size,
                      const OutArray& block) {
    TURBO_CHECK(q.ndim() == 2, "codes must be [n_b, d], got shape " << shape_str(q));
    const BlockLayout l = block_layout(static_cast<int>(q.shape(0)), static_cast<int>(q.shape(1)),
                                       bits, axis, group_size);
    const int8_t* qp = contiguous_data<const int8_t>(q, kI8, "codes", "int8", l.elements());
    uint8_t* bp = contiguous_data<uint8_t>(block, kU8, "block", "uint8", l.bytes());
    nb::gil_scoped_release release;
    impl->compress_block(qp, l, bp);
  }

  void decompress_block(const Array& block, int n_b, int d, int bits, const std::string& axis,
                        int group_size, const OutArray& q) {
    const BlockLayout l = block_layout(n_b, d, bits, axis, group_size);
    const uint8_t* bp = contiguous_data<const uint8_t>(block, kU8, "block", "uint8", l.bytes());
    int8_t* qp = contiguous_data<int8_t>(q, kI8, "codes", "int8", l.elements());
    nb::gil_scoped_release release;
    impl->decompress_block(bp, l, qp);
  }

  void quantize_asym(const Array& x, int bits, const std::string& storage, const OutArray& codes,
                     const OutArray& scales, const OutArray& zeros) {
    TURBO_CHECK(x.ndim() == 2, "x must be [n_groups, group_len], got shape " << shape_str(x));
    const int64_t g = static_cast<int64_t>(x.shape(0)), len = static_cast<int64_t>(x.shape(1));
    const ScaleStorage st = parse_enum<ScaleStorage>(storage, "scale_storage");
    const Half* xp = contiguous_data<const Half>(x, kF16, "x", "float16", g * len);
    uint8_t* cp = contiguous_data<uint8_t>(codes, kU8, "codes", "uint8", g * len);
    float* sp = contiguous_data<float>(scales, kF32, "scales", "float32", g);
    float* zp = contiguous_data<float>(zeros, kF32, "zeros", "float32", g);
    nb::gil_scoped_release release;
    impl->quantize_asym(xp, g, static_cast<int>(len), bits, st, cp, sp, zp);
  }

  void sas(const Array& x, const std::string& key, const OutArray& out) {
    const int64_t n = static_cast<int64_t>(x.size());
    const Half* xp = contiguous_data<const Half>(x, kF16, "x", "float16", n);
    float* op = contiguous_data<float>(out, kF32, "out", "float32", n);
    const AttentionConfig c = parsed_config(key);
    nb::gil_scoped_release release;
    impl->sas(xp, n, c.sas, op);
  }

  std::vector<nb::dict> attention_prefill(const std::string& key, const Array& q, const Array& k,
                                          const Array& v, const OutArray& o) {
    // Shapes, finiteness and the config are checked once, by the Backend front (core/backend.h).
    const AttentionConfig c = parse_attention_config(key);
    const ConstHalfTensor qt = half_view<const Half>(q, "q"), kt = half_view<const Half>(k, "k"),
                          vt = half_view<const Half>(v, "v");
    const HalfTensor ot = half_view<Half>(o, "o");
    std::vector<AttentionStats> stats(static_cast<size_t>(qt.batch() * qt.heads()));
    {
      nb::gil_scoped_release release;
      impl->attention_prefill(c, qt, kt, vt, ot, stats.data());
    }
    return stats_dicts(stats);
  }

  PyKvCache create_cache(const std::string& key, int batch, int kv_heads, int head_dim,
                         const std::vector<int>& head_bits) {
    const KvCacheSpec spec = cache_spec(key, batch, kv_heads, head_dim, head_bits);
    PyKvCache c;
    c.backend = impl;
    c.config = spec.config;
    c.cache = impl->create_cache(spec);
    return c;
  }
};

void cache_append(PyKvCache& c, const Array& k, const Array& v) {
  const ConstHalfTensor kt = half_view<const Half>(k, "k"), vt = half_view<const Half>(v, "v");
  nb::gil_scoped_release release;
  c.backend->cache_append(*c.cache, kt, vt);
}

std::vector<nb::dict> cache_decode(PyKvCache& c, const Array& q, const OutArray& o) {
  const ConstHalfTensor qt = half_view<const Half>(q, "q");
  const HalfTensor ot = half_view<Half>(o, "o");
  std::vector<AttentionStats> stats(static_cast<size_t>(qt.batch() * qt.heads()));
  {
    nb::gil_scoped_release release;
    c.backend->attention_decode(c.config, qt, *c.cache, ot, stats.data());
  }
  return stats_dicts(stats);
}

#ifdef TURBO_HAVE_CUDA
// ---- CUDA device arrays (cuda/device_api.h): read and written in place, no host copy ----------

using CudaArray = nb::ndarray<nb::ro, nb::device::cuda>;
using CudaOutArray = nb::ndarray<nb::device::cuda>;

template <typename A>
cuda::ConstDeviceHalfTensor cuda_in(const A& a, const char* what) {
  return {half_view<const Half>(a, what), a.device_id()};
}
cuda::DeviceHalfTensor cuda_out(const CudaOutArray& a, const char* what) {
  return {half_view<Half>(a, what), a.device_id()};
}
cudaStream_t as_stream(uintptr_t stream) { return reinterpret_cast<cudaStream_t>(stream); }

// Stats only when asked for (`want_stats`): they take the rows kernel instead of the MMA one and
// a read back of per-row counters (an empty list otherwise).
std::vector<nb::dict> prefill_cuda(const std::string& key, const CudaArray& q, const CudaArray& k,
                                   const CudaArray& v, const CudaOutArray& o, uintptr_t stream,
                                   bool want_stats) {
  const AttentionConfig c = parse_attention_config(key);
  const auto qt = cuda_in(q, "q"), kt = cuda_in(k, "k"), vt = cuda_in(v, "v");
  const auto ot = cuda_out(o, "o");
  std::vector<AttentionStats> stats(
      want_stats ? static_cast<size_t>(qt.view.batch() * qt.view.heads()) : 0);
  {
    nb::gil_scoped_release release;
    cuda::attention_prefill_device(c, qt, kt, vt, ot, as_stream(stream),
                                   want_stats ? stats.data() : nullptr);
  }
  return stats_dicts(stats);
}

PyKvCache create_cache_cuda(const std::string& key, int batch, int kv_heads, int head_dim,
                            const std::vector<int>& head_bits, int device) {
  const KvCacheSpec spec = cache_spec(key, batch, kv_heads, head_dim, head_bits);
  PyKvCache c;
  c.backend = std::shared_ptr<Backend>(cuda::make_cuda_backend());  // host-array calls
  c.config = spec.config;
  c.cache = cuda::create_cache_device(spec, device);
  return c;
}

void cache_append_cuda(PyKvCache& c, const CudaArray& k, const CudaArray& v, uintptr_t stream) {
  const auto kt = cuda_in(k, "k"), vt = cuda_in(v, "v");
  nb::gil_scoped_release release;
  cuda::cache_append_device(*c.cache, kt, vt, as_stream(stream));
}

std::vector<nb::dict> cache_decode_cuda(PyKvCache& c, const CudaArray& q, const CudaOutArray& o,
                                        uintptr_t stream, bool want_stats) {
  const auto qt = cuda_in(q, "q");
  const auto ot = cuda_out(o, "o");
  std::vector<AttentionStats> stats(
      want_stats ? static_cast<size_t>(qt.view.batch() * qt.view.heads()) : 0);
  {
    nb::gil_scoped_release release;
    cuda::attention_decode_device(c.config, qt, *c.cache, ot, as_stream(stream),
                                  want_stats ? stats.data() : nullptr);
  }
  return stats_dicts(stats);
}
#endif

void attention_reference(const Array& q, const Array& k, const Array& v, bool causal, float tau,
                         const OutArray& out) {
  const ConstHalfTensor qt = half_view<const Half>(q, "q"), kt = half_view<const Half>(k, "k"),
                        vt = half_view<const Half>(v, "v");
  double* op = contiguous_data<double>(out, kF64, "out", "float64", qt.numel());
  TURBO_CHECK(qt.tokens() <= kt.tokens(),
              "q has " << qt.tokens() << " rows but only " << kt.tokens() << " keys");
  // Not a Backend op: the shape checks the front runs for attention, on q's shape as output.
  check_attention_shapes(
      qt, kt, vt, HalfTensor::contiguous(nullptr, qt.batch(), qt.heads(), qt.tokens(), qt.dim()));
  nb::gil_scoped_release release;
  if (qt.tokens() == kt.tokens()) {
    ref::attention_fp64(qt, kt, vt, causal, tau, op);
  } else {
    TURBO_CHECK(causal, "non-causal attention needs as many query rows as keys");
    ref::attention_fp64_decode(qt, kt, vt, tau, op);
  }
}

nb::dict error_metrics(const Array& o, const Array& ref) {
  const int64_t n = static_cast<int64_t>(o.size());
  const Half* op = contiguous_data<const Half>(o, kF16, "o", "float16", n);
  const double* rp = contiguous_data<const double>(ref, kF64, "ref", "float64", n);
  eval::ErrorAccumulator acc;
  acc.add(op, rp, n);
  const eval::ErrorMetrics m = acc.result();
  nb::dict d;
  d["rel_l2"] = m.rel_l2;
  d["nmse"] = m.nmse;
  d["max_abs"] = m.max_abs;
  d["cosine"] = m.cosine;
  return d;
}

std::vector<nb::dict> knob_table() {
  const AttentionConfig defaults;
  std::vector<nb::dict> out;
  for (const Knob& k : knobs()) {
    nb::dict d;
    d["name"] = std::string(k.name);
    d["help"] = std::string(k.help);
    d["values"] = k.values;
    d["default"] = k.get(defaults);
    out.push_back(std::move(d));
  }
  return out;
}

void register_backends() {
  ref::register_reference_backend();
#ifdef TURBO_HAVE_CUDA
  cuda::register_cuda_backend();
#endif
}

}  // namespace
}  // namespace py
}  // namespace turbo

NB_MODULE(_core, m) {
  using namespace turbo;
  using namespace turbo::py;
  m.doc() = "turboattn C++ core: backends, ops and the knob table (use the turboattn package)";
  nb::exception<Error>(m, "Error", PyExc_ValueError);
  register_backends();

  m.def("backends", &backend_names, "names of the backends this build has");
  m.def("knobs", &knob_table, "the knob table: name, help, valid values, default");
  m.def(
      "config_key", [](const std::string& key) { return parsed_config(key).to_string(); },
      "canonical AttentionConfig::to_string() key of a 'name=value,...' string (validated)");
  m.def("attention_reference", &attention_reference);
  m.def("error_metrics", &error_metrics);

  nb::class_<PyKvCache>(m, "KvCacheHandle")
      .def("append", &cache_append)
      .def("decode", &cache_decode)
      .def_prop_ro("length", [](const PyKvCache& c) { return c.cache->length(); })
      .def("bytes", [](const PyKvCache& c) { return bytes_dict(c.cache->bytes()); })
      .def_prop_ro("config_key", [](const PyKvCache& c) { return c.config.to_string(); })
#ifdef TURBO_HAVE_CUDA
      .def("append_cuda", &cache_append_cuda)
      .def("decode_cuda", &cache_decode_cuda)
#endif
      ;

  nb::class_<PyBackend>(m, "Backend")
      .def_prop_ro("name", &PyBackend::name)
      .def("supports", &PyBackend::supports)
      .def("quantize_stage1", &PyBackend::quantize_stage1)
      .def("compress_block", &PyBackend::compress_block)
      .def("decompress_block", &PyBackend::decompress_block)
      .def("quantize_asym", &PyBackend::quantize_asym)
      .def("sas", &PyBackend::sas)
      .def("attention_prefill", &PyBackend::attention_prefill)
      .def("create_cache", &PyBackend::create_cache);
  m.def("make_backend", [](const std::string& name) {
    PyBackend b;
    b.impl = std::shared_ptr<Backend>(make_backend(name));
    return b;
  });
#ifdef TURBO_HAVE_CUDA
  m.def("attention_prefill_cuda", &prefill_cuda,
        "flashq prefill on CUDA device arrays, in place, on the given stream (cudaStream_t)");
  m.def("create_cache_cuda", &create_cache_cuda, "a cuda-backend KV cache on the given device");
#endif
  m.def("block_bytes", [](int n_b, int d, int bits, const std::string& axis, int group_size) {
    return block_layout(n_b, d, bits, axis, group_size).bytes();
  });
}
