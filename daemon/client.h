#pragma once
// The CLI's side of the API: finds the daemon of a state directory (its address in daemon.json,
// its token in the 0600 token file: no flags needed) and makes requests. An error answer becomes
// sparta::Error carrying the daemon's message unchanged, so `sparta submit` refuses a bad config
// with exactly the words `sparta train` uses.
#include <httplib.h>

#include <string>

#include <nlohmann/json.hpp>

#include "daemon/state_dir.h"

namespace sparta::daemon {

class Client {
 public:
  explicit Client(const std::string& state_dir = "");  // "" for default_state_dir()

  nlohmann::json get(const std::string& path);
  // `attempts` > 1 retries when the daemon cannot be reached or the connection drops (never after
  // an answer): only for requests that are safe to repeat, such as a submit with a submit_key.
  nlohmann::json post(const std::string& path, const nlohmann::json& body = nlohmann::json::object(),
                      int attempts = 1);

  struct Raw {
    int status = 0;
    std::string body;
    httplib::Headers headers;
  };
  Raw get_raw(const std::string& path);

  // http://127.0.0.1:<port>
  std::string base_url() const;
  const std::string& token() const { return token_; }
  const StateDir& state() const { return dir_; }

 private:
  nlohmann::json decode(const httplib::Result& r, const std::string& what);
  httplib::Client connect() const;

  StateDir dir_;
  DaemonAddress address_;
  std::string token_;
};

}  // namespace sparta::daemon
