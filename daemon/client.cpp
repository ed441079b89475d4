#include "daemon/client.h"

#include <chrono>
#include <thread>

#include "core/error.h"
#include "daemon/token.h"

namespace sparta::daemon {

Client::Client(const std::string& state_dir)
    : dir_(state_dir.empty() ? default_state_dir() : state_dir), address_(read_address(dir_)),
      token_(read_token(dir_.token())) {}

std::string Client::base_url() const { return "http://" + address_.host + ":" + std::to_string(address_.port); }

httplib::Client Client::connect() const {
  httplib::Client c(address_.host, address_.port);
  c.set_bearer_token_auth(token_);
  c.set_connection_timeout(5);
  c.set_read_timeout(600);  // an export of a large model takes a while
  return c;
}

nlohmann::json Client::decode(const httplib::Result& r, const std::string& what) {
  if (!r) {
    SPARTA_FAIL("daemon", "cannot reach the daemon at ", base_url(), " (state directory ", dir_.root(), "): ",
                httplib::to_string(r.error()), "; is `sparta daemon` running?");
  }
  nlohmann::json body;
  try {
    body = nlohmann::json::parse(r->body);
  } catch (const nlohmann::json::exception&) {
    SPARTA_FAIL("daemon", what, ": the daemon answered ", r->status, " with a body that is not JSON");
  }
  if (r->status >= 400) {
    // The daemon's message as it is: for a refused config it is the config reader's own error.
    throw Error(body.is_object() && body.contains("error") ? body["error"].get<std::string>()
                                                           : "[daemon] " + what + ": HTTP " + std::to_string(r->status));
  }
  return body;
}

nlohmann::json Client::get(const std::string& path) {
  httplib::Client c = connect();
  return decode(c.Get(path.c_str()), "GET " + path);
}

nlohmann::json Client::post(const std::string& path, const nlohmann::json& body, int attempts) {
  httplib::Client c = connect();
  const std::string text = body.dump();
  for (int i = 1;; ++i) {
    httplib::Result r = c.Post(path.c_str(), text, "application/json");
    if (r || i >= attempts) return decode(r, "POST " + path);
    std::this_thread::sleep_for(std::chrono::milliseconds(200 * i));
  }
}

Client::Raw Client::get_raw(const std::string& path) {
  httplib::Client c = connect();
  httplib::Result r = c.Get(path.c_str());
  if (!r) {
    SPARTA_FAIL("daemon", "cannot reach the daemon at ", base_url(), " (state directory ", dir_.root(), "): ",
                httplib::to_string(r.error()), "; is `sparta daemon` running?");
  }
  if (r->status >= 400) decode(r, "GET " + path);
  return Raw{r->status, r->body, r->headers};
}

}  // namespace sparta::daemon
