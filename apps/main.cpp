// sparta: the command-line entry point. Errors become one line on stderr and exit status 1.
#include <cstdio>

#include "apps/commands.h"
#include "core/error.h"

int main(int argc, char** argv) {
  CLI::App app{"sparta: sparse-transformer training"};
  app.require_subcommand(1);
  sparta::apps::add_demo_command(app);
  sparta::apps::add_viz_command(app);
  sparta::apps::add_train_commands(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sparta: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
