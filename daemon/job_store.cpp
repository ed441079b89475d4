#include "daemon/job_store.h"

#include "core/error.h"

namespace sparta::daemon {
namespace {

constexpr int kSchemaVersion = 1;

const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS jobs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  submit_key TEXT UNIQUE,
  name TEXT NOT NULL,
  run_name TEXT NOT NULL,
  config_name TEXT NOT NULL,
  config_yaml TEXT NOT NULL DEFAULT '',
  state TEXT NOT NULL,
  queue_seq INTEGER NOT NULL,
  gpus INTEGER NOT NULL,
  assigned_gpus TEXT NOT NULL DEFAULT '',
  total_steps INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  pid INTEGER,
  pid_start INTEGER,
  cancel_requested INTEGER NOT NULL DEFAULT 0,
  exit_code INTEGER,
  message TEXT NOT NULL DEFAULT '',
  created_at REAL NOT NULL,
  started_at REAL,
  finished_at REAL
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs(state, queue_seq);
CREATE TABLE IF NOT EXISTS events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  job_id INTEGER NOT NULL REFERENCES jobs(id),
  at REAL NOT NULL,
  state TEXT NOT NULL,
  message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_job ON events(job_id, id);
)sql";

const char* kColumns =
    "id, name, run_name, config_name, state, queue_seq, gpus, assigned_gpus, total_steps, attempts, pid, pid_start, "
    "cancel_requested, exit_code, message, COALESCE(submit_key, ''), created_at, started_at, finished_at";

Job read_job(const Statement& s) {
  Job j;
  j.id = s.int64(0);
  j.name = s.text(1);
  j.run_name = s.text(2);
  j.config_name = s.text(3);
  j.state = state_from_name(s.text(4)).value_or(JobState::failed);
  j.queue_seq = s.int64(5);
  j.gpus = s.int64(6);
  j.assigned_gpus = s.text(7);
  j.total_steps = s.int64(8);
  j.attempts = s.int64(9);
  j.pid = s.opt_int64(10);
  j.pid_start = s.opt_int64(11);
  j.cancel_requested = s.int64(12) != 0;
  j.exit_code = s.opt_int64(13);
  j.message = s.text(14);
  j.submit_key = s.text(15);
  j.created_at = s.real(16);
  j.started_at = s.opt_real(17);
  j.finished_at = s.opt_real(18);
  return j;
}

// "state IN ('queued','failed')" for a list of states (names are ours, not user input).
std::string state_set(const std::vector<JobState>& states) {
  std::string s = "state IN (";
  for (size_t i = 0; i < states.size(); ++i) s += std::string(i ? "," : "") + "'" + state_name(states[i]) + "'";
  return s + ")";
}

}  // namespace

JobStore::JobStore(const std::string& db_path) : db_(db_path) {
  // WAL: readers never block the writer; synchronous=FULL: a committed transaction is on disk
  // before COMMIT returns, so an acknowledged submit survives even a power cut.
  db_.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;");
  Statement v = db_.prepare("PRAGMA user_version");
  v.step();
  const int64_t version = v.int64(0);
  SPARTA_CHECK(version <= kSchemaVersion, "daemon", "job store ", db_path, " has schema version ", version,
               ", newer than this sparta understands (", kSchemaVersion, "): use the sparta that wrote it");
  Transaction t(db_);
  db_.exec(kSchema);
  db_.exec("PRAGMA user_version = " + std::to_string(kSchemaVersion));
  t.commit();
}

void JobStore::record_event(int64_t id, JobState state, const std::string& message) {
  db_.prepare("INSERT INTO events(job_id, at, state, message) VALUES (?, ?, ?, ?)")
      .bind(1, id)
      .bind(2, unix_now())
      .bind(3, state_name(state))
      .bind(4, message)
      .run();
}

std::vector<Job> JobStore::select(const std::string& tail, const std::function<void(Statement&)>& bind) {
  Statement s = db_.prepare(std::string("SELECT ") + kColumns + " FROM jobs " + tail);
  if (bind) bind(s);
  std::vector<Job> out;
  while (s.step()) out.push_back(read_job(s));
  return out;
}

std::pair<Job, bool> JobStore::add(const NewJob& nj, const std::function<std::string(const Job&)>& prepare) {
  std::lock_guard<std::mutex> lock(mu_);
  Transaction t(db_);
  if (!nj.submit_key.empty()) {
    auto seen = select("WHERE submit_key = ?", [&](Statement& s) { s.bind(1, nj.submit_key); });
    if (!seen.empty()) return {seen.front(), false};
  }
  Statement seq = db_.prepare("SELECT COALESCE(MAX(queue_seq), 0) + 1 FROM jobs");
  seq.step();
  Job j;
  j.name = nj.name;
  j.config_name = nj.config_name;
  j.submit_key = nj.submit_key;
  j.gpus = nj.gpus;
  j.total_steps = nj.total_steps;
  j.queue_seq = seq.int64(0);
  j.created_at = unix_now();
  Statement ins = db_.prepare(
      "INSERT INTO jobs(submit_key, name, run_name, config_name, state, queue_seq, gpus, total_steps, created_at) "
      "VALUES (?, ?, '', ?, 'queued', ?, ?, ?, ?)");
  if (nj.submit_key.empty()) {
    ins.bind_null(1);
  } else {
    ins.bind(1, nj.submit_key);
  }
  ins.bind(2, j.name).bind(3, j.config_name).bind(4, j.queue_seq).bind(5, j.gpus).bind(6, j.total_steps);
  ins.bind(7, j.created_at).run();
  j.id = db_.last_insert_id();
  j.run_name = std::to_string(j.id) + "-" + j.name;
  const std::string yaml = prepare(j);
  db_.prepare("UPDATE jobs SET run_name = ?, config_yaml = ? WHERE id = ?")
      .bind(1, j.run_name)
      .bind(2, yaml)
      .bind(3, j.id)
      .run();
  record_event(j.id, JobState::queued, "submitted from " + j.config_name);
  t.commit();
  return {j, true};
}

std::optional<Job> JobStore::get(int64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto v = select("WHERE id = ?", [&](Statement& s) { s.bind(1, id); });
  if (v.empty()) return std::nullopt;
  return v.front();
}

std::vector<Job> JobStore::list() {
  std::lock_guard<std::mutex> lock(mu_);
  return select("ORDER BY id", nullptr);
}

std::vector<Job> JobStore::in_state(JobState state) {
  std::lock_guard<std::mutex> lock(mu_);
  return select("WHERE state = ? ORDER BY queue_seq", [&](Statement& s) { s.bind(1, state_name(state)); });
}

std::optional<std::string> JobStore::config_yaml(int64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  Statement s = db_.prepare("SELECT config_yaml FROM jobs WHERE id = ?");
  s.bind(1, id);
  if (!s.step()) return std::nullopt;
  return s.text(0);
}

std::vector<JobEvent> JobStore::events(int64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  Statement s = db_.prepare("SELECT at, state, message FROM events WHERE job_id = ? ORDER BY id");
  s.bind(1, id);
  std::vector<JobEvent> out;
  while (s.step()) out.push_back({s.real(0), s.text(1), s.text(2)});
  return out;
}

std::map<JobState, int64_t> JobStore::counts() {
  std::lock_guard<std::mutex> lock(mu_);
  std::map<JobState, int64_t> out;
  for (JobState st : all_states()) out[st] = 0;
  Statement s = db_.prepare("SELECT state, COUNT(*) FROM jobs GROUP BY state");
  while (s.step()) {
    if (auto st = state_from_name(s.text(0))) out[*st] = s.int64(1);
  }
  return out;
}

bool JobStore::mark_running(int64_t id, int64_t pid, int64_t pid_start, const std::string& gpus,
                            const std::string& message) {
  std::lock_guard<std::mutex> lock(mu_);
  Transaction t(db_);
  db_.prepare(
         "UPDATE jobs SET state = 'running', pid = ?, pid_start = ?, assigned_gpus = ?, attempts = attempts + 1, "
         "started_at = ?, finished_at = NULL, exit_code = NULL, cancel_requested = 0, message = '' "
         "WHERE id = ? AND state = 'queued'")
      .bind(1, pid)
      .bind(2, pid_start)
      .bind(3, gpus)
      .bind(4, unix_now())
      .bind(5, id)
      .run();
  if (db_.changes() == 0) return false;
  record_event(id, JobState::running, message);
  t.commit();
  return true;
}

bool JobStore::mark_ended(int64_t id, JobState to, std::optional<int64_t> exit_code, const std::string& message) {
  std::lock_guard<std::mutex> lock(mu_);
  Transaction t(db_);
  db_.prepare(
         "UPDATE jobs SET state = ?, pid = NULL, pid_start = NULL, exit_code = ?, message = ?, finished_at = ? "
         "WHERE id = ? AND state = 'running'")
      .bind(1, state_name(to))
      .bind(2, exit_code)
      .bind(3, message)
      .bind(4, unix_now())
      .bind(5, id)
      .run();
  if (db_.changes() == 0) return false;
  record_event(id, to, message);
  t.commit();
  return true;
}

bool JobStore::mark_cancel_requested(int64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  Transaction t(db_);
  db_.prepare("UPDATE jobs SET cancel_requested = 1 WHERE id = ? AND state = 'running' AND cancel_requested = 0")
      .bind(1, id)
      .run();
  if (db_.changes() == 0) return false;
  record_event(id, JobState::running, "cancel requested: stopping the job");
  t.commit();
  return true;
}

bool JobStore::transition(int64_t id, const std::vector<JobState>& from, JobState to, const std::string& message,
                          bool keep_place) {
  std::lock_guard<std::mutex> lock(mu_);
  Transaction t(db_);
  std::string sql = "UPDATE jobs SET state = ?, message = ?, cancel_requested = 0";
  if (!keep_place) sql += ", queue_seq = (SELECT MAX(queue_seq) + 1 FROM jobs)";
  if (is_settled(to)) sql += ", finished_at = COALESCE(finished_at, ?)";
  sql += " WHERE id = ? AND " + state_set(from);
  Statement s = db_.prepare(sql);
  s.bind(1, state_name(to));
  s.bind(2, message);
  int next = 3;
  if (is_settled(to)) s.bind(next++, unix_now());
  s.bind(next, id).run();
  if (db_.changes() == 0) return false;
  record_event(id, to, message);
  t.commit();
  return true;
}

}  // namespace sparta::daemon
