#include "eval/calibrate.h"

#include <algorithm>
#include <cstdlib>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/host/numbers.h"
#include "datasets/activations.h"
#include "reference/reference.h"

namespace turbo {
namespace eval {

std::string BitMap::knobs_text() const {
  AttentionConfig c;
  c.quant.f2 = f2;
  return "f2=" + find_knob("f2").get(c) + ",prio_tensors=" + enum_name(prio_tensors) +
         ",prio_metric=" + enum_name(prio_metric);
}

void BitMap::check_covers(const std::vector<int>& layers, int n_kv_heads_wanted) const {
  const std::string name = source.empty() ? "the bit map" : "the bit map " + source;
  TURBO_CHECK(n_kv_heads == n_kv_heads_wanted,
              name << " has " << n_kv_heads << " kv heads, the run " << n_kv_heads_wanted);
  std::string present;
  for (const auto& kv : bits) present += (present.empty() ? "" : ",") + std::to_string(kv.first);
  for (int l : layers)
    TURBO_CHECK(bits.count(l),
                name << " has no entry for layer " << l << " (layers present: " << present << ")");
}

std::vector<std::vector<int>> BitMap::rows(int n_layers, int n_kv_heads_wanted) const {
  std::vector<int> layers;
  for (int l = 0; l < n_layers; ++l) layers.push_back(l);
  check_covers(layers, n_kv_heads_wanted);
  std::vector<std::vector<int>> out;
  for (int l : layers) out.push_back(bits.at(l));
  return out;
}

std::vector<int> parse_layers(const std::string& spec, const std::vector<int>& present) {
  std::string valid;
  for (int l : present) valid += (valid.empty() ? "" : ",") + std::to_string(l);
  if (spec == "all" || spec.empty()) return present;
  std::vector<int> out;
  std::istringstream in(spec);
  std::string item;
  auto to_int = [&](const std::string& s) {
    return static_cast<int>(
        parse_int(s, 0, 99999, "--layers (format: all, 0,3,7, 0-29 or 0-29:4)"));
  };
  while (std::getline(in, item, ',')) {
    int step = 1;
    const size_t colon = item.find(':');
    if (colon != std::string::npos) {
      step = to_int(item.substr(colon + 1));
      TURBO_CHECK(step >= 1, "--layers: step must be >= 1 in '" << item << "'");
      item = item.substr(0, colon);
    }
    const size_t dash = item.find('-');
    const int a = to_int(dash == std::string::npos ? item : item.substr(0, dash));
    const int b = dash == std::string::npos ? a : to_int(item.substr(dash + 1));
    TURBO_CHECK(a <= b, "--layers: empty range '" << item << "'");
    for (int l = a; l <= b; l += step) {
      TURBO_CHECK(std::find(present.begin(), present.end(), l) != present.end(),
                  "layer " << l << " is not in the dataset; layers present: " << valid);
      TURBO_CHECK(std::find(out.begin(), out.end(), l) == out.end(),
                  "--layers: layer " << l << " given twice");
      out.push_back(l);
    }
  }
  TURBO_CHECK(!out.empty(), "--layers selects no layer; layers present: " << valid);
  std::sort(out.begin(), out.end());
  return out;
}

BitMap compute_bit_map(const data::ActivationReader& reader, const std::vector<int>& layers,
                       int64_t tokens, float f2, PrioTensors tensors, PrioMetric metric,
                       uint64_t seed) {
  TURBO_CHECK(f2 >= 0.0f && f2 <= 1.0f, "f2 must be in [0, 1], got " << f2);
  const data::ActivationMeta& meta = reader.meta();
  TURBO_CHECK(tokens >= 0 && tokens <= meta.n_tokens, "--tokens must be in [0, "
                                                          << meta.n_tokens << "] (0: all of "
                                                          << reader.path() << "), got " << tokens);
  BitMap m;
  m.data = reader.path();
  m.data_sha256 = reader.sha256();
  m.model = meta.model;
  m.model_sha256 = meta.model_sha256;
  m.tokens = tokens > 0 ? std::min<int64_t>(tokens, meta.n_tokens) : meta.n_tokens;
  m.f2 = f2;
  m.prio_tensors = tensors;
  m.prio_metric = metric;
  m.seed = seed;
  m.n_kv_heads = meta.n_kv_heads;
  for (int l : layers.empty() ? meta.layers : layers) {
    const HostTensor<Half> k = reader.read(l, 'k', 0, m.tokens);
    const HostTensor<Half> v = reader.read(l, 'v', 0, m.tokens);
    // A per-layer seed keeps prio_metric=random independent across layers yet reproducible.
    const std::vector<double> p = ref::head_priorities(k.view(), v.view(), tensors, metric,
                                                       seed * 1000003u + static_cast<uint64_t>(l));
    m.priority[l] = p;
    m.bits[l] = ref::assign_head_bits(p, f2);
  }
  return m;
}

Json bit_map_to_json(const BitMap& m) {
  Json j = Json::object();
  j.set("format", "turboattn-bitmap-1");
  j.set("command", m.command);
  j.set("data", m.data);
  j.set("data_sha256", m.data_sha256);
  j.set("model", m.model);
  j.set("model_sha256", m.model_sha256);
  j.set("tokens", m.tokens);
  j.set("f2", static_cast<double>(m.f2));
  j.set("prio_tensors", enum_name(m.prio_tensors));
  j.set("prio_metric", enum_name(m.prio_metric));
  j.set("seed", m.seed);
  j.set("n_kv_heads", m.n_kv_heads);
  Json layers = Json::object();
  for (const auto& kv : m.bits) {
    Json l = Json::object();
    Json b = Json::array(), p = Json::array();
    for (int x : kv.second) b.push(x);
    for (double x : m.priority.at(kv.first)) p.push(x);
    l.set("bits", b);
    l.set("priority", p);
    layers.set(std::to_string(kv.first), l);
  }
  j.set("layers", layers);
  // The same bits as rows for layers 0, 1, ... (format in calibrate.h), when there is no gap.
  bool contiguous = !m.bits.empty();
  int expect = 0;
  for (const auto& kv : m.bits) contiguous = contiguous && kv.first == expect++;
  if (contiguous) {
    Json rows = Json::array();
    for (const auto& kv : m.bits) {
      Json r = Json::array();
      for (int x : kv.second) r.push(x);
      rows.push(r);
    }
    j.set("head_bits", rows);
  }
  return j;
}

BitMap bit_map_from_json(const Json& j, const std::string& what) {
  try {
    TURBO_CHECK(j.at("format").as_string() == "turboattn-bitmap-1",
                "not a turboattn bit map (format '" << j.at("format").as_string() << "')");
    BitMap m;
    m.command = j.at("command").as_string();
    m.data = j.at("data").as_string();
    m.data_sha256 = j.at("data_sha256").as_string();
    m.model = j.at("model").as_string();
    m.model_sha256 = j.at("model_sha256").as_string();
    m.tokens = j.at("tokens").as_int();
    m.f2 = static_cast<float>(j.at("f2").as_number());
    m.prio_tensors = parse_enum<PrioTensors>(j.at("prio_tensors").as_string(), "prio_tensors");
    m.prio_metric = parse_enum<PrioMetric>(j.at("prio_metric").as_string(), "prio_metric");
    m.seed = j.at("seed").as_uint();
    m.n_kv_heads = static_cast<int>(j.at("n_kv_heads").as_int());
    TURBO_CHECK(m.n_kv_heads >= 1, "n_kv_heads must be >= 1, got " << m.n_kv_heads);
    for (const auto& kv : j.at("layers").members()) {
      // Strict: atoi read a key "abc" as layer 0.
      const int layer = static_cast<int>(parse_int(kv.first, 0, 99999, "layer key"));
      std::vector<int> bits;
      for (const Json& b : kv.second.at("bits").items()) {
        const int64_t x = b.as_int();
        TURBO_CHECK(x == 2 || x == 4, "layer " << kv.first << ": bits must be 2 or 4, got " << x);
        bits.push_back(static_cast<int>(x));
      }
      std::vector<double> prio;
      for (const Json& p : kv.second.at("priority").items()) prio.push_back(p.as_number());
      TURBO_CHECK(static_cast<int>(bits.size()) == m.n_kv_heads &&
                      static_cast<int>(prio.size()) == m.n_kv_heads,
                  "layer " << kv.first << " has " << bits.size() << " bits and " << prio.size()
                           << " priorities, n_kv_heads is " << m.n_kv_heads);
      m.bits[layer] = bits;
      m.priority[layer] = prio;
    }
    if (j.has("head_bits")) {
      const std::vector<Json> rows = j.at("head_bits").items();
      TURBO_CHECK(rows.size() == m.bits.size(), "head_bits has " << rows.size()
                                                                 << " rows, layers has "
                                                                 << m.bits.size() << " entries");
      for (size_t l = 0; l < rows.size(); ++l) {
        std::vector<int> row;
        for (const Json& b : rows[l].items()) row.push_back(static_cast<int>(b.as_int()));
        const auto it = m.bits.find(static_cast<int>(l));
        TURBO_CHECK(it != m.bits.end() && it->second == row,
                    "head_bits row " << l << " disagrees with layers." << l << ".bits");
      }
    }
    return m;
  } catch (const Error& e) {
    throw Error(what + ": " + e.what());
  }
}

BitMap load_bit_map(const std::string& path) {
  BitMap m = bit_map_from_json(Json::parse(read_text_file(path, "bit map"), path), path);
  m.source = path;
  return m;
}

}  // namespace eval
}  // namespace turbo
