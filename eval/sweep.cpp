#include "eval/sweep.h"

#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <set>

#include "core/error.h"
#include "core/host/file_io.h"
#include "core/host/progress.h"
#include "core/host/rng.h"
#include "datasets/activations.h"
#include "datasets/sha256.h"
#include "eval/backends.h"
#include "eval/metrics.h"
#include "eval/provenance.h"
#include "reference/reference.h"

namespace turbo {
namespace eval {

// ---- data ---------------------------------------------------------------------------------------

std::vector<int64_t> sample_positions(int64_t n_tokens, int count, uint64_t seed) {
  TURBO_CHECK(n_tokens >= 1, "no tokens to decode");
  const int64_t lo = decode_start(n_tokens), range = n_tokens - lo;
  std::vector<int64_t> out;
  if (count >= range) {
    for (int64_t p = lo; p < n_tokens; ++p) out.push_back(p);
    return out;
  }
  SplitMix64 rng(seed ^ SplitMix64::kGolden);  // the same positions on every platform
  std::set<int64_t> chosen;
  while (static_cast<int>(chosen.size()) < count)
    chosen.insert(lo + static_cast<int64_t>(rng.below(static_cast<uint64_t>(range))));
  out.assign(chosen.begin(), chosen.end());
  return out;
}

namespace {

bool has_phase(const std::vector<Phase>& phases, Phase p) {
  return std::find(phases.begin(), phases.end(), p) != phases.end();
}

}  // namespace

void add_layer(SweepData& data, int layer, HostTensor<Half> q, HostTensor<Half> k,
               HostTensor<Half> v, const std::vector<Phase>& phases) {
  const std::string where = " (layer " + std::to_string(layer) + ")";
  check_finite(q.view(), ("Q" + where).c_str());
  check_finite(k.view(), ("K" + where).c_str());
  check_finite(v.view(), ("V" + where).c_str());
  LayerData l;
  l.layer = layer;
  const int64_t Hq = q.h, N = q.n, D = q.d;
  if (has_phase(phases, Phase::kPrefill)) {
    l.gt_prefill.resize(static_cast<size_t>(Hq * N * D));
    ref::attention_fp64(q.view(), k.view(), v.view(), true, 0.0f, l.gt_prefill.data());
  }
  if (has_phase(phases, Phase::kDecode)) {
    const int64_t P = static_cast<int64_t>(data.positions.size());
    l.gt_decode.resize(static_cast<size_t>(P * Hq * D));
    std::vector<double> row(static_cast<size_t>(Hq * D));
    for (int64_t i = 0; i < P; ++i) {
      const int64_t p = data.positions[static_cast<size_t>(i)];
      ref::attention_fp64_decode(token_slice(q, p, p + 1), token_slice(k, 0, p + 1),
                                 token_slice(v, 0, p + 1), 0.0f, row.data());
      std::copy(row.begin(), row.end(), l.gt_decode.begin() + i * Hq * D);
    }
  }
  l.q = std::move(q);
  l.k = std::move(k);
  l.v = std::move(v);
  data.layers.push_back(std::move(l));
}

SweepData load_sweep_data(const data::ActivationReader& reader, const std::vector<int>& layers,
                          int64_t tokens, int positions, uint64_t seed,
                          const std::vector<Phase>& phases) {
  const data::ActivationMeta& m = reader.meta();
  TURBO_CHECK(tokens >= 0, "--tokens must be >= 0 (0: the whole file)");
  TURBO_CHECK(tokens <= m.n_tokens, "--tokens " << tokens << " exceeds the " << m.n_tokens
                                                << " tokens of " << reader.path());
  SweepData d;
  d.n_heads = m.n_heads;
  d.n_kv_heads = m.n_kv_heads;
  d.head_dim = m.head_dim;
  d.tokens = tokens > 0 ? tokens : m.n_tokens;
  TURBO_CHECK(positions >= 1, "--positions must be >= 1");
  d.positions = sample_positions(d.tokens, positions, seed);
  for (int layer : layers)
    add_layer(d, layer, reader.read(layer, 'q', 0, d.tokens), reader.read(layer, 'k', 0, d.tokens),
              reader.read(layer, 'v', 0, d.tokens), phases);
  return d;
}

// ---- bit maps -----------------------------------------------------------------------------------

BitMaps::BitMaps(const std::string& map_file, const std::string& calib_file, uint64_t seed)
    : map_file_(map_file), calib_file_(calib_file), seed_(seed) {
  if (!map_file.empty()) loaded_ = std::make_unique<BitMap>(load_bit_map(map_file));
  if (!calib_file.empty()) calib_ = std::make_unique<data::ActivationReader>(calib_file);
}

BitMaps::~BitMaps() = default;

const BitMap& BitMaps::get(const AttentionConfig& c, const std::vector<int>& layers, int n_kv_heads,
                           const std::string& eval_sha256) {
  const BitMap* m = nullptr;
  std::string knobs_text;
  {
    BitMap probe;
    probe.f2 = c.quant.f2;
    probe.prio_tensors = c.quant.prio_tensors;
    probe.prio_metric = c.quant.prio_metric;
    knobs_text = probe.knobs_text();
  }
  if (loaded_ && loaded_->matches(c)) {
    m = loaded_.get();
  } else if (calib_) {
    auto it = computed_.find(knobs_text);
    if (it == computed_.end()) {
      BitMap bm = compute_bit_map(*calib_, layers, 0, c.quant.f2, c.quant.prio_tensors,
                                  c.quant.prio_metric, seed_);
      bm.command = "computed by turboattn sweep from " + calib_file_;
      it = computed_.emplace(knobs_text, std::move(bm)).first;
    }
    m = &it->second;
  } else if (loaded_) {
    throw Error("kv_bits=mixed with " + knobs_text + ": the bit map " + map_file_ +
                " was made with " + loaded_->knobs_text() +
                "; pass --calib <h5> to compute maps for other settings");
  } else {
    throw Error(
        "kv_bits=mixed needs a bit map: pass --bits-map <json> (from turboattn calibrate) "
        "or --calib <h5>");
  }
  TURBO_CHECK(m->data_sha256 != eval_sha256,
              "the bit map was calibrated on the evaluation file itself (SHA-256 "
                  << eval_sha256 << "); calibrate on a separate split (SPEC 7)");
  m->check_covers(layers, n_kv_heads);
  return *m;
}

Json BitMaps::describe() const {
  Json j = Json::object();
  j.set("bits_map", map_file_);
  j.set("bits_map_sha256", map_file_.empty() ? std::string() : data::sha256_file(map_file_));
  j.set("calib", calib_file_);
  j.set("calib_sha256", calib_ ? calib_->sha256() : std::string());
  return j;
}

// ---- one unit -----------------------------------------------------------------------------------

std::vector<ResultRow> run_unit(Backend& backend, const Unit& unit, const SweepData& data,
                                BitMaps* maps, const std::string& eval_sha256) {
  const int Hq = data.n_heads, Hkv = data.n_kv_heads, D = data.head_dim;
  const int64_t N = data.tokens;
  const int g = Hq / Hkv;
  const AttentionConfig& c = unit.config;
  std::vector<ResultRow> rows;
  std::vector<int> layer_ids;
  for (const LayerData& l : data.layers) layer_ids.push_back(l.layer);
  for (const LayerData& l : data.layers) {
    std::vector<ErrorAccumulator> acc(static_cast<size_t>(Hq));
    std::vector<AttentionStats> stats(static_cast<size_t>(Hq));
    int64_t rows_per_head = 0;
    double kv_bytes = -1, compression = -1, kv_mean = -1, compression_mean = -1;
    std::vector<int> head_bits(static_cast<size_t>(Hkv), 0);  // decode: asked of the cache
    if (unit.phase == Phase::kPrefill) {
      HostTensor<Half> o(1, Hq, N, D);
      backend.attention_prefill(c, l.q.view(), l.k.view(), l.v.view(), o.view(), stats.data());
      for (int h = 0; h < Hq; ++h)
        acc[static_cast<size_t>(h)].add(o.storage.data() + h * N * D,
                                        l.gt_prefill.data() + h * N * D, N * D);
      rows_per_head = N;
    } else {
      KvCacheSpec spec;
      spec.config = c;
      spec.batch = 1;
      spec.kv_heads = Hkv;
      spec.head_dim = D;
      if (c.quant.kv_bits == KvBits::kMixed && method_traits(c.method).bit_map) {
        TURBO_CHECK(maps, "kv_bits=mixed needs --bits-map or --calib");
        spec.head_bits = maps->get(c, layer_ids, Hkv, eval_sha256).bits.at(l.layer);
      }
      std::unique_ptr<KvCache> cache = backend.create_cache(spec);
      // The prompt goes in with one append; from decode_start on, one token per append (a decode
      // step), and the bytes held are read at every position (SPEC 8), attended or not.
      const int64_t start = decode_start(N);
      int64_t filled = 0;
      double bytes_sum = 0;
      auto append_to = [&](int64_t end) {
        if (filled < start) {
          const int64_t e = std::min(end, start);
          backend.cache_append(*cache, token_slice(l.k, filled, e), token_slice(l.v, filled, e));
          filled = e;
        }
        for (; filled < end; ++filled)
          backend.cache_append(*cache, token_slice(l.k, filled, filled + 1),
                               token_slice(l.v, filled, filled + 1));
      };
      auto per_token = [&](const KvBytes& b, int64_t len) {
        TURBO_CHECK(b.tokens == len * Hkv, "KvCache::bytes() counts " << b.tokens
                                                                      << " token-heads, expected "
                                                                      << len * Hkv);
        return static_cast<double>(b.total()) / static_cast<double>(b.tokens);
      };
      HostTensor<Half> o(1, Hq, 1, D);
      size_t next = 0;
      for (int64_t p = start; p < N; ++p) {
        append_to(p + 1);
        bytes_sum += per_token(cache->bytes(), p + 1);
        if (next >= data.positions.size() || data.positions[next] != p) continue;
        backend.attention_decode(c, token_slice(l.q, p, p + 1), *cache, o.view(), stats.data());
        for (int h = 0; h < Hq; ++h)
          acc[static_cast<size_t>(h)].add(
              o.storage.data() + h * D,
              l.gt_decode.data() + (static_cast<int64_t>(next) * Hq + h) * D, D);
        ++next;
      }
      TURBO_CHECK(next == data.positions.size(),
                  "decode positions must be ascending in [" << start << ", " << N << ")");
      TURBO_CHECK(cache->length() == N,
                  "cache length " << cache->length() << " after appending " << N << " tokens");
      for (int h = 0; h < Hkv; ++h) head_bits[static_cast<size_t>(h)] = cache->head_bits(h);
      kv_bytes = per_token(cache->bytes(), N);
      compression = 4.0 * D / kv_bytes;  // FP16 K and V: 2 x 2 bytes per channel
      kv_mean = bytes_sum / static_cast<double>(N - start);
      compression_mean = 4.0 * D / kv_mean;
      rows_per_head = static_cast<int64_t>(data.positions.size());
    }
    for (int h = 0; h < Hq; ++h) {
      const ErrorMetrics e = acc[static_cast<size_t>(h)].result();
      const AttentionStats& s = stats[static_cast<size_t>(h)];
      ResultRow r;
      r.config = unit.key;
      r.phase = unit.phase;
      r.layer = l.layer;
      r.head = h;
      r.kv_head = h / g;
      r.head_bits = head_bits[static_cast<size_t>(h / g)];
      r.tokens = N;
      r.rows = rows_per_head;
      TURBO_CHECK(s.rows == rows_per_head, "backend reported " << s.rows << " rows for head " << h
                                                               << ", expected " << rows_per_head);
      r.rel_l2 = e.rel_l2;
      r.nmse = e.nmse;
      r.max_abs = e.max_abs;
      r.cosine = e.cosine;
      r.sparsity = s.sparsity();
      r.dropped_mass = s.mean_dropped_mass();
      r.kv_bytes_per_token = kv_bytes;
      r.compression = compression;
      r.kv_bytes_mean = kv_mean;
      r.compression_mean = compression_mean;
      rows.push_back(r);
    }
  }
  return rows;
}

// ---- files --------------------------------------------------------------------------------------

namespace {

std::string dir_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
}

bool file_exists(const std::string& p) { return ::access(p.c_str(), F_OK) == 0; }

}  // namespace

void check_disk_space(const std::string& path, uint64_t bytes_needed) {
  struct statvfs st;
  const std::string dir = dir_of(path);
  TURBO_CHECK(::statvfs(dir.c_str(), &st) == 0, "cannot stat the file system of '" << dir << "'");
  const uint64_t avail = static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
  // Keep a margin: the results must not be what fills the disk.
  TURBO_CHECK(bytes_needed <= avail / 10 * 9,
              "the sweep would write about " << bytes_needed / 1000000 << " MB of results but only "
                                             << avail / 1000000 << " MB are free on " << dir
                                             << "; shrink the grid (or --layers) or shard it");
}

// ---- the sweep ----------------------------------------------------------------------------------

SweepSummary run_sweep(const SweepOptions& o) {
  TURBO_CHECK(!o.data.empty(), "--data <h5> is required");
  TURBO_CHECK(!o.out.empty() || o.dry_run, "--out <csv> is required");
  TURBO_CHECK(!o.grid_file.empty() || !o.sets.empty(),
              "give a grid: --grid <file> and/or --set knob=v1,v2 (see eval/README.md)");
  SweepSummary sum;
  const auto t0 = std::chrono::steady_clock::now();
  if (!o.out.empty()) {
    check_output_path(o.out, "-o");
    check_output_path(sidecar_path(o.out), "the sidecar of -o");
    const std::vector<std::pair<std::string, std::string>> inputs = {{o.data, "--data"},
                                                                     {o.grid_file, "--grid"},
                                                                     {o.bits_map, "--bits-map"},
                                                                     {o.calib, "--calib"}};
    check_output_is_not_input(o.out, "-o", inputs);
    check_output_is_not_input(sidecar_path(o.out), "the sidecar of -o", inputs);
  }
  TURBO_CHECK(o.tokens >= 0, "--tokens must be >= 0 (0: all), got " << o.tokens);
  TURBO_CHECK(o.positions >= 1, "--positions must be >= 1, got " << o.positions);

  // Grid -> units, validated before anything is read or written.
  Grid grid;
  if (!o.grid_file.empty()) grid = parse_grid(read_text_file(o.grid_file, "--grid"), o.grid_file);
  apply_sets(grid, o.sets);
  const std::vector<Phase> phases = parse_phases(o.phases);
  const std::vector<Unit> units = make_units(expand_grid(grid, o.max_configs), phases);
  TURBO_CHECK(!units.empty(), "the grid is empty");
  register_builtin_backends();
  std::unique_ptr<Backend> backend = make_backend(o.backend);
  for (const Unit& u : units) {
    Status st = backend->supports(u.config);
    if (st.ok) st = method_supports(u.config, u.phase);
    TURBO_CHECK(st.ok, "backend '" << o.backend << "' does not run " << phase_name(u.phase) << " "
                                   << short_key(u.config) << ": " << st.message);
  }
  const Shard shard = parse_shard(o.shard);
  std::vector<const Unit*> mine;
  for (size_t i = 0; i < units.size(); ++i)
    if (static_cast<int>(i % static_cast<size_t>(shard.count)) == shard.index)
      mine.push_back(&units[i]);
  sum.units_total = static_cast<int64_t>(units.size());
  sum.units_shard = static_cast<int64_t>(mine.size());
  if (o.dry_run) {
    for (const Unit* u : mine) std::printf("%s\t%s\n", phase_name(u->phase), u->key.c_str());
    return sum;
  }

  // One writer per output: a second sweep on the same -o is refused while this one runs.
  const OutputLock lock(o.out);
  data::ActivationReader reader(o.data);
  const data::ActivationMeta& meta = reader.meta();
  TURBO_CHECK(o.tokens <= meta.n_tokens, "--tokens " << o.tokens << " exceeds the " << meta.n_tokens
                                                     << " tokens of " << o.data);
  TURBO_CHECK(meta.n_kv_heads > 0 && meta.n_heads % meta.n_kv_heads == 0,
              o.data << ": n_heads " << meta.n_heads << " is not a multiple of n_kv_heads "
                     << meta.n_kv_heads);
  const std::vector<int> layers = parse_layers(o.layers, meta.layers);
  // Shape rules that need the data's head_dim (KIVI's, for one) fail here, before any work: an
  // empty cache of each fixed-width config is built once.
  for (const Unit* u : mine)
    if (u->config.quant.kv_bits != KvBits::kMixed)
      backend->create_cache(
          KvCacheSpec{u->config, 1, meta.n_kv_heads, static_cast<int>(meta.head_dim), {}});
  const std::string sha = reader.sha256();
  const int64_t window = o.tokens > 0 ? o.tokens : meta.n_tokens;
  const int64_t rows_per_unit = static_cast<int64_t>(layers.size()) * meta.n_heads;

  std::unique_ptr<BitMaps> maps;
  if (!o.bits_map.empty() || !o.calib.empty())
    maps = std::make_unique<BitMaps>(o.bits_map, o.calib, o.seed);
  for (const Unit* u : mine)
    if (u->phase == Phase::kDecode && u->config.quant.kv_bits == KvBits::kMixed &&
        method_traits(u->config.method).bit_map) {
      TURBO_CHECK(maps,
                  "the grid has kv_bits=mixed: pass --bits-map <json> (turboattn calibrate) or "
                  "--calib <h5>");
      maps->get(u->config, layers, meta.n_kv_heads, sha);  // fail before running anything
    }

  // Sidecar: what every row depends on. A resume must match it exactly.
  Json dataset = Json::object();
  dataset.set("path", o.data);
  dataset.set("sha256", sha);
  dataset.set("model", meta.model);
  dataset.set("model_sha256", meta.model_sha256);
  dataset.set("n_layers", meta.n_layers);
  dataset.set("n_heads", meta.n_heads);
  dataset.set("n_kv_heads", meta.n_kv_heads);
  dataset.set("head_dim", meta.head_dim);
  dataset.set("n_tokens", meta.n_tokens);
  Json params = Json::object();
  Json layer_list = Json::array();
  for (int l : layers) layer_list.push(l);
  params.set("layers", layer_list);
  params.set("tokens", window);
  params.set("positions", o.positions);
  params.set("seed", o.seed);
  params.set("backend", o.backend);
  params.set("bit_maps", maps ? maps->describe() : Json());
  const std::string params_text = params.dump(), dataset_text = dataset.dump();

  bool resume = false;
  ResumeScan scan;
  Json history = Json::array();  // every run that wrote this file: command, units, commit
  if (file_exists(o.out) && !o.overwrite) {
    TURBO_CHECK(file_exists(sidecar_path(o.out)), o.out << " exists without its sidecar "
                                                        << sidecar_path(o.out)
                                                        << "; pass --overwrite or another --out");
    const Json old =
        Json::parse(read_text_file(sidecar_path(o.out), "sidecar"), sidecar_path(o.out));
    TURBO_CHECK(old.at("dataset").dump() == dataset_text && old.at("params").dump() == params_text,
                o.out << " was written by a sweep with other data or parameters (see "
                      << sidecar_path(o.out) << "); pass --overwrite or another --out");
    TURBO_CHECK(old.at("shard_index").as_int() == shard.index &&
                    old.at("shard_count").as_int() == shard.count,
                o.out << " holds shard " << old.at("shard_index").as_int() << "/"
                      << old.at("shard_count").as_int() << ", not " << shard.index << "/"
                      << shard.count);
    scan = scan_results(o.out, rows_per_unit);
    resume = scan.keep_bytes > 0;
    if (resume) {
      if (old.has("history")) {
        history = old.at("history");
      } else {  // a sidecar of an earlier version: its one run
        Json first = Json::object();
        first.set("command", old.at("command"));
        first.set("units", old.at("units"));
        if (old.has("git_commit")) first.set("git_commit", old.at("git_commit"));
        history.push(first);
      }
    }
    if (o.verbosity > 0 && (scan.dropped_rows || scan.dropped_partial_line))
      std::fprintf(stderr, "resume: dropping %lld rows of an unfinished unit%s\n",
                   static_cast<long long>(scan.dropped_rows),
                   scan.dropped_partial_line ? " and a partial line" : "");
  }
  std::vector<const Unit*> todo;
  for (const Unit* u : mine)
    if (!scan.done.count(u->id())) todo.push_back(u);
  sum.units_skipped = sum.units_shard - static_cast<int64_t>(todo.size());

  // Disk: rows x the length of a formatted row of this grid (metrics at their longest).
  if (!todo.empty()) {
    ResultRow probe;
    probe.config = todo.front()->key;
    probe.rel_l2 = probe.nmse = probe.max_abs = probe.cosine = probe.sparsity = probe.dropped_mass =
        probe.kv_bytes_per_token = probe.compression = probe.kv_bytes_mean =
            probe.compression_mean = -1.234567891e-300;
    probe.model = meta.model;
    probe.data_sha256 = sha;
    const uint64_t row_bytes = format_row(probe, todo.front()->config).size() + 16;
    check_disk_space(o.out, row_bytes * static_cast<uint64_t>(rows_per_unit) * todo.size());
  }

  Json side = provenance_json("turboattn-sweep-1", o.command);
  side.set("dataset", Json::parse(dataset_text, "dataset"));
  side.set("params", Json::parse(params_text, "params"));
  side.set("phases", o.phases);
  side.set("shard_index", shard.index);
  side.set("shard_count", shard.count);
  side.set("rows_per_unit", rows_per_unit);
  Json knob_names = Json::array();
  for (const Knob& k : knobs()) knob_names.push(k.name);
  side.set("knobs", knob_names);
  Json unit_ids = Json::array();
  for (const Unit& u : units) unit_ids.push(u.id());
  side.set("units", unit_ids);
  {
    Json run = Json::object();
    run.set("command", o.command);
    run.set("units", unit_ids);
    run.set("git_commit", git_commit());
    history.push(run);
  }
  side.set("history", history);
  side.set("status", "running");

  if (o.verbosity > 0)
    std::fprintf(stderr,
                 "sweep: %lld units (%lld in shard %d/%d, %lld already done), %zu layers x %d "
                 "heads, %lld tokens, %zu decode positions\n",
                 static_cast<long long>(sum.units_total), static_cast<long long>(sum.units_shard),
                 shard.index, shard.count, static_cast<long long>(sum.units_skipped), layers.size(),
                 meta.n_heads, static_cast<long long>(window),
                 static_cast<size_t>(std::min<int64_t>(o.positions, window - window / 8)));

  const SweepData data = load_sweep_data(reader, layers, o.tokens, o.positions, o.seed, phases);
  side.set("decode_positions", [&] {
    Json a = Json::array();
    for (int64_t p : data.positions) a.push(p);
    return a;
  }());
  write_file_atomic(sidecar_path(o.out), side.dump());
  ResultsWriter writer(o.out, resume, scan.keep_bytes);

  Progress progress("sweep", static_cast<int64_t>(todo.size()), o.verbosity);
  int64_t n = 0;
  for (const Unit* u : todo) {
    const auto u0 = std::chrono::steady_clock::now();
    const std::vector<ResultRow> rows = run_unit(*backend, *u, data, maps.get(), sha);
    std::string text;
    for (ResultRow r : rows) {
      r.model = meta.model;
      r.data_sha256 = sha;
      text += format_row(r, u->config);
    }
    writer.append(text);
    sum.rows_written += static_cast<int64_t>(rows.size());
    ++sum.units_run;
    char took[32];
    std::snprintf(took, sizeof took, "  %.2fs",
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - u0).count());
    progress.update(++n, std::string(phase_name(u->phase)) + " " + short_key(u->config) + took);
  }
  sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  side.set("status", "complete");
  side.set("seconds_last_run", sum.seconds);
  write_file_atomic(sidecar_path(o.out), side.dump());
  return sum;
}

}  // namespace eval
}  // namespace turbo
