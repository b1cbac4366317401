// datasets_cli: the capture and ppl subcommands on their own (the turboattn main in eval/ registers
// the same functions next to its other subcommands).
#include <CLI/CLI.hpp>

#include "datasets/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"turboattn datasets commands: capture, ppl"};
  app.require_subcommand(1);
  turbo::data::add_capture_command(app);
  turbo::data::add_ppl_command(app);
  CLI11_PARSE(app, argc, argv);
  return 0;
}
