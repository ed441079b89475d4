#pragma once
// Each `sparta <command>` registers its options on the CLI11 app and runs when selected.
#include <CLI/CLI.hpp>

#include <string>

namespace sparta::apps {

void add_demo_command(CLI::App& app);
void add_viz_command(CLI::App& app);
void add_train_commands(CLI::App& app);
void add_daemon_commands(CLI::App& app);

// The daemon's forms of `sparta resume JOB` and `sparta export JOB` (apps/daemon_commands.cpp).
// An argument is a job id when it is a number that names no existing file or directory, so every
// run directory keeps working as before.
bool is_job_argument(const std::string& arg);
void resume_job(const std::string& job, const std::string& state_dir);
void export_job(const std::string& job, const std::string& state_dir);

}  // namespace sparta::apps
