#pragma once
// Each `sparta <command>` registers its options on the CLI11 app and runs when selected.
#include <CLI/CLI.hpp>

namespace sparta::apps {

void add_demo_command(CLI::App& app);
void add_viz_command(CLI::App& app);
void add_train_commands(CLI::App& app);

}  // namespace sparta::apps
