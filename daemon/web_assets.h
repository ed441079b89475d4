#pragma once
// The dashboard's files (daemon/web/), compiled into the program by embed_web.cmake so the daemon
// serves them wherever it is installed. The charting library is not among them: the daemon reads
// Debian's Chart.js at start-up (DaemonConfig::chart_js).
#include <string>
#include <vector>

namespace sparta::daemon {

struct WebAsset {
  std::string name;  // file name under daemon/web/, served at /<name>
  std::string body;
};

const std::vector<WebAsset>& web_assets();

// By extension: text/html, text/javascript, text/css, ...
std::string content_type_for(const std::string& name);

}  // namespace sparta::daemon
