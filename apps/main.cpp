// sparta: the command-line entry point. Errors become one line on stderr and exit status 1.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "apps/commands.h"
#include "core/error.h"

int main(int argc, char** argv) {
  // oneDNN runs on OpenMP, whose idle threads spin, and libgomp reads its settings when it is
  // loaded, before main: beside TBB's threads on a few cores that spinning cost 10-15% of a
  // training step. Unless the user chose a policy, restart once with passive waiting.
  if (std::getenv("OMP_WAIT_POLICY") == nullptr) {
    setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    execv("/proc/self/exe", argv);  // returns only on failure: carry on as we are
  }
  CLI::App app{"sparta: sparse-transformer training"};
  app.require_subcommand(1);
  sparta::apps::add_demo_command(app);
  sparta::apps::add_viz_command(app);
  sparta::apps::add_train_commands(app);
  sparta::apps::add_daemon_commands(app);
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
