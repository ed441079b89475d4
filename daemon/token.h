#pragma once
// The API's bearer token: 32 random bytes as hex in <state>/token, mode 0600, so only the user who
// runs the daemon (and root) can drive it. Kept across restarts so open dashboards and scripts keep
// working; replaced when the file's mode lets anyone else read it (it may have leaked).
#include <cstddef>
#include <string>

namespace sparta::daemon {

// Reads the token, creating it (or replacing one readable by others) first. `warn` receives a
// message when an exposed token was replaced.
std::string load_or_create_token(const std::string& path, std::string* warning = nullptr);
// Reads an existing token for a client; throws naming the file when it cannot.
std::string read_token(const std::string& path);
// `bytes` random bytes (getrandom) as lowercase hex.
std::string random_hex(size_t bytes);
// Compares in time independent of where the strings differ (no timing oracle for guessing).
bool tokens_equal(const std::string& a, const std::string& b);

}  // namespace sparta::daemon
