// The dashboard in a real browser: headless Chromium (Debian's chromium) loads the daemon's page
// with the token in its address (as `sparta dashboard` prints it), after a real short training run;
// the DOM must list the job and hold the curves Chart.js laid out (the page records the points it
// drew on each chart's figure), and a screenshot is saved into the build tree
// (tests/daemon-dashboard.png; docs/daemon-dashboard.png is a copy of one).
#include <regex>

#include "tests/daemon_support.h"

using namespace sparta::test;

namespace {

std::string find_chromium() {
  for (const char* p : {"/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"}) {
    if (::access(p, X_OK) == 0) return p;
  }
  return "";
}

boost::test_tools::assertion_result chromium_installed(boost::unit_test::test_unit_id) {
  boost::test_tools::assertion_result r(!find_chromium().empty());
  r.message() << "chromium is not installed (tools/install-deps.sh installs it): the dashboard test is skipped";
  return r;
}

// Runs headless Chromium on `url` with `mode` ("--dump-dom" or "--screenshot=FILE"); its stdout.
std::string chromium(const std::string& url, const std::string& mode, const std::string& scratch) {
  fs::create_directories(scratch);
  const std::string out = scratch + "/chromium.out", err = scratch + "/chromium.err";
  // Its own profile directory, no sandbox (tests may run as root), no GPU; virtual time lets the
  // page's scripts fetch and draw before the DOM is dumped or the picture taken.
  const std::string cmd = "timeout 90 " + find_chromium() +
                          " --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run"
                          " --user-data-dir=" + scratch + "/profile --window-size=1280,1000"
                          " --virtual-time-budget=8000 " + mode + " '" + url + "' > " + out + " 2> " + err;
  const int rc = std::system(cmd.c_str());
  BOOST_TEST_REQUIRE(rc == 0, "chromium failed (" << rc << "): " << read_file(err).substr(0, 2000));
  return read_file(out);
}

int attribute_int(const std::string& dom, const std::string& element_regex, const std::string& attribute) {
  std::smatch m;
  const std::regex el(element_regex);
  if (!std::regex_search(dom, m, el)) return -1;
  const std::string tag = m.str(0);
  const std::regex attr(attribute + "=\"(\\d+)\"");
  if (!std::regex_search(tag, m, attr)) return -1;
  return std::stoi(m.str(1));
}

}  // namespace

BOOST_AUTO_TEST_CASE(dashboard_shows_the_job_and_its_curves, *boost::unit_test::precondition(chromium_installed)) {
  TempDir dir("dashboard");
  write_corpus(dir / "corpus.txt");
  DaemonProcess daemon(dir / "state");
  // A real short run: 60 steps, a line every 2, an evaluation every 10.
  const int64_t id = daemon.submit(tiny_config("dashboard-demo", 60, 2, 10), dir.path.string())["id"].get<int64_t>();
  const json done = daemon.wait_state(id, "succeeded");
  const size_t lines = metric_steps(done["run_dir"].get<std::string>() + "/metrics.jsonl").size();
  BOOST_TEST_REQUIRE(lines == 30u);  // steps 2, 4, ..., 60 (the evaluations at 10, 20, ... are among them)

  const std::string url = "http://127.0.0.1:" + std::to_string(daemon.port()) + "/?token=" + daemon.token() +
                          "#job=" + std::to_string(id);
  const std::string dom = chromium(url, "--dump-dom", dir.path.string());
  BOOST_TEST_REQUIRE(dom.find("<table id=\"jobs\"") != std::string::npos, dom.substr(0, 2000));
  // The job is listed, with its state.
  const std::regex row("<tr data-job-id=\"" + std::to_string(id) + "\" data-state=\"succeeded\"");
  BOOST_TEST(std::regex_search(dom, row), dom);
  BOOST_TEST(dom.find(">dashboard-demo<") != std::string::npos);
  // Every chart drew every point of its series; validation loss only where evaluations ran.
  BOOST_TEST(attribute_int(dom, "<figure data-chart=\"loss\"[^>]*>", "data-points_loss") == int(lines));
  BOOST_TEST(attribute_int(dom, "<figure data-chart=\"loss\"[^>]*>", "data-points_val_loss") == 6);
  BOOST_TEST(attribute_int(dom, "<figure data-chart=\"lr\"[^>]*>", "data-points") == int(lines));
  BOOST_TEST(attribute_int(dom, "<figure data-chart=\"grad_norm\"[^>]*>", "data-points") == int(lines));
  BOOST_TEST(attribute_int(dom, "<figure data-chart=\"tokens_per_s\"[^>]*>", "data-points") == int(lines));
  BOOST_TEST(dom.find("<p id=\"error\" role=\"alert\" hidden") != std::string::npos);  // no error shown

  // Without the token the page asks for it and shows no job.
  const std::string anon = chromium("http://127.0.0.1:" + std::to_string(daemon.port()) + "/", "--dump-dom", dir.path.string() + "/anon");
  BOOST_TEST(anon.find("<form id=\"auth\">") != std::string::npos);
  BOOST_TEST(anon.find("data-job-id") == std::string::npos);

  const std::string shot = fs::absolute("daemon-dashboard.png").string();
  fs::remove(shot);
  chromium(url, "--screenshot=" + shot, dir.path.string());
  BOOST_TEST_REQUIRE(fs::exists(shot));
  BOOST_TEST(fs::file_size(shot) > 20000u);  // a page with four drawn charts, not a blank one
  BOOST_TEST_MESSAGE("screenshot: " << shot);
}
