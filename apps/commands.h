#pragma once
// Each `sparta <command>` registers its options on the CLI11 app and runs when selected.
#include <CLI/CLI.hpp>

namespace sparta::apps {

void add_demo_command(CLI::App& app);

}  // namespace sparta::apps
