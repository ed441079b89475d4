// The dashboard: its embedded files and the charting library, without the token (they hold no
// data; the page sends the token with every API request it makes).
#include "daemon/api.h"
#include "daemon/web_assets.h"

namespace sparta::daemon {
namespace {

void static_headers(httplib::Response& res) {
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Content-Type-Options", "nosniff");
  // Scripts only from the daemon itself: a job name rendered by mistake as HTML could not run
  // code that reads the token the page keeps.
  res.set_header("Content-Security-Policy",
                 "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'");
}

}  // namespace

void add_web_routes(httplib::Server& server, ApiContext& ctx) {
  for (const WebAsset& a : web_assets()) {
    std::string route = "/";  // index.html; other files at /<name>, the name's dots escaped for the route's regex
    if (a.name != "index.html") {
      for (char c : a.name) route += c == '.' ? std::string("\\.") : std::string(1, c);
    }
    const WebAsset* asset = &a;
    server.Get(route, [asset](const httplib::Request&, httplib::Response& res) {
      static_headers(res);
      res.set_content(asset->body, content_type_for(asset->name));
    });
  }
  server.Get(R"(/chart\.js)", [&ctx](const httplib::Request&, httplib::Response& res) {
    static_headers(res);
    res.set_content(ctx.chart_js, "text/javascript; charset=utf-8");
  });
}

}  // namespace sparta::daemon
