#include "eval/validate.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <sstream>

#include "core/backend.h"
#include "core/error.h"
#include "core/host/progress.h"
#include "core/host/rng.h"
#include "core/kv_layout.h"
#include "datasets/activations.h"
#include "eval/backends.h"
#include "eval/commands.h"
#include "reference/reference.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace turbo {
namespace eval {
namespace {

void set_threads(int n) {
#ifdef _OPENMP
  if (n > 0) omp_set_num_threads(n);
#else
  (void)n;
#endif
}

// Seeded Gaussian generator (host/rng.h's splitmix64 + Box-Muller): identical inputs on every
// platform.
class Rng {
 public:
  explicit Rng(uint64_t seed) : g_(seed * SplitMix64::kGolden + 1) {}
  uint64_t next() { return g_.next(); }
  double uniform() { return (static_cast<double>(g_.next() >> 11) + 0.5) * 0x1.0p-53; }  // (0, 1)
  double normal() {
    return std::sqrt(-2.0 * std::log(uniform())) * std::cos(6.283185307179586 * uniform());
  }

 private:
  SplitMix64 g_;
};

// Gaussian FP16 tensor; with `outliers`, every 16th channel is 12x larger (as real K often is).
HostTensor<Half> random_tensor(Rng& rng, int64_t h, int64_t n, int64_t d, bool outliers) {
  HostTensor<Half> t(1, h, n, d);
  for (int64_t i = 0; i < t.numel(); ++i) {
    const double scale = outliers && (i % d) % 16 == 3 ? 12.0 : 1.0;
    t.storage[static_cast<size_t>(i)] = float_to_half(static_cast<float>(rng.normal() * scale));
  }
  return t;
}

ConstHalfTensor token_slice(const HostTensor<Half>& x, int64_t t0, int64_t t1) {
  ConstHalfTensor v = x.view();
  v.data = x.storage.data() + t0 * x.d;
  v.shape[2] = t1 - t0;
  return v;
}

constexpr uint16_t kPoison = 0x7e01;  // a NaN no op produces

template <typename T>
int64_t count_mismatch(const T* a, const T* b, int64_t n) {
  int64_t m = 0;
  for (int64_t i = 0; i < n; ++i)
    if (std::memcmp(a + i, b + i, sizeof(T)) != 0) ++m;
  return m;
}

// Compares two FP16 outputs: exact -> mismatch count; approximate -> relative L2 against bound.
void compare_half(ValidateCase& c, const HostTensor<Half>& a, const HostTensor<Half>& b,
                  double bound) {
  c.compared += a.numel();
  double num = 0, den = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const Half x = a.storage[static_cast<size_t>(i)], y = b.storage[static_cast<size_t>(i)];
    if (x.bits == kPoison || y.bits == kPoison) {
      ++c.mismatches;
      c.note = "output element not written";
      continue;
    }
    if (x.bits != y.bits) ++c.mismatches;
    const double e = static_cast<double>(half_to_float(x)) - half_to_float(y);
    c.max_diff = std::max(c.max_diff, std::fabs(e));
    num += e * e;
    den += static_cast<double>(half_to_float(y)) * half_to_float(y);
  }
  if (den == 0) c.note = "reference output is all zero";
  c.error = den > 0 ? std::sqrt(num / den) : 0;
  c.bound = bound;
  c.pass = den > 0 && c.note.empty() && (c.exact ? c.mismatches == 0 : c.error <= bound);
}

bool is_exact(const AttentionConfig& c) {
  return c.method == Method::kFlashQ && c.sas.exp_mode == ExpMode::kSas &&
         c.p_quant != PQuant::kFp16;
}

// 2 * (floor error vs FP64) + 2^-11 for the inputs of one attention case.
double attention_bound(const ConstHalfTensor& q, const ConstHalfTensor& k, const ConstHalfTensor& v,
                       bool causal, bool decode) {
  const int64_t n = q.numel();
  std::vector<double> gt(static_cast<size_t>(n));
  if (decode)
    ref::attention_fp64_decode(q, k, v, 0.0f, gt.data());
  else
    ref::attention_fp64(q, k, v, causal, 0.0f, gt.data());
  HostTensor<Half> fl(q.batch(), q.heads(), q.tokens(), q.dim());
  ref::attention_fp16_floor(q, k, v, decode ? true : causal, 0.0f, fl.view());
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double e = half_to_float(fl.storage[static_cast<size_t>(i)]) - gt[static_cast<size_t>(i)];
    num += e * e;
    den += gt[static_cast<size_t>(i)] * gt[static_cast<size_t>(i)];
  }
  return 2.0 * std::sqrt(num / std::max(den, 1e-300)) + std::ldexp(1.0, -11);
}

class Harness {
 public:
  explicit Harness(const ValidateOptions& o)
      : o_(o), test_(make_backend(o.backend)), ref_(make_backend(o.against)) {}

  // Runs `fn` on the backend under test and on the reference, each with its thread count.
  void both(const std::function<void(Backend&)>& on_test,
            const std::function<void(Backend&)>& on_ref) {
    set_threads(o_.threads);
    on_test(*test_);
    set_threads(o_.against_threads);
    on_ref(*ref_);
    set_threads(o_.threads);
  }

  void stage1(Rng& rng) {
    for (int64_t n : {1, 17, 64, 200})
      for (int d : {64, 128, 256})
        for (int64_t g : {int64_t{1}, int64_t{64}, n}) {
          if (o_.quick && d != 128) continue;
          HostTensor<Half> x = random_tensor(rng, 1, n, d, true);
          if (n >= 64)
            std::fill(x.storage.begin(), x.storage.begin() + d, Half{0});  // amax = 0 row
          const int64_t groups = (n + g - 1) / g;
          std::vector<int8_t> ca(static_cast<size_t>(n * d), 99),
              cb(static_cast<size_t>(n * d), 98);
          std::vector<float> sa(static_cast<size_t>(groups), NAN),
              sb(static_cast<size_t>(groups), -1.f);
          both(
              [&](Backend& b) {
                b.quantize_stage1(x.storage.data(), n, d, g, ca.data(), sa.data());
              },
              [&](Backend& b) {
                b.quantize_stage1(x.storage.data(), n, d, g, cb.data(), sb.data());
              });
          ValidateCase c{"quantize_stage1", vars("n", n, "d", d, "group_rows", g)};
          c.compared = n * d + groups;
          c.mismatches = count_mismatch(ca.data(), cb.data(), n * d) +
                         count_mismatch(sa.data(), sb.data(), groups);
          c.pass = c.mismatches == 0;
          add(c);
        }
  }

  void stage2(Rng& rng) {
    for (int d : {64, 128})
      for (int bits : {4, 2})
        for (int axis : {0, 1}) {
          const BlockLayout layout{64, d, bits, axis, 32};
          std::vector<int8_t> q(static_cast<size_t>(layout.elements()));
          for (auto& x : q) x = static_cast<int8_t>(static_cast<int>(rng.next() % 255) - 127);
          std::vector<uint8_t> ba(static_cast<size_t>(layout.bytes()), 0xA5), bb = ba;
          both([&](Backend& b) { b.compress_block(q.data(), layout, ba.data()); },
               [&](Backend& b) { b.compress_block(q.data(), layout, bb.data()); });
          ValidateCase c{"compress_block", vars("n_b", 64, "d", d, "bits", bits) +
                                               (axis ? ",axis=token" : ",axis=channel")};
          c.compared = layout.bytes();
          c.mismatches = count_mismatch(ba.data(), bb.data(), layout.bytes());
          c.pass = c.mismatches == 0;
          add(c);
          std::vector<int8_t> da(q.size(), 99), db(q.size(), 98);
          both([&](Backend& b) { b.decompress_block(bb.data(), layout, da.data()); },
               [&](Backend& b) { b.decompress_block(bb.data(), layout, db.data()); });
          ValidateCase e{"decompress_block", c.vars};
          e.compared = layout.elements();
          e.mismatches = count_mismatch(da.data(), db.data(), layout.elements());
          e.pass = e.mismatches == 0;
          add(e);
        }
  }

  void asym(Rng& rng) {
    for (int len : {32, 128})
      for (int bits : {4, 2})
        for (ScaleStorage st : {ScaleStorage::kFp16, ScaleStorage::kFp32}) {
          const int64_t groups = 37;
          HostTensor<Half> x = random_tensor(rng, 1, groups, len, false);
          std::fill(x.storage.begin(), x.storage.begin() + len,
                    float_to_half(0.5f));  // s = 0 group
          std::vector<uint8_t> ca(static_cast<size_t>(groups * len), 99), cb(ca.size(), 98);
          std::vector<float> sa(groups, NAN), sb(groups, -1), za(groups, NAN), zb(groups, -1);
          both(
              [&](Backend& b) {
                b.quantize_asym(x.storage.data(), groups, len, bits, st, ca.data(), sa.data(),
                                za.data());
              },
              [&](Backend& b) {
                b.quantize_asym(x.storage.data(), groups, len, bits, st, cb.data(), sb.data(),
                                zb.data());
              });
          ValidateCase c{"quantize_asym", vars("group_len", len, "bits", bits, "groups", groups) +
                                              ",storage=" + enum_name(st)};
          c.compared = groups * (len + 2);
          c.mismatches = count_mismatch(ca.data(), cb.data(), groups * len) +
                         count_mismatch(sa.data(), sb.data(), groups) +
                         count_mismatch(za.data(), zb.data(), groups);
          c.pass = c.mismatches == 0;
          add(c);
        }
  }

  void sas() {
    for (const char* key : {"n_r=6", "n_r=3,poly=minimax4", "n_r=10,poly=taylor2",
                            "n_r=6,sas_precision=fp32", "n_r=6,exp_mode=exact"}) {
      const AttentionConfig cfg = parse_attention_config(key);
      // Every FP16 x in [0, n_r + 1), plus +inf.
      std::vector<Half> xs;
      for (uint32_t h = 0; h < 0x7c00; ++h)
        if (half_to_float(Half{static_cast<uint16_t>(h)}) < cfg.sas.n_r + 1)
          xs.push_back(Half{static_cast<uint16_t>(h)});
      xs.push_back(Half{0x7c00});
      const int64_t n = static_cast<int64_t>(xs.size());
      std::vector<float> a(xs.size(), NAN), b(xs.size(), -1);
      both([&](Backend& be) { be.sas(xs.data(), n, cfg.sas, a.data()); },
           [&](Backend& be) { be.sas(xs.data(), n, cfg.sas, b.data()); });
      ValidateCase c{"sas", key};
      c.exact = cfg.sas.exp_mode == ExpMode::kSas;
      c.compared = n;
      c.mismatches = count_mismatch(a.data(), b.data(), n);
      double worst = 0;
      for (int64_t i = 0; i < n; ++i) {
        const double d = std::fabs(static_cast<double>(a[i]) - b[i]);
        c.max_diff = std::max(c.max_diff, d);
        if (b[i] != 0) worst = std::max(worst, d / std::fabs(b[i]));
      }
      c.error = worst;
      c.bound = 4 * 0x1.0p-23;  // expf: a few ulp between libm and CUDA
      c.pass = c.exact ? c.mismatches == 0 : worst <= c.bound;
      add(c);
    }
  }

  // Records the case as unsupported when the backend under test declines `cfg`.
  bool declined(const AttentionConfig& cfg, const std::string& op, const std::string& vars) {
    const Status st = test_->supports(cfg);
    if (st.ok) return false;
    ValidateCase c(op, vars);
    c.unsupported = true;
    c.note = st.message;
    add(c);
    return true;
  }

  void prefill_case(const std::string& key, const HostTensor<Half>& q, const HostTensor<Half>& k,
                    const HostTensor<Half>& v, const std::string& shape) {
    const AttentionConfig cfg = parse_attention_config(key);
    if (declined(cfg, "attention_prefill", shape + "," + key)) return;
    HostTensor<Half> oa(1, q.h, q.n, q.d), ob(1, q.h, q.n, q.d);
    std::fill(oa.storage.begin(), oa.storage.end(), Half{kPoison});
    std::fill(ob.storage.begin(), ob.storage.end(), Half{kPoison});
    std::vector<AttentionStats> sa(static_cast<size_t>(q.h)), sb(static_cast<size_t>(q.h));
    both(
        [&](Backend& b) {
          b.attention_prefill(cfg, q.view(), k.view(), v.view(), oa.view(), sa.data());
        },
        [&](Backend& b) {
          b.attention_prefill(cfg, q.view(), k.view(), v.view(), ob.view(), sb.data());
        });
    ValidateCase c{"attention_prefill", shape + "," + key};
    c.exact = is_exact(cfg);
    compare_half(c, oa, ob,
                 c.exact ? 0 : attention_bound(q.view(), k.view(), v.view(), cfg.causal, false));
    for (size_t h = 0; h < sa.size(); ++h)
      if (sa[h].rows != sb[h].rows || sa[h].scored != sb[h].scored ||
          (c.exact && sa[h].zeroed != sb[h].zeroed)) {
        c.pass = false;
        c.note = "stats differ (head " + std::to_string(h) + ")";
      }
    add(c);
  }

  void decode_case(const std::string& key, const HostTensor<Half>& q, const HostTensor<Half>& k,
                   const HostTensor<Half>& v, int64_t L, int64_t q_len, const std::string& shape,
                   const std::vector<int>& head_bits = {}) {
    const AttentionConfig cfg = parse_attention_config(key);
    if (declined(cfg, cfg.splits > 1 ? "decode split-K" : "cache+decode",
                 shape + ",L=" + std::to_string(L) + "," + key))
      return;
    KvCacheSpec spec;
    spec.config = cfg;
    spec.kv_heads = static_cast<int>(k.h);
    spec.head_dim = static_cast<int>(k.d);
    spec.head_bits = head_bits;
    std::unique_ptr<KvCache> ca, cb;
    HostTensor<Half> oa(1, q.h, q_len, q.d), ob(1, q.h, q_len, q.d);
    std::fill(oa.storage.begin(), oa.storage.end(), Half{kPoison});
    std::fill(ob.storage.begin(), ob.storage.end(), Half{kPoison});
    // The decode pattern: a prompt of L - q_len tokens (at least 1) in one append, then one token
    // per append (k_smooth=mean fixes the mean at the first append, so both sides append alike).
    auto run = [&](Backend& b, std::unique_ptr<KvCache>& cache, HostTensor<Half>& o) {
      cache = b.create_cache(spec);
      const int64_t prompt = std::max<int64_t>(1, L - q_len);
      b.cache_append(*cache, token_slice(k, 0, prompt), token_slice(v, 0, prompt));
      for (int64_t t = prompt; t < L; ++t)
        b.cache_append(*cache, token_slice(k, t, t + 1), token_slice(v, t, t + 1));
      b.attention_decode(cfg, token_slice(q, L - q_len, L), *cache, o.view(), nullptr);
    };
    both([&](Backend& b) { run(b, ca, oa); }, [&](Backend& b) { run(b, cb, ob); });
    ValidateCase c{
        cfg.splits > 1 ? "decode split-K" : "cache+decode",
        shape + ",L=" + std::to_string(L) + ",q_len=" + std::to_string(q_len) + "," + key};
    c.exact = is_exact(cfg);
    compare_half(c, oa, ob,
                 c.exact ? 0
                         : attention_bound(token_slice(q, L - q_len, L), token_slice(k, 0, L),
                                           token_slice(v, 0, L), true, true));
    const KvBytes ba = ca->bytes(), bb = cb->bytes();
    if (ba.codes != bb.codes || ba.metadata != bb.metadata || ba.buffer != bb.buffer ||
        ba.tokens != bb.tokens) {
      c.pass = false;
      c.note = "KvCache::bytes() differ: " + std::to_string(ba.total()) + " vs " +
               std::to_string(bb.total());
    }
    add(c);
  }

  void attention(Rng& rng) {
    struct Shape {
      int64_t hq, hkv, n, d;
    };
    std::vector<Shape> shapes = {
        {1, 1, 1, 64}, {2, 1, 17, 64}, {4, 2, 127, 128}, {6, 2, 64, 256}, {3, 3, 200, 64}};
    if (o_.quick) shapes = {{2, 1, 17, 64}, {4, 2, 127, 128}};
    const std::vector<std::string> prefill_keys = {
        "method=flashq",
        "method=flashq,causal=0",
        "method=flashq,q_gran=token,kv_gran=token",
        "method=flashq,k_smooth=mean,p_quant=s8",
        "method=flashq,p_quant=u8_row,n_r=3,poly=minimax3",
        "method=flashq,q_gran=head,kv_gran=head,sas_precision=fp32",
        "method=flashq,exp_mode=exact",
        "method=flashq,p_quant=fp16",
        "method=fp16",
        "method=kivi,kv_bits=2,group_size=32,residual=32",
        "method=int8kv",
        "method=sage,k_smooth=mean",
        "method=fp8,p_quant=u8_row"};
    const std::vector<std::string> decode_keys = {
        "method=flashq,kv_bits=8",
        "method=flashq,kv_bits=4",
        "method=flashq,kv_bits=2,k_axis=token,v_axis=token",
        "method=flashq,kv_bits=4,buffer=int8",
        "method=flashq,kv_bits=4,k_smooth=mean",
        "method=flashq,kv_bits=2,splits=3",
        "method=flashq,kv_bits=4,splits=2,p_quant=u8_row",
        "method=flashq,kv_bits=4,exp_mode=exact",
        "method=fp16",
        "method=kivi,kv_bits=4,group_size=32,residual=32",
        "method=int8kv",
        "method=sage",
        "method=fp8"};
    for (const Shape& s : shapes) {
      const HostTensor<Half> q = random_tensor(rng, s.hq, s.n, s.d, false);
      const HostTensor<Half> k = random_tensor(rng, s.hkv, s.n, s.d, true);
      const HostTensor<Half> v = random_tensor(rng, s.hkv, s.n, s.d, false);
      const std::string shape = "Hq=" + std::to_string(s.hq) + ",Hkv=" + std::to_string(s.hkv) +
                                ",N=" + std::to_string(s.n) + ",D=" + std::to_string(s.d);
      for (const std::string& key : prefill_keys) prefill_case(key, q, k, v, shape);
      for (const std::string& key : decode_keys)
        for (int64_t q_len : {int64_t{1}, std::min<int64_t>(3, s.n)})
          decode_case(key, q, k, v, s.n, q_len, shape);
      std::vector<int> mixed(static_cast<size_t>(s.hkv));
      for (size_t h = 0; h < mixed.size(); ++h) mixed[h] = h % 2 ? 2 : 4;
      decode_case("method=flashq,kv_bits=mixed", q, k, v, s.n, 1, shape + ",head_bits=4/2", mixed);
    }
  }

  void dataset() {
    if (o_.data.empty()) {
      if (o_.verbosity > 0)
        std::fprintf(stderr,
                     "validate: no --data (and no datasets/data/smollm2_eval.h5 here): the "
                     "real-data cases are skipped\n");
      return;
    }
    data::ActivationReader r(o_.data);
    const int layer = r.meta().layers.front();
    const int64_t n = std::min<int64_t>(r.meta().n_tokens, 256);
    const HostTensor<Half> q = r.read(layer, 'q', 0, n), k = r.read(layer, 'k', 0, n),
                           v = r.read(layer, 'v', 0, n);
    const std::string shape = "data layer " + std::to_string(layer) + ",N=" + std::to_string(n);
    for (const char* key :
         {"method=flashq", "method=flashq,k_smooth=mean", "method=fp8", "method=sage"})
      prefill_case(key, q, k, v, shape);
    for (const char* key :
         {"method=flashq,kv_bits=4", "method=flashq,kv_bits=2,splits=4", "method=kivi,kv_bits=2"})
      decode_case(key, q, k, v, n, 1, shape);
  }

  std::vector<ValidateCase> cases;

 private:
  template <typename A, typename B, typename C>
  static std::string vars(const char* a, A va, const char* b, B vb, const char* c, C vc) {
    std::ostringstream s;
    s << a << "=" << va << "," << b << "=" << vb << "," << c << "=" << vc;
    return s.str();
  }
  void add(const ValidateCase& c) {
    cases.push_back(c);
    if (o_.verbosity >= 2 || (!c.pass && o_.verbosity >= 1))
      std::fprintf(stderr, "%s %-18s %s  mismatches %lld/%lld%s\n", c.pass ? "ok  " : "FAIL",
                   c.op.c_str(), c.vars.c_str(), static_cast<long long>(c.mismatches),
                   static_cast<long long>(c.compared),
                   c.note.empty() ? "" : ("  (" + c.note + ")").c_str());
  }
  ValidateOptions o_;
  std::unique_ptr<Backend> test_, ref_;
};

}  // namespace

std::vector<ValidateCase> run_validation(const ValidateOptions& o) {
  register_builtin_backends();
  Harness h(o);
  Rng rng(o.seed);
  // Progress by group of ops (the case count is known only as they run).
  Progress progress("validate", 6, o.verbosity);
  auto done = [&](int k, const char* what) {
    progress.update(k, std::string(what) + " (" + std::to_string(h.cases.size()) + " cases)");
  };
  h.stage1(rng);
  done(1, "stage 1");
  h.stage2(rng);
  done(2, "stage 2");
  h.asym(rng);
  done(3, "direct asymmetric");
  h.sas();
  done(4, "SAS");
  h.attention(rng);
  done(5, "attention");
  h.dataset();
  done(6, "real data");
  return h.cases;
}

void add_validate_command(CLI::App& app, CommonOptions& common) {
  auto o = std::make_shared<ValidateOptions>();
  CLI::App* sub = app.add_subcommand(
      "validate", "Check every op of a backend against ref (exact ops bit for bit)");
  sub->add_option("--backend", o->backend, "backend under test")->capture_default_str();
  sub->add_option("--against", o->against, "reference backend")->capture_default_str();
  sub->add_option("--against-threads", o->against_threads, "threads of the reference run")
      ->capture_default_str();
  // Real-data cases run on the embedded evaluation activations when run from the repository root
  // (the binary holds no source path), or on --data.
  const std::string embedded = "datasets/data/smollm2_eval.h5";
  if (::access(embedded.c_str(), R_OK) == 0) o->data = embedded;
  sub->add_option("--data", o->data, "activation file for the real-data cases ('' for none)")
      ->capture_default_str();
  sub->add_flag("--quick", o->quick, "fewer shapes");
  sub->callback([o, &common]() {
    o->threads = common.threads;
#ifdef _OPENMP
    if (o->threads <= 0) o->threads = omp_get_max_threads();
#endif
    o->seed = common.seed;
    o->verbosity = common.verbosity();
    const std::vector<ValidateCase> cases = run_validation(*o);
    // Summary per op.
    struct Sum {
      int cases = 0, failed = 0, unsupported = 0;
      int64_t compared = 0, mismatches = 0;
      double worst_ratio = 0;
      bool exact = true;
    };
    std::vector<std::string> ops;
    std::map<std::string, Sum> sums;
    for (const ValidateCase& c : cases) {
      const std::string op = c.op + (c.exact ? " (exact)" : " (bounded)");
      if (!sums.count(op)) ops.push_back(op);
      Sum& s = sums[op];
      if (c.unsupported) {
        ++s.unsupported;
        continue;
      }
      ++s.cases;
      s.failed += !c.pass;
      s.compared += c.compared;
      s.mismatches += c.mismatches;
      s.exact = c.exact;
      if (!c.exact && c.bound > 0) s.worst_ratio = std::max(s.worst_ratio, c.error / c.bound);
    }
    std::printf("validate: backend '%s' (threads %d) against '%s' (threads %d)\n\n",
                o->backend.c_str(), o->threads, o->against.c_str(), o->against_threads);
    std::printf(
        "| op | cases | failed | unsupported | elements | mismatches | worst error / bound |\n"
        "|---|---|---|---|---|---|---|\n");
    int failed = 0;
    for (const std::string& op : ops) {
      const Sum& s = sums[op];
      failed += s.failed;
      char ratio[32] = "–";
      if (!s.exact) std::snprintf(ratio, sizeof ratio, "%.3f", s.worst_ratio);
      std::printf("| %s | %d | %d | %d | %lld | %lld | %s |\n", op.c_str(), s.cases, s.failed,
                  s.unsupported, static_cast<long long>(s.compared),
                  static_cast<long long>(s.mismatches), ratio);
    }
    int unsupported = 0;
    for (const ValidateCase& c : cases) unsupported += c.unsupported;
    std::printf("\n%s: %zu cases run, %d failed, %d declined by the backend (not run)\n",
                failed ? "FAIL" : "PASS", cases.size() - static_cast<size_t>(unsupported), failed,
                unsupported);
    if (unsupported && o->verbosity > 0) {
      std::string reasons;
      for (const ValidateCase& c : cases)
        if (c.unsupported && reasons.find(c.note) == std::string::npos)
          reasons += "  " + c.note + "\n";
      std::printf("declined:\n%s", reasons.c_str());
    }
    if (failed) throw Error("validate: " + std::to_string(failed) + " case(s) failed");
  });
}

}  // namespace eval
}  // namespace turbo
