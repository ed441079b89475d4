#pragma once
// The daemon's own log: one line per event on stderr, which systemd's journal (or the terminal)
// collects; no timestamps of our own, since the journal adds them. Safe from any thread.
#include <string>

namespace sparta::daemon {

void log_info(const std::string& line);
void log_warning(const std::string& line);

}  // namespace sparta::daemon
