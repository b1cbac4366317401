#include "datasets/commands.h"

#include <gtest/gtest.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "datasets/activations.h"
#include "datasets/gguf.h"
#include "datasets/model_path.h"
#include "datasets/sha256.h"
#include "datasets/tokenizer.h"

namespace turbo {
namespace data {
namespace {

const std::string kData = std::string(TURBO_DATASETS_DIR) + "/data/";
const std::string kGpl = "/usr/share/common-licenses/GPL-3";

std::string tmp(const std::string& name) { return ::testing::TempDir() + "/turbo_cmd_" + name; }
bool exists(const std::string& p) { return std::ifstream(p).good(); }
std::string bytes_of(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

TEST(LayerList, Parses) {
  EXPECT_EQ(parse_layer_list("all", 3), (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(parse_layer_list("0,3,10-12", 30), (std::vector<int>{0, 3, 10, 11, 12}));
  EXPECT_EQ(parse_layer_list("5,1,5", 30), (std::vector<int>{1, 5}));
  for (const char* bad : {"", "x", "30", "-1", "5-3", "1,,2a"})
    EXPECT_THROW(parse_layer_list(bad, 30), Error) << bad;
}

// The embedded files are what their recorded command produces, byte for byte.
TEST(EmbeddedData, ReproducibleFromRecordedCommand) {
  for (const char* name :
       {"smollm2_eval.h5", "smollm2_calib.h5", "gemma3_eval.h5", "gemma3_calib.h5"}) {
    SCOPED_TRACE(name);
    const ActivationReader r(kData + name);
    // "turboattn capture --text T --max-tokens N --skip-tokens S --layers L --out O"
    std::istringstream cmd(r.meta().command);
    std::vector<std::string> argv{std::istream_iterator<std::string>(cmd), {}};
    ASSERT_GE(argv.size(), 2u);
    ASSERT_EQ(argv[0], "turboattn");
    ASSERT_EQ(argv[1], "capture");
    CaptureOptions o;
    for (size_t i = 2; i + 1 < argv.size(); i += 2) {
      const std::string& k = argv[i];
      const std::string& v = argv[i + 1];
      if (k == "--model")
        o.model = v;
      else if (k == "--text")
        o.text = v;
      else if (k == "--max-tokens")
        o.max_tokens = std::stoll(v);
      else if (k == "--skip-tokens")
        o.skip_tokens = std::stoll(v);
      else if (k == "--layers")
        o.layers = v;
      else if (k == "--out")
        continue;
      else
        FAIL() << "unexpected option " << k;
    }
    o.out = tmp(std::string("repro_") + name);
    o.force = true;
    o.command = r.meta().command;  // the --out path differs; the recorded string is kept
    const CaptureReport rep = run_capture(o);
    EXPECT_EQ(rep.sha256, r.sha256());
  }
}

TEST(EmbeddedData, SchemaTextsAndSize) {
  const ActivationReader eval(kData + "smollm2_eval.h5"), calib(kData + "smollm2_calib.h5");
  for (const ActivationReader* r : {&eval, &calib}) {
    EXPECT_EQ(r->meta().model_sha256, kDefaultModelSha256);
    EXPECT_EQ(r->meta().n_layers, 30);
    EXPECT_EQ(static_cast<int>(r->meta().layers.size()), 30);
    EXPECT_EQ(r->meta().n_heads, 9);
    EXPECT_EQ(r->meta().n_kv_heads, 3);
    EXPECT_EQ(r->meta().head_dim, 64);
    EXPECT_EQ(r->meta().rope_theta, 100000.0);
  }
  EXPECT_GE(eval.meta().n_tokens, 512);
  // Calibration and evaluation come from different texts.
  EXPECT_EQ(eval.meta().text_source.rfind("GPL-3:", 0), 0u) << eval.meta().text_source;
  EXPECT_EQ(calib.meta().text_source.rfind("Apache-2.0:", 0), 0u) << calib.meta().text_source;
  // The ids are the tokenizer's encoding of the start of the text.
  const GgufFile g(default_model_path());
  const Tokenizer tok(g);
  std::ifstream f(kGpl, std::ios::binary);
  const std::string text(std::istreambuf_iterator<char>(f), {});
  std::vector<int32_t> ids = tok.encode_for_model(text);
  ids.resize(static_cast<size_t>(eval.meta().n_tokens));
  EXPECT_EQ(eval.tokens(), ids);
  // Every tensor reads back finite (the reader rejects anything else).
  for (int l : eval.meta().layers)
    for (char c : {'q', 'k', 'v'}) EXPECT_NO_THROW(eval.read(l, c));
  const uint64_t total =
      bytes_of(kData + "smollm2_eval.h5").size() + bytes_of(kData + "smollm2_calib.h5").size();
  EXPECT_LE(total, 32000000u);
}

// Gemma 3 270M's files: the same checks, and their own 32 MB budget.
TEST(EmbeddedData, Gemma3SchemaTextsAndSize) {
  const ActivationReader eval(kData + "gemma3_eval.h5"), calib(kData + "gemma3_calib.h5");
  for (const ActivationReader* r : {&eval, &calib}) {
    EXPECT_EQ(r->meta().model_sha256, kGemmaModelSha256);
    EXPECT_EQ(r->meta().n_layers, 18);
    EXPECT_EQ(static_cast<int>(r->meta().layers.size()), 18);
    EXPECT_EQ(r->meta().n_heads, 4);
    EXPECT_EQ(r->meta().n_kv_heads, 1);
    EXPECT_EQ(r->meta().head_dim, 256);
    EXPECT_EQ(r->meta().rope_theta, 1000000.0);  // the full-attention layers' base
    // At most the 512-token sliding window: full causal attention over the file's Q/K/V is the
    // model's attention in every layer.
    EXPECT_LE(r->meta().n_tokens, 512);
  }
  EXPECT_EQ(eval.meta().n_tokens, 512);
  EXPECT_EQ(eval.meta().text_source.rfind("GPL-3:", 0), 0u) << eval.meta().text_source;
  EXPECT_EQ(calib.meta().text_source.rfind("Apache-2.0:", 0), 0u) << calib.meta().text_source;
  const GgufFile g(gemma_model_path());
  const Tokenizer tok(g);
  std::ifstream f(kGpl, std::ios::binary);
  const std::string text(std::istreambuf_iterator<char>(f), {});
  std::vector<int32_t> ids = tok.encode_for_model(text);
  ASSERT_EQ(ids[0], tok.bos_id());  // Gemma's metadata asks for BOS
  ids.resize(static_cast<size_t>(eval.meta().n_tokens));
  EXPECT_EQ(eval.tokens(), ids);
  for (int l : eval.meta().layers)
    for (char c : {'q', 'k', 'v'}) EXPECT_NO_THROW(eval.read(l, c));
  const uint64_t total =
      bytes_of(kData + "gemma3_eval.h5").size() + bytes_of(kData + "gemma3_calib.h5").size();
  EXPECT_LE(total, 32000000u);
}

CaptureOptions small_capture(const std::string& out) {
  CaptureOptions o;
  o.text = kGpl;
  o.out = out;
  o.max_tokens = 24;
  o.layers = "0,2";
  return o;
}

TEST(Capture, DeterministicAndRefusesExistingOutput) {
  const std::string a = tmp("det_a.h5"), b = tmp("det_b.h5");
  std::remove(a.c_str());
  std::remove(b.c_str());
  CaptureOptions oa = small_capture(a), ob = small_capture(b);
  oa.command = ob.command = "same";
  run_capture(oa);
  run_capture(ob);
  EXPECT_EQ(bytes_of(a), bytes_of(b));
  const ActivationReader r(a);
  EXPECT_EQ(r.meta().layers, (std::vector<int>{0, 2}));
  EXPECT_EQ(r.meta().n_tokens, 24);

  const std::string before = bytes_of(a);
  CaptureOptions again = small_capture(a);
  again.max_tokens = 30;
  try {
    run_capture(again);
    FAIL() << "expected a refusal";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--force"), std::string::npos) << e.what();
  }
  EXPECT_EQ(bytes_of(a), before);
  again.force = true;
  run_capture(again);
  EXPECT_EQ(ActivationReader(a).meta().n_tokens, 30);
}

TEST(Capture, RecordsCanonicalCommand) {
  CaptureOptions o = small_capture("x.h5");
  EXPECT_EQ(capture_command_line(o),
            "turboattn capture --text " + kGpl +
                " --max-tokens 24 --skip-tokens 0 --layers 0,2 --out x.h5");
  o.model = "m.gguf";
  EXPECT_EQ(capture_command_line(o).rfind("turboattn capture --model m.gguf --text ", 0), 0u);
}

TEST(Capture, TruncatesLongTextWithWarning) {
  const std::string out = tmp("trunc.h5");
  std::remove(out.c_str());
  CaptureOptions o = small_capture(out);
  o.skip_tokens = 7;
  ::testing::internal::CaptureStderr();
  const CaptureReport r = run_capture(o);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("truncating to the first 24"), std::string::npos) << err;
  EXPECT_EQ(r.n_tokens, 24);
  EXPECT_NE(ActivationReader(out).meta().text_source.find("tokens [7, 31)"), std::string::npos);
}

TEST(Capture, BadInputsFailCleanlyWithoutPartialFiles) {
  const std::string out = tmp("bad.h5");
  std::remove(out.c_str());
  const std::string junk = tmp("junk.gguf");
  std::ofstream(junk) << "GGUF\x03";
  const std::string empty = tmp("empty.txt");
  std::ofstream(empty) << "";
  struct Case {
    const char* what;
    CaptureOptions o;
  };
  std::vector<Case> cases;
  auto add = [&](const char* what, auto edit) {
    CaptureOptions o = small_capture(out);
    edit(o);
    cases.push_back({what, o});
  };
  add("missing model", [](CaptureOptions& o) { o.model = "/nonexistent/model.gguf"; });
  add("corrupt model", [&](CaptureOptions& o) { o.model = junk; });
  add("missing text", [](CaptureOptions& o) { o.text = "/nonexistent/text"; });
  add("empty text", [&](CaptureOptions& o) { o.text = empty; });
  add("skip beyond the text", [](CaptureOptions& o) { o.skip_tokens = 1000000; });
  add("zero tokens", [](CaptureOptions& o) { o.max_tokens = 0; });
  add("bad layers", [](CaptureOptions& o) { o.layers = "40"; });
  add("unwritable output", [](CaptureOptions& o) { o.out = "/nonexistent/dir/out.h5"; });
  for (const Case& c : cases) {
    EXPECT_THROW(run_capture(c.o), Error) << c.what;
    EXPECT_FALSE(exists(c.o.out)) << c.what;
    EXPECT_FALSE(exists(c.o.out + ".tmp")) << c.what;
  }
}

// The CLI wrappers: errors print once and exit non-zero.
int run_cli(const std::string& args) {
  CLI::App app{"test"};
  app.require_subcommand(1);
  add_capture_command(app);
  try {
    app.parse(args, false);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return 0;
}

TEST(Cli, ExitCodes) {
  const std::string out = tmp("cli.h5");
  std::remove(out.c_str());
  EXPECT_NE(run_cli("capture --text " + kGpl), 0);                    // --out missing
  EXPECT_NE(run_cli("capture --text /nonexistent --out " + out), 0);  // bad text
  EXPECT_FALSE(exists(out));
  EXPECT_EQ(run_cli("capture --text " + kGpl + " --max-tokens 8 --layers 0 --out " + out), 0);
  EXPECT_TRUE(exists(out));
  EXPECT_NE(run_cli("capture --text " + kGpl + " --max-tokens 8 --layers 0 --out " + out),
            0);  // exists
  EXPECT_EQ(
      run_cli("capture --text " + kGpl + " --max-tokens 8 --layers 0 --out " + out + " --force"),
      0);
}

}  // namespace
}  // namespace data
}  // namespace turbo
